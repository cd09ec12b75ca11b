//go:build !race

package ratelimit

import (
	"net/netip"
	"testing"
)

// TestHotPathAllocs guards the zero-allocation contract for keys already
// seen (the race detector allocates, hence the build tag).
func TestHotPathAllocs(t *testing.T) {
	l := New(Options{})
	c := netip.MustParseAddr("2001:db8::1")
	l.Allow(MakeKey(c, 1, 0), 1<<30, t0)
	l.Count4xx(MakeKey(c, 1, 0), t0)
	tests := []struct {
		name string
		f    func()
	}{
		{"MakeKey+Allow", func() { l.Allow(MakeKey(c, 1, 0), 1<<30, t0) }},
		{"MakeKey+Blocked", func() { l.Blocked(MakeKey(c, 1, 0), 10, t0) }},
		{"MakeKey+Count4xx", func() { l.Count4xx(MakeKey(c, 1, 0), t0) }},
		{"refused Allow", func() { l.Allow(MakeKey(c, 1, 0), 1, t0) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
			t.Errorf("%s: AllocsPerRun = %v; want 0", tt.name, n)
		}
	}
}
