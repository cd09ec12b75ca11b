package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/proxy/cache"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

// This file is the net/http front end, used for HTTP/2 (TLS h2 and
// cleartext h2c, gRPC included): a thin adapter between net/http and the
// pipeline. Request rules live in the pipeline, not here; what is here is
// required by the protocol: trailers are relayed, bodies of unknown
// length stream with a flush per read (gRPC streams in both directions),
// a client's stream reset cancels the upstream request, and every answer
// of the proxy's own to a gRPC client is a trailers-only gRPC status.
//
// Requests to HTTP/1.1 backends go over the backends' fasthttp connection
// pools (roundTrip, upstream_fast.go), the ones the HTTP/1.1 front end
// uses: one synchronous exchange in the handler's goroutine, no
// allocation once warm. gRPC, backends that speak only HTTP/2, routes with
// the response cache, send_proxy_protocol routes and requests that accept
// trailers ("TE: trailers", RFC 9110 §10.1.4) go over the net/http
// transports (upstream_net.go), which relay trailers and cancel the
// upstream request when the client resets its stream. On the fasthttp
// pools a reset is seen when the relay next writes, and a backend that
// sends no headers is bounded by upstream_timeout.

// netState is the pooled per-request scratch space of the net/http front
// end. It is the pipeline.Transport of its request's attempts.
type netState struct {
	e    *Engine
	r    *http.Request // valid while the handler runs
	snap *Snapshot
	req  pipeline.Request
	dec  pipeline.Decision
	plan pipeline.Plan
	rec  statusRecorder
	out  http.Request // the upstream request
	url  url.URL      // its URL
	res  *http.Response
	grpc bool

	cache  pipeline.CacheState
	peek   netPeeker
	fields cache.Fields // the upstream response's lines, for the cache

	// The exchange over a fasthttp pool (fastUpstream): its request and
	// response, and the client's body as a reader without Close (fasthttp
	// closes a body stream it has written).
	fast     bool // the answering attempt went over a fasthttp pool
	freq     fasthttp.Request
	fresp    fasthttp.Response
	bodyRead struct{ io.Reader }
	vals     valueCache

	outReady bool // out is built and the plan applied to r.Header (prepareOut)
	noBody   bool // the upstream request has no body

	opaque, rawQuery string                        // the forwarded path and query
	body             []byte                        // the request body when buffered (bufferNet), else nil
	getBody          func() (io.ReadCloser, error) // the upstream request's GetBody over body
	upIdx            int                           // metrics index of the answering backend, -1 = none
	upAddr           string                        // its address (or the one that failed), for the access log
	limit            *bodyLimiter                  // a body of unknown length under the route's limit
}

var netStatePool = sync.Pool{New: func() any { return new(netState) }}

// copyBufPool holds the buffers that relay bodies.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ServeHTTP is the net/http front end's handler: it fills the pipeline's
// Request view, runs Route and Admit (with the request's context, so a
// stream reset cancels forward auth), and acts on the Decision exactly as
// ServeFastHTTP does. It is safe for concurrent use.
func (e *Engine) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := netStatePool.Get().(*netState)
	st.e, st.r, st.snap, st.res = e, r, e.snap.Load(), nil
	st.upIdx, st.upAddr = -1, ""
	st.fast, st.outReady, st.noBody = false, false, false
	st.req.Reset()
	st.dec.Reset()
	st.cache.Reset()
	st.rec = statusRecorder{ResponseWriter: rw}
	st.grpc = isGRPC(r.Header)
	defer func() {
		st.r, st.snap, st.res, st.out, st.peek.h, st.body, st.limit = nil, nil, nil, http.Request{}, nil, nil, nil
		st.fresp.Reset() // closes a body stream the relay left: its connection is closed
		st.freq.Reset()
		st.bodyRead.Reader = nil
		netStatePool.Put(st)
	}()
	defer e.finishNet(r, st, start)
	d := &st.dec
	if status := e.prepareNet(r, st); status != 0 {
		d.Action, d.Status = pipeline.ActRespond, status
	} else {
		e.pl.Route(st.snap, &st.req, d)
		e.pl.Admit(r.Context(), &st.req, d)
	}
	if d.Action == pipeline.ActForward {
		st.peek.h = r.Header
		e.pl.CacheLookup(&st.req, d, &st.peek, &st.cache, start.UnixNano())
		defer e.pl.CacheDone(&st.cache)
		if st.cache.Serve != nil {
			if rf := e.pl.TakeRefresh(&st.cache); rf != nil {
				e.refreshFromNet(st, rf)
			}
			e.serveCachedNet(st, start.UnixNano())
			return
		}
	}
	if d.Action != pipeline.ActForward {
		e.replyNet(st)
		return
	}
	if max := d.BodyLimit; max > 0 && r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		// A body of unknown length is cut at the route's limit while it
		// streams.
		// Not pooled: a transport may still read a request body after
		// RoundTrip returned (http.RoundTripper's contract).
		st.limit = &bodyLimiter{}
		st.limit.reset(r.Body, max)
		r.Body = st.limit
	}
	e.forwardNet(st)
}

