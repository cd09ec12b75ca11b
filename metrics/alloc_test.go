//go:build !race

package metrics

import "testing"

func TestObserveAllocatesNothing(t *testing.T) {
	m := New()
	up := m.UpstreamIndex("127.0.0.1:8080")
	route := m.CacheRouteIndex("ex.com/")
	post := []byte("POST")
	m.Observe(post, ProtoHTTP11, 503, up, 0.01)
	if n := testing.AllocsPerRun(1000, func() {
		m.Observe(post, ProtoHTTP11, 503, up, 0.01)
		m.Retry()
		m.RateLimited()
		m.AuthRejected()
		m.ObserveCache(route, CacheHit)
	}); n != 0 {
		t.Errorf("Observe allocs = %v; want 0", n)
	}
}
