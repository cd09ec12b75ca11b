package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/proxy/cache"
)

// countingBackend is a real HTTP server whose behaviour is chosen per
// path by the test case; it counts the requests it gets per path and
// keeps the last request's headers.
type countingBackend struct {
	srv *httptest.Server
	mu  sync.Mutex // guards the maps
	fn  map[string]func(w http.ResponseWriter, r *http.Request, n int)
	n   map[string]int
	hdr map[string]http.Header
}

func newCountingBackend(t *testing.T) *countingBackend {
	b := &countingBackend{fn: map[string]func(http.ResponseWriter, *http.Request, int){}, n: map[string]int{}, hdr: map[string]http.Header{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.n[r.URL.Path]++
		n := b.n[r.URL.Path]
		b.hdr[r.URL.Path] = r.Header.Clone()
		fn := b.fn[r.URL.Path]
		b.mu.Unlock()
		if fn == nil {
			http.NotFound(w, r)
			return
		}
		fn(w, r, n)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *countingBackend) handle(path string, fn func(w http.ResponseWriter, r *http.Request, n int)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fn[path] = fn
}

func (b *countingBackend) count(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[path]
}

func (b *countingBackend) lastHeader(path, name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hdr[path].Get(name)
}

// reply answers with the given header lines ("Name: value") and body.
func reply(body string, lines ...string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		for _, l := range lines {
			k, v, _ := strings.Cut(l, ": ")
			w.Header().Add(k, v)
		}
		io.WriteString(w, body)
	}
}

// cacheStep is one request of a conformance case and what it must get.
type cacheStep struct {
	method string            // default GET
	hdr    map[string]string // request headers
	send   string            // request body (none when empty)
	status int               // default 200
	cache  string            // X-Cache value
	body   *string           // nil: not checked
	hits   int               // backend requests for the path after the step
	check  func(t *testing.T, resp *http.Response, b *countingBackend)
	settle bool // repeat (10 s at most) until the answer matches: a background step may lag
}

func str(s string) *string { return &s }

// cacheCase is one row of the conformance table: a backend behaviour on
// its own path and the requests sent to it.
type cacheCase struct {
	name  string
	host  string // default "c.test"
	up    func(w http.ResponseWriter, r *http.Request, n int)
	steps []cacheStep
}

var (
	past   = time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	future = time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
)

// cacheCases are the RFC 9111 rules of issue 15, each on its own path.
func cacheCases() []cacheCase {
	etag304 := func(body string, lines ...string) func(http.ResponseWriter, *http.Request, int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			for _, l := range lines {
				k, v, _ := strings.Cut(l, ": ")
				w.Header().Add(k, v)
			}
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			io.WriteString(w, body)
		}
	}
	return []cacheCase{
		{name: "max-age", up: reply("fresh", "Cache-Control: max-age=60", "Content-Type: text/x-test"), steps: []cacheStep{
			{cache: "MISS", body: str("fresh"), hits: 1},
			{cache: "HIT", body: str("fresh"), hits: 1, check: func(t *testing.T, r *http.Response, _ *countingBackend) {
				if r.Header.Get("Age") == "" || r.Header.Get("X-Served-Via") != "aralez" || r.Header.Get("Content-Type") != "text/x-test" || r.Header.Get("X-Request-Id") == "" {
					t.Errorf("hit headers = %v; want Age, client_headers, the stored Content-Type and X-Request-Id", r.Header)
				}
			}},
		}},
		{name: "cache_ttl default", up: reply("ttl"), steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "HIT", hits: 1}}},
		{name: "no-store", up: reply("x", "Cache-Control: no-store, max-age=60"), steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "MISS", hits: 2}}},
		{name: "private", up: reply("x", "Cache-Control: private, max-age=60"), steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "MISS", hits: 2}}},
		{name: "set-cookie", up: reply("x", "Cache-Control: public, max-age=60", "Set-Cookie: s=1"), steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "MISS", hits: 2}}},
		{name: "s-maxage", up: reply("x", "Cache-Control: max-age=0, s-maxage=60"), steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "HIT", hits: 1}}},
		{name: "expires", up: reply("x", "Expires: "+future), steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "HIT", hits: 1}}},
		{name: "expired", up: reply("x", "Expires: "+past), steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "MISS", hits: 2}}},
		{name: "no-cache revalidates", up: etag304("nc", "Cache-Control: no-cache, max-age=60"), steps: []cacheStep{
			{cache: "MISS", body: str("nc"), hits: 1},
			{cache: "REVALIDATED", body: str("nc"), hits: 2, check: func(t *testing.T, _ *http.Response, b *countingBackend) {
				if got := b.lastHeader("/no-cache-revalidates", "If-None-Match"); got != `"v1"` {
					t.Errorf("revalidation If-None-Match = %q; want the stored \"v1\"", got)
				}
			}},
		}},
		{name: "must-revalidate", up: etag304("mr", "Cache-Control: max-age=10, must-revalidate, stale-while-revalidate=600", "Age: 50"), steps: []cacheStep{
			{cache: "MISS", hits: 1}, {cache: "REVALIDATED", body: str("mr"), hits: 2},
		}},
		{name: "proxy-revalidate", up: etag304("pr", "Cache-Control: max-age=10, proxy-revalidate, stale-if-error=600", "Age: 50"), steps: []cacheStep{
			{cache: "MISS", hits: 1}, {cache: "REVALIDATED", body: str("pr"), hits: 2},
		}},
		{name: "stale-if-error", up: func(w http.ResponseWriter, r *http.Request, n int) {
			if n > 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			reply("sie", "Cache-Control: max-age=10, stale-if-error=600", "Age: 50", "ETag: \"s\"")(w, r, n)
		}, steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "STALE", body: str("sie"), hits: 2}}},
		{name: "stale-while-revalidate", up: func(w http.ResponseWriter, r *http.Request, n int) {
			if n > 1 && r.Header.Get("If-None-Match") == `"w"` {
				// The background revalidation: a fresh 304.
				w.Header().Set("Cache-Control", "max-age=60")
				w.WriteHeader(http.StatusNotModified)
				return
			}
			reply("swr", "Cache-Control: max-age=10, stale-while-revalidate=600", "Age: 50", "ETag: \"w\"")(w, r, n)
		}, steps: []cacheStep{
			{cache: "MISS", hits: 1},
			{cache: "STALE", body: str("swr"), check: func(t *testing.T, _ *http.Response, b *countingBackend) {
				// The stale answer came at once; the revalidation follows.
				for deadline := time.Now().Add(10 * time.Second); b.count("/stale-while-revalidate") < 2 && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
				if got := b.lastHeader("/stale-while-revalidate", "If-None-Match"); got != `"w"` {
					t.Errorf("background revalidation If-None-Match = %q; want \"w\"", got)
				}
			}},
			{cache: "HIT", body: str("swr"), hits: 2, settle: true},
		}},
		{name: "vary", up: func(w http.ResponseWriter, r *http.Request, n int) {
			reply("enc="+r.Header.Get("Accept-Encoding"), "Cache-Control: max-age=60", "Vary: Accept-Encoding")(w, r, n)
		}, steps: []cacheStep{
			{hdr: map[string]string{"Accept-Encoding": "gzip"}, cache: "MISS", body: str("enc=gzip"), hits: 1},
			{hdr: map[string]string{"Accept-Encoding": "br"}, cache: "MISS", body: str("enc=br"), hits: 2},
			{hdr: map[string]string{"Accept-Encoding": "gzip"}, cache: "HIT", body: str("enc=gzip"), hits: 2},
			{hdr: map[string]string{"Accept-Encoding": "br"}, cache: "HIT", body: str("enc=br"), hits: 2},
		}},
		{name: "untyped", up: func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header()["Content-Type"] = nil // no sniffing by the backend either
			reply("<html>untyped", "Cache-Control: max-age=60")(w, r, n)
		}, steps: []cacheStep{
			{cache: "MISS", body: str("<html>untyped"), hits: 1, check: noContentType},
			{cache: "HIT", body: str("<html>untyped"), hits: 1, check: noContentType},
		}},
		// Two Accept-Encoding lines reach the backend as "gzip, br": that
		// answer must not be stored as the gzip variant, nor a gzip
		// variant served to it.
		{name: "vary repeated field", up: func(w http.ResponseWriter, r *http.Request, n int) {
			vs := slices.Sorted(slices.Values(r.Header.Values("Accept-Encoding"))) // lines of both spellings come in map order
			reply("enc="+strings.Join(vs, ","), "Cache-Control: max-age=60", "Vary: Accept-Encoding")(w, r, n)
		}, steps: []cacheStep{
			{hdr: map[string]string{"Accept-Encoding": "gzip", "accept-encoding": "br"}, cache: "MISS", body: str("enc=br,gzip"), hits: 1},
			{hdr: map[string]string{"Accept-Encoding": "gzip"}, cache: "MISS", body: str("enc=gzip"), hits: 2},
			{hdr: map[string]string{"Accept-Encoding": "gzip"}, cache: "HIT", body: str("enc=gzip"), hits: 2},
			{hdr: map[string]string{"Accept-Encoding": "gzip", "accept-encoding": "br"}, cache: "MISS", body: str("enc=br,gzip"), hits: 3},
		}},
		// The Host's port reaches the backend (which may build links
		// from it), so it is part of the key: a request for c.test:1
		// must not fill c.test's entry.
		{name: "host port", up: func(w http.ResponseWriter, r *http.Request, n int) {
			reply("host="+r.Host, "Cache-Control: max-age=60")(w, r, n)
		}, steps: []cacheStep{
			{hdr: map[string]string{"Host": "c.test:1"}, cache: "MISS", body: str("host=c.test:1"), hits: 1},
			{cache: "MISS", body: str("host=c.test"), hits: 2},
			{hdr: map[string]string{"Host": "C.test:1"}, cache: "HIT", body: str("host=c.test:1"), hits: 2},
			{cache: "HIT", body: str("host=c.test"), hits: 2},
		}},
		// A GET with a body ("fat GET") reaches the backend body and
		// all, but the key has no body: it goes past the cache, or its
		// answer would be served to every plain GET of the URL.
		{name: "get with a body", up: func(w http.ResponseWriter, r *http.Request, n int) {
			b, _ := io.ReadAll(r.Body)
			reply("body="+string(b), "Cache-Control: max-age=60")(w, r, n)
		}, steps: []cacheStep{
			{send: "evil", cache: "BYPASS", body: str("body=evil"), hits: 1},
			{cache: "MISS", body: str("body="), hits: 2},
			{cache: "HIT", body: str("body="), hits: 2},
			{send: "evil", cache: "BYPASS", body: str("body=evil"), hits: 3},
		}},
		// The proxy sets X-Forwarded-For (and Remote-User after forward
		// auth): the backend varied on the value the proxy set, which a
		// client can send itself to match another client's variant. Such
		// an answer is not stored.
		{name: "vary on a header the proxy sets", up: func(w http.ResponseWriter, r *http.Request, n int) {
			reply("xff="+r.Header.Get("X-Forwarded-For"), "Cache-Control: max-age=60", "Vary: Accept-Encoding, x-forwarded-for")(w, r, n)
		}, steps: []cacheStep{
			{cache: "MISS", body: str("xff=127.0.0.1"), hits: 1},
			{hdr: map[string]string{"X-Forwarded-For": "127.0.0.1"}, cache: "MISS", body: str("xff=127.0.0.1"), hits: 2},
		}},
		{name: "vary star", up: reply("x", "Cache-Control: max-age=60", "Vary: *"), steps: []cacheStep{{cache: "MISS", hits: 1}, {cache: "MISS", hits: 2}}},
		{name: "head from get", up: reply("0123456789", "Cache-Control: max-age=60"), steps: []cacheStep{
			{cache: "MISS", hits: 1},
			{method: "HEAD", cache: "HIT", body: str(""), hits: 1, check: func(t *testing.T, r *http.Response, _ *countingBackend) {
				if r.ContentLength != 10 {
					t.Errorf("HEAD Content-Length = %d; want 10", r.ContentLength)
				}
			}},
		}},
		{name: "client 304 from a fresh entry", up: reply("c304", "Cache-Control: max-age=60", "ETag: \"c\""), steps: []cacheStep{
			{cache: "MISS", hits: 1},
			{hdr: map[string]string{"If-None-Match": `"c"`}, status: 304, cache: "HIT", body: str(""), hits: 1, check: func(t *testing.T, r *http.Response, _ *countingBackend) {
				if r.Header.Get("ETag") != `"c"` {
					t.Errorf("304 ETag = %q; want \"c\"", r.Header.Get("ETag"))
				}
			}},
			{hdr: map[string]string{"If-None-Match": `"other"`}, cache: "HIT", body: str("c304"), hits: 1},
		}},
		{name: "client 304 on a miss", up: reply("m304", "Cache-Control: max-age=60", "ETag: \"m\""), steps: []cacheStep{
			{hdr: map[string]string{"If-None-Match": `"m"`}, status: 304, cache: "MISS", hits: 1, check: func(t *testing.T, _ *http.Response, b *countingBackend) {
				if got := b.lastHeader("/client-304-on-a-miss", "If-None-Match"); got != "" {
					t.Errorf("upstream got If-None-Match %q; want none (the cache fills with a full answer)", got)
				}
			}},
			{cache: "HIT", body: str("m304"), hits: 1},
		}},
		{name: "authorization", up: reply("a", "Cache-Control: max-age=60"), steps: []cacheStep{
			{hdr: map[string]string{"Authorization": "Bearer x"}, cache: "MISS", hits: 1},
			{hdr: map[string]string{"Authorization": "Bearer x"}, cache: "MISS", hits: 2},
			{cache: "MISS", hits: 3},
			{cache: "HIT", hits: 3},
			{hdr: map[string]string{"Authorization": "Bearer y"}, cache: "MISS", hits: 4},
		}},
		{name: "authorization public", up: reply("ap", "Cache-Control: public, max-age=60"), steps: []cacheStep{
			{hdr: map[string]string{"Authorization": "Bearer x"}, cache: "MISS", hits: 1},
			{hdr: map[string]string{"Authorization": "Bearer y"}, cache: "HIT", hits: 1},
		}},
		{name: "auth route", host: "auth.test", up: reply("secret", "Cache-Control: max-age=60"), steps: []cacheStep{
			{hdr: map[string]string{"Authorization": "Basic dTpw"}, cache: "MISS", hits: 1},
			{hdr: map[string]string{"Authorization": "Basic dTpw"}, cache: "MISS", hits: 2},
			{status: 401, hits: 2},
		}},
		{name: "auth route public", host: "auth.test", up: reply("shared", "Cache-Control: public, max-age=60"), steps: []cacheStep{
			{hdr: map[string]string{"Authorization": "Basic dTpw"}, cache: "MISS", hits: 1},
			{hdr: map[string]string{"Authorization": "Basic dTpw"}, cache: "HIT", body: str("shared"), hits: 1},
			{status: 401, hits: 1},
		}},
		{name: "unsafe invalidates", up: reply("u", "Cache-Control: max-age=60"), steps: []cacheStep{
			{cache: "MISS", hits: 1}, {cache: "HIT", hits: 1},
			{method: "POST", cache: "BYPASS", hits: 2},
			{cache: "MISS", hits: 3}, {cache: "HIT", hits: 3},
		}},
		{name: "range bypasses", up: reply("r", "Cache-Control: max-age=60"), steps: []cacheStep{
			{cache: "MISS", hits: 1}, {hdr: map[string]string{"Range": "bytes=0-0"}, cache: "BYPASS", hits: 2},
		}},
		{name: "cache_bypass", up: reply("b", "Cache-Control: max-age=60"), steps: []cacheStep{
			{cache: "MISS", hits: 1}, {hdr: map[string]string{"X-Debug": "1"}, cache: "BYPASS", hits: 2},
			{hdr: map[string]string{"Cookie": "a=1; session=2"}, cache: "BYPASS", hits: 3}, {cache: "HIT", hits: 3},
		}},
		{name: "only-if-cached", up: reply("o", "Cache-Control: max-age=60"), steps: []cacheStep{
			{hdr: map[string]string{"Cache-Control": "only-if-cached"}, status: 504, cache: "MISS", hits: 0},
		}},
		{name: "request no-cache", up: etag304("rn", "Cache-Control: max-age=60"), steps: []cacheStep{
			{cache: "MISS", hits: 1}, {hdr: map[string]string{"Cache-Control": "no-cache"}, cache: "REVALIDATED", body: str("rn"), hits: 2},
		}},
	}
}

