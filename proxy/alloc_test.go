//go:build !race

package proxy

import "testing"

// TestRequestPathAllocs guards the zero-allocation contract of the request
// path (STYLE §4): parse, route, pick, rewrite and forward a request whose
// bodies are under the buffer threshold.
func TestRequestPathAllocs(t *testing.T) {
	pb := newPathBench(t, benchConfig(1), benchRequest, benchBody)
	for i := 0; i < 100; i++ { // warm pools and the upstream connection
		pb.do(t)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if st := pb.do(t); st != 200 {
			t.Fatalf("status %d", st)
		}
	})
	if allocs != 0 {
		t.Fatalf("AllocsPerRun(request path) = %v; want 0", allocs)
	}
}
