package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/aralez-go/aralez/proxy/pipeline"
)

// This file sends a streamed request body of the HTTP/1.1 front end (one
// over body_buffer_bytes, or chunked) through a net/http transport: to a
// backend that speaks only HTTP/2 (h2, h2c), or on a send_proxy_protocol
// route. The body is fasthttp's stream over the client's connection: only
// the goroutine serving the connection may read it, and only until the
// handler returns (fasthttp then drains what is left, reads the stream's
// state and reuses it). A net/http transport reads a request body on
// goroutines of its own, and may go on reading after RoundTrip has
// returned: an HTTP/2 backend can answer before the end of the upload
// (RFC 9113 §8.1), and the client may wait for that answer before it
// sends the rest.
//
// So the transport gets a feedBody, and the serving goroutine feeds it
// (sendFed): each of the transport's Reads hands its buffer to the serving
// goroutine, which fills it from the client's body, while RoundTrip runs
// on a goroutine of its own. The serving goroutine feeds until the body
// has ended, the transport is done with it (Close: net/http's HTTP/2
// transport closes it at once when the answer is final with a status
// over 299, or when the backend resets the stream after a complete
// answer), RoundTrip fails, or, once the body flows or the answer is in,
// the transport takes nothing for upstream_timeout (a backend that
// stopped reading: the bound of an HTTP/1.1 upstream's writes; the
// request is then cancelled, 504 before the answer). A read of the
// client's body under way then is cut short (framingConn.cutRead), so
// that a client waiting for the answer before it sends the rest is not
// waited on, and the answer says that the connection closes (it closes
// lingering, framing.go). Once the serving goroutine stops, every Read
// fails (never with EOF, so a body cut short never looks complete): the
// transport cannot touch the client's connection after the exchange.
// An answer of 1xx or 2xx leaves the body flowing (a backend may answer
// first and read after, RFC 9113 §8.1), and the response is relayed once
// the body is done. The HTTP/1.1 transport of send_proxy_protocol routes
// reads the body until it has sent it all or its connection fails.

// errFeedCut is the transport's read of a request body whose exchange has
// ended before the transport finished reading it. It is never an EOF: a
// body cut short must not look complete to the backend.
var errFeedCut = errors.New("proxy: request body cut short: the exchange with the client has ended")

// errFeedIdle ends a streamed request body that the transport did not
// read for upstream_timeout; it is a timeout (504 before the answer).
var errFeedIdle = fmt.Errorf("%w: the upstream took no more of the request body", os.ErrDeadlineExceeded)

// readCutter is a client connection whose read under way (or next read)
// can be cut short from another goroutine (framingConn).
type readCutter interface {
	// cutRead makes the read under way, or the next one, fail. Safe for
	// concurrent use.
	cutRead()
	// resumeRead undoes cutRead; it is called by the serving goroutine.
	resumeRead()
}

var (
	_ readCutter = (*framingConn)(nil)
	_ readCutter = (*framingTLSConn)(nil)
	_ readCutter = (*parkConn)(nil)
)

// feedRead is the result of one fill of a transport's buffer.
type feedRead struct {
	n   int
	err error
}

// feedBody is the request body a net/http transport reads, filled by the
// goroutine serving the client (sendFed). Read is called by the
// transport, one Read at a time; Close by any goroutine.
type feedBody struct {
	want chan []byte   // a Read's buffer, taken by the serving goroutine
	got  chan feedRead // what the serving goroutine put in it; 1 slot
	done chan struct{} // closed when the serving goroutine stops feeding
	// cutErr is what a Read gets once done is closed: errFeedCut, or
	// errFeedIdle; written before done is closed.
	cutErr error
	end    error // the error that ended the body, sticky; Read's own

	conn readCutter // the client's connection; nil: reads are not cut

	mu      sync.Mutex    // guards what follows
	stopped bool          // the serving goroutine must stop feeding
	stop    chan struct{} // closed when stopped is set
	reading bool          // the serving goroutine is reading the client
	cut     bool          // a read of the client was cut short
}

func newFeedBody(conn net.Conn) *feedBody {
	b := &feedBody{
		want: make(chan []byte),
		got:  make(chan feedRead, 1),
		done: make(chan struct{}),
		stop: make(chan struct{}),
	}
	b.conn, _ = conn.(readCutter)
	return b
}

// Read hands p to the serving goroutine and returns what it read into it,
// or, once the serving goroutine has stopped feeding, the error that
// stopped it (errFeedCut, errFeedIdle).
func (b *feedBody) Read(p []byte) (int, error) {
	if b.end != nil {
		return 0, b.end
	}
	select {
	case b.want <- p:
	case <-b.done:
		b.end = b.cutErr
		return 0, b.end
	}
	r := <-b.got
	if r.err != nil {
		b.end = r.err
	}
	return r.n, r.err
}

// Close tells the serving goroutine that the transport is done with the
// body.
func (b *feedBody) Close() error {
	b.halt()
	return nil
}

