package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/proxy/cache"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

// This file is the HTTP/1.1 front end: a thin adapter between fasthttp
// and the pipeline. Request rules live in the pipeline, not here.

// ServerOptions configures the fasthttp front end built by NewFastServer.
// Zero fields take the defaults noted.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers; it is also the
	// idle timeout of a keep-alive connection when IdleTimeout is zero.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may stay idle.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits the request line and header block: a larger
	// one gets 431.
	MaxHeaderBytes int
	// Concurrency caps concurrent connections; 0 = fasthttp's default.
	Concurrency int
}

// NewFastServer returns the HTTP/1.1 front end: a fasthttp.Server serving
// e's pipeline with fasthttp's path normalization switched off (the
// pipeline normalizes, pipeline/doc.go), bodies above the engine's buffer
// threshold streamed, and the timeouts and limits of o. It records
// o.WriteTimeout in e for the answers e writes on a connection it takes
// over (an HTTP/1.0 client's close-delimited body): build the server
// before serving.
func NewFastServer(e *Engine, o ServerOptions) *fasthttp.Server {
	// fasthttp's ReadTimeout runs from a request's first byte to the end
	// of its headers (read_header_timeout, against slow-header clients);
	// once the headers are in, HeaderReceived gives the body its own
	// deadline (read_timeout).
	e.writeTimeout = o.WriteTimeout // for the answers the engine writes itself
	headerTimeout := o.ReadHeaderTimeout
	if headerTimeout <= 0 {
		headerTimeout = o.ReadTimeout
	}
	bodyTimeout := o.ReadTimeout
	return &fasthttp.Server{
		Handler:                       e.ServeFastHTTP,
		ExpectHandler:                 e.expectFast,
		ErrorHandler:                  e.fastErrorHandler,
		Name:                          "",
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		StreamRequestBody:             true,
		MaxRequestBodySize:            e.opts.BodyBufferBytes,
		ReadBufferSize:                o.MaxHeaderBytes,
		ReadTimeout:                   headerTimeout,
		WriteTimeout:                  o.WriteTimeout,
		IdleTimeout:                   o.IdleTimeout,
		Concurrency:                   o.Concurrency,
		CloseOnShutdown:               true,
		SecureErrorLogMessage:         true,
		Logger:                        quietLogger{},
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if cl := h.ContentLength(); cl == 0 || cl == -2 {
				// No body to read (-2: neither Content-Length nor
				// chunked, RFC 9112 §6.3): the header deadline stays
				// until the next request's idle one (a deadline costs
				// fasthttp a clock read, and us a timer move).
				return fasthttp.RequestConfig{}
			}
			return fasthttp.RequestConfig{ReadTimeout: bodyTimeout}
		},
	}
}

// admitCtx is the context of the pipeline's Admit on HTTP/1.1 (forward
// auth's request). Not the fasthttp.RequestCtx: fasthttp reports no
// client disconnect through it (only a shutdown), and a context derived
// from it (forward auth's timeout) watches it from a goroutine of the
// context package's that may read it after fasthttp has reset it for the
// next request (a data race). Forward auth's own timeout bounds the wait.
var admitCtx = context.Background()

