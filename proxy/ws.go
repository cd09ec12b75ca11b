package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

// WebSocket tunnelling (RFC 6455 §4) on the HTTP/1.1 front end. Which
// requests are WebSocket handshakes, and the headers they keep, are the
// pipeline's rules (pipeline.IsWebSocket, PlanRequest); any other Upgrade
// token (notably h2c) is stripped as hop-by-hop and the request is served
// as plain HTTP/1.1. The handshake goes through the pipeline like any
// request. Extended CONNECT over HTTP/2 (RFC 8441) is not
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

// tunnelFast forwards a WebSocket handshake through the pipeline's
// attempt loop (a dial error is retried on another backend; the handshake
// is an idempotent GET). A 101 answer is relayed and both connections are
// then joined byte for byte until either side closes or the tunnel idles;
// the backend's in-flight count is held until then. Any other answer is
// relayed as a normal response.
func (e *Engine) tunnelFast(ctx *fasthttp.RequestCtx, st *state) {
	d := &st.dec
	req, resp := &ctx.Request, &ctx.Response
	e.pl.PlanRequest(&st.req, d, &st.plan)
	applyReq(req, &st.plan)
	a := &wsAttempt{st: st}
	out := e.pl.Attempt(&st.req, d, pipeline.BodyNone, a)
	if out.Backend == nil {
		if out.Failed != nil {
			st.upAddr = out.Failed.Addr()
		}
		d.Action, d.Status = pipeline.ActRespond, out.Status
		e.replyFast(ctx, st)
		return
	}
	b := out.Backend
	u := out.Upstream.(*upstream)
	st.upIdx, st.upAddr = u.metricIdx, b.Addr()
	e.pl.PlanResponse(d, b, resp.Header.PeekBytes(strConnection), pipeline.AllHeaders, &st.plan)
	applyResp(&resp.Header, &st.plan)
	e.pl.Responded(d, resp.StatusCode())
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		a.bc.Close()
		b.Release()
		resp.SetConnectionClose()
		return
	}
	resp.Header.SetBytesKV(strConnection, strUpgradeValue)
	resp.Header.SetBytesKV(strUpgrade, strWebSocket)
	idle := u.net.opts.TunnelIdleTimeout
	if idle <= 0 {
		idle = DefaultTunnelIdleTimeout
	}
	reg, bc, br := e.reg, a.bc, a.br
	if fr := framerOf(ctx.Conn()); fr != nil {
		fr.stop() // WebSocket frames follow, not HTTP requests
	}
	ctx.Hijack(func(c net.Conn) {
		defer b.Release()
		reg.tunnels.run(c, c, bc, br, idle)
	})
}

var (
	strUpgrade      = []byte("Upgrade")
	strUpgradeValue = []byte("Upgrade")
	strWebSocket    = []byte("websocket")
)

// wsAttempt is the pipeline.Transport of a WebSocket handshake: a fresh
// connection to the backend (TLS when it was detected as TLS) and the
// handshake on it.
type wsAttempt struct {
	st *state
	bc net.Conn
	br *bufio.Reader
}

// RoundTrip dials b and sends the handshake; on success the connection
// and its reader are kept for the tunnel.
func (a *wsAttempt) RoundTrip(b *balancer.Backend, up pipeline.Upstream) error {
	u := up.(*upstream)
	req, resp := &a.st.ctx.Request, &a.st.ctx.Response
	if len(a.st.plan.Host) == 0 {
		req.Header.SetHost(u.hc.Addr)
	}
	bc, err := u.net.dialTunnel(b.Addr(), a.st.ctx.RemoteAddr(), a.st.ctx.LocalAddr())
	if err != nil {
		return err
	}
	br, err := handshake(bc, req, resp, u.net.opts.Timeout)
	if err != nil {
		bc.Close()
		return err
	}
	a.bc, a.br = bc, br
	return nil
}

// handshake writes req on bc and reads the answer into resp: headers
// only for 101, headers and a bounded body otherwise. It returns the
// reader of bc, which may hold the backend's first frames.
func handshake(bc net.Conn, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) (*bufio.Reader, error) {
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
