package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/aralez-go/aralez/config"
)

// routeConfig builds a config whose every path entry names one server;
// the route's Host+Prefix identifies it in assertions.
func routeConfig(hosts map[string][]string) *config.Config {
	cfg := &config.Config{}
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	for _, h := range names {
		host := config.Host{Name: h}
		for _, p := range hosts[h] {
			host.Paths = append(host.Paths, config.Path{Prefix: p, Servers: []config.Server{{Address: "127.0.0.1:9", Weight: 1}}})
		}
		cfg.Upstreams.Hosts = append(cfg.Upstreams.Hosts, host)
	}
	return cfg
}

func TestSnapshotMatch(t *testing.T) {
	t.Parallel()
	cfg := routeConfig(map[string][]string{
		"example.com":   {"/", "/api", "/api/v2", "/static/"},
		"*.example.com": {"/"},
		"DEFAULT":       {"/", "/admin"},
		"onlyapi.test":  {"/api"},
	})
	snap, err := Compile(cfg, newTestResolver())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, path, want string
	}{
		{name: "exact root", host: "example.com", path: "/", want: "example.com /"},
		{name: "prefix itself", host: "example.com", path: "/api", want: "example.com /api"},
		{name: "below prefix", host: "example.com", path: "/api/x", want: "example.com /api"},
		{name: "segment boundary", host: "example.com", path: "/apix", want: "example.com /"},
		{name: "longest prefix", host: "example.com", path: "/api/v2/users", want: "example.com /api/v2"},
		{name: "v2x is not v2", host: "example.com", path: "/api/v2x", want: "example.com /api"},
		{name: "dir prefix below", host: "example.com", path: "/static/a.css", want: "example.com /static/"},
		{name: "dir prefix itself without slash", host: "example.com", path: "/static", want: "example.com /"},
		{name: "wildcard one label", host: "www.example.com", path: "/x", want: "*.example.com /"},
		{name: "wildcard not two labels", host: "a.b.example.com", path: "/x", want: "DEFAULT /"},
		{name: "wildcard not apex", host: "example.org", path: "/admin/x", want: "DEFAULT /admin"},
		{name: "default", host: "unknown.test", path: "/", want: "DEFAULT /"},
		{name: "no host goes to default", host: "", path: "/admin", want: "DEFAULT /admin"},
		{name: "no fallback without root", host: "onlyapi.test", path: "/other", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := snap.Match([]byte(tt.host), []byte(tt.path))
			got := ""
			if r != nil {
				got = r.Host + " " + r.Prefix
			}
			if got != tt.want {
				t.Fatalf("Match(%q, %q) = %q; want %q", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

// TestSnapshotMatchExact: an exact route (config.MatchExact, issue 14)
// matches its path alone and beats every prefix of its host; it and a
// prefix route of the same path are two routes with two keys.
func TestSnapshotMatchExact(t *testing.T) {
	t.Parallel()
	srv := []config.Server{{Address: "127.0.0.1:9", Weight: 1}}
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{{Name: "example.com", Paths: []config.Path{
		{Prefix: "/", Servers: srv},
		{Prefix: "/api", Servers: srv},
		{Prefix: "/api", Match: config.MatchExact, Servers: srv},
		{Prefix: "/api/v1/users", Servers: srv},
		{Prefix: "/api/v1", Match: config.MatchExact, Servers: srv},
		{Prefix: "/dir/", Match: config.MatchExact, Servers: srv},
	}}}
	snap, err := Compile(cfg, newTestResolver())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{"/api", "example.com=/api"},
		{"/api/", "example.com/api"},
		{"/api/x", "example.com/api"},
		{"/api/v1", "example.com=/api/v1"},
		{"/api/v1/users", "example.com/api/v1/users"},
		{"/dir/", "example.com=/dir/"},
		{"/dir", "example.com/"},
		{"/dir/x", "example.com/"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			r := snap.Match([]byte("example.com"), []byte(tt.path))
			if r == nil || r.Name != tt.want {
				t.Fatalf("Match(%q) = %v; want %s", tt.path, r, tt.want)
			}
		})
	}
	exact := snap.Match([]byte("example.com"), []byte("/api"))
	prefix := snap.Match([]byte("example.com"), []byte("/api/x"))
	if !exact.Exact || prefix.Exact || exact.Key == prefix.Key || exact.Key != RouteKey("example.com", "=/api") {
		t.Errorf("exact /api: Exact %v key %#x; prefix /api: Exact %v key %#x; want distinct keys, RouteKey(example.com, =/api) for the exact one",
			exact.Exact, exact.Key, prefix.Exact, prefix.Key)
	}
	bad := &config.Config{}
	bad.Upstreams.Hosts = []config.Host{{Name: "a.test", Paths: []config.Path{{Prefix: "/", Match: "regex", Servers: srv}}}}
	if _, err := Compile(bad, newTestResolver()); err == nil || !strings.Contains(err.Error(), `unknown path match "regex"`) {
		t.Errorf("Compile(match regex) error = %v; want unknown path match", err)
	}
}

func TestSnapshotMatchNoDefault(t *testing.T) {
	t.Parallel()
	snap, err := Compile(routeConfig(map[string][]string{"a.test": {"/"}}), newTestResolver())
	if err != nil {
		t.Fatal(err)
	}
	if r := snap.Match([]byte("b.test"), []byte("/")); r != nil {
		t.Fatalf("Match(b.test) = %s %s; want nil", r.Host, r.Prefix)
	}
}

func TestMergeHeaders(t *testing.T) {
	t.Parallel()
	global := []config.Header{{Name: "X-A", Value: "g"}, {Name: "X-B", Value: "g"}}
	path := []config.Header{{Name: "x-a", Value: "p1"}, {Name: "X-A", Value: "p2"}}
	ops := mergeHeaders(global, nil, path)
	var got []string
	for _, o := range ops {
		mode := "set"
		if o.add {
			mode = "add"
		}
		got = append(got, mode+" "+string(o.Name)+"="+string(o.Value))
	}
	want := []string{"set X-B=g", "set x-a=p1", "add X-A=p2"}
	if len(got) != len(want) {
		t.Fatalf("mergeHeaders = %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("mergeHeaders = %v; want %v", got, want)
		}
	}
}

// TestKeylessJWTRouteRefusesAll: a jwt route without a key (no data, no
// master_key) compiles, as Aralez accepts such files, and answers 401 to
// every request, a well-formed token included (issue 12).
func TestKeylessJWTRouteRefusesAll(t *testing.T) {
	t.Parallel()
	cfg := routeConfig(map[string][]string{"jwt.test": {"/"}})
	cfg.Upstreams.Hosts[0].Paths[0].Policy.Authorization = &config.Auth{Type: "jwt"}
	snap, err := Compile(cfg, newTestResolver())
	if err != nil {
		t.Fatalf("Compile(jwt route without a key) = %v; want it accepted", err)
	}
	p := New(Options{})
	for _, authz := range []string{"", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln"} {
		var r Request
		var d Decision
		r.Reset()
		d.Reset()
		r.Proto = []byte("HTTP/1.1")
		if authz != "" {
			r.See([]byte("Authorization"), []byte(authz))
		}
		if st := p.SetTarget(&r, []byte("/x"), []byte("jwt.test")); st != 0 {
			t.Fatalf("SetTarget = %d", st)
		}
		p.Route(snap, &r, &d)
		p.Admit(context.Background(), &r, &d)
		if d.Action != ActRespond || d.Status != 401 {
			t.Errorf("Authorization %q: action %d status %d; want 401", authz, d.Action, d.Status)
		}
	}
}
