package cache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLookupFlows walks one key through the RFC 9111 reuse rules, with
// the clock passed explicitly.
func TestLookupFlows(t *testing.T) {
	t.Parallel()
	type step struct {
		at       time.Duration
		req      *hdr
		method   string
		creds    bool
		outcome  Outcome
		stale    bool
		notMod   bool
		hasFill  bool
		ageSecs  int64
		noStored bool // Result.Entry must be nil
		keep     bool // keep the step's fill open for the next steps
	}
	tests := []struct {
		name  string
		store *Response
		steps []step
	}{
		{
			name:  "fresh then stale then revalidate",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=10", "ETag", `"v1"`),
			steps: []step{
				{at: 5 * time.Second, outcome: Hit, ageSecs: 5},
				{at: 11 * time.Second, outcome: Revalidate, hasFill: true},
			},
		},
		{
			name:  "upstream Age counts",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=10", "Age", "8"),
			steps: []step{
				{at: time.Second, outcome: Hit, ageSecs: 9},
				{at: 3 * time.Second, outcome: Revalidate, hasFill: true},
			},
		},
		{
			name:  "stale-while-revalidate serves stale and elects one refresher",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=1, stale-while-revalidate=30"),
			steps: []step{
				{at: 5 * time.Second, outcome: Hit, stale: true, hasFill: true, keep: true},
				{at: 6 * time.Second, outcome: Hit, stale: true},
				{at: 40 * time.Second, outcome: Revalidate, hasFill: true},
			},
		},
		{
			name:  "must-revalidate forbids stale",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=1, must-revalidate, stale-while-revalidate=30", "ETag", `"a"`),
			steps: []step{
				{at: 5 * time.Second, req: mkHdr("Cache-Control", "max-stale=100"), outcome: Revalidate, hasFill: true},
			},
		},
		{
			name:  "no-cache response revalidates every time",
			store: respAt(0, 200, "hi", "Cache-Control", "no-cache, max-age=100", "ETag", `"a"`),
			steps: []step{{at: time.Second, outcome: Revalidate, hasFill: true}},
		},
		{
			name:  "request directives",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=100", "ETag", `"a"`),
			steps: []step{
				{at: 10 * time.Second, req: mkHdr("Cache-Control", "no-cache"), outcome: Revalidate, hasFill: true},
				{at: 10 * time.Second, req: mkHdr("Pragma", "no-cache"), outcome: Revalidate, hasFill: true},
				{at: 10 * time.Second, req: mkHdr("Cache-Control", "max-age=5"), outcome: Revalidate, hasFill: true},
				{at: 10 * time.Second, req: mkHdr("Cache-Control", "max-age=50"), outcome: Hit},
				{at: 95 * time.Second, req: mkHdr("Cache-Control", "min-fresh=10"), outcome: Revalidate, hasFill: true},
				{at: 150 * time.Second, req: mkHdr("Cache-Control", "max-stale=60"), outcome: Hit, stale: true},
				{at: 150 * time.Second, req: mkHdr("Cache-Control", "max-stale=10"), outcome: Revalidate, hasFill: true},
			},
		},
		{
			name:  "only-if-cached",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=10"),
			steps: []step{
				{at: time.Second, req: mkHdr("Cache-Control", "only-if-cached"), outcome: Hit},
				{at: 20 * time.Second, req: mkHdr("Cache-Control", "only-if-cached"), outcome: Revalidate, hasFill: true},
			},
		},
		{
			name:  "conditional requests",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=100", "ETag", `W/"v1"`, "Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
			steps: []step{
				{at: time.Second, req: mkHdr("If-None-Match", `"x", "v1"`), outcome: Hit, notMod: true},
				{at: time.Second, req: mkHdr("If-None-Match", `*`), outcome: Hit, notMod: true},
				{at: time.Second, req: mkHdr("If-None-Match", `"v2"`, "If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"), outcome: Hit},
				{at: time.Second, req: mkHdr("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"), outcome: Hit, notMod: true},
				{at: time.Second, req: mkHdr("If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT"), outcome: Hit},
			},
		},
		{
			name:  "HEAD from GET, Range bypasses, POST bypasses",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=100"),
			steps: []step{
				{at: time.Second, method: "HEAD", outcome: Hit},
				{at: time.Second, req: mkHdr("Range", "bytes=0-1"), outcome: Bypass},
				{at: time.Second, method: "POST", outcome: Bypass},
			},
		},
		{
			name:  "credentials need a shareable entry",
			store: respAt(0, 200, "hi", "Cache-Control", "max-age=100"),
			steps: []step{
				{at: time.Second, creds: true, outcome: Miss, noStored: true},
				{at: time.Second, outcome: Hit},
			},
		},
		{
			name:  "credentials with public",
			store: respAt(0, 200, "hi", "Cache-Control", "public, max-age=100"),
			steps: []step{{at: time.Second, creds: true, outcome: Hit}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCache(t, Options{})
			key := "http://ex.com/" + tc.name
			fill(t, c, getReq(key, nil), 0, tc.store)
			for i, s := range tc.steps {
				r := getReq(key, s.req)
				if s.method != "" {
					r.Method = []byte(s.method)
				}
				r.Credentials = s.creds
				res := c.Lookup(r, at(s.at))
				if res.Outcome != s.outcome || res.Stale != s.stale || res.NotModified != s.notMod || (res.Fill != nil) != s.hasFill {
					t.Errorf("step %d: Lookup() = %v stale=%v notModified=%v fill=%v; want %v stale=%v notModified=%v fill=%v",
						i, res.Outcome, res.Stale, res.NotModified, res.Fill != nil, s.outcome, s.stale, s.notMod, s.hasFill)
				}
				if s.noStored && res.Entry != nil {
					t.Errorf("step %d: Entry = %p; want nil", i, res.Entry)
				}
				if s.outcome == Hit && s.ageSecs > 0 {
					if got := string(res.Entry.AppendAge(nil, at(s.at))); got != fmt.Sprint(s.ageSecs) {
						t.Errorf("step %d: Age = %s; want %d", i, got, s.ageSecs)
					}
				}
				// A fill left open would make the next step wait.
				if !s.keep {
					res.Fill.Abandon()
				}
			}
		})
	}
}

