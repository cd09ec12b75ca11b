package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// This file holds the HTTP/1.1 upstream connections: a deadline per Read
// and Write, and the check that finds an idle connection its upstream
// has closed before a request is written to it.

// upstreamConn is an HTTP/1.1 upstream connection, TCP or TLS over TCP,
// of a backend's fasthttp pool or net/http transport. It gives every
// Read and Write its own deadline of timeout from the call (a coarse
// one, deadline.go: up to an eighth of timeout late): an idle
// timeout between successive operations (like nginx's
// proxy_read_timeout), so that a large body that keeps flowing is never
// cut by a deadline set when the request started. It keeps its TCP
// socket so that alive can look at it while the connection is idle.
// Reads and Writes may run on two goroutines (net/http reads the
// response while it writes the body). Values must not be copied.
type upstreamConn struct {
	net.Conn
	timeout time.Duration // zero: no deadlines
	// closed is set when alive found the connection closed after
	// net/http took it from its pool (idleCheck): Write then fails with
	// errIdleClosed and writes nothing.
	closed atomic.Bool
	// yield: one goroutine both writes and reads the connection
	// (fasthttp's pool), so a Read after a Write yields first
	// (yieldBeforeReply). wrote is set by Write and cleared by Read.
	yield, wrote bool
	// rd and wd are the read and write deadlines in force (coarse), on
	// the monotonic clock of monoNanos.
	rd, wd coarseDeadline

	raw     syscall.RawConn  // the TCP socket; nil when there is none
	peekFn  func(fd uintptr) // c.peek, bound once so that alive allocates nothing
	peekErr error
	peekBuf [1]byte
}

// idleCheckAfter is how long a connection must have been idle before it
// is checked (alive) on reuse. Upstream idle timers are seconds long in
// practice (gunicorn 2 s, Node.js, Apache and uvicorn 5 s, nginx 75 s),
// so a connection idle for less cannot have been closed by one; under
// load connections are reused within milliseconds, where the check's
// system call would cost a measurable share of a request
// (bench/RESULTS.md, issue 11). An upstream that restarts may close a
// connection at any moment: that race is the retry rule's
// (pipeline.ErrStale).
const idleCheckAfter = 250 * time.Millisecond

// errIdleClosed is the error of a Write to an idle connection that its
// upstream had closed; nothing was written.
var errIdleClosed = errors.New("proxy: upstream closed idle connection")

// newUpstreamConn wraps c: a *net.TCPConn, or TLS or earlyConn over one.
func newUpstreamConn(c net.Conn, timeout time.Duration) *upstreamConn {
	uc := &upstreamConn{Conn: c, timeout: timeout}
	if sc := socketOf(c); sc != nil && canPeek {
		if raw, err := sc.SyscallConn(); err == nil {
			uc.raw = raw
			uc.peekFn = uc.peek
		}
	}
	return uc
}

// socketOf returns the socket under c, looking through TLS and earlyConn,
// or nil when there is none.
func socketOf(c net.Conn) syscall.Conn {
	for {
		switch x := c.(type) {
		case syscall.Conn:
			return x
		case *tls.Conn:
			c = x.NetConn()
		case *earlyConn:
			c = x.Conn
		default:
			return nil
		}
	}
}

// pooledDial returns a dialer whose connections are upstreamConns over
// the connections dial opens.
func pooledDial(dial func(string) (net.Conn, error), timeout time.Duration) func(string) (net.Conn, error) {
	return func(addr string) (net.Conn, error) {
		c, err := dial(addr)
		if err != nil {
			return nil, err
		}
		uc := newUpstreamConn(c, timeout)
		uc.yield = true // fasthttp reads a response on the goroutine that wrote the request
		return uc, nil
	}
}

