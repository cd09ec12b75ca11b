package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
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
	if kind == trH1 {
		t.DialContext = n.dialEarly // an answer before the whole body (upstream_early.go)
	}
	if n.proxyProto != 0 {
		// One client's request per connection: the header names it.
		t.DialContext, t.DisableKeepAlives = n.dialProxied, true
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
	return sl.t.Load(), scheme
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
// for backends that speak only h2 or h2c, and over the net/http
// HTTP/1.1 transport with the PROXY header for the client connection
// from src to dst on a send_proxy_protocol route. A streamed body holds lease's
// in-flight count and releases it on Close. Errors are as for roundTrip.
func (u *upstream) roundTripFast(req *fasthttp.Request, resp *fasthttp.Response, bufLimit int, lease *balancer.Backend, src, dst net.Addr) error {
	if u.net == nil || !u.net.usesNet() {
		return roundTrip(u.hc, req, resp, bufLimit, lease)
	}
	tr, scheme := u.net.transport(false)
	ctx := context.Background()
	if u.net.proxyProto != 0 {
		ctx = withPeer(ctx, src, dst)
	}
	hr, err := http.NewRequestWithContext(ctx, string(req.Header.Method()), scheme+"://"+u.net.addr+string(req.RequestURI()), nil)
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
	resp.SetBodyStream(&leasedBody{ReadCloser: res.Body, lease: lease}, cl) // fasthttp closes it after relaying
	return nil
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
