package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeFiles creates files (relative name → content) under a new temp dir
// and returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func hostNames(u *Upstreams) []string {
	var out []string
	for _, h := range u.Hosts {
		out = append(out, h.Name)
	}
	return out
}

// TestEtcFilesLoad loads every YAML file in ../etc: main.yaml via Load and
// every other file with "upstreams:" via LoadUpstreams. The Kubernetes
// manifests of ../etc/kubernetes/ are not aralez config: the glob leaves
// the folder out, and discovery's TestManifests checks them.
func TestEtcFilesLoad(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../etc/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("Glob(../etc/*.yaml) = %v, %v; want files", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			if filepath.Base(f) == "main.yaml" {
				c, err := Load(f)
				if err != nil {
					t.Fatalf("Load(%s) error: %v", f, err)
				}
				if len(c.Upstreams.Hosts) == 0 {
					t.Errorf("Load(%s): no hosts", f)
				}
				return
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "upstreams:") {
				t.Skipf("%s has no upstreams: key", f)
			}
			if _, err := LoadUpstreams(f); err != nil {
				t.Fatalf("LoadUpstreams(%s) error: %v", f, err)
			}
		})
	}
}

// TestSeveralErrorsReported checks that one file with several problems
// reports all of them, sorted by position.
func TestSeveralErrorsReported(t *testing.T) {
	t.Parallel()
	src := `provider: file
rate_limit: 0
to_https: yes
upstreams:
  app.test:
    paths:
      "/api":
        servers:
          - "10.0.0.1:8080"
          - "10.0.0.2"
        client_headers: ["Bad Header: x"]
      nope:
        servers: ["10.0.0.3:80"]
  x.*.test:
    paths: {"/": {servers: ["10.0.0.4:80"]}}
bogus: 1
`
	_, err := ParseUpstreams("up.yaml", []byte(src))
	var el ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("ParseUpstreams() error = %v; want ErrorList", err)
	}
	want := []string{
		"up.yaml:2:13: rate_limit: must be a positive integer, got 0",
		`up.yaml:3:11: to_https: want true or false, got "yes"`,
		`up.yaml:10:13: upstreams.app.test.paths./api.servers[1]: invalid address "10.0.0.2": missing port; want host:port`,
		`up.yaml:11:26: upstreams.app.test.paths./api.client_headers[0]: header name "Bad Header" is not a valid token`,
		`up.yaml:12:7: upstreams.app.test.paths.nope: path "nope" must start with "/"`,
		`up.yaml:14:3: upstreams.x.*.test: invalid host "x.*.test": a wildcard is "*." followed by a name, as *.example.com`,
		`up.yaml:16:1: bogus: unknown key "bogus"`,
	}
	var got []string
	for _, e := range el {
		got = append(got, e.Error())
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParseUpstreams() errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("ErrorList.Error() = %q; want one error per line", err.Error())
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "rate_limit" {
		t.Errorf("errors.As(err, *FieldError) = %v; want the first entry", fe)
	}
}