// yieldBeforeReply lets the other runnable goroutines run before a read
// that expects a peer's reply to what was just written: the upstream's
// response to a request, the client's next request after a response.
// Read on a Go socket first tries the read system call and, when nothing
// has arrived yet, parks the goroutine until the poller reports data and
// then reads again; a reply never arrives within the microsecond between
// our write and our read, so that first read always fails with EAGAIN.
// After a yield, the other connections' work has run and the reply has
// usually arrived, so one read gets it and the goroutine does not park:
// measured under load, 4.1 to 2.3 read calls per proxied request
// (bench/RESULTS.md, issue 16). With nothing else runnable the yield
// returns at once and the read behaves as before.
func yieldBeforeReply() { runtime.Gosched() }

func (c *upstreamConn) Read(p []byte) (int, error) {
	if c.wrote {
		c.wrote = false
		yieldBeforeReply()
	}
	if c.timeout > 0 {
		now := monoNanos()
		if at, ok := c.rd.nextNanos(now+int64(c.timeout), func() int64 { return now }); ok {
			if err := c.Conn.SetReadDeadline(monoTime(at)); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Read(p)
}

func (c *upstreamConn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, errIdleClosed
	}
	if c.timeout > 0 {
		now := monoNanos()
		if at, ok := c.wd.nextNanos(now+int64(c.timeout), func() int64 { return now }); ok {
			if err := c.Conn.SetWriteDeadline(monoTime(at)); err != nil {
				return 0, err
			}
		}
	}
	if c.yield {
		c.wrote = true
	}
	return c.Conn.Write(p)
}

// SetDeadline sets both deadlines on the connection as they are; the
// next Read and Write set their own again.
func (c *upstreamConn) SetDeadline(t time.Time) error {
	c.rd.forget()
	c.wd.forget()
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline as it is; the next Read sets
// its own again.
func (c *upstreamConn) SetReadDeadline(t time.Time) error {
	c.rd.forget()
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline as it is; the next Write sets
// its own again.
func (c *upstreamConn) SetWriteDeadline(t time.Time) error {
	c.wd.forget()
	return c.Conn.SetWriteDeadline(t)
}

// alive reports whether an idle connection can carry a request: its
// upstream has neither closed it (FIN or RST) nor sent anything while it
// sat idle (a TLS close_notify before the close, an answer nobody asked
// for: either way, the next response could not be told apart from it).
// It costs one non-blocking recv with MSG_PEEK on the socket, which
// consumes nothing; the read deadline plays no part. A connection without
// a socket to look at (an in-memory pipe) is taken to be alive. It must
// run while no request uses the connection.
//
// Upstreams close idle keep-alive connections on their own timers
// (Node.js after 5 s, many application servers and load balancers after
// a few seconds), and a request written to such a connection fails
// without a response; a POST then cannot be retried, since the upstream
// may have read it. Checking first leaves only the race of an upstream
// that closes between the check and the write (issue 11).
func (c *upstreamConn) alive() bool {
	if c.raw == nil {
		return true
	}
	c.peekErr = nil
	if err := c.raw.Control(c.peekFn); err != nil {
		return false // closed on our side
	}
	switch err := c.peekErr; {
	case err == nil:
		return false // 0 bytes: the upstream's FIN; more: bytes nobody asked for
	case isWouldBlock(err), err == syscall.EINTR:
		return true // nothing arrived: still open
	}
	return false // ECONNRESET and the like
}

// peek is alive's look at the socket (peekSocket).
func (c *upstreamConn) peek(fd uintptr) {
	_, c.peekErr = peekSocket(fd, c.peekBuf[:])
}

// reusable reports whether c, a connection from a fasthttp pool that
// has been idle since lastUse, can carry a request: it is new (lastUse
// is zero), was idle for less than idleCheckAfter, or is alive. A
// connection of another type is taken to be alive.
func reusable(c net.Conn, lastUse time.Time) bool {
	if lastUse.IsZero() || time.Since(lastUse) < idleCheckAfter {
		return true
	}
	uc, ok := c.(*upstreamConn)
	return !ok || uc.alive()
}
