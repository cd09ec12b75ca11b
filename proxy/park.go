package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file lets an idle HTTP/1.1 keep-alive connection give back what
// fasthttp holds for it while it waits for the next request: a worker
// goroutine with the stack the request path grew, a RequestCtx, a read
// buffer of max_header_bytes and a 4 KiB write buffer, about 30 KiB in
// all (issue 16; bench/RESULTS.md, "Issue 16: idle HTTP/1.1 keep-alive
// connections").
// fasthttp keeps them for as long as the connection is open, so that a
// busy connection never goes to a pool between requests.
//
// A connection that stays idle for ListenOptions.IdleReleaseTimeout is
// parked instead. A sweep of the listener's connections, twice per
// release timeout, finds those that have waited for their next request
// since two sweeps ago and cuts that wait short (a read deadline in the
// past, as net/http does to abort a read). The read then returns
// errParked, which fasthttp takes for the end of the connection between
// requests (it answers nothing and puts its buffers back into its pools),
// and the connection's Close hands it to the parker, which waits for it
// to become readable in a fresh goroutine of its own (a 2 KiB stack: one
// non-blocking peek at the socket, then the runtime's poller) and hands
// it back to the HTTP/1.1 server, as the accept loop does with a new
// connection. A parked connection keeps the deadline fasthttp set for
// it: it is closed when its idle timeout runs out, as fasthttp would
// have closed it.
//
// Busy connections pay two atomic stores per request and no clock read
// or deadline of their own, so the coarse deadlines (deadline.go) keep
// their worth; no pool is touched unless a connection does stay idle
// that long. Only cleartext connections are parked, on Linux (the peek,
// upstream_conn_linux.go): a TLS connection may hold decrypted bytes
// above its socket, which readiness cannot show.

// DefaultIdleReleaseTimeout is ListenOptions.IdleReleaseTimeout when
// zero.
const DefaultIdleReleaseTimeout = time.Second

// errParked is the read error that ends fasthttp's service of a
// connection the parker takes.
var errParked = errors.New("proxy: idle connection parked")

// The states of a parkConn, for its Close.
const (
	connServed  = iota // fasthttp serves it
	connParking        // its read returned errParked: its Close parks it
	connParked         // the parker owns it
)

// aLongTimeAgo is a read deadline that cuts a read short at once.
var aLongTimeAgo = time.Unix(1, 0)

// parkConn is a cleartext client connection of the HTTP/1.1 front end
// that the parker may take while it is idle between requests. Read,
// Write and the deadline setters are called by the goroutine serving the
// connection; Close may be called by any goroutine.
type parkConn struct {
	framingConn
	p *parker

	// want is the read deadline fasthttp asked for when it began to wait
	// for the next request; zero when it is not waiting.
	want time.Time
	// waiting is the parker's sweep count when the connection began to
	// wait for its next request; 0 = not waiting.
	waiting atomic.Int64
	state   atomic.Int32
	until   time.Time // the idle deadline of a parked connection
}

func newParkConn(c net.Conn, p *parker) *parkConn {
	pc := &parkConn{framingConn: framingConn{Conn: c}, p: p}
	pc.f.startHead()
	p.add(pc)
	return pc
}

// atRequestBoundary reports whether the connection has served a request
// and read nothing since the end of the last one: the next read waits
// for the first byte of a request, and nothing is buffered above the
// socket (a byte read would have moved the framer on).
func (f *framer) atRequestBoundary() bool {
	return f.seq > 0 && f.state == frHead && f.lines == 0 && f.lineLen == 0 && !f.pendCR && !f.blank && f.err == nil
}

// SetReadDeadline sets the read deadline (coarsely, as framingConn
// does). A deadline asked for after a response and before any byte of
// the next request starts the wait the sweep watches.
func (c *parkConn) SetReadDeadline(t time.Time) error {
	if c.wrote.Load() && !t.IsZero() && c.f.atRequestBoundary() {
		c.want = t
		c.waiting.Store(c.p.sweeps.Load())
	} else {
		c.want = time.Time{}
	}
	return c.framingConn.SetReadDeadline(t)
}

