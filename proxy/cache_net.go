package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/aralez-go/aralez/proxy/cache"
)

// This file adapts the response cache to the net/http front end (h2,
// h2c); the HTTP/1.1 one is in cache_fast.go.

// netPeeker gives the cache a net/http request's header lines.
type netPeeker struct{ h http.Header }

// Peek returns the first value of the header name; Cookie lines (HTTP/2
// sends one per cookie, RFC 9113 §8.2.3) are joined with "; ".
func (p *netPeeker) Peek(name []byte) []byte {
	vs := p.h[http.CanonicalHeaderKey(string(name))]
	switch {
	case len(vs) == 0:
		return nil
	case len(vs) > 1 && strings.EqualFold(string(name), "Cookie"):
		return []byte(strings.Join(vs, "; "))
	}
	return s2b(vs[0])
}

// Repeated reports whether the header has more than one line named name;
// Cookie lines count as one, as Peek joins them.
func (p *netPeeker) Repeated(name []byte) bool {
	return len(p.h[http.CanonicalHeaderKey(string(name))]) > 1 && !strings.EqualFold(string(name), "Cookie")
}

var _ cache.Peeker = (*netPeeker)(nil)

// appendNetFields appends a net/http response's header lines to dst, for
// the cache (the map has no order across names; lines of one name keep
// theirs).
func appendNetFields(dst cache.Fields, h http.Header) cache.Fields {
	for k, vs := range h {
		for _, v := range vs {
			dst = cache.AppendField(dst, s2b(k), s2b(v))
		}
	}
	return dst
}

// readForCache reads res's body into memory when the cache may store it
// (a known length within the cache's object limit) and puts a reader over
// the copy back for the relay. It reports false for a body left to
// stream, and returns the error of a failed read.
func (e *Engine) readForCache(st *netState, res *http.Response) ([]byte, bool, error) {
	c := e.opts.Cache
	if c == nil || st.grpc || string(st.req.Method) != "GET" || res.ContentLength < 0 || res.ContentLength > int64(c.MaxObjectBytes()) {
		return nil, false, nil
	}
	body := make([]byte, res.ContentLength)
	if _, err := io.ReadFull(res.Body, body); err != nil {
		return nil, false, err
	}
	res.Body = struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(body), res.Body}
	return body, true, nil
}

// serveCachedNet answers from st.cache.Serve, as serveCachedFast does.
func (e *Engine) serveCachedNet(st *netState, now int64) {
	cs := &st.cache
	en := cs.Serve
	w := &st.rec
	h := w.Header()
	for name, value := range en.Header().All() {
		if !cs.NotModified || cache.NotModifiedField(name) {
			k := http.CanonicalHeaderKey(string(name))
			h[k] = append(h[k], string(value))
		}
	}
	e.pl.PlanHit(&st.dec, cs, &st.plan, now)
	applyNet(h, &st.plan, &st.vals)
	status := en.Status()
	if cs.NotModified {
		status = http.StatusNotModified
	} else {
		h["Content-Length"] = []string{strconv.Itoa(len(en.Body()))}
	}
	e.pl.Responded(&st.dec, status)
	w.WriteHeader(status)
	if status != http.StatusNotModified && st.r.Method != http.MethodHead {
		_, _ = w.Write(en.Body())
	}
}
