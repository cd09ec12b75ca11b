package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/aralez-go/aralez/proxy/pipeline"
)

// This file is a check below fasthttp's parser on the HTTP/1.1 front
// end's client connections: it follows the framing of the requests as
// their bytes are read (RFC 9112 §2.2, §6.3, §7.1) and
//
//   - refuses a bare LF or a bare CR anywhere in a request head or a
//     trailer section (RFC 9112 §2.2): the bytes before it are delivered
//     and the read then fails, so fasthttp answers 400 and closes at once
//     (fasthttp accepts a bare LF as a line end, and waits forever for a
//     head that only bare LFs end);
//   - refuses a chunk-size line longer than maxChunkLineBytes, chunk
//     extensions included (RFC 9112 §7.1.1), which fasthttp reads
//     whatever its length;
//   - sees the chunk sizes a chunked body declares, so that a body limit
//     holds at the first chunk-size line that goes over it, not only once
//     that many bytes have arrived (a 4 GiB chunk size with a few bytes
//     behind it would otherwise hold the request until a timeout).
//
// It models only what fasthttp accepts: a head that it cannot follow (a
// folded line, an unknown transfer coding, an overlong Content-Length
// line) makes it stop checking that connection; fasthttp closes such a
// connection anyway, or the check is lost for the rest of it, never the
// request.

// maxChunkLineBytes bounds a chunk-size line of a request body: the
// chunk size and its chunk extensions, before the line's CRLF. RFC 9112
// §7.1.1 sets no limit on extensions but lets a recipient bound them;
// a longer line is refused (400, connection closed), as fasthttp alone
// would read any length.
const maxChunkLineBytes = 4096

// Errors of the framing check, seen by fasthttp as read errors.
var (
	errBareLF = errors.New("proxy: bare LF in a request head")
	errBareCR = errors.New("proxy: bare CR in a request head")
	// errChunkLineTooLong refuses a chunk-size line over
	// maxChunkLineBytes.
	errChunkLineTooLong = errors.New("proxy: chunk-size line too long")
	// errChunkOverLimit wraps pipeline.ErrBodyTooLarge, so that the
	// attempt reading the body answers 413.
	errChunkOverLimit = fmt.Errorf("%w: a chunk size goes over the limit", pipeline.ErrBodyTooLarge)
)

// The states of a framer.
const (
	frHead      = iota // a request head (or the empty lines before one)
	frBody             // a body of known length
	frChunkSize        // a chunk-size line
	frChunkData        // chunk data
	frChunkCRLF        // the CRLF after chunk data
	frTrailer          // the trailer section of a chunked body
	frPassive          // not checking any more
)

// framer follows the request framing of one connection. It is used by
// the connection's reads only, which fasthttp makes from one goroutine.
type framer struct {
	state uint8
	err   error // returned by the next read
	// tunnel is set by stop: the connection carries a tunnel now. It is
	// read by the connection's writer, which may run beside its reader.
	tunnel atomic.Bool

	// The current head or trailer line.
	line    [40]byte // its first bytes
	lineLen int      // its length so far, without the LF
	lines   int      // lines of the head so far, the request line included
	pendCR  bool     // the line so far ends with CR
	blank   bool     // empty lines read before this head's request line

	// The current head.
	clen    int64 // Content-Length, -1 = none
	chunked bool
	odd     bool // framing not modelled: stop after this head

	// Bodies.
	seq      uint64 // heads ended so far: the request whose body is read
	left     int64  // bytes left of the body, a chunk, or its CRLF
	size     int64  // chunk size being read
	inExt    bool   // in a chunk extension
	sizeLen  int    // bytes of the chunk-size line so far, without CR and LF
	declared int64  // chunk sizes declared so far by request seq
	limit    int64  // body limit of request seq; 0 = none
}

func (f *framer) startHead() {
	f.state, f.lines, f.clen, f.chunked, f.odd, f.blank = frHead, 0, -1, false, false, false
	f.startLine()
}

