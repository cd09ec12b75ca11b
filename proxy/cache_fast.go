package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/proxy/cache"
)

// This file adapts the response cache to the HTTP/1.1 front end: the
// cache's rules are in proxy/cache and its step in the pipeline.

// fastPeeker gives the cache a fasthttp request's header lines without
// allocating.
type fastPeeker fasthttp.RequestHeader

// Peek returns the first value of the header name.
func (h *fastPeeker) Peek(name []byte) []byte {
	return (*fasthttp.RequestHeader)(h).PeekBytes(name)
}

// Repeated reports whether the header has more than one line named name
// (fasthttp keeps every line; Cookie lines are joined into one).
func (h *fastPeeker) Repeated(name []byte) bool {
	return len((*fasthttp.RequestHeader)(h).PeekAll(string(name))) > 1
}

var _ cache.Peeker = (*fastPeeker)(nil)

// appendFastFields appends a fasthttp response's header lines to dst in
// wire order, for the cache.
func appendFastFields(dst cache.Fields, h *fasthttp.ResponseHeader) cache.Fields {
	for k, v := range h.All() {
		dst = cache.AppendField(dst, k, v)
	}
	return dst
}

// serveCachedFast answers ctx from st.cache.Serve: the stored status (or
// 304) and fields, then the hit plan (Age, client_headers, X-Request-Id,
// the cache status header), and the stored body handed to fasthttp
// without a copy (the entry never changes). It allocates nothing once
// the response's buffers have grown.
func (e *Engine) serveCachedFast(ctx *fasthttp.RequestCtx, st *state, now int64) {
	cs := &st.cache
	en := cs.Serve
	resp := &ctx.Response
	resp.Reset()
	h := &resp.Header
	h.SetNoDefaultContentType(true) // a stored untyped answer stays untyped
	stored := en.Header()
	for off := 0; ; {
		name, value, next := stored.Next(off)
		if next < 0 {
			break
		}
		off = next
		if !cs.NotModified || cache.NotModifiedField(name) {
			h.AddBytesKV(name, value)
		}
	}
	e.pl.PlanHit(&st.dec, cs, &st.plan, now)
	applyResp(h, &st.plan)
	status := en.Status()
	if cs.NotModified {
		status = fasthttp.StatusNotModified
	} else {
		resp.SetBodyRaw(en.Body())
	}
	ctx.SetStatusCode(status)
	e.pl.Responded(&st.dec, status)
}