// Read reads as framingConn does. A read that times out before the
// deadline in force was cut short by a sweep: while the connection waits
// for its next request, Read returns errParked if the connection can be
// parked; otherwise the deadline fasthttp asked for is put back and the
// read goes on.
func (c *parkConn) Read(p []byte) (int, error) {
	n, err := c.framingConn.Read(p)
	if err == nil || n > 0 {
		if c.waiting.Load() != 0 {
			c.waiting.Store(0)
		}
		return n, err
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || c.rd.at < 0 || c.f.tunnel.Load() {
		return n, err // a tunnel sets its own deadlines
	}
	now := time.Now()
	if c.rd.at > 0 && now.UnixNano() >= c.rd.at {
		return n, err // the deadline in force ran out
	}
	if want := c.want; !want.IsZero() && c.f.atRequestBoundary() && now.Before(want) && c.p.parkable(c) {
		c.until = want
		c.state.Store(connParking)
		return 0, errParked
	}
	if err := c.putReadDeadlineBack(); err != nil {
		return 0, err
	}
	return c.framingConn.Read(p)
}

// Close closes the connection, or hands it to the parker when its read
// returned errParked. Once parked, the parker owns it and Close does
// nothing.
func (c *parkConn) Close() error {
	if c.state.CompareAndSwap(connParking, connParked) {
		c.p.park(c)
		return nil
	}
	if c.state.Load() == connParked {
		return nil
	}
	c.p.remove(c)
	return c.framingConn.Close()
}

// unpark readies a connection the parker gives back for a new service
// by fasthttp, whose request count starts again at 1.
func (c *parkConn) unpark() {
	c.f.seq = 0
	c.want = time.Time{}
	c.rd = coarseDeadline{}
	_ = c.Conn.SetReadDeadline(time.Time{})
	c.state.Store(connServed)
}

// tcpSocketOf returns the TCP socket under c when no layer in between holds
// bytes not yet read (the HTTP/2 preface peek, a PROXY header's reader).
func tcpSocketOf(c net.Conn) (*net.TCPConn, bool) {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			return x, true
		case *prefixConn:
			if x.off < x.n {
				return nil, false
			}
			c = x.Conn
		case *proxiedConn:
			if x.br != nil {
				if x.br.Buffered() > 0 {
					return nil, false
				}
				x.release()
			}
			c = x.Conn
		default:
			return nil, false
		}
	}
}

// parker watches the HTTP/1.1 connections of one listener for idle ones
// and holds those it parked. It is safe for concurrent use.
type parker struct {
	serve  func(net.Conn) // hands an unparked connection back to the server
	count  *atomic.Int64  // connections parked now; may be nil
	every  time.Duration  // the sweep's period
	sweeps atomic.Int64   // sweeps so far, from 1

	mu      sync.Mutex             // guards conns, held and stopped
	conns   map[*parkConn]struct{} // open connections, parked or not
	held    map[*parkConn]struct{} // parked connections
	stopped bool
	wg      sync.WaitGroup // the sweep and the parked connections' goroutines
	done    chan struct{}  // closed by stop
}

// newParker starts a parker whose sweep parks the connections that have
// waited for their next request for release or up to half as long again,
// that gives unparked connections to serve in the goroutine that waited
// for them, and that counts parked connections in count (nil: not
// counted). Stop it with stop.
func newParker(serve func(net.Conn), count *atomic.Int64, release time.Duration) *parker {
	p := &parker{
		serve: serve, count: count, every: max(release/2, time.Millisecond),
		conns: make(map[*parkConn]struct{}), held: make(map[*parkConn]struct{}),
		done: make(chan struct{}),
	}
	p.sweeps.Store(1)
	p.wg.Add(1)
	go p.sweepLoop()
	return p
}

func (p *parker) add(c *parkConn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *parker) remove(c *parkConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// sweepLoop sweeps every p.every until stop.
func (p *parker) sweepLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.sweep(p.sweeps.Add(1))
		}
	}
}

// sweep cuts short the wait of the connections that began to wait for
// their next request two sweeps or more before sweep number n: they have
// waited for at least two periods, the release timeout.
func (p *parker) sweep(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if w := c.waiting.Load(); w != 0 && n-w >= 3 && c.waiting.CompareAndSwap(w, 0) {
			_ = c.Conn.SetReadDeadline(aLongTimeAgo)
		}
	}
}

// parkable reports whether c can be parked now: the system lets a
// parked connection wait for readiness, and no layer above its socket
// holds bytes.
func (p *parker) parkable(c *parkConn) bool {
	if !canPeek {
		return false
	}
	_, ok := tcpSocketOf(c.Conn)
	return ok
}

// park takes c until it becomes readable (its next request, or the
// client's FIN) or its idle deadline c.until passes. A parker that has
// stopped closes c.
func (p *parker) park(c *parkConn) {
	var rc syscall.RawConn
	if sock, ok := tcpSocketOf(c.Conn); ok {
		rc, _ = sock.SyscallConn()
	}
	p.mu.Lock()
	if p.stopped || rc == nil {
		delete(p.conns, c)
		p.mu.Unlock()
		c.Conn.Close()
		return
	}
	p.held[c] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	p.counted(1)
	go p.wait(c, rc)
}

// wait waits in the runtime's poller until c is readable, then serves
// it; at its idle deadline, or when the parker stops, it closes c.
func (p *parker) wait(c *parkConn, rc syscall.RawConn) {
	defer p.wg.Done()
	err := c.Conn.SetReadDeadline(c.until)
	if err == nil {
		// The first call looks for bytes (or the FIN) already there;
		// without any, the poller wakes the second call when they come.
		first := true
		err = rc.Read(func(fd uintptr) bool {
			if first {
				first = false
				var b [1]byte
				_, err := peekSocket(fd, b[:])
				return !isWouldBlock(err)
			}
			return true
		})
	}
	p.mu.Lock()
	delete(p.held, c)
	stopped := p.stopped
	if err != nil || stopped {
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.counted(-1)
	if err != nil || stopped {
		c.Conn.Close()
		return
	}
	c.unpark()
	p.serve(c)
}

func (p *parker) counted(d int64) {
	if p.count != nil {
		p.count.Add(d)
	}
}

// stop ends the sweep, closes every parked connection and waits for
// their goroutines. Connections parked later are closed at once.
func (p *parker) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	close(p.done)
	for c := range p.held {
		c.Conn.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
