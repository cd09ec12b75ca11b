package ratelimit_test

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/redistest"
	"github.com/aralez-go/aralez/policy/ratelimit"
	"github.com/aralez-go/aralez/policy/ratelimit/redisstore"
)

// BenchmarkAllowNeverTriggered is an enabled limit far above the
// traffic: one Allow per request against 65,536 clients, as a proxy
// would see it, without a store ("local") and, in the same run, with a
// real redis-server and the exchange loop running every 100 ms
// ("redis"; issue 17).
func BenchmarkAllowNeverTriggered(b *testing.B) {
	for _, store := range []bool{false, true} {
		name := "local"
		if store {
			name = "redis"
		}
		b.Run(name, func(b *testing.B) {
			var o ratelimit.Options
			if store {
				srv := redistest.Start(b)
				st, err := redisstore.New(redisstore.Options{Address: srv.Addr})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				o.Store = st
			}
			l := ratelimit.New(o)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { l.Run(ctx, time.Hour); close(done) }()
			defer func() { cancel(); <-done }()
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
