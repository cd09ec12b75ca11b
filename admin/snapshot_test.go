package admin

import (
	"testing"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/proxy"
)

const statusDoc = `rate_limit: 7
to_https: true
upstreams:
  app.test:
    paths:
      "/":
        load_balance: least_conn
        servers: ["127.0.0.1:9101 weight=3", "127.0.0.1:9102 backup"]
      "/api":
        to_https: false
        rate_limit: 20
        healthcheck: false
        servers: ["127.0.0.1:9103"]
  other.test:
    paths:
      "/":
        redirect_to: "https://app.test"
`

func TestSnapshotStatus(t *testing.T) {
	t.Parallel()
	up, err := config.ParseUpstreams("<test>", []byte(statusDoc))
	if err != nil {
		t.Fatal(err)
	}
	// An exact path beside the prefix of the same path (issue 14).
	h := &up.Hosts[0]
	h.Paths = append(h.Paths, config.Path{Prefix: "/api", Match: config.MatchExact, RedirectTo: "https://exact.test",
		LoadBalance: config.DefaultLoadBalance})
	reg := proxy.NewRegistry(proxy.UpstreamOptions{})
	snap, err := proxy.Compile(&config.Config{Upstreams: *up}, reg)
	if err != nil {
		t.Fatal(err)
	}
	snap.Generation, snap.Digest = 3, "d1"
	reg.Backends().Get("127.0.0.1:9102").SetUp(false)

	v := SnapshotStatus{
		Snapshot:  func() *proxy.Snapshot { return snap },
		Upstreams: func() *config.Upstreams { return up },
	}.Status()
	if v.Generation != 3 || v.Digest != "d1" || len(v.Hosts) != 2 {
		t.Fatalf("Status() = gen %d digest %q hosts %d; want 3, d1, 2", v.Generation, v.Digest, len(v.Hosts))
	}
	paths := map[string]PathStatus{}
	for _, h := range v.Hosts {
		for _, p := range h.Paths {
			paths[h.Name+p.Prefix] = p
		}
	}
	root, api, other, exact := paths["app.test/"], paths["app.test/api"], paths["other.test/"], paths["app.test=/api"]
	tests := []struct {
		name      string
		got, want any
	}{
		{"root lb", root.LoadBalance, "least_conn"},
		{"root to_https from global", root.ToHTTPS, true},
		{"root rate_limit from global", root.RateLimit, 7},
		{"root healthcheck", root.HealthCheck, true},
		{"root backends", len(root.Backends), 2},
		{"api to_https path wins", api.ToHTTPS, false},
		{"api rate_limit", api.RateLimit, 20},
		{"api healthcheck off", api.HealthCheck, false},
		{"redirect", other.RedirectTo, "https://app.test"},
		{"redirect backends", len(other.Backends), 0},
		{"exact path apart from its prefix", exact.RedirectTo, "https://exact.test"},
		{"exact path's own policy", exact.RateLimit, 7},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v; want %v", tt.name, tt.got, tt.want)
		}
	}
	if len(root.Backends) == 2 {
		b0, b1 := root.Backends[0], root.Backends[1]
		if b0.Addr != "127.0.0.1:9101" || b0.Weight != 3 || b0.Backup || !b0.Up {
			t.Errorf("backend 0 = %+v; want 127.0.0.1:9101 weight 3 up", b0)
		}
		if b1.Addr != "127.0.0.1:9102" || !b1.Backup || b1.Up {
			t.Errorf("backend 1 = %+v; want 127.0.0.1:9102 backup down", b1)
		}
	}

	if v := (SnapshotStatus{Snapshot: func() *proxy.Snapshot { return nil }}).Status(); len(v.Hosts) != 0 {
		t.Errorf("Status(nil snapshot) hosts = %d; want 0", len(v.Hosts))
	}
}
