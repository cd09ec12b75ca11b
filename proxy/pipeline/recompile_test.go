package pipeline

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
)

// reloadConfig builds a table of fresh values (nothing shared with an
// earlier call): the extra hosts, a.test with two paths, b.test routed
// to bServer, a wildcard and DEFAULT with an exact route.
func reloadConfig(bServer string, extra ...string) *config.Config {
	srv := func(addr string) []config.Server { return []config.Server{{Address: addr, Weight: 1}} }
	off := false
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{
		{Name: "a.test", Paths: []config.Path{
			{Prefix: "/", Servers: srv("127.0.0.1:1")},
			{Prefix: "/api", Servers: srv("127.0.0.1:2"), HealthCheck: &off},
		}},
		{Name: "b.test", Paths: []config.Path{{Prefix: "/", Servers: srv(bServer)}}},
		{Name: "*.w.test", Paths: []config.Path{{Prefix: "/", Servers: srv("127.0.0.1:3")}}},
		{Name: "DEFAULT", Paths: []config.Path{
			{Prefix: "/", Servers: srv("127.0.0.1:4")},
			{Prefix: "/exact", Match: config.MatchExact, Servers: srv("127.0.0.1:5")},
		}},
	}
	// Extra hosts come first, so that the routes after them move.
	var hosts []config.Host
	for _, h := range extra {
		hosts = append(hosts, config.Host{Name: h, Paths: []config.Path{{Prefix: "/", Servers: srv("127.0.0.1:6")}}})
	}
	cfg.Upstreams.Hosts = append(hosts, cfg.Upstreams.Hosts...)
	return cfg
}

// probes are the requests every snapshot of the tests is asked about.
var reloadProbes = [][2]string{
	{"a.test", "/"}, {"a.test", "/api/x"}, {"b.test", "/"}, {"x.w.test", "/"},
	{"other.test", "/"}, {"other.test", "/exact"}, {"c.test", "/"},
}

// routeView is what a route does, for comparing two snapshots.
func routeView(r *Route) string {
	if r == nil {
		return "no route"
	}
	var addrs []string
	for _, m := range r.Pool().Members() {
		addrs = append(addrs, m.Backend.Addr())
	}
	return fmt.Sprintf("%s %v %d", r.Name, addrs, r.Key)
}

// checkSame fails unless got routes every probe as want does and has
// the same routes in the same order, backends and health check targets.
func checkSame(t *testing.T, step string, got, want *Snapshot) {
	t.Helper()
	for _, p := range reloadProbes {
		if g, w := routeView(got.Match([]byte(p[0]), []byte(p[1]))), routeView(want.Match([]byte(p[0]), []byte(p[1]))); g != w {
			t.Errorf("%s: %s%s routes to %s; want %s", step, p[0], p[1], g, w)
		}
	}
	names := func(s *Snapshot) []string {
		var out []string
		for _, r := range s.Routes {
			out = append(out, r.Name)
		}
		return out
	}
	if g, w := names(got), names(want); !slices.Equal(g, w) || !slices.Equal(got.Backends(), want.Backends()) || got.Sum != want.Sum {
		t.Errorf("%s: routes %v, backends %v; want %v, %v (and the same Sum)", step, g, got.Backends(), w, want.Backends())
	}
	targets := func(s *Snapshot) []string {
		var out []string
		for _, t := range s.HealthTargets() {
			out = append(out, t.Backend.Addr()+" "+t.Host+t.Path)
		}
		slices.Sort(out)
		return out
	}
	if g, w := targets(got), targets(want); !slices.Equal(g, w) {
		t.Errorf("%s: health targets %v; want %v", step, g, w)
	}
}

// pool returns the balancer pool of the route for host and path.
func pool(s *Snapshot, host, path string) *balancer.Pool {
	return s.Match([]byte(host), []byte(path)).Pool()
}