// TestParseUpstreamsValues checks the values of a complete file.
func TestParseUpstreamsValues(t *testing.T) {
	t.Parallel()
	src := `provider: file
sticky_sessions: 3600
to_https: false
rate_limit: 100
x4xx_limit: 10
tls_verify: true
allow: ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
deny: ["10.9.0.0/16"]
server_headers: ["X-Forwarded-Proto:https"]
client_headers: ["Access-Control-Allow-Origin:*", "X-Empty:", "X-Colon: a:b "]
authorization: {type: jwt, data: "secret"}
upstreams:
  App.Example.COM.:
    rate_limit: 20
    deny: ["10.1.0.0/16"]
    paths:
      "/":
        servers:
          - "10.0.0.1:8080 weight=3"
          - "[::1]:8081 backup"
          - "backend.internal:80"
        load_balance: least_conn
        healthcheck: false
        forward_credentials: true
      "/auth":
        servers: ["10.0.0.2:80"]
        authorization:
          type: basic
          data: ["admin:x", "ops:$2y$05$abc"]
      "/fwd":
        servers: ["10.0.0.3:80"]
        authorization: {type: forward, data: "https://auth.internal/check"}
        auth_response_headers: ["Remote-User"]
      "/old":
        redirect_to: "https://new.example.com"
  "*.example.com":
    paths: {"/": {servers: ["10.0.0.4:80"]}}
  DEFAULT:
    paths: {"/": {servers: ["127.0.0.1:3000"], cache: true, cache_ttl: 5, cache_bypass: [], max_request_body_bytes: 1048576}}
cache: false
cache_bypass: ["X-Debug", "cookie:session"]
`
	u, err := ParseUpstreams("up.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseUpstreams() error: %v", err)
	}
	if c := u.Policy.Cache; c == nil || *c || !slices.Equal(u.Policy.CacheBypass, []string{"X-Debug", "cookie:session"}) {
		t.Errorf("global cache, cache_bypass = %v, %q; want false, [X-Debug cookie:session]", c, u.Policy.CacheBypass)
	}
	if p := u.Hosts[2].Paths[0]; p.Policy.Cache == nil || !*p.Policy.Cache || p.CacheTTL != 5 || p.Policy.CacheBypass == nil || len(p.Policy.CacheBypass) != 0 {
		t.Errorf("DEFAULT / cache = %v, cache_ttl %d, cache_bypass %#v; want true, 5, empty and set", p.Policy.Cache, p.CacheTTL, p.Policy.CacheBypass)
	}
	if m := u.Hosts[2].Paths[0].MaxRequestBodyBytes; m == nil || *m != 1<<20 {
		t.Errorf("DEFAULT / max_request_body_bytes = %v; want 1048576", m)
	}
	if m := u.Hosts[0].Paths[0].MaxRequestBodyBytes; m != nil {
		t.Errorf("app.example.com / max_request_body_bytes = %d; want unset", *m)
	}
	if u.Hosts[0].Paths[0].Policy.Cache != nil || u.Hosts[0].Paths[0].CacheTTL != 0 {
		t.Errorf("app.example.com / cache = %v, %d; want unset", u.Hosts[0].Paths[0].Policy.Cache, u.Hosts[0].Paths[0].CacheTTL)
	}
	if u.Provider != "file" || u.StickySessions != 3600 || u.Policy.RateLimit != 100 || u.Policy.X4xxLimit != 10 {
		t.Errorf("globals = %q %d %d %d; want file 3600 100 10", u.Provider, u.StickySessions, u.Policy.RateLimit, u.Policy.X4xxLimit)
	}
	if u.Policy.ToHTTPS == nil || *u.Policy.ToHTTPS || u.Policy.TLSVerify == nil || !*u.Policy.TLSVerify {
		t.Errorf("to_https, tls_verify = %v, %v; want false, true", u.Policy.ToHTTPS, u.Policy.TLSVerify)
	}
	wantAllow := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	if !slices.Equal(u.Policy.Allow, wantAllow) {
		t.Errorf("allow = %v; want %v", u.Policy.Allow, wantAllow)
	}
	wantCH := []Header{{"Access-Control-Allow-Origin", "*"}, {"X-Empty", ""}, {"X-Colon", "a:b"}}
	if !slices.Equal(u.Policy.ClientHeaders, wantCH) {
		t.Errorf("client_headers = %v; want %v", u.Policy.ClientHeaders, wantCH)
	}
	if a := u.Policy.Authorization; a == nil || a.Type != "jwt" || !slices.Equal(a.Data, []string{"secret"}) || a.Pos.Line != 11 {
		t.Errorf("authorization = %+v; want jwt [secret] at line 11", a)
	}
	if got, want := hostNames(u), []string{"app.example.com", "*.example.com", "DEFAULT"}; !slices.Equal(got, want) {
		t.Fatalf("hosts = %v; want %v", got, want)
	}
	h := u.Hosts[0]
	if h.Policy.RateLimit != 20 || len(h.Policy.Deny) != 1 || h.Pos != (Pos{"up.yaml", 13, 3}) || len(h.Paths) != 4 {
		t.Errorf("host = %+v; want rate 20, one deny, at 13:3, 4 paths", h)
	}
	p := h.Paths[0]
	wantSrv := []Server{
		{Address: "10.0.0.1:8080", Weight: 3, Pos: Pos{"up.yaml", 19, 13}},
		{Address: "[::1]:8081", Weight: 1, Backup: true, Pos: Pos{"up.yaml", 20, 13}},
		{Address: "backend.internal:80", Weight: 1, Pos: Pos{"up.yaml", 21, 13}},
	}
	if !reflect.DeepEqual(p.Servers, wantSrv) {
		t.Errorf("servers = %+v; want %+v", p.Servers, wantSrv)
	}
	if p.LoadBalance != "least_conn" || p.HealthCheck == nil || *p.HealthCheck || !p.ForwardCredentials || p.AuthResponseHeaders != nil {
		t.Errorf("path / = %+v; want least_conn, healthcheck false, forward_credentials, nil auth headers", p)
	}
	if a := h.Paths[1].Policy.Authorization; a == nil || a.Type != "basic" || len(a.Data) != 2 {
		t.Errorf("/auth authorization = %+v; want basic with 2 entries", a)
	}
	if p := h.Paths[2]; p.Policy.Authorization.Data[0] != "https://auth.internal/check" || !slices.Equal(p.AuthResponseHeaders, []string{"Remote-User"}) {
		t.Errorf("/fwd = %+v", p)
	}
	if p := h.Paths[3]; p.RedirectTo != "https://new.example.com" || len(p.Servers) != 0 || p.LoadBalance != DefaultLoadBalance {
		t.Errorf("/old = %+v; want redirect, no servers, default load_balance", p)
	}
	if len(u.Warnings) != 0 {
		t.Errorf("warnings = %q; want none", u.Warnings)
	}
}

// TestHostKeys checks the host key forms that are accepted.
func TestHostKeys(t *testing.T) {
	t.Parallel()
	src := "upstreams:\n"
	for _, h := range []string{"127.0.0.1", "\"[::1]\"", "localhost", "Svc-Nginx", "\"*.Example.com\"", "DEFAULT", "default"} {
		src += "  " + h + ":\n    paths: {\"/\": {servers: [\"10.0.0.1:80\"]}}\n"
	}
	u, err := ParseUpstreams("h.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseUpstreams() error: %v", err)
	}
	if got, want := hostNames(u), []string{"127.0.0.1", "[::1]", "localhost", "svc-nginx", "*.example.com", "DEFAULT", "default"}; !slices.Equal(got, want) {
		t.Errorf("hosts = %q; want %q", got, want)
	}
}

// TestAnchorsAndMergeKeys checks that anchors, aliases and "<<" merge
// keys resolve, and that explicit keys win over merged ones.
func TestAnchorsAndMergeKeys(t *testing.T) {
	t.Parallel()
	src := `upstreams:
  a.test:
    paths:
      "/": &base
        servers: &pool ["10.0.0.1:80", "10.0.0.2:80"]
        rate_limit: 5
  b.test:
    paths:
      "/":
        <<: *base
        rate_limit: 7
      "/x":
        servers: *pool
`
	u, err := ParseUpstreams("a.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseUpstreams() error: %v", err)
	}
	b := u.Hosts[1]
	if len(b.Paths[0].Servers) != 2 || b.Paths[0].Policy.RateLimit != 7 || len(b.Paths[1].Servers) != 2 {
		t.Errorf("b.test = %+v; want 2 servers and rate 7 on /, 2 servers on /x", b)
	}
}