// TestEntryLayout checks what a hit replays: status, fields without Age,
// Content-Length or hop-by-hop fields, and the body.
func TestEntryLayout(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{})
	r := getReq("http://ex.com/x", nil)
	e := fill(t, c, r, 0, respAt(0, 203, "body!", "Content-Type", "text/plain", "Age", "3", "Content-Length", "5",
		"Connection", "close", "Cache-Control", "max-age=60", "X-A", "1", "X-A", "2"))
	if e.Status() != 203 || string(e.Body()) != "body!" || string(e.Key()) != "http://ex.com/x" {
		t.Errorf("entry = %d %q %q", e.Status(), e.Body(), e.Key())
	}
	var got []string
	for off := 0; ; {
		n, v, next := e.Header().Next(off)
		if next < 0 {
			break
		}
		got = append(got, string(n)+": "+string(v))
		off = next
	}
	want := []string{"Content-Type: text/plain", "Cache-Control: max-age=60", "X-A: 1", "X-A: 2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored fields = %q; want %q", got, want)
	}
	res := c.Lookup(getReq("http://ex.com/x", nil), at(time.Second))
	if res.Entry != e {
		t.Fatalf("Lookup() entry = %p; want the stored %p", res.Entry, e)
	}
	if !NotModifiedField([]byte("etag")) || NotModifiedField([]byte("content-type")) {
		t.Error("NotModifiedField: wrong set")
	}
}

