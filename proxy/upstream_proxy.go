package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

// This file is the outbound PROXY protocol (a route's
// send_proxy_protocol, HAProxy's send-proxy): every upstream connection
// of such a route opens with a header naming the client and carries that
// one client's request only. Those routes go through the net/http
// HTTP/1.1 transport with keep-alives off, whose dialer writes the header
// taken from the request's context; WebSocket tunnels write it after
// their own dial. Health probes and protocol detection send a LOCAL (v2)
// or UNKNOWN (v1) header instead (balancer/health).

// peerKey is the context key of the client connection's addresses.
type peerKey struct{}

// peer is the client connection a request came on: the client's address
// (as the front end sees it, so the PROXY protocol address when one came
// in) and the listener address it reached.
type peer struct{ src, dst net.Addr }

// withPeer returns ctx carrying the addresses of the client connection.
func withPeer(ctx context.Context, src, dst net.Addr) context.Context {
	return context.WithValue(ctx, peerKey{}, peer{src, dst})
}

// proxyHeader returns the PROXY protocol header of the given version for
// a connection from src to dst: PROXY with both addresses when they are
// TCP addresses, else a LOCAL (v2) or UNKNOWN (v1) header.
func proxyHeader(version uint8, src, dst net.Addr) ([]byte, error) {
	s, ok1 := src.(*net.TCPAddr)
	d, ok2 := dst.(*net.TCPAddr)
	h := &proxyproto.Header{Version: version, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	if ok1 && ok2 && s != nil && d != nil {
		h = proxyproto.HeaderProxyFromAddrs(version, s, d)
	}
	b, err := h.Format()
	if err != nil {
		return nil, fmt.Errorf("proxy: building a PROXY v%d header: %w", version, err)
	}
	return b, nil
}

// tcpAddr parses a net/http RemoteAddr ("ip:port") into a *net.TCPAddr,
// or returns nil.
func tcpAddr(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// writeProxyHeader writes the header of n's version for the client in
// ctx (LOCAL/UNKNOWN without one) on c, a new upstream connection.
func (n *netUpstream) writeProxyHeader(ctx context.Context, c net.Conn) error {
	p, _ := ctx.Value(peerKey{}).(peer)
	return n.writeProxyHeaderFor(c, p.src, p.dst)
}

func (n *netUpstream) writeProxyHeaderFor(c net.Conn, src, dst net.Addr) error {
	b, err := proxyHeader(n.proxyProto, src, dst)
	if err == nil {
		_, err = c.Write(b)
	}
	return err
}

// dialProxied is the DialContext of a send_proxy_protocol route's
// transport: TCP, then the PROXY header, then the transport's own TLS
// when the backend speaks it.
func (n *netUpstream) dialProxied(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := n.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := n.writeProxyHeader(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return &earlyConn{Conn: c}, nil
}