// TestAliasBomb checks that aliases and merge keys expanding to each other
// are bounded in time and memory.
func TestAliasBomb(t *testing.T) {
	t.Parallel()
	list := func(name string) string {
		var b strings.Builder
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*" + name)
		}
		return b.String()
	}
	var seq, mrg strings.Builder
	seq.WriteString("x0: &a00 [\"x:1\", \"x:1\"]\n")
	mrg.WriteString("x0: &a00 {rate_limit: 1}\n")
	for i := 1; i < 30; i++ {
		seq.WriteString("x" + itoa(i) + ": &a" + itoa(i) + " [" + list("a"+itoa(i-1)) + "]\n")
		mrg.WriteString("x" + itoa(i) + ": &a" + itoa(i) + " {<<: [" + list("a"+itoa(i-1)) + "]}\n")
	}
	seq.WriteString("upstreams:\n  h.test:\n    paths:\n      \"/\":\n        servers: *a29\n")
	mrg.WriteString("upstreams:\n  h.test:\n    paths:\n      \"/\":\n        <<: *a29\n        servers: [\"10.0.0.1:80\"]\n")
	for name, src := range map[string]string{"sequences": seq.String(), "merge keys": mrg.String()} {
		start := time.Now()
		_, err := ParseUpstreams("bomb.yaml", []byte(src))
		if err == nil {
			t.Errorf("ParseUpstreams(%s bomb) error = nil; want an error", name)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("ParseUpstreams(%s bomb) took %v", name, d)
		}
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// TestEmptyUpstreams checks that an empty table is valid with a warning.
func TestEmptyUpstreams(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "# nothing\n", "provider: file\n", "upstreams:\n", "upstreams: {}\n"} {
		u, err := ParseUpstreams("e.yaml", []byte(src))
		if err != nil {
			t.Errorf("ParseUpstreams(%q) error: %v", src, err)
			continue
		}
		if len(u.Hosts) != 0 || len(u.Warnings) != 1 || !strings.Contains(u.Warnings[0], "no routes") {
			t.Errorf("ParseUpstreams(%q) = %d hosts, warnings %q; want 0 and a no routes warning", src, len(u.Hosts), u.Warnings)
		}
	}
}

// TestDeprecatedUpstreamsKeys checks the keys of older Aralez releases.
func TestDeprecatedUpstreamsKeys(t *testing.T) {
	t.Parallel()
	src := `provider: "file"
sticky_sessions: false
globals:
  headers:
    - "Access-Control-Allow-Origin:*"
  authorization: ["basic", "admin:secret"]
headers: ["X-Top:1"]
upstreams:
  myip.example.net:
    paths:
      "/":
        ssl: false
        headers:
          - "X-Some-Thing:Yes"
        servers:
          - "127.0.0.1:8000"
          - "127.0.0.1:8000"
`
	u, err := ParseUpstreams("old.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseUpstreams() error: %v", err)
	}
	wantCH := []Header{{"Access-Control-Allow-Origin", "*"}, {"X-Top", "1"}}
	if !slices.Equal(u.Policy.ClientHeaders, wantCH) {
		t.Errorf("global client headers = %v; want %v", u.Policy.ClientHeaders, wantCH)
	}
	if a := u.Policy.Authorization; a == nil || a.Type != "basic" || !slices.Equal(a.Data, []string{"admin:secret"}) {
		t.Errorf("globals.authorization = %+v; want basic [admin:secret]", a)
	}
	p := u.Hosts[0].Paths[0]
	if !slices.Equal(p.Policy.ServerHeaders, []Header{{"X-Some-Thing", "Yes"}}) || len(p.Servers) != 2 {
		t.Errorf("path = %+v; want headers as server headers (issue 2) and 2 servers", p)
	}
	for _, w := range []string{"2:18: sticky_sessions: deprecated boolean", "3:1: globals: deprecated", "7:1: headers: deprecated", "12:9: upstreams.myip.example.net.paths./.ssl: deprecated", "13:9: upstreams.myip.example.net.paths./.headers: deprecated", "17:13: upstreams.myip.example.net.paths./.servers[1]: server 127.0.0.1:8000 is also servers[0]"} {
		if !slices.ContainsFunc(u.Warnings, func(s string) bool { return strings.Contains(s, "old.yaml:"+w) }) {
			t.Errorf("warnings %q; want one containing %q", u.Warnings, w)
		}
	}
}

