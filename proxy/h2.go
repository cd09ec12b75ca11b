package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/balancer"
	edgetls "github.com/aralez-go/aralez/tls"
)

// This file is the net/http front end (h2, h2c and gRPC clients) and the
// net/http transports that reach HTTP/2 backends (TLS with ALPN h2, or
// h2c by prior knowledge) and TLS HTTP/1.1 backends from that front end.

// netState is the pooled per-request scratch space of the net/http
// front end.
type netState struct {
	method, host, path, uri, auth, apiKey, cookie, xff, rid []byte
	req                                                     Request
	dec                                                     Decision
	rec                                                     statusRecorder
	upIdx                                                   int    // metrics index of the answering backend, -1 = none
	upAddr                                                  string // its address, for the access log
}

var netStatePool = sync.Pool{New: func() any {
	return &netState{
		method: make([]byte, 0, 16),
		host:   make([]byte, 0, 64),
		path:   make([]byte, 0, 256),
		uri:    make([]byte, 0, 512),
		dec:    Decision{buf: make([]byte, 0, 256)},
	}
}}

// copyBufPool holds the buffers that relay bodies and tunnels.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

var (
	strProtoHTTP2 = []byte("HTTP/2.0")
	strProtoHTTP1 = []byte("HTTP/1.1")
)

// ServeHTTP is the net/http front end, used for HTTP/2 (TLS h2 and
// cleartext h2c, including gRPC): it loads the snapshot once, fills the
// neutral Request view, runs the same policy chain as ServeFastHTTP and
// acts on the decision with the same semantics (routing, redirects,
// error statuses, header rules both ways, X-Forwarded-*, Via, hop-by-hop
// removal). Differences, all required by the protocol: "TE: trailers" is
// kept for gRPC (RFC 9113 §8.2.2), response trailers are relayed, Via
// names protocol "2", and every error a gRPC client gets before the
// upstream answers is a trailers-only gRPC status (grpcCode), never an
// HTML or text body. Request and response bodies stream with a flush per
// read when the length is unknown, so gRPC streams in both directions.
// A client cancel cancels the upstream request (an HTTP/2 stream reset).
// It is safe for concurrent use.
func (e *Engine) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	snap := e.snap.Load()
	st := netStatePool.Get().(*netState)
	defer netStatePool.Put(st)
	st.upIdx, st.upAddr = -1, ""
	st.dec.reset()
	st.rec = statusRecorder{ResponseWriter: rw}
	w := &st.rec
	st.rid = accesslog.AppendRequestID(st.rid[:0])
	defer e.finishNet(r, st, start)
	grpc := isGRPC(r.Header)
	if status := e.prepareNet(r, st); status != 0 {
		respondNet(w, status, grpc, nil, st.rid)
		return
	}
	if max := e.opts.MaxRequestBodyBytes; max > 0 && r.ContentLength > max {
		respondNet(w, http.StatusRequestEntityTooLarge, grpc, nil, st.rid)
		return
	} else if max > 0 && r.ContentLength < 0 && r.Body != nil {
		// A body of unknown length is cut at the limit while it streams.
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	e.decide(snap, &st.req, &st.dec)
	d := &st.dec
	if in := r.Header.Get("X-Request-Id"); d.TrustedPeer && in != "" && len(in) <= 128 {
		st.rid = append(st.rid[:0], in...)
	}
	switch d.Action {
	case ActRespond:
		respondNet(w, d.Status, grpc, d, st.rid)
		e.count4xx(d, d.Status)
	case ActRedirect:
		w.Header()["Location"] = []string{string(d.Location)}
		respondNet(w, d.Status, grpc, d, st.rid)
	case ActForward:
		e.forwardNet(w, r, snap, st, grpc)
	}
}

