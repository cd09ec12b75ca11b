package discovery

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/internal/consultest"
)

// TestConsulTagDiscovery drives tag mode (no consul.services, issue 14)
// through the real consul/api client against the Consul test server.
func TestConsulTagDiscovery(t *testing.T) {
	t.Parallel()
	fc := consultest.NewServer(t)
	fc.Set("db", "127.0.0.1:5432") // not tagged: never routed
	var logs logBuffer
	cc := &config.Consul{Servers: []string{fc.URL()}, Token: "tag-t0ken"}
	// Long interval and wait: only blocking-query answers can deliver
	// changes within the ceilings below.
	c, err := NewConsul(consulBase(), cc, ConsulOptions{Interval: time.Minute, Wait: time.Minute, Logger: logs.logger()})
	if err != nil {
		t.Fatalf("NewConsul() error = %v", err)
	}
	out := startRun(t, c)
	base := "static.example.com /=127.0.0.1:9000; app.example.com /static=127.0.0.1:9001"
	if got := describe(recv(t, out, 5*time.Second).Upstreams); got != base {
		t.Fatalf("first table = %q; want the file table %q", got, base)
	}

	webTags := []string{
		ConsulServiceTag, "aralez.host=App.Example.com", "aralez.path=/web", "aralez.rate=20", "aralez.4xx_rate=10",
		"aralez.to_https=true", "aralez.client_header=X-Client: one", "aralez.server_header=X-Server: two",
		"aralez.client_headers=" + base64.StdEncoding.EncodeToString([]byte(`["X-B64: three"]`)), "other-tag",
	}
	start := time.Now()
	fc.SetInstances("web",
		consultest.Instance{ID: "web-1", Address: "127.0.0.2", Port: 8080, Tags: webTags},
		consultest.Instance{ID: "web-2", Address: "127.0.0.3", Port: 8080, Tags: webTags, Weight: 3},
	)
	u := recv(t, out, time.Second)
	t.Logf("tagged service routed in %v", time.Since(start))
	if got, want := describe(u.Upstreams), base+"; app.example.com /web=127.0.0.2:8080,127.0.0.3:8080"; got != want {
		t.Fatalf("table after the tagged service appeared = %q; want %q", got, want)
	}
	p := u.Upstreams.Hosts[1].Paths[1]
	pol := p.Policy
	if pol.RateLimit != 20 || pol.X4xxLimit != 10 || pol.ToHTTPS == nil || !*pol.ToHTTPS {
		t.Errorf("policy = rate %d 4xx %d to_https %v; want 20, 10, true", pol.RateLimit, pol.X4xxLimit, pol.ToHTTPS)
	}
	if want := []config.Header{{Name: "X-Client", Value: "one"}, {Name: "X-B64", Value: "three"}}; !slices.Equal(pol.ClientHeaders, want) {
		t.Errorf("client headers = %v; want %v", pol.ClientHeaders, want)
	}
	if want := []config.Header{{Name: "X-Server", Value: "two"}}; !slices.Equal(pol.ServerHeaders, want) {
		t.Errorf("server headers = %v; want %v", pol.ServerHeaders, want)
	}
	if p.Servers[1].Weight != 3 {
		t.Errorf("weight of web-2 = %d; want 3", p.Servers[1].Weight)
	}

	// An instance turning critical leaves; when none passes, the path
	// stays and answers 503.
	fc.SetCheck("web", "web-1", api.HealthCritical)
	if got, want := describe(recv(t, out, time.Second).Upstreams), base+"; app.example.com /web=127.0.0.3:8080"; got != want {
		t.Fatalf("table after web-1 turned critical = %q; want %q", got, want)
	}
	fc.SetCheck("web", "web-2", api.HealthWarning)
	if got, want := describe(recv(t, out, time.Second).Upstreams), base+"; app.example.com /web="; got != want {
		t.Fatalf("table with no passing instance = %q; want %q", got, want)
	}
	fc.SetCheck("web", "web-1", api.HealthPassing)
	if got, want := describe(recv(t, out, time.Second).Upstreams), base+"; app.example.com /web=127.0.0.2:8080"; got != want {
		t.Fatalf("table after web-1 recovered = %q; want %q", got, want)
	}

	// A service with bad tags is skipped with a log line naming it; a
	// good one beside it is routed.
	fc.SetInstances("bad", consultest.Instance{ID: "bad-1", Address: "127.0.0.9", Port: 80,
		Tags: []string{ConsulServiceTag, "aralez.host=bad.example.com", "aralez.rate=fast"}})
	fc.SetInstances("api", consultest.Instance{ID: "api-1", Address: "127.0.0.4", Port: 9000,
		Tags: []string{ConsulServiceTag}, Meta: map[string]string{"aralez_host": "api.example.com", "aralez_path": "/v1"}})
	want := base + "; app.example.com /web=127.0.0.2:8080; api.example.com /v1=127.0.0.4:9000"
	waitUpdate(t, out, 2*time.Second, want)
	waitFor(t, time.Second, "a log line naming the bad service", func() bool {
		l := logs.String()
		return strings.Contains(l, "consul service skipped: bad aralez tags") && strings.Contains(l, "service=bad") && strings.Contains(l, "aralez.rate")
	})

	// Removing the tag removes the route; deregistering the last tagged
	// service leaves the file table alone.
	fc.SetInstances("web",
		consultest.Instance{ID: "web-1", Address: "127.0.0.2", Port: 8080, Tags: []string{"aralez.host=app.example.com"}},
	)
	waitUpdate(t, out, time.Second, base+"; api.example.com /v1=127.0.0.4:9000")
	fc.SetInstances("api")
	waitUpdate(t, out, time.Second, base)

	counts := fc.Counts()
	if counts.Unknown != 0 {
		t.Errorf("requests to endpoints the test server does not emulate = %d; want 0", counts.Unknown)
	}
	if len(counts.Tokens) != 1 || counts.Tokens["tag-t0ken"] == 0 {
		t.Errorf("tokens seen = %v; want only tag-t0ken, on every call", counts.Tokens)
	}
	if strings.Contains(logs.String(), "tag-t0ken") {
		t.Errorf("log mentions the token: %s", logs.String())
	}
}

