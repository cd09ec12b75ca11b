package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/aralez-go/aralez/proxy/pipeline"
)

// proxyHeaderBuffer is the read buffer for a PROXY header: more than the
// longest v1 line (107 bytes), which must arrive in one read, and enough
// for a v2 header with addresses; longer v2 TLVs are read through it.
const proxyHeaderBuffer = 256

var proxyReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, proxyHeaderBuffer) }}

// errProxyPeer reports a PROXY protocol address that cannot name a client.
var errProxyPeer = errors.New("proxy: PROXY header carries no usable client address")

// trustsProxyHeader reports whether c's peer is one of the load balancers
// that must send a PROXY protocol header (ListenOptions.ProxyProtocolFrom).
func (f *frontends) trustsProxyHeader(c net.Conn) bool {
	if len(f.o.ProxyProtocolFrom) == 0 {
		return false
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	return pipeline.InPrefixes(f.o.ProxyProtocolFrom, ta.AddrPort().Addr().Unmap())
}

// readProxyHeader reads the PROXY protocol header (v1 text or v2 binary,
// HAProxy's proxy-protocol.txt) that a trusted load balancer sends before
// anything else, within the handshake timeout. It returns the connection
// to serve: its RemoteAddr is the client address the header carries, so
// limits, access lists, X-Forwarded-For and the access log see the client
// rather than the balancer. A LOCAL (v2) or UNKNOWN (v1) header, which
// balancers send for their own health checks, keeps the socket's
// address, as does a v2 header for a non-IP (AF_UNIX) client. Bytes read
// past the header are replayed to the front end. A missing, malformed or
// late header is an error; the caller closes the connection.
func (f *frontends) readProxyHeader(c net.Conn) (net.Conn, error) {
	_ = c.SetReadDeadline(time.Now().Add(f.o.HandshakeTimeout))
	br := proxyReaders.Get().(*bufio.Reader)
	br.Reset(c)
	h, err := proxyproto.Read(br)
	if err != nil {
		br.Reset(nil)
		proxyReaders.Put(br)
		return nil, fmt.Errorf("reading PROXY header: %w", err)
	}
	pc := &proxiedConn{Conn: c, br: br}
	if br.Buffered() == 0 {
		pc.release()
	}
	if !h.Command.IsLocal() && h.TransportProtocol.IsStream() && !h.TransportProtocol.IsUnix() {
		src, _, ok := h.TCPAddrs()
		if !ok || !src.AddrPort().Addr().IsValid() {
			pc.release()
			return nil, errProxyPeer
		}
		pc.remote = src
	}
	return pc, nil
}

// proxiedConn is a client connection that arrived through a load balancer
// speaking the PROXY protocol: RemoteAddr is the client the header named
// (or the socket's peer for LOCAL/UNKNOWN headers), and Read first
// returns the bytes the header reader took past the header.
type proxiedConn struct {
	net.Conn
	br     *bufio.Reader // bytes read past the header; nil once drained
	remote net.Addr      // the carried client address; nil = the socket's
}

// Read returns the bytes buffered past the header, then reads on from the
// socket. Like net.Conn's, it must not be called concurrently.
func (c *proxiedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.release()
	}
	return c.Conn.Read(p)
}

// release returns the header reader to its pool.
func (c *proxiedConn) release() {
	if c.br != nil {
		c.br.Reset(nil)
		proxyReaders.Put(c.br)
		c.br = nil
	}
}

// RemoteAddr returns the client address from the PROXY header, or the
// socket's peer when the header carried none (LOCAL, UNKNOWN).
func (c *proxiedConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// CloseWrite half-closes the underlying TCP connection, for tunnels.
func (c *proxiedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