// prepareNet fills st.req from r; it returns 0, or the status to answer
// a malformed request with.
func (e *Engine) prepareNet(r *http.Request, st *netState) int {
	if r.Method == http.MethodConnect {
		// Neither CONNECT tunnels nor extended CONNECT (RFC 8441, off in
		// x/net's server by default) are proxied.
		return http.StatusBadRequest
	}
	target := r.RequestURI
	if target == "" && r.URL != nil {
		target = r.URL.RequestURI() // a request built by a caller, not a server
	}
	if max := e.opts.MaxURIBytes; max > 0 && len(target) > max {
		return http.StatusRequestURITooLong
	}
	st.uri = append(st.uri[:0], target...)
	host := r.Host
	var rawPath, query []byte
	switch {
	case len(st.uri) > 0 && st.uri[0] == '/':
		rawPath = st.uri
	case hasSchemePrefix(st.uri):
		// absolute-form (HTTP/1.1 only), RFC 9112 §3.2.2.
		rest := st.uri[bytes.IndexByte(st.uri, ':')+3:]
		end := bytes.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		host = string(rest[:end]) // rare path; allocation accepted
		rawPath = rest[end:]
		if len(rawPath) == 0 || rawPath[0] == '?' {
			rawPath = append([]byte{'/'}, rawPath...)
		}
	default:
		return http.StatusBadRequest
	}
	if i := bytes.IndexByte(rawPath, '?'); i >= 0 {
		rawPath, query = rawPath[:i], rawPath[i+1:]
	}
	if i := bytes.IndexByte(rawPath, '#'); i >= 0 {
		rawPath = rawPath[:i]
	}
	var err error
	if st.path, err = AppendNormalizedPath(st.path[:0], rawPath); err != nil {
		return http.StatusBadRequest
	}
	st.host = st.host[:0]
	if host != "" {
		var ok bool
		if st.host, ok = AppendNormalizedHost(st.host, []byte(host)); !ok {
			return http.StatusBadRequest
		}
	} else if r.ProtoAtLeast(1, 1) {
		// RFC 9112 §3.2 and RFC 9113 §8.3.1: an authority is required.
		return http.StatusBadRequest
	}
	req := &st.req
	*req = Request{}
	st.method = append(st.method[:0], r.Method...)
	req.Method = st.method
	req.Host = st.host
	req.Path = st.path
	req.Query = query
	req.URI = st.uri
	req.TLS = r.TLS != nil
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		req.Peer = ap.Addr().Unmap()
	}
	req.Client = req.Peer
	req.Proto = strProtoHTTP1
	if r.ProtoMajor == 2 {
		req.Proto = strProtoHTTP2
	}
	h := r.Header
	if v, ok := h["Authorization"]; ok && len(v) > 0 {
		st.auth = append(st.auth[:0], v[0]...)
		req.Authorization = st.auth
	}
	if v, ok := h["X-Api-Key"]; ok && len(v) > 0 {
		st.apiKey = append(st.apiKey[:0], v[0]...)
		req.APIKey = st.apiKey
	}
	if v, ok := h["Cookie"]; ok && len(v) > 0 {
		// HTTP/2 may split cookies into several fields; they join with
		// "; " (RFC 9113 §8.2.3).
		st.cookie = joinValues(st.cookie[:0], v, "; ")
		req.Cookie = st.cookie
	}
	if v, ok := h["X-Forwarded-For"]; ok && len(v) > 0 {
		st.xff = joinValues(st.xff[:0], v, ", ")
		req.XForwardedFor = st.xff
	}
	return 0
}

func joinValues(dst []byte, vs []string, sep string) []byte {
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, sep...)
		}
		dst = append(dst, v...)
	}
	return dst
}

// isGRPC reports whether the request is a gRPC call: content-type
// application/grpc, optionally followed by "+proto", ";…" and the like.
func isGRPC(h http.Header) bool {
	v, ok := h["Content-Type"]
	if !ok || len(v) == 0 {
		return false
	}
	ct := v[0]
	const p = "application/grpc"
	return len(ct) >= len(p) && strings.EqualFold(ct[:len(p)], p) &&
		(len(ct) == len(p) || ct[len(p)] == '+' || ct[len(p)] == ';')
}