// waitUpdate reads updates until one describes as want, or fails after
// ceiling (several watchers may each emit an intermediate table).
func waitUpdate(t *testing.T, out <-chan Update, ceiling time.Duration, want string) *config.Upstreams {
	t.Helper()
	deadline := time.After(ceiling)
	got := ""
	for {
		select {
		case u := <-out:
			if got = describe(u.Upstreams); got == want {
				return u.Upstreams
			}
		case <-deadline:
			t.Fatalf("no table %q within %v; last %q", want, ceiling, got)
			return nil
		}
	}
}

func TestParseConsulTags(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name     string
		tags     []string
		meta     map[string]string
		host     string
		want     string // the path rendered by pathString
		untagged bool
		err      string
	}{
		{name: "minimal", tags: []string{ConsulServiceTag, "aralez.host=a.example.com"}, host: "a.example.com", want: "/"},
		{name: "not tagged", tags: []string{"aralez.host=a.example.com"}, untagged: true},
		{name: "every key", tags: []string{
			ConsulServiceTag, "aralez.host=a.example.com", "aralez.path=/x", "aralez.rate=5", "aralez.4xx_rate=6",
			"aralez.to_https=false", "aralez.auth=basic root:toor", "aralez.redirect=https://b.example.com",
			"aralez.client_header=A: 1", "aralez.client_header=B: 2", "aralez.server_header=C: 3",
			"aralez.server_headers=" + b64(`["D: 4","E: 5"]`), "aralez.unknown=ignored",
		}, host: "a.example.com", want: "/x rate=5 4xx=6 to_https=false auth=basic[root:toor] redirect=https://b.example.com client=[{A 1} {B 2}] server=[{C 3} {D 4} {E 5}]"},
		{name: "meta keys", tags: []string{"v2"}, meta: map[string]string{
			"aralez_service": "yes", "aralez_host": "m.example.com", "aralez.path": "/m", "aralez_client_headers": b64(`["M: 1"]`), "version": "2",
		}, host: "m.example.com", want: "/m client=[{M 1}]"},
		{name: "same value twice", tags: []string{ConsulServiceTag, "aralez.host=a.example.com"}, meta: map[string]string{"aralez_host": "a.example.com"}, host: "a.example.com", want: "/"},
		{name: "conflicting values", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.host=b.example.com"}, err: `aralez.host given twice: "a.example.com" and "b.example.com"`},
		{name: "no host", tags: []string{ConsulServiceTag, "aralez.path=/"}, err: "no aralez.host tag"},
		{name: "bad host", tags: []string{ConsulServiceTag, "aralez.host=a.example.com:80"}, err: "a host key has no port"},
		{name: "bad rate", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.rate=0"}, err: `aralez.rate="0": want a whole number`},
		{name: "bad bool", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.to_https=maybe"}, err: "want true or false"},
		{name: "bad header", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.client_header=no colon"}, err: "has no colon"},
		{name: "bad base64", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.client_headers=%%%"}, err: "not base64"},
		{name: "bad json", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.client_headers=" + b64(`{"a":1}`)}, err: "want a JSON array"},
		{name: "bad path", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.path=x"}, err: `must start with "/"`},
		{name: "unnormalized path", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.path=/a//b"}, err: "not in normal form"},
		{name: "path with a parameter", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.path=/a;v=1"}, err: "not in normal form"},
		{name: "bad redirect", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.redirect=ftp://x"}, err: "want an http:// or https:// URL"},
		{name: "bad auth", tags: []string{ConsulServiceTag, "aralez.host=a.example.com", "aralez.auth=magic x"}, err: "authorization"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			host, p, tagged, err := parseConsulTags(tt.tags, tt.meta)
			if tagged == tt.untagged {
				t.Fatalf("parseConsulTags() tagged = %v; want %v", tagged, !tt.untagged)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseConsulTags() error = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConsulTags() error = %v", err)
			}
			if tt.untagged {
				return
			}
			if host != tt.host || pathString(p) != tt.want {
				t.Errorf("parseConsulTags() = %q %q; want %q %q", host, pathString(p), tt.host, tt.want)
			}
		})
	}
}

// pathString renders a path's prefix and the policies set on it.
func pathString(p config.Path) string {
	var b strings.Builder
	b.WriteString(p.Prefix)
	pol := p.Policy
	if pol.RateLimit != 0 {
		b.WriteString(" rate=" + strconv.Itoa(pol.RateLimit))
	}
	if pol.X4xxLimit != 0 {
		b.WriteString(" 4xx=" + strconv.Itoa(pol.X4xxLimit))
	}
	if pol.ToHTTPS != nil {
		b.WriteString(" to_https=" + map[bool]string{true: "true", false: "false"}[*pol.ToHTTPS])
	}
	if a := pol.Authorization; a != nil {
		b.WriteString(" auth=" + a.Type + "[" + strings.Join(a.Data, ",") + "]")
	}
	if p.RedirectTo != "" {
		b.WriteString(" redirect=" + p.RedirectTo)
	}
	if len(pol.ClientHeaders) > 0 {
		b.WriteString(" client=" + fmtHeaders(pol.ClientHeaders))
	}
	if len(pol.ServerHeaders) > 0 {
		b.WriteString(" server=" + fmtHeaders(pol.ServerHeaders))
	}
	return b.String()
}

func fmtHeaders(hs []config.Header) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = "{" + h.Name + " " + h.Value + "}"
	}
	return "[" + strings.Join(parts, " ") + "]"
}
