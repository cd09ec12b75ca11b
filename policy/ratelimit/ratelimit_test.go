package ratelimit

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is an arbitrary Unix time in nanoseconds, on a whole second.
const t0 = int64(1_800_000_000) * second

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestMakeKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		a, b  Key
		equal bool
	}{
		{"same IPv4", MakeKey(addr("192.0.2.1"), 7, 0), MakeKey(addr("192.0.2.1"), 7, 0), true},
		{"different IPv4", MakeKey(addr("192.0.2.1"), 7, 0), MakeKey(addr("192.0.2.2"), 7, 0), false},
		{"IPv4-mapped is IPv4", MakeKey(addr("::ffff:192.0.2.1"), 7, 0), MakeKey(addr("192.0.2.1"), 7, 0), true},
		{"same IPv6 /64", MakeKey(addr("2001:db8:1:2::1"), 7, 0), MakeKey(addr("2001:db8:1:2:ffff:eeee:dddd:cccc"), 7, 0), true},
		{"zone ignored", MakeKey(addr("fe80::1%eth0"), 7, 0), MakeKey(addr("fe80::2"), 7, 0), true},
		{"different IPv6 /64", MakeKey(addr("2001:db8:1:2::1"), 7, 0), MakeKey(addr("2001:db8:1:3::1"), 7, 0), false},
		{"IPv4 is not the IPv6 prefix ::/64", MakeKey(addr("0.0.0.1"), 7, 0), MakeKey(addr("::1"), 7, 0), false},
		{"different host", MakeKey(addr("192.0.2.1"), 7, 0), MakeKey(addr("192.0.2.1"), 8, 0), false},
		{"different route", MakeKey(addr("192.0.2.1"), 7, 1), MakeKey(addr("192.0.2.1"), 7, 2), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.a == tt.b; got != tt.equal {
				t.Errorf("%v == %v = %v; want %v", tt.a.Client(), tt.b.Client(), got, tt.equal)
			}
		})
	}
}

func TestKeyClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"192.0.2.1", "192.0.2.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		if got := MakeKey(addr(tt.in), 0, 0).Client().String(); got != tt.want {
			t.Errorf("MakeKey(%s).Client() = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func TestAllowBurstRefillAndRollOver(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	k := MakeKey(addr("192.0.2.1"), 1, 0)
	const limit = 5
	for i := range limit {
		if ok, ra := l.Allow(k, limit, t0); !ok || ra != 0 {
			t.Fatalf("request %d: Allow = %v, %d; want true, 0", i, ok, ra)
		}
	}
	if ok, ra := l.Allow(k, limit, t0); ok || ra != 1 {
		t.Fatalf("request %d: Allow = %v, %d; want false, 1", limit, ok, ra)
	}
	// One token comes back every 1/limit seconds.
	step := second / limit
	if ok, _ := l.Allow(k, limit, t0+step-1); ok {
		t.Fatalf("Allow just before one refill = true; want false")
	}
	if ok, _ := l.Allow(k, limit, t0+step); !ok {
		t.Fatalf("Allow after one refill = false; want true")
	}
	if ok, _ := l.Allow(k, limit, t0+step); ok {
		t.Fatalf("second Allow after one refill = true; want false")
	}
	// A full second later the whole burst is available again.
	n := 0
	for range 2 * limit {
		if ok, _ := l.Allow(k, limit, t0+step+second); ok {
			n++
		}
	}
	if n != limit {
		t.Fatalf("allowed after a second = %d; want %d", n, limit)
	}
}

func TestAllowRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		limit int
		at    int64 // time of the refused request after the burst at t0
		want  int
	}{
		{"limit 1 at once", 1, t0, 1},
		{"limit 1 half a second later", 1, t0 + second/2, 1},
		{"limit 100", 100, t0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := New(Options{})
			k := MakeKey(addr("192.0.2.1"), 1, 0)
			for range tt.limit {
				l.Allow(k, tt.limit, t0)
			}
			ok, ra := l.Allow(k, tt.limit, tt.at)
			if ok || ra != tt.want {
				t.Fatalf("Allow = %v, %d; want false, %d", ok, ra, tt.want)
			}
			if ok, _ := l.Allow(k, tt.limit, tt.at+int64(ra)*second); !ok {
				t.Fatalf("Allow after Retry-After = false; want true")
			}
		})
	}
}