// s2b returns the bytes of s without copying; they must never be
// modified.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// prepareNet fills st.req from r and returns 0, or the status of a
// request refused before routing.
func (e *Engine) prepareNet(r *http.Request, st *netState) int {
	if r.Method == http.MethodConnect {
		// Neither CONNECT tunnels nor extended CONNECT (RFC 8441, off in
		// the HTTP/2 server by default) are proxied.
		return http.StatusBadRequest
	}
	req := &st.req
	req.Method = s2b(r.Method)
	req.Proto = s2b(r.Proto)
	req.HTTP2 = r.ProtoMajor == 2
	req.TLS = r.TLS != nil
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		req.Peer = ap.Addr().Unmap()
	}
	req.ContentLength = r.ContentLength
	for k, vs := range r.Header {
		for _, v := range vs {
			if !req.See(s2b(k), s2b(v)) {
				return http.StatusBadRequest
			}
		}
	}
	target := r.RequestURI
	if target == "" && r.URL != nil {
		target = r.URL.RequestURI() // a request built by a caller, not a server
	}
	return e.pl.SetTarget(req, s2b(target), s2b(r.Host))
}

// replyNet sends the proxy's own answer to st.dec: a short plain body,
// or for gRPC a trailers-only response (HTTP 200, grpc-status and
// grpc-message in the header block that ends the stream).
func (e *Engine) replyNet(st *netState) {
	d := &st.dec
	w := &st.rec
	e.pl.PlanReply(d, &st.plan)
	e.pl.PlanCacheStatus(&st.cache, &st.plan)
	h := w.Header()
	applyNet(h, &st.plan, &st.vals)
	e.pl.Responded(d, d.Status)
	if st.grpc {
		delete(h, "Location")
		h["Content-Type"] = hdrGRPC
		h["Grpc-Status"] = grpcCodeStrings[grpcCode(d.Status)]
		h["Grpc-Message"] = []string{url.PathEscape(pipeline.StatusText(d.Status))}
		w.WriteHeader(http.StatusOK)
		return
	}
	h["Content-Length"] = []string{strconv.Itoa(len(st.plan.Body))}
	w.WriteHeader(d.Status)
	_, _ = w.Write(st.plan.Body)
}

// forwardNet plans the upstream request, runs the attempt loop and relays
// the answer. The backend's in-flight count is given back when the relay
// ends, whichever way it ends (a deferred call survives the abort of a
// relay whose upstream failed mid-body).
func (e *Engine) forwardNet(st *netState) {
	d := &st.dec
	r := st.r
	e.pl.PlanRequest(&st.req, d, &st.plan)
	e.pl.PlanCacheRequest(&st.cache, &st.plan, time.Now().UnixNano())
	body := pipeline.BodyStreamed
	st.noBody = r.ContentLength == 0 && !st.grpc
	if st.noBody || r.Body == nil || r.Body == http.NoBody {
		body = pipeline.BodyNone
	}
	buf, err := bufferNet(r, e.opts.BodyBufferBytes, st.grpc) // replayable when small (body.go)
	if err != nil {
		d.Action, d.Status = pipeline.ActRespond, clientBodyStatus(err)
		e.replyNet(st)
		return
	}
	if st.body = buf; buf != nil {
		body = pipeline.BodyBuffered
	}
	o := e.pl.Attempt(&st.req, d, body, st)
	if o.Backend == nil {
		if o.Failed != nil {
			st.upAddr = o.Failed.Addr()
		}
		if o.Status == 0 {
			return // the client went away; nobody to answer
		}
		if now := time.Now().UnixNano(); st.cache.Upstream() {
			e.pl.CacheFailed(&st.cache, now)
			if st.cache.Serve != nil { // stale-if-error
				e.serveCachedNet(st, now)
				return
			}
		}
		d.Action, d.Status = pipeline.ActRespond, o.Status
		e.replyNet(st)
		return
	}
	defer o.Backend.Release()
	u := o.Upstream.(*upstream)
	st.upIdx, st.upAddr = u.metricIdx, o.Backend.Addr()
	if st.fast {
		resp := &st.fresp
		e.pl.PlanResponse(d, o.Backend, resp.Header.PeekBytes(strConnection), pipeline.AllHeaders, &st.plan)
		e.pl.PlanCacheStatus(&st.cache, &st.plan)
		e.pl.Responded(d, resp.StatusCode())
		e.relayFastNet(st)
		return
	}
	res := st.res
	defer res.Body.Close()
	if st.cache.Upstream() {
		body, buffered, err := e.readForCache(st, res)
		if err != nil {
			e.pl.Logger().Debug("upstream body failed", "route", d.Route.Name, "err", err)
			d.Action, d.Status = pipeline.ActRespond, http.StatusBadGateway
			e.replyNet(st)
			return
		}
		now := time.Now().UnixNano()
		st.fields = appendNetFields(st.fields[:0], res.Header)
		e.pl.CacheResponse(&st.req, &st.cache, res.StatusCode, st.fields, body, !buffered, now)
		if st.cache.Serve != nil {
			e.serveCachedNet(st, now)
			return
		}
	}
	var conn []byte
	if v := res.Header["Connection"]; len(v) > 0 {
		conn = []byte(strings.Join(v, ", "))
	}
	e.pl.PlanResponse(d, o.Backend, conn, pipeline.AllHeaders, &st.plan)
	e.pl.PlanCacheStatus(&st.cache, &st.plan)
	e.pl.Responded(d, res.StatusCode)
	e.relayNet(st, res)
}

