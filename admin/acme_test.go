package admin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingACME is an ACME that records the names ordered; the
// end-to-end path against a real CA is tested in cmd/aralez.
type recordingACME struct {
	mu      sync.Mutex
	ordered []string
}

func (a *recordingACME) CreateAccount(context.Context) (string, error) {
	return "https://ca.test/acct/1", nil
}

func (a *recordingACME) Order(_ context.Context, name string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fresh := false
	for _, n := range a.ordered {
		fresh = fresh || n == name
	}
	a.ordered = append(a.ordered, name)
	if name == "fail.example.com" {
		return false, errors.New("rejected by the CA")
	}
	return fresh, nil
}

func (a *recordingACME) HTTPChallenge(host, token []byte) ([]byte, bool) {
	if string(host) == "a.example.com" && string(token) == "tok1" {
		return []byte("tok1.thumb"), true
	}
	return nil, false
}

func serveAdmin(t *testing.T, o Options) string {
	t.Helper()
	o.Logger = discard
	s := NewServer(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestACMEEndpoints checks Aralez's ACME endpoints: /acme_order and
// /acme_create need the master key (refused like POST /conf without
// one), the challenge endpoint answers only held tokens (issue 13).
func TestACMEEndpoints(t *testing.T) {
	t.Parallel()
	acme := &recordingACME{}
	base := serveAdmin(t, Options{MasterKey: testKey, ACME: acme})
	keyless := serveAdmin(t, Options{ACME: acme})
	for _, tc := range []struct {
		name, url, host string
		code            int
		body            string
	}{
		{"order without key configured", keyless + "/acme_order/a.example.com", "", 403, "read-only"},
		{"create without key configured", keyless + "/acme_create", "", 403, "read-only"},
		{"order without key", base + "/acme_order/a.example.com", "", 401, "master key required"},
		{"order wrong key", base + "/acme_order/a.example.com?key=nope", "", 403, "wrong master key"},
		{"order", base + "/acme_order/A.Example.com?key=" + testKey, "", 200, "Certificate is successfully generated\n"},
		{"order again", base + "/acme_order/a.example.com?key=" + testKey, "", 200, "Fresh certificate exists. Not renewing!\n"},
		{"order bad name", base + "/acme_order/intranet?key=" + testKey, "", 400, "fully qualified"},
		{"order failure", base + "/acme_order/fail.example.com?key=" + testKey, "", 500, "Failed to order a certificate: rejected by the CA"},
		{"create", base + "/acme_create?key=" + testKey, "", 200, "https://ca.test/acct/1\n"},
		{"challenge", base + "/.well-known/acme-challenge/tok1", "a.example.com", 200, "tok1.thumb"},
		{"challenge other host", base + "/.well-known/acme-challenge/tok1", "b.example.com", 404, "Not found\n"},
		{"challenge unknown token", base + "/.well-known/acme-challenge/tok2", "a.example.com", 404, "Not found\n"},
	} {
		code, body := get(t, tc.url, tc.host)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: GET %s = %d %q; want %d %q", tc.name, tc.url, code, body, tc.code, tc.body)
		}
	}
	acme.mu.Lock()
	defer acme.mu.Unlock()
	if got := strings.Join(acme.ordered, ","); got != "a.example.com,a.example.com,fail.example.com" {
		t.Errorf("names ordered = %q; want the normalised names of the authorized requests only", got)
	}
	if code, _ := get(t, serveAdmin(t, Options{MasterKey: testKey})+"/acme_order/a.example.com?key="+testKey, ""); code != 503 {
		t.Errorf("acme_order without a manager = %d; want 503", code)
	}
}

// TestStatusCertificates checks GET /status?certificates (issue 13: a
// failed renewal is visible in /status).
func TestStatusCertificates(t *testing.T) {
	t.Parallel()
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	st := fixedStatus(sampleStatus())
	st.Certificates = []CertificateStatus{{Name: "a.example.com", NotAfter: exp, Challenge: "http-01", LastError: "connection refused", LastErrorAt: exp.Add(-time.Hour), Renewals: 2, Failures: 1}}
	base := serveAdmin(t, Options{Status: st})
	code, body := get(t, base+"/status?certificates", "")
	want := `[
  {
    "name": "a.example.com",
    "not_after": "2027-01-02T03:04:05Z",
    "challenge": "http-01",
    "last_error": "connection refused",
    "last_error_at": "2027-01-02T02:04:05Z",
    "renewals": 2,
    "renewal_failures": 1
  }
]
`
	if code != 200 || body != want {
		t.Errorf("GET /status?certificates = %d\n%s\nwant 200\n%s", code, body, want)
	}
	if code, body := get(t, serveAdmin(t, Options{Status: fixedStatus(sampleStatus())})+"/status?certificates", ""); code != 200 || body != "[]\n" {
		t.Errorf("GET /status?certificates without ACME = %d %q; want 200 []", code, body)
	}
}
