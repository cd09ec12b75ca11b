package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/balancer"
)

// WebSocket tunnelling (RFC 6455 §4) on the HTTP/1.1 front end. Only
// "Upgrade: websocket" is tunnelled; any other Upgrade token (notably h2c,
// which would let a client speak HTTP/2 straight to a backend past
// routing, auth and limits) is stripped as hop-by-hop and the request is
// served as plain HTTP/1.1. The handshake goes through the policy chain
// like any request. Extended CONNECT over HTTP/2 (RFC 8441) is not
// implemented: the HTTP/2 server does not advertise it, so h2 clients
// open WebSockets over HTTP/1.1.

// DefaultTunnelIdleTimeout is UpstreamOptions.TunnelIdleTimeout when
// zero: a tunnel with no byte in either direction for this long closes.
const DefaultTunnelIdleTimeout = 10 * time.Minute

// tunnelGrace is how long a tunnel whose client stopped sending waits for
// the backend's last bytes (its close frame) before closing.
const tunnelGrace = 5 * time.Second

// maxHandshakeResponseBytes bounds the body of a non-101 answer to a
// WebSocket handshake, which is relayed as a normal response.
const maxHandshakeResponseBytes = 1 << 20

var (
	strUpgrade      = []byte("Upgrade")
	strWebSocket    = []byte("websocket")
	strUpgradeToken = []byte("upgrade")
)

// isWebSocket reports whether an HTTP/1.1 request asks to open a
// WebSocket: GET with "Connection: upgrade" and "Upgrade: websocket"
// (RFC 6455 §4.1). Both are case-insensitive.
func isWebSocket(h *fasthttp.RequestHeader) bool {
	if !h.IsGet() || !h.IsHTTP11() {
		return false
	}
	up := bytes.TrimSpace(h.PeekBytes(strUpgrade))
	if !bytes.EqualFold(up, strWebSocket) {
		return false
	}
	found := false
	forEachToken(h.PeekBytes(strConnection), func(tok []byte) {
		if bytes.EqualFold(tok, strUpgradeToken) {
			found = true
		}
	})
	return found
}

// tunnelFast forwards a WebSocket handshake to a backend of the decided
// route. A 101 answer is relayed and both connections are then joined
// byte for byte until either side closes or the tunnel idles; any other
// answer is relayed as a normal response. A dial failure is retried once
// on another backend (the handshake is an idempotent GET).
func (e *Engine) tunnelFast(ctx *fasthttp.RequestCtx, snap *Snapshot, st *state) {
	rt := st.dec.Route
	req, resp := &ctx.Request, &ctx.Response
	noHost := len(req.Header.Host()) == 0
	e.rewriteRequest(ctx, st, rt)
	req.Header.SetBytesKV(strConnection, strUpgrade)
	req.Header.SetBytesKV(strUpgrade, strWebSocket)

	var tried *balancer.Backend
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var b *balancer.Backend
		if attempt == 0 && st.dec.Sticky != nil {
			b = st.dec.Sticky
		} else {
			b, _ = rt.pool.Pick(tried)
		}
		if b == nil {
			break
		}
		u := rt.upstreams[b]
		if noHost {
			req.Header.SetHost(u.hc.Addr)
		}
		var bc net.Conn
		bc, err = u.net.dialHostClient(b.Addr())
		if err != nil {
			b.ReportFailure(nowNanos())
			tried = b
			continue
		}
		var br *bufio.Reader
		br, err = e.handshake(bc, req, resp, u.net.opts.Timeout)
		if err != nil {
			bc.Close()
			b.ReportFailure(nowNanos())
			break
		}
		b.ReportSuccess()
		e.rewriteResponse(resp, rt)
		if d := &st.dec; d.SetSticky || b != d.Sticky && d.Sticky != nil {
			e.setStickyCookie(resp, rt, b, st)
		}
		e.count4xx(&st.dec, resp.StatusCode())
		if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
			bc.Close()
			resp.SetConnectionClose()
			return
		}
		resp.Header.SetBytesKV(strConnection, strUpgrade)
		resp.Header.SetBytesKV(strUpgrade, strWebSocket)
		idle := u.net.opts.TunnelIdleTimeout
		if idle <= 0 {
			idle = DefaultTunnelIdleTimeout
		}
		b.Acquire()
		reg := e.reg
		ctx.Hijack(func(c net.Conn) {
			defer b.Release()
			reg.tunnels.run(c, c, bc, br, idle)
		})
		return
	}
	resp.Reset()
	status := fasthttp.StatusBadGateway
	if err == nil {
		status = fasthttp.StatusServiceUnavailable
	} else if isTimeout(err) {
		status = fasthttp.StatusGatewayTimeout
	}
	if err != nil {
		e.log.Warn("websocket handshake failed", "route", rt.Host+rt.Prefix, "status", status, "err", err)
	}
	writeStatus(ctx, status)
}

