//go:build !race

// The race detector's shadow memory makes RSS meaningless, so these
// tests run without it.

package cache

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rss returns the resident set size from /proc/self/statm.
func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n * int64(os.Getpagesize())
}

// TestMemoryBound requests ten times the bound in distinct 4 KiB
// responses (issue 15): the stored size never goes over the bound, and
// with GovernMemory the process grows by less than twice the bound.
func TestMemoryBound(t *testing.T) {
	const bound = 32 << 20
	c := newTestCache(t, Options{MaxBytes: bound})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { GovernMemory(ctx, c, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	runtime.GC()
	base := rss(t)
	body := make([]byte, 4096)
	h := fields("Content-Type", "text/plain", "Cache-Control", "max-age=600", "ETag", `"x"`)
	var peakSize uint64
	var peakRSS int64
	for i := range 10 * bound / len(body) {
		r := getReq(fmt.Sprintf("http://ex.com/%d", i), nil)
		now := time.Now().UnixNano()
		res := c.Lookup(r, now)
		c.Store(r, res.Fill, &Response{Status: 200, Header: h, Body: body, RequestTime: now, ResponseTime: now})
		if i%512 == 0 {
			peakSize = max(peakSize, c.Stats().SizeBytes)
			peakRSS = max(peakRSS, rss(t)-base)
		}
	}
	st := c.Stats()
	t.Logf("stored %d bytes in %d responses, evicted %d; peak RSS growth %d MiB", st.SizeBytes, st.Items, st.EvictedItems, peakRSS>>20)
	if peakSize > bound+bound/20 {
		t.Errorf("peak stored size %d; want at most the bound %d (+5%% between a write and its eviction)", peakSize, bound)
	}
	if peakRSS > 2*bound {
		t.Errorf("RSS grew by %d MiB; want under %d MiB (twice the bound)", peakRSS>>20, 2*bound>>20)
	}
}

// TestGovernMemoryRestores checks that GovernMemory sets a finite limit
// and restores the previous one when it stops.
func TestGovernMemoryRestores(t *testing.T) {
	c := newTestCache(t, Options{MaxBytes: 1 << 20})
	prev := debug.SetMemoryLimit(-1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { GovernMemory(ctx, c, time.Millisecond); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) == prev && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got == prev || got == math.MaxInt64 {
		t.Errorf("memory limit under GovernMemory = %d; want a finite limit", got)
	}
	cancel()
	<-done
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("memory limit after GovernMemory = %d; want the previous %d", got, prev)
	}
}
