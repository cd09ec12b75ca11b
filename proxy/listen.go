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
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	edgetls "github.com/aralez-go/aralez/tls"
)

// DefaultHandshakeTimeout is ListenOptions.HandshakeTimeout when zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultH2IdleTimeout is ListenOptions.IdleTimeout when zero.
const DefaultH2IdleTimeout = 120 * time.Second

// DefaultDrainTimeout is ListenOptions.DrainTimeout when zero.
const DefaultDrainTimeout = 10 * time.Second

// DefaultMaxConcurrentStreams is ListenOptions.MaxConcurrentStreams when
// zero: net/http's own default for its HTTP/2 server.
const DefaultMaxConcurrentStreams = 250

// DefaultH2StreamWindowBytes and DefaultH2ConnectionWindowBytes are
// ListenOptions.StreamWindowBytes and ConnectionWindowBytes when zero:
// net/http's own defaults for its HTTP/2 server, 1 MiB each.
const (
	DefaultH2StreamWindowBytes     = 1 << 20
	DefaultH2ConnectionWindowBytes = 1 << 20
)

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
	// MaxConcurrentStreams caps the streams of one HTTP/2 connection
	// (SETTINGS_MAX_CONCURRENT_STREAMS, RFC 9113 §6.5.2). Default
	// DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// StreamWindowBytes is the flow-control window of each HTTP/2
	// request body, in bytes (SETTINGS_INITIAL_WINDOW_SIZE, RFC 9113
	// §6.9.2): how much a client may send on one stream before the proxy
	// has read it. Default DefaultH2StreamWindowBytes.
	StreamWindowBytes int
	// ConnectionWindowBytes is the flow-control window of each HTTP/2
	// connection, in bytes (RFC 9113 §6.9.1): how much a client may send
	// over all its streams before the proxy has read it. Default
	// DefaultH2ConnectionWindowBytes.
	ConnectionWindowBytes int
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
	// IdleReleaseTimeout is how long a cleartext HTTP/1.1 keep-alive
	// connection may wait for its next request before it gives back the
	// goroutine, buffers and request state fasthttp holds for it (about
	// 30 KiB) and is parked until that request comes or its idle timeout
	// ends (park.go). A connection busier than that never gives them
	// back, so it never waits on a pool. Default
	// DefaultIdleReleaseTimeout; negative, or not less than the HTTP/1.1
	// server's idle timeout, keeps them for as long as the connection is
	// open. Only Linux parks connections (park.go needs a non-blocking
	// peek at the socket).
	IdleReleaseTimeout time.Duration
	// Parked, when not nil, is kept equal to the number of connections
	// parked now, which the HTTP/1.1 server no longer counts among its
	// open connections.
	Parked *atomic.Int64
	// Logger receives accept errors. Nil means slog.Default().
	Logger *slog.Logger
}

