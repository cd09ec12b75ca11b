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
