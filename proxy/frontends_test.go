package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
	edgetls "github.com/aralez-go/aralez/tls"
)

// fronts is a proxy serving one engine on a cleartext listener (Serve:
// HTTP/1.1 and h2c) and a TLS listener (ServeTLS: h2 and HTTP/1.1).
type fronts struct {
	e     *Engine
	reg   *Registry
	plain string // cleartext listener address
	tls   string // TLS listener address
}

// writeTestCert writes a self-signed ECDSA pair NAME.crt + NAME.key valid
// for localhost, *.test, app.test and 127.0.0.1 into dir.
func writeTestCert(t testing.TB, dir, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"localhost", "*.test", "app.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IsCA:                  true, // self-signed: usable as its own root in verify tests
		BasicConstraintsValid: true,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testTLSConfig returns a server tls.Config for a fresh self-signed pair.
func testTLSConfig(t testing.TB, nextProtos []string) *tls.Config {
	t.Helper()
	dir := t.TempDir()
	writeTestCert(t, dir, "srv")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "srv.crt"), filepath.Join(dir, "srv.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: nextProtos}
}

// startFronts compiles cfg and serves it with Serve and ServeTLS on
// 127.0.0.1, sharing one fasthttp server, as cmd/aralez does.
func startFronts(t testing.TB, cfg *config.Config, o Options, uo UpstreamOptions, lo ListenOptions) *fronts {
	t.Helper()
	e, reg := newTestEngine(t, cfg, o, uo)
	fast := NewFastServer(e, ServerOptions{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second, MaxHeaderBytes: 8192})
	// Idle fasthttp workers exit quickly, so goroutine counts settle fast.
	fast.MaxIdleWorkerDuration = 200 * time.Millisecond
	dir := t.TempDir()
	writeTestCert(t, dir, "a")
	store, err := edgetls.NewStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { errc <- Serve(ctx, pln, fast, e, lo) }()
	go func() { errc <- ServeTLS(ctx, tln, store, edgetls.GradeMedium, fast, e, lo) }()
	t.Cleanup(func() {
		// Idle client connections would hold the HTTP/2 drain for the
		// server's GOAWAY grace period; in-use ones are not touched.
		for _, fe := range frontEnds {
			fe.client.CloseIdleConnections()
		}
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = fast.ShutdownWithContext(sctx)
		reg.CloseTunnels()
		for range 2 {
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Serve returned %v; want nil after shutdown", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return within 10 s of shutdown")
			}
		}
	})
	return &fronts{e: e, reg: reg, plain: pln.Addr().String(), tls: tln.Addr().String()}
}

// Clients of each front end. Redirects are not followed.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func h1Client() *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirect,
		Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirect,
		Transport: &http.Transport{Protocols: &p}}
}

func h2Client() *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirect,
		Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// frontEnd is one way to reach the proxy in the shared table.
type frontEnd struct {
	name   string
	client *http.Client
	base   func(f *fronts) string
	proto  int    // HTTP major version the proxy should see
	xfp    string // expected X-Forwarded-Proto
}

var frontEnds = []frontEnd{
	{"http1", h1Client(), func(f *fronts) string { return "http://" + f.plain }, 1, "http"},
	{"h2c", h2cClient(), func(f *fronts) string { return "http://" + f.plain }, 2, "http"},
	{"h2", h2Client(), func(f *fronts) string { return "https://" + f.tls }, 2, "https"},
	{"https1", h1Client(), func(f *fronts) string { return "https://" + f.tls }, 1, "https"},
}

// doReq sends one request; base is scheme://host and target the raw
// request target, sent byte for byte.
func doReq(t *testing.T, c *http.Client, method, base, target string, hdr map[string]string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		req.URL.Opaque, req.URL.RawQuery = target[:i], target[i+1:]
	}
	url := base + target
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header[k] = append(req.Header[k], v) // raw: keys differing in case stay separate lines
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, trimRequestID(string(b))
}

// trimRequestID drops the "request_id: <id>" line the proxy adds to the
// bodies of its own 5xx answers; the id differs per request.
func trimRequestID(body string) string {
	if i := strings.Index(body, "request_id: "); i >= 0 && strings.HasSuffix(body, "\n") && !strings.Contains(body[i:len(body)-1], "\n") {
		return body[:i]
	}
	return body
}

