package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"os"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

// This file is the HTTP/1.1 upstream transport of the fasthttp front end:
// one exchange on a pooled fasthttp connection, with streamed bodies.

// roundTrip sends req to the backend behind hc and reads the response
// headers into resp. A response body of known length up to bufLimit is
// read whole and the connection goes back to the pool at once; a larger,
// chunked or close-delimited body is attached to resp as a stream that
// gives the connection back when the front end closes it after relaying.
// A streamed body holds lease's in-flight count and releases it on
// Close. A pooled connection idle for idleCheckAfter or more is checked
// before the request is written to it (upstreamConn.alive): one the
// upstream closed while it was idle is dropped for the next. Errors,
// wrapped for pipeline.Classify: a dial error, a timeout,
// pipeline.ErrPoolFull, pipeline.ErrStale (after which the backend's idle
// connections are closed: one dead pooled connection usually means the
// upstream restarted and closed them all), pipeline.ErrClientBody, or
// another I/O error; on error the connection is closed.
func roundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, bufLimit int, lease *balancer.Backend) error {
	// A message without Content-Type goes on without one, both ways
	// (fasthttp would add application/octet-stream to a request body
	// and text/plain to a response; RFC 9110 §8.3).
	req.Header.SetNoDefaultContentType(true)
	resp.Header.SetNoDefaultContentType(true)
	cc, err := hc.AcquireConn(0, false)
	for err == nil && !reusable(cc.Conn(), cc.LastUseTime()) {
		// The upstream closed this idle connection: drop it before any
		// byte is written and take the next (or dial), whatever the
		// method. Every turn removes a connection from the pool.
		hc.CloseConn(cc)
		cc, err = hc.AcquireConn(0, false)
	}
	if err != nil {
		return fastErr(err)
	}
	// Deadlines: the connection sets one per Read and Write (upstreamConn).
	conn := cc.Conn()
	reused := !cc.LastUseTime().IsZero()
	streamed := req.IsBodyStream() // Write may release the stream on error
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	var werr error
	if err != nil {
		if !upstreamReset(err) {
			hc.CloseConn(cc)
			return writeErr(hc, err, reused, streamed)
		}
		// The backend closed while the request was written: it may have
		// answered first (a 413 right after the head, RFC 9112 §9.6).
		// Its answer is relayed; without one the write error stands.
		werr = err
	}

	br := acquireUpstreamReader(hc, conn)
	resp.Header.DisableNormalizing()
	resp.Header.EnableNormalizing()
	err = readResponseHead(hc, &resp.Header, &br, conn)
	for err == nil && resp.StatusCode() >= 100 && resp.StatusCode() < 200 && resp.StatusCode() != 101 {
		err = readResponseHead(hc, &resp.Header, &br, conn) // interim responses (RFC 9110 §15.2) are consumed
	}
	if err != nil {
		releaseUpstreamReader(hc, br)
		hc.CloseConn(cc)
		if werr != nil {
			return writeErr(hc, werr, reused, streamed)
		}
		if reused && pipeline.IsReset(err) {
			hc.CloseIdleConnections()
			return fmt.Errorf("%w: %w", pipeline.ErrStale, err)
		}
		return fastErr(err)
	}
	closeConn := werr != nil || req.Header.ConnectionClose() || resp.Header.ConnectionClose()
	cl := resp.Header.ContentLength()
	if req.Header.IsHead() || noBody(resp.StatusCode()) {
		resp.SkipBody = true
		cl = 0
	}
	switch {
	case cl == 0:
		resp.ResetBody()
	case cl > 0 && cl <= bufLimit:
		if err = resp.ReadBody(br, cl); err != nil {
			releaseUpstreamReader(hc, br)
			hc.CloseConn(cc)
			return fastErr(err)
		}
	default:
		// Stream: the connection stays with the body until Close.
		us := newUpstreamStream(cc, hc.ReleaseConn, hc.CloseConn)
		us.hc, us.br, us.closeConn, us.lease = hc, br, closeConn, lease
		switch cl {
		case -1: // chunked, RFC 9112 §7.1
			us.r = httputil.NewChunkedReader(br)
			us.chunked = true
		case -2: // close-delimited, RFC 9112 §6.3 item 8
			us.r = br
			us.closeConn = true
			cl = -1
		default:
			us.lr.R, us.lr.N = br, int64(cl)
			us.r = &us.lr
		}
		resp.SetBodyStream(us, cl)
		return nil
	}
	releaseUpstreamReader(hc, br)
	if closeConn {
		hc.CloseConn(cc)
	} else {
		hc.ReleaseConn(cc)
	}
	return nil
}

// upstreamReadBytes is the read buffer an upstream response is read with
// first. Most response heads fit in it (nginx's proxy_buffer_size is one
// page too); one that does not moves to a reader of the backend's
// ReadBufferSize (max_header_bytes), the bytes already read carried over
// (readResponseHead). Each exchange holds its reader while it waits for
// the response, so with many requests in flight the small first buffer
// saves max_header_bytes less 4 KiB per request (bench/RESULTS.md,
// issue 16).
const upstreamReadBytes = 4096

// upstreamReaders pools the upstreamReadBytes readers of every backend.
var upstreamReaders sync.Pool

// acquireUpstreamReader returns a reader of conn for a response from
// hc's backend: a small one (upstreamReadBytes) when hc's ReadBufferSize
// is larger, else hc's own.
func acquireUpstreamReader(hc *fasthttp.HostClient, conn net.Conn) *bufio.Reader {
	if hc.ReadBufferSize <= upstreamReadBytes {
		return hc.AcquireReader(conn)
	}
	if v := upstreamReaders.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(conn)
		return br
	}
	return bufio.NewReaderSize(conn, upstreamReadBytes)
}

