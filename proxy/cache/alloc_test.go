//go:build !race

package cache

import (
	"testing"
	"time"
)

// TestLookupHitAllocs guards the hot-path contract: a fresh hit, Age and
// header replay allocate nothing.
func TestLookupHitAllocs(t *testing.T) {
	c, r := benchCache(t)
	now := time.Now().UnixNano()
	buf := make([]byte, 0, 32)
	allocs := testing.AllocsPerRun(1000, func() {
		res := c.Lookup(r, now)
		if res.Outcome != Hit {
			t.Fatal(res.Outcome)
		}
		buf = res.Entry.AppendAge(buf[:0], now)
		for off := 0; ; {
			_, _, next := res.Entry.Header().Next(off)
			if next < 0 {
				break
			}
			off = next
		}
	})
	if allocs != 0 {
		t.Errorf("a hit allocates %v times; want 0", allocs)
	}
}