// sameString returns s when it already holds b (and ok), else b as a new
// string: the request's own strings are reused in the common case.
func sameString(s string, ok bool, b []byte) string {
	if ok && s == string(b) {
		return s
	}
	return string(b)
}

// RoundTrip is the net/http front end's pipeline.Transport: it sends the
// planned request to backend b over the transport of its detected
// protocol and keeps the response for the relay. A cancelled client
// request is reported as pipeline.ErrClientGone and an over-limit body as
// pipeline.ErrBodyTooLarge, so that neither is blamed on the backend.
func (st *netState) RoundTrip(b *balancer.Backend, up pipeline.Upstream) error {
	u := up.(*upstream)
	if st.fastUpstream(u) {
		return st.roundTripFast(u)
	}
	st.fast = false
	st.prepareOut()
	tr, scheme := u.net.transport(st.grpc)
	out := &st.out
	if st.body != nil {
		out.Body = bufferedBody(st.body) // each attempt reads it whole
	}
	st.url = url.URL{Scheme: scheme, Host: b.Addr(), Opaque: st.opaque, RawQuery: st.rawQuery}
	out.URL = &st.url // pooled with out
	if len(st.plan.Host) == 0 {
		out.Host = b.Addr()
	}
	if u.net.proxyProto != 0 {
		dst, _ := st.r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		out = out.WithContext(withPeer(out.Context(), tcpAddr(st.r.RemoteAddr), dst))
	}
	res, err := tr.RoundTrip(out)
	if err != nil {
		return st.upstreamErr(err)
	}
	st.res = res
	return nil
}

// upstreamErr classifies an attempt's error: a cancelled client request
// is pipeline.ErrClientGone, a body over the route's limit
// pipeline.ErrBodyTooLarge (a transport may report the body's error
// unwrapped), anything else the backend's.
func (st *netState) upstreamErr(err error) error {
	switch {
	case st.r.Context().Err() != nil:
		return fmt.Errorf("%w: %w", pipeline.ErrClientGone, err)
	case st.limit != nil && st.limit.over && !errors.Is(err, pipeline.ErrBodyTooLarge):
		return fmt.Errorf("%w: %w", pipeline.ErrBodyTooLarge, err)
	}
	return err
}

var _ pipeline.Transport = (*netState)(nil)

// prepareOut builds the net/http upstream request from the client's, once
// per request: the plan's header operations are applied to the client's
// header map (owned by this handler), which the upstream request shares.
func (st *netState) prepareOut() {
	if st.outReady {
		return
	}
	st.outReady = true
	r, d := st.r, &st.dec
	out := &st.out
	*out = *r // shallow: the header map is shared and owned by this handler
	out.RequestURI = ""
	out.Close = false
	applyNet(out.Header, &st.plan, &st.vals)
	out.Host = sameString(r.Host, true, st.plan.Host)
	st.opaque = sameString(r.URL.Path, r.URL.RawPath == "", st.req.Path)
	st.rawQuery = sameString(r.URL.RawQuery, true, d.Query)
	if st.noBody {
		out.Body = nil
	}
	if st.body != nil {
		if st.getBody == nil {
			st.getBody = func() (io.ReadCloser, error) { return bufferedBody(st.body), nil }
		}
		out.GetBody = st.getBody
	}
}