// TestDiscoveryBlocks checks the consul and kubernetes blocks in both the
// current and the older Aralez forms.
func TestDiscoveryBlocks(t *testing.T) {
	t.Parallel()
	src := `provider: kubernetes
consul:
  servers: ["http://consul1:8500", "10.0.0.9:8500"]
  token: "t0k"
  services:
    - proxy: "proxy-frontend"
      real: "frontend-srv"
    - hostname: "nconsul"
      upstream: "nginx-health"
      path: "/one"
      client_headers: ["X-A:1"]
      rate_limit: 1
      to_https: false
kubernetes:
  servers: ["172.16.0.11:5443"]
  tokenpath: "/var/run/token"
  ingress_class: "edge.example-1"
  services:
    - hostname: "api-service"
      upstream: "api-service"
    - hostname: "ws"
      upstream: "ws"
      path: "/ws"
      headers: ["X-B:2"]
`
	u, err := ParseUpstreams("d.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseUpstreams() error: %v", err)
	}
	c := u.Consul
	if c == nil || len(c.Servers) != 2 || c.Token != "t0k" || len(c.Services) != 2 {
		t.Fatalf("consul = %+v", c)
	}
	if s := c.Services[0]; s.Proxy != "proxy-frontend" || s.RealName != "frontend-srv" || s.Path != "/" || s.Pos.Line != 6 {
		t.Errorf("consul.services[0] = %+v; want proxy-frontend → frontend-srv on / at line 6", s)
	}
	if s := c.Services[1]; s.Proxy != "nconsul" || s.Path != "/one" || s.Policy.RateLimit != 1 || len(s.Policy.ClientHeaders) != 1 {
		t.Errorf("consul.services[1] = %+v", s)
	}
	k := u.Kubernetes
	if k == nil || k.Tokenpath != "/var/run/token" || k.IngressClass != "edge.example-1" || len(k.Services) != 2 || k.Services[0].Path != "/" || k.Services[1].Policy.ClientHeaders[0].Name != "X-B" {
		t.Errorf("kubernetes = %+v", k)
	}
	if len(u.Warnings) != 1 {
		t.Errorf("warnings = %q; want only the headers deprecation (no \"no routes\" for kubernetes)", u.Warnings)
	}
}

// TestConfD checks the conf.d merge order and the duplicate-host error
// that names both files.
func TestConfD(t *testing.T) {
	t.Parallel()
	t.Run("merge order", func(t *testing.T) {
		t.Parallel()
		dir := writeFiles(t, map[string]string{
			"upstreams.yaml":    "upstreams:\n  main.test:\n    paths: {\"/\": {servers: [\"10.0.0.1:80\"]}}\n",
			"conf.d/b.yaml":     "b.test:\n  paths: {\"/\": {servers: [\"10.0.0.2:80\"]}}\n",
			"conf.d/a.yaml":     "a1.test:\n  paths: {\"/\": {servers: [\"10.0.0.3:80\"]}}\na2.test:\n  paths: {\"/\": {servers: [\"10.0.0.4:80\"]}}\n",
			"conf.d/skip.yml":   "ignored: 1\n",
			"conf.d/.x.yaml":    "hidden: 1\n",
			"conf.d/empty.yaml": "",
		})
		u, err := LoadUpstreams(filepath.Join(dir, "upstreams.yaml"))
		if err != nil {
			t.Fatalf("LoadUpstreams() error: %v", err)
		}
		if got, want := hostNames(u), []string{"main.test", "a1.test", "a2.test", "b.test"}; !slices.Equal(got, want) {
			t.Errorf("hosts = %v; want %v", got, want)
		}
		wantFiles := []string{"upstreams.yaml", "conf.d/a.yaml", "conf.d/b.yaml", "conf.d/empty.yaml"}
		for i := range wantFiles {
			wantFiles[i] = filepath.Join(dir, wantFiles[i])
		}
		if !slices.Equal(u.Files, wantFiles) {
			t.Errorf("files = %v; want %v", u.Files, wantFiles)
		}
		if got := u.Hosts[3].Pos; got.File != filepath.Join(dir, "conf.d/b.yaml") || got.Line != 1 {
			t.Errorf("b.test pos = %v; want conf.d/b.yaml:1", got)
		}
	})
	t.Run("only conf.d", func(t *testing.T) {
		t.Parallel()
		dir := writeFiles(t, map[string]string{
			"upstreams.yaml": "provider: file\n",
			"conf.d/a.yaml":  "a.test:\n  paths: {\"/\": {servers: [\"10.0.0.3:80\"]}}\n",
		})
		u, err := LoadUpstreams(filepath.Join(dir, "upstreams.yaml"))
		if err != nil || len(u.Hosts) != 1 || len(u.Warnings) != 0 {
			t.Errorf("LoadUpstreams() = %v, %v; want one host, no warnings", u, err)
		}
	})
	t.Run("duplicate across files", func(t *testing.T) {
		t.Parallel()
		dir := writeFiles(t, map[string]string{
			"upstreams.yaml": "upstreams:\n  dup.test:\n    paths: {\"/\": {servers: [\"10.0.0.1:80\"]}}\n",
			"conf.d/a.yaml":  "# a\nDup.Test.:\n  paths: {\"/\": {servers: [\"10.0.0.2:80\"]}}\n",
		})
		_, err := LoadUpstreams(filepath.Join(dir, "upstreams.yaml"))
		want := filepath.Join(dir, "conf.d/a.yaml") + `:2:1: dup.test: host "dup.test" is already defined at ` + filepath.Join(dir, "upstreams.yaml") + ":2:3"
		if err == nil || err.Error() != want {
			t.Errorf("LoadUpstreams() error = %v; want %q", err, want)
		}
	})
	t.Run("errors in several files", func(t *testing.T) {
		t.Parallel()
		dir := writeFiles(t, map[string]string{
			"upstreams.yaml": "rate_limit: 0\n",
			"conf.d/a.yaml":  "provider: file\n",
			"conf.d/b.yaml":  "b.test:\n  paths: {\"/\": {servers: [\"10.0.0.2\"]}}\n",
		})
		_, err := LoadUpstreams(filepath.Join(dir, "upstreams.yaml"))
		var el ErrorList
		if !errors.As(err, &el) || len(el) != 3 {
			t.Fatalf("LoadUpstreams() error = %v; want 3 errors", err)
		}
		if !strings.Contains(el[0].Error(), "conf.d/a.yaml:1:1: provider: global key") ||
			!strings.Contains(el[1].Error(), "conf.d/b.yaml:2:27: b.test.paths./.servers[0]: invalid address") ||
			!strings.Contains(el[2].Error(), "upstreams.yaml:1:13: rate_limit") {
			t.Errorf("LoadUpstreams() errors = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := LoadUpstreams(filepath.Join(t.TempDir(), "nope.yaml"))
		if err == nil || !strings.Contains(err.Error(), "reading upstreams file") {
			t.Errorf("LoadUpstreams(missing) error = %v; want a read error", err)
		}
	})
}

// TestLoadPathsAndEnv checks relative path resolution and JWT_KEY.
func TestLoadPathsAndEnv(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"etc/main.yaml": `upstreams_conf: "routes/up.yaml"
pid_file: "run/a.pid"
file_server_folder: "public"
file_server_address: "127.0.0.1:3002"
log_file: "log/a.log, 20, 3, compress"
proxy_configs: "."
config_tls_address: "127.0.0.1:3001"
config_tls_certificate: "certs/api.crt"
config_tls_key_file: "/abs/api.key"
ca_file: "ca.pem"
master_key: "from-file"
config_api_enabled: true
`,
		"etc/routes/up.yaml": "upstreams:\n  a.test:\n    paths: {\"/\": {servers: [\"10.0.0.1:80\"]}}\n",
	})
	etc := filepath.Join(dir, "etc")
	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := load(nil, filepath.Join(etc, "main.yaml"), lookup)
	if err != nil {
		t.Fatalf("load() error: %v", err)
	}
	m := c.Main
	for _, tc := range []struct{ got, want string }{
		{m.UpstreamsConf, filepath.Join(etc, "routes/up.yaml")},
		{m.PIDFile, filepath.Join(etc, "run/a.pid")},
		{m.FileServerFolder, filepath.Join(etc, "public")},
		{m.LogFile, filepath.Join(etc, "log/a.log")},
		{m.ProxyConfigs, etc},
		{m.ConfigTLSCertificate, filepath.Join(etc, "certs/api.crt")},
		{m.ConfigTLSKeyFile, "/abs/api.key"},
		{m.TLSCAFile, filepath.Join(etc, "ca.pem")},
		{m.MasterKey, "from-file"},
		{c.MainPath, filepath.Join(etc, "main.yaml")},
	} {
		if tc.got != tc.want {
			t.Errorf("resolved path = %q; want %q", tc.got, tc.want)
		}
	}
	if m.LogFileSizeMB != 20 || m.LogFileKeep != 3 || !m.LogFileCompress {
		t.Errorf("log_file options = %d %d %v; want 20 3 true", m.LogFileSizeMB, m.LogFileKeep, m.LogFileCompress)
	}
	if len(c.Upstreams.Hosts) != 1 {
		t.Errorf("hosts = %v; want a.test", hostNames(&c.Upstreams))
	}

	env[EnvJWTKey] = "from-env"
	c, err = load(nil, filepath.Join(etc, "main.yaml"), lookup)
	if err != nil || c.Main.MasterKey != "from-env" {
		t.Errorf("load() with JWT_KEY = %v, %v; want master key from-env", c, err)
	}
}

