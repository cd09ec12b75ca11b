//go:build !race

package proxy

import (
	"testing"

	"github.com/aralez-go/aralez/metrics"
)

// TestRequestPathAllocs guards the zero-allocation contract of the request
// path (STYLE §4): parse, route, pick, rewrite and forward a request whose
// bodies are under the buffer threshold.
// It covers the plain path, a rate limit that never triggers, a cached
// JWT check and a response cache hit (issue 15).
func TestRequestPathAllocs(t *testing.T) {
	for _, v := range policyVariants(t) {
		pb := newPathBench(t, v.cfg, v.req, benchBody).withCache(t, v.cfg)
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