// gRPC status codes (google.golang.org/grpc/codes) the proxy sends.
const (
	grpcUnknown           = 2
	grpcResourceExhausted = 8
	grpcPermissionDenied  = 7
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// grpcCode maps the proxy's HTTP status to a gRPC status code, following
// gRPC's HTTP-to-gRPC status mapping (doc/http-grpc-status-mapping.md in
// the grpc repository), plus 413 → RESOURCE_EXHAUSTED.
func grpcCode(status int) int {
	switch status {
	case 400, 414, 431:
		return grpcInternal
	case 401:
		return grpcUnauthenticated
	case 403:
		return grpcPermissionDenied
	case 404:
		return grpcUnimplemented
	case 413:
		return grpcResourceExhausted
	case 429, 502, 503, 504:
		return grpcUnavailable
	}
	return grpcUnknown
}

var grpcCodeStrings = func() [17][]string {
	var a [17][]string
	for i := range a {
		a[i] = []string{strconv.Itoa(i)}
	}
	return a
}()

var (
	hdrTextPlain = []string{string(strTextPlain)}
	hdrGRPC      = []string{"application/grpc"}
)

// respondNet answers with the proxy's own status: a short plain body, or
// for gRPC a trailers-only response (HTTP 200, grpc-status and
// grpc-message in the header block that ends the stream). d, when not
// nil, adds Retry-After and WWW-Authenticate.
func respondNet(w http.ResponseWriter, status int, grpc bool, d *Decision, rid []byte) {
	h := w.Header()
	h["X-Request-Id"] = []string{string(rid)}
	if d != nil {
		if d.RetryAfter > 0 {
			h["Retry-After"] = []string{strconv.Itoa(d.RetryAfter)}
		}
		if d.WWWAuthenticate != nil && d.Status == http.StatusUnauthorized {
			h["Www-Authenticate"] = []string{string(d.WWWAuthenticate)}
		}
	}
	if grpc {
		h["Content-Type"] = hdrGRPC
		h["Grpc-Status"] = grpcCodeStrings[grpcCode(status)]
		h["Grpc-Message"] = []string{url.PathEscape(http.StatusText(status))}
		w.WriteHeader(http.StatusOK)
		return
	}
	body := appendStatusBody(nil, status, rid)
	h["Content-Type"] = hdrTextPlain
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// netHopHeaders are removed in both directions on the net/http path.
var netHopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Expect", "Http2-Settings",
}

// stripHopByHopNet removes the headers named in Connection, then the
// hop-by-hop list (RFC 9110 §7.6.1). keepTE keeps "TE: trailers", which
// gRPC requires (RFC 9113 §8.2.2).
func stripHopByHopNet(h http.Header, keepTE bool) {
	for _, v := range h["Connection"] {
		forEachToken([]byte(v), func(tok []byte) { h.Del(string(tok)) })
	}
	te := keepTE && hasToken(h["Te"], "trailers")
	for _, k := range netHopHeaders {
		delete(h, k)
	}
	if te {
		h["Te"] = hdrTrailers
	}
}

var hdrTrailers = []string{"trailers"}

func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// forwardNet sends the request to a backend of the decided route and
// relays the answer, retrying once like forwardFast.
func (e *Engine) forwardNet(w http.ResponseWriter, r *http.Request, snap *Snapshot, st *netState, grpc bool) {
	d := &st.dec
	rt := d.Route
	out := new(http.Request)
	*out = *r // shallow: the header map is shared and owned by this handler
	out.RequestURI = ""
	out.Close = false
	e.rewriteNetRequest(out, r, st, rt, grpc)

	var tried *balancer.Backend
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var b *balancer.Backend
		if attempt == 0 && d.Sticky != nil {
			b = d.Sticky
		} else {
			b, _ = rt.pool.Pick(tried)
		}
		if b == nil {
			break
		}
		u := rt.upstreams[b]
		tr, scheme := u.net.transport(grpc)
		out.URL = &url.URL{Scheme: scheme, Host: b.Addr(), Opaque: opaquePath(r, st.path), RawQuery: rawQuery(r, d.Query)}
		b.Acquire()
		var res *http.Response
		res, err = tr.RoundTrip(out)
		if err == nil {
			st.upIdx, st.upAddr = u.metricIdx, b.Addr()
			b.ReportSuccess()
			if d.SetSticky || b != d.Sticky && d.Sticky != nil {
				st.cookie = appendStickyCookie(st.cookie[:0], rt, b)
				res.Header.Add("Set-Cookie", string(st.cookie))
			}
			res.Header["X-Request-Id"] = []string{string(st.rid)}
			e.count4xx(d, res.StatusCode)
			e.relayNet(w, res, rt, grpc)
			res.Body.Close()
			b.Release()
			return
		}
		b.Release()
		if r.Context().Err() != nil {
			return // the client went away; nobody to answer
		}
		b.ReportFailure(nowNanos())
		tried = b
		if !netRetryable(r, err) {
			break
		}
		if m := e.opts.Metrics; m != nil {
			m.Retry()
		}
		e.log.Debug("upstream attempt failed; retrying", "backend", b.Addr(), "err", err)
	}
	status := http.StatusBadGateway
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		status = http.StatusServiceUnavailable
	case errors.As(err, &tooLarge):
		status = http.StatusRequestEntityTooLarge
	case isTimeout(err):
		status = http.StatusGatewayTimeout
	}
	if err != nil && status != http.StatusRequestEntityTooLarge { // a 413 is the client's doing
		e.log.Warn("upstream request failed", "route", rt.Host+rt.Prefix, "status", status, "request_id", string(st.rid), "err", err)
	}
	respondNet(w, status, grpc, nil, st.rid)
}

