package cache

import (
	"fmt"
	"testing"
	"time"
)

// benchCache returns a cache holding one fresh 4 KiB entry at key, and a
// request for it with a realistic header set.
func benchCache(b testing.TB) (*Cache, *Request) {
	c := newTestCache(b, Options{})
	const key = "https://www.example.com/static/app.js?v=3"
	h := mkHdr("User-Agent", "bench", "Accept", "*/*", "Accept-Encoding", "gzip", "Cookie", "a=1")
	r := &Request{Method: []byte("GET"), Key: []byte(key), Header: h}
	res := c.Lookup(r, time.Now().UnixNano())
	now := time.Now().UnixNano()
	c.Store(r, res.Fill, &Response{Status: 200, Body: make([]byte, 4096), RequestTime: now, ResponseTime: now,
		Header: fields("Content-Type", "application/javascript", "Cache-Control", "public, max-age=3600", "ETag", `"abc"`, "Vary", "Accept-Encoding")})
	return c, r
}

// BenchmarkLookupHit measures a fresh hit: key hash, storage read, Vary
// match, freshness and the client's conditionals. 0 allocs/op.
func BenchmarkLookupHit(b *testing.B) {
	c, r := benchCache(b)
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		if res := c.Lookup(r, now); res.Outcome != Hit {
			b.Fatal(res.Outcome)
		}
	}
}

// BenchmarkLookupHitParallel is BenchmarkLookupHit from every core.
func BenchmarkLookupHitParallel(b *testing.B) {
	c, r := benchCache(b)
	now := time.Now().UnixNano()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := c.Lookup(r, now); res.Outcome != Hit {
				b.Error(res.Outcome)
				return
			}
		}
	})
}

// BenchmarkStore measures storing a 4 KiB response under a new key (the
// miss path's cost on top of the upstream round trip).
func BenchmarkStore(b *testing.B) {
	c := newTestCache(b, Options{MaxBytes: 64 << 20})
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "http://ex.com/%d", i)
	}
	h := fields("Content-Type", "text/plain", "Cache-Control", "max-age=60")
	body := make([]byte, 4096)
	now := time.Now().UnixNano()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &Request{Method: []byte("GET"), Key: keys[i%len(keys)], Header: mkHdr()}
		c.Store(r, nil, &Response{Status: 200, Header: h, Body: body, RequestTime: now, ResponseTime: now})
		i++
	}
}
