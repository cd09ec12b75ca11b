package redisstore

import (
	"context"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/redistest"
	"github.com/aralez-go/aralez/policy/ratelimit"
)

// fleetOf starts n limiters, each with its own Store on addr, exchanging
// every sync, as n proxy processes would.
func fleetOf(t testing.TB, addr string, n int, sync time.Duration) []*ratelimit.Limiter {
	t.Helper()
	ls := make([]*ratelimit.Limiter, n)
	for i := range ls {
		ls[i] = ratelimit.New(ratelimit.Options{Store: newStore(t, addr), SyncInterval: sync, FleetSize: n})
	}
	// Registered after the stores' Close, so it runs before them.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, n)
	t.Cleanup(func() {
		cancel()
		for range n {
			<-done
		}
	})
	for _, l := range ls {
		go func() { l.Run(ctx, time.Hour); done <- struct{}{} }()
	}
	return ls
}

// admitted sends one request every gap, round robin over ls, for d and
// returns the times of the admitted ones and the longest Allow call.
func spread(ls []*ratelimit.Limiter, k ratelimit.Key, limit int, gap, d time.Duration) (ok []time.Time, slowest time.Duration) {
	tk := time.NewTicker(gap)
	defer tk.Stop()
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		<-tk.C
		start := time.Now()
		allowed, _ := ls[i%len(ls)].Allow(k, limit, start.UnixNano())
		slowest = max(slowest, time.Since(start))
		if allowed {
			ok = append(ok, start)
		}
	}
	return ok, slowest
}