// TestLoadJWTKeyFromEnvironment checks Load against the real environment.
func TestLoadJWTKeyFromEnvironment(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.yaml":      "config_api_enabled: true\nconfig_address: \"127.0.0.1:3000\"\n",
		"upstreams.yaml": "",
	})
	t.Setenv(EnvJWTKey, "")
	// Aralez starts without a key; so do we, with a read-only config API
	// and a warning (issue 12).
	c, err := Load(filepath.Join(dir, "main.yaml"))
	if err != nil || len(c.Main.Warnings) != 1 || !strings.Contains(c.Main.Warnings[0], "config API is read-only") {
		t.Errorf("Load() without a key = %+v, %v; want one read-only warning", c, err)
	}
	t.Setenv(EnvJWTKey, "k3y")
	c, err = Load(filepath.Join(dir, "main.yaml"))
	if err != nil || c.Main.MasterKey != "k3y" || len(c.Upstreams.Warnings) != 1 || len(c.Main.Warnings) != 0 {
		t.Errorf("Load() with JWT_KEY = %+v, %v; want master key k3y and a no routes warning", c, err)
	}
}

// TestLoadErrors checks errors of main.yaml and of the upstreams file.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"bad/main.yaml":       "threads: x\n",
		"badup/main.yaml":     "upstreams_conf: up.yaml\n",
		"badup/up.yaml":       "rate_limit: -1\n",
		"missingup/main.yaml": "upstreams_conf: none.yaml\n",
	})
	for _, tc := range []struct{ name, want string }{
		{"bad", "bad/main.yaml:1:10: threads: want an integer"},
		{"badup", "badup/up.yaml:1:13: rate_limit: must be a positive integer"},
		{"missingup", "missingup/none.yaml: reading upstreams file"},
		{"nothere", "nothere/main.yaml: reading main config"},
	} {
		_, err := Load(filepath.Join(dir, tc.name, "main.yaml"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s) error = %v; want %q", tc.name, err, tc.want)
		}
	}
}

