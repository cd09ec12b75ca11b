package proxy

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/policy/auth"
	"github.com/aralez-go/aralez/policy/ratelimit"
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
	// Peer is the TCP peer address (before trusted_proxies are applied).
	Peer netip.Addr
	// TLS reports whether the client connection is TLS.
	TLS bool
	// Authorization is the Authorization header value (nil if absent).
	Authorization []byte
	// APIKey is the x-api-key header value (nil if absent).
	APIKey []byte
	// RawHost is the Host header as received, for forward auth.
	RawHost []byte
	// Cookie is the raw Cookie header value (nil if absent).
	Cookie []byte
	// XForwardedFor is the client's X-Forwarded-For value; it is read
	// only when Peer is a trusted proxy.
	XForwardedFor []byte
	// Proto is "HTTP/1.1", "HTTP/1.0" or "HTTP/2.0", for forward auth.
	Proto []byte
	// URI is the raw request target as received, for forward auth.
	URI []byte
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
	// Query is the query string to forward: the request's, minus
	// parameters the proxy consumed (araleztoken). Valid until the next
	// Decide.
	Query []byte
	// RetryAfter is the Retry-After value in seconds for a 429; 0 = none.
	RetryAfter int
	// WWWAuthenticate is the challenge to send with a 401; nil = none.
	WWWAuthenticate []byte
	// DropAuthorization removes the Authorization header before
	// forwarding (consumed basic or jwt credentials).
	DropAuthorization bool
	// DropAPIKey removes the x-api-key header before forwarding.
	DropAPIKey bool
	// StripHeaders names request headers to remove before forwarding
	// (forward auth's response header names, so clients cannot forge
	// them).
	StripHeaders []string
	// AddHeaders are set on the upstream request after StripHeaders
	// (forward auth's values on success).
	AddHeaders []auth.HeaderValue
	// Sticky is the backend a valid sticky cookie pins the request to;
	// nil means balance normally.
	Sticky *balancer.Backend
	// SetSticky asks the front end to send a fresh sticky cookie for the
	// backend that serves the request.
	SetSticky bool
	// LimitKey is the x4xx counter key when the route has an x4xx_limit;
	// the front end calls (*Engine).Count4xx with it after a 4xx from
	// the upstream.
	LimitKey ratelimit.Key
	// Count4xx reports whether LimitKey is in use.
	Count4xx bool
	// Client is the client address after trusted_proxies were applied.
	Client netip.Addr
	// TrustedPeer reports whether the TCP peer is a trusted proxy: its
	// X-Forwarded-For is then kept and appended to.
	TrustedPeer bool

	buf, qbuf []byte
}

// reset clears d for reuse, keeping its buffer.
func (d *Decision) reset() {
	buf, qbuf := d.buf[:0], d.qbuf[:0]
	*d = Decision{buf: buf, qbuf: qbuf}
}