// TestVary checks secondary keys: one variant per value of the varied
// request fields, an absent field being a value of its own (RFC 9111
// §4.1).
func TestVary(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{})
	const key = "http://ex.com/v"
	gz := mkHdr("Accept-Encoding", "gzip")
	br := mkHdr("Accept-Encoding", " br ")
	fill(t, c, getReq(key, gz), 0, respAt(0, 200, "gz", "Cache-Control", "max-age=60", "Vary", "accept-encoding"))
	if res := c.Lookup(getReq(key, br), at(time.Second)); res.Outcome != Miss || res.Fill == nil {
		t.Fatalf("Lookup(br) = %v, fill %v; want a miss that leads", res.Outcome, res.Fill != nil)
	} else {
		c.Store(getReq(key, br), res.Fill, respAt(time.Second, 200, "br", "Cache-Control", "max-age=60", "Vary", "Accept-Encoding"))
	}
	fill(t, c, getReq(key, nil), time.Second, respAt(time.Second, 200, "none", "Cache-Control", "max-age=60", "Vary", "Accept-Encoding"))
	for _, tc := range []struct {
		h    *hdr
		body string
	}{{gz, "gz"}, {mkHdr("accept-encoding", "br"), "br"}, {mkHdr(), "none"}} {
		res := c.Lookup(getReq(key, tc.h), at(2*time.Second))
		if res.Outcome != Hit || string(res.Entry.Body()) != tc.body {
			t.Errorf("Lookup(%v) = %v; want hit %q", *tc.h, res.Outcome, tc.body)
		}
	}
	if st := c.Stats(); st.Items != 3 {
		t.Errorf("Stats().Items = %d; want 3 variants", st.Items)
	}
	if n := c.Invalidate([]byte(key)); n != 3 {
		t.Errorf("Invalidate() = %d; want 3 variants", n)
	}
	if res := c.Lookup(getReq(key, gz), at(2*time.Second)); res.Outcome != Miss {
		t.Errorf("Lookup after Invalidate = %v; want miss", res.Outcome)
	} else {
		res.Fill.Abandon()
	}
	if st := c.Stats(); st.Items != 0 {
		t.Errorf("Stats().Items after Invalidate = %d; want 0", st.Items)
	}
}

// TestVaryRepeatedField checks that a request repeating a field the
// response varies on neither matches a stored variant nor stores one:
// the upstream saw every line ("gzip, br"), so storing the answer under
// the first line's value would serve it to "gzip" clients (cache
// poisoning), and serving the "gzip" variant to it would mismatch.
func TestVaryRepeatedField(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{HitForMiss: time.Minute})
	const key = "http://ex.com/vr"
	twice := mkHdr("Accept-Encoding", "gzip", "accept-encoding", "br")
	res := c.Lookup(getReq(key, twice), at(0))
	if res.Outcome != Miss {
		t.Fatalf("Lookup(twice) = %v; want miss", res.Outcome)
	}
	if e, why := c.Store(getReq(key, twice), res.Fill, respAt(0, 200, "both", "Cache-Control", "max-age=60", "Vary", "Accept-Encoding")); e != nil || why != NotStoredVaryRepeated {
		t.Fatalf("Store(twice) = %v, %v; want not stored (%v)", e != nil, why, NotStoredVaryRepeated)
	}
	// Not a hit-for-miss: the next plain request fills the key.
	fill(t, c, getReq(key, mkHdr("Accept-Encoding", "gzip")), time.Second, respAt(time.Second, 200, "gz", "Cache-Control", "max-age=60", "Vary", "Accept-Encoding"))
	if res := c.Lookup(getReq(key, mkHdr("Accept-Encoding", "gzip")), at(2*time.Second)); res.Outcome != Hit || string(res.Entry.Body()) != "gz" {
		t.Errorf("Lookup(gzip) = %v; want hit \"gz\"", res.Outcome)
	}
	if res := c.Lookup(getReq(key, twice), at(2*time.Second)); res.Outcome != Miss {
		t.Errorf("Lookup(twice) over a stored gzip variant = %v; want miss", res.Outcome)
	} else {
		res.Fill.Abandon()
	}
}

