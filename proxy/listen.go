package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"

	edgetls "github.com/aralez-go/aralez/tls"
)

// DefaultHandshakeTimeout is ListenOptions.HandshakeTimeout when zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultH2IdleTimeout is ListenOptions.IdleTimeout when zero.
const DefaultH2IdleTimeout = 120 * time.Second

// DefaultDrainTimeout is ListenOptions.DrainTimeout when zero.
const DefaultDrainTimeout = 10 * time.Second

// DefaultMaxConcurrentStreams is ListenOptions.MaxConcurrentStreams when
// zero.
const DefaultMaxConcurrentStreams = 250

// ListenOptions configures Serve and ServeTLS. Zero fields take the
// defaults noted.
type ListenOptions struct {
	// HandshakeTimeout bounds how long a new connection may take to
	// send its first bytes (cleartext) or finish its TLS handshake; a
	// silent client is closed when it expires. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout closes an HTTP/2 connection without open streams.
	// Default DefaultH2IdleTimeout.
	IdleTimeout time.Duration
	// MaxConcurrentStreams caps the streams of one HTTP/2 connection.
	// Default DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// DrainTimeout is how long Serve waits, after its context is done,
	// for HTTP/2 connections to finish their streams after GOAWAY
	// before closing them. Default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// MaxHeaderBytes limits an HTTP/2 request's header list (as
	// SETTINGS_MAX_HEADER_LIST_SIZE, RFC 9113 §6.5.2). Zero means
	// net/http's default, 1 MiB.
	MaxHeaderBytes int
	// ProxyProtocolFrom lists the load balancers that must open every
	// connection with a PROXY protocol header (v1 or v2), read before
	// the HTTP/2 preface peek and before the TLS handshake, within
	// HandshakeTimeout. From a peer in these prefixes a missing,
	// malformed or late header closes the connection; the client address
	// it carries becomes the connection's RemoteAddr. Connections from
	// any other peer are served as plain clients, so a PROXY header from
	// them is a malformed request (400) or a failed TLS handshake, never
	// trusted. Empty means the PROXY protocol is off.
	ProxyProtocolFrom []netip.Prefix
	// Logger receives accept errors. Nil means slog.Default().
	Logger *slog.Logger
}

// h2Preface is the HTTP/2 client connection preface, RFC 9113 §3.4.
var h2Preface = []byte(http2.ClientPreface)

// frontends hands accepted connections to the HTTP/1.1 server (fasthttp)
// or the HTTP/2 server (x/net/http2 with a net/http handler). One is
// built per Serve or ServeTLS call; it owns the goroutines it starts.
type frontends struct {
	o     ListenOptions
	fast  *fasthttp.Server
	h1    *chanListener
	h2    *http2.Server
	base  *http.Server // h2's BaseConfig; its Shutdown sends GOAWAY
	h2opt http2.ServeConnOpts

	mu    sync.Mutex            // guards conns
	conns map[net.Conn]struct{} // being dispatched or served by h2
	wg    sync.WaitGroup        // per-connection goroutines
}

func newFrontends(ctx context.Context, addr net.Addr, fast *fasthttp.Server, h http.Handler, o ListenOptions) *frontends {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultH2IdleTimeout
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := &frontends{
		o:     o,
		fast:  fast,
		h1:    newChanListener(addr),
		h2:    &http2.Server{IdleTimeout: o.IdleTimeout, MaxConcurrentStreams: o.MaxConcurrentStreams},
		base:  &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0), MaxHeaderBytes: o.MaxHeaderBytes},
		conns: make(map[net.Conn]struct{}),
	}
	// ConfigureServer registers the GOAWAY-on-Shutdown hook; it fails
	// only for a TLSConfig without an h2-capable suite, and base has none.
	_ = http2.ConfigureServer(f.base, f.h2)
	// Streams must outlive ctx: a shutdown drains them after GOAWAY.
	f.h2opt = http2.ServeConnOpts{Context: context.WithoutCancel(ctx), BaseConfig: f.base, Handler: h}
	return f
}