// decide runs the policy chain on r against snapshot s, in this order:
// route (404) → access lists (403) → to_https / redirect_to (301) → no
// backend (503) → 4xx limit and rate limit (429) → authorization
// (401/3xx/503) → forward. A rejected request never reaches an upstream.
// The result is written to d; nothing allocates in steady state except
// forward auth, which makes a network call.
func (e *Engine) decide(s *Snapshot, r *Request, d *Decision) {
	d.reset()
	rt := s.Match(r.Host, r.Path)
	if rt == nil {
		d.Action, d.Status = ActRespond, 404
		return
	}
	if hasEncodedSeparator(r.Path) {
		// An upstream that decodes %2F or %5C (or treats "\" as "/")
		// would see another path than the one routed on; refuse when that
		// path belongs to another route, so /admin%2Fx can never bypass
		// /admin's policies through the "/" route.
		alt, err := appendDecodedSeparators(d.buf[:0], r.Path)
		d.buf = alt[:0]
		if err != nil || s.Match(r.Host, alt) != rt {
			d.Action, d.Status = ActRespond, 400
			return
		}
	}
	d.Route = rt
	client := e.clientOf(r)
	d.Client = client
	d.TrustedPeer = client != r.Peer || (len(e.opts.TrustedProxies) > 0 && inPrefixes(e.opts.TrustedProxies, r.Peer))
	if !rt.policy.allowed(client) {
		d.Action, d.Status = ActRespond, 403
		return
	}
	if rt.toHTTPS && !r.TLS {
		d.Action, d.Status = ActRedirect, 301
		b := append(d.buf[:0], "https://"...)
		b = append(b, r.Host...)
		if p := e.opts.TLSPort; p != 0 && p != 443 {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(p), 10)
		}
		b = appendPathQuery(b, r.Path, e.redirectQuery(r.Query, d))
		d.buf, d.Location = b, b
		return
	}
	if len(rt.redirectTo) > 0 {
		d.Action, d.Status = ActRedirect, 301
		b := append(d.buf[:0], rt.redirectTo...)
		b = appendPathQuery(b, r.Path, e.redirectQuery(r.Query, d))
		d.buf, d.Location = b, b
		return
	}
	if rt.pool == nil || rt.pool.Len() == 0 {
		d.Action, d.Status = ActRespond, 503
		return
	}
	now := nowNanos()
	if !e.applyLimitsAndAuth(r, rt, d, client, now) {
		return
	}
	d.Query = r.Query
	if rt.policy.authKind == authJWT && len(r.Query) > 0 && bytes.Contains(r.Query, strTokenParam) {
		// The token never reaches the upstream or its logs.
		d.qbuf = appendQueryWithout(d.qbuf[:0], r.Query, strTokenParam)
		d.Query = d.qbuf
	}
	if rt.policy.sticky != nil {
		d.Sticky = stickyFromCookie(rt, r.Cookie, now)
		d.SetSticky = d.Sticky == nil
	}
	d.Action = ActForward
}

// count4xx feeds the route's x4xx_limit after a response; the proxy's own
// 429s never count.
func (e *Engine) count4xx(d *Decision, status int) {
	if d.Count4xx && status >= 400 && status < 500 && status != 429 {
		e.limiter.Count4xx(d.LimitKey, nowNanos())
	}
}

func appendPathQuery(b, path, query []byte) []byte {
	b = append(b, path...)
	if len(query) > 0 {
		b = append(b, '?')
		b = append(b, query...)
	}
	return b
}

// redirectQuery is the query a redirect keeps: the request's, minus an
// araleztoken, which must not travel on in a Location header.
func (e *Engine) redirectQuery(q []byte, d *Decision) []byte {
	if !bytes.Contains(q, strTokenParam) {
		return q
	}
	d.qbuf = appendQueryWithout(d.qbuf[:0], q, strTokenParam)
	return d.qbuf
}

// hasEncodedSeparator reports whether a normalized path holds %2F, %5C
// (normalization upper-cases escapes) or a raw backslash.
func hasEncodedSeparator(p []byte) bool {
	return bytes.Contains(p, []byte("%2F")) || bytes.Contains(p, []byte("%5C")) || bytes.IndexByte(p, '\\') >= 0
}

// appendDecodedSeparators appends the normalized form of p after %2F, %5C
// and "\" became "/": the path an upstream that decodes them would see.
func appendDecodedSeparators(dst, p []byte) ([]byte, error) {
	start := len(dst)
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '%' && i+2 < len(p) && (p[i+1] == '2' && p[i+2] == 'F' || p[i+1] == '5' && p[i+2] == 'C'):
			dst = append(dst, '/')
			i += 2
		case p[i] == '\\':
			dst = append(dst, '/')
		default:
			dst = append(dst, p[i])
		}
	}
	n := len(dst)
	dst, err := AppendNormalizedPath(dst, dst[start:n])
	if err != nil {
		return dst[:start], err
	}
	return append(dst[:start], dst[n:]...), nil
}
