package proxy

import (
	"fmt"
	"io"

	"github.com/aralez-go/aralez/proxy/pipeline"
)

// errBodyOverLimit ends a streamed request body that went over its
// route's limit (pipeline.Decision.BodyLimit); it wraps
// pipeline.ErrBodyTooLarge, so the attempt answers 413.
var errBodyOverLimit = fmt.Errorf("%w: the body goes over the limit", pipeline.ErrBodyTooLarge)

// bodyLimiter passes at most a limit's bytes of a request body of unknown
// length (chunked, or HTTP/2 without content-length) and fails the read
// that would go past it, so nothing beyond the limit reaches a backend.
// The fasthttp front end keeps one in its pooled request state (its
// transport reads the body in the handler); the net/http front end
// allocates one per request, as a transport may read a body after
// RoundTrip has returned.
type bodyLimiter struct {
	r     io.Reader
	left  int64
	over  bool
	probe [1]byte
}

// reset makes l pass r, limited to limit bytes.
func (l *bodyLimiter) reset(r io.Reader, limit int64) {
	l.r, l.left, l.over = r, limit, false
}

func (l *bodyLimiter) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// At the limit: the body must end here.
		n, err := l.r.Read(l.probe[:])
		if n > 0 {
			l.over = true
			return 0, errBodyOverLimit
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// Close closes the limited body when it is a Closer.
func (l *bodyLimiter) Close() error {
	if c, ok := l.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// peekedBody is a streamed request body of which the first byte was read
// ahead, so that the first chunk-size line is read (and judged by the
// framing check, framing.go) before anything is forwarded: it gives that
// byte back, then the rest of the body. The fasthttp front end keeps one
// in its pooled request state.
type peekedBody struct {
	r    io.Reader
	b    [1]byte
	has  bool  // b is not read yet
	rerr error // the error that came with b, returned after it
}

// fill reads the first byte of r ahead. It returns the read's error,
// other than io.EOF (an empty body): the body is then not to be
// forwarded.
func (pb *peekedBody) fill(r io.Reader) error {
	pb.r, pb.has, pb.rerr = r, false, nil
	for {
		n, err := r.Read(pb.b[:])
		if n > 0 {
			pb.has, pb.rerr = true, err
			return nil
		}
		if err == io.EOF {
			pb.rerr = err
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (pb *peekedBody) Read(p []byte) (int, error) {
	switch {
	case len(p) == 0:
		return 0, nil
	case pb.has:
		p[0], pb.has = pb.b[0], false
		return 1, nil
	case pb.rerr != nil:
		return 0, pb.rerr
	}
	return pb.r.Read(p)
}

// Close closes the body when it is a Closer.
func (pb *peekedBody) Close() error {
	if c, ok := pb.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