// fastUpstream reports whether the request goes to u over its fasthttp
// pool: u speaks HTTP/1.1 (cleartext or TLS), without the PROXY protocol,
// and the request is not gRPC, not cached and does not accept trailers.
func (st *netState) fastUpstream(u *upstream) bool {
	return !st.grpc && len(st.req.TE) == 0 && !st.cache.Upstream() && !u.net.usesNet()
}

// roundTripFast is RoundTrip over u's fasthttp pool: the client's header
// lines are copied into st.freq and the plan applied there (never to the
// client's map, unless a net/http attempt already did: then the copy has
// them), and the response head is read into st.fresp. A body of known
// length up to the body buffer size is read whole; a longer one streams
// from the pooled connection until the relay ends.
func (st *netState) roundTripFast(u *upstream) error {
	req, resp := &st.freq, &st.fresp
	req.Reset()
	resp.Reset()
	resp.Header.SetNoDefaultContentType(true)
	h := &req.Header
	h.SetMethodBytes(st.req.Method)
	for k, vs := range st.r.Header {
		switch k {
		case "Host", "Content-Length", "Connection", "Transfer-Encoding":
			continue
		}
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if st.outReady {
		req.SetRequestURIBytes(st.plan.URI)
		req.UseHostHeader = true
		if len(st.plan.Host) > 0 {
			h.SetHostBytes(st.plan.Host)
		}
	} else {
		applyReq(req, &st.plan)
	}
	if len(st.plan.Host) == 0 {
		h.SetHost(u.hc.Addr)
	}
	switch r := st.r; {
	case st.body != nil:
		req.SetBodyRaw(st.body) // each attempt sends it whole
	case !st.noBody && r.Body != nil && r.Body != http.NoBody:
		st.bodyRead.Reader = r.Body
		cl := int(r.ContentLength)
		if cl < 0 {
			cl = -1 // chunked
		}
		req.SetBodyStream(&st.bodyRead, cl)
	}
	if err := roundTrip(u.hc, req, resp, st.e.opts.BodyBufferBytes, nil); err != nil {
		return st.upstreamErr(err)
	}
	st.fast = true
	return nil
}

// relayFastNet writes the response of a fasthttp-pool exchange to the
// client: the upstream's header lines (values from st.vals), the planned
// operations, then the body, with a flush per read when its length is
// unknown. A read error mid-body aborts the client stream, as in relayNet.
func (e *Engine) relayFastNet(st *netState) {
	resp := &st.fresp
	w := &st.rec
	h := w.Header()
	for k, v := range resp.Header.All() {
		key := st.vals.key(k)
		if old, ok := h[key]; ok {
			h[key] = append(old[:len(old):len(old)], string(v))
			continue
		}
		h[key] = st.vals.values(v)
	}
	applyNet(h, &st.plan, &st.vals)
	w.WriteHeader(resp.StatusCode())
	if !resp.IsBodyStream() {
		if b := resp.Body(); len(b) > 0 {
			_, _ = w.Write(b)
		}
		return
	}
	body := resp.BodyStream()
	// Gives the connection back to the pool (after EOF) or closes it.
	defer resp.CloseBodyStream() //nolint:errcheck
	stream := resp.Header.ContentLength() < 0
	if stream {
		w.Flush() // headers now: a stream's first bytes may take a while
	}
	e.copyBody(st, body, stream) // a client gone closes the stream's connection
}

// copyBody relays an upstream body to the client, with a flush per read
// when stream, and reports whether it reached the end. It returns false
// when the client is gone; a read error from the upstream mid-body aborts
// the client stream (panic with http.ErrAbortHandler, an HTTP/2
// RST_STREAM), so the client never takes a truncated body for a whole
// one.
func (e *Engine) copyBody(st *netState, body io.Reader, stream bool) bool {
	w := &st.rec
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false
			}
			if stream {
				w.Flush()
			}
		}
		if err == io.EOF {
			return true
		}
		if err != nil {
			e.pl.Logger().Debug("upstream body failed", "route", st.dec.Route.Name, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
}

// applyNet applies a plan's header operations to a net/http header map,
// with the values of Set from vals (nil: a new slice each).
func applyNet(h http.Header, pl *pipeline.Plan, vals *valueCache) {
	for i := range pl.Del {
		delete(h, netKey(&pl.Del[i]))
	}
	for i := range pl.Set {
		f := &pl.Set[i]
		if f.Values != nil {
			h[netKey(f)] = f.Values // shared, never modified
			continue
		}
		h[netKey(f)] = vals.values(f.Value)
	}
	for i := range pl.Add {
		f := &pl.Add[i]
		k := netKey(f)
		h[k] = append(h[k][:len(h[k]):len(h[k])], string(f.Value)) // never appends into a shared Values
	}
}

// valueCache hands out header keys and one-value slices for byte views
// without allocating for those seen recently: a response's lines (Server,
// Content-Type, the proxy's own headers) mostly repeat from one request
// to the next. A value is kept from its second sighting on, so values
// unique to a request (X-Request-Id) do not crowd the others out. The
// slices are shared by every response given them and must never be
// modified (appending is fine: they are full). It belongs to one pooled
// netState, so it takes no lock; it is cleared when it holds maxCached
// entries, and values longer than maxCachedLen are not kept.
type valueCache struct {
	keys     map[string]string
	trailers map[string]string // gRPC's trailers are the same names each time
	vals     map[string][]string
	seen     [maxCached]uint64 // FNV-1a hashes of values seen once, by hash
}

const (
	maxCached    = 64
	maxCachedLen = 64
)

// key returns the canonical header key of k (RFC 9110 §5.1 names are
// case-insensitive; net/http's maps use the canonical form).
func (c *valueCache) key(k []byte) string {
	if s, ok := c.keys[string(k)]; ok {
		return s
	}
	s := http.CanonicalHeaderKey(string(k))
	if len(k) <= maxCachedLen {
		if c.keys == nil || len(c.keys) >= maxCached {
			c.keys = make(map[string]string, maxCached)
		}
		c.keys[string(k)] = s
	}
	return s
}

// trailerKey returns k with net/http's undeclared-trailer prefix
// (http.TrailerPrefix).
func (c *valueCache) trailerKey(k string) string {
	if s, ok := c.trailers[k]; ok {
		return s
	}
	s := http.TrailerPrefix + k
	if len(k) <= maxCachedLen {
		if c.trailers == nil || len(c.trailers) >= maxCached {
			c.trailers = make(map[string]string, maxCached)
		}
		c.trailers[k] = s
	}
	return s
}

// values returns a full one-element slice holding v as a string. A nil
// c caches nothing.
func (c *valueCache) values(v []byte) []string {
	if c == nil {
		return []string{string(v)}
	}
	if vs, ok := c.vals[string(v)]; ok {
		return vs
	}
	vs := []string{string(v)}
	if len(v) > maxCachedLen {
		return vs
	}
	h := uint64(14695981039346656037)
	for _, b := range v {
		h = (h ^ uint64(b)) * 1099511628211
	}
	if c.seen[h%maxCached] != h {
		c.seen[h%maxCached] = h
		return vs
	}
	if c.vals == nil || len(c.vals) >= maxCached {
		c.vals = make(map[string][]string, maxCached)
	}
	c.vals[vs[0]] = vs
	return vs
}

// netKey returns the canonical map key of a plan field.
func netKey(f *pipeline.Field) string {
	if f.Key != "" {
		return f.Key
	}
	return http.CanonicalHeaderKey(string(f.Name))
}

// relayNet writes the upstream response to the client: the planned
// headers, the body with a flush per read when its length is unknown,
// then the trailers. A read error from the upstream mid-body aborts the
// client stream (an HTTP/2 RST_STREAM), so the client never takes a
// truncated body for a whole one.
func (e *Engine) relayNet(st *netState, res *http.Response) {
	w := &st.rec
	applyNet(res.Header, &st.plan, &st.vals)
	h := w.Header()
	for k, v := range res.Header {
		h[k] = v
	}
	w.WriteHeader(res.StatusCode)
	stream := res.ContentLength < 0 || st.grpc
	if _, trailersOnly := res.Header["Grpc-Status"]; stream && !trailersOnly {
		// Headers now: a stream's first message may take a while. A
		// trailers-only gRPC answer must instead stay one header block
		// that ends the stream, so it is not flushed early.
		w.Flush()
	}
	if !e.copyBody(st, res.Body, stream) {
		return // the client is gone; closing res.Body resets upstream
	}
	// Trailers arrive after the body and are usually not announced
	// (gRPC's are not): send each under the undeclared-trailer prefix.
	for k, v := range res.Trailer {
		h[st.vals.trailerKey(k)] = v
	}
}
