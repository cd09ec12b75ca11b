package proxy

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/balancer"
)

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
// e's policy chain with path normalization switched off (the proxy
// normalizes, doc.go), bodies above the engine's buffer threshold
// streamed, and the timeouts and limits of o.
func NewFastServer(e *Engine, o ServerOptions) *fasthttp.Server {
	// fasthttp's ReadTimeout runs from a request's first byte to the end
	// of its headers (read_header_timeout, against slow-header clients);
	// once the headers are in, HeaderReceived gives the body its own
	// deadline (read_timeout).
	headerTimeout := o.ReadHeaderTimeout
	if headerTimeout <= 0 {
		headerTimeout = o.ReadTimeout
	}
	bodyTimeout := o.ReadTimeout
	return &fasthttp.Server{
		Handler:                       e.ServeFastHTTP,
		ExpectHandler:                 e.expectFast,
		ErrorHandler:                  fastErrorHandler,
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
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: bodyTimeout}
		},
	}
}

// fastErrorHandler answers requests fasthttp could not parse: 431 for a
// header block over the read buffer, 408 for a read timeout, else 400.
// The connection is closed in every case.
func fastErrorHandler(ctx *fasthttp.RequestCtx, err error) {
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
	writeStatus(ctx, status)
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// state is the pooled per-request scratch space of the fasthttp front end.
type state struct {
	host, path, uri, xff, rid, body []byte
	req                             Request
	dec                             Decision
	upIdx                           int    // metrics index of the backend that answered, -1 = none
	upAddr                          string // its address, for the access log
}

var statePool = sync.Pool{New: func() any {
	return &state{
		host: make([]byte, 0, 64),
		path: make([]byte, 0, 256),
		uri:  make([]byte, 0, 512),
		xff:  make([]byte, 0, 64),
		rid:  make([]byte, 0, 64),
		body: make([]byte, 0, 128),
		dec:  Decision{buf: make([]byte, 0, 256)},
	}
}}

var (
	strAuthorization   = []byte("Authorization")
	strAPIKey          = []byte("X-Api-Key")
	strCookie          = []byte("Cookie")
	strSetCookie       = []byte("Set-Cookie")
	strRetryAfter      = []byte("Retry-After")
	strWWWAuthenticate = []byte("WWW-Authenticate")
	strConnection      = []byte("Connection")
	strVia             = []byte("Via")
	strXForwardedFor   = []byte("X-Forwarded-For")
	strXForwardedProto = []byte("X-Forwarded-Proto")
	strXForwardedHost  = []byte("X-Forwarded-Host")
	strLocation        = []byte("Location")
	strHTTP            = []byte("http")
	strHTTPS           = []byte("https")
	strCommaSpace      = []byte(", ")
	strGET             = []byte("GET")
	strHEAD            = []byte("HEAD")
	strOPTIONS         = []byte("OPTIONS")
	strTRACE           = []byte("TRACE")
	strPUT             = []byte("PUT")
	strDELETE          = []byte("DELETE")
	strContentLength   = []byte("Content-Length")

	// hopHeaders are removed in both directions, RFC 9110 §7.6.1, plus
	// Expect (answered here) and HTTP2-Settings (RFC 9113 §3.2: only
	// meaningful with the h2c upgrade, which is never passed on).
	hopHeaders = [][]byte{
		[]byte("Connection"), []byte("Keep-Alive"), []byte("Proxy-Connection"),
		[]byte("TE"), []byte("Trailer"), []byte("Transfer-Encoding"), []byte("Upgrade"),
		[]byte("Expect"), []byte("HTTP2-Settings"),
	}

	// spoofableHeaders name the client address for some backends; from a
	// peer that is not a trusted proxy they are removed.
	spoofableHeaders = [][]byte{[]byte("Forwarded"), []byte("X-Real-IP")}
)

// prepare fills st.req from ctx and reports false after answering a
// malformed request itself (400, and the connection is closed).
func (e *Engine) prepare(ctx *fasthttp.RequestCtx, st *state) bool {
	h := &ctx.Request.Header
	if h.ContentLength() == -1 && h.ConnectionClose() && hasRawHeader(h, strContentLength) {
		// Content-Length together with Transfer-Encoding: a smuggling
		// attempt (RFC 9112 §6.3 item 3); never forwarded.
		return badRequest(ctx)
	}
	if !validHeaderNames(h) {
		return badRequest(ctx)
	}
	target := h.RequestURI()
	if max := e.opts.MaxURIBytes; max > 0 && len(target) > max {
		ctx.SetConnectionClose()
		writeStatus(ctx, fasthttp.StatusRequestURITooLong)
		return false
	}
	host := h.Host()
	var rawPath, query []byte
	switch {
	case len(target) > 0 && target[0] == '/':
		rawPath = target
	case hasSchemePrefix(target):
		// absolute-form, RFC 9112 §3.2.2: the target's authority wins.
		rest := target[bytes.IndexByte(target, ':')+3:]
		end := bytes.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		host, rawPath = rest[:end], rest[end:]
		if len(host) == 0 || bytes.IndexByte(host, '@') >= 0 {
			return badRequest(ctx) // no authority, or userinfo (RFC 9110 §4.2.4)
		}
		if len(rawPath) == 0 || rawPath[0] == '?' {
			rawPath = append(st.uri[:0], '/')
			rawPath = append(rawPath, rest[end:]...)
		}
		// The received Host is replaced by the target's authority, so the
		// upstream sees the host that was routed on and checked.
		h.SetHostBytes(host)
		host = h.Host()
	default:
		return badRequest(ctx)
	}
	if i := bytes.IndexByte(rawPath, '?'); i >= 0 {
		rawPath, query = rawPath[:i], rawPath[i+1:]
	}
	if i := bytes.IndexByte(rawPath, '#'); i >= 0 {
		rawPath = rawPath[:i]
	}
	var err error
	if st.path, err = AppendNormalizedPath(st.path[:0], rawPath); err != nil {
		return badRequest(ctx)
	}
	st.host = st.host[:0]
	if len(host) > 0 {
		var ok bool
		if st.host, ok = AppendNormalizedHost(st.host, host); !ok {
			return badRequest(ctx)
		}
	} else if h.IsHTTP11() {
		// RFC 9112 §3.2: an HTTP/1.1 request without Host gets 400.
		return badRequest(ctx)
	}
	r := &st.req
	r.Method = h.Method()
	r.Host = st.host
	r.Path = st.path
	r.Query = query
	r.TLS = ctx.IsTLS()
	r.Peer = clientAddr(ctx.RemoteAddr())
	r.Client = r.Peer
	r.RawHost = host
	r.URI = target
	r.Proto = h.Protocol()
	r.Authorization = h.PeekBytes(strAuthorization)
	r.APIKey = h.PeekBytes(strAPIKey)
	r.Cookie = h.PeekBytes(strCookie)
	r.XForwardedFor = h.PeekBytes(strXForwardedFor)
	return true
}

func hasSchemePrefix(t []byte) bool {
	return len(t) > 8 && (bytes.EqualFold(t[:7], []byte("http://")) || bytes.EqualFold(t[:8], []byte("https://")))
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

func badRequest(ctx *fasthttp.RequestCtx) bool {
	ctx.SetConnectionClose()
	writeStatus(ctx, fasthttp.StatusBadRequest)
	return false
}

// writeStatus answers with status and a short plain-text body naming it.
func writeStatus(ctx *fasthttp.RequestCtx, status int) {
	ctx.Response.Header.SetContentTypeBytes(strTextPlain)
	ctx.SetStatusCode(status)
	ctx.Response.SetBodyRaw(statusBody(status))
}

// expectFast runs the policy chain on an "Expect: 100-continue" request
// before fasthttp sends 100: only a request that would be forwarded (or
// redirected) gets 100 and has its body read (RFC 9110 §10.1.1).
func (e *Engine) expectFast(ctx *fasthttp.RequestCtx) int {
	st := statePool.Get().(*state)
	defer statePool.Put(st)
	if !e.prepare(ctx, st) {
		return fasthttp.StatusBadRequest
	}
	e.decide(e.snap.Load(), &st.req, &st.dec)
	if st.dec.Action == ActRespond {
		return st.dec.Status
	}
	return fasthttp.StatusContinue
}

// ServeFastHTTP is the fasthttp request handler: it loads the snapshot
// once, fills the neutral Request view, runs the policy chain and acts on
// the decision. It allocates nothing for requests and responses whose
// bodies are under the buffer threshold.
func (e *Engine) ServeFastHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	snap := e.snap.Load()
	st := statePool.Get().(*state)
	defer statePool.Put(st)
	st.upIdx, st.upAddr = -1, ""
	st.dec.reset()
	st.rid = accesslog.AppendRequestID(st.rid[:0])
	defer e.finishFast(ctx, st, start)
	if !e.prepare(ctx, st) {
		st.body = appendStatusBody(st.body[:0], ctx.Response.StatusCode(), st.rid)
		ctx.Response.SetBody(st.body)
		return
	}
	if max := e.opts.MaxRequestBodyBytes; max > 0 && int64(ctx.Request.Header.ContentLength()) > max {
		ctx.SetConnectionClose()
		writeStatus(ctx, fasthttp.StatusRequestEntityTooLarge)
		return
	}
	e.decide(snap, &st.req, &st.dec)
	keepRequestID(&ctx.Request.Header, st)
	switch st.dec.Action {
	case ActRespond:
		d := &st.dec
		if d.RetryAfter > 0 {
			ctx.Response.Header.SetBytesKV(strRetryAfter, strconv.AppendInt(st.xff[:0], int64(d.RetryAfter), 10))
		}
		if d.WWWAuthenticate != nil && d.Status == 401 {
			ctx.Response.Header.SetBytesKV(strWWWAuthenticate, d.WWWAuthenticate)
		}
		e.writeStatusID(ctx, st, d.Status)
		e.count4xx(d, d.Status)
	case ActRedirect:
		ctx.Response.Header.SetBytesKV(strLocation, st.dec.Location)
		e.writeStatusID(ctx, st, st.dec.Status)
	case ActForward:
		if isWebSocket(&ctx.Request.Header) {
			e.tunnelFast(ctx, snap, st) // ws.go
			return
		}
		e.forwardFast(ctx, snap, st)
	}
}

// forwardFast sends the request to a backend of the decided route and
// relays the answer. A connect failure or a stale keep-alive connection
// is retried once, on another backend when there is one, for idempotent
// requests without a streamed body (RFC 9110 §9.2.2).
func (e *Engine) forwardFast(ctx *fasthttp.RequestCtx, snap *Snapshot, st *state) {
	rt := st.dec.Route
	req, resp := &ctx.Request, &ctx.Response
	noHost := len(req.Header.Host()) == 0
	e.rewriteRequest(ctx, st, rt)

	d := &st.dec
	// Retry budget: one retry on a fresh connection after a stale pooled
	// one (same backend), and one retry on another backend after a
	// connect failure.
	pin := d.Sticky
	var tried *balancer.Backend
	var err error
	staleLeft, failLeft := 1, 1
	// Whether the body streams is read before the first attempt: a failed
	// write may release the stream, and a streamed body must never be
	// sent twice.
	streamed := req.IsBodyStream()
	for {
		b := pin
		if b == nil {
			b, _ = rt.pool.Pick(tried)
		}
		pin = nil
		if b == nil {
			break
		}
		u := rt.upstreams[b]
		if noHost {
			// HTTP/1.0 without Host: HTTP/1.1 upstreams need one.
			req.Header.SetHost(u.hc.Addr)
		}
		b.Acquire()
		err = u.roundTripFast(req, resp, e.opts.BodyBufferBytes) // h2.go: h2-only backends via net/http
		b.Release()
		if err == nil {
			st.upIdx, st.upAddr = u.metricIdx, b.Addr()
			b.ReportSuccess()
			e.rewriteResponse(resp, rt)
			if d.SetSticky || d.Sticky != nil && b != d.Sticky {
				e.setStickyCookie(resp, rt, b, st)
			}
			e.count4xx(d, resp.StatusCode())
			return
		}
		if errors.Is(err, errClientBody) {
			e.log.Debug("malformed request body", "request_id", string(st.rid), "err", err)
			resp.Reset()
			ctx.SetConnectionClose()
			e.writeStatusID(ctx, st, fasthttp.StatusBadRequest)
			return
		}
		if streamed || !retryable(req, err) {
			break
		}
		if errors.Is(err, errStale) && staleLeft > 0 {
			staleLeft--
			// One dead pooled connection usually means the upstream
			// restarted and closed them all: drop the idle ones so the
			// retry dials afresh.
			u.hc.CloseIdleConnections()
			pin = b // only the pooled connection was dead
			continue
		}
		if !errors.Is(err, errStale) {
			b.ReportFailure(nowNanos())
		}
		if failLeft == 0 {
			break
		}
		failLeft--
		tried = b
		if m := e.opts.Metrics; m != nil {
			m.Retry()
		}
		e.log.Debug("upstream attempt failed; retrying on another backend", "backend", b.Addr(), "err", err)
	}
	resp.Reset()
	status := fasthttp.StatusBadGateway
	if err == nil || errors.Is(err, fasthttp.ErrNoFreeConns) {
		status = fasthttp.StatusServiceUnavailable // no backend, or upstream_max_conns reached
	} else if isTimeout(err) {
		status = fasthttp.StatusGatewayTimeout
	}
	if err != nil {
		e.log.Warn("upstream request failed", "route", rt.Host+rt.Prefix, "status", status, "request_id", string(st.rid), "err", err)
	}
	e.writeStatusID(ctx, st, status)
}

// retryable reports whether a failed attempt may be sent again: the
// method is idempotent (RFC 9110 §9.2.2), the body was not streamed, and
// the failure happened before the upstream answered (dial error or a
// stale keep-alive connection).
func retryable(req *fasthttp.Request, err error) bool {
	if req.IsBodyStream() {
		return false
	}
	m := req.Header.Method()
	if !(bytes.Equal(m, strGET) || bytes.Equal(m, strHEAD) || bytes.Equal(m, strOPTIONS) ||
		bytes.Equal(m, strTRACE) || bytes.Equal(m, strPUT) || bytes.Equal(m, strDELETE)) {
		return false
	}
	if errors.Is(err, errStale) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// rewriteRequest turns the client's request into the upstream request in
// place: normalized target, hop-by-hop headers removed, X-Forwarded-*
// and Via set, the route's server_headers applied.
func (e *Engine) rewriteRequest(ctx *fasthttp.RequestCtx, st *state, rt *Route) {
	req := &ctx.Request
	h := &req.Header
	xfh := h.Host() // the original Host, forwarded unchanged
	d := &st.dec
	st.uri = appendPathQuery(st.uri[:0], st.req.Path, d.Query)
	req.SetRequestURIBytes(st.uri)
	req.UseHostHeader = true
	stripHopByHopReq(h)
	h.ResetConnectionClose()
	if d.DropAuthorization {
		h.DelBytes(strAuthorization)
	}
	if d.DropAPIKey {
		h.DelBytes(strAPIKey)
	}
	for _, name := range d.StripHeaders {
		h.Del(name)
	}
	for _, hv := range d.AddHeaders {
		h.Set(hv.Name, hv.Value)
	}

	if !d.TrustedPeer {
		for _, k := range spoofableHeaders {
			h.DelBytes(k)
		}
	}
	// X-Forwarded-For: a trusted proxy's list is kept and the peer is
	// appended; from anyone else the header is replaced.
	st.xff = st.xff[:0]
	if prev := h.PeekBytes(strXForwardedFor); d.TrustedPeer && len(prev) > 0 {
		st.xff = append(append(st.xff, prev...), strCommaSpace...)
	}
	st.xff = st.req.Peer.AppendTo(st.xff)
	h.SetBytesKV(strXForwardedFor, st.xff)
	h.SetBytesKV(strXRequestID, st.rid)
	if st.req.TLS {
		h.SetBytesKV(strXForwardedProto, strHTTPS)
	} else {
		h.SetBytesKV(strXForwardedProto, strHTTP)
	}
	if len(xfh) > 0 {
		h.SetBytesKV(strXForwardedHost, xfh)
	} else {
		h.DelBytes(strXForwardedHost)
	}
	if v := h.PeekBytes(strVia); len(v) > 0 {
		// SetBytesKV copied st.xff above, so its buffer is free again.
		st.xff = append(append(append(st.xff[:0], v...), strCommaSpace...), e.via...)
		h.SetBytesKV(strVia, st.xff)
	} else {
		h.SetBytesKV(strVia, e.via)
	}
	for i := range rt.serverHeaders {
		op := &rt.serverHeaders[i]
		if op.add {
			h.AddBytesKV(op.name, op.value)
		} else {
			h.SetBytesKV(op.name, op.value)
		}
	}
}

// rewriteResponse removes hop-by-hop headers from the upstream response
// and applies the route's client_headers.
func (e *Engine) rewriteResponse(resp *fasthttp.Response, rt *Route) {
	h := &resp.Header
	stripHopByHopResp(h)
	h.ResetConnectionClose()
	for i := range rt.clientHeaders {
		op := &rt.clientHeaders[i]
		if op.add {
			h.AddBytesKV(op.name, op.value)
		} else {
			h.SetBytesKV(op.name, op.value)
		}
	}
}

// stripHopByHopReq removes the headers named in Connection, then the
// hop-by-hop list (RFC 9110 §7.6.1). It runs before the proxy adds its
// own headers, so a client cannot remove those by naming them.
func stripHopByHopReq(h *fasthttp.RequestHeader) {
	if v := h.PeekBytes(strConnection); len(v) > 0 {
		forEachToken(v, func(tok []byte) { h.DelBytes(tok) })
	}
	for _, k := range hopHeaders {
		h.DelBytes(k)
	}
}

func stripHopByHopResp(h *fasthttp.ResponseHeader) {
	if v := h.PeekBytes(strConnection); len(v) > 0 {
		forEachToken(v, func(tok []byte) { h.DelBytes(tok) })
	}
	for _, k := range hopHeaders {
		h.DelBytes(k)
	}
}

// forEachToken calls fn for each comma-separated token of a list header,
// trimmed of optional whitespace (RFC 9110 §5.6.1).
func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		tok := v
		if i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) > 0 {
			fn(tok)
		}
	}
}

