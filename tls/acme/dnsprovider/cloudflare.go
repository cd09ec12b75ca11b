package dnsprovider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variables of the Cloudflare provider (Aralez's names).
const (
	EnvCloudflareToken  = "CLOUDFLARE_API_TOKEN"
	EnvCloudflareZoneID = "CLOUDFLARE_ZONE_ID"
)

// DefaultCloudflareAPI is Cloudflare's API base URL.
const DefaultCloudflareAPI = "https://api.cloudflare.com/client/v4"

// maxAPIBody bounds an API answer read into memory.
const maxAPIBody = 1 << 20

// Cloudflare manages TXT records of one zone through Cloudflare's API v4
// with an API token (permission Zone.DNS:Edit). It is safe for
// concurrent use.
type Cloudflare struct {
	// Token is the API token. Required.
	Token string
	// ZoneID is the zone's ID. Required.
	ZoneID string
	// API is the API base URL. Empty means DefaultCloudflareAPI.
	API string
	// Client makes the requests. Nil means a client with a 30 s timeout.
	Client *http.Client
}

// CloudflareFromEnv returns a Cloudflare provider configured from
// CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID; either missing is an
// error.
func CloudflareFromEnv() (*Cloudflare, error) {
	c := &Cloudflare{Token: os.Getenv(EnvCloudflareToken), ZoneID: os.Getenv(EnvCloudflareZoneID)}
	if c.Token == "" || c.ZoneID == "" {
		return nil, fmt.Errorf("dnsprovider: cloudflare needs %s and %s in the environment", EnvCloudflareToken, EnvCloudflareZoneID)
	}
	return c, nil
}

// cfRecord is a DNS record in Cloudflare's API.
type cfRecord struct {
	ID      string `json:"id,omitempty"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
}

// cfAnswer is the envelope of every API answer.
type cfAnswer struct {
	Success bool              `json:"success"`
	Errors  []json.RawMessage `json:"errors"`
	Result  json.RawMessage   `json:"result"`
}

// SetTXT creates the TXT record name with value (TTL 120 s).
func (c *Cloudflare) SetTXT(ctx context.Context, name, value string) error {
	rec := cfRecord{Type: "TXT", Name: strings.TrimSuffix(name, "."), Content: value, TTL: 120}
	return c.call(ctx, http.MethodPost, "/dns_records", rec, nil)
}

// ClearTXT deletes the TXT records name with value.
func (c *Cloudflare) ClearTXT(ctx context.Context, name, value string) error {
	q := url.Values{"type": {"TXT"}, "name": {strings.TrimSuffix(name, ".")}, "content": {value}}
	var recs []cfRecord
	if err := c.call(ctx, http.MethodGet, "/dns_records?"+q.Encode(), nil, &recs); err != nil {
		return err
	}
	for _, r := range recs {
		if err := c.call(ctx, http.MethodDelete, "/dns_records/"+url.PathEscape(r.ID), nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// call sends one API request for the zone and decodes the result into
// out (when not nil).
func (c *Cloudflare) call(ctx context.Context, method, path string, in, out any) error {
	api := c.API
	if api == "" {
		api = DefaultCloudflareAPI
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(api, "/")+"/zones/"+url.PathEscape(c.ZoneID)+path, body)
	if err != nil {
		return fmt.Errorf("dnsprovider: cloudflare: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("dnsprovider: cloudflare %s: %w", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return fmt.Errorf("dnsprovider: cloudflare %s: reading the answer: %w", method, err)
	}
	var a cfAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("dnsprovider: cloudflare %s: %s: undecodable answer: %w", method, resp.Status, err)
	}
	if !a.Success || resp.StatusCode/100 != 2 {
		return fmt.Errorf("dnsprovider: cloudflare %s: %s: %w", method, resp.Status, errors.New(string(bytes.Join(rawBytes(a.Errors), []byte("; ")))))
	}
	if out != nil {
		if err := json.Unmarshal(a.Result, out); err != nil {
			return fmt.Errorf("dnsprovider: cloudflare %s: decoding the result: %w", method, err)
		}
	}
	return nil
}

func rawBytes(rs []json.RawMessage) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}