// TestMainDefaultsAndKeys checks defaults, Pingora keys and obsolete keys.
func TestMainDefaultsAndKeys(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		m, err := ParseMain("m.yaml", nil)
		if err != nil {
			t.Fatalf("ParseMain(empty) error: %v", err)
		}
		want := Main{
			ProxyAddressHTTP: DefaultProxyAddressHTTP, UpstreamsConf: DefaultUpstreamsConf,
			ProxyTLSGrade: "medium", LogLevel: "info", AccessLog: "off", HCMethod: "HEAD",
			LogFileSizeMB: 100, LogFileKeep: 5, HCInterval: 2, HealthCheckRise: 2, HealthCheckFall: 2,
			UpstreamKeepalivePoolSize: 128, MaxHeaderBytes: 16384, MaxURIBytes: 8192, BodyBufferBytes: 65536,
			H2MaxConcurrentStreams: 250, H2StreamWindowBytes: 1 << 20, H2ConnectionWindowBytes: 1 << 20,
			CacheTTL: 60, CacheMaxObjectBytes: 1 << 20,
			UpstreamWaitTimeout: time.Second, UpstreamConnectTimeout: 5 * time.Second,
			UpstreamTimeout: time.Minute, UpstreamIdleTimeout: time.Minute,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
			IdleTimeout: time.Minute, IdleReleaseTimeout: time.Second, DrainTimeout: 10 * time.Second,
			ACME:          ACME{Directory: "production", Storage: "file"},
			RateLimitSync: DefaultRateLimitSync, RateLimitFleetSize: DefaultRateLimitFleetSize,
		}
		if !reflect.DeepEqual(*m, want) {
			t.Errorf("ParseMain(empty) =\n%+v\nwant\n%+v", *m, want)
		}
	})
	t.Run("all keys", func(t *testing.T) {
		t.Parallel()
		src := `threads: 4
runuser: aralez
rungroup: aralez
daemon: false
upstream_keepalive_pool_size: 500
upgrade_sock: /tmp/a.sock
proxy_address_tls: "[::]:6194"
proxy_tls_grade: HIGH
log_level: debug
access_log: access
hc_method: GET
hc_interval: 5
tcp_keepalive_idle: 60
upstream_max_conns: 100
upstream_wait_timeout: 250ms
upstream_connect_timeout: 2s
upstream_timeout: 30s
upstream_idle_timeout: 90s
read_header_timeout: 5s
read_timeout: 20s
write_timeout: 25s
idle_timeout: 2m
idle_release_timeout: 3s
drain_timeout: 15s
max_header_bytes: 8192
max_uri_bytes: 4096
h2_max_concurrent_streams: 100
h2_stream_window_bytes: 65535
h2_connection_window_bytes: 4194304
body_buffer_bytes: 1024
max_request_body_bytes: 10485760
trusted_proxies: ["10.0.0.0/8", "::1"]
sticky_secret: s3
health_check_interval: 500ms
health_check_timeout: 400ms
health_check_rise: 3
health_check_fall: 4
cache_size_mb: 128
cache_ttl: 30
cache_max_object_bytes: 4096
cache_status_header: X-Cache
`
		m, err := ParseMain("m.yaml", []byte(src))
		if err != nil {
			t.Fatalf("ParseMain() error: %v", err)
		}
		if m.CacheSizeMB != 128 || m.CacheTTL != 30 || m.CacheMaxObjectBytes != 4096 || m.CacheStatusHeader != "X-Cache" {
			t.Errorf("cache keys = %d %d %d %q; want 128 30 4096 X-Cache", m.CacheSizeMB, m.CacheTTL, m.CacheMaxObjectBytes, m.CacheStatusHeader)
		}
		if m.H2MaxConcurrentStreams != 100 || m.H2StreamWindowBytes != 65535 || m.H2ConnectionWindowBytes != 4194304 {
			t.Errorf("h2 keys = %d %d %d; want 100 65535 4194304", m.H2MaxConcurrentStreams, m.H2StreamWindowBytes, m.H2ConnectionWindowBytes)
		}
		if m.TCPKeepaliveIdle != 60 || m.TCPKeepaliveInterval != 10 || m.TCPKeepaliveCount != 5 {
			t.Errorf("tcp keepalive = %d %d %d; want 60 10 5", m.TCPKeepaliveIdle, m.TCPKeepaliveInterval, m.TCPKeepaliveCount)
		}
		if m.Threads != 4 || m.ProxyTLSGrade != "high" || m.AccessLog != "all" || m.HCMethod != "GET" ||
			m.UpstreamWaitTimeout != 250*time.Millisecond || m.IdleTimeout != 2*time.Minute || m.IdleReleaseTimeout != 3*time.Second ||
			m.MaxRequestBodyBytes != 10485760 || m.HealthCheckInterval != 500*time.Millisecond ||
			m.HealthCheckFall != 4 || m.UpstreamKeepalivePoolSize != 500 || m.ProxyAddressTLS != "[::]:6194" ||
			!slices.Equal(m.TrustedProxies, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}) {
			t.Errorf("ParseMain() = %+v", *m)
		}
	})
	t.Run("pingora and obsolete keys", func(t *testing.T) {
		t.Parallel()
		src := `version: 1
user: nobody
group: nogroup
error_log: /tmp/err.log
grace_period_seconds: 30
graceful_shutdown_timeout_seconds: 7
work_stealing: true
ca_file: /etc/ssl/ca.pem
upstream_debug_ssl_keylog: false
tls_certificate: etc/server.crt
sticky_sessions: true
`
		m, err := ParseMain("m.yaml", []byte(src))
		if err != nil {
			t.Fatalf("ParseMain() error: %v", err)
		}
		if m.RunUser != "nobody" || m.RunGroup != "nogroup" || m.LogFile != "/tmp/err.log" || m.DrainTimeout != 7*time.Second || m.TLSCAFile != "/etc/ssl/ca.pem" {
			t.Errorf("mapped keys = user %q group %q log %q drain %v ca %q", m.RunUser, m.RunGroup, m.LogFile, m.DrainTimeout, m.TLSCAFile)
		}
		if want := []string{"version", "work_stealing", "upstream_debug_ssl_keylog", "tls_certificate", "sticky_sessions"}; !slices.Equal(m.Ignored, want) {
			t.Errorf("Ignored = %q; want %q", m.Ignored, want)
		}
		if len(m.Deprecated) != 2 || !strings.HasPrefix(m.Deprecated[0], "m.yaml:10:1: tls_certificate: deprecated") {
			t.Errorf("Deprecated = %q", m.Deprecated)
		}
	})
	t.Run("yaml 1.2 integers", func(t *testing.T) {
		t.Parallel()
		for src, want := range map[string]int{"threads: 017\n": 17, "threads: 0x10\n": 16, "threads: 0o17\n": 15, "threads: +3\n": 3} {
			m, err := ParseMain("m.yaml", []byte(src))
			if err != nil || m.Threads != want {
				t.Errorf("ParseMain(%q) threads = %v, %v; want %d", src, m, err, want)
			}
		}
	})
	t.Run("yaml 1.2 off is a string", func(t *testing.T) {
		t.Parallel()
		m, err := ParseMain("m.yaml", []byte("access_log: off\nlog_level: off\n"))
		if err != nil || m.AccessLog != "off" || m.LogLevel != "off" {
			t.Errorf("ParseMain(off) = %v, %v; want off, off", m, err)
		}
	})
	t.Run("native keys win", func(t *testing.T) {
		t.Parallel()
		m, err := ParseMain("m.yaml", []byte("log_file: /a.log\nerror_log: /b.log\nrunuser: a\nuser: b\ndrain_timeout: 3s\ngrace_period_seconds: 9\n"))
		if err != nil || m.LogFile != "/a.log" || m.RunUser != "a" || m.DrainTimeout != 3*time.Second {
			t.Errorf("ParseMain() = %+v, %v; want log_file, runuser and drain_timeout to win", m, err)
		}
		m, err = ParseMain("m.yaml", []byte("grace_period_seconds: 9\n"))
		if err != nil || m.DrainTimeout != 9*time.Second {
			t.Errorf("ParseMain(grace_period_seconds) = %v, %v; want drain 9s", m.DrainTimeout, err)
		}
	})
}

