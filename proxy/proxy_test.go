package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
)

// seen records what an upstream received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
	hits atomic.Int64
}

func (s *seen) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return nil
	}
	return s.reqs[len(s.reqs)-1]
}

// newUpstream starts a real HTTP server on 127.0.0.1 that records each
// request and answers with h (or "ok from <name>").
func newUpstream(t *testing.T, name string, h http.HandlerFunc) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(r.Context()))
		s.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("X-Upstream", name)
		fmt.Fprintf(w, "ok from %s %s", name, r.URL.RequestURI())
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func addrOf(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

// newTestEngine compiles cfg into a new Engine with test-sized upstream
// timeouts (5 s, connect 2 s) unless uo sets them.
func newTestEngine(t testing.TB, cfg *config.Config, o Options, uo UpstreamOptions) (*Engine, *Registry) {
	t.Helper()
	if uo.Timeout == 0 {
		uo.Timeout = 5 * time.Second
	}
	if uo.ConnectTimeout == 0 {
		uo.ConnectTimeout = 2 * time.Second
	}
	reg := NewRegistry(uo)
	e := NewEngine(reg, o)
	snap, err := Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	e.Swap(snap)
	return e, reg
}

// startProxy compiles cfg, serves it on 127.0.0.1:0 with the fasthttp
// front end and returns the engine and the listener address.
func startProxy(t *testing.T, cfg *config.Config, o Options, uo UpstreamOptions) (*Engine, string) {
	t.Helper()
	e, _ := newTestEngine(t, cfg, o, uo)
	srv := NewFastServer(e, ServerOptions{ReadTimeout: 120 * time.Second, WriteTimeout: 120 * time.Second, IdleTimeout: 10 * time.Second, MaxHeaderBytes: 8192})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() })
	return e, ln.Addr().String()
}

func oneRoute(host, prefix string, servers ...string) config.Host {
	p := config.Path{Prefix: prefix}
	for _, s := range servers {
		p.Servers = append(p.Servers, config.Server{Address: s, Weight: 1})
	}
	return config.Host{Name: host, Paths: []config.Path{p}}
}

func boolp(b bool) *bool { return &b }

var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// raw sends a raw request on a new connection and returns the whole
// response as text (read until the proxy closes or 2 s pass).
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

