package dnsprovider

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
)

// fakeCloudflare is Cloudflare's API v4 for one zone, as far as the
// provider uses it.
type fakeCloudflare struct {
	mu      sync.Mutex
	records map[string]cfRecord
	next    int
	auth    []string
}

func (f *fakeCloudflare) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	answer := func(ok bool, result any) {
		b, _ := json.Marshal(result)
		_ = json.NewEncoder(w).Encode(cfAnswer{Success: ok, Result: b, Errors: []json.RawMessage{}})
	}
	if !strings.HasPrefix(r.URL.Path, "/zones/zone-1/dns_records") {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "errors": []any{map[string]any{"code": 7003, "message": "Could not route to " + r.URL.Path}}})
		return
	}
	switch r.Method {
	case http.MethodPost:
		var rec cfRecord
		_ = json.NewDecoder(r.Body).Decode(&rec)
		f.next++
		rec.ID = fmt.Sprint("rec", f.next)
		f.records[rec.ID] = rec
		answer(true, rec)
	case http.MethodGet:
		q := r.URL.Query()
		var out []cfRecord
		for _, rec := range f.records {
			if rec.Type == q.Get("type") && rec.Name == q.Get("name") && rec.Content == q.Get("content") {
				out = append(out, rec)
			}
		}
		answer(true, out)
	case http.MethodDelete:
		id := strings.TrimPrefix(r.URL.Path, "/zones/zone-1/dns_records/")
		delete(f.records, id)
		answer(true, map[string]string{"id": id})
	}
}

