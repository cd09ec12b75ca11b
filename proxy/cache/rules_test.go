package cache

import (
	"testing"
	"time"
)

func TestFields(t *testing.T) {
	t.Parallel()
	f := fields("Content-Type", "text/plain", "ETag", `"a"`, "X-Empty", "")
	if got := f.Len(); got != 3 {
		t.Errorf("Len() = %d; want 3", got)
	}
	if got := string(f.Get([]byte("etag"))); got != `"a"` {
		t.Errorf("Get(etag) = %q; want %q", got, `"a"`)
	}
	if v := f.Get([]byte("x-empty")); v == nil || len(v) != 0 {
		t.Errorf("Get(x-empty) = %#v; want empty, not nil", v)
	}
	if f.Has([]byte("Vary")) {
		t.Error("Has(Vary) = true; want false")
	}
	if _, _, next := f[:len(f)-1].Next(0); next < 0 {
		t.Error("Next on a block cut in its last field lost the first field")
	}
	if got := f[:len(f)-1].Len(); got != 2 {
		t.Errorf("Len() of a truncated block = %d; want 2", got)
	}
}

func TestParseResponseCC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want responseCC
	}{
		{name: "none", want: responseCC{maxAge: -1, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1}},
		{name: "max-age", in: []string{"public, max-age=60"}, want: responseCC{maxAge: 60, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1, public: true}},
		{name: "quoted and case", in: []string{`MAX-AGE="30", S-MaxAge=10`}, want: responseCC{maxAge: 30, sMaxAge: 10, staleWhileRevalidate: -1, staleIfError: -1}},
		{name: "invalid is stale", in: []string{"max-age=abc"}, want: responseCC{maxAge: 0, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1}},
		{name: "duplicate keeps smaller", in: []string{"max-age=60", "max-age=5"}, want: responseCC{maxAge: 5, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1}},
		{name: "overflow", in: []string{"max-age=99999999999999999999"}, want: responseCC{maxAge: maxDelta, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1}},
		{name: "qualified no-cache and private", in: []string{`no-cache="Set-Cookie, X-A", private="X-B"`}, want: responseCC{maxAge: -1, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1, noCache: true, private: true}},
		{name: "rfc 5861", in: []string{"max-age=1, stale-while-revalidate=30, stale-if-error=600"}, want: responseCC{maxAge: 1, sMaxAge: -1, staleWhileRevalidate: 30, staleIfError: 600}},
		{name: "flags", in: []string{"no-store, must-revalidate, proxy-revalidate, must-understand"}, want: responseCC{maxAge: -1, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1, noStore: true, mustRevalidate: true, proxyRevalidate: true, mustUnderstd: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var f Fields
			for _, v := range tc.in {
				f = AppendField(f, []byte("Cache-Control"), []byte(v))
			}
			if got := parseResponseCC(f); got != tc.want {
				t.Errorf("parseResponseCC(%q) = %+v; want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRequestCC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cc, pragma string
		want       requestCC
	}{
		{name: "none", want: requestCC{maxAge: -1, maxStale: -1, minFresh: -1}},
		{name: "pragma", pragma: "no-cache", want: requestCC{maxAge: -1, maxStale: -1, minFresh: -1, noCache: true}},
		{name: "cache-control wins over pragma", cc: "max-age=5", pragma: "no-cache", want: requestCC{maxAge: 5, maxStale: -1, minFresh: -1}},
		{name: "bare max-stale", cc: "max-stale", want: requestCC{maxAge: -1, maxStale: maxDelta, minFresh: -1}},
		{name: "all", cc: "max-stale=10, min-fresh=3, no-cache, no-store, only-if-cached", want: requestCC{maxAge: -1, maxStale: 10, minFresh: 3, noCache: true, noStore: true, onlyIfCached: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var cc, pragma []byte
			if tc.cc != "" {
				cc = []byte(tc.cc)
			}
			if tc.pragma != "" {
				pragma = []byte(tc.pragma)
			}
			if got := parseRequestCC(cc, pragma); got != tc.want {
				t.Errorf("parseRequestCC(%q, %q) = %+v; want %+v", tc.cc, tc.pragma, got, tc.want)
			}
		})
	}
}

func TestParseHTTPDate(t *testing.T) {
	t.Parallel()
	const want = 784111777 // Sun, 06 Nov 1994 08:49:37 GMT
	for _, in := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", " Sun, 06 Nov 1994 08:49:37 GMT "} {
		if got, ok := parseHTTPDate([]byte(in)); !ok || got != want {
			t.Errorf("parseHTTPDate(%q) = %d, %v; want %d, true", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 32 Nov 1994 08:49:37 GMT"} {
		if got, ok := parseHTTPDate([]byte(in)); ok {
			t.Errorf("parseHTTPDate(%q) = %d, true; want false", in, got)
		}
	}
	if got := string(appendHTTPDate(nil, want)); got != "Sun, 06 Nov 1994 08:49:37 GMT" {
		t.Errorf("appendHTTPDate() = %q", got)
	}
}

// TestStoreRules covers RFC 9111 §3 (what is stored), §3.5
// (credentials), §4.2.1 (freshness lifetime) and the cache_ttl default.
func TestStoreRules(t *testing.T) {
	t.Parallel()
	const ttl = int64(60 * time.Second)
	date := string(appendHTTPDate(nil, t0/int64(time.Second)))
	in10 := string(appendHTTPDate(nil, t0/int64(time.Second)+10))
	tests := []struct {
		name     string
		method   string
		creds    bool
		reqCC    string
		status   int
		kv       []string
		body     int
		streamed bool
		want     Reason
		lifetime time.Duration
	}{
		{name: "200 without freshness gets cache_ttl", status: 200, want: Stored, lifetime: time.Minute},
		{name: "404 is heuristically cacheable", status: 404, want: Stored, lifetime: time.Minute},
		{name: "302 needs explicit freshness", status: 302, want: NotStoredStatus},
		{name: "302 with max-age", status: 302, kv: []string{"Cache-Control", "max-age=5"}, want: Stored, lifetime: 5 * time.Second},
		{name: "206 never", status: 206, kv: []string{"Cache-Control", "max-age=5"}, want: NotStoredStatus},
		{name: "304 never", status: 304, want: NotStoredStatus},
		{name: "500 never", status: 500, kv: []string{"Cache-Control", "max-age=5"}, want: NotStoredStatus},
		{name: "HEAD not stored", method: "HEAD", status: 200, want: NotStoredMethod},
		{name: "POST not stored", method: "POST", status: 200, want: NotStoredMethod},
		{name: "s-maxage over max-age", status: 200, kv: []string{"Cache-Control", "max-age=5, s-maxage=50"}, want: Stored, lifetime: 50 * time.Second},
		{name: "max-age over Expires", status: 200, kv: []string{"Cache-Control", "max-age=7", "Expires", in10, "Date", date}, want: Stored, lifetime: 7 * time.Second},
		{name: "Expires minus Date", status: 200, kv: []string{"Expires", in10, "Date", date}, want: Stored, lifetime: 10 * time.Second},
		{name: "invalid Expires is expired", status: 200, kv: []string{"Expires", "0", "ETag", `"x"`}, want: Stored, lifetime: 0},
		{name: "expired without validator", status: 200, kv: []string{"Cache-Control", "max-age=0"}, want: NotStoredNoFreshness},
		{name: "no-store", status: 200, kv: []string{"Cache-Control", "no-store, max-age=60"}, want: NotStoredNoStore},
		{name: "must-understand overrides no-store", status: 200, kv: []string{"Cache-Control", "no-store, must-understand, max-age=60"}, want: Stored, lifetime: time.Minute},
		{name: "request no-store", reqCC: "no-store", status: 200, want: NotStoredRequestNoStore},
		{name: "private", status: 200, kv: []string{"Cache-Control", "private, max-age=60"}, want: NotStoredPrivate},
		{name: "credentials", creds: true, status: 200, kv: []string{"Cache-Control", "max-age=60"}, want: NotStoredCredentials},
		{name: "credentials with public", creds: true, status: 200, kv: []string{"Cache-Control", "public, max-age=60"}, want: Stored, lifetime: time.Minute},
		{name: "credentials with s-maxage", creds: true, status: 200, kv: []string{"Cache-Control", "s-maxage=60"}, want: Stored, lifetime: time.Minute},
		{name: "credentials with must-revalidate", creds: true, status: 200, kv: []string{"Cache-Control", "must-revalidate, max-age=60"}, want: Stored, lifetime: time.Minute},
		{name: "set-cookie", status: 200, kv: []string{"Cache-Control", "public, max-age=60", "Set-Cookie", "a=b"}, want: NotStoredSetCookie},
		{name: "vary star", status: 200, kv: []string{"Vary", "Accept, *"}, want: NotStoredVaryStar},
		{name: "too large", status: 200, body: 1025, want: NotStoredTooLarge},
		{name: "streamed", status: 200, streamed: true, want: NotStoredTooLarge},
		{name: "public 403 is never stored", status: 403, kv: []string{"Cache-Control", "public"}, want: NotStoredStatus},
		{name: "public 307 gets cache_ttl", status: 307, kv: []string{"Cache-Control", "public"}, want: Stored, lifetime: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := tc.method
			if m == "" {
				m = "GET"
			}
			h := mkHdr()
			if tc.reqCC != "" {
				h = mkHdr("Cache-Control", tc.reqCC)
			}
			r := &Request{Method: []byte(m), Key: []byte("http://a/"), Credentials: tc.creds, Header: h}
			resp := respAt(0, tc.status, string(make([]byte, tc.body)), tc.kv...)
			resp.Streamed = tc.streamed
			cc := parseRequestCC(h.Peek(strCacheControl), nil)
			got := storeRules(r, &cc, resp, resp.Header, 1024, ttl)
			if got.reason != tc.want || tc.want == Stored && got.lifetime != int64(tc.lifetime) {
				t.Errorf("storeRules() = %v, lifetime %v; want %v, %v", got.reason, time.Duration(got.lifetime), tc.want, tc.lifetime)
			}
		})
	}
}

func TestInvalidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method string
		status int
		want   bool
	}{
		{"POST", 200, true}, {"PUT", 204, true}, {"DELETE", 302, true}, {"PATCH", 201, true},
		{"POST", 404, false}, {"DELETE", 500, false}, {"GET", 200, false}, {"HEAD", 200, false}, {"OPTIONS", 200, false},
	} {
		if got := Invalidates([]byte(tc.method), tc.status); got != tc.want {
			t.Errorf("Invalidates(%s, %d) = %v; want %v", tc.method, tc.status, got, tc.want)
		}
	}
}

func TestAppendSameOriginKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tls  bool
		ref  string
		want string
	}{
		{false, "/a/b?x=1#frag", "http://ex.com/a/b?x=1"},
		{true, "https://EX.com/c", "https://ex.com/c"},
		{false, "http://ex.com", "http://ex.com/"},
		{false, "http://ex.com?q", "http://ex.com/?q"},
		{false, "https://ex.com/c", ""},
		{false, "http://other.com/c", ""},
		{false, "//ex.com/c", ""},
		{false, "relative", ""},
	} {
		got, ok := AppendSameOriginKey(nil, tc.tls, []byte("ex.com"), []byte(tc.ref))
		if string(got) != tc.want || ok != (tc.want != "") {
			t.Errorf("AppendSameOriginKey(%v, %q) = %q, %v; want %q", tc.tls, tc.ref, got, ok, tc.want)
		}
	}
}

func TestBypassList(t *testing.T) {
	t.Parallel()
	b := NewBypassList([]string{"X-Debug", "cookie:session"})
	for _, tc := range []struct {
		h    *hdr
		want bool
	}{
		{mkHdr(), false},
		{mkHdr("x-debug", "1"), true},
		{mkHdr("Cookie", "a=1; session=xyz"), true},
		{mkHdr("Cookie", "a=1;session"), true},
		{mkHdr("Cookie", "mysession=1; sessionx=2"), false},
	} {
		if got := b.Match(tc.h); got != tc.want {
			t.Errorf("Match(%v) = %v; want %v", *tc.h, got, tc.want)
		}
	}
	var empty BypassList
	if !empty.Empty() || empty.Match(mkHdr("X-Debug", "1")) {
		t.Error("the zero BypassList matched")
	}
}