// fastErrorHandler answers requests fasthttp could not parse: 431 for a
// header block over the read buffer, 408 for a read timeout, else 400
// (a bare LF, framing.go, among them). The connection is closed in every
// case. The answer is counted in the metrics (aralez_responses_total).
func (e *Engine) fastErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadRequest
	var sErr *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &sErr):
		status = fasthttp.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, fasthttp.ErrTimeout) || isTimeout(err):
		status = fasthttp.StatusRequestTimeout
	}
	ctx.Response.Reset()
	ctx.SetConnectionClose()
	ctx.Response.Header.SetContentTypeBytes(strTextPlain)
	ctx.SetStatusCode(status)
	ctx.Response.SetBodyRaw(pipeline.StatusBody(status))
	if m := e.opts.Metrics; m != nil {
		m.ObserveRefused(protoOf(ctx.Request.Header.Protocol()), status)
	}
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// state is the pooled per-request scratch space of the fasthttp front
// end. It is the pipeline.Transport of its request's attempts.
type state struct {
	e     *Engine
	ctx   *fasthttp.RequestCtx // valid while the handler runs
	snap  *Snapshot
	start int64 // when the handler started, Unix nanoseconds
	req   pipeline.Request
	dec   pipeline.Decision
	plan  pipeline.Plan

	cache    pipeline.CacheState
	fields   cache.Fields // the upstream response's lines, for the cache
	bufLimit int          // the largest upstream body read into memory

	body bodyLimiter // a chunked request body under the route's limit
	peek peekedBody  // a chunked request body whose first byte was read ahead

	leased   bool   // a streamed response body owns the backend's in-flight count
	bodyLeft bool   // the exchange ended before the client's streamed body (upstream_feed.go)
	upIdx    int    // metrics index of the backend that answered, -1 = none
	upAddr   string // its address (or the one that failed), for the access log
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// admittedKey stores, in a request's user values, the state that
// expectFast already ran the pipeline's Route and Admit steps on.
var admittedKey = new(int)

var (
	strTextPlain        = []byte("text/plain; charset=utf-8")
	strContentLength    = []byte("Content-Length")
	strTransferEncoding = []byte("Transfer-Encoding")
	strHTTP11           = []byte("HTTP/1.1")
	strConnection       = []byte("Connection")
)

// acquireState returns a clean state for ctx's request.
func (e *Engine) acquireState(ctx *fasthttp.RequestCtx) *state {
	st := statePool.Get().(*state)
	st.e, st.ctx, st.snap = e, ctx, e.snap.Load()
	st.leased, st.bodyLeft, st.upIdx, st.upAddr = false, false, -1, ""
	st.req.Reset()
	st.dec.Reset()
	st.cache.Reset()
	st.bufLimit = e.opts.BodyBufferBytes
	return st
}

func releaseState(st *state) {
	st.ctx, st.snap, st.body, st.peek = nil, nil, bodyLimiter{}, peekedBody{}
	statePool.Put(st)
}

// prepare fills st.req from ctx and returns 0, or the status of a
// request that must be refused before routing (400, 414).
func (e *Engine) prepare(ctx *fasthttp.RequestCtx, st *state) int {
	h := &ctx.Request.Header
	if h.ContentLength() == -1 && h.ConnectionClose() && hasRawHeader(h, strContentLength) {
		// Content-Length together with Transfer-Encoding: a smuggling
		// attempt (RFC 9112 §6.3 item 3); never forwarded.
		return fasthttp.StatusBadRequest
	}
	r := &st.req
	r.Method = h.Method()
	r.Proto = h.Protocol()
	if bytes.Equal(r.Proto, strHTTP10) {
		// Not a view: the upstream request's version is rewritten.
		r.Proto = strHTTP10
	}
	r.TLS = ctx.IsTLS()
	if fc, ok := ctx.Conn().(interface{ peerAddr() netip.Addr }); ok {
		r.Peer = fc.peerAddr() // worked out once per connection
	} else {
		r.Peer = clientAddr(ctx.RemoteAddr())
	}
	if cl := h.ContentLength(); cl >= 0 {
		r.ContentLength = int64(cl)
	} else if cl == -2 {
		r.ContentLength = 0 // neither length nor chunked: no body (RFC 9112 §6.3)
	}
	for k, v := range h.All() {
		if !r.See(k, v) {
			return fasthttp.StatusBadRequest
		}
	}
	return e.pl.SetTarget(r, h.RequestURI(), h.Host())
}

// hasRawHeader reports whether the raw request headers name key; it is
// only called on the rare path where fasthttp folded a header away.
func hasRawHeader(h *fasthttp.RequestHeader, key []byte) bool {
	raw := h.RawHeaders()
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		line := raw
		if i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if c := bytes.IndexByte(line, ':'); c > 0 && bytes.EqualFold(bytes.TrimSpace(line[:c]), key) {
			return true
		}
	}
	return false
}

func clientAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// expectFast runs the pipeline's Route and Admit steps on an "Expect:
// 100-continue" request before fasthttp sends 100: only a request that
// would be forwarded (or redirected) gets 100 and has its body read (RFC
// 9110 §10.1.1). The state is handed to ServeFastHTTP, which does not run
// the steps again, so limits count the request once.
func (e *Engine) expectFast(ctx *fasthttp.RequestCtx) int {
	start := time.Now()
	st := e.acquireState(ctx)
	if status := e.prepare(ctx, st); status != 0 {
		st.dec.Action, st.dec.Status = pipeline.ActRespond, status
	} else {
		e.pl.Route(st.snap, &st.req, &st.dec)
		e.pl.Admit(admitCtx, &st.req, &st.dec)
	}
	if st.dec.Action == pipeline.ActRespond {
		// fasthttp answers with this status and closes, and does not call
		// the handler: the answer is made and recorded here.
		status := st.dec.Status
		e.replyFast(ctx, st)
		e.finishFast(ctx, st, start)
		releaseState(st)
		return status
	}
	ctx.SetUserValue(admittedKey, st)
	return fasthttp.StatusContinue
}

// ServeFastHTTP is the fasthttp request handler: it fills the pipeline's
// Request view, runs Route and Admit, and acts on the Decision: the
// proxy's own answer, a WebSocket tunnel, or the attempt loop with the
// planned request, and the planned response. It allocates nothing for
// requests and responses whose bodies are under the buffer threshold.
func (e *Engine) ServeFastHTTP(ctx *fasthttp.RequestCtx) {
	// fasthttp read the clock just before calling the handler; a second
	// read costs ~0.2 µs on some virtual machines' clocks.
	start := ctx.Time()
	if start.IsZero() {
		start = time.Now()
	}
	st, _ := ctx.UserValue(admittedKey).(*state)
	if st != nil {
		ctx.RemoveUserValue(admittedKey)
	} else {
		st = e.acquireState(ctx)
		if status := e.prepare(ctx, st); status != 0 {
			st.dec.Action, st.dec.Status = pipeline.ActRespond, status
		} else {
			e.pl.Route(st.snap, &st.req, &st.dec)
			e.pl.Admit(admitCtx, &st.req, &st.dec)
		}
	}
	st.start = start.UnixNano()
	defer releaseState(st)
	defer e.finishFast(ctx, st, start)
	d := &st.dec
	if d.Action == pipeline.ActForward && !pipeline.IsWebSocket(&st.req) {
		e.pl.CacheLookup(&st.req, d, (*fastPeeker)(&ctx.Request.Header), &st.cache, st.start)
		defer e.pl.CacheDone(&st.cache)
		if st.cache.Serve != nil {
			if rf := e.pl.TakeRefresh(&st.cache); rf != nil {
				e.refreshFromFast(ctx, st, rf)
			}
			e.serveCachedFast(ctx, st, st.start)
			return
		}
	}
	if d.Action != pipeline.ActForward {
		e.replyFast(ctx, st)
		return
	}
	if pipeline.IsWebSocket(&st.req) {
		e.tunnelFast(ctx, st) // ws.go
		return
	}
	e.forwardFast(ctx, st)
}

// replyFast sends the proxy's own answer to st.dec.
func (e *Engine) replyFast(ctx *fasthttp.RequestCtx, st *state) {
	d := &st.dec
	e.pl.PlanReply(d, &st.plan)
	e.pl.PlanCacheStatus(&st.cache, &st.plan)
	resp := &ctx.Response
	resp.Reset()
	if d.Status == fasthttp.StatusBadRequest || d.Status == fasthttp.StatusRequestEntityTooLarge ||
		d.Status == fasthttp.StatusRequestURITooLong || d.Status == fasthttp.StatusHTTPVersionNotSupported {
		// The rest of the request cannot be trusted (after the Reset,
		// which would forget it).
		ctx.SetConnectionClose()
	}
	applyResp(&resp.Header, &st.plan)
	ctx.SetStatusCode(d.Status)
	resp.SetBodyRaw(st.plan.Body)
	e.pl.Responded(d, d.Status)
}