// casePath is the path of a case on the backend.
// noContentType fails a response that carries a Content-Type: an
// untyped answer must stay untyped, stored or not (RFC 9110 §8.3).
func noContentType(t *testing.T, r *http.Response, _ *countingBackend) {
	if v, ok := r.Header["Content-Type"]; ok {
		t.Errorf("Content-Type = %q; want none", v)
	}
}

func casePath(name string) string { return "/" + strings.NewReplacer(" ", "-", "_", "-").Replace(name) }

// cacheConfig is the conformance table's routes: c.test (cached, with
// cache_bypass) and auth.test (cached, basic auth), to backend addr.
func cacheConfig(addr string) *config.Config {
	cfg := &config.Config{}
	cfg.Main.CacheSizeMB = 16
	cfg.Main.CacheTTL = 60
	cfg.Upstreams.Policy.ClientHeaders = []config.Header{{Name: "X-Served-Via", Value: "aralez"}}
	cfg.Upstreams.Policy.CacheBypass = []string{"X-Debug", "cookie:session"}
	c := oneRoute("c.test", "/", addr)
	a := oneRoute("auth.test", "/", addr)
	a.Paths[0].Policy.Authorization = &config.Auth{Type: "basic", Data: []string{"u:p"}}
	cfg.Upstreams.Hosts = []config.Host{c, a}
	return cfg
}

