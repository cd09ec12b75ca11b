package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/aralez-go/aralez/balancer"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// DefaultDetectTimeout bounds Detect when it is given no timeout.
const DefaultDetectTimeout = 2 * time.Second

// userAgent is sent with every probe so that backends can tell them
// apart in their logs.
const userAgent = "aralez-health-check"

// dialError marks a failure to open a TCP connection: the backend is
// unreachable, whatever its protocol.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dialing: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// probeConn is a connection of a probe or of detection.
type probeConn struct {
	conn net.Conn
	br   *bufio.Reader
	stop func() bool // unregisters the context watcher
}

func (pc *probeConn) Close() {
	if pc == nil {
		return
	}
	pc.stop()
	pc.conn.Close()
}

// PROXY protocol headers a probe opens with when its backend expects
// one (Backend.ProxyHeader, a route's send_proxy_protocol): the
// connection is the proxy's own, so v2 says LOCAL and v1 UNKNOWN, and the
// backend uses the connection's real addresses (HAProxy's
// proxy-protocol.txt, sections 2.1 and 2.2).
var (
	proxyV1Unknown = []byte("PROXY UNKNOWN\r\n")
	proxyV2Local   = []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
)

// localHeader returns the header for a backend expecting PROXY protocol
// version v, or nil for none.
func localHeader(v uint8) []byte {
	switch v {
	case 1:
		return proxyV1Unknown
	case 2:
		return proxyV2Local
	}
	return nil
}

// dial opens a TCP connection to addr bound to ctx and writes hdr (a
// PROXY header, or nil) first: the context's deadline becomes the
// connection's, and cancelling it unblocks reads.
func dial(ctx context.Context, addr string, hdr []byte) (*probeConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{err}
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if len(hdr) > 0 {
		if _, err := c.Write(hdr); err != nil {
			c.Close()
			return nil, &dialError{err}
		}
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return &probeConn{conn: c, stop: stop}, nil
}

// serverNameOf returns host without its port when it is a DNS name, and
// "" when it is an IP address or empty (no SNI is sent for those, RFC
// 6066 section 3).
func serverNameOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" || net.ParseIP(host) != nil {
		return ""
	}
	return host
}

// Detect finds the protocol a backend at addr (host:port) speaks, as
// Aralez's "SSL proxy: auto" does. It first tries a TLS handshake with
// SNI serverName (none when empty or an IP address) and ALPN "h2",
// "http/1.1", accepting any certificate (self-signed upstreams are
// common): success gives ProtoTLS plus ProtoH2 or ProtoHTTP1. Otherwise
// it opens a second connection, sends the HTTP/2 client preface and a
// SETTINGS frame, and reads the reply: a SETTINGS frame gives ProtoH2C,
// anything else (an HTTP/1 error response, a close, silence) gives
// ProtoHTTP1. The whole detection is bounded by timeout (zero means
// DefaultDetectTimeout); the TLS attempt gets at most half of it.
//
// Detect returns an error, with ProtoUnknown, when addr cannot be
// dialed or when the backend rejects the TLS handshake with an alert
// (it speaks TLS, but not with us).
func Detect(ctx context.Context, addr, serverName string, timeout time.Duration) (balancer.Proto, error) {
	return detectWith(ctx, addr, serverName, nil, timeout)
}

// DetectBackend is Detect for b: each connection opens with a LOCAL (v2)
// or UNKNOWN (v1) PROXY protocol header when b expects one
// (Backend.ProxyHeader).
func DetectBackend(ctx context.Context, b *balancer.Backend, serverName string, timeout time.Duration) (balancer.Proto, error) {
	return detectWith(ctx, b.Addr(), serverName, localHeader(b.ProxyHeader()), timeout)
}

