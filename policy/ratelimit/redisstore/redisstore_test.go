package redisstore

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aralez-go/aralez/internal/redistest"
	"github.com/aralez-go/aralez/policy/ratelimit"
)

func newStore(t testing.TB, addr string) *Store {
	t.Helper()
	s, err := New(Options{Address: addr, InstanceTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exchange(t *testing.T, s *Store, items ...ratelimit.Exchange) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := s.Exchange(ctx, items)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return n
}

// TestExchangeSharesCounts runs two stores (two instances) against one
// real redis-server: what one admits moves the other's view of the
// bucket, 4xx counts add up per window, both instances are counted, and
// the keys carry only stable identities (issue 17).
func TestExchangeSharesCounts(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := newStore(t, srv.Addr), newStore(t, srv.Addr)
	k := ratelimit.MakeKey(netip.MustParseAddr("203.0.113.7"), 0xbeef, 3)
	k6 := ratelimit.MakeKey(netip.MustParseAddr("2001:db8:1:2::99"), 0xbeef, 0)
	const iv = 10 * time.Millisecond // 100 requests per second
	w := uint32(time.Now().Unix())

	ia := ratelimit.Exchange{Key: k, Interval: iv, MaxAhead: 2 * time.Second, Admitted: 30, X4Limit: 5, X4Window: w, X4Count: 3}
	exchange(t, a, ia)
	ib := ratelimit.Exchange{Key: k, Interval: iv, MaxAhead: 2 * time.Second, Admitted: 20, X4Limit: 5, X4Window: w, X4Count: 2}
	if n := exchange(t, b, ib); n != 2 {
		t.Errorf("instances = %d; want 2", n)
	}
	// 50 requests at 10 ms each: the fleet's TAT is about 500 ms ahead
	// (less the few ms between the two exchanges).
	ib.Admitted, ib.X4Count, ib.Ahead = 0, 0, 0
	got := []ratelimit.Exchange{ib}
	exchange(t, b, got...)
	if d := got[0].Ahead; d < 400*time.Millisecond || d > 500*time.Millisecond {
		t.Errorf("Ahead after 50 requests at 10 ms = %v; want about 500ms", d)
	}
	if got[0].X4Fleet != 5 {
		t.Errorf("X4Fleet = %d; want 5 (3 + 2)", got[0].X4Fleet)
	}

	// The cap: a burst far over the limit moves the TAT at most MaxAhead.
	big := ratelimit.Exchange{Key: k6, Interval: iv, MaxAhead: 1500 * time.Millisecond, Admitted: 1000}
	items := []ratelimit.Exchange{big}
	exchange(t, a, items...)
	if d := items[0].Ahead; d != 1500*time.Millisecond {
		t.Errorf("Ahead after 1000 requests capped at 1.5 s = %v; want 1.5s", d)
	}

	// Key names: prefix, client (IPv6 as its /64), host and route in hex.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	for _, name := range []string{
		"aralez:rl:{203.0.113.7,beef,3}",
		"aralez:rl:{2001:db8:1:2::/64,beef,0}",
		"aralez:instances",
	} {
		if n, err := rdb.Exists(ctx, name).Result(); err != nil || n != 1 {
			t.Errorf("EXISTS %s = %d, %v; want 1", name, n, err)
		}
	}
	x4 := "aralez:x4:{203.0.113.7,beef,3}:" + strconv.FormatUint(uint64(w), 10)
	if v, err := rdb.Get(ctx, x4).Int64(); err != nil || v != 5 {
		t.Errorf("GET %s = %d, %v; want 5", x4, v, err)
	}
	if ttl, err := rdb.PTTL(ctx, x4).Result(); err != nil || ttl <= 0 || ttl > 3*time.Second {
		t.Errorf("PTTL %s = %v, %v; want at most 3s", x4, ttl, err)
	}
}

// TestExchangeOutage pauses and then kills the server: each exchange
// fails within its context's deadline, and once the server is back
// (empty, without the scripts) exchanges work again (issue 17).
func TestExchangeOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	k := ratelimit.MakeKey(netip.MustParseAddr("192.0.2.1"), 1, 0)
	item := ratelimit.Exchange{Key: k, Interval: time.Millisecond, MaxAhead: time.Second, Admitted: 1}
	exchange(t, s, item)

	try := func(when string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Exchange(ctx, []ratelimit.Exchange{item})
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: Exchange took %v; want it bounded by its 100 ms context", when, d)
		}
		return err
	}
	srv.Stop()
	if err := try("paused"); err == nil {
		t.Error("paused server: Exchange succeeded; want an error")
	}
	srv.Kill()
	if err := try("killed"); err == nil {
		t.Error("killed server: Exchange succeeded; want an error")
	}
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for try("restarted") != nil {
		if time.Now().After(deadline) {
			t.Fatal("Exchange still fails 5 s after the server came back")
		}
	}
}
