package proxy

import (
	"testing"

	"github.com/aralez-go/aralez/internal/redistest"
	"github.com/aralez-go/aralez/policy/ratelimit"
	"github.com/aralez-go/aralez/policy/ratelimit/redisstore"
)

// BenchmarkRequestPathRateLimitStore is the never-triggered rate-limit
// scenario of BenchmarkRequestPath, in one run without a store ("local")
// and with a real redis-server and its exchange loop ("redis"): the
// store must cost the request path nothing, and allocate nothing
// (issue 17).
func BenchmarkRequestPathRateLimitStore(b *testing.B) {
	cfg := benchConfig(1)
	cfg.Upstreams.Policy.RateLimit = 1 << 30
	for _, name := range []string{"local", "redis"} {
		b.Run(name, func(b *testing.B) {
			var o Options
			if name == "redis" {
				srv := redistest.Start(b)
				st, err := redisstore.New(redisstore.Options{Address: srv.Addr})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				o.LimiterOptions = ratelimit.Options{Store: st}
			}
			pb := newPathBenchWith(b, cfg, benchRequest, benchBody, o)
			b.ReportAllocs()
			for b.Loop() {
				if st := pb.do(b); st != 200 {
					b.Fatalf("status %d", st)
				}
			}
		})
	}
}