func TestAllowNoLimit(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	k := MakeKey(addr("192.0.2.1"), 1, 0)
	for _, limit := range []int{0, -1} {
		for range 10 {
			if ok, ra := l.Allow(k, limit, t0); !ok || ra != 0 {
				t.Fatalf("Allow(limit %d) = %v, %d; want true, 0", limit, ok, ra)
			}
		}
	}
	if l.Len() != 0 {
		t.Fatalf("Len() = %d after unlimited requests; want 0", l.Len())
	}
}

func TestAllowClockBackwards(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	k := MakeKey(addr("192.0.2.1"), 1, 0)
	l.Allow(k, 1, t0+3600*second)
	// The clock stepped back an hour: the client is not locked out for it.
	if ok, _ := l.Allow(k, 1, t0); !ok {
		t.Fatalf("Allow after the clock went back = false; want true")
	}
}

// TestAllowConcurrentExact checks that concurrent callers never get more
// than the limit through: with a fixed clock exactly limit requests pass,
// and a second later exactly limit more.
func TestAllowConcurrentExact(t *testing.T) {
	t.Parallel()
	const (
		workers = 16
		calls   = 500
		limit   = 1000
	)
	l := New(Options{})
	k := MakeKey(addr("2001:db8::1"), 42, 3)
	for _, now := range []int64{t0, t0 + second} {
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range calls {
					if ok, _ := l.Allow(k, limit, now); ok {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := allowed.Load(); got != limit {
			t.Fatalf("allowed at %d = %d of %d; want exactly %d", now-t0, got, workers*calls, limit)
		}
	}
}

// TestAllowConcurrentMovingClock runs rounds of concurrent callers on one
// key while the clock moves between rounds: the first round gets the
// burst, every later round exactly the tokens refilled since the previous
// one (step*limit per second = 1).
func TestAllowConcurrentMovingClock(t *testing.T) {
	t.Parallel()
	const (
		rounds  = 200
		workers = 8
		calls   = 5
		limit   = 100
		step    = int64(10 * time.Millisecond) // one emission interval
	)
	l := New(Options{})
	k := MakeKey(addr("192.0.2.9"), 1, 0)
	var allowed atomic.Int64
	for r := range rounds {
		now := t0 + int64(r)*step
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range calls {
					if ok, _ := l.Allow(k, limit, now); ok {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}
	if got, want := allowed.Load(), int64(limit+rounds-1); got != want {
		t.Fatalf("allowed over %d rounds = %d; want exactly %d", rounds, got, want)
	}
}

func TestAllowPerHostAndRouteIsolation(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	c := addr("192.0.2.1")
	a, b, r := MakeKey(c, 1, 0), MakeKey(c, 2, 0), MakeKey(c, 1, 9)
	l.Allow(a, 1, t0)
	if ok, _ := l.Allow(a, 1, t0); ok {
		t.Fatalf("Allow(host 1) twice = true; want false")
	}
	if ok, _ := l.Allow(b, 1, t0); !ok {
		t.Fatalf("Allow(host 2) after host 1 is exhausted = false; want true")
	}
	if ok, _ := l.Allow(r, 1, t0); !ok {
		t.Fatalf("Allow(host 1, route 9) after host 1 is exhausted = false; want true")
	}
	if ok, _ := l.Allow(MakeKey(addr("192.0.2.2"), 1, 0), 1, t0); !ok {
		t.Fatalf("Allow(other client) after 192.0.2.1 is exhausted = false; want true")
	}
}

func TestAllowIPv6Slash64(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	l.Allow(MakeKey(addr("2001:db8:0:1::1"), 1, 0), 2, t0)
	l.Allow(MakeKey(addr("2001:db8:0:1::2"), 1, 0), 2, t0)
	if ok, _ := l.Allow(MakeKey(addr("2001:db8:0:1:abcd::3"), 1, 0), 2, t0); ok {
		t.Fatalf("Allow(third address in the same /64) = true; want false")
	}
	if ok, _ := l.Allow(MakeKey(addr("2001:db8:0:2::1"), 1, 0), 2, t0); !ok {
		t.Fatalf("Allow(address in another /64) = false; want true")
	}
	if l.Len() != 2 {
		t.Fatalf("Len() = %d; want 2", l.Len())
	}
}

func Test4xxWindow(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	k := MakeKey(addr("192.0.2.1"), 1, 0)
	const limit = 2
	if b, _ := l.Blocked(k, limit, t0); b {
		t.Fatalf("Blocked(unknown key) = true; want false")
	}
	if l.Len() != 0 {
		t.Fatalf("Len() = %d after Blocked on an unknown key; want 0 (Blocked must not create keys)", l.Len())
	}
	for i := range limit {
		l.Count4xx(k, t0+int64(i)*100*int64(time.Millisecond))
		if b, _ := l.Blocked(k, limit, t0+300*int64(time.Millisecond)); b {
			t.Fatalf("Blocked after %d 4xx of limit %d = true; want false", i+1, limit)
		}
	}
	l.Count4xx(k, t0+400*int64(time.Millisecond))
	for _, at := range []int64{t0 + second/2, t0 + second - 1} {
		if b, ra := l.Blocked(k, limit, at); !b || ra != 1 {
			t.Fatalf("Blocked(+%v) after %d 4xx = %v, %d; want true, 1", time.Duration(at-t0), limit+1, b, ra)
		}
	}
	if b, _ := l.Blocked(k, limit+1, t0+second/2); b {
		t.Fatalf("Blocked with limit %d after %d 4xx = true; want false", limit+1, limit+1)
	}
	// The next window starts clean.
	if b, _ := l.Blocked(k, limit, t0+second); b {
		t.Fatalf("Blocked in the next window = true; want false")
	}
	l.Count4xx(k, t0+second)
	if b, _ := l.Blocked(k, limit, t0+second); b {
		t.Fatalf("Blocked after one 4xx in the next window = true; want false")
	}
	if b, _ := l.Blocked(k, 0, t0+second/2); b {
		t.Fatalf("Blocked(limit 0) = true; want false (no limit)")
	}
}

func Test4xxDoesNotTouchRate(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	k := MakeKey(addr("192.0.2.1"), 1, 0)
	for range 10 {
		l.Count4xx(k, t0)
	}
	if ok, _ := l.Allow(k, 1, t0); !ok {
		t.Fatalf("Allow after 4xx counts = false; want true")
	}
	if b, _ := l.Blocked(k, 5, t0); !b {
		t.Fatalf("Blocked after 10 4xx, limit 5 = false; want true")
	}
}

func Test4xxConcurrentExact(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	k := MakeKey(addr("192.0.2.1"), 1, 0)
	const workers, calls = 8, 250
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				l.Count4xx(k, t0)
			}
		})
	}
	wg.Wait()
	if b, _ := l.Blocked(k, workers*calls-1, t0); !b {
		t.Fatalf("Blocked(limit %d) after %d counts = false; want true", workers*calls-1, workers*calls)
	}
	if b, _ := l.Blocked(k, workers*calls, t0); b {
		t.Fatalf("Blocked(limit %d) after %d counts = true; want false", workers*calls, workers*calls)
	}
}