// forwardFast plans the upstream request, runs the attempt loop, and
// relays the answer with the planned response headers.
func (e *Engine) forwardFast(ctx *fasthttp.RequestCtx, st *state) {
	d := &st.dec
	req, resp := &ctx.Request, &ctx.Response
	if st.req.ContentLength < 0 && req.IsBodyStream() {
		// A chunked body whose first chunk-size line has begun to arrive:
		// read it whole before forwarding, so that a line the framing
		// check refuses (too long, a bare LF) never reaches a backend.
		if fr := framerOf(ctx.Conn()); fr != nil && fr.firstChunkLineBegun(ctx.ConnRequestNum()) {
			if err := st.peek.fill(req.BodyStream()); err != nil {
				d.Action, d.Status = pipeline.ActRespond, clientBodyStatus(err)
				e.replyFast(ctx, st)
				return
			}
			req.SetBodyStream(&st.peek, -1)
		}
	}
	if d.BodyLimit > 0 && st.req.ContentLength < 0 && req.IsBodyStream() {
		// A chunked body: the limit holds as it streams, and at once for
		// the chunk sizes declared so far (framing.go).
		if fr := framerOf(ctx.Conn()); fr != nil && fr.setBodyLimit(ctx.ConnRequestNum(), d.BodyLimit) {
			d.Action, d.Status = pipeline.ActRespond, fasthttp.StatusRequestEntityTooLarge
			e.replyFast(ctx, st)
			return
		}
		st.body.reset(req.BodyStream(), d.BodyLimit)
		req.SetBodyStream(&st.body, -1)
	}
	e.pl.PlanRequest(&st.req, d, &st.plan)
	e.pl.PlanCacheRequest(&st.cache, &st.plan, st.start)
	st.bufLimit = e.pl.CacheBodyLimit(&st.cache, e.opts.BodyBufferBytes)
	applyReq(req, &st.plan)
	body, err := bufferFast(req, e.opts.BodyBufferBytes) // replayable when small (body.go)
	if err != nil {
		d.Action, d.Status = pipeline.ActRespond, clientBodyStatus(err)
		e.replyFast(ctx, st)
		return
	}
	out := e.pl.Attempt(&st.req, d, body, st)
	if out.Backend == nil {
		if out.Failed != nil {
			st.upAddr = out.Failed.Addr()
		}
		if out.Status != 0 {
			if now := time.Now().UnixNano(); st.cache.Upstream() {
				e.pl.CacheFailed(&st.cache, now)
				if st.cache.Serve != nil { // stale-if-error
					e.serveCachedFast(ctx, st, now)
					return
				}
			}
		}
		resp.Reset()
		if out.Status == 0 {
			ctx.SetConnectionClose()
			return
		}
		d.Action, d.Status = pipeline.ActRespond, out.Status
		e.replyFast(ctx, st)
		return
	}
	u := out.Upstream.(*upstream)
	st.upIdx, st.upAddr = u.metricIdx, out.Backend.Addr()
	if !st.leased {
		out.Backend.Release() // the body is in memory: the exchange is over
	}
	if st.cache.Upstream() {
		now := time.Now().UnixNano()
		st.fields = appendFastFields(st.fields[:0], &resp.Header)
		var b []byte
		if !st.leased {
			b = resp.Body()
		}
		e.pl.CacheResponse(&st.req, &st.cache, resp.StatusCode(), st.fields, b, st.leased, now)
		if st.cache.Serve != nil {
			// A revalidated or stale entry, or a 304 to the client's own
			// conditions: answered from the cache (a streamed body is
			// closed by the Reset).
			e.serveCachedFast(ctx, st, now)
			return
		}
	}
	var seen pipeline.HeaderSet
	for name := range resp.Header.All() {
		seen.See(name)
	}
	e.pl.PlanResponse(d, out.Backend, resp.Header.PeekBytes(strConnection), seen, &st.plan)
	e.pl.PlanCacheStatus(&st.cache, &st.plan)
	applyResp(&resp.Header, &st.plan)
	resp.Header.ResetConnectionClose()
	if st.bodyLeft {
		// The rest of the upload is unread, and fasthttp may not drain it
		// once a streamed answer is out: say that the connection closes.
		ctx.SetConnectionClose()
	}
	e.pl.Responded(d, resp.StatusCode())
	if resp.IsBodyStream() && resp.Header.ContentLength() < 0 && bytes.Equal(st.req.Proto, strHTTP10) {
		e.relayCloseDelimited(ctx)
	}
}