// TestRecompile: the routes of unchanged hosts are taken from the
// previous snapshot (same pool), changed and new hosts are compiled, and
// the result routes like a fresh Compile; a change of what hosts
// inherit, or another resolver, compiles everything (issue 16).
func TestRecompile(t *testing.T) {
	t.Parallel()
	res := newTestResolver()
	first, err := Compile(reloadConfig("127.0.0.1:7"), res)
	if err != nil {
		t.Fatal(err)
	}
	firstView := routeView(first.Match([]byte("b.test"), []byte("/")))

	cfg := reloadConfig("127.0.0.1:8", "c.test")
	next, err := Recompile(first, cfg, res)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Compile(cfg, res)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "one host changed, one added", next, fresh)
	for _, p := range [][2]string{{"a.test", "/"}, {"a.test", "/api"}, {"x.w.test", "/"}, {"other.test", "/"}, {"other.test", "/exact"}} {
		if next.Match([]byte(p[0]), []byte(p[1])) != first.Match([]byte(p[0]), []byte(p[1])) {
			t.Errorf("%s%s: unchanged host compiled again; want its route taken", p[0], p[1])
		}
	}
	if next.Sum != cfg.Upstreams.Sum() {
		t.Errorf("Sum = %x; want the table's config.Upstreams.Sum %x", next.Sum, cfg.Upstreams.Sum())
	}
	if pool(next, "b.test", "/") == pool(first, "b.test", "/") {
		t.Error("b.test changed but kept its old pool")
	}
	if got := routeView(first.Match([]byte("b.test"), []byte("/"))); got != firstView {
		t.Errorf("the previous snapshot changed: b.test routes to %s; want %s", got, firstView)
	}

	// A taken route is taken again by the snapshot after.
	again, err := Recompile(next, reloadConfig("127.0.0.1:8", "c.test"), res)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "unchanged", again, fresh)
	if pool(again, "c.test", "/") != pool(next, "c.test", "/") || pool(again, "a.test", "/") != pool(first, "a.test", "/") {
		t.Error("unchanged table: hosts compiled again")
	}

	changes := []struct {
		name   string
		change func(*config.Config)
		res    Resolver
	}{
		{name: "global header", change: func(c *config.Config) {
			c.Upstreams.Policy.ClientHeaders = []config.Header{{Name: "X-A", Value: "1"}}
		}},
		{name: "sticky sessions", change: func(c *config.Config) { c.Upstreams.StickySessions = 60 }},
		{name: "main config", change: func(c *config.Config) { c.Main.MasterKey = "k" }},
		{name: "another resolver", res: newTestResolver()},
	}
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			cfg := reloadConfig("127.0.0.1:8", "c.test")
			r := Resolver(res)
			if tt.change != nil {
				tt.change(cfg)
			}
			if tt.res != nil {
				r = tt.res
			}
			got, err := Recompile(next, cfg, r)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Compile(cfg, r)
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, tt.name, got, want)
			if pool(got, "a.test", "/") == pool(next, "a.test", "/") {
				t.Errorf("%s: a route was taken; want every host compiled", tt.name)
			}
		})
	}
}

// TestRecompileError: a host that does not compile fails Recompile and
// leaves the previous snapshot as it was.
func TestRecompileError(t *testing.T) {
	t.Parallel()
	res := newTestResolver()
	first, err := Compile(reloadConfig("127.0.0.1:7"), res)
	if err != nil {
		t.Fatal(err)
	}
	bad := reloadConfig("no-port")
	if s, err := Recompile(first, bad, res); err == nil {
		t.Fatalf("Recompile(bad server) = %v; want an error", s)
	}
	if got := routeView(first.Match([]byte("b.test"), []byte("/"))); got != "b.test/ [127.0.0.1:7] "+fmt.Sprint(RouteKey("b.test", "/")) {
		t.Errorf("after a failed Recompile the previous snapshot routes b.test to %s", got)
	}
}