// maxInWindow is the most times within any window of length w.
func maxInWindow(ts []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// perSecond counts ts in one-second windows from the first.
func perSecond(ts []time.Time) []int {
	var per []int
	for _, x := range ts {
		i := int(x.Sub(ts[0]) / time.Second)
		for len(per) <= i {
			per = append(per, 0)
		}
		per[i]++
	}
	return per
}

// allowance is the documented overshoot of a fleet (the package doc of
// ratelimit): what n-1 instances admit at the limit in one sync interval,
// plus what each may keep unreported (a quarter of one interval's refill
// divided among them, at least 1).
func allowance(n, limit int, sync time.Duration) int {
	refill := float64(limit) * sync.Seconds()
	report := max(1, int(math.Ceil(refill/float64(4*n))))
	return int(float64(n-1)*refill) + n*report
}

// TestFleetLimit spreads one client over three limiters sharing a real
// redis-server, with rate_limit 100 and a 100 ms sync: after the first
// second (the GCRA burst, as on one instance), each second admits 100
// plus at most the documented allowance, (3-1) × 100 × 0.1 s + 3 × 1 =
// 23, with a tenth of the limit for scheduling jitter (issue 17).
func TestFleetLimit(t *testing.T) {
	t.Parallel()
	const limit, n, sync = 100, 3, 100 * time.Millisecond
	srv := redistest.Start(t)
	ls := fleetOf(t, srv.Addr, n, sync)
	k := ratelimit.MakeKey(netip.MustParseAddr("203.0.113.50"), 7, 1)
	ok, slowest := spread(ls, k, limit, time.Millisecond, 3*time.Second)
	per := perSecond(ok)
	a := allowance(n, limit, sync)
	t.Logf("admitted per second %v (allowance %d), slowest Allow %v", per, a, slowest)
	if len(per) < 3 {
		t.Fatalf("admitted per second %v; want 3 seconds of traffic", per)
	}
	if per[0] > 2*limit+a+limit/10 {
		t.Errorf("first second admitted %d; want at most %d (burst, refill, allowance)", per[0], 2*limit+a)
	}
	for i, c := range per[1:3] {
		if c > limit+a+limit/10 {
			t.Errorf("second %d admitted %d; want at most %d + %d", i+2, c, limit, a)
		}
	}
	// What one second admits over the limit the next pays back; an
	// exchange that took too long on a loaded machine makes a limiter
	// enforce limit/3 for a moment, so only a gross shortfall fails.
	if sum := per[1] + per[2]; sum > 2*limit+a+limit/10 || sum < limit {
		t.Errorf("seconds 2 and 3 admitted %d; want %d + at most %d", sum, 2*limit, a)
	}
	for i, l := range ls {
		if st := l.FleetStats(); st.Instances != n || st.Keys == 0 {
			t.Errorf("limiter %d stats %+v; want %d instances and keys exchanged", i, st, n)
		}
	}
}

// TestFleetOutage stops the redis-server under load (SIGSTOP, then
// SIGKILL) and brings it back: every limiter falls back to limit/3
// within a few sync intervals, no Allow waits on the store, and the
// fleet limit holds again once the server is back (issue 17).
func TestFleetOutage(t *testing.T) {
	t.Parallel()
	const limit, n, sync = 90, 3, 50 * time.Millisecond
	srv := redistest.Start(t)
	ls := fleetOf(t, srv.Addr, n, sync)
	k := ratelimit.MakeKey(netip.MustParseAddr("2001:db8::50"), 7, 1)
	up := func(want bool) bool {
		for _, l := range ls {
			if l.FleetStats().Up != want {
				return false
			}
		}
		return true
	}
	waitUp := func(want bool, ceiling time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for !up(want) {
			if time.Since(start) > ceiling {
				t.Fatalf("limiters up = %v after %v; want %v", !want, ceiling, want)
			}
			spread(ls, k, limit, time.Millisecond, 10*time.Millisecond)
		}
		return time.Since(start)
	}
	spread(ls, k, limit, time.Millisecond, 500*time.Millisecond)
	waitUp(true, 5*time.Second)
	var outages [n]uint64
	for i, l := range ls {
		outages[i] = l.FleetStats().Outages
	}

	srv.Stop()
	took := waitUp(false, 20*sync)
	t.Logf("fell back %v after SIGSTOP", took)
	// Alone, each limiter enforces 90/3 = 30 per second; spread over
	// three, the client gets about the limit again (a token bucket of 30
	// each: up to 30 + 30 per instance in the first second).
	ok, slowest := spread(ls, k, limit, time.Millisecond, 1200*time.Millisecond)
	if slowest > time.Second {
		t.Errorf("slowest Allow during the outage %v; want no wait on the store", slowest)
	}
	if c := len(ok); c > 2*limit+limit/10 {
		t.Errorf("admitted %d in 1.2 s while the store hangs; want at most %d (limit/3 per instance)", c, 2*limit)
	}
	srv.Kill()
	ok, slowest = spread(ls, k, limit, time.Millisecond, 300*time.Millisecond)
	if slowest > time.Second || len(ok) == 0 {
		t.Errorf("store killed: slowest Allow %v, %d admitted; want no wait and requests admitted", slowest, len(ok))
	}
	for i, l := range ls {
		if st := l.FleetStats(); st.Outages != outages[i]+1 || st.Failures == 0 {
			t.Errorf("limiter %d stats %+v; want one outage", i, st)
		}
	}

	srv.Restart()
	took = waitUp(true, 5*time.Second)
	t.Logf("rejoined %v after the restart", took)
	spread(ls, k, limit, time.Millisecond, time.Second) // the burst second
	ok, _ = spread(ls, k, limit, time.Millisecond, time.Second)
	if a := allowance(n, limit, sync); len(ok) > limit+a+limit/10 {
		t.Errorf("after the store came back: %d admitted in a second; want at most %d", len(ok), limit+a)
	}
}

// TestFleet4xxLimit counts 4xx responses on two limiters sharing a real
// redis-server: with x4xx_limit 3, two 4xx on each instance keep each
// under the limit locally, but the fleet's four block the client on both
// once they have exchanged, within the same one-second window
// (issue 17).
func TestFleet4xxLimit(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ls := fleetOf(t, srv.Addr, 2, 20*time.Millisecond)
	k := ratelimit.MakeKey(netip.MustParseAddr("198.51.100.4"), 9, 0)
	for attempt := 0; ; attempt++ {
		// Start early in a second so that the window outlives the
		// exchanges.
		if ms := time.Now().Nanosecond() / 1e6; ms > 500 {
			time.Sleep(time.Duration(1000-ms) * time.Millisecond)
		}
		w := time.Now().Unix()
		now := func() int64 { return time.Now().UnixNano() }
		for _, l := range ls {
			if blocked, _ := l.Blocked(k, 3, now()); blocked {
				t.Fatal("blocked before any 4xx")
			}
			l.Count4xx(k, now())
			l.Count4xx(k, now())
		}
		deadline := time.Now().Add(400 * time.Millisecond)
		both := false
		for !both && time.Now().Before(deadline) && time.Now().Unix() == w {
			b0, _ := ls[0].Blocked(k, 3, now())
			b1, _ := ls[1].Blocked(k, 3, now())
			both = b0 && b1
			time.Sleep(5 * time.Millisecond)
		}
		if both {
			return
		}
		if attempt == 2 {
			t.Fatal("two 4xx on each of two instances with x4xx_limit 3: not blocked on both within the window")
		}
		// The window ended first on a slow machine: try in the next one.
		time.Sleep(time.Until(time.Unix(w+1, 0)))
	}
}