func newTestCache(t testing.TB, mb int) *cache.Cache {
	c, err := cache.New(cache.Options{MaxBytes: int64(mb) << 20, DefaultTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestCacheConformance runs the cache's rules through the real listeners
// (HTTP/1.1, h2c, h2) against a real backend that counts its requests
// (issue 15); each front end gets its own proxy, cache and backend.
func TestCacheConformance(t *testing.T) {
	t.Parallel()
	for _, fe := range frontEnds[:3] {
		t.Run(fe.name, func(t *testing.T) {
			t.Parallel()
			b := newCountingBackend(t)
			c := newTestCache(t, 16)
			// The stopped-backend case logs failed attempts on purpose.
			quiet := slog.New(slog.DiscardHandler)
			f := startFronts(t, cacheConfig(addrOf(b.srv)), Options{Cache: c, CacheStatusHeader: "X-Cache", Logger: quiet}, UpstreamOptions{}, ListenOptions{})
			for _, tc := range cacheCases() {
				path := casePath(tc.name)
				b.handle(path, tc.up)
				host := tc.host
				if host == "" {
					host = "c.test"
				}
				for i, s := range tc.steps {
					m := s.method
					if m == "" {
						m = "GET"
					}
					hdr := map[string]string{"Host": host}
					for k, v := range s.hdr {
						hdr[k] = v
					}
					want := s.status
					if want == 0 {
						want = 200
					}
					var send io.Reader
					if s.send != "" {
						send = strings.NewReader(s.send)
					}
					resp, body := doReq(t, fe.client, m, fe.base(f), path, hdr, send)
					for deadline := time.Now().Add(10 * time.Second); s.settle && resp.Header.Get("X-Cache") != s.cache && time.Now().Before(deadline); {
						time.Sleep(time.Millisecond)
						resp, body = doReq(t, fe.client, m, fe.base(f), path, hdr, nil)
					}
					if resp.StatusCode != want || resp.Header.Get("X-Cache") != s.cache || s.body != nil && body != *s.body {
						wantBody := "(any)"
						if s.body != nil {
							wantBody = *s.body
						}
						t.Errorf("%s step %d: %s = %d X-Cache %q body %q; want %d %q %q", tc.name, i, m, resp.StatusCode, resp.Header.Get("X-Cache"), body, want, s.cache, wantBody)
					}
					if s.hits > 0 || s.status == 504 {
						if got := b.count(path); got != s.hits {
							t.Errorf("%s step %d: backend requests = %d; want %d", tc.name, i, got, s.hits)
						}
					}
					if s.check != nil {
						s.check(t, resp, b)
					}
				}
			}
			coalesce(t, fe, f, b)
			purge(t, fe, f, b, c)
			staleWithBackendStopped(t, fe, f, b)
		})
	}
}

// cacheGet sends GET path to c.test and returns the status, X-Cache and body.
func cacheGet(t *testing.T, fe frontEnd, f *fronts, path string) (int, string, string) {
	t.Helper()
	resp, body := doReq(t, fe.client, "GET", fe.base(f), path, map[string]string{"Host": "c.test"}, nil)
	return resp.StatusCode, resp.Header.Get("X-Cache"), body
}

// coalesce sends 100 concurrent misses for one URL while the backend
// holds the first answer: one request reaches the backend, every client
// gets its answer.
func coalesce(t *testing.T, fe frontEnd, f *fronts, b *countingBackend) {
	const path, n = "/coalesce", 100
	release := make(chan struct{})
	b.handle(path, func(w http.ResponseWriter, r *http.Request, _ int) {
		<-release
		reply("one", "Cache-Control: max-age=60")(w, r, 1)
	})
	var wg sync.WaitGroup
	bodies := make([]string, n)
	for i := range n {
		wg.Go(func() { _, _, bodies[i] = cacheGet(t, fe, f, path) })
	}
	// The first request is at the backend; the others are waiting on it
	// or not sent yet (then they hit the stored answer): either way the
	// backend sees one request. Poll for the first, with a ceiling.
	for deadline := time.Now().Add(10 * time.Second); b.count(path) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := b.count(path); got != 1 {
		t.Errorf("%d concurrent misses sent %d upstream requests; want 1", n, got)
	}
	for i, body := range bodies {
		if body != "one" {
			t.Errorf("client %d got %q; want \"one\"", i, body)
			break
		}
	}
}

// purge checks that Purge (what POST /cache/purge calls) removes a
// host's entries under a prefix.
func purge(t *testing.T, fe frontEnd, f *fronts, b *countingBackend, c *cache.Cache) {
	const path = "/purge/me"
	b.handle(path, reply("p", "Cache-Control: max-age=60"))
	cacheGet(t, fe, f, path)
	if _, xc, _ := cacheGet(t, fe, f, path); xc != "HIT" {
		t.Fatalf("before purge: X-Cache %q; want HIT", xc)
	}
	if n := c.Purge("c.test", "/purge/"); n != 1 {
		t.Errorf("Purge(c.test, /purge/) = %d; want 1", n)
	}
	if _, xc, _ := cacheGet(t, fe, f, path); xc != "MISS" || b.count(path) != 2 {
		t.Errorf("after purge: X-Cache %q, backend requests %d; want MISS, 2", xc, b.count(path))
	}
}

// staleWithBackendStopped stops the backend: an entry with
// stale-if-error is served stale, one without gets 502.
func staleWithBackendStopped(t *testing.T, fe frontEnd, f *fronts, b *countingBackend) {
	b.handle("/down/sie", reply("kept", "Cache-Control: max-age=10, stale-if-error=600", "Age: 50", "ETag: \"d\""))
	b.handle("/down/none", reply("gone", "Cache-Control: max-age=10", "Age: 50", "ETag: \"d\""))
	cacheGet(t, fe, f, "/down/sie")
	cacheGet(t, fe, f, "/down/none")
	b.srv.Close()
	if st, xc, body := cacheGet(t, fe, f, "/down/sie"); st != 200 || xc != "STALE" || body != "kept" {
		t.Errorf("backend stopped, stale-if-error: %d %q %q; want 200 STALE kept", st, xc, body)
	}
	if st, _, _ := cacheGet(t, fe, f, "/down/none"); st != 502 {
		t.Errorf("backend stopped, no stale-if-error: %d; want 502", st)
	}
}

// TestCacheSchemeFromTrustedProxy: behind a trusted TLS-terminating
// proxy, X-Forwarded-Proto is the request's scheme upstream, so it is the
// key's: a backend that redirects plain-HTTP requests to https must not
// have that redirect served to the https clients of the same listener
// (a redirect loop), nor https pages served to plain-HTTP ones.
func TestCacheSchemeFromTrustedProxy(t *testing.T) {
	t.Parallel()
	for _, fe := range frontEnds[:3] {
		t.Run(fe.name, func(t *testing.T) {
			t.Parallel()
			b := newCountingBackend(t)
			b.handle("/page", func(w http.ResponseWriter, r *http.Request, n int) {
				reply("proto="+r.Header.Get("X-Forwarded-Proto"), "Cache-Control: max-age=60")(w, r, n)
			})
			o := Options{Cache: newTestCache(t, 16), CacheStatusHeader: "X-Cache", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
			f := startFronts(t, cacheConfig(addrOf(b.srv)), o, UpstreamOptions{}, ListenOptions{})
			for i, s := range []struct{ xfp, cache, body string }{
				{"https", "MISS", "proto=https"},
				{"http", "MISS", "proto=http"},
				{"HTTPS", "HIT", "proto=https"},
				{"http", "HIT", "proto=http"},
				{"", "HIT", "proto=" + fe.xfp}, // no header: the listener's scheme
			} {
				hdr := map[string]string{"Host": "c.test"}
				if s.xfp != "" {
					hdr["X-Forwarded-Proto"] = s.xfp
				}
				resp, body := doReq(t, fe.client, "GET", fe.base(f), "/page", hdr, nil)
				if xc := resp.Header.Get("X-Cache"); xc != s.cache || body != s.body {
					t.Errorf("step %d (X-Forwarded-Proto %q): X-Cache %q body %q; want %q %q", i, s.xfp, xc, body, s.cache, s.body)
				}
			}
		})
	}
}
