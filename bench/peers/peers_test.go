package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/aralez-go/aralez/config"
)

func testParams(t *testing.T, name string, hosts int) Params {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"run", "log", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := Params{
		Name: name, Threads: 1,
		HTTPAddr: "127.0.0.1:18181", TLSAddr: "127.0.0.1:18541", H2CAddr: "127.0.0.1:18191",
		Upstreams:    []string{"127.0.0.1:19101", "127.0.0.1:19102"},
		Helpers:      []string{"127.0.0.1:19111"},
		GRPC:         []string{"127.0.0.1:19112"},
		CertFile:     filepath.Join(dir, "certs", "cert.pem"),
		KeyFile:      filepath.Join(dir, "certs", "key.pem"),
		CombinedFile: filepath.Join(dir, "certs", "combined.pem"),
		RunDir:       filepath.Join(dir, "run"),
		LogDir:       filepath.Join(dir, "log"),
	}
	for i := 1; i <= hosts; i++ {
		p.Hosts = append(p.Hosts, fmt.Sprintf("h%05d.bench.test", i))
	}
	if hosts > 0 {
		p.HostsFile = filepath.Join(dir, "hosts.lst")
		if err := os.WriteFile(p.HostsFile, HostsList(p.Hosts), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// writeCert makes a self-signed certificate with openssl for the validators
// that load it (nginx, HAProxy); it skips the test when openssl is missing.
func writeCert(t *testing.T, p Params) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-keyout", p.KeyFile, "-out", p.CertFile, "-days", "2", "-subj", "/CN=127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	c, _ := os.ReadFile(p.CertFile)
	k, _ := os.ReadFile(p.KeyFile)
	if err := os.WriteFile(p.CombinedFile, append(c, k...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkRender renders tmpl with p and checks that the output has every
// line of want, none of absent and no unset field.
func checkRender(t *testing.T, tmpl string, p Params, want, absent []string) {
	t.Helper()
	got, err := Render(tmpl, p)
	if err != nil {
		t.Fatalf("Render(%s) error: %v", tmpl, err)
	}
	for _, w := range want {
		if !strings.Contains(string(got), w) {
			t.Errorf("Render(%s) lacks %q; got:\n%s", tmpl, w, got)
		}
	}
	for _, w := range append([]string{"<no value>"}, absent...) {
		if strings.Contains(string(got), w) {
			t.Errorf("Render(%s) has %q; want it absent:\n%s", tmpl, w, got)
		}
	}
}

func TestRenderProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		tmpl  string
		hosts int
		want  []string
	}{
		{"nginx", Nginx, 0, []string{"worker_processes 1;", "server 127.0.0.1:19101;", "server 127.0.0.1:19102;",
			"keepalive 1024;", "listen 127.0.0.1:18541 ssl http2;", "listen 127.0.0.1:18191 http2;",
			"proxy_set_header X-Proxy-From nginx;", "add_header X-Served-Via nginx always;", "access_log off;",
			"grpc_pass grpc://grpcs;"}},
		{"nginx", Nginx, 3, []string{"h00001.bench.test", "h00003.bench.test", "return 404;"}},
		{"haproxy", HAProxy, 0, []string{"nbthread 1", "balance roundrobin", "http-reuse always",
			"server up0 127.0.0.1:19101", "server up1 127.0.0.1:19102", "bind 127.0.0.1:18191 proto h2",
			"http-request set-header X-Proxy-From haproxy", "http-response set-header X-Served-Via haproxy",
			"server grpc0 127.0.0.1:19112 proto h2"}},
		{"haproxy", HAProxy, 3, []string{"-f ", "hosts.lst"}},
		{"caddy", Caddy, 0, []string{"admin off", "lb_policy round_robin", "reverse_proxy 127.0.0.1:19101 127.0.0.1:19102 {",
			"header_up X-Proxy-From caddy", "header X-Served-Via caddy", "http://:18181, http://:18191 {",
			"https://:18541 {", "h2c://127.0.0.1:19112", "keepalive_idle_conns_per_host 1024"}},
		{"caddy", Caddy, 3, []string{"@unknown not host h00001.bench.test h00002.bench.test h00003.bench.test"}},
		{"aralez", AralezMain, 0, []string{`proxy_address_http: "127.0.0.1:18181"`, `proxy_address_tls: "127.0.0.1:18541"`,
			"threads: 1", `access_log: "off"`}},
		{"aralez", AralezUpstreams, 0, []string{"DEFAULT:", `servers: ["127.0.0.1:19101", "127.0.0.1:19102"]`,
			`server_headers: ["X-Proxy-From: aralez"]`, `client_headers: ["X-Served-Via: aralez"]`, `"/upload":`}},
		{"aralez", AralezUpstreams, 3, []string{"h00001.bench.test:", "h00003.bench.test:"}},
		{"aralez", AralezConfD, 2, []string{"\nh00001.bench.test:\n  paths:\n", "\nh00002.bench.test:\n",
			`servers: ["127.0.0.1:19101", "127.0.0.1:19102"]`, `client_headers: ["X-Served-Via: aralez"]`}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/hosts=%d", tt.name, tt.tmpl, tt.hosts), func(t *testing.T) {
			t.Parallel()
			checkRender(t, tt.tmpl, testParams(t, tt.name, tt.hosts), tt.want, nil)
		})
	}
}

// TestRenderSizingAndCache checks the connection-sweep sizing (MaxClients)
// and the cache hit scenario's settings (CacheMB) of each template, and that
// both stay off by default.
func TestRenderSizingAndCache(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		tmpl             string
		maxClients       int
		cacheMB          int
		want, wantAbsent []string
	}{
		{"nginx default", Nginx, 0, 0, []string{"worker_connections 16384;", "listen 127.0.0.1:18181;"},
			[]string{"backlog=", "proxy_cache"}},
		{"nginx sweep", Nginx, 10000, 0, []string{"worker_connections 21024;", "listen 127.0.0.1:18181 backlog=65535;"}, nil},
		{"nginx small sweep", Nginx, 256, 0, []string{"worker_connections 16384;", "backlog=65535;"}, nil},
		{"nginx cache", Nginx, 0, 64, []string{"proxy_cache_path /dev/shm/x/cache levels=1:2 keys_zone=bench:10m max_size=64m",
			"proxy_cache bench;", "proxy_cache_valid 200 60m;", "proxy_cache_lock on;"}, nil},
		{"haproxy default", HAProxy, 0, 0, []string{"maxconn 4096"}, []string{"cache"}},
		{"haproxy sweep", HAProxy, 10000, 0, []string{"maxconn 11024"}, []string{"maxconn 4096"}},
		{"haproxy sweep, 20000 files", HAProxy, 10000, 0, []string{"maxconn 9968", "limit (20000)"}, nil},
		{"haproxy small sweep", HAProxy, 256, 0, []string{"maxconn 4096"}, nil},
		{"haproxy cache", HAProxy, 0, 64, []string{"cache bench", "total-max-size 64", "http-request cache-use bench",
			"http-response cache-store bench"}, nil},
		{"aralez default", AralezMain, 0, 0, []string{"log_level: warn\n"}, []string{"cache_size_mb"}},
		{"aralez cache", AralezMain, 0, 64, []string{"cache_size_mb: 64"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := testParams(t, strings.Fields(tt.name)[0], 0)
			p.MaxClients, p.CacheMB = tt.maxClients, tt.cacheMB
			if strings.Contains(tt.name, "20000 files") {
				p.FDLimit = 20000
			}
			if tt.cacheMB > 0 {
				p.CacheDir = "/dev/shm/x/cache"
			}
			checkRender(t, tt.tmpl, p, tt.want, tt.wantAbsent)
		})
	}
	p := testParams(t, "nginx", 0)
	p.CacheMB = 64
	if _, err := Render(Nginx, p); err == nil || !strings.Contains(err.Error(), "CacheDir") {
		t.Errorf("Render with CacheMB and no CacheDir error = %v; want CacheDir", err)
	}
}

func TestRenderAralezYAML(t *testing.T) {
	t.Parallel()
	p := testParams(t, "aralez", 0)
	p.RateLimit = 1000000
	p.JWTKey = "k3y"
	for _, name := range []string{AralezMain, AralezUpstreams} {
		b, err := Render(name, p)
		if err != nil {
			t.Fatalf("Render(%s) error: %v", name, err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatalf("Render(%s) is not YAML: %v\n%s", name, err, b)
		}
	}
	p.AdminAddr, p.MasterKey = "127.0.0.1:18185", "k"
	b, _ := Render(AralezMain, p)
	for _, want := range []string{"config_api_enabled: true", `config_address: "127.0.0.1:18185"`, `master_key: "k"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Render(%s) with AdminAddr lacks %q:\n%s", AralezMain, want, b)
		}
	}
	b, _ = Render(AralezUpstreams, p)
	var u struct {
		Upstreams map[string]struct {
			Paths map[string]struct {
				Servers       []string `yaml:"servers"`
				RateLimit     int      `yaml:"rate_limit"`
				Authorization struct {
					Type string `yaml:"type"`
					Data string `yaml:"data"`
				} `yaml:"authorization"`
			} `yaml:"paths"`
		} `yaml:"upstreams"`
	}
	if err := yaml.Unmarshal(b, &u); err != nil {
		t.Fatal(err)
	}
	root := u.Upstreams["DEFAULT"].Paths["/"]
	if len(root.Servers) != 2 || root.RateLimit != 1000000 || root.Authorization.Type != "jwt" || root.Authorization.Data != "k3y" {
		t.Errorf("Render(%s) DEFAULT / = %+v; want 2 servers, rate_limit 1000000, jwt k3y", AralezUpstreams, root)
	}

	p = testParams(t, "aralez", 10000)
	b, err := Render(AralezUpstreams, p)
	if err != nil {
		t.Fatal(err)
	}
	u.Upstreams = nil
	if err := yaml.Unmarshal(b, &u); err != nil {
		t.Fatal(err)
	}
	if len(u.Upstreams) != 10000 || len(u.Upstreams["h10000.bench.test"].Paths["/"].Servers) != 2 {
		t.Errorf("Render(%s) with 10000 hosts: %d hosts; want 10000 with 2 servers each", AralezUpstreams, len(u.Upstreams))
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	p := testParams(t, "nginx", 0)
	if _, err := Render("nope", p); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf("Render(nope) error = %v; want ErrUnknownTemplate", err)
	}
	bad := p
	bad.HTTPAddr = "10.0.0.1:80"
	if _, err := Render(Nginx, bad); err == nil || !strings.Contains(err.Error(), "not a loopback") {
		t.Errorf("Render with 10.0.0.1 error = %v; want not a loopback", err)
	}
	bad = p
	bad.Threads = 0
	if _, err := Render(Nginx, bad); err == nil || !strings.Contains(err.Error(), "Threads 0") {
		t.Errorf("Render with Threads 0 error = %v; want Threads 0", err)
	}
}

// TestValidatePeers runs each peer's own checker on the rendered config when
// the peer is installed (bench/setup installs them), so a broken template
// is caught by make test rather than in a ten-minute run.
func TestValidatePeers(t *testing.T) {
	t.Parallel()
	variants := []struct {
		name                     string
		hosts, maxClients, cache int
	}{
		{"plain", 0, 0, 0}, {"hosts", 10000, 0, 0}, {"sweep", 0, 10000, 0}, {"cache", 0, 0, 64},
	}
	for _, v := range variants {
		for _, name := range []string{Nginx, HAProxy, Caddy} {
			t.Run(fmt.Sprintf("%s/%s", name, v.name), func(t *testing.T) {
				t.Parallel()
				if name == Caddy && v.maxClients+v.cache > 0 {
					t.Skip("the Caddyfile has no sweep sizing and no cache")
				}
				argv := ValidateCommand(name, "x", "y")
				if _, err := exec.LookPath(argv[0]); err != nil {
					t.Skipf("%s not installed (run bench/setup)", argv[0])
				}
				p := testParams(t, strings.SplitN(name, ".", 2)[0], v.hosts)
				p.MaxClients, p.CacheMB = v.maxClients, v.cache
				if v.cache > 0 {
					p.CacheDir = filepath.Join(p.RunDir, "cache")
				}
				writeCert(t, p)
				b, err := Render(name, p)
				if err != nil {
					t.Fatal(err)
				}
				conf := filepath.Join(p.RunDir, name)
				if err := os.WriteFile(conf, b, 0o644); err != nil {
					t.Fatal(err)
				}
				env := append(os.Environ(), "HOME="+p.RunDir, "XDG_DATA_HOME="+p.RunDir, "XDG_CONFIG_HOME="+p.RunDir)
				if err := Validate(context.Background(), name, conf, p.RunDir, env); err != nil {
					t.Errorf("Validate(%s) = %v", name, err)
				}
			})
		}
	}
	t.Run("upstream-nginx", func(t *testing.T) {
		t.Parallel()
		if _, err := exec.LookPath("nginx"); err != nil {
			t.Skip("nginx not installed (run bench/setup)")
		}
		dir := t.TempDir()
		up := UpstreamParams{Name: "up1", Addr: "127.0.0.1:19101", StatsAddr: "127.0.0.1:19201",
			Body100: "{}", DataDir: dir, RunDir: dir, LogDir: dir}
		b, err := Render(UpstreamNginx, up)
		if err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "up.conf")
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Validate(context.Background(), UpstreamNginx, conf, dir, nil); err != nil {
			t.Errorf("Validate(upstream) = %v", err)
		}
	})
}

// TestRenderAralezConfD: the conf.d files of the spread reload, beside an
// upstreams file without hosts, load as aralez's routing table with every
// host and its headers; log_level follows LogLevel.
func TestRenderAralezConfD(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := testParams(t, "aralez", 5)
	for i, hosts := range [][]string{p.Hosts[:3], p.Hosts[3:]} {
		q := p
		q.Hosts = hosts
		b, err := Render(AralezConfD, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "conf.d", fmt.Sprintf("%03d.yaml", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "upstreams.yaml"), []byte("upstreams: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := config.LoadUpstreams(filepath.Join(dir, "upstreams.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Hosts) != 5 || u.Hosts[4].Name != "h00005.bench.test" || len(u.Hosts[4].Paths[0].Servers) != 2 ||
		u.Hosts[4].Paths[0].Policy.ClientHeaders[0] != (config.Header{Name: "X-Served-Via", Value: "aralez"}) {
		t.Errorf("conf.d table = %+v; want 5 hosts with 2 servers and X-Served-Via: aralez", u.Hosts)
	}
	p.LogLevel = "info"
	checkRender(t, AralezMain, p, []string{"log_level: info\n"}, nil)
}