func (f *framer) startLine() { f.lineLen, f.pendCR = 0, false }

// betweenRequests reports whether every byte read so far belongs to
// requests read whole: no head, body or chunk is under way and nothing
// was refused.
func (f *framer) betweenRequests() bool {
	return f.err == nil && f.state == frHead && f.lines == 0 && f.lineLen == 0
}

// scan follows b, the next bytes read. On a framing error it returns the
// number of bytes of b before the offending one and the error.
func (f *framer) scan(b []byte) (int, error) {
	for i := 0; i < len(b); {
		switch f.state {
		case frBody, frChunkData, frChunkCRLF:
			k := int(min(int64(len(b)-i), f.left))
			f.left -= int64(k)
			i += k
			if f.left > 0 {
				break
			}
			switch f.state {
			case frBody:
				f.startHead()
			case frChunkData:
				f.state, f.left = frChunkCRLF, 2
			default:
				f.state, f.size, f.inExt, f.sizeLen = frChunkSize, 0, false, 0
			}
		case frChunkSize:
			c := b[i]
			i++
			if c != '\n' && c != '\r' {
				if f.sizeLen++; f.sizeLen > maxChunkLineBytes {
					return i - 1, errChunkLineTooLong
				}
			}
			switch {
			case c == '\n':
				f.sizeLen = 0
				if f.size == 0 {
					f.state = frTrailer
					f.startLine()
					break
				}
				f.declared = satAdd(f.declared, f.size)
				f.state, f.left = frChunkData, f.size
				if f.limit > 0 && f.declared > f.limit {
					return i, errChunkOverLimit
				}
			case f.inExt || c == '\r':
			case c == ';' || c == ' ' || c == '\t':
				f.inExt = true
			case isHexDigit(c):
				if f.size > math.MaxInt64>>4 {
					f.size = math.MaxInt64
				} else {
					f.size = f.size<<4 | int64(hexVal(c))
				}
			}
		case frHead, frTrailer:
			rest := b[i:]
			j := bytes.IndexByte(rest, '\n')
			seg := rest
			if j >= 0 {
				seg = rest[:j]
			}
			if len(seg) > 0 && f.pendCR {
				return i, errBareCR // a CR that no LF followed
			}
			if r := bytes.IndexByte(seg, '\r'); r >= 0 && r < len(seg)-1 {
				return i + r + 1, errBareCR // the CR is delivered, as when a read ends on it
			}
			if j >= 0 && f.lineLen == 0 {
				// The whole line is in b: no copy.
				if len(seg) == 0 || seg[len(seg)-1] != '\r' {
					return i + j, errBareLF
				}
				i += j + 1
				f.endLine(seg[:len(seg)-1], len(seg)-1)
			} else {
				if f.lineLen < len(f.line) {
					copy(f.line[f.lineLen:], seg)
				}
				f.lineLen += len(seg)
				if len(seg) > 0 {
					f.pendCR = seg[len(seg)-1] == '\r'
				}
				if j < 0 {
					i = len(b)
					break
				}
				if !f.pendCR {
					return i + j, errBareLF
				}
				i += j + 1
				n := f.lineLen - 1 // without the CR
				f.endLine(f.line[:min(n, len(f.line))], n)
			}
			if f.state == frPassive {
				return len(b), nil
			}
		default: // frPassive
			return len(b), nil
		}
	}
	return len(b), nil
}