// releaseUpstreamReader gives back a reader acquireUpstreamReader or
// readResponseHead returned.
func releaseUpstreamReader(hc *fasthttp.HostClient, br *bufio.Reader) {
	if br.Size() == upstreamReadBytes && hc.ReadBufferSize > upstreamReadBytes {
		br.Reset(nil)
		upstreamReaders.Put(br)
		return
	}
	hc.ReleaseReader(br)
}

// readResponseHead reads a response head from *br into h. A head that
// does not fit a small reader is read again from a reader of hc's
// ReadBufferSize, which gets the bytes the small one holds first and then
// conn's; *br is then that reader, and the small one is given back. A
// head over ReadBufferSize is fasthttp's *ErrSmallBuffer, as before.
func readResponseHead(hc *fasthttp.HostClient, h *fasthttp.ResponseHeader, br **bufio.Reader, conn net.Conn) error {
	err := h.Read(*br)
	if err == nil || (*br).Size() >= hc.ReadBufferSize || !isSmallBuffer(err) {
		return err
	}
	held, _ := (*br).Peek((*br).Buffered())
	carry := append([]byte(nil), held...) // rare: a head over 4 KiB
	big := hc.AcquireReader(conn)
	big.Reset(io.MultiReader(bytes.NewReader(carry), conn))
	releaseUpstreamReader(hc, *br)
	*br = big
	return h.Read(big)
}

// isSmallBuffer reports whether err is fasthttp's *ErrSmallBuffer (a
// function of its own: errors.As's target escapes to the heap).
func isSmallBuffer(err error) bool {
	var small *fasthttp.ErrSmallBuffer
	return errors.As(err, &small)
}

// writeErr classifies an error that ended writing a request upstream:
// a reset on a reused connection is pipeline.ErrStale (and the backend's
// other idle connections are closed), a failure to read the client's
// streamed body is the client's (pipeline.ErrClientBody, or the body
// limit's own error), else fastErr.
func writeErr(hc *fasthttp.HostClient, err error, reused, streamed bool) error {
	if reused && pipeline.IsReset(err) && !streamed {
		hc.CloseIdleConnections()
		return fmt.Errorf("%w: %w", pipeline.ErrStale, err)
	}
	var op *net.OpError
	isOp := errors.As(err, &op)
	if streamed && (!isOp && !isTimeout(err) || isOp && op.Op == "read") {
		// Reading the client's streamed body failed: a malformed chunk
		// (not a network error), or a read of the client's connection
		// (the only reads while a request is written: the upstream's
		// are writes) that timed out or broke. The client's fault, never
		// the backend's (a slow client must not make a healthy backend
		// look failed to passive health checks).
		return fmt.Errorf("%w: %w", pipeline.ErrClientBody, err)
	}
	return fastErr(err)
}

// noBody reports whether a response with this status has no body
// (RFC 9110 §6.4.1).
func noBody(status int) bool {
	return status < 200 || status == 204 || status == 304
}

// isTimeout reports whether err is a timeout (then 504).
func isTimeout(err error) bool {
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) || pipeline.IsTimeout(err)
}

// fastErr translates fasthttp's errors for pipeline.Classify: a full
// pool (upstream_max_conns), a dial timeout and fasthttp's own timeout.
func fastErr(err error) error {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout):
		return fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fmt.Errorf("%w: %w", pipeline.ErrPoolFull, err)
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	return err
}

// upstreamStream relays a streamed upstream response body and returns the
// upstream connection to its pool (or closes it) when the front end
// closes the stream after writing the response. C is fasthttp's
// connection handle type, which is not exported.
type upstreamStream[C any] struct {
	cc        C
	release   func(C)
	close     func(C)
	hc        *fasthttp.HostClient
	br        *bufio.Reader
	r         io.Reader
	lr        io.LimitedReader
	closeConn bool
	chunked   bool
	eof       bool
	done      bool
	lease     *balancer.Backend // in-flight count given back on Close
}

func newUpstreamStream[C any](cc C, release, closeFn func(C)) *upstreamStream[C] {
	return &upstreamStream[C]{cc: cc, release: release, close: closeFn}
}

func (s *upstreamStream[C]) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF && !s.eof {
		switch {
		case s.r == io.Reader(&s.lr) && s.lr.N > 0:
			err = io.ErrUnexpectedEOF // the upstream closed early
		case s.chunked:
			// The chunked reader stops at the last chunk; the trailer
			// section and its final CRLF must be consumed before the
			// connection can carry another response (RFC 9112 §7.1.2).
			if terr := skipTrailers(s.br); terr != nil {
				return n, terr
			}
			s.eof = true
		default:
			s.eof = true
		}
	}
	return n, err
}

// Close gives the connection back: to the pool when the body was read to
// its end and the connection may be kept alive, else it is closed.
func (s *upstreamStream[C]) Close() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.lease != nil {
		s.lease.Release()
		s.lease = nil
	}
	releaseUpstreamReader(s.hc, s.br)
	if s.eof && !s.closeConn {
		s.release(s.cc)
	} else {
		s.close(s.cc)
	}
	return nil
}

// skipTrailers reads and drops a chunked body's trailer section up to and
// including the empty line that ends it.
func skipTrailers(br *bufio.Reader) error {
	for i := 0; i < 1000; i++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			return nil
		}
	}
	return errors.New("proxy: too many trailer fields")
}
