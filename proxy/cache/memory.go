package cache

import (
	"context"
	"math"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// DefaultMemoryInterval is how often GovernMemory adjusts the limit.
const DefaultMemoryInterval = time.Second

// memoryHeadroom is the fixed slack GovernMemory adds to the limit.
const memoryHeadroom = 4 << 20

// GovernMemory keeps the process's soft memory limit (debug.SetMemoryLimit)
// at what the rest of the process would use under the default GC pacing
// (twice its live heap, GOGC=100) plus the cache's stored size and an
// eighth of it (and 4 MiB), re-reading both every interval until ctx is
// done; then it restores the previous limit.
//
// Why: a cache is live heap that churns. With GOGC=100 the runtime lets
// the heap grow to twice the live heap before collecting, and evicted
// entries sit in that headroom, so a full cache would cost about twice
// its size, plus the freed pages the runtime keeps; the limit makes the
// runtime collect, and return pages to the OS, earlier for the cache's
// share only, so the rest of the process (connection buffers) keeps its
// usual headroom and the GC never runs hot for it. Call it only when the
// operator has not set GOMEMLIMIT. The limit is soft: the runtime caps
// the GC's CPU share rather than fail.
func GovernMemory(ctx context.Context, c *Cache, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultMemoryInterval
	}
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	samples := []rtmetrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		debug.SetMemoryLimit(memoryLimit(samples, int64(c.Stats().SizeBytes)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// memoryLimit computes the limit from runtime samples and the cache's
// stored size.
func memoryLimit(s []rtmetrics.Sample, cached int64) int64 {
	rtmetrics.Read(s)
	val := func(i int) int64 {
		if s[i].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return int64(min(s[i].Value.Uint64(), math.MaxInt64))
	}
	live := val(0)
	heap := val(2) + val(3) + val(4) + val(5)
	nonHeap := max(val(1)-heap, 0)
	rest := max(live-cached, 0)
	return nonHeap + 2*rest + cached + cached/8 + memoryHeadroom
}