// netRetryable is retryable for the net/http front end: idempotent
// method, no request body, and a dial failure.
func netRetryable(r *http.Request, err error) bool {
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		return false
	}
	switch r.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
	default:
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// opaquePath returns the normalized path as a string, reusing r's own
// string when normalization changed nothing (the common case).
func opaquePath(r *http.Request, path []byte) string {
	if r.URL != nil && r.URL.RawPath == "" && r.URL.Path == string(path) {
		return r.URL.Path
	}
	return string(path)
}

// rawQuery returns the query to forward, reusing r's string when the
// policy chain did not change it.
func rawQuery(r *http.Request, q []byte) string {
	if r.URL != nil && r.URL.RawQuery == string(q) {
		return r.URL.RawQuery
	}
	return string(q)
}

// rewriteNetRequest turns out (a shallow copy of r sharing its header
// map, which the handler owns) into the upstream request.
func (e *Engine) rewriteNetRequest(out, r *http.Request, st *netState, rt *Route, grpc bool) {
	h := out.Header
	stripHopByHopNet(h, true)
	d := &st.dec
	if d.DropAuthorization {
		delete(h, "Authorization")
	}
	if d.DropAPIKey {
		delete(h, "X-Api-Key")
	}
	for _, k := range d.StripHeaders {
		h.Del(k)
	}
	for _, hv := range d.AddHeaders {
		h.Set(hv.Name, hv.Value)
	}
	// X-Forwarded-For: a trusted proxy's list is kept and the peer is
	// appended; from anyone else the header is replaced.
	xff := st.xff[:0]
	if d.TrustedPeer && len(st.req.XForwardedFor) > 0 {
		xff = append(append(xff, st.req.XForwardedFor...), strCommaSpace...)
	}
	xff = st.req.Peer.AppendTo(xff)
	st.xff = xff
	h["X-Forwarded-For"] = []string{string(xff)}
	h["X-Request-Id"] = []string{string(st.rid)}
	if st.req.TLS {
		h["X-Forwarded-Proto"] = hdrHTTPS
	} else {
		h["X-Forwarded-Proto"] = hdrHTTP
	}
	if r.Host != "" {
		h["X-Forwarded-Host"] = []string{r.Host}
	} else {
		delete(h, "X-Forwarded-Host")
	}
	via := e.viaFor(r.ProtoMajor)
	if v := h["Via"]; len(v) > 0 {
		h["Via"] = []string{strings.Join(v, ", ") + ", " + via[0]}
	} else {
		h["Via"] = via
	}
	for i := range rt.serverHeaders {
		op := &rt.serverHeaders[i]
		if op.add {
			h.Add(string(op.name), string(op.value))
		} else {
			h.Set(string(op.name), string(op.value))
		}
	}
	if out.ContentLength == 0 && !grpc {
		out.Body = nil
	}
}

var (
	hdrHTTP  = []string{"http"}
	hdrHTTPS = []string{"https"}
)

// viaFor returns the Via entry for a request received over HTTP/major:
// "1.1 <name>" or "2 <name>" (RFC 9110 §7.6.3), as a header value shared
// by every request of e: callers must not modify it.
func (e *Engine) viaFor(major int) []string {
	v, ok := viaCache.Load(e)
	if !ok {
		name := string(e.via[4:]) // e.via is "1.1 <name>"
		v, _ = viaCache.LoadOrStore(e, &[2][]string{{"1.1 " + name}, {"2 " + name}})
	}
	if major == 2 {
		return v.(*[2][]string)[1]
	}
	return v.(*[2][]string)[0]
}

// viaCache holds each Engine's Via values for the net/http front end, so
// that requests do not build them. Engines are few and long-lived.
var viaCache sync.Map // *Engine → *[2][]string