// halt makes the serving goroutine stop feeding, cutting short a read of
// the client's body under way. It is safe for concurrent use.
func (b *feedBody) halt() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.stopped = true
	close(b.stop)
	if b.reading && b.conn != nil {
		b.cut = true
		b.conn.cutRead()
	}
}

// fill reads the client's body src into p for the transport, on the
// serving goroutine; a halt meanwhile cuts the read short. It reports
// false when the body was halted before the read began.
func (b *feedBody) fill(src io.Reader, p []byte) (feedRead, bool) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return feedRead{}, false
	}
	b.reading = true
	b.mu.Unlock()
	n, err := src.Read(p)
	b.mu.Lock()
	b.reading = false
	cut := b.cut
	b.mu.Unlock()
	if cut {
		// A read that completed before the cut keeps the connection
		// usable; one that was cut failed the body stream, and fasthttp
		// closes the connection.
		b.conn.resumeRead()
	}
	return feedRead{n, err}, true
}

// sendFed sends hr, whose Body is b, with rt (a transport's RoundTrip) on
// a goroutine of its own, while the calling goroutine, the one serving
// the client, feeds b from src (the client's body) until the feeding
// stops (this file's comment). idle is upstream_timeout; 0 = no bound. It
// returns RoundTrip's result, and bodyLeft unless src was read to its
// end. An error reading the client's body is returned as the
// attempt's error, wrapped in pipeline.ErrClientBody unless it is a
// timeout or the body limit's.
func sendFed(rt http.RoundTripper, hr *http.Request, b *feedBody, src io.Reader, idle time.Duration) (res *http.Response, bodyLeft bool, err error) {
	type result struct {
		res *http.Response
		err error
	}
	// Cancelling the request is the only way to stop a transport that
	// waits for flow control with a buffer it has read. The context also
	// carries the response body, relayed after sendFed returns: it is
	// cancelled when that body is closed.
	ctx, abort := context.WithCancel(hr.Context())
	hr = hr.WithContext(ctx)
	rc := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("proxy: upstream transport panicked: %v", p)
			}
			if r.err != nil {
				b.halt()
			}
			rc <- r
		}()
		r.res, r.err = rt.RoundTrip(hr)
	}()
	var (
		want    = b.want // nil once the feeding stops
		srcErr  error    // how the client's body ended, io.EOF included
		idleC   <-chan time.Time
		timer   *time.Timer
		r       result
		settled bool
	)
	// stopFeeding ends the feeding: a Read under way or to come gets err
	// (or the body's end, once it has been read).
	stopFeeding := func(err error) {
		if want != nil {
			want, idleC = nil, nil
			b.cutErr = err // published by closing done
			close(b.done)
		}
	}
	// armIdle starts or restarts the wait for the transport's next Read.
	armIdle := func() {
		switch {
		case idle <= 0 || want == nil:
		case timer == nil:
			timer = time.NewTimer(idle)
			idleC = timer.C
		default:
			timer.Reset(idle)
		}
	}
	for want != nil || !settled {
		select {
		case p := <-want:
			fr, ok := b.fill(src, p)
			if !ok {
				b.got <- feedRead{err: errFeedCut}
				stopFeeding(errFeedCut)
				break
			}
			b.got <- fr
			if fr.err != nil {
				srcErr = fr.err
				stopFeeding(errFeedCut)
				break
			}
			armIdle()
		case <-b.stop:
			stopFeeding(errFeedCut)
		case <-idleC:
			stopFeeding(errFeedIdle)
			abort()
		case r = <-rc:
			settled = true
			if timer == nil {
				armIdle() // answered: the transport may never ask
			}
		}
	}
	if timer != nil {
		timer.Stop()
	}
	bodyLeft = srcErr != io.EOF // cut, failed, or never read to its end
	b.mu.Lock()
	cut := b.cut // no read is under way: final
	b.mu.Unlock()
	if r.err == nil {
		r.res.Body = &abortOnClose{ReadCloser: r.res.Body, abort: abort}
		return r.res, bodyLeft, nil
	}
	abort()
	if b.cutErr == errFeedIdle {
		return nil, bodyLeft, errFeedIdle // not the cancellation's error
	}
	if srcErr != nil && srcErr != io.EOF && !cut {
		// The client's body failed the attempt: not the backend's fault.
		if isTimeout(srcErr) || errors.Is(srcErr, pipeline.ErrBodyTooLarge) {
			return nil, bodyLeft, srcErr
		}
		return nil, bodyLeft, fmt.Errorf("%w: %w", pipeline.ErrClientBody, srcErr)
	}
	return nil, bodyLeft, r.err
}

// abortOnClose is a response body whose request is cancelled once it is
// closed.
type abortOnClose struct {
	io.ReadCloser
	abort context.CancelFunc
}

// Close closes the body, then cancels its request.
func (b *abortOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.abort()
	return err
}
