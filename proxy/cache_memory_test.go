//go:build !race

// RSS means nothing under the race detector's shadow memory.

package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aralez-go/aralez/proxy/cache"
)

// rssBytes returns the process's resident set size.
func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n * int64(os.Getpagesize())
}

// TestCacheSizeBoundThroughListener requests ten times cache_size_mb of
// distinct cacheable 8 KiB responses through the HTTP/1.1 listener, with
// the memory governor cmd starts (issue 15): the stored size stays under
// the bound, and the process (proxy, backend and client together) grows
// by less than twice the bound over its pre-fill baseline.
func TestCacheSizeBoundThroughListener(t *testing.T) {
	const mb = 4
	const bound = mb << 20
	body := strings.Repeat("b", 8<<10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		// A known length: chunked bodies are relayed, not stored.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write([]byte(body))
	}))
	defer up.Close()
	c := newTestCache(t, mb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cache.GovernMemory(ctx, c, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	cfg := cacheConfig(addrOf(up))
	cfg.Main.CacheSizeMB = mb
	_, addr := startProxy(t, cfg, Options{Cache: c}, UpstreamOptions{})
	get := func(i int) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/"+strconv.Itoa(i), nil)
		req.Host = "c.test"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := resp.Body.Read(make([]byte, 16<<10))
		resp.Body.Close()
		if resp.StatusCode != 200 || n == 0 {
			t.Fatalf("GET /%d = %d", i, resp.StatusCode)
		}
	}
	for i := range 200 { // connections, pools and buffers at their working size
		get(-i - 1)
	}
	runtime.GC()
	base := rssBytes(t)
	var peakRSS int64
	var peakSize uint64
	n := 10 * bound / len(body)
	for i := range n {
		get(i)
		if i%256 == 0 {
			peakRSS = max(peakRSS, rssBytes(t)-base)
			peakSize = max(peakSize, c.Stats().SizeBytes)
		}
	}
	st := c.Stats()
	t.Logf("%d requests of %d B: stored %d B in %d responses, evicted %d; peak RSS growth %d MiB", n, len(body), st.SizeBytes, st.Items, st.EvictedItems, peakRSS>>20)
	if peakSize > bound+bound/20 || st.SizeBytes > bound {
		t.Errorf("stored size peak %d, now %d; want at most %d", peakSize, st.SizeBytes, bound)
	}
	if peakRSS > 2*bound {
		t.Errorf("RSS grew by %s; want under %d MiB (twice cache_size_mb)", fmt.Sprintf("%.1f MiB", float64(peakRSS)/(1<<20)), 2*mb)
	}
	if st.EvictedItems == 0 {
		t.Error("nothing was evicted; the test did not reach the bound")
	}
}