// serveH2 serves c with the HTTP/2 server until it closes.
func (f *frontends) serveH2(c net.Conn) {
	f.h2.ServeConn(c, &f.h2opt) //nolint:staticcheck // ServeConn is the per-connection entry point the dispatch needs.
}

// track records c as owned by f (dispatching or HTTP/2) so that a drain
// that times out can close it; untrack hands it off.
func (f *frontends) track(c net.Conn) {
	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
}

func (f *frontends) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// run is the accept loop shared by Serve and ServeTLS: it starts the
// fasthttp server on the hand-off listener, accepts until ctx is done,
// then drains.
func (f *frontends) run(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	fastErr := make(chan error, 1)
	go func() { fastErr <- f.fast.Serve(f.h1) }()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var err error
	var delay time.Duration
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil || errors.Is(aerr, net.ErrClosed) {
				break
			}
			var ne net.Error
			if errors.As(aerr, &ne) && ne.Timeout() || isTemporary(aerr) {
				// Out of file descriptors and the like: back off as
				// net/http does, and keep serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				f.o.Logger.Warn("accept failed; retrying", "err", aerr, "delay_seconds", delay.Seconds())
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			err = aerr
			break
		}
		delay = 0
		f.track(c)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			defer func() {
				if p := recover(); p != nil {
					f.o.Logger.Error("panic serving connection", "panic", p, "remote", c.RemoteAddr().String())
					c.Close()
				}
			}()
			handle(c)
		}()
	}
	ln.Close()
	f.drain()
	f.h1.Close()
	if ferr := <-fastErr; err == nil && ferr != nil {
		err = ferr
	}
	return err
}

// drain sends GOAWAY to every HTTP/2 connection, waits up to the drain
// timeout for them to finish, then closes the rest and waits for every
// connection goroutine.
func (f *frontends) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), f.o.DrainTimeout)
	defer cancel()
	_ = f.base.Shutdown(ctx) // triggers GOAWAY through ConfigureServer's hook
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.h1.Close()
	<-done
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Serve accepts cleartext connections on ln until ctx is done. Each
// connection gets its own goroutine, which reads the first bytes under
// the handshake timeout: the HTTP/2 connection preface (RFC 9113 §3.4,
// prior knowledge, as gRPC clients speak without TLS) sends it to an
// x/net/http2 server with handler h2, anything else to fast (HTTP/1.1);
// the bytes read are replayed to whichever server gets the connection.
// A client that sends nothing is closed when the timeout expires; the
// accept loop never waits on a client. An h2c upgrade (RFC 7540 §3.2,
// "Upgrade: h2c") is not honoured: such a request is served as HTTP/1.1.
//
// fast must not be serving another listener's Shutdown yet; Serve runs
// fast.Serve on an internal listener. When ctx is done, Serve closes ln,
// sends GOAWAY to its HTTP/2 connections and waits up to
// o.DrainTimeout for them, then closes them; HTTP/1.1 connections belong
// to fast: call fast.ShutdownWithContext to drain them, as for
// fasthttp.Server.Serve. Serve returns nil after a shutdown through ctx,
// else the accept error.
func Serve(ctx context.Context, ln net.Listener, fast *fasthttp.Server, h2 http.Handler, o ListenOptions) error {
	f := newFrontends(ctx, ln.Addr(), fast, h2, o)
	return f.run(ctx, ln, f.dispatchClear)
}