func detectWith(ctx context.Context, addr, serverName string, hdr []byte, timeout time.Duration) (balancer.Proto, error) {
	if timeout <= 0 {
		timeout = DefaultDetectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return detect(ctx, addr, serverName, hdr, timeout)
}

// detect is Detect within ctx, with each connection opening with hdr
// (a PROXY header, or nil). It closes the connections it opens.
func detect(ctx context.Context, addr, serverName string, hdr []byte, timeout time.Duration) (balancer.Proto, error) {
	pc, err := dial(ctx, addr, hdr)
	if err != nil {
		return balancer.ProtoUnknown, err
	}
	tc := tls.Client(pc.conn, &tls.Config{
		ServerName:         serverName,
		NextProtos:         []string{"h2", "http/1.1"},
		InsecureSkipVerify: true, // Verified separately when asked, see verifyPeer.
	})
	hctx, hcancel := context.WithTimeout(ctx, timeout/2)
	err = tc.HandshakeContext(hctx)
	hcancel()
	pc.Close()
	if err == nil {
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			return balancer.ProtoTLS | balancer.ProtoH2, nil
		}
		return balancer.ProtoTLS | balancer.ProtoHTTP1, nil
	}
	// crypto/tls reports an alert received from the peer as a
	// *net.OpError with Op "remote error".
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" {
		return balancer.ProtoUnknown, fmt.Errorf("tls handshake: %w", err)
	}
	if ctx.Err() != nil {
		return balancer.ProtoUnknown, ctx.Err()
	}

	// Not TLS: try HTTP/2 prior knowledge (RFC 9113 section 3.3).
	pc, err = dial(ctx, addr, hdr)
	if err != nil {
		return balancer.ProtoUnknown, err
	}
	defer pc.Close()
	pc.br = bufio.NewReader(pc.conn)
	fr := http2.NewFramer(pc.conn, pc.br)
	if _, err := io.WriteString(pc.conn, http2.ClientPreface); err != nil {
		return balancer.ProtoHTTP1, nil
	}
	if err := fr.WriteSettings(); err != nil {
		return balancer.ProtoHTTP1, nil
	}
	if isSettingsHeader(pc.br) {
		return balancer.ProtoH2C, nil
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return balancer.ProtoUnknown, ctx.Err()
	}
	return balancer.ProtoHTTP1, nil
}

// isSettingsHeader peeks at the next 9 bytes and reports whether they
// are the header of a SETTINGS frame (type 0x4, no ACK, stream 0,
// length a multiple of 6). The bytes stay in br for the Framer.
func isSettingsHeader(br *bufio.Reader) bool {
	h, err := br.Peek(9)
	if err != nil {
		return false
	}
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ, flags := h[3], h[4]
	stream := uint32(h[5]&0x7f)<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])
	return typ == byte(http2.FrameSettings) && flags&byte(http2.FlagSettingsAck) == 0 &&
		stream == 0 && length%6 == 0 && length <= 16384
}

// errVerify marks certificate verification failures: the protocol is
// right, the certificate is not, so detecting again would not help.
var errVerify = errors.New("verifying upstream certificate")

// verifyPeer checks the certificate chain of a TLS connection against
// roots (nil means the system roots) for serverName, or for the host of
// addr when serverName is empty.
func verifyPeer(conn net.Conn, serverName, addr string, roots *x509.CertPool) error {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return fmt.Errorf("%w: none sent", errVerify)
	}
	name := serverName
	if name == "" {
		name, _, _ = net.SplitHostPort(addr)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	if err != nil {
		return fmt.Errorf("%w: %w", errVerify, err)
	}
	return nil
}

// probeRequest is what one probe sends.
type probeRequest struct {
	method, scheme, host, path string
}

// probeHTTP1 sends one HTTP/1.1 request on pc and returns the status.
func probeHTTP1(pc *probeConn, r probeRequest) (int, error) {
	var b bytes.Buffer
	b.WriteString(r.method)
	b.WriteByte(' ')
	b.WriteString(r.path)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(r.host)
	b.WriteString("\r\nUser-Agent: " + userAgent + "\r\nConnection: close\r\n")
	if r.method == http.MethodPost {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("\r\n")
	if _, err := pc.conn.Write(b.Bytes()); err != nil {
		return 0, fmt.Errorf("writing request: %w", err)
	}
	if pc.br == nil {
		pc.br = bufio.NewReaderSize(pc.conn, 1024)
	}
	for {
		st, err := readStatus(pc.br)
		if err != nil {
			return 0, fmt.Errorf("reading response: %w", err)
		}
		if st >= 200 || st == http.StatusSwitchingProtocols {
			return st, nil
		}
		// 1xx: its header block ends with an empty line; the final
		// response follows (RFC 9110 section 15.2).
		if err := skipHeaders(pc.br); err != nil {
			return 0, fmt.Errorf("reading response: %w", err)
		}
	}
}

// errMalformed is returned for a reply that is not an HTTP/1 response.
var errMalformed = errors.New("malformed HTTP/1 status line")

// readStatus reads an HTTP/1 status line ("HTTP/1.1 200 OK") and returns
// its code. Only the status matters to a probe: headers and body are
// not read.
func readStatus(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.x NNN" at least.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, errMalformed
	}
	code := line[9:12]
	st := 0
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, errMalformed
		}
		st = st*10 + int(c-'0')
	}
	if st < 100 || len(line) > 12 && line[12] != ' ' && line[12] != '\r' && line[12] != '\n' {
		return 0, errMalformed
	}
	return st, nil
}