// TestClone checks that a clone shares nothing with the original.
func TestClone(t *testing.T) {
	t.Parallel()
	c, err := Load("../etc/main.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	c.Main.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	c.Upstreams.Policy.Authorization = &Auth{Type: "basic", Data: []string{"a:b"}}
	c.Upstreams.Policy.TLSVerify = &yes
	c.Upstreams.Policy.Cache = &yes
	c.Upstreams.Policy.CacheBypass = []string{"X-Debug"}
	c.Upstreams.Hosts[0].Paths[0].HealthCheck = &yes
	c.Upstreams.Hosts[0].Paths[0].AuthResponseHeaders = []string{"Remote-User"}
	c.Upstreams.Consul = &Consul{Servers: []string{"a:1"}, Services: []ConsulService{{Proxy: "p", Policy: Policy{Allow: []netip.Prefix{netip.MustParsePrefix("1.0.0.0/8")}}}}}
	c.Upstreams.Kubernetes = &Kubernetes{Servers: []string{"k:1"}, Services: []KubernetesService{{Hostname: "h"}}}
	orig := c.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatal("Clone() differs from the original")
	}
	d := c.Clone()
	d.Main.TrustedProxies[0] = netip.MustParsePrefix("0.0.0.0/0")
	d.Main.Ignored = append(d.Main.Ignored, "x")
	d.Upstreams.Policy.ServerHeaders[0].Value = "changed"
	*d.Upstreams.Policy.ToHTTPS = true
	*d.Upstreams.Policy.TLSVerify = false
	*d.Upstreams.Policy.Cache = false
	d.Upstreams.Policy.CacheBypass[0] = "X"
	d.Upstreams.Policy.Authorization.Data[0] = "x:y"
	d.Upstreams.Hosts[0].Name = "changed"
	d.Upstreams.Hosts[0].Paths[0].Servers[0].Address = "10.9.9.9:1"
	*d.Upstreams.Hosts[0].Paths[0].HealthCheck = false
	d.Upstreams.Hosts[0].Paths[0].AuthResponseHeaders[0] = "X"
	d.Upstreams.Consul.Servers[0] = "b:2"
	d.Upstreams.Consul.Services[0].Policy.Allow[0] = netip.MustParsePrefix("2.0.0.0/8")
	d.Upstreams.Kubernetes.Services[0].Hostname = "z"
	d.Upstreams.Files[0] = "x"
	if !reflect.DeepEqual(c, orig) {
		t.Error("changing the clone changed the original")
	}
	if (*Config)(nil).Clone() != nil {
		t.Error("(*Config)(nil).Clone() != nil")
	}
}

