package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aralez-go/aralez/proxy/cache"
)

// fakeHeader is an empty request header list for the cache.
type fakeHeader struct{}

func (*fakeHeader) Peek([]byte) []byte { return nil }

func (*fakeHeader) Repeated([]byte) bool { return false }

// TestCachePurge checks POST /cache/purge against a real cache (issue
// 15): the key rules, exact URL and host/prefix purges, and errors.
func TestCachePurge(t *testing.T) {
	t.Parallel()
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now().UnixNano()
	store := func(key string) {
		r := &cache.Request{Method: []byte("GET"), Key: []byte(key), Header: &fakeHeader{}}
		res := c.Lookup(r, now)
		h := cache.AppendField(nil, []byte("Cache-Control"), []byte("max-age=60"))
		if _, why := c.Store(r, res.Fill, &cache.Response{Status: 200, Header: h, Body: []byte("x"), RequestTime: now, ResponseTime: now}); why != cache.Stored {
			t.Fatalf("Store(%s) = %v", key, why)
		}
	}
	cached := func(key string) bool {
		res := c.Lookup(&cache.Request{Method: []byte("GET"), Key: []byte(key), Header: &fakeHeader{}}, now)
		res.Fill.Abandon()
		return res.Outcome == cache.Hit
	}
	// Requests whose Host named a port are stored under it.
	for _, k := range []string{"http://a.test/x?q=1", "http://a.test:8080/x?q=1", "https://a.test/img/1", "http://a.test/img/2",
		"http://a.test:8080/img/3", "http://b.test/img/1", "http://[::1]/img/1"} {
		store(k)
	}
	withCache := httptest.NewServer(NewServer(Options{MasterKey: testKey, Cache: c, Logger: discard}).Handler())
	defer withCache.Close()
	noCache := httptest.NewServer(NewServer(Options{MasterKey: testKey, Logger: discard}).Handler())
	defer noCache.Close()
	noKey := httptest.NewServer(NewServer(Options{Cache: c, Logger: discard}).Handler())
	defer noKey.Close()

	tests := []struct {
		name   string
		srv    *httptest.Server
		query  string
		code   int
		body   string
		gone   []string
		stayed []string
	}{
		{name: "no master key configured", srv: noKey, query: "key=x&host=a.test", code: 403, body: "read-only", stayed: []string{"http://a.test/img/2"}},
		{name: "missing key", srv: withCache, query: "host=a.test", code: 401},
		{name: "wrong key", srv: withCache, query: "key=nope&host=a.test", code: 403, stayed: []string{"http://a.test/img/2"}},
		{name: "no cache", srv: noCache, query: "key=" + testKey + "&host=a.test", code: 404, body: "cache_size_mb"},
		{name: "nothing named", srv: withCache, query: "key=" + testKey, code: 400},
		{name: "relative url", srv: withCache, query: "key=" + testKey + "&url=/x", code: 400},
		{name: "bad prefix", srv: withCache, query: "key=" + testKey + "&host=a.test&prefix=img", code: 400},
		{name: "exact url", srv: withCache, query: "key=" + testKey + "&url=" + url.QueryEscape("http://A.test./x?q=1"), code: 200, body: `{"purged":1}`,
			gone: []string{"http://a.test/x?q=1"}, stayed: []string{"http://a.test/img/2", "http://a.test:8080/x?q=1"}},
		{name: "exact url with a port", srv: withCache, query: "key=" + testKey + "&url=" + url.QueryEscape("http://a.test:8080/x?q=1"), code: 200, body: `{"purged":1}`,
			gone: []string{"http://a.test:8080/x?q=1"}, stayed: []string{"http://a.test/img/2"}},
		{name: "host and prefix, every port", srv: withCache, query: "key=" + testKey + "&host=A.TEST&prefix=/img/", code: 200, body: `{"purged":3}`,
			gone: []string{"https://a.test/img/1", "http://a.test/img/2", "http://a.test:8080/img/3"}, stayed: []string{"http://b.test/img/1", "http://[::1]/img/1"}},
		{name: "ipv6 host", srv: withCache, query: "key=" + testKey + "&host=[::1]", code: 200, body: `{"purged":1}`,
			gone: []string{"http://[::1]/img/1"}, stayed: []string{"http://b.test/img/1"}},
	}
	for _, tc := range tests { // sequential: the cases share the cache
		resp, err := http.Post(tc.srv.URL+"/cache/purge?"+tc.query, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s: POST /cache/purge = %d %q; want %d containing %q", tc.name, resp.StatusCode, b, tc.code, tc.body)
		}
		if tc.code == 200 {
			var v map[string]int
			if err := json.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: body %q is not JSON: %v", tc.name, b, err)
			}
		}
		for _, k := range tc.gone {
			if cached(k) {
				t.Errorf("%s: %s still cached", tc.name, k)
			}
		}
		for _, k := range tc.stayed {
			if !cached(k) {
				t.Errorf("%s: %s was purged", tc.name, k)
			}
		}
	}
}
