package pipeline

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/aralez-go/aralez/balancer"
)

// Errors a Transport wraps (with %w) so that Classify can tell what
// happened; any other error is classified by its type (net.OpError,
// timeouts, resets).
var (
	// ErrStale marks a failure on a reused keep-alive connection before
	// any response byte arrived: the upstream had closed it. The request
	// may have reached the upstream.
	ErrStale = errors.New("proxy: upstream closed keep-alive connection")
	// ErrUnsent marks a failure that provably happened before any byte of
	// the request was written (a pooled connection found closed).
	ErrUnsent = errors.New("proxy: request not sent")
	// ErrClientBody marks a request body that could not be read from the
	// client (malformed chunked encoding, a short body: 400; a read that
	// timed out: 408), and the backend is not blamed.
	ErrClientBody = errors.New("proxy: malformed request body")
	// ErrBodyTooLarge marks a request body that went over
	// max_request_body_bytes while it streamed: 413.
	ErrBodyTooLarge = errors.New("proxy: request body too large")
	// ErrPoolFull marks a request that found upstream_max_conns
	// connections busy for the whole wait: 503.
	ErrPoolFull = errors.New("proxy: upstream connection limit reached")
	// ErrClientGone marks an attempt cancelled because the client went
	// away (an HTTP/2 stream reset): nobody is left to answer.
	ErrClientGone = errors.New("proxy: client went away")
)

// Failure is the class of a failed upstream attempt, which decides the
// status, the retry and whether the backend is blamed.
type Failure uint8

// The failure classes of Classify.
const (
	// FailNone: no failure.
	FailNone Failure = iota
	// FailConnect: the backend could not be reached (dial error or
	// connect timeout); nothing was sent.
	FailConnect
	// FailUnsent: nothing was sent (ErrUnsent).
	FailUnsent
	// FailStale: a reused connection failed before the response
	// (ErrStale); the request may have been sent.
	FailStale
	// FailTimeout: upstream_timeout expired before the response head.
	FailTimeout
	// FailUpstream: any other upstream failure before the response head
	// (reset, EOF, TLS error).
	FailUpstream
	// FailPoolFull: upstream_max_conns reached (ErrPoolFull).
	FailPoolFull
	// FailClientBody: the client's body was malformed or stalled
	// (ErrClientBody): 400, or 408 when reading it timed out.
	FailClientBody
	// FailBodyTooLarge: the client's body went over the limit
	// (ErrBodyTooLarge).
	FailBodyTooLarge
	// FailClientGone: the client went away (ErrClientGone,
	// context.Canceled).
	FailClientGone
)

// Classify returns the class of an attempt's error. It is the one place
// that decides whose fault an error is: the client's (a malformed or
// over-limit body, a cancelled request) is never blamed on the backend.
func Classify(err error) Failure {
	switch {
	case err == nil:
		return FailNone
	case errors.Is(err, ErrBodyTooLarge): // before ErrClientBody, which may wrap it
		return FailBodyTooLarge
	case errors.Is(err, ErrClientBody):
		return FailClientBody
	case errors.Is(err, ErrClientGone), errors.Is(err, context.Canceled):
		return FailClientGone
	case errors.Is(err, ErrPoolFull):
		return FailPoolFull
	case errors.Is(err, ErrUnsent):
		return FailUnsent
	case errors.Is(err, ErrStale):
		return FailStale
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return FailConnect
	}
	if IsTimeout(err) {
		return FailTimeout
	}
	return FailUpstream
}

// IsTimeout reports whether err is a timeout (os.ErrDeadlineExceeded,
// context.DeadlineExceeded or a net.Error whose Timeout() is true).
func IsTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// IsReset reports whether err says the peer closed or reset the
// connection (EOF, ECONNRESET, EPIPE): on a reused connection before any
// response byte, that is a stale keep-alive connection.
func IsReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Body says how a request's body can be sent, for the retry rule.
type Body uint8

// The body kinds of Attempt.
const (
	// BodyNone: no request body.
	BodyNone Body = iota
	// BodyBuffered: the whole body is in memory and can be sent again.
	BodyBuffered
	// BodyStreamed: the body is read from the client while it is sent;
	// it can be sent once, and a retry is possible only when no byte of
	// it was read (FailConnect, FailUnsent).
	BodyStreamed
)

// Transport is one front end's way to send the planned request to a
// backend: the fasthttp client, the net/http HTTP/2 transports, or a
// WebSocket dial and handshake.
type Transport interface {
	// RoundTrip sends the request to backend b through u (the Upstream
	// the route holds for b) and reads the response head. It returns nil
	// once the upstream has answered, whatever the status; else an error
	// that Classify understands.
	RoundTrip(b *balancer.Backend, u Upstream) error
}