// relayNet writes the upstream response to w: headers without hop-by-hop
// fields plus the route's client_headers, the body with a flush per read
// when its length is unknown, then the trailers. A read error from the
// upstream mid-body aborts the client stream (an HTTP/2 RST_STREAM), so
// the client never takes a truncated body for a whole one.
func (e *Engine) relayNet(w http.ResponseWriter, res *http.Response, rt *Route, grpc bool) {
	h := w.Header()
	stripHopByHopNet(res.Header, false)
	for k, v := range res.Header {
		h[k] = v
	}
	for i := range rt.clientHeaders {
		op := &rt.clientHeaders[i]
		if op.add {
			h.Add(string(op.name), string(op.value))
		} else {
			h.Set(string(op.name), string(op.value))
		}
	}
	w.WriteHeader(res.StatusCode)
	stream := res.ContentLength < 0 || grpc
	flusher, _ := w.(http.Flusher)
	if _, trailersOnly := res.Header["Grpc-Status"]; stream && flusher != nil && !trailersOnly {
		// Headers now: a stream's first message may take a while. A
		// trailers-only gRPC answer must instead stay one header block
		// that ends the stream, so it is not flushed early.
		flusher.Flush()
	}
	bp := copyBufPool.Get().(*[]byte)
	buf := *bp
	var rerr error
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				copyBufPool.Put(bp)
				return // the client is gone; closing res.Body resets upstream
			}
			if stream && flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	copyBufPool.Put(bp)
	if rerr != nil {
		e.log.Debug("upstream body failed", "route", rt.Host+rt.Prefix, "err", rerr)
		panic(http.ErrAbortHandler)
	}
	// Trailers arrive after the body and are usually not announced
	// (gRPC's are not): send each under the undeclared-trailer prefix.
	for k, v := range res.Trailer {
		h[http.TrailerPrefix+k] = v
	}
}

// netUpstream holds one backend's net/http transports, built on first
// use: HTTP/1.1 (cleartext or TLS), HTTP/2 over TLS, and h2c. Each keeps
// its own connection pool for the backend. It is safe for concurrent use.
type netUpstream struct {
	addr    string
	backend *balancer.Backend
	opts    UpstreamOptions
	dialer  net.Dialer

	tlsOnce sync.Once
	tlsCfg  *tls.Config // ALPN left empty; cloned per transport
	tlsErr  error

	ts [numTransports]transportSlot
}

// The transports of a netUpstream. The gRPC variants have no response
// header timeout: gRPC carries its own deadline (grpc-timeout) end to
// end, and a stream may legitimately wait long for its first message.
const (
	trH1  = iota // HTTP/1.1, cleartext or TLS by URL scheme
	trH2         // HTTP/2 over TLS (ALPN h2)
	trH2C        // HTTP/2 by prior knowledge
	trH2GRPC
	trH2CGRPC
	numTransports
)

type transportSlot struct {
	once sync.Once
	t    atomic.Pointer[http.Transport] // read by closeIdle without once
}

func newNetUpstream(addr string, b *balancer.Backend, o UpstreamOptions) *netUpstream {
	return &netUpstream{
		addr: addr, backend: b, opts: o,
		dialer: net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second},
	}
}

// clientTLS returns the upstream TLS config: SNI is the backend host when
// it is a name, verification per UpstreamOptions.TLSVerify.
func (n *netUpstream) clientTLS() (*tls.Config, error) {
	n.tlsOnce.Do(func() {
		n.tlsCfg, n.tlsErr = edgetls.ClientConfig(n.addr, n.opts.TLSVerify, n.opts.TLSCAFile)
	})
	return n.tlsCfg, n.tlsErr
}