func TestForwardHeadersBothWays(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Up-Private")
		w.Header().Set("X-Up-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Served-Via", "upstream")
		w.Header().Set("X-Upstream", "a")
		io.WriteString(w, "hello")
	})
	cfg := &config.Config{}
	cfg.Upstreams.Policy.ServerHeaders = []config.Header{{Name: "X-Proxy-From", Value: "global"}, {Name: "X-Global", Value: "1"}}
	cfg.Upstreams.Policy.ClientHeaders = []config.Header{{Name: "X-Served-Via", Value: "aralez"}}
	h := oneRoute("app.test", "/", addrOf(up))
	h.Paths[0].Policy.ServerHeaders = []config.Header{{Name: "X-Proxy-From", Value: "path"}}
	cfg.Upstreams.Hosts = []config.Host{h}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})

	resp, body := get(t, "http://"+addr+"/x?b=2&a=1&a=%20", map[string]string{
		"Host":              "App.Test:8080",
		"Connection":        "X-Secret, X-Forwarded-For, Via",
		"X-Secret":          "1",
		"Keep-Alive":        "300",
		"Proxy-Connection":  "keep-alive",
		"Upgrade":           "h2c",
		"TE":                "gzip",
		"X-Forwarded-For":   "6.6.6.6",
		"X-Forwarded-Proto": "https",
		"X-Proxy-From":      "client",
	})
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("GET = %d %q; want 200 hello", resp.StatusCode, body)
	}
	r := s.last()
	checks := []struct{ name, got, want string }{
		{"Host", r.Host, "App.Test:8080"},
		{"RequestURI", r.RequestURI, "/x?b=2&a=1&a=%20"},
		{"X-Forwarded-For", strings.Join(r.Header.Values("X-Forwarded-For"), ","), "127.0.0.1"},
		{"X-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"), "http"},
		{"X-Forwarded-Host", r.Header.Get("X-Forwarded-Host"), "App.Test:8080"},
		{"Via", r.Header.Get("Via"), "1.1 aralez"},
		{"X-Proxy-From", strings.Join(r.Header.Values("X-Proxy-From"), ","), "path"},
		{"X-Global", r.Header.Get("X-Global"), "1"},
		{"X-Secret", r.Header.Get("X-Secret"), ""},
		{"Keep-Alive", r.Header.Get("Keep-Alive"), ""},
		{"Proxy-Connection", r.Header.Get("Proxy-Connection"), ""},
		{"Upgrade", r.Header.Get("Upgrade"), ""},
		{"TE", r.Header.Get("TE"), ""},
		{"resp X-Up-Private", resp.Header.Get("X-Up-Private"), ""},
		{"resp Keep-Alive", resp.Header.Get("Keep-Alive"), ""},
		{"resp X-Served-Via", strings.Join(resp.Header.Values("X-Served-Via"), ","), "aralez"},
		{"resp X-Upstream", resp.Header.Get("X-Upstream"), "a"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q; want %q", c.name, c.got, c.want)
		}
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	secure := oneRoute("secure.test", "/", addrOf(up))
	secure.Paths[0].Policy.ToHTTPS = boolp(true)
	moved := config.Host{Name: "old.test", Paths: []config.Path{{Prefix: "/", RedirectTo: "https://new.test"}}}
	cfg.Upstreams.Hosts = []config.Host{secure, moved}
	_, addr := startProxy(t, cfg, Options{TLSPort: 8443}, UpstreamOptions{})

	resp, _ := get(t, "http://"+addr+"/a/b?x=1&y", map[string]string{"Host": "secure.test"})
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://secure.test:8443/a/b?x=1&y" {
		t.Errorf("to_https = %d %q; want 301 https://secure.test:8443/a/b?x=1&y", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(t, "http://"+addr+"/p/../q?z=%20", map[string]string{"Host": "old.test"})
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://new.test/q?z=%20" {
		t.Errorf("redirect_to = %d %q; want 301 https://new.test/q?z=%%20", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := s.hits.Load(); n != 0 {
		t.Errorf("upstream hits = %d; want 0", n)
	}
}

func TestRoutingOnForwardedPath(t *testing.T) {
	t.Parallel()
	pub, ps := newUpstream(t, "public", nil)
	adm, as := newUpstream(t, "admin", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{{Name: "DEFAULT", Paths: []config.Path{
		{Prefix: "/", Servers: []config.Server{{Address: addrOf(pub), Weight: 1}}},
		{Prefix: "/admin", Servers: []config.Server{{Address: addrOf(adm), Weight: 1}}},
	}}}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	for _, target := range []string{"/public/../admin/x", "/%61dmin/x", "//admin//x", "/public/%2e%2e/admin/x"} {
		got := raw(t, addr, "GET "+target+" HTTP/1.1\r\nHost: any.test\r\nConnection: close\r\n\r\n")
		if got != "200 ok from admin /admin/x" {
			t.Errorf("GET %s = %q; want the admin route with path /admin/x", target, got)
		}
	}
	if got := raw(t, addr, "GET /a%2Fdmin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); got != "200 ok from public /a%2Fdmin" {
		t.Errorf("encoded slash = %q; want public route, path kept encoded", got)
	}
	if ps.hits.Load() != 1 || as.hits.Load() != 4 {
		t.Errorf("hits public=%d admin=%d; want 1 and 4", ps.hits.Load(), as.hits.Load())
	}
}

func TestErrorsAndMalformed(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	slow, _ := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{
		oneRoute("ok.test", "/", addrOf(up)),
		oneRoute("dead.test", "/", deadAddr),
		oneRoute("slow.test", "/", addrOf(slow)),
	}
	_, addr := startProxy(t, cfg, Options{MaxURIBytes: 2048}, UpstreamOptions{Timeout: 300 * time.Millisecond})
	tests := []struct{ name, req, want string }{
		{"no route", "GET / HTTP/1.1\r\nHost: nope.test\r\n\r\n", "404 404 Not Found\n"},
		{"refused", "GET / HTTP/1.1\r\nHost: dead.test\r\n\r\n", "502 502 Bad Gateway\n"},
		{"timeout", "GET / HTTP/1.1\r\nHost: slow.test\r\n\r\n", "504 504 Gateway Timeout\n"},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: ok.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 400 Bad Request\n"},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: ok.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400"},
		{"invalid CL", "POST / HTTP/1.1\r\nHost: ok.test\r\nContent-Length: 1x\r\n\r\nab", "400"},
		{"missing host 1.1", "GET / HTTP/1.1\r\n\r\n", "400 400 Bad Request\n"},
		{"bad host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "400 400 Bad Request\n"},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: ok.test\r\n\r\n", "400 400 Bad Request\n"},
		{"long uri", "GET /" + strings.Repeat("a", 3000) + " HTTP/1.1\r\nHost: ok.test\r\n\r\n", "414 414 Request URI Too Long\n"},
		{"huge header", "GET / HTTP/1.1\r\nHost: ok.test\r\nX-Big: " + strings.Repeat("b", 10000) + "\r\n\r\n", "431"},
		{"expect on missing route", "POST / HTTP/1.1\r\nHost: nope.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", "404"},
	}
	for _, tt := range tests {
		got := raw(t, addr, tt.req)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: got %q; want prefix %q", tt.name, got, tt.want)
		}
	}
	if n := s.hits.Load(); n != 0 {
		t.Errorf("upstream ok.test hits = %d; want 0 (malformed requests never reach it)", n)
	}
}