// h2Preface is the HTTP/2 client connection preface, RFC 9113 §3.4.
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// frontends hands accepted connections to the HTTP/1.1 server (fasthttp)
// or to net/http's own HTTP/2 server. One is built per Serve or ServeTLS
// call; it owns the goroutines it starts.
type frontends struct {
	o    ListenOptions
	fast *fasthttp.Server
	h1   *chanListener
	// h2 serves HTTP/2 only (Protocols: HTTP2 and UnencryptedHTTP2), on
	// the connections the dispatch hands to h2ln: TLS connections that
	// negotiated h2 (net/http dispatches a *tls.Conn by its ALPN) and
	// cleartext ones whose preface was peeked and is replayed (net/http
	// reads it again and serves prior-knowledge h2c). Its Shutdown sends
	// GOAWAY and waits for those connections; its Close ends them.
	h2   *http.Server
	h2ln *chanListener
	park *parker // idle HTTP/1.1 connections; nil = none parked

	mu    sync.Mutex            // guards conns
	conns map[net.Conn]struct{} // being dispatched
	wg    sync.WaitGroup        // per-connection dispatch goroutines
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
	if o.StreamWindowBytes <= 0 {
		o.StreamWindowBytes = DefaultH2StreamWindowBytes
	}
	if o.ConnectionWindowBytes <= 0 {
		o.ConnectionWindowBytes = DefaultH2ConnectionWindowBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.IdleReleaseTimeout == 0 {
		o.IdleReleaseTimeout = DefaultIdleReleaseTimeout
	}
	p := new(http.Protocols)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	// Streams must outlive ctx: a shutdown drains them after GOAWAY.
	base := context.WithoutCancel(ctx)
	f := &frontends{
		o:    o,
		fast: fast,
		h1:   newChanListener(addr),
		h2ln: newChanListener(addr),
		h2: &http.Server{
			Handler:        h,
			Protocols:      p,
			IdleTimeout:    o.IdleTimeout,
			MaxHeaderBytes: o.MaxHeaderBytes,
			ErrorLog:       log.New(io.Discard, "", 0),
			BaseContext:    func(net.Listener) context.Context { return base },
			HTTP2: &http.HTTP2Config{
				MaxConcurrentStreams:          int(o.MaxConcurrentStreams),
				MaxReceiveBufferPerStream:     o.StreamWindowBytes,
				MaxReceiveBufferPerConnection: o.ConnectionWindowBytes,
			},
		},
		conns: make(map[net.Conn]struct{}),
	}
	if o.IdleReleaseTimeout > 0 && (fast.IdleTimeout <= 0 || o.IdleReleaseTimeout < fast.IdleTimeout) {
		f.park = newParker(f.serveUnparked, o.Parked, o.IdleReleaseTimeout)
	}
	return f
}

// serveUnparked gives a connection the parker woke back to the HTTP/1.1
// server, as dispatchClear does with a new one.
func (f *frontends) serveUnparked(c net.Conn) {
	if !f.h1.deliver(c) {
		_ = f.fast.ServeConn(c)
	}
}

// serveH2 hands c to the HTTP/2 server, or closes it when that server is
// shutting down.
func (f *frontends) serveH2(c net.Conn) {
	if !f.h2ln.deliver(c) {
		c.Close()
	}
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
	h2Done := make(chan struct{})
	go func() { _ = f.h2.Serve(f.h2ln); close(h2Done) }() // ends when drain closes h2ln
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
	if f.park != nil {
		f.park.stop() // idle connections close, as fasthttp's own do at shutdown
	}
	f.drain()
	f.h1.Close()
	<-h2Done
	if ferr := <-fastErr; err == nil && ferr != nil {
		err = ferr
	}
	return err
}

// drain sends GOAWAY to every HTTP/2 connection, waits up to the drain
// timeout for them to finish, then closes the rest (and the connections
// still being dispatched) and waits for every dispatch goroutine.
func (f *frontends) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), f.o.DrainTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	// Shutdown closes h2ln (a dispatch then closes its connection), sends
	// GOAWAY and returns when every HTTP/2 connection has ended.
	err := f.h2.Shutdown(ctx)
	f.h2ln.Close() // in case Serve had not started yet
	if err == nil {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
	}
	_ = f.h2.Close()
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
// HTTP/2 server (net/http's own) with handler h2, anything else to fast
// (HTTP/1.1);
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
// are. A refused header gets no answer (there is no protocol to answer
// in), and an orderly close: FIN, then what the balancer still sends is
// read and dropped for up to lingerTime, as for a refused HTTP/1.1
// request (framing.go), since closing with unread bytes would reset the
// connection.
func (f *frontends) fromBalancer(raw net.Conn) (net.Conn, bool) {
	if !f.trustsProxyHeader(raw) {
		return raw, true
	}
	c, err := f.readProxyHeader(raw)
	if err != nil {
		f.o.Logger.Debug("connection closed", "peer", raw.RemoteAddr().String(), "err", err)
		closeOrderly(raw) // on this tracked goroutine: a shutdown ends the wait
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
	f.untrack(raw)
	if pc.n == len(h2Preface) && bytes.Equal(pc.buf[:pc.n], h2Preface) {
		bc := &batchConn{Conn: pc}
		bc.enable(h2cReadBufferBytes)
		f.serveH2(bc)
		return
	}
	var h1 net.Conn
	if f.park != nil {
		h1 = newParkConn(pc, f.park) // framing checks, and parked when idle (park.go)
	} else {
		h1 = newFramingConn(pc) // bare LF and chunk-size checks (framing.go)
	}
	if !f.h1.deliver(h1) {
		// The HTTP/1.1 server is shutting down: serve this one request
		// directly so it gets an answer with Connection: close.
		_ = f.fast.ServeConn(h1)
	}
}

// ServeTLS accepts TLS connections on ln until ctx is done, terminating
// TLS with certificates from store at grade (edgetls.Grade), offering
// ALPN "h2" and "http/1.1". A connection that negotiates h2 is served by
// net/http's HTTP/2 server with handler h2; http/1.1 or no ALPN goes to
// fast. The handshake runs in the connection's own goroutine under the
// handshake timeout, so a slow client never blocks the accept loop. While
// the store holds no certificate, handshakes fail (edgetls's
// ErrNoCertificate) and the listener keeps running.
//
// Shutdown and the return value are as for Serve.
func ServeTLS(ctx context.Context, ln net.Listener, store *edgetls.Store, grade edgetls.Grade, fast *fasthttp.Server, h2 http.Handler, o ListenOptions) error {
	cfg := store.ServerConfig(grade, []string{"h2", "http/1.1"})
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
	bc := &batchConn{Conn: c}
	tc := tls.Server(bc, cfg)
	hctx, cancel := context.WithTimeout(ctx, f.o.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		tc.Close()
		return
	}
	f.untrack(raw)
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		bc.enable(0) // tls.Conn reads whole records
		f.serveH2(tc)
		return
	}
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
