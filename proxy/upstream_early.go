package proxy

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/aralez-go/aralez/proxy/pipeline"
)

// A backend may answer before it has read a whole request body and then
// close the connection (RFC 9112 §9.6): typically a 413 right after the
// request head. The proxy's body writes then fail with a reset, but the
// answer is already in the receive buffer, and it is the answer the client
// must get, not a 502 that blames the backend (issue 11). Both HTTP/1.1
// upstream transports keep reading after such a write error: the fasthttp
// one in roundTrip, the net/http one through earlyConn.

// upstreamReset reports whether err is the upstream connection refusing a
// write because the backend closed or reset it (EPIPE, ECONNRESET); an
// error reading the client's body is never one.
func upstreamReset(err error) bool {
	var op *net.OpError
	return pipeline.IsReset(err) && errors.As(err, &op) && op.Op == "write"
}

// earlyConn is an upstream connection of the net/http HTTP/1.1 transport
// that, once the backend has reset it, drops further writes instead of
// failing them. net/http's transport races a write error against the
// response read and may report the error although an answer arrived; with
// the write side quiet, the read side decides: the backend's answer, or
// EOF or a reset when there was none (after a reset the kernel answers a
// read at once). The request body is then no longer read once the
// transport closes the connection.
type earlyConn struct {
	net.Conn
	reset atomic.Bool // TLS may write from the read side (alerts)
}

func (c *earlyConn) Write(p []byte) (int, error) {
	if c.reset.Load() {
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if err != nil && upstreamReset(err) {
		c.reset.Store(true)
		return len(p), nil
	}
	return n, err
}

// dialEarly is the DialContext of the net/http HTTP/1.1 transport: a TCP
// connection wrapped in earlyConn.
func (n *netUpstream) dialEarly(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := n.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &earlyConn{Conn: c}, nil
}