// handshake writes req on bc and reads the answer into resp: headers
// only for 101, headers and a bounded body otherwise. It returns the
// reader of bc, which may hold the backend's first frames.
func (e *Engine) handshake(bc net.Conn, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) (*bufio.Reader, error) {
	if timeout > 0 {
		_ = bc.SetDeadline(time.Now().Add(timeout))
	}
	bw := bufio.NewWriterSize(bc, 4<<10)
	if err := req.Write(bw); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(bc, 4<<10)
	resp.Reset()
	if err := resp.ReadLimitBody(br, maxHandshakeResponseBytes); err != nil {
		return nil, err
	}
	_ = bc.SetDeadline(time.Time{})
	return br, nil
}

// tunnelBufPool holds the copy buffers of tunnels: one per direction is
// held while a tunnel waits for bytes, so they are smaller than the body
// relay's (16 KiB: 32 KiB per open tunnel).
var tunnelBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// tunnelSet tracks open tunnels so that a shutdown can close them. The
// zero value is ready; it is safe for concurrent use.
type tunnelSet struct {
	mu   sync.Mutex // guards open
	open map[*tunnel]struct{}
	n    atomic.Int64
}

type tunnel struct {
	client, backend net.Conn
	closeOnce       sync.Once
}

func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		t.client.Close()
		t.backend.Close()
	})
}

// run joins client (read through cr, which may hold bytes fasthttp read
// ahead) and backend (read through br) until either side closes or no
// byte moves for idle. It returns when both directions are done.
func (s *tunnelSet) run(client net.Conn, cr io.Reader, backend net.Conn, br io.Reader, idle time.Duration) {
	t := &tunnel{client: client, backend: backend}
	s.mu.Lock()
	if s.open == nil {
		s.open = make(map[*tunnel]struct{})
	}
	s.open[t] = struct{}{}
	s.mu.Unlock()
	s.n.Add(1)
	defer func() {
		t.close()
		s.mu.Lock()
		delete(s.open, t)
		s.mu.Unlock()
		s.n.Add(-1)
	}()
	_ = client.SetDeadline(time.Time{})
	_ = backend.SetDeadline(time.Time{})

	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	up := make(chan struct{})
	go func() {
		defer close(up)
		defer func() { _ = recover() }()
		pipe(backend, cr, client, idle, &last)
		// The client is done sending: pass the end on and give the
		// backend a grace period for its last bytes (its close frame),
		// RFC 6455 §7.1.1.
		if cw, ok := backend.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		time.AfterFunc(min(tunnelGrace, idle), t.close)
	}()
	// Backend to client runs here, in the hijack goroutine. When it ends
	// the backend is done and nothing more can reach it: close both.
	pipe(client, br, backend, idle, &last)
	t.close()
	<-up
}

// pipe copies src (read deadlines on srcConn) to dst until an error, EOF,
// or idle without a byte in either direction (last is shared by both
// directions of a tunnel). A write that cannot finish within idle ends
// the copy too.
func pipe(dst net.Conn, src io.Reader, srcConn net.Conn, idle time.Duration, last *atomic.Int64) {
	bp := tunnelBufPool.Get().(*[]byte)
	defer tunnelBufPool.Put(bp)
	buf := *bp
	for {
		now := time.Now()
		_ = srcConn.SetReadDeadline(now.Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			now = time.Now()
			last.Store(now.UnixNano())
			_ = dst.SetWriteDeadline(now.Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is busy: not idle
			}
			return
		}
	}
}

// CloseTunnels closes every open WebSocket tunnel and returns how many
// there were. Call it at shutdown after the front ends have drained;
// fasthttp.Server.Shutdown does not wait for hijacked connections.
func (r *Registry) CloseTunnels() int {
	s := &r.tunnels
	s.mu.Lock()
	ts := make([]*tunnel, 0, len(s.open))
	for t := range s.open {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	for _, t := range ts {
		t.close()
	}
	return len(ts)
}

// Tunnels returns the number of open WebSocket tunnels.
func (r *Registry) Tunnels() int { return int(r.tunnels.n.Load()) }
