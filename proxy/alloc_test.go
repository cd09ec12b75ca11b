//go:build !race

package proxy

import (
	"testing"
	"time"

	"github.com/aralez-go/aralez/metrics"
)

// TestRequestPathAllocs guards the zero-allocation contract of the request
// path (STYLE §4): parse, route, pick, rewrite and forward a request whose
// bodies are under the buffer threshold.
// It covers the plain path, a rate limit that never triggers, a cached
// JWT check and a response cache hit (issue 15), and the plain path to
// an upstream on loopback TCP through the proxy's own upstream
// connections (issue 11).
func TestRequestPathAllocs(t *testing.T) {
	vs := policyVariants(t)
	vs = append(vs, vs[0])
	vs[len(vs)-1].name = "plain-tcp"
	for _, v := range vs {
		pb := newPathBench(t, v.cfg, v.req, benchBody).withCache(t, v.cfg)
		if v.name == "plain-tcp" {
			pb.overTCP(t)
		}
		for i := 0; i < 100; i++ { // warm pools and the upstream connection
			pb.do(t)
		}
		if xc := string(pb.ctx.Response.Header.Peek("X-Cache")); v.cfg.Main.CacheSizeMB > 0 && xc != "HIT" {
			t.Fatalf("%s: X-Cache = %q; want HIT", v.name, xc)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if st := pb.do(t); st != 200 {
				t.Fatalf("%s: status %d", v.name, st)
			}
		})
		if allocs != 0 {
			t.Errorf("AllocsPerRun(request path, %s) = %v; want 0", v.name, allocs)
		}
	}
}

// TestRequestPathAllocsObserved repeats the guard with Prometheus metrics
// switched on. (The access log's records come from a pool that its writer
// goroutine refills; accesslog's own BenchmarkLog measures that path.)
func TestRequestPathAllocsObserved(t *testing.T) {
	pb := newPathBench(t, benchConfig(1), benchRequest, benchBody)
	pb.e.opts.Metrics = metrics.New()
	for i := 0; i < 100; i++ {
		pb.do(t)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if st := pb.do(t); st != 200 {
			t.Fatalf("status %d", st)
		}
	})
	if allocs != 0 {
		t.Errorf("AllocsPerRun(request path with metrics) = %v; want 0", allocs)
	}
}

// TestIdleCheckAllocs: the check of an idle upstream connection before
// reuse (upstreamConn.alive) allocates nothing (issue 11).
func TestIdleCheckAllocs(t *testing.T) {
	c, _ := tcpPair(t)
	uc := newUpstreamConn(c, time.Minute)
	if allocs := testing.AllocsPerRun(1000, func() {
		if !uc.alive() {
			t.Fatal("open connection reported closed")
		}
	}); allocs != 0 {
		t.Errorf("AllocsPerRun(upstreamConn.alive) = %v; want 0", allocs)
	}
}