// TestVaryProxySet: an answer that varies on a field the proxy sets
// upstream (any case, anywhere in the list) is not stored.
func TestVaryProxySet(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{})
	for i, vary := range []string{"X-Forwarded-For", "accept-encoding, remote-user", "Via"} {
		key := fmt.Sprintf("http://ex.com/ps%d", i)
		res := c.Lookup(getReq(key, nil), at(0))
		if e, why := c.Store(getReq(key, nil), res.Fill, respAt(0, 200, "x", "Cache-Control", "public, max-age=60", "Vary", vary)); e != nil || why != NotStoredVaryProxySet {
			t.Errorf("Store(Vary: %s) = %v, %v; want not stored (%v)", vary, e != nil, why, NotStoredVaryProxySet)
		}
	}
}

// TestRevalidated checks the 304 path: fields merged, freshness renewed,
// validators kept.
func TestRevalidated(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{})
	const key = "http://ex.com/r"
	fill(t, c, getReq(key, nil), 0, respAt(0, 200, "old body", "Cache-Control", "max-age=10", "ETag", `"e1"`, "X-Old", "1", "X-Up", "a"))
	res := c.Lookup(getReq(key, nil), at(20*time.Second))
	if res.Outcome != Revalidate || string(res.Entry.ETag()) != `"e1"` {
		t.Fatalf("Lookup(stale) = %v etag %q; want revalidate with \"e1\"", res.Outcome, res.Entry.ETag())
	}
	e, why := c.Revalidated(getReq(key, nil), res.Fill, res.Entry, respAt(20*time.Second, 304, "", "Cache-Control", "max-age=30", "X-Up", "b", "Content-Length", "0"))
	if why != Stored || string(e.Body()) != "old body" || e.Status() != 200 {
		t.Fatalf("Revalidated() = %v, %q, %d; want stored, old body, 200", why, e.Body(), e.Status())
	}
	if got := string(e.Header().Get([]byte("X-Up"))); got != "b" {
		t.Errorf("X-Up after 304 = %q; want b", got)
	}
	if e.Header().Get([]byte("X-Old")) == nil || e.Header().Get([]byte("Content-Length")) != nil {
		t.Errorf("merged fields = %q", e.Header())
	}
	if res := c.Lookup(getReq(key, nil), at(45*time.Second)); res.Outcome != Hit || res.Entry != e {
		t.Errorf("Lookup after 304 = %v; want a hit on the refreshed entry", res.Outcome)
	}
	// A 304 that now says no-store serves this request and drops the entry.
	res = c.Lookup(getReq(key, nil), at(60*time.Second))
	e, why = c.Revalidated(getReq(key, nil), res.Fill, res.Entry, respAt(60*time.Second, 304, "", "Cache-Control", "no-store"))
	if why != NotStoredNoStore || string(e.Body()) != "old body" {
		t.Errorf("Revalidated(no-store) = %v, %q", why, e.Body())
	}
	if res := c.Lookup(getReq(key, nil), at(61*time.Second)); res.Outcome != Miss {
		t.Errorf("Lookup after a no-store 304 = %v; want miss", res.Outcome)
	}
}

// TestStaleOnError checks stale-if-error (RFC 5861 §4).
func TestStaleOnError(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{})
	fill(t, c, getReq("http://ex.com/s", nil), 0, respAt(0, 200, "s", "Cache-Control", "max-age=10, stale-if-error=60", "ETag", `"a"`))
	fill(t, c, getReq("http://ex.com/m", nil), 0, respAt(0, 200, "m", "Cache-Control", "max-age=10, stale-if-error=60, must-revalidate", "ETag", `"a"`))
	for _, tc := range []struct {
		key    string
		at     time.Duration
		status int
		want   bool
	}{
		{"http://ex.com/s", 30 * time.Second, 0, true},
		{"http://ex.com/s", 30 * time.Second, 503, true},
		{"http://ex.com/s", 30 * time.Second, 404, false},
		{"http://ex.com/s", 80 * time.Second, 0, false},
		{"http://ex.com/m", 30 * time.Second, 0, false},
	} {
		res := c.Lookup(getReq(tc.key, nil), at(tc.at))
		if res.Outcome != Revalidate {
			t.Fatalf("Lookup(%s) = %v; want revalidate", tc.key, res.Outcome)
		}
		if got := c.StaleOnError(&res, tc.status, at(tc.at)); (got != nil) != tc.want {
			t.Errorf("StaleOnError(%s at %v, %d) = %v; want an entry: %v", tc.key, tc.at, tc.status, got != nil, tc.want)
		}
	}
}