// TestCloudflare sets two values under one name and clears one.
func TestCloudflare(t *testing.T) {
	t.Parallel()
	fake := &fakeCloudflare{records: map[string]cfRecord{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := &Cloudflare{Token: "tok", ZoneID: "zone-1", API: srv.URL}
	ctx := context.Background()
	name := "_acme-challenge.example.com"
	if err := c.SetTXT(ctx, name+".", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetTXT(ctx, name, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := c.ClearTXT(ctx, name, "v1"); err != nil {
		t.Fatal(err)
	}
	bad := &Cloudflare{Token: "tok", ZoneID: "other", API: srv.URL}
	if err := bad.SetTXT(ctx, name, "v"); err == nil || !strings.Contains(err.Error(), "Could not route") {
		t.Errorf("SetTXT(unknown zone) error = %v; want the API's error", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.records) != 1 || fake.records["rec2"] != (cfRecord{ID: "rec2", Type: "TXT", Name: name, Content: "v2", TTL: 120}) {
		t.Errorf("records = %+v; want only v2", fake.records)
	}
	for _, a := range fake.auth {
		if a != "Bearer tok" {
			t.Errorf("Authorization = %q; want Bearer tok", a)
		}
	}
}

// TestCloudflareFromEnv checks Aralez's variables.
func TestCloudflareFromEnv(t *testing.T) {
	t.Setenv(EnvCloudflareToken, "")
	if _, err := CloudflareFromEnv(); err == nil {
		t.Errorf("CloudflareFromEnv() without variables = nil error")
	}
	t.Setenv(EnvCloudflareToken, "tok")
	t.Setenv(EnvCloudflareZoneID, "z")
	if c, err := CloudflareFromEnv(); err != nil || c.Token != "tok" || c.ZoneID != "z" {
		t.Errorf("CloudflareFromEnv() = %+v, %v", c, err)
	}
}

// XML shapes of the Route53 API (2013-04-01) used by the fake.
type r53Set struct {
	Name   string   `xml:"Name"`
	Type   string   `xml:"Type"`
	TTL    int64    `xml:"TTL"`
	Values []string `xml:"ResourceRecords>ResourceRecord>Value"`
}

type r53Change struct {
	Action string `xml:"Action"`
	Set    r53Set `xml:"ResourceRecordSet"`
}

// fakeRoute53 is Route53's REST API for one zone, as far as the provider
// uses it; the real SDK client talks to it, signing every request.
type fakeRoute53 struct {
	mu      sync.Mutex
	sets    map[string]r53Set
	changes []r53Change
	signed  int
}

func (f *fakeRoute53) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKID/") {
		f.signed++
	}
	w.Header().Set("Content-Type", "text/xml")
	if !strings.HasPrefix(r.URL.Path, "/2013-04-01/hostedzone/ZONE1/rrset") {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchHostedZone</Code><Message>No hosted zone found</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
		return
	}
	switch r.Method {
	case http.MethodGet:
		type record struct {
			Value string `xml:"Value"`
		}
		type set struct {
			Name    string   `xml:"Name"`
			Type    string   `xml:"Type"`
			TTL     int64    `xml:"TTL"`
			Records []record `xml:"ResourceRecords>ResourceRecord"`
		}
		var sets []set
		if s, ok := f.sets[r.URL.Query().Get("name")]; ok {
			out := set{Name: s.Name, Type: s.Type, TTL: s.TTL}
			for _, v := range s.Values {
				out.Records = append(out.Records, record{v})
			}
			sets = append(sets, out)
		}
		b, _ := xml.Marshal(struct {
			XMLName     xml.Name `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListResourceRecordSetsResponse"`
			Sets        []set    `xml:"ResourceRecordSets>ResourceRecordSet"`
			IsTruncated bool
			MaxItems    string
		}{Sets: sets, MaxItems: "1"})
		w.Write(b)
	case http.MethodPost:
		var req struct {
			Changes []r53Change `xml:"ChangeBatch>Changes>Change"`
		}
		if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, c := range req.Changes {
			f.changes = append(f.changes, c)
			switch c.Action {
			case "UPSERT":
				f.sets[c.Set.Name] = c.Set
			case "DELETE":
				if cur, ok := f.sets[c.Set.Name]; !ok || !slices.Equal(cur.Values, c.Set.Values) || cur.TTL != c.Set.TTL {
					w.WriteHeader(400)
					io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidChangeBatch</Code><Message>values differ</Message></Error></ErrorResponse>`)
					return
				}
				delete(f.sets, c.Set.Name)
			}
		}
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/C1</Id><Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`)
	}
}

// TestRoute53 adds two values under one name through the real SDK,
// clears them one by one, and checks the changes Route53 received.
func TestRoute53(t *testing.T) {
	t.Parallel()
	fake := &fakeRoute53{sets: map[string]r53Set{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	client := route53.New(route53.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient:   srv.Client(),
	})
	r := &Route53{Client: client, ZoneID: "ZONE1"}
	ctx := context.Background()
	name := "_acme-challenge.example.com"
	for _, v := range []string{"v1", "v2", "v2"} {
		if err := r.SetTXT(ctx, name, v); err != nil {
			t.Fatalf("SetTXT(%s): %v", v, err)
		}
	}
	fake.mu.Lock()
	got := fake.sets[name+"."]
	fake.mu.Unlock()
	if want := []string{`"v1"`, `"v2"`}; !slices.Equal(got.Values, want) || got.TTL != 60 || got.Type != "TXT" {
		t.Errorf("record set after two SetTXT = %+v; want %q, TTL 60", got, want)
	}
	if err := r.ClearTXT(ctx, name, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := r.ClearTXT(ctx, name, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := r.ClearTXT(ctx, name, "v2"); err != nil {
		t.Fatalf("ClearTXT of a value already gone: %v", err)
	}
	bad := &Route53{Client: client, ZoneID: "NOPE"}
	if err := bad.SetTXT(ctx, name, "v"); err == nil || !strings.Contains(err.Error(), "NoSuchHostedZone") {
		t.Errorf("SetTXT(unknown zone) error = %v; want NoSuchHostedZone", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	var actions []string
	for _, c := range fake.changes {
		actions = append(actions, c.Action+" "+strings.Join(c.Set.Values, ","))
	}
	if want := []string{`UPSERT "v1"`, `UPSERT "v1","v2"`, `UPSERT "v2"`, `DELETE "v2"`}; !slices.Equal(actions, want) {
		t.Errorf("changes = %q; want %q", actions, want)
	}
	if len(fake.sets) != 0 || fake.signed == 0 {
		t.Errorf("sets left %v, signed requests %d; want none left, all signed", fake.sets, fake.signed)
	}
}
