package ratelimit

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAllowSeenKeyShared is the worst case: every goroutine hits the
// same key, so the compare-and-swap is contended.
func BenchmarkAllowSeenKeyShared(b *testing.B) {
	l := New(Options{})
	k := MakeKey(addr("192.0.2.1"), 1, 0)
	l.Allow(k, 1<<30, t0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(k, 1<<30, t0)
		}
	})
}

// BenchmarkAllowSeenKeyDistinct is the common case: each goroutine is a
// different client whose key already exists.
func BenchmarkAllowSeenKeyDistinct(b *testing.B) {
	l := New(Options{})
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1)
		k := MakeKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1, 0)
		l.Allow(k, 1<<30, t0)
		for pb.Next() {
			l.Allow(k, 1<<30, t0)
		}
	})
}

func BenchmarkBlockedSeenKey(b *testing.B) {
	l := New(Options{})
	k := MakeKey(addr("192.0.2.1"), 1, 0)
	l.Count4xx(k, t0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Blocked(k, 10, t0)
		}
	})
}

func BenchmarkMakeKey(b *testing.B) {
	a := addr("2001:db8:1:2::1")
	b.ReportAllocs()
	for b.Loop() {
		_ = MakeKey(a, 1, 2)
	}
}

// BenchmarkMemory1MKeys fills a Limiter with 1,000,000 distinct client
// addresses, reports the heap they take (B/key), then sweeps them after
// they went idle and reports what is left once the GC ran (B-after-sweep).
// It also reports how long one periodic Sweep over the 1M live keys takes
// when nothing is idle (s-sweep-nothing-idle).
func BenchmarkMemory1MKeys(b *testing.B) {
	const keys = 1_000_000
	var live, left, scan float64
	for b.Loop() {
		l := New(Options{MaxKeys: 2 * keys})
		before := heapInUse()
		for i := range keys {
			k := MakeKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1, 0)
			l.Allow(k, 10, t0)
		}
		live = float64(heapInUse()-before) / keys
		start := time.Now()
		if n := l.Sweep(t0); n != 0 {
			b.Fatalf("Sweep(nothing idle) = %d; want 0", n)
		}
		scan = time.Since(start).Seconds()
		if n := l.Sweep(t0 + second + int64(DefaultIdleTTL)); n != keys {
			b.Fatalf("Sweep = %d; want %d", n, keys)
		}
		left = float64(heapInUse() - before)
		runtime.KeepAlive(l)
	}
	b.ReportMetric(live, "B/key")
	b.ReportMetric(left, "B-after-sweep")
	b.ReportMetric(scan, "s-sweep-nothing-idle")
	b.Logf("live %.1f B/key, after sweep %.0f B, a sweep that removes nothing takes %.3f s", live, left, scan)
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkAllowNewKeyAtCap is a flood of new client addresses against a
// full limiter (MaxKeys 1<<16): each op inserts a key, and every eighth of
// the cap an insert pays for the eviction pass. ns/op is the amortised
// cost.
func BenchmarkAllowNewKeyAtCap(b *testing.B) {
	const maxKeys = 1 << 16
	l := New(Options{MaxKeys: maxKeys})
	var next atomic.Uint32
	now := t0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			l.Allow(MakeKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1, 0), 10, now)
		}
	})
	if l.Len() > maxKeys {
		b.Fatalf("Len() = %d; want at most %d", l.Len(), maxKeys)
	}
}