// setStickyCookie adds the sticky-session cookie binding the route to b
// (Aralez's cookie name backend_id).
func (e *Engine) setStickyCookie(resp *fasthttp.Response, rt *Route, b *balancer.Backend, st *state) {
	st.xff = appendStickyCookie(st.xff[:0], rt, b)
	resp.Header.AddBytesKV(strSetCookie, st.xff)
}

// appendStickyCookie appends the Set-Cookie value pinning rt to b.
func appendStickyCookie(dst []byte, rt *Route, b *balancer.Backend) []byte {
	rp := &rt.policy
	c := append(dst, strStickyCookie...)
	c = append(c, '=')
	c = rp.sticky.AppendValue(c, rt.ID, b)
	c = append(c, "; Path="...)
	c = append(c, rp.cookiePath...)
	c = append(c, "; Max-Age="...)
	c = strconv.AppendInt(c, int64(rp.stickyMaxAge), 10)
	c = append(c, "; HttpOnly; SameSite=Lax"...)
	return c
}

// writeStatusID answers with status and a short plain body that names it
// and the request ID, so a user can quote the ID to an operator.
func (e *Engine) writeStatusID(ctx *fasthttp.RequestCtx, st *state, status int) {
	ctx.Response.Header.SetContentTypeBytes(strTextPlain)
	ctx.SetStatusCode(status)
	st.body = appendStatusBody(st.body[:0], status, st.rid)
	ctx.Response.SetBody(st.body)
}

// validHeaderNames reports whether every request header name is an RFC
// 9110 §5.6.2 token; fasthttp lets some invalid names (with a space
// inside) through, and those must not reach an upstream.
func validHeaderNames(h *fasthttp.RequestHeader) bool {
	for k := range h.All() {
		if len(k) == 0 {
			return false
		}
		for _, c := range k {
			if !isTchar(c) {
				return false
			}
		}
	}
	return true
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool { return tcharTable[c] }

var tcharTable = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9') ||
			bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0
	}
	return t
}()