// endLine acts on a head or trailer line that ended with CRLF: n bytes
// long without the CRLF, of which kept holds the first (all of them, or
// at least as many as f.line holds).
func (f *framer) endLine(kept []byte, n int) {
	f.startLine()
	if n == 0 { // an empty line
		switch {
		case f.state == frTrailer:
			f.startHead()
		case f.lines == 0:
			// Empty lines before a request line are ignored (RFC 9112
			// §2.2), as fasthttp does.
			f.blank = true
		case f.odd:
			f.state = frPassive
		case f.chunked:
			f.seq++
			f.state, f.size, f.inExt, f.sizeLen, f.declared, f.limit = frChunkSize, 0, false, 0, 0, 0
		case f.clen > 0:
			f.seq++
			f.state, f.left = frBody, f.clen
		default:
			f.seq++
			f.startHead()
		}
		return
	}
	if f.state == frTrailer {
		return
	}
	f.lines++
	if f.lines == 1 {
		return // the request line
	}
	switch kept[0] {
	case ' ', '\t':
		f.odd = true // obs-fold (RFC 9112 §5.2): fasthttp refuses it
		return
	case 'c', 'C', 't', 'T':
	default:
		return // not Content-Length or Transfer-Encoding
	}
	name, value, ok := bytes.Cut(kept, []byte{':'})
	if !ok {
		return // fasthttp refuses it, or a long name of no interest
	}
	switch {
	case equalFoldASCII(name, "content-length"):
		if n > len(f.line) || f.clen >= 0 {
			f.odd = true
			return
		}
		v, ok := parseDecimal(bytes.Trim(value, " \t"))
		if !ok {
			f.odd = true
			return
		}
		f.clen = v
	case equalFoldASCII(name, "transfer-encoding"):
		switch v := bytes.Trim(value, " \t"); {
		case n > len(f.line) || f.chunked:
			f.odd = true
		case equalFoldASCII(v, "chunked"):
			f.chunked = true
		case !equalFoldASCII(v, "identity"):
			f.odd = true
		}
	}
}

// setBodyLimit sets the body limit of request number seq (fasthttp's
// ConnRequestNum) and reports whether the chunk sizes it has declared so
// far already go over it. It does nothing once the framer has moved past
// that request's body, which is then whole in fasthttp's buffer.
func (f *framer) setBodyLimit(seq uint64, limit int64) bool {
	if seq != f.seq || f.state < frChunkSize || f.state > frTrailer {
		return false
	}
	f.limit = limit
	return limit > 0 && f.declared > limit
}

// firstChunkLineBegun reports whether the first chunk-size line of
// request number seq (fasthttp's ConnRequestNum) has begun arriving and
// is not yet read whole, or was refused: reading on to its end before
// anything is forwarded keeps a refused line from reaching a backend,
// and costs no wait on a client that sends its body only later.
func (f *framer) firstChunkLineBegun(seq uint64) bool {
	return seq == f.seq && f.state == frChunkSize && f.declared == 0 && (f.sizeLen > 0 || f.err != nil)
}

// stop ends the check: the connection carries something else now (a
// WebSocket tunnel after 101).
func (f *framer) stop() {
	f.state = frPassive
	f.tunnel.Store(true)
}

// framingConn is a client connection of the HTTP/1.1 front end with the
// framing check of this file on its reads. A Read after a Write (the
// next request after a response) yields first (yieldBeforeReply),
// until the connection turns into a tunnel (framer.stop). Reads and
// Writes run on the serving goroutine, or on two goroutines in a tunnel;
// deadlines are set by the serving goroutine, or by the tunnel's, but
// for cutRead, which any goroutine may call.
type framingConn struct {
	net.Conn
	f     framer
	wrote atomic.Bool // a Write since the last Read, before the tunnel
	// cut is set by cutRead, from any goroutine, and cleared by
	// resumeRead on the serving goroutine.
	cut atomic.Bool
	// rd and wd are the read and write deadlines in force: fasthttp asks
	// for new ones on every request; they are coarse (deadline.go) until
	// the tunnel, which sets its own from two goroutines.
	rd, wd coarseDeadline
	// peer is the client's address (clientAddr of RemoteAddr), once
	// peerKnown; it is read by the serving goroutine only.
	peer      netip.Addr
	peerKnown bool
}