func (n *netUpstream) newTransport(kind int) *http.Transport {
	p := new(http.Protocols)
	switch kind {
	case trH1:
		p.SetHTTP1(true)
	case trH2, trH2GRPC:
		p.SetHTTP2(true)
	default:
		p.SetUnencryptedHTTP2(true)
	}
	t := &http.Transport{
		DialContext:           n.dialer.DialContext,
		MaxIdleConnsPerHost:   max(n.opts.KeepalivePoolSize, 2),
		MaxConnsPerHost:       n.opts.MaxConns,
		IdleConnTimeout:       n.opts.IdleTimeout,
		TLSHandshakeTimeout:   n.opts.ConnectTimeout,
		ExpectContinueTimeout: 0,
		DisableCompression:    true,
		MaxResponseHeaderBytes: int64(func() int {
			if n.opts.MaxHeaderBytes > 0 {
				return n.opts.MaxHeaderBytes
			}
			return 64 << 10
		}()),
		Protocols: p,
		// UpstreamOptions.Timeout bounds the wait for response headers
		// (then 504), except for gRPC.
		ResponseHeaderTimeout: n.opts.Timeout,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	if kind == trH2GRPC || kind == trH2CGRPC {
		t.ResponseHeaderTimeout = 0
	}
	if cfg, err := n.clientTLS(); err == nil {
		t.TLSClientConfig = cfg.Clone()
	} else {
		t.DialTLSContext = func(context.Context, string, string) (net.Conn, error) { return nil, err }
	}
	return t
}

// transport picks the transport and URL scheme for the backend's detected
// protocol. An undetected backend is reached over HTTP/1.1, except for
// gRPC, which needs HTTP/2: then h2c by prior knowledge, as gRPC servers
// without TLS speak it.
func (n *netUpstream) transport(grpc bool) (http.RoundTripper, string) {
	p := n.backend.Proto()
	kind, scheme := trH1, "http"
	switch {
	case p.Has(balancer.ProtoH2):
		kind, scheme = trH2, "https"
	case p.Has(balancer.ProtoH2C) || (p == balancer.ProtoUnknown && grpc):
		kind = trH2C
	case p.Has(balancer.ProtoTLS):
		scheme = "https"
	}
	if grpc && kind == trH2 {
		kind = trH2GRPC
	} else if grpc && kind == trH2C {
		kind = trH2CGRPC
	}
	sl := &n.ts[kind]
	sl.once.Do(func() { sl.t.Store(n.newTransport(kind)) })
	return sl.t.Load(), scheme
}

// usesNet reports whether HTTP/1.1 front-end requests to this backend go
// through the net/http transports: the backend speaks only HTTP/2.
func (n *netUpstream) usesNet() bool {
	p := n.backend.Proto()
	return p.Has(balancer.ProtoH2) || p.Has(balancer.ProtoH2C)
}

// dialHostClient is the fasthttp.HostClient dialer: TCP, then TLS with
// ALPN http/1.1 when the backend was detected as TLS.
func (n *netUpstream) dialHostClient(addr string) (net.Conn, error) {
	c, err := n.dialer.Dial("tcp", addr)
	if err != nil || !n.backend.Proto().Has(balancer.ProtoTLS) {
		return c, err
	}
	cfg, err := n.clientTLS()
	if err != nil {
		c.Close()
		return nil, err
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	if cfg.ServerName == "" {
		// An IP address: no SNI is sent (RFC 6066 §3), but verification
		// needs the name to check the certificate's IP SANs against.
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), max(n.opts.ConnectTimeout, time.Second))
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// closeIdle closes the idle connections of every transport built.
func (n *netUpstream) closeIdle() {
	for i := range n.ts {
		if t := n.ts[i].t.Load(); t != nil {
			t.CloseIdleConnections()
		}
	}
}

// roundTripFast sends a request of the fasthttp front end to the backend
// and reads the response headers into resp: over the fasthttp pool
// (roundTrip) for HTTP/1.1 backends, over the net/http HTTP/2 transport
// for backends that speak only h2 or h2c. Errors are as for roundTrip.
func (u *upstream) roundTripFast(req *fasthttp.Request, resp *fasthttp.Response, bufLimit int) error {
	if u.net == nil || !u.net.usesNet() {
		return roundTrip(u.hc, req, resp, bufLimit)
	}
	tr, scheme := u.net.transport(false)
	hr, err := http.NewRequest(string(req.Header.Method()), scheme+"://"+u.net.addr+string(req.RequestURI()), nil)
	if err != nil {
		return err
	}
	hr.Host = string(req.Header.Host())
	for k, v := range req.Header.All() {
		switch string(k) {
		case "Host", "Content-Length", "Connection", "Transfer-Encoding":
			continue
		}
		hr.Header.Add(string(k), string(v))
	}
	if req.IsBodyStream() {
		hr.Body = io.NopCloser(req.BodyStream())
		hr.ContentLength = int64(req.Header.ContentLength())
		if hr.ContentLength < 0 {
			hr.ContentLength = -1
		}
	} else if b := req.Body(); len(b) > 0 {
		hr.Body = io.NopCloser(bytes.NewReader(b))
		hr.ContentLength = int64(len(b))
	}
	res, err := tr.RoundTrip(hr)
	if err != nil {
		return err
	}
	resp.SetStatusCode(res.StatusCode)
	for k, vs := range res.Header {
		for _, v := range vs {
			resp.Header.Add(k, v)
		}
	}
	if req.Header.IsHead() || noBody(res.StatusCode) {
		resp.SkipBody = true
		res.Body.Close()
		return nil
	}
	cl := int(res.ContentLength)
	if cl < 0 {
		cl = -1
	}
	resp.SetBodyStream(res.Body, cl) // fasthttp closes it after relaying
	return nil
}
