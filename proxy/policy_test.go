package proxy

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aralez-go/aralez/config"
)

func mintJWT(t *testing.T, key string, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": exp.Unix(), "sub": "t"}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAuthPolicies(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	authSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			w.Header().Set("Remote-User", "alice")
			w.WriteHeader(200)
		case "Bearer login":
			w.Header().Set("Location", "https://login.test/")
			w.WriteHeader(302)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="sso"`)
			w.WriteHeader(401)
		}
	}))
	t.Cleanup(authSrv.Close)

	cfg := &config.Config{}
	cfg.Main.MasterKey = "master-secret"
	cfg.Upstreams.Policy.Authorization = &config.Auth{Type: "apikey", Data: []string{"global-key"}}
	mk := func(prefix string, a *config.Auth) config.Path {
		return config.Path{Prefix: prefix, Servers: []config.Server{{Address: addrOf(up), Weight: 1}}, Policy: config.Policy{Authorization: a}}
	}
	cfg.Upstreams.Hosts = []config.Host{{Name: "DEFAULT", Paths: []config.Path{
		mk("/", nil),
		mk("/basic", &config.Auth{Type: "basic", Data: []string{"user:pass"}}),
		mk("/jwt", &config.Auth{Type: "jwt"}),
		mk("/jwt2", &config.Auth{Type: "jwt", Data: []string{"other-key"}}),
		mk("/fwd", &config.Auth{Type: "forward", Data: []string{authSrv.URL}}),
	}}}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	base := "http://" + addr
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:pass"))
	good := mintJWT(t, "master-secret", time.Now().Add(time.Hour))
	expired := mintJWT(t, "master-secret", time.Now().Add(-time.Hour))
	other := mintJWT(t, "other-key", time.Now().Add(time.Hour))

	tests := []struct {
		name, path string
		hdr        map[string]string
		want       int
	}{
		{"global apikey ok", "/x", map[string]string{"X-Api-Key": "global-key"}, 200},
		{"global apikey wrong", "/x", map[string]string{"X-Api-Key": "nope"}, 401},
		{"global apikey missing", "/x", nil, 401},
		{"path basic overrides global", "/basic", map[string]string{"Authorization": basic}, 200},
		{"basic wrong", "/basic", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("user:bad"))}, 401},
		{"basic garbage", "/basic", map[string]string{"Authorization": "Basic !!!"}, 401},
		{"jwt bearer", "/jwt/a", map[string]string{"Authorization": "Bearer " + good}, 200},
		{"jwt query", "/jwt/a?x=1&araleztoken=" + good + "&y=2", nil, 200},
		{"jwt expired", "/jwt/a", map[string]string{"Authorization": "Bearer " + expired}, 401},
		{"jwt other key", "/jwt/a", map[string]string{"Authorization": "Bearer " + other}, 401},
		{"jwt own key", "/jwt2", map[string]string{"Authorization": "Bearer " + other}, 200},
		{"jwt master key on own-key path", "/jwt2", map[string]string{"Authorization": "Bearer " + good}, 401},
		{"forward allow", "/fwd", map[string]string{"Authorization": "Bearer good", "Remote-User": "mallory"}, 200},
		{"forward redirect", "/fwd", map[string]string{"Authorization": "Bearer login"}, 302},
		{"forward deny", "/fwd", map[string]string{"Authorization": "Bearer bad"}, 401},
	}
	for _, tt := range tests {
		before := s.hits.Load()
		resp, _ := do(t, "GET", base+tt.path, tt.hdr)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: status %d; want %d", tt.name, resp.StatusCode, tt.want)
			continue
		}
		reached := s.hits.Load() != before
		if reached != (tt.want == 200) {
			t.Errorf("%s: upstream reached = %v; want %v", tt.name, reached, tt.want == 200)
		}
		if tt.want == 200 {
			r := s.last()
			switch {
			case strings.Contains(r.URL.RawQuery, "araleztoken"):
				t.Errorf("%s: upstream saw the token in %q", tt.name, r.URL.RawQuery)
			case tt.name == "jwt query" && r.URL.RawQuery != "x=1&y=2":
				t.Errorf("%s: upstream query %q; want x=1&y=2", tt.name, r.URL.RawQuery)
			case r.Header.Get("X-Api-Key") != "" || (tt.path != "/fwd" && r.Header.Get("Authorization") != ""):
				t.Errorf("%s: consumed credentials forwarded: %v", tt.name, r.Header)
			case tt.path == "/fwd" && r.Header.Get("Remote-User") != "alice":
				t.Errorf("%s: Remote-User = %q; want the auth service's alice", tt.name, r.Header.Get("Remote-User"))
			}
		}
		if tt.want == 401 && tt.path == "/basic" && resp.Header.Get("WWW-Authenticate") != `Basic realm="aralez"` {
			t.Errorf("%s: WWW-Authenticate = %q", tt.name, resp.Header.Get("WWW-Authenticate"))
		}
		if tt.want == 302 && resp.Header.Get("Location") != "https://login.test/" {
			t.Errorf("%s: Location = %q", tt.name, resp.Header.Get("Location"))
		}
	}
	authSrv.Close()
	if resp, _ := do(t, "GET", base+"/fwd", map[string]string{"Authorization": "Bearer good"}); resp.StatusCode != 503 {
		t.Errorf("forward auth down: status %d; want 503 (fail closed)", resp.StatusCode)
	}
}

func TestRateLimitsAndAccessLists(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Policy.RateLimit = 1000
	lim := oneRoute("limited.test", "/", addrOf(up))
	lim.Policy.RateLimit = 3
	nf, _ := newUpstream(t, "nf", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	four := oneRoute("four.test", "/", addrOf(nf))
	four.Paths[0].Policy.X4xxLimit = 2
	acl := oneRoute("acl.test", "/", addrOf(up))
	acl.Paths[0].Policy.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	deny := oneRoute("deny.test", "/", addrOf(up))
	deny.Policy.Deny = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.Upstreams.Hosts = []config.Host{lim, four, acl, deny}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	base := "http://" + addr

	var codes []int
	for i := 0; i < 5; i++ {
		resp, _ := do(t, "GET", base+"/", map[string]string{"Host": "limited.test"})
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" {
		t.Errorf("host rate_limit 3: statuses %v; want [200 200 200 429 429]", codes)
	}
	// x4xx_limit 2: three upstream 404s in one second lock the client out
	// (the first answers are the upstream's own).
	// The 4xx windows are whole clock seconds: a run that straddles a
	// boundary is tried again (at most 3 times) after the lock-out ends.
	for try := 0; try < 3; try++ {
		codes = codes[:0]
		for i := 0; i < 4; i++ {
			resp, _ := do(t, "GET", base+"/missing", map[string]string{"Host": "four.test"})
			codes = append(codes, resp.StatusCode)
		}
		if fmt.Sprint(codes) == "[404 404 404 429]" {
			break
		}
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	}
	if fmt.Sprint(codes) != "[404 404 404 429]" {
		t.Errorf("x4xx_limit: statuses %v; want the 4th to be 429", codes)
	}
	before := s.hits.Load()
	if resp, _ := do(t, "GET", base+"/", map[string]string{"Host": "acl.test"}); resp.StatusCode != 403 {
		t.Errorf("allow list without the client: %d; want 403", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", base+"/", map[string]string{"Host": "deny.test"}); resp.StatusCode != 403 {
		t.Errorf("host deny list: %d; want 403", resp.StatusCode)
	}
	if s.hits.Load() != before {
		t.Errorf("rejected requests reached the upstream")
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	h := oneRoute("DEFAULT", "/", addrOf(up))
	h.Paths[0].Policy.Deny = []netip.Prefix{netip.MustParsePrefix("6.6.6.6/32")}
	cfg.Upstreams.Hosts = []config.Host{h}
	// Untrusted peer: the header is replaced and ignored.
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	if resp, _ := do(t, "GET", "http://"+addr+"/", map[string]string{"X-Forwarded-For": "6.6.6.6"}); resp.StatusCode != 200 {
		t.Errorf("untrusted peer's XFF used for deny: %d", resp.StatusCode)
	}
	if got := s.last().Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("untrusted XFF forwarded as %q; want 127.0.0.1", got)
	}
	// Trusted peer: the rightmost untrusted hop is the client; the list is kept.
	_, addr2 := startProxy(t, cfg, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, UpstreamOptions{})
	if resp, _ := do(t, "GET", "http://"+addr2+"/", map[string]string{"X-Forwarded-For": "6.6.6.6"}); resp.StatusCode != 403 {
		t.Errorf("trusted peer's client 6.6.6.6 not denied: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", "http://"+addr2+"/", map[string]string{"X-Forwarded-For": "1.2.3.4, 127.0.0.5"}); resp.StatusCode != 200 {
		t.Errorf("trusted chain: %d", resp.StatusCode)
	}
	if got := s.last().Header.Get("X-Forwarded-For"); got != "1.2.3.4, 127.0.0.5, 127.0.0.1" {
		t.Errorf("trusted XFF forwarded as %q; want appended", got)
	}
}

func TestStickySessions(t *testing.T) {
	t.Parallel()
	a, sa := newUpstream(t, "a", nil)
	b, sb := newUpstream(t, "b", nil)
	cfg := &config.Config{}
	cfg.Main.StickySecret = "s3cret"
	cfg.Upstreams.StickySessions = 600
	cfg.Upstreams.Hosts = []config.Host{{Name: "DEFAULT", Paths: []config.Path{
		{Prefix: "/a", Servers: []config.Server{{Address: addrOf(a), Weight: 1}, {Address: addrOf(b), Weight: 1}}},
		{Prefix: "/b", Servers: []config.Server{{Address: addrOf(a), Weight: 1}, {Address: addrOf(b), Weight: 1}},
			Policy: config.Policy{Authorization: &config.Auth{Type: "apikey", Data: []string{"k"}}}},
	}}}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	resp, _ := do(t, "GET", "http://"+addr+"/a", nil)
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "backend_id=") || !strings.Contains(sc, "Path=/a; Max-Age=600; HttpOnly; SameSite=Lax") {
		t.Fatalf("Set-Cookie = %q", sc)
	}
	cookie := strings.SplitN(sc, ";", 2)[0]
	first := sa.hits.Load() > 0
	for i := 0; i < 100; i++ {
		r, _ := do(t, "GET", "http://"+addr+"/a", map[string]string{"Cookie": "x=1; " + cookie})
		if r.Header.Get("Set-Cookie") != "" {
			t.Fatalf("request %d with a valid cookie got a new one", i)
		}
	}
	if first && (sa.hits.Load() != 101 || sb.hits.Load() != 0) || !first && (sb.hits.Load() != 101 || sa.hits.Load() != 0) {
		t.Errorf("sticky split a=%d b=%d; want all 101 on one backend", sa.hits.Load(), sb.hits.Load())
	}
	// Forged cookie: ignored and replaced.
	r, _ := do(t, "GET", "http://"+addr+"/a", map[string]string{"Cookie": "backend_id=0.AAAAAAAAAAAAAAAAAAAAAA"})
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Set-Cookie"), "backend_id=") {
		t.Errorf("forged cookie: %d, Set-Cookie %q", r.StatusCode, r.Header.Get("Set-Cookie"))
	}
	// Route /a's cookie replayed on /b does not bypass /b's auth.
	if r, _ := do(t, "GET", "http://"+addr+"/b", map[string]string{"Cookie": cookie}); r.StatusCode != 401 {
		t.Errorf("cookie from /a on /b: %d; want 401", r.StatusCode)
	}
}
