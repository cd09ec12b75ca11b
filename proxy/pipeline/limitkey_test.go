package pipeline

import (
	"hash/fnv"
	"testing"

	"github.com/aralez-go/aralez/config"
)

// TestLimitKeysStable checks that the rate-limit counters are named by
// stable identities, so that a store shared by a fleet sees one counter
// per client, host and route in every process: the host part is FNV-1a
// of the host name, the route part the route's Key for a path-level
// limit and 0 otherwise, whatever the route's position in the table
// (issue 17).
func TestLimitKeysStable(t *testing.T) {
	t.Parallel()
	paths := func(prefixes ...string) []config.Path {
		var ps []config.Path
		for _, p := range prefixes {
			ps = append(ps, config.Path{Prefix: p, Servers: []config.Server{{Address: "10.0.0.1:80", Weight: 1}}})
		}
		return ps
	}
	a := &config.Config{}
	a.Upstreams.Policy.RateLimit = 10
	a.Upstreams.Hosts = []config.Host{{Name: "a.test", Paths: paths("/", "/api")}}
	a.Upstreams.Hosts[0].Paths[1].Policy.RateLimit = 5
	a.Upstreams.Hosts[0].Paths[1].Policy.X4xxLimit = 3
	// The same routes in another order, behind another host.
	b := &config.Config{}
	b.Upstreams.Policy.RateLimit = 10
	b.Upstreams.Hosts = []config.Host{{Name: "b.test", Paths: paths("/")}, {Name: "a.test", Paths: paths("/api", "/")}}
	b.Upstreams.Hosts[1].Paths[0].Policy.RateLimit = 5
	b.Upstreams.Hosts[1].Paths[0].Policy.X4xxLimit = 3

	policies := func(cfg *config.Config) map[string]routePolicy {
		s, err := Compile(cfg, newTestResolver())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]routePolicy{}
		for _, r := range s.Routes {
			m[r.Name] = r.policy
		}
		return m
	}
	pa, pb := policies(a), policies(b)
	h := fnv.New64a()
	h.Write([]byte("a.test"))
	for _, name := range []string{"a.test/", "a.test/api"} {
		x, y := pa[name], pb[name]
		if x.hostHash != h.Sum64() || y.hostHash != x.hostHash {
			t.Errorf("%s: hostHash = %#x, %#x; want FNV-1a of a.test %#x in both", name, x.hostHash, y.hostHash, h.Sum64())
		}
		if x.rateRoute != y.rateRoute || x.x4xxRoute != y.x4xxRoute {
			t.Errorf("%s: route parts differ between tables: %#x/%#x, %#x/%#x", name, x.rateRoute, y.rateRoute, x.x4xxRoute, y.x4xxRoute)
		}
	}
	if r := pa["a.test/api"]; r.rateRoute != RouteKey("a.test", "/api") || r.x4xxRoute != RouteKey("a.test", "/api") {
		t.Errorf("path-level limits: route parts %#x, %#x; want RouteKey(a.test, /api) %#x", r.rateRoute, r.x4xxRoute, RouteKey("a.test", "/api"))
	}
	if r := pa["a.test/"]; r.rateRoute != 0 {
		t.Errorf("global limit: route part %#x; want 0", r.rateRoute)
	}
}
