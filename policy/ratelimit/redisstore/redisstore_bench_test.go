package redisstore

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/redistest"
	"github.com/aralez-go/aralez/policy/ratelimit"
)

// BenchmarkAllowNeverTriggered compares the request path of a limit far
// above the traffic with and without a store (a real redis-server, the
// exchange loop running every 100 ms) in the same run: 65,536 clients,
// one Allow per request (issue 17).
func BenchmarkAllowNeverTriggered(b *testing.B) {
	srv := redistest.Start(b)
	for _, tt := range []struct {
		name  string
		store bool
	}{{"local", false}, {"redis", true}} {
		b.Run(tt.name, func(b *testing.B) {
			var l *ratelimit.Limiter
			if tt.store {
				l = fleetOf(b, srv.Addr, 1, 100*time.Millisecond)[0]
			} else {
				l = ratelimit.New(ratelimit.Options{})
			}
			const keys = 1 << 16
			ks := make([]ratelimit.Key, keys)
			now := time.Now().UnixNano()
			for i := range ks {
				ks[i] = ratelimit.MakeKey(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1, 0)
				l.Allow(ks[i], 1<<30, now)
			}
			var next atomic.Uint32
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(7919)
				for pb.Next() {
					i++
					l.Allow(ks[i%keys], 1<<30, now)
				}
			})
		})
	}
}
