package proxy

import (
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

// This file runs the response cache's background revalidations
// (stale-while-revalidate, RFC 5861 §3): a stale hit is answered at once
// and one request per key revalidates behind it. Whichever front end
// served the hit, the revalidation is an HTTP/1.1-client request built
// from the same request plan as a forwarded request, sent through the
// pipeline's attempt loop.

// refreshTransport is the pipeline.Transport of a background
// revalidation: the detached request and its response.
type refreshTransport struct {
	e      *Engine
	req    *fasthttp.Request
	resp   *fasthttp.Response
	leased bool
}

// RoundTrip sends the revalidation to backend b.
func (t *refreshTransport) RoundTrip(b *balancer.Backend, up pipeline.Upstream) error {
	u := up.(*upstream)
	if len(t.req.Header.Host()) == 0 {
		t.req.Header.SetHost(u.hc.Addr)
	}
	t.resp.Reset()
	// No client connection: on a send_proxy_protocol route the header
	// is LOCAL / UNKNOWN, as for health probes (the proxy's own request).
	_, err := u.roundTripFast(t.req, t.resp, max(t.e.opts.BodyBufferBytes, t.e.opts.Cache.MaxObjectBytes()), b, nil, nil, nil)
	t.leased = err == nil && t.resp.IsBodyStream()
	return err
}

var _ pipeline.Transport = (*refreshTransport)(nil)

// refreshFromFast starts the revalidation a stale HTTP/1.1 hit was
// elected for, on a copy of the request planned as a forwarded one.
func (e *Engine) refreshFromFast(ctx *fasthttp.RequestCtx, st *state, rf *pipeline.Refresh) {
	req := fasthttp.AcquireRequest()
	ctx.Request.Header.CopyTo(&req.Header)
	e.pl.PlanRequest(&st.req, &st.dec, &st.plan)
	e.pl.PlanRefresh(rf, &st.plan)
	applyReq(req, &st.plan)
	e.startRefresh(&st.dec, rf, req)
}

// refreshFromNet is refreshFromFast for a hit served over HTTP/2.
func (e *Engine) refreshFromNet(st *netState, rf *pipeline.Refresh) {
	req := fasthttp.AcquireRequest()
	req.Header.SetMethod(http.MethodGet)
	for k, vs := range st.r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	e.pl.PlanRequest(&st.req, &st.dec, &st.plan)
	e.pl.PlanRefresh(rf, &st.plan)
	applyReq(req, &st.plan)
	e.startRefresh(&st.dec, rf, req)
}

// startRefresh sends req, which the new goroutine owns, upstream and
// hands the answer to the cache. The goroutine ends with the attempt
// (bounded by the upstream timeouts); a panic abandons the fill.
func (e *Engine) startRefresh(d *pipeline.Decision, rf *pipeline.Refresh, req *fasthttp.Request) {
	route, rid := d.Route, append([]byte(nil), d.RequestID...)
	go func() {
		resp := fasthttp.AcquireResponse()
		defer func() {
			if p := recover(); p != nil {
				e.pl.Logger().Error("cache revalidation panicked", "route", route.Name, "panic", p)
				rf.Fill.Abandon()
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}()
		rf.Request.Header = (*fastPeeker)(&req.Header)
		t := &refreshTransport{e: e, req: req, resp: resp}
		var pr pipeline.Request
		pr.Reset()
		pr.Method = []byte(http.MethodGet)
		var pd pipeline.Decision
		pd.Route, pd.RequestID = route, rid
		rf.SentAt = time.Now().UnixNano()
		out := e.pl.Attempt(&pr, &pd, pipeline.BodyNone, t)
		if out.Backend == nil {
			e.pl.Refreshed(rf, 0, nil, nil, false, time.Now().UnixNano())
			return
		}
		var body []byte
		if !t.leased {
			out.Backend.Release()
			body = resp.Body()
		}
		e.pl.Refreshed(rf, resp.StatusCode(), appendFastFields(nil, &resp.Header), body, t.leased, time.Now().UnixNano())
		if t.leased {
			resp.Reset() // closes the stream, which gives the backend's count back
		}
	}()
}