// TestValidatePathMatch checks the path match kinds a discovery source
// sets (issue 14): an exact and a prefix entry for one path coexist, two
// of one kind do not, and an unknown kind is refused.
func TestValidatePathMatch(t *testing.T) {
	t.Parallel()
	srv := []Server{{Address: "10.0.0.1:80", Weight: 1}}
	path := func(prefix string, m PathMatch) Path {
		return Path{Prefix: prefix, Match: m, Servers: srv, LoadBalance: DefaultLoadBalance}
	}
	tests := []struct {
		name  string
		paths []Path
		want  string // "" = valid
	}{
		{"exact beside prefix", []Path{path("/a", MatchPrefix), path("/a", MatchExact)}, ""},
		{"two exact", []Path{path("/a", MatchExact), path("/a", MatchExact)}, `upstreams.a.test.paths./a: path "/a" defined twice`},
		{"two prefix", []Path{path("/a", ""), path("/a", MatchPrefix)}, `path "/a" defined twice`},
		{"unknown kind", []Path{path("/a", "regex")}, `unknown path match "regex"; want "" or "exact"`},
		{"exact path checked", []Path{path("a", MatchExact)}, `path "a" must start with "/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := Upstreams{Provider: "file", Hosts: []Host{{Name: "a.test", Paths: tt.paths}}}
			err := u.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestValidateBuiltInCode checks Validate on values that did not come from
// YAML.
func TestValidateBuiltInCode(t *testing.T) {
	t.Parallel()
	u := Upstreams{
		Provider: "file",
		Hosts: []Host{
			{Name: "a.test", Paths: []Path{{Prefix: "/", Servers: []Server{{Address: "10.0.0.1:80", Weight: 1}}, LoadBalance: "random"}}},
			{Name: "a.test", Pos: Pos{"x.yaml", 9, 3}, Paths: []Path{{Prefix: "api", LoadBalance: "round_robin", Pos: Pos{"x.yaml", 10, 5},
				Policy: Policy{ClientHeaders: []Header{{Name: "X-A", Value: "a\nb"}}, Authorization: &Auth{Type: "forward", Data: []string{"nope"}}}}}},
			{Name: "Upper.test", Paths: []Path{{Prefix: "/", Servers: []Server{{Address: "::1:80", Weight: 0}}, LoadBalance: "x"}}},
		},
	}
	err := u.Validate()
	var el ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("Validate() = %v; want errors", err)
	}
	for _, want := range []string{
		`x.yaml:9:3: upstreams.a.test: host "a.test" defined twice`,
		`x.yaml:10:5: upstreams.a.test.paths.api: path "api" must start with "/"`,
		`x.yaml:10:5: upstreams.a.test.paths.api: no servers`,
		`upstreams.a.test.paths.api.client_headers[0]: header "X-A" value contains CR, LF or NUL`,
		`upstreams.a.test.paths.api.authorization: forward auth data: want an http:// or https:// URL`,
		`upstreams.Upper.test: host "Upper.test" is not in canonical form "upper.test"`,
		`upstreams.Upper.test.paths./.servers[0]: invalid address "::1:80": an IPv6 address must be in brackets`,
		`upstreams.Upper.test.paths./.servers[0]: weight must be at least 1, got 0`,
		`upstreams.Upper.test.paths./.load_balance: unknown load_balance "x"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = \n%v\nwant an error containing %q", err, want)
		}
	}
	var m Main
	m.ApplyDefaults()
	if err := m.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v; want nil", err)
	}
	m.LogLevel = "loud"
	m.ReadTimeout = -1
	m.ConfigTLSAddress = "127.0.0.1:1"
	m.H2StreamWindowBytes = 1024
	err = m.Validate()
	for _, want := range []string{"log_level: unknown log_level", "read_timeout: duration must be greater than zero", "config_tls_address: config_tls_address needs",
		"h2_stream_window_bytes: must be between 65535 and 2147483647 bytes, got 1024"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Main.Validate() = %v; want %q", err, want)
		}
	}
	cfg := Config{Main: m, Upstreams: u}
	if err := cfg.Validate(); err == nil || len(err.(ErrorList)) < 10 {
		t.Errorf("Config.Validate() = %v; want Main and Upstreams errors", err)
	}
}

// TestCheckHostPort covers address forms that are valid.
func TestCheckHostPort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		addr   string
		listen bool
		ok     bool
	}{
		{"ipv4", "10.0.0.1:80", false, true},
		{"ipv6", "[2001:db8::1]:443", false, true},
		{"name", "backend-1.svc.cluster.local:8080", false, true},
		{"underscore", "my_host:8080", false, true},
		{"listen all", ":6193", true, true},
		{"listen v6 all", "[::]:6193", true, true},
		{"no host for server", ":80", false, false},
		{"port 65535", "a:65535", false, true},
		{"plus port", "a:+80", false, false},
		{"label dash", "-a.test:80", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := checkHostPort(tt.addr, tt.listen) == ""; got != tt.ok {
				t.Errorf("checkHostPort(%q, %v) ok = %v; want %v (%s)", tt.addr, tt.listen, got, tt.ok, checkHostPort(tt.addr, tt.listen))
			}
		})
	}
}

// TestLoadReportsBothFiles: errors in main.yaml do not hide those of the
// upstreams file (QA finding: `aralez -t` must print every error).
func TestLoadReportsBothFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.yaml"), []byte("threads: \"2\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := "upstreams:\n  a.test:\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:9\"]\n        rate_limit: 0\n"
	if err := os.WriteFile(filepath.Join(dir, "upstreams.yaml"), []byte(up), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(filepath.Join(dir, "main.yaml"))
	if err == nil || !strings.Contains(err.Error(), "main.yaml:1:10") || !strings.Contains(err.Error(), "upstreams.yaml:6:") {
		t.Fatalf("Load = %v; want errors from both files", err)
	}
}

// TestLoadCacheWithoutSize checks the warning for cache: true while
// cache_size_mb is 0 (issue 15), and its absence once a size is set.
func TestLoadCacheWithoutSize(t *testing.T) {
	t.Parallel()
	up := "upstreams:\n  a.test:\n    paths: {\"/\": {servers: [\"10.0.0.1:80\"], cache: true}}\n"
	for _, tc := range []struct {
		main string
		warn bool
	}{
		{main: "", warn: true},
		{main: "cache_size_mb: 8\n", warn: false},
	} {
		dir := writeFiles(t, map[string]string{"main.yaml": tc.main, "upstreams.yaml": up})
		c, err := Load(filepath.Join(dir, "main.yaml"))
		if err != nil {
			t.Fatalf("Load(%q) error: %v", tc.main, err)
		}
		got := slices.ContainsFunc(c.Upstreams.Warnings, func(w string) bool { return strings.Contains(w, "cache_size_mb is 0") })
		if got != tc.warn {
			t.Errorf("Load(%q) warnings = %q; want the cache_size_mb warning: %v", tc.main, c.Upstreams.Warnings, tc.warn)
		}
	}
}