// peerAddr returns the client's address, IPv4 unmapped: RemoteAddr's,
// which is the address a PROXY header gave when there was one. It is
// worked out on the first call (converting a *net.TCPAddr costs a
// measurable share of a request with many connections open: cache
// misses).
func (c *framingConn) peerAddr() netip.Addr {
	if !c.peerKnown {
		c.peer, c.peerKnown = clientAddr(c.RemoteAddr()), true
	}
	return c.peer
}

// newFramingConn wraps c, keeping it recognisable as TLS for fasthttp.
func newFramingConn(c net.Conn) net.Conn {
	if _, ok := c.(*tls.Conn); ok {
		tc := &framingTLSConn{}
		tc.Conn = c
		tc.f.startHead()
		return tc
	}
	fc := &framingConn{Conn: c}
	fc.f.startHead()
	return fc
}

func (c *framingConn) Read(p []byte) (int, error) {
	if err := c.f.err; err != nil {
		return 0, err
	}
	if c.wrote.Load() {
		c.wrote.Store(false)
		yieldBeforeReply()
	}
	n, err := c.Conn.Read(p)
	if err != nil && n == 0 && c.cut.Load() {
		return 0, errReadCut
	}
	if n > 0 && c.f.state != frPassive {
		if k, ferr := c.f.scan(p[:n]); ferr != nil {
			c.f.err = ferr
			if k == 0 {
				return 0, ferr
			}
			return k, nil
		}
	}
	return n, err
}

func (c *framingConn) Write(p []byte) (int, error) {
	if !c.f.tunnel.Load() {
		c.wrote.Store(true)
	}
	return c.Conn.Write(p)
}

// errReadCut is a read of the client's connection cut short by cutRead.
var errReadCut = errors.New("proxy: read of the client connection cut short: the upstream exchange has ended")

// cutRead makes the read under way, or the next one, fail with
// errReadCut: the request body it reads is no longer wanted upstream
// (upstream_feed.go). The read deadline in force is left as it was
// asked for, for resumeRead. It is safe for concurrent use.
func (c *framingConn) cutRead() {
	c.cut.Store(true)
	_ = c.Conn.SetReadDeadline(aLongTimeAgo)
}

// resumeRead undoes cutRead: reads go on under the read deadline in
// force. It is called by the goroutine serving the connection, after
// the read that was cut (or that completed before the cut).
func (c *framingConn) resumeRead() {
	c.cut.Store(false)
	_ = c.putReadDeadlineBack()
}

// putReadDeadlineBack sets the read deadline in force (c.rd) on the
// socket again, after a cut (cutRead, a sweep of the parker); an unknown
// one becomes none.
func (c *framingConn) putReadDeadlineBack() error {
	at := time.Time{}
	if c.rd.at > 0 {
		at = time.Unix(0, c.rd.at)
	}
	return c.Conn.SetReadDeadline(at)
}

// SetReadDeadline sets the read deadline, coarsely before a tunnel. A
// deadline asked for when no read can come under it is not set:
// readsDone.
func (c *framingConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && c.readsDone() {
		return nil
	}
	return c.setCoarse(&c.rd, t, c.Conn.SetReadDeadline)
}

// readsDone reports whether the request being served needs no more reads
// and the next read, if any, is preceded by a deadline of its own: every
// byte read so far belongs to requests read whole (the framer follows
// them; not even an empty line of the next one has come: fasthttp skips
// it and reads the rest of that head under this deadline), at least one
// of them has been read, and nothing was written since
// the last read (after a response, fasthttp asks for the idle deadline of
// the wait for the next request, which must be set).
//
// fasthttp asks for its header deadline after the first byte of each
// request arrives, and mostly the whole request came with that byte; the
// deadline in force is then the idle one, later, and setting the header
// deadline and the idle one again after the response would cost two
// timer moves and six clock reads per request (bench/RESULTS.md, issue
// 16). Every read fasthttp makes while serving a request is preceded by
// the idle or header deadline it asks for at the top of its loop, or
// happens while the framer is inside a head or body (not readsDone), so
// no read goes without the deadline it would have had.
func (c *framingConn) readsDone() bool {
	return c.f.seq > 0 && c.f.betweenRequests() && !c.f.blank && !c.wrote.Load() && !c.f.tunnel.Load()
}