// Outcome is the result of Attempt.
type Outcome struct {
	// Backend is the backend that answered, nil when none did. The
	// caller owns one in-flight count on it (Backend.Acquire) and must
	// call Backend.Release exactly once, when the relay of the response
	// really ends: after a streamed body was relayed, after a tunnel
	// closed, on every exit path.
	Backend *balancer.Backend
	// Upstream is the route's Upstream for Backend.
	Upstream Upstream
	// Status is the status to answer when no backend answered: 503 (no
	// backend, or upstream_max_conns reached), 502, 504, 400 or 413 (the
	// client's body); 0 when the client went away and nobody is left to
	// answer.
	Status int
	// Err is the last attempt's error (nil on success or when no backend
	// was available).
	Err error
	// Failed is the last backend whose attempt failed, for the logs.
	Failed *balancer.Backend
}

// idempotent reports whether a method may be sent twice (RFC 9110
// §9.2.2).
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// canRetry is the retry rule: a request that was not sent (FailConnect,
// FailUnsent) may go again whatever its method, its body still unread; a
// request that may have reached the upstream (FailStale, FailTimeout,
// FailUpstream) only when its method is idempotent and its body can be
// sent again.
func canRetry(f Failure, method []byte, body Body) bool {
	switch f {
	case FailConnect, FailUnsent:
		return true
	case FailStale, FailTimeout, FailUpstream:
		return idempotent(method) && body != BodyStreamed
	}
	return false
}

// Attempt is step 4 of the pipeline, the one attempt loop of every
// transport. It picks a backend of d.Route (the sticky one first), takes
// an in-flight count and calls t.RoundTrip; on failure it gives the count
// back and decides, by Classify and the retry rule, whether to try again:
// once on the same backend after a stale or provably unused pooled
// connection (the upstream closed its idle connections; the transport
// drops them), and once on another backend after any other retryable
// failure. Connect failures, timeouts and upstream errors count against
// the backend (passive ejection); stale connections, a full pool and the
// client's own errors do not. A failure that is final is logged once at
// warn level (with the route, the status, the request ID and the
// backend), except the client's own.
func (p *Pipeline) Attempt(r *Request, d *Decision, body Body, t Transport) Outcome {
	rt := d.Route
	pin := d.Sticky
	var tried *balancer.Backend
	var out Outcome
	staleLeft, failLeft := 1, 1
	for {
		b := pin
		if b == nil {
			b, _ = rt.pool.Pick(tried)
		}
		pin = nil
		if b == nil {
			break
		}
		u := rt.upstreams[b]
		b.Acquire()
		err := t.RoundTrip(b, u)
		if err == nil {
			b.ReportSuccess()
			return Outcome{Backend: b, Upstream: u}
		}
		b.Release()
		out.Err, out.Failed = err, b
		f := Classify(err)
		switch f {
		case FailClientBody:
			p.log.Debug("malformed request body", "request_id", string(d.RequestID), "err", err)
			out.Status = 400
			if IsTimeout(err) {
				out.Status = 408 // the client's body stalled (RFC 9110 §15.5.9)
			}
			return out
		case FailBodyTooLarge:
			out.Status = 413
			return out
		case FailClientGone:
			out.Status = 0
			return out
		case FailConnect, FailTimeout, FailUpstream:
			b.ReportFailure(nowNanos())
		}
		if !canRetry(f, r.Method, body) {
			break
		}
		if (f == FailStale || f == FailUnsent) && staleLeft > 0 {
			staleLeft--
			pin = b // only the pooled connection was dead
		} else if failLeft > 0 {
			failLeft--
			tried = b
		} else {
			break
		}
		if rec := p.opts.Recorder; rec != nil {
			rec.Retry()
		}
		p.log.Debug("upstream attempt failed; retrying", "backend", b.Addr(), "err", err)
	}
	switch f := Classify(out.Err); {
	case out.Err == nil || f == FailPoolFull:
		out.Status = 503 // no backend, or upstream_max_conns reached
	case IsTimeout(out.Err):
		out.Status = 504
	default:
		out.Status = 502
	}
	if out.Err != nil {
		p.log.Warn("upstream request failed", "route", rt.Name, "status", out.Status,
			"request_id", string(d.RequestID), "backend", out.Failed.Addr(), "err", out.Err)
	}
	return out
}