// relayCloseDelimited sends the streamed response of unknown length in
// ctx to an HTTP/1.0 client, which cannot read chunked framing (RFC 9112
// §7.1): without Content-Length or Transfer-Encoding, the body ended by
// closing the connection (§6.3 item 8). fasthttp would chunk it, so the
// connection is taken over once the handler returns; the head is built
// here, and the takeover keeps only the body stream (the upstream's) and
// bounds the whole answer by the front end's write_timeout, which fasthttp
// does not apply to a taken-over connection.
func (e *Engine) relayCloseDelimited(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	resp.Header.DelBytes(strTransferEncoding)
	resp.Header.SetContentLength(-2) // identity: no length, Connection: close
	head := resp.Header.AppendBytes(nil)
	body := resp.BodyStream()
	wt := e.writeTimeout
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer func() {
			if bc, ok := body.(io.Closer); ok {
				_ = bc.Close() // gives the upstream connection back
			}
		}()
		if wt > 0 {
			_ = c.SetWriteDeadline(time.Now().Add(wt))
		}
		if _, err := c.Write(head); err != nil {
			return
		}
		bp := copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bp)
		_, _ = io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{body}, *bp)
	})
}

// RoundTrip is the HTTP/1.1 front end's pipeline.Transport: it sends the
// planned request in ctx to backend b and reads the response head into
// ctx's response. A streamed response body takes over b's in-flight
// count and gives it back when fasthttp closes the stream after relaying.
func (st *state) RoundTrip(b *balancer.Backend, up pipeline.Upstream) error {
	u := up.(*upstream)
	req, resp := &st.ctx.Request, &st.ctx.Response
	if len(st.plan.Host) == 0 {
		// HTTP/1.0 without Host: HTTP/1.1 upstreams need one.
		req.Header.SetHost(u.hc.Addr)
	}
	resp.Reset()
	left, err := u.roundTripFast(req, resp, st.bufLimit, b, st.ctx.Conn(), st.ctx.RemoteAddr(), st.ctx.LocalAddr())
	st.bodyLeft = left
	st.leased = err == nil && resp.IsBodyStream()
	return err
}

var _ pipeline.Transport = (*state)(nil)

// applyReq applies a request plan to a fasthttp request: target, Host,
// then the header operations in the Plan's order. The request goes
// upstream as HTTP/1.1, the proxy's own version (RFC 9110 §6.2).
func applyReq(req *fasthttp.Request, pl *pipeline.Plan) {
	h := &req.Header
	if !bytes.Equal(h.Protocol(), strHTTP11) {
		h.SetProtocolBytes(strHTTP11)
	}
	for i := range pl.Del {
		h.DelBytes(pl.Del[i].Name)
	}
	for i := range pl.Set {
		f := &pl.Set[i]
		if !f.Fresh {
			h.DelBytes(f.Name) // Set replaces every line of the name
		}
		h.SetBytesKV(f.Name, f.Value)
	}
	for i := range pl.Add {
		h.AddBytesKV(pl.Add[i].Name, pl.Add[i].Value)
	}
	req.SetRequestURIBytes(pl.URI)
	req.UseHostHeader = true
	if len(pl.Host) > 0 {
		h.SetHostBytes(pl.Host)
	}
	h.ResetConnectionClose()
}

// applyResp applies a response plan to a fasthttp response header.
func applyResp(h *fasthttp.ResponseHeader, pl *pipeline.Plan) {
	for i := range pl.Del {
		h.DelBytes(pl.Del[i].Name)
	}
	for i := range pl.Set {
		f := &pl.Set[i]
		if !f.Fresh {
			h.DelBytes(f.Name)
		}
		h.SetBytesKV(f.Name, f.Value)
	}
	for i := range pl.Add {
		h.AddBytesKV(pl.Add[i].Name, pl.Add[i].Value)
	}
}