// TestFrontEndsSameCases runs one table through the HTTP/1.1 (fasthttp)
// and HTTP/2 (net/http, TLS and h2c) front ends and expects the same
// answers and the same upstream requests from each (issue 5).
func TestFrontEndsSameCases(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Up-Private")
		w.Header().Set("X-Up-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Served-Via", "upstream")
		w.Header().Set("X-Upstream", "a")
		if strings.HasPrefix(r.URL.Path, "/untyped") {
			// No Content-Type at all (net/http would sniff one).
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html>ok "+r.URL.RequestURI())
			return
		}
		io.WriteString(w, "ok "+r.URL.RequestURI())
	})
	adm, as := newUpstream(t, "admin", nil)
	dead := closedAddr(t)

	cfg := &config.Config{}
	cfg.Upstreams.Policy.ServerHeaders = []config.Header{{Name: "X-Proxy-From", Value: "global"}}
	cfg.Upstreams.Policy.ClientHeaders = []config.Header{{Name: "X-Served-Via", Value: "aralez"}}
	app := config.Host{Name: "app.test", Paths: []config.Path{
		{Prefix: "/", Servers: []config.Server{{Address: addrOf(up), Weight: 1}}},
		{Prefix: "/admin", Servers: []config.Server{{Address: addrOf(adm), Weight: 1}}},
	}}
	secure := oneRoute("secure.test", "/", addrOf(up))
	secure.Paths[0].Policy.ToHTTPS = boolp(true)
	moved := config.Host{Name: "old.test", Paths: []config.Path{{Prefix: "/", RedirectTo: "https://new.test"}}}
	basic := oneRoute("basic.test", "/", addrOf(up))
	basic.Paths[0].Policy.Authorization = &config.Auth{Type: "basic", Data: []string{"u:p"}}
	deny := oneRoute("deny.test", "/", addrOf(up))
	deny.Paths[0].Policy.Deny = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	apikey := oneRoute("apikey.test", "/", addrOf(up))
	apikey.Paths[0].Policy.Authorization = &config.Auth{Type: "apikey", Data: []string{"k1"}}
	jwtHost := oneRoute("jwt.test", "/", addrOf(up))
	jwtHost.Paths[0].Policy.Authorization = &config.Auth{Type: "jwt", Data: []string{"jwt-key"}}
	authSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			w.Header().Set("Remote-User", "alice")
		case "Bearer login":
			w.Header().Set("Location", "https://login.test/")
			w.WriteHeader(302)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="sso"`)
			w.Header().Set("X-Login", "https://login.test/")
			w.WriteHeader(401)
			io.WriteString(w, "login at login.test\n")
		}
	}))
	t.Cleanup(authSrv.Close)
	fwd := oneRoute("fwd.test", "/", addrOf(up))
	fwd.Paths[0].Policy.Authorization = &config.Auth{Type: "forward", Data: []string{authSrv.URL}}
	// Issue 14: exact routes (Kubernetes' Exact) beat every prefix of
	// their host; Kubernetes' Prefix "/docs/" arrives as "/docs".
	exactHost := config.Host{Name: "exact.test", Paths: []config.Path{
		{Prefix: "/", Servers: []config.Server{{Address: addrOf(up), Weight: 1}}},
		{Prefix: "/api", Servers: []config.Server{{Address: addrOf(up), Weight: 1}}},
		{Prefix: "/api", Match: config.MatchExact, Servers: []config.Server{{Address: addrOf(adm), Weight: 1}}},
		{Prefix: "/docs", Servers: []config.Server{{Address: addrOf(adm), Weight: 1}}},
	}}
	cfg.Upstreams.Hosts = []config.Host{app, secure, moved, basic, deny, oneRoute("dead.test", "/", dead), exactHost,
		{Name: "empty.test", Paths: []config.Path{{Prefix: "/x", RedirectTo: "https://x.test"}}},
		apikey, jwtHost, fwd}
	// One rate-limited host per front end: the table runs them in turn
	// from the same client address.
	for _, fe := range frontEnds {
		limited := oneRoute("limit-"+fe.name+".test", "/", addrOf(up))
		limited.Paths[0].Policy.RateLimit = 1
		cfg.Upstreams.Hosts = append(cfg.Upstreams.Hosts, limited)
	}
	f := startFronts(t, cfg, Options{TLSPort: 8443, MaxURIBytes: 2048}, UpstreamOptions{}, ListenOptions{})
	goodJWT := mintJWT(t, "jwt-key", time.Now().Add(time.Hour))

	type want struct {
		status   int
		body     string
		location string
		hdr      map[string]string // response headers
		up       map[string]string // upstream request headers; "" = absent
		upURI    string
	}
	tests := []struct {
		name   string
		method string
		target string
		hdr    map[string]string
		want   want
		tls    *want // when different over TLS
		h1only bool  // HTTP/2 servers reset the stream before routing
	}{
		{"forward with header rules", "GET", "/x/../y?b=2&a=%20", map[string]string{"Host": "app.test", "X-Forwarded-For": "6.6.6.6", "X-Proxy-From": "client"},
			want{status: 200, body: "ok /y?b=2&a=%20", upURI: "/y?b=2&a=%20",
				hdr: map[string]string{"X-Served-Via": "aralez", "X-Upstream": "a", "X-Up-Private": "", "Keep-Alive": ""},
				up:  map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "app.test", "X-Proxy-From": "global"}}, nil, false},
		{"longest prefix on normalized path", "GET", "/public/%2e%2e/admin/x", map[string]string{"Host": "APP.test"},
			want{status: 200, body: "ok from admin /admin/x", upURI: "/admin/x"}, nil, false},
		{"no route", "GET", "/", map[string]string{"Host": "nope.test"}, want{status: 404, body: "404 Not Found\n"}, nil, false},
		{"exact path beats its prefix", "GET", "/x/../api?q=1", map[string]string{"Host": "exact.test"},
			want{status: 200, body: "ok from admin /api?q=1", upURI: "/api?q=1"}, nil, false},
		{"below an exact path the prefix routes", "GET", "/api/v1", map[string]string{"Host": "exact.test"},
			want{status: 200, body: "ok /api/v1", upURI: "/api/v1"}, nil, false},
		{"exact path with a trailing slash is another path", "GET", "/api/", map[string]string{"Host": "exact.test"},
			want{status: 200, body: "ok /api/", upURI: "/api/"}, nil, false},
		{"kubernetes prefix without its trailing slash", "GET", "/docs", map[string]string{"Host": "exact.test"},
			want{status: 200, body: "ok from admin /docs", upURI: "/docs"}, nil, false},
		{"kubernetes prefix on segments", "GET", "/docsx", map[string]string{"Host": "exact.test"},
			want{status: 200, body: "ok /docsx", upURI: "/docsx"}, nil, false},
		{"path without route", "GET", "/y", map[string]string{"Host": "empty.test"}, want{status: 404, body: "404 Not Found\n"}, nil, false},
		{"to_https", "GET", "/a/b?x=1", map[string]string{"Host": "secure.test"},
			want{status: 301, body: "301 Moved Permanently\n", location: "https://secure.test:8443/a/b?x=1"},
			&want{status: 200, body: "ok /a/b?x=1", upURI: "/a/b?x=1"}, false},
		{"redirect_to", "GET", "/p/../q?z=%20", map[string]string{"Host": "old.test"},
			want{status: 301, body: "301 Moved Permanently\n", location: "https://new.test/q?z=%20"}, nil, false},
		{"refused upstream", "GET", "/", map[string]string{"Host": "dead.test"}, want{status: 502, body: "502 Bad Gateway\n"}, nil, false},
		{"bad escape", "GET", "/%zz", map[string]string{"Host": "app.test"}, want{status: 400, body: "400 Bad Request\n"}, nil, true},
		{"long uri", "GET", "/" + strings.Repeat("a", 3000), map[string]string{"Host": "app.test"}, want{status: 414, body: "414 Request URI Too Long\n"}, nil, false},
		{"basic auth missing", "GET", "/b", map[string]string{"Host": "basic.test"},
			want{status: 401, body: "401 Unauthorized\n", hdr: map[string]string{"Www-Authenticate": `Basic realm="aralez"`}}, nil, false},
		{"basic auth ok", "GET", "/b", map[string]string{"Host": "basic.test", "Authorization": "Basic dTpw"},
			want{status: 200, body: "ok /b", upURI: "/b", up: map[string]string{"Authorization": ""}}, nil, false},
		{"denied client", "GET", "/d", map[string]string{"Host": "deny.test"}, want{status: 403, body: "403 Forbidden\n"}, nil, false},
		{"post body", "POST", "/echo", map[string]string{"Host": "app.test", "Content-Type": "text/plain"}, want{status: 200, body: "ok /echo", upURI: "/echo"}, nil, false},
		// A body without Content-Type is forwarded without one, both ways:
		// no default type, no sniffing (an untyped upload sniffed as
		// text/html would be rendered by browsers; RFC 9110 §8.3).
		{"untyped request body", "POST", "/echo", map[string]string{"Host": "app.test"},
			want{status: 200, body: "ok /echo", upURI: "/echo", up: map[string]string{"Content-Type": ""}}, nil, false},
		{"untyped response", "GET", "/untyped", map[string]string{"Host": "app.test"},
			want{status: 200, body: "<html>ok /untyped", upURI: "/untyped", hdr: map[string]string{"Content-Type": ""}}, nil, false},
		// Issue 10: the same forwarding-header rule on every front end.
		// From an untrusted peer every client copy is removed, all lines,
		// any case, and ours are set; "_" spellings of protected names go.
		{"untrusted forwarding headers", "GET", "/f", map[string]string{"Host": "app.test",
			"X-Forwarded-For": "6.6.6.6", "x-forwarded-for": "7.7.7.7", "X-Forwarded-Proto": "gopher",
			"X-Forwarded-Host": "evil.test", "X-Forwarded-Port": "1", "X-Forwarded-Prefix": "/evil",
			"X-Forwarded-Server": "evil", "X-Real-IP": "6.6.6.6", "Forwarded": "for=6.6.6.6",
			"X_Forwarded_For": "8.8.8.8", "Remote_User": "x", "X-Request-Id": "client-id"},
			want{status: 200, body: "ok /f", upURI: "/f", up: map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "app.test", "X-Forwarded-Port": "",
				"X-Forwarded-Prefix": "", "X-Forwarded-Server": "", "X-Real-Ip": "", "Forwarded": "",
				"X_forwarded_for": "", "Remote_user": "", "X-Forwarded-Proto": "{xfp}", "X-Request-Id": "{rid}"}}, nil, false},
		{"connection-nominated request header", "GET", "/c", map[string]string{"Host": "app.test",
			"Connection": "X-Hop, keep-alive", "X-Hop": "secret", "Keep-Alive": "timeout=5", "Te": "gzip", "Upgrade": "h2c"},
			want{status: 200, body: "ok /c", upURI: "/c", up: map[string]string{"X-Hop": "", "Keep-Alive": "", "Te": "", "Upgrade": "", "Connection": ""}}, nil, true},
		{"apikey ok and consumed", "GET", "/k", map[string]string{"Host": "apikey.test", "X-Api-Key": "k1"},
			want{status: 200, body: "ok /k", upURI: "/k", up: map[string]string{"X-Api-Key": ""}}, nil, false},
		{"apikey wrong", "GET", "/k", map[string]string{"Host": "apikey.test", "X-Api-Key": "k2"},
			want{status: 401, body: "401 Unauthorized\n"}, nil, false},
		{"jwt ok and consumed", "GET", "/j?araleztoken=" + goodJWT + "&a=1", map[string]string{"Host": "jwt.test"},
			want{status: 200, body: "ok /j?a=1", upURI: "/j?a=1", up: map[string]string{"Authorization": ""}}, nil, false},
		{"jwt missing", "GET", "/j", map[string]string{"Host": "jwt.test"},
			want{status: 401, body: "401 Unauthorized\n", hdr: map[string]string{"Www-Authenticate": `Bearer realm="aralez"`}}, nil, false},
		{"forward auth allow", "GET", "/a", map[string]string{"Host": "fwd.test", "Authorization": "Bearer good", "Remote-User": "mallory"},
			want{status: 200, body: "ok /a", upURI: "/a", up: map[string]string{"Remote-User": "alice"}}, nil, false},
		{"forward auth redirect", "GET", "/a", map[string]string{"Host": "fwd.test", "Authorization": "Bearer login"},
			want{status: 302, body: "302 Found\n", location: "https://login.test/"}, nil, false},
		// Issue 11: the auth service's 401 is relayed, headers and body.
		{"forward auth deny", "GET", "/a", map[string]string{"Host": "fwd.test", "Authorization": "Bearer bad"},
			want{status: 401, body: "login at login.test\n", hdr: map[string]string{"Www-Authenticate": `Bearer realm="sso"`, "X-Login": "https://login.test/"}}, nil, false},
		{"rate limit first", "GET", "/r", map[string]string{"Host": "limit-{fe}.test"},
			want{status: 200, body: "ok /r", upURI: "/r"}, nil, false},
		{"rate limit hit", "GET", "/r", map[string]string{"Host": "limit-{fe}.test"},
			want{status: 429, body: "429 Too Many Requests\n", hdr: map[string]string{"Retry-After": "1"}}, nil, false},
	}
	for _, fe := range frontEnds {
		for _, tt := range tests {
			t.Run(fe.name+"/"+tt.name, func(t *testing.T) {
				if tt.h1only && fe.proto == 2 {
					t.Skip("not expressible in HTTP/2 (an invalid :path, or connection-specific fields, RFC 9113 §8.2.2)")
				}
				var body io.Reader
				if tt.method == "POST" {
					body = strings.NewReader("hello")
				}
				hdr := make(map[string]string, len(tt.hdr))
				for k, v := range tt.hdr {
					hdr[k] = strings.ReplaceAll(v, "{fe}", fe.name)
				}
				before := s.hits.Load() + as.hits.Load()
				resp, got := doReq(t, fe.client, tt.method, fe.base(f), tt.target, hdr, body)
				if resp.ProtoMajor != fe.proto {
					t.Fatalf("response protocol = HTTP/%d; want HTTP/%d", resp.ProtoMajor, fe.proto)
				}
				w := tt.want
				if tt.tls != nil && fe.xfp == "https" {
					w = *tt.tls
				}
				// Every response carries X-Request-Id; the proxy's own
				// answers also name it in the body (issue 6).
				rid := resp.Header.Get("X-Request-Id")
				if len(rid) != 32 {
					t.Errorf("X-Request-Id = %q; want 32 hex digits", rid)
				}
				if line := "request_id: " + rid + "\n"; rid != "" && strings.HasSuffix(got, line) {
					got = strings.TrimSuffix(got, line)
				} else if strings.Contains(got, "request_id:") {
					t.Errorf("body %q names another request id than %q", got, rid)
				}
				if resp.StatusCode != w.status || got != w.body {
					t.Fatalf("%s %s = %d %q; want %d %q", tt.method, tt.target, resp.StatusCode, got, w.status, w.body)
				}
				if l := resp.Header.Get("Location"); l != w.location {
					t.Errorf("Location = %q; want %q", l, w.location)
				}
				for k, v := range w.hdr {
					if g := strings.Join(resp.Header.Values(k), ","); g != v {
						t.Errorf("response %s = %q; want %q", k, g, v)
					}
				}
				after := s.hits.Load() + as.hits.Load()
				if w.upURI == "" {
					if after != before {
						t.Errorf("upstream hits went %d → %d; want no upstream request", before, after)
					}
					return
				}
				var r *http.Request
				if strings.HasPrefix(w.upURI, "/admin") || strings.HasPrefix(w.body, "ok from admin") {
					r = as.last()
				} else {
					r = s.last()
				}
				if r.RequestURI != w.upURI {
					t.Errorf("upstream RequestURI = %q; want %q", r.RequestURI, w.upURI)
				}
				if g := r.Header.Get("X-Forwarded-Proto"); g != fe.xfp {
					t.Errorf("upstream X-Forwarded-Proto = %q; want %q", g, fe.xfp)
				}
				wantVia := "1.1 aralez"
				if fe.proto == 2 {
					wantVia = "2 aralez"
				}
				if g := r.Header.Get("Via"); g != wantVia {
					t.Errorf("upstream Via = %q; want %q", g, wantVia)
				}
				for k, v := range w.up {
					v = strings.ReplaceAll(strings.ReplaceAll(v, "{rid}", rid), "{xfp}", fe.xfp)
					if g := strings.Join(r.Header.Values(k), ","); g != v {
						t.Errorf("upstream %s = %q; want %q", k, g, v)
					}
				}
			})
		}
	}
}
