//go:build !race

package redisstore

import (
	"net/netip"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/redistest"
	"github.com/aralez-go/aralez/policy/ratelimit"
)

// TestFleetHotPathAllocs guards the zero-allocation contract of the
// request path with a store: a key already seen costs no allocation
// while the exchange loop runs against a real redis-server (issue 17).
func TestFleetHotPathAllocs(t *testing.T) {
	srv := redistest.Start(t)
	ls := fleetOf(t, srv.Addr, 1, 10*time.Millisecond)
	l := ls[0]
	c := netip.MustParseAddr("2001:db8::1")
	now := func() int64 { return time.Now().UnixNano() }
	l.Allow(ratelimit.MakeKey(c, 1, 0), 1<<30, now())
	l.Count4xx(ratelimit.MakeKey(c, 1, 0), now())
	deadline := time.Now().Add(5 * time.Second)
	for l.FleetStats().Keys == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no key exchanged within 5 s")
		}
		l.Allow(ratelimit.MakeKey(c, 1, 0), 1<<30, now())
	}
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"MakeKey+Allow", func() { l.Allow(ratelimit.MakeKey(c, 1, 0), 1<<30, now()) }},
		{"MakeKey+Blocked", func() { l.Blocked(ratelimit.MakeKey(c, 1, 0), 10, now()) }},
		{"MakeKey+Count4xx", func() { l.Count4xx(ratelimit.MakeKey(c, 1, 0), now()) }},
		{"refused Allow", func() { l.Allow(ratelimit.MakeKey(c, 1, 0), 1, now()) }},
	} {
		if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
			t.Errorf("%s: AllocsPerRun = %v; want 0", tt.name, n)
		}
	}
}