func TestSweepIdle(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	l := New(Options{IdleTTL: ttl})
	for i := range 100 {
		k := MakeKey(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1, 0)
		l.Allow(k, 10, t0)
	}
	x := MakeKey(addr("192.0.2.1"), 1, 0)
	l.Count4xx(x, t0+5*second) // window ends at t0+6s
	if l.Len() != 101 {
		t.Fatalf("Len() = %d; want 101", l.Len())
	}
	// The buckets are full again at t0+1s/10; the keys go at t0+0.1s+ttl.
	if n := l.Sweep(t0 + second/10 + int64(ttl) - 1); n != 0 {
		t.Fatalf("Sweep before the TTL = %d; want 0", n)
	}
	if n := l.Sweep(t0 + second/10 + int64(ttl)); n != 100 {
		t.Fatalf("Sweep after the TTL = %d; want 100", n)
	}
	if l.Len() != 1 {
		t.Fatalf("Len() = %d; want 1 (the 4xx key)", l.Len())
	}
	if n := l.Sweep(t0 + 6*second + int64(ttl)); n != 1 {
		t.Fatalf("Sweep after the 4xx window and TTL = %d; want 1", n)
	}
	if l.Len() != 0 || l.m.Size() != 0 {
		t.Fatalf("Len() = %d, map size %d; want 0, 0", l.Len(), l.m.Size())
	}
}