// SetWriteDeadline sets the write deadline, coarsely before a tunnel.
func (c *framingConn) SetWriteDeadline(t time.Time) error {
	return c.setCoarse(&c.wd, t, c.Conn.SetWriteDeadline)
}

// setCoarse asks for deadline t on one direction (d in force, set sets
// it on the socket): coarsely (deadline.go), as it is in a tunnel.
func (c *framingConn) setCoarse(d *coarseDeadline, t time.Time, set func(time.Time) error) error {
	if c.f.tunnel.Load() {
		return set(t)
	}
	if at, ok := d.next(t, time.Now); ok {
		return set(at)
	}
	return nil
}

// SetDeadline sets both deadlines as they are.
func (c *framingConn) SetDeadline(t time.Time) error {
	if !c.f.tunnel.Load() {
		c.rd.forget()
		c.wd.forget()
	}
	return c.Conn.SetDeadline(t)
}

// Close closes the connection. When the proxy closes it in the middle of
// a request (a refused head or body: bytes of the client may be unread),
// it lingers: the write side is shut after the answer, and what the client
// still sends is read and dropped for up to lingerTime (lingerBytes)
// before the socket is closed, since closing a socket with unread bytes
// resets the connection, and a reset can destroy the answer before the
// client reads it (RFC 9112 §9.6; nginx's lingering_close). Between
// requests, and for tunnels, it closes at once.
func (c *framingConn) Close() error {
	if c.f.tunnel.Load() || c.f.betweenRequests() {
		return c.Conn.Close()
	}
	return lingerClose(c.Conn)
}

// lingerTime and lingerBytes bound how long, and how much of what a
// client still sends, a lingering close reads before closing.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 1 << 20
)

// lingerClose shuts c's write side and closes it once the peer's bytes
// stop (EOF, lingerTime or lingerBytes), in a goroutine of its own; a
// connection that cannot be half-closed is closed at once.
func lingerClose(c net.Conn) error {
	if !shutWrite(c) {
		return c.Close()
	}
	go drainClose(c)
	return nil
}

// closeOrderly is lingerClose on the calling goroutine: the peer gets
// FIN, not a reset, and closeOrderly returns once c is closed.
func closeOrderly(c net.Conn) {
	if !shutWrite(c) {
		_ = c.Close()
		return
	}
	drainClose(c)
}

// shutWrite half-closes c (FIN) and reports whether it could.
func shutWrite(c net.Conn) bool {
	cw, ok := c.(interface{ CloseWrite() error })
	return ok && cw.CloseWrite() == nil
}

// drainClose reads and drops what the peer still sends, until EOF,
// lingerTime or lingerBytes, then closes c: closing a socket with unread
// bytes would reset the connection.
func drainClose(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c, lingerBytes)
	_ = c.Close()
}

// CloseWrite half-closes the connection when it can, for tunnels.
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *framingConn) framer() *framer { return &c.f }

// framingTLSConn is a framingConn over TLS; it has the methods fasthttp
// looks for to report the connection as TLS.
type framingTLSConn struct{ framingConn }

// Handshake runs the TLS handshake if it has not run yet.
func (c *framingTLSConn) Handshake() error { return c.Conn.(*tls.Conn).Handshake() }

// ConnectionState returns the TLS connection state.
func (c *framingTLSConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(*tls.Conn).ConnectionState()
}

// framerOf returns the framing check of a front-end connection, or nil.
func framerOf(c net.Conn) *framer {
	if fc, ok := c.(interface{ framer() *framer }); ok {
		return fc.framer()
	}
	return nil
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexVal(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// parseDecimal parses a non-empty run of at most 18 decimal digits.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// equalFoldASCII reports whether b equals the lower-case ASCII s,
// ignoring case.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