func TestHTTP10WithoutHostGoesToDefault(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "def", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	if got := raw(t, addr, "GET /x HTTP/1.0\r\n\r\n"); got != "200 ok from def /x" {
		t.Fatalf("HTTP/1.0 without Host = %q; want the DEFAULT route", got)
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	a, sa := newUpstream(t, "a", nil)
	b, sb := newUpstream(t, "b", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(a), addrOf(b))}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	for i := 0; i < 10; i++ {
		if resp, _ := get(t, "http://"+addr+"/", nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if sa.hits.Load() != 5 || sb.hits.Load() != 5 {
		t.Fatalf("round robin split = %d:%d; want 5:5", sa.hits.Load(), sb.hits.Load())
	}
}

// TestSecurityRegressions covers findings of the first QA pass: an
// absolute-form target must not route on one host and forward another's
// Host; an encoded slash must not reach a protected route's content
// through the "/" route; header names must be tokens; spoofable client
// address headers are dropped.
func TestSecurityRegressions(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	priv := oneRoute("priv.test", "/", addrOf(up))
	priv.Paths[0].Policy.Authorization = &config.Auth{Type: "apikey", Data: []string{"k"}}
	site := config.Host{Name: "site.test", Paths: []config.Path{
		{Prefix: "/", Servers: []config.Server{{Address: addrOf(up), Weight: 1}}},
		{Prefix: "/admin", Servers: []config.Server{{Address: addrOf(up), Weight: 1}},
			Policy: config.Policy{Authorization: &config.Auth{Type: "apikey", Data: []string{"k"}}}},
	}}
	cfg.Upstreams.Hosts = []config.Host{priv, site, oneRoute("a.test", "/", addrOf(up))}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})

	// Absolute-form: routed on a.test, so forwarded with Host a.test.
	if got := raw(t, addr, "GET http://a.test/x HTTP/1.1\r\nHost: priv.test\r\nConnection: close\r\n\r\n"); got != "200 ok from a /x" {
		t.Fatalf("absolute-form = %q", got)
	}
	if r := s.last(); r.Host != "a.test" {
		t.Errorf("absolute-form forwarded Host %q; want a.test (RFC 9112 §3.2.2)", r.Host)
	}
	before := s.hits.Load()
	for _, target := range []string{"/admin%2fsecret.txt", "/admin%2Fsecret.txt", "/public/..%2fadmin/secret.txt", "/admin%5csecret.txt", "/public/..\\admin/x"} {
		if got := raw(t, addr, "GET "+target+" HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "400 ") {
			t.Errorf("GET %s = %q; want 400", target, got)
		}
	}
	// An encoded slash that stays on the same route is fine.
	if got := raw(t, addr, "GET /files/a%2Fb HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"); got != "200 ok from a /files/a%2Fb" {
		t.Errorf("same-route encoded slash = %q", got)
	}
	if got := raw(t, addr, "GET / HTTP/1.1\r\nHost: a.test\r\nFoo Bar: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "400 ") {
		t.Errorf("header name with a space = %q; want 400", got)
	}
	if n := s.hits.Load(); n != before+1 {
		t.Errorf("upstream hits %d; want %d (rejected requests never forwarded)", n, before+1)
	}
	get(t, "http://"+addr+"/", map[string]string{"Host": "a.test", "Forwarded": "for=6.6.6.6", "X-Real-IP": "6.6.6.6", "HTTP2-Settings": "AAMAAABkAAQAAP__"})
	if r := s.last(); r.Header.Get("Forwarded") != "" || r.Header.Get("X-Real-IP") != "" || r.Header.Get("HTTP2-Settings") != "" {
		t.Errorf("spoofable or hop-by-hop headers forwarded: %v", r.Header)
	}
}

// TestSlowHeadersCut checks that read_header_timeout bounds a client that
// starts a request and then trickles or stops (slowloris).
func TestSlowHeadersCut(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	reg := NewRegistry(UpstreamOptions{Timeout: 5 * time.Second})
	e := NewEngine(reg, Options{})
	snap, err := Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	e.Swap(snap)
	srv := NewFastServer(e, ServerOptions{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 256)
	n, _ := c.Read(buf) // 408 or a close
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("partial headers held the connection %v; want about read_header_timeout", d)
	}
	if n > 0 && !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 408") {
		t.Errorf("answer %q; want 408 or a close", buf[:n])
	}
}

// drainingUpstream starts a backend that reads each request body whole
// and answers "ok", and returns it with a config routing every request
// to it.
func drainingUpstream(t *testing.T) (*httptest.Server, *config.Config) {
	t.Helper()
	up, _ := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	return up, cfg
}

// TestMalformedChunkedBody: a broken chunked request body is the
// client's fault: 400, not 502, and the backend stays in rotation.
func TestMalformedChunkedBody(t *testing.T) {
	t.Parallel()
	up, cfg := drainingUpstream(t)
	e, addr := startProxy(t, cfg, Options{BodyBufferBytes: 16}, UpstreamOptions{})
	got := raw(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
	if !strings.HasPrefix(got, "400 ") {
		t.Errorf("malformed chunk = %q; want 400", got)
	}
	if b := e.Registry().Backends().Lookup(addrOf(up)); b.Status().Failures != 0 {
		t.Errorf("backend blamed for the client's body: %+v", b.Status())
	}
}