// fromBalancer reads the PROXY header of a connection from a trusted load
// balancer (ListenOptions.ProxyProtocolFrom) and returns the connection
// to serve, or closes raw and reports false when the header is missing,
// malformed or late. Connections from other peers are returned as they
// are.
func (f *frontends) fromBalancer(raw net.Conn) (net.Conn, bool) {
	if !f.trustsProxyHeader(raw) {
		return raw, true
	}
	c, err := f.readProxyHeader(raw)
	if err != nil {
		f.o.Logger.Debug("connection closed", "peer", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return nil, false
	}
	_ = raw.SetReadDeadline(time.Time{})
	return c, true
}

// dispatchClear peeks at a cleartext connection and hands it on.
func (f *frontends) dispatchClear(raw net.Conn) {
	c, ok := f.fromBalancer(raw)
	if !ok {
		return
	}
	pc := &prefixConn{Conn: c}
	_ = c.SetReadDeadline(time.Now().Add(f.o.HandshakeTimeout))
	for pc.n < len(h2Preface) {
		n, err := c.Read(pc.buf[pc.n:len(h2Preface)])
		pc.n += n
		if !bytes.HasPrefix(h2Preface, pc.buf[:pc.n]) {
			break // not HTTP/2: an HTTP/1.x request line
		}
		if err != nil {
			c.Close() // silent, closed or timed out before deciding
			return
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	if pc.n == len(h2Preface) && bytes.Equal(pc.buf[:pc.n], h2Preface) {
		f.serveH2(pc)
		return
	}
	f.untrack(raw)
	h1 := newFramingConn(pc) // bare LF and chunk-size checks (framing.go)
	if !f.h1.deliver(h1) {
		// The HTTP/1.1 server is shutting down: serve this one request
		// directly so it gets an answer with Connection: close.
		_ = f.fast.ServeConn(h1)
	}
}

// ServeTLS accepts TLS connections on ln until ctx is done, terminating
// TLS with certificates from store at grade (edgetls.Grade), offering
// ALPN "h2" and "http/1.1". A connection that negotiates h2 is served by
// an x/net/http2 server with handler h2; http/1.1 or no ALPN goes to
// fast. The handshake runs in the connection's own goroutine under the
// handshake timeout, so a slow client never blocks the accept loop. While
// the store holds no certificate, handshakes fail (edgetls's
// ErrNoCertificate) and the listener keeps running.
//
// Shutdown and the return value are as for Serve.
func ServeTLS(ctx context.Context, ln net.Listener, store *edgetls.Store, grade edgetls.Grade, fast *fasthttp.Server, h2 http.Handler, o ListenOptions) error {
	cfg := store.ServerConfig(grade, []string{http2.NextProtoTLS, "http/1.1"})
	f := newFrontends(ctx, ln.Addr(), fast, h2, o)
	return f.run(ctx, ln, func(c net.Conn) { f.dispatchTLS(ctx, c, cfg) })
}

// ServeTLSConfig is ServeTLS with a caller-built tls.Config; its
// NextProtos decide which protocols clients may negotiate.
func ServeTLSConfig(ctx context.Context, ln net.Listener, cfg *tls.Config, fast *fasthttp.Server, h2 http.Handler, o ListenOptions) error {
	f := newFrontends(ctx, ln.Addr(), fast, h2, o)
	return f.run(ctx, ln, func(c net.Conn) { f.dispatchTLS(ctx, c, cfg) })
}

// dispatchTLS completes the handshake and hands the connection on by
// its negotiated protocol.
func (f *frontends) dispatchTLS(ctx context.Context, raw net.Conn, cfg *tls.Config) {
	c, ok := f.fromBalancer(raw)
	if !ok {
		return
	}
	tc := tls.Server(c, cfg)
	hctx, cancel := context.WithTimeout(ctx, f.o.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		tc.Close()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == http2.NextProtoTLS {
		f.serveH2(tc)
		return
	}
	f.untrack(raw)
	h1 := newFramingConn(tc)
	if !f.h1.deliver(h1) {
		_ = f.fast.ServeConn(h1)
	}
}

// prefixConn replays the bytes read while peeking before reading on.
type prefixConn struct {
	net.Conn
	buf [24]byte // len(h2Preface)
	n   int      // bytes of buf still to replay, from off
	off int
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.off < c.n {
		n := copy(p, c.buf[c.off:c.n])
		c.off += n
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the underlying TCP connection, for tunnels.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// chanListener is the net.Listener fasthttp.Server.Serve reads
// dispatched connections from, so that fasthttp keeps its worker pool,
// concurrency limit and Shutdown accounting.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands c to Accept and reports true, or reports false when the
// listener is closed (the caller then serves or closes c).
func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