// TestSweepConcurrentKeepsCounts evicts idle keys while the same keys are
// used again: no count may land on an evicted entry, so with a fixed clock
// exactly limit requests per key pass.
func TestSweepConcurrentKeepsCounts(t *testing.T) {
	t.Parallel()
	const (
		keys    = 200
		limit   = 3
		workers = 4
	)
	l := New(Options{IdleTTL: time.Second})
	now := t0 + 3600*second
	ks := make([]Key, keys)
	for i := range ks {
		ks[i] = MakeKey(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 1, 0)
		l.Allow(ks[i], limit, t0) // idle long ago
		l.Count4xx(ks[i], t0)
	}
	var allowed [keys]atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	swept := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				swept <- n
				return
			default:
				n += l.Sweep(now)
			}
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for r := range 2 * limit {
				for i := range ks {
					j := (i + w*keys/workers + r) % keys
					if ok, _ := l.Allow(ks[j], limit, now); ok {
						allowed[j].Add(1)
					}
					l.Count4xx(ks[j], now)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	n := <-swept
	for i := range allowed {
		if got := allowed[i].Load(); got != limit {
			t.Fatalf("key %d: allowed = %d; want exactly %d (swept %d keys)", i, got, limit, n)
		}
		if b, _ := l.Blocked(ks[i], workers*2*limit-1, now); !b {
			t.Fatalf("key %d: Blocked(limit %d) = false; want true: a 4xx count was lost", i, workers*2*limit-1)
		}
	}
	if l.Len() != keys {
		t.Fatalf("Len() = %d; want %d", l.Len(), keys)
	}
}

func TestCapEvictsOldestFirst(t *testing.T) {
	t.Parallel()
	const maxKeys = 64
	l := New(Options{MaxKeys: maxKeys, IdleTTL: time.Hour})
	key := func(i int) Key { return MakeKey(netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}), 1, 0) }
	// Half the keys were active a minute ago, half just now; none is idle.
	for i := range maxKeys {
		at := t0
		if i >= maxKeys/2 {
			at = t0 + 60*second
		}
		if ok, _ := l.Allow(key(i), 1, at); !ok {
			t.Fatalf("Allow(key %d) = false; want true", i)
		}
	}
	if l.Len() != maxKeys {
		t.Fatalf("Len() = %d; want %d", l.Len(), maxKeys)
	}
	now := t0 + 60*second
	for i := maxKeys; i < maxKeys+20; i++ {
		if ok, _ := l.Allow(key(i), 1, now); !ok {
			t.Fatalf("Allow(new key %d) = false; want true", i)
		}
		if ok, _ := l.Allow(key(i), 1, now); ok {
			t.Fatalf("second Allow(new key %d) = true; want false: the new key is not tracked", i)
		}
		if l.Len() > maxKeys || l.m.Size() > maxKeys {
			t.Fatalf("Len() = %d, map size %d; want at most %d", l.Len(), l.m.Size(), maxKeys)
		}
	}
	for i := maxKeys / 2; i < maxKeys; i++ {
		if l.lookup(key(i)) == nil {
			t.Fatalf("recent key %d was evicted while older keys remain", i)
		}
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	l := New(Options{IdleTTL: time.Millisecond})
	past := time.Now().Add(-time.Hour).UnixNano()
	for i := range 50 {
		l.Allow(MakeKey(netip.AddrFrom4([4]byte{10, 3, 0, byte(i)}), 1, 0), 5, past)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		l.Run(ctx, 5*time.Millisecond)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for l.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Len() = %d after 10s of Run; want 0", l.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return after cancel")
	}
}

// TestRunEvictsAtCap fills a limiter whose Run owns eviction: inserts into
// the full map are served untracked and wake Run, which frees room, after
// which new keys are tracked again.
func TestRunEvictsAtCap(t *testing.T) {
	t.Parallel()
	const maxKeys = 64
	l := New(Options{MaxKeys: maxKeys, IdleTTL: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx, time.Hour) // no periodic sweep: only the cap wakes it
	now := time.Now().UnixNano()
	key := func(i int) Key { return MakeKey(netip.AddrFrom4([4]byte{10, 4, byte(i >> 8), byte(i)}), 1, 0) }
	for i := range maxKeys {
		l.Allow(key(i), 1, now)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.running.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not start within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	// The map is full: this key is served untracked and wakes Run.
	if ok, _ := l.Allow(key(maxKeys), 1, now); !ok {
		t.Fatalf("Allow(new key at cap) = false; want true (untracked)")
	}
	for l.Len() > maxKeys-maxKeys/8 {
		if time.Now().After(deadline) {
			t.Fatalf("Len() = %d after 10s; want at most %d", l.Len(), maxKeys-maxKeys/8)
		}
		time.Sleep(time.Millisecond)
	}
	k := key(maxKeys + 1)
	l.Allow(k, 1, now)
	if ok, _ := l.Allow(k, 1, now); ok {
		t.Fatalf("second Allow(new key after eviction) = true; want false (tracked)")
	}
}
