package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/balancer"
	edgetls "github.com/aralez-go/aralez/tls"
)

// This file holds the net/http upstream transports: HTTP/2 over TLS (ALPN
// h2) and h2c by prior knowledge for the net/http front end and for
// backends that speak only HTTP/2, and TLS HTTP/1.1.

// netUpstream holds one backend's net/http transports, built on first
// use: HTTP/1.1 (cleartext or TLS), HTTP/2 over TLS, and h2c. Each keeps
// its own connection pool for the backend. It is safe for concurrent use.
type netUpstream struct {
	addr    string
	backend *balancer.Backend
	opts    UpstreamOptions
	dialer  net.Dialer
	// proxyProto is the PROXY protocol version each connection opens
	// with (send_proxy_protocol); 0 = none (upstream_proxy.go).
	proxyProto uint8

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
	switch cfg, err := n.clientTLS(); {
	case kind == trH1 && n.proxyProto == 0:
		// TLS is done here, so that the connection net/http holds is the
		// upstreamConn that idleCheck looks at; below it, earlyConn (an
		// answer before the whole body, upstream_early.go).
		t.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return n.dialWatched(ctx, addr, false)
		}
		t.DialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return n.dialWatched(ctx, addr, true)
		}
	case err == nil:
		t.TLSClientConfig = cfg.Clone()
	default:
		t.DialTLSContext = func(context.Context, string, string) (net.Conn, error) { return nil, err }
	}
	if n.proxyProto != 0 {
		// One client's request per connection: the header names it. No
		// connection is reused, so none is checked.
		t.DialContext, t.DisableKeepAlives = n.dialProxied, true
	}
	return t
}

// dialWatched opens a connection of the net/http HTTP/1.1 transport:
// TCP in an earlyConn, TLS with ALPN http/1.1 over it when tlsOn, all in
// an upstreamConn without deadlines of its own (the transport's
// ResponseHeaderTimeout applies).
func (n *netUpstream) dialWatched(ctx context.Context, addr string, tlsOn bool) (net.Conn, error) {
	c, err := n.dialEarly(ctx, "tcp", addr)
	if err == nil && tlsOn {
		c, err = n.handshakeH1(ctx, c, addr)
	}
	if err != nil {
		return nil, err
	}
	return newUpstreamConn(c, 0), nil
}

// transport picks the transport and URL scheme for the backend's detected
// protocol. An undetected backend is reached over HTTP/1.1, except for
// gRPC, which needs HTTP/2: then h2c by prior knowledge, as gRPC servers
// without TLS speak it.
func (n *netUpstream) transport(grpc bool) (http.RoundTripper, string) {
	p := n.backend.Proto()
	kind, scheme := trH1, "http"
	switch {
	case n.proxyProto != 0:
		// HTTP/1.1 only, cleartext or TLS: each connection carries one
		// request (see upstream_proxy.go).
		if p.Has(balancer.ProtoTLS) {
			scheme = "https"
		}
		grpc = false
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
	if kind == trH1 {
		return (*h1Transport)(sl.t.Load()), scheme
	}
	return sl.t.Load(), scheme
}

// h1Transport is the net/http HTTP/1.1 transport of a backend (for the
// net/http front end). A request never goes out on an idle connection
// that the upstream has closed: idleCheck finds it when net/http takes
// it from its pool, and the request fails before any byte is written;
// net/http then sends it on another connection (it retries a request
// that it provably did not send), by itself for a request without a
// body, through GetBody for one with a body (replayBody), whatever the
// method (issue 11). It is safe for concurrent use.
type h1Transport http.Transport

// RoundTrip sends req as http.Transport does, with idleCheck and, for a
// request with a body and no GetBody, a replayBody. req is not
// modified; a request with a body is copied.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	trace := idleCheck
	if httptrace.ContextClientTrace(ctx) != nil {
		tc := *idleCheck // WithClientTrace composes into the trace it gets
		trace = &tc
	}
	r := req.WithContext(httptrace.WithClientTrace(ctx, trace))
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		rb := &replayBody{rc: r.Body}
		r.Body, r.GetBody = rb, rb.again
	}
	return (*http.Transport)(t).RoundTrip(r)
}

// idleCheck is the client trace of h1Transport: when net/http takes an
// idle connection from its pool after idleCheckAfter or more, GotConn
// checks that the upstream has not closed it (upstreamConn.alive); if it has, the connection's first
// Write fails with errIdleClosed and writes nothing. net/http's own
// check (a read that waits on each idle connection) sees most such
// closes, but not one that lands just before the connection is taken.
var idleCheck = &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
	if !info.Reused || !info.WasIdle || info.IdleTime < idleCheckAfter {
		return
	}
	if uc, ok := info.Conn.(*upstreamConn); ok && !uc.alive() {
		uc.closed.Store(true)
	}
}}

// replayBody is the body of a request sent through h1Transport. Until a
// byte of it is read, again hands it back for another attempt, and Close
// leaves the client's body open: net/http closes the body of a request
// whose first write failed, and that request is sent again. Once reading
// has begun, again fails with errBodySent and Close closes the client's
// body. It is safe for concurrent use (net/http reads it on one
// goroutine and may close it on another).
type replayBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

// errBodySent is replayBody's answer to a retry after its body was read.
var errBodySent = errors.New("proxy: request body already sent upstream; the request cannot be sent again")