// TestCoalescing sends 100 concurrent misses for one key: exactly one
// leads, the others wait and are served from its answer.
func TestCoalescing(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{})
	const key = "http://ex.com/c"
	var leaders, hits atomic.Int32
	var start, wg sync.WaitGroup
	start.Add(1)
	release := make(chan struct{})
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			res := c.Lookup(getReq(key, nil), at(0))
			switch {
			case res.Fill != nil:
				leaders.Add(1)
				<-release
				c.Store(getReq(key, nil), res.Fill, respAt(0, 200, "one", "Cache-Control", "max-age=60"))
			case res.Outcome == Hit && string(res.Entry.Body()) == "one":
				hits.Add(1)
			}
		}()
	}
	start.Done()
	// The leader holds its answer until every other request is waiting
	// on it (or has already been served): poll, no fixed sleep.
	deadline := time.Now().Add(10 * time.Second)
	for leaders.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if leaders.Load() != 1 || hits.Load() != 99 {
		t.Errorf("leaders, hits = %d, %d; want 1, 99", leaders.Load(), hits.Load())
	}
}

// TestCoalescingPass checks an uncacheable answer: the waiters go
// upstream themselves, and the hit-for-miss marker keeps later requests
// from waiting on each other.
func TestCoalescingPass(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{HitForMiss: time.Minute})
	const key = "http://ex.com/p"
	lead := c.Lookup(getReq(key, nil), at(0))
	if lead.Fill == nil {
		t.Fatal("first Lookup did not lead")
	}
	got := make(chan Result)
	go func() { got <- c.Lookup(getReq(key, nil), at(0)) }()
	// Let the follower reach its wait; it is bounded by LockTimeout, so
	// a slow start only costs time.
	for c.fills.Size() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, why := c.Store(getReq(key, nil), lead.Fill, respAt(0, 200, "x", "Set-Cookie", "s=1")); why != NotStoredSetCookie {
		t.Fatalf("Store() reason = %v; want set-cookie", why)
	}
	if res := <-got; res.Outcome != Miss || res.Fill != nil {
		t.Errorf("follower = %v, fill %v; want miss without fill", res.Outcome, res.Fill != nil)
	}
	for i := range 3 {
		if res := c.Lookup(getReq(key, nil), at(time.Duration(i)*time.Second)); res.Outcome != Miss || res.Fill != nil {
			t.Errorf("Lookup under hit-for-miss = %v, fill %v; want miss without fill", res.Outcome, res.Fill != nil)
		}
	}
	// After the marker: a cacheable answer is stored again.
	res := c.Lookup(getReq(key, nil), at(2*time.Minute))
	if res.Fill == nil {
		t.Fatal("Lookup after the marker did not lead")
	}
	if _, why := c.Store(getReq(key, nil), res.Fill, respAt(2*time.Minute, 200, "y", "Cache-Control", "max-age=60")); why != Stored {
		t.Errorf("Store() after the marker = %v; want stored", why)
	}
}