// skipHeaders reads up to and including the empty line that ends a
// header block.
func skipHeaders(br *bufio.Reader) error {
	cont := false // the slice continues a line longer than the buffer
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			cont = true
			continue
		}
		if err != nil {
			return err
		}
		if !cont && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			return nil
		}
		cont = false
	}
}

// probeH2 sends one HTTP/2 request on stream 1 of pc and returns the
// status of the response headers.
func probeH2(pc *probeConn, r probeRequest) (int, error) {
	if pc.br == nil {
		pc.br = bufio.NewReader(pc.conn)
	}
	fr := http2.NewFramer(pc.conn, pc.br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(pc.conn, http2.ClientPreface); err != nil {
		return 0, fmt.Errorf("writing preface: %w", err)
	}
	if err := fr.WriteSettings(); err != nil {
		return 0, fmt.Errorf("writing settings: %w", err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [...]hpack.HeaderField{
		{Name: ":method", Value: r.method},
		{Name: ":scheme", Value: r.scheme},
		{Name: ":authority", Value: r.host},
		{Name: ":path", Value: r.path},
		{Name: "user-agent", Value: userAgent},
	} {
		enc.WriteField(f)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true,
	}); err != nil {
		return 0, fmt.Errorf("writing headers: %w", err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0, fmt.Errorf("reading frame: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					return 0, fmt.Errorf("writing settings ack: %w", err)
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			return 0, fmt.Errorf("server sent GOAWAY %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return 0, fmt.Errorf("server reset the stream: %v", f.ErrCode)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			st, err := strconv.Atoi(f.PseudoValue("status"))
			if err != nil {
				return 0, fmt.Errorf("bad :status %q", f.PseudoValue("status"))
			}
			if st >= 100 && st < 200 {
				continue // informational; the final headers follow
			}
			fr.WriteGoAway(0, http2.ErrCodeNo, nil) // polite close; errors do not matter now
			return st, nil
		}
	}
}

// probeOn sends the probe over pc with the protocol p.
func probeOn(pc *probeConn, p balancer.Proto, r probeRequest) (int, error) {
	if p&(balancer.ProtoH2|balancer.ProtoH2C) != 0 {
		return probeH2(pc, r)
	}
	return probeHTTP1(pc, r)
}

// dialProto opens a connection for protocol p: plain TCP, or TLS with
// ALPN "h2" and "http/1.1". For TLS it returns the protocol the
// handshake negotiated, which may differ from p: ALPN is detection for
// free on every probe.
func dialProto(ctx context.Context, addr, serverName string, hdr []byte, p balancer.Proto) (*probeConn, balancer.Proto, error) {
	pc, err := dial(ctx, addr, hdr)
	if err != nil {
		return nil, p, err
	}
	if p&balancer.ProtoTLS == 0 {
		return pc, p, nil
	}
	tc := tls.Client(pc.conn, &tls.Config{
		ServerName:         serverName,
		NextProtos:         []string{"h2", "http/1.1"},
		InsecureSkipVerify: true, // Verified separately when asked, see verifyPeer.
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		pc.Close()
		return nil, p, fmt.Errorf("tls handshake: %w", err)
	}
	pc.conn = tc
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		return pc, balancer.ProtoTLS | balancer.ProtoH2, nil
	}
	return pc, balancer.ProtoTLS | balancer.ProtoHTTP1, nil
}
