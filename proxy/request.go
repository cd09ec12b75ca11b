package proxy

import (
	"net/netip"
	"strconv"
)

// Request is the front-end-neutral view of a client request that the
// policy chain reads. Each front end (fasthttp for HTTP/1.1, net/http for
// h2 and h2c) fills it without allocating: the byte slices are views into
// the front end's own buffers and are valid only until the handler
// returns.
type Request struct {
	// Method is the request method, as sent.
	Method []byte
	// Host is the normalized host (see AppendNormalizedHost); empty when
	// the request carried none.
	Host []byte
	// Path is the normalized path (see AppendNormalizedPath): the path
	// routed on and forwarded.
	Path []byte
	// Query is the raw query string without "?", forwarded byte for byte.
	Query []byte
	// Client is the client address used by access lists and limits.
	Client netip.Addr
	// TLS reports whether the client connection is TLS.
	TLS bool
}

// Action is what the policy chain decided to do with a request.
type Action uint8

// The actions of a Decision.
const (
	// ActForward sends the request to a backend of Decision.Route.
	ActForward Action = iota
	// ActRespond answers with Decision.Status and a short plain body.
	ActRespond
	// ActRedirect answers with Decision.Status and Location.
	ActRedirect
)

// Decision is the policy chain's verdict on one Request.
type Decision struct {
	// Action says what to do.
	Action Action
	// Status is the response status for ActRespond and ActRedirect.
	Status int
	// Route is the matched route (nil when none matched).
	Route *Route
	// Location is the redirect target for ActRedirect; it is built in the
	// Decision's own buffer and valid until the next Decide.
	Location []byte

	buf []byte
}

// reset clears d for reuse, keeping its buffer.
func (d *Decision) reset() {
	buf := d.buf[:0]
	*d = Decision{buf: buf}
}

// decide runs the policy chain on r against snapshot s, in this order
// (STYLE §4; issue order of the policies): route → to_https/redirect_to →
// forward. The result is written to d; nothing allocates in steady state.
func (e *Engine) decide(s *Snapshot, r *Request, d *Decision) {
	d.reset()
	rt := s.Match(r.Host, r.Path)
	if rt == nil {
		d.Action, d.Status = ActRespond, 404
		return
	}
	d.Route = rt
	if rt.toHTTPS && !r.TLS {
		d.Action, d.Status = ActRedirect, 301
		b := append(d.buf[:0], "https://"...)
		b = append(b, r.Host...)
		if p := e.opts.TLSPort; p != 0 && p != 443 {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(p), 10)
		}
		b = appendPathQuery(b, r.Path, r.Query)
		d.buf, d.Location = b, b
		return
	}
	if len(rt.redirectTo) > 0 {
		d.Action, d.Status = ActRedirect, 301
		b := append(d.buf[:0], rt.redirectTo...)
		b = appendPathQuery(b, r.Path, r.Query)
		d.buf, d.Location = b, b
		return
	}
	if rt.pool == nil || rt.pool.Len() == 0 {
		d.Action, d.Status = ActRespond, 503
		return
	}
	d.Action = ActForward
}

func appendPathQuery(b, path, query []byte) []byte {
	b = append(b, path...)
	if len(query) > 0 {
		b = append(b, '?')
		b = append(b, query...)
	}
	return b
}