// TestLockTimeout checks that a follower waits at most LockTimeout.
func TestLockTimeout(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{LockTimeout: 20 * time.Millisecond})
	lead := c.Lookup(getReq("http://ex.com/l", nil), at(0))
	defer lead.Fill.Abandon()
	begin := time.Now()
	res := c.Lookup(getReq("http://ex.com/l", nil), at(0))
	if res.Outcome != Miss || res.Fill != nil {
		t.Errorf("follower = %v, fill %v; want miss without fill", res.Outcome, res.Fill != nil)
	}
	if waited := time.Since(begin); waited < 20*time.Millisecond || waited > 5*time.Second {
		t.Errorf("follower waited %v; want about 20ms", waited)
	}
	// A fill older than LockTimeout is taken over.
	if res := c.Lookup(getReq("http://ex.com/l", nil), at(time.Second)); res.Fill == nil {
		t.Error("Lookup after LockTimeout did not take the fill over")
	} else {
		res.Fill.Abandon()
	}
}

// TestPurge checks purges by host and prefix, both schemes.
func TestPurge(t *testing.T) {
	t.Parallel()
	c := newTestCache(t, Options{})
	for _, k := range []string{"http://a.com/img/1", "https://a.com/img/2?x", "http://a.com:8080/img/3", "http://a.com.evil/img/4",
		"http://a.com/css/1", "http://b.com/img/1", "http://b.com:81/img/1"} {
		fill(t, c, getReq(k, nil), 0, respAt(0, 200, "x", "Cache-Control", "max-age=60"))
	}
	// A host without a port covers the entries of every port.
	if n := c.Purge("A.com", "/img/"); n != 3 {
		t.Errorf("Purge(a.com, /img/) = %d; want 3", n)
	}
	if n := c.Purge("b.com:81", "/"); n != 1 {
		t.Errorf("Purge(b.com:81, /) = %d; want 1", n)
	}
	for k, want := range map[string]Outcome{"http://a.com/img/1": Miss, "https://a.com/img/2?x": Miss, "http://a.com:8080/img/3": Miss,
		"http://a.com.evil/img/4": Hit, "http://a.com/css/1": Hit, "http://b.com/img/1": Hit, "http://b.com:81/img/1": Miss} {
		res := c.Lookup(getReq(k, nil), at(time.Second))
		res.Fill.Abandon()
		if res.Outcome != want {
			t.Errorf("Lookup(%s) after purge = %v; want %v", k, res.Outcome, want)
		}
	}
	if n := c.Purge("a.com", "/"); n != 1 {
		t.Errorf("Purge(a.com, /) = %d; want 1", n)
	}
}

// TestSizeBound fills ten times the bound: the stored size stays under
// it and evictions are counted.
func TestSizeBound(t *testing.T) {
	t.Parallel()
	const bound = 1 << 20
	c := newTestCache(t, Options{MaxBytes: bound})
	body := string(make([]byte, 8<<10))
	var peak uint64
	for i := range 10 * bound / len(body) {
		r := getReq(fmt.Sprintf("http://ex.com/%d", i), nil)
		res := c.Lookup(r, at(0))
		c.Store(r, res.Fill, respAt(0, 200, body, "Cache-Control", "max-age=600"))
		peak = max(peak, c.Stats().SizeBytes)
	}
	c.store.CleanUp()
	st := c.Stats()
	if st.SizeBytes > bound || st.SizeBytes < bound/2 {
		t.Errorf("Stats().SizeBytes = %d; want between %d and %d", st.SizeBytes, bound/2, bound)
	}
	if peak > bound+bound/10 {
		t.Errorf("peak SizeBytes = %d; want at most 10%% over %d", peak, bound)
	}
	if st.EvictedItems == 0 || st.EvictedBytes < 8*bound || st.Items == 0 || st.Items > bound/(8<<10) {
		t.Errorf("Stats() = %+v; want evictions counted and items under the bound", st)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{}); err != ErrNoSize {
		t.Errorf("New(zero) error = %v; want ErrNoSize", err)
	}
	c := newTestCache(t, Options{MaxBytes: 1 << 20, MaxObjectBytes: 1 << 30})
	if c.o.MaxObjectBytes != 1<<18 {
		t.Errorf("MaxObjectBytes = %d; want a quarter of MaxBytes", c.o.MaxObjectBytes)
	}
}