func (b *replayBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

// Close closes the client's body once reading has begun.
func (b *replayBody) Close() error {
	if b.read.Load() {
		return b.rc.Close()
	}
	return nil
}

// again is the request's GetBody.
func (b *replayBody) again() (io.ReadCloser, error) {
	if b.read.Load() {
		return nil, errBodySent
	}
	return b, nil
}

// usesNet reports whether HTTP/1.1 front-end requests to this backend go
// through the net/http transports: the backend speaks only HTTP/2.
func (n *netUpstream) usesNet() bool {
	p := n.backend.Proto()
	return n.proxyProto != 0 || p.Has(balancer.ProtoH2) || p.Has(balancer.ProtoH2C)
}

// dialHostClient is the fasthttp.HostClient dialer: TCP, then TLS with
// ALPN http/1.1 when the backend was detected as TLS.
func (n *netUpstream) dialHostClient(addr string) (net.Conn, error) {
	return n.dialTunnel(addr, nil, nil)
}

// dialTunnel is dialHostClient for one client's connection from src to
// dst: on a send_proxy_protocol route the PROXY header naming it goes
// first (a WebSocket tunnel).
func (n *netUpstream) dialTunnel(addr string, src, dst net.Addr) (net.Conn, error) {
	c, err := n.dialer.Dial("tcp", addr)
	if err == nil && n.proxyProto != 0 {
		if err = n.writeProxyHeaderFor(c, src, dst); err != nil {
			c.Close()
		}
	}
	if err != nil || !n.backend.Proto().Has(balancer.ProtoTLS) {
		return c, err
	}
	return n.handshakeH1(context.Background(), c, addr)
}

// handshakeH1 runs the TLS handshake of an HTTP/1.1 connection (ALPN
// http/1.1) over c to addr, bounded by the connect timeout (at least
// 1 s); on error c is closed.
func (n *netUpstream) handshakeH1(ctx context.Context, c net.Conn, addr string) (net.Conn, error) {
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
	hctx, cancel := context.WithTimeout(ctx, max(n.opts.ConnectTimeout, time.Second))
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
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
// for backends that speak only h2 or h2c, and over the net/http
// HTTP/1.1 transport with the PROXY header for the client connection
// from src to dst on a send_proxy_protocol route. A streamed request
// body is read from client, the connection the request came on (nil for
// the proxy's own requests), by the calling goroutine only, and never
// after roundTripFast returns (upstream_feed.go); bodyLeft reports that
// the exchange ended before that body did, so that the rest of it is
// still on the client's connection. A streamed response body holds
// lease's in-flight count and releases it on Close. Errors are as for
// roundTrip.
func (u *upstream) roundTripFast(req *fasthttp.Request, resp *fasthttp.Response, bufLimit int, lease *balancer.Backend, client net.Conn, src, dst net.Addr) (bodyLeft bool, err error) {
	resp.Header.SetNoDefaultContentType(true) // untyped stays untyped, as in roundTrip
	if u.net == nil || !u.net.usesNet() {
		return false, roundTrip(u.hc, req, resp, bufLimit, lease)
	}
	return u.roundTripNetFast(req, resp, bufLimit, lease, client, src, dst)
}

// roundTripNetFast is roundTripFast over net/http's transports, a
// function of its own so that the fasthttp pool's path keeps a small
// stack frame (this one's is over 1 KiB).
func (u *upstream) roundTripNetFast(req *fasthttp.Request, resp *fasthttp.Response, bufLimit int, lease *balancer.Backend, client net.Conn, src, dst net.Addr) (bodyLeft bool, err error) {
	tr, scheme := u.net.transport(false)
	ctx := context.Background()
	if u.net.proxyProto != 0 {
		ctx = withPeer(ctx, src, dst)
	}
	hr, err := http.NewRequestWithContext(ctx, string(req.Header.Method()), scheme+"://"+u.net.addr+string(req.RequestURI()), nil)
	if err != nil {
		return false, err
	}
	hr.Host = string(req.Header.Host())
	for k, v := range req.Header.All() {
		switch string(k) {
		case "Host", "Content-Length", "Connection", "Transfer-Encoding":
			continue
		}
		hr.Header.Add(string(k), string(v))
	}
	var res *http.Response
	if req.IsBodyStream() {
		// Read by the goroutine serving the client only (upstream_feed.go).
		fb := newFeedBody(client)
		hr.Body = fb
		hr.ContentLength = int64(req.Header.ContentLength())
		if hr.ContentLength < 0 {
			hr.ContentLength = -1
		}
		res, bodyLeft, err = sendFed(tr, hr, fb, req.BodyStream(), u.net.opts.Timeout)
	} else {
		if b := req.Body(); len(b) > 0 {
			hr.Body = io.NopCloser(bytes.NewReader(b))
			hr.ContentLength = int64(len(b))
		}
		res, err = tr.RoundTrip(hr)
	}
	if err != nil {
		return bodyLeft, err
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
		return bodyLeft, nil
	}
	cl := int(res.ContentLength)
	if cl < 0 {
		cl = -1
	}
	resp.SetBodyStream(&leasedBody{ReadCloser: res.Body, lease: lease}, cl) // fasthttp closes it after relaying
	return bodyLeft, nil
}

// leasedBody is an upstream response body that gives its backend's
// in-flight count back when it is closed.
type leasedBody struct {
	io.ReadCloser
	lease *balancer.Backend
}

// Close closes the body and releases the lease once.
func (b *leasedBody) Close() error {
	if b.lease != nil {
		b.lease.Release()
		b.lease = nil
	}
	return b.ReadCloser.Close()
}
