package pipeline

import (
	"math/bits"
	"net/netip"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/policy/auth"
	"github.com/aralez-go/aralez/policy/ratelimit"
)

// Forwarding header indexes of Request.Forwarded: the first value of each
// X-Forwarded-* header the proxy keeps from a trusted peer.
const (
	FwdProto  = iota // X-Forwarded-Proto
	FwdHost          // X-Forwarded-Host
	FwdPort          // X-Forwarded-Port
	FwdPrefix        // X-Forwarded-Prefix
	FwdServer        // X-Forwarded-Server
	numFwd
)

// maxUnderscored bounds how many header names with "_" a Request records;
// a request with more is refused (400), as no client needs that many.
const maxUnderscored = 8

// Request is the front-end-neutral view of a client request that every
// pipeline step reads. Each front end (fasthttp for HTTP/1.1, net/http for
// h2 and h2c) fills it without allocating: the byte slices are views into
// the front end's own buffers or into the Request's scratch buffers, and
// are valid only until the handler returns. Fill the scalar fields, then
// call See once per header line; Reset clears it for reuse. A Request must
// not be shared between goroutines.
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
	// Peer is the TCP peer address (before trusted_proxies are applied).
	Peer netip.Addr
	// TLS reports whether the client connection is TLS.
	TLS bool
	// HTTP2 reports whether the request came over HTTP/2 (h2 or h2c).
	HTTP2 bool
	// Proto is "HTTP/1.1", "HTTP/1.0" or "HTTP/2.0", as received.
	Proto []byte
	// RawHost is the Host header (or :authority) as received; empty when
	// the request carried none.
	RawHost []byte
	// URI is the raw request target as received, for forward auth.
	URI []byte
	// ContentLength is the declared body length; -1 when it is not
	// declared (chunked, or an HTTP/2 body without content-length).
	ContentLength int64

	// The header views below are filled by See.

	// Authorization is the first Authorization value (nil if absent).
	Authorization []byte
	// APIKey is the first X-Api-Key value (nil if absent).
	APIKey []byte
	// Cookie is every Cookie line joined with "; " (RFC 9113 §8.2.3),
	// copied into the Request's own buffer.
	Cookie []byte
	// Connection is every Connection line joined with ", ".
	Connection []byte
	// Upgrade is the first Upgrade value.
	Upgrade []byte
	// TE is every TE line joined with ", ".
	TE []byte
	// Via is every Via line joined with ", ".
	Via []byte
	// XForwardedFor is every X-Forwarded-For line joined with ", ", in
	// order; it is used only when Peer is a trusted proxy.
	XForwardedFor []byte
	// Forwarded holds the first value of X-Forwarded-Proto, -Host, -Port,
	// -Prefix and -Server (indexes FwdProto…FwdServer); used only from a
	// trusted peer.
	Forwarded [numFwd][]byte
	// RequestID is the first X-Request-Id value; kept only from a trusted
	// peer.
	RequestID []byte
	// Underscored lists the names of header lines holding "_" (see
	// Plan's underscore rule).
	Underscored [][]byte
	// Cache holds the first value of the request headers the response
	// cache reads on every lookup (cache.go), so that a hit needs no
	// search of the front end's headers.
	Cache CacheHeaders

	underscored [maxUnderscored][]byte
	bufs        requestBufs
	badHeader   bool
	// present has a bit (hdr*) for each header the request plan removes
	// that the request has a line of, any case: PlanRequest asks the
	// front end to delete only those.
	present uint32

	nCookie, nConn, nTE, nVia, nXFF, nUnd int
}

// CacheHeaders are the request header values the response cache reads on
// every lookup: the first line of each, nil when absent.
type CacheHeaders struct {
	CacheControl, Pragma, Range, IfNoneMatch, IfModifiedSince []byte
}

// requestBufs are the scratch buffers of a Request, kept across Reset.
type requestBufs struct {
	cookieBuf, connBuf, teBuf, viaBuf, xffBuf []byte
	pathBuf, hostBuf, targetBuf               []byte
}

// Reset clears r for the next request, keeping its buffers.
func (r *Request) Reset() {
	b := r.bufs
	b.cookieBuf, b.connBuf, b.teBuf, b.viaBuf, b.xffBuf = b.cookieBuf[:0], b.connBuf[:0], b.teBuf[:0], b.viaBuf[:0], b.xffBuf[:0]
	b.pathBuf, b.hostBuf, b.targetBuf = b.pathBuf[:0], b.hostBuf[:0], b.targetBuf[:0]
	// Cleared in place: a composite literal would be built on the stack
	// (over 1 KiB) and copied, on every request.
	*r = Request{}
	r.bufs, r.ContentLength = b, -1
}

// See records one header line of the request: name as received (any
// case) and its value. It reports false when the name is not an RFC 9110
// §5.6.2 token (the front end then answers 400 and forwards nothing) or
// the request holds more than a handful of names with "_". Lines of
// headers the pipeline does not read cost one length switch. It allocates
// only until the Request's buffers have grown.
func (r *Request) See(name, value []byte) bool {
	if len(name) == 0 {
		r.badHeader = true
		return false
	}
	under := false
	for _, c := range name {
		if !tcharTable[c] {
			r.badHeader = true
			return false
		}
		if c == '_' {
			under = true
		}
	}
	if under {
		if r.nUnd == maxUnderscored {
			r.badHeader = true
			return false
		}
		r.underscored[r.nUnd] = name
		r.nUnd++
		r.Underscored = r.underscored[:r.nUnd]
		return true
	}
	r.present |= presentBit(name)
	switch len(name) {
	case 2:
		if equalFold(name, "TE") {
			r.bufs.teBuf = joinLine(r.bufs.teBuf, value, ", ", &r.nTE)
			r.TE = r.bufs.teBuf
		}
	case 3:
		if equalFold(name, "Via") {
			r.bufs.viaBuf = joinLine(r.bufs.viaBuf, value, ", ", &r.nVia)
			r.Via = r.bufs.viaBuf
		}
	case 5:
		if r.Cache.Range == nil && equalFold(name, "Range") {
			r.Cache.Range = value
		}
	case 6:
		if equalFold(name, "Cookie") {
			r.bufs.cookieBuf = joinLine(r.bufs.cookieBuf, value, "; ", &r.nCookie)
			r.Cookie = r.bufs.cookieBuf
		} else if r.Cache.Pragma == nil && equalFold(name, "Pragma") {
			r.Cache.Pragma = value
		}
	case 7:
		if r.Upgrade == nil && equalFold(name, "Upgrade") {
			r.Upgrade = value
		}
	case 9:
		if r.APIKey == nil && equalFold(name, "X-Api-Key") {
			r.APIKey = value
		}
	case 10:
		if equalFold(name, "Connection") {
			r.bufs.connBuf = joinLine(r.bufs.connBuf, value, ", ", &r.nConn)
			r.Connection = r.bufs.connBuf
		}
	case 12:
		if r.RequestID == nil && equalFold(name, "X-Request-Id") {
			r.RequestID = value
		}
	case 13:
		switch {
		case r.Authorization == nil && equalFold(name, "Authorization"):
			r.Authorization = value
		case r.Cache.CacheControl == nil && equalFold(name, "Cache-Control"):
			r.Cache.CacheControl = value
		case r.Cache.IfNoneMatch == nil && equalFold(name, "If-None-Match"):
			r.Cache.IfNoneMatch = value
		}
	case 17:
		if r.Cache.IfModifiedSince == nil && equalFold(name, "If-Modified-Since") {
			r.Cache.IfModifiedSince = value
		}
	case 15:
		if equalFold(name, "X-Forwarded-For") {
			r.bufs.xffBuf = joinLine(r.bufs.xffBuf, value, ", ", &r.nXFF)
			r.XForwardedFor = r.bufs.xffBuf
		}
	}
	if len(name) > 12 && equalFold(name[:12], "X-Forwarded-") {
		var i int
		switch rest := name[12:]; {
		case equalFold(rest, "Proto"):
			i = FwdProto
		case equalFold(rest, "Host"):
			i = FwdHost
		case equalFold(rest, "Port"):
			i = FwdPort
		case equalFold(rest, "Prefix"):
			i = FwdPrefix
		case equalFold(rest, "Server"):
			i = FwdServer
		default:
			return true
		}
		if r.Forwarded[i] == nil {
			r.Forwarded[i] = value
		}
	}
	return true
}

// joinLine appends value to buf, after sep when it is not the first line
// (n counts the lines).
func joinLine(buf, value []byte, sep string, n *int) []byte {
	if *n > 0 {
		buf = append(buf, sep...)
	}
	*n++
	return append(buf, value...)
}

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// tcharTable marks the bytes allowed in a token (RFC 9110 §5.6.2).
var tcharTable = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9')
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

// Action is what the pipeline decided to do with a request.
type Action uint8

// The actions of a Decision.
const (
	// ActForward sends the request to a backend of Decision.Route.
	ActForward Action = iota
	// ActRespond answers with Decision.Status and a short plain body
	// (Decision.Body when set).
	ActRespond
	// ActRedirect answers with Decision.Status and Location.
	ActRedirect
)

// Decision is the pipeline's verdict on one Request, written by Route and
// Admit and read by the front end, the plan and the attempt loop. Byte
// slices are valid until the next Reset. A Decision must not be shared
// between goroutines.
type Decision struct {
	// Action says what to do.
	Action Action
	// Status is the response status for ActRespond and ActRedirect.
	Status int
	// Route is the matched route (nil when none matched).
	Route *Route
	// RequestID is the request's ID: the client's X-Request-Id from a
	// trusted peer, else a fresh one (Reset makes it). It is sent
	// upstream, on every response, and in the proxy's own bodies.
	RequestID []byte
	// Location is the redirect target for ActRedirect.
	Location []byte
	// Body replaces the generated plain body of an ActRespond answer
	// (an ACME key authorization); nil = generated.
	Body []byte
	// Query is the query string to forward: the request's, minus
	// parameters the proxy consumed (araleztoken).
	Query []byte
	// BodyLimit is the most request body bytes the route accepts
	// (max_request_body_bytes: the path's, else the global one); 0 means
	// unlimited. Route refuses a larger declared length with 413; a front
	// end streaming a body of unknown length (chunked, HTTP/2 without
	// content-length) stops at the limit, and the attempt that reads the
	// body then fails with ErrBodyTooLarge (413).
	BodyLimit int64
	// RetryAfter is the Retry-After value in seconds for a 429; 0 = none.
	RetryAfter int
	// WWWAuthenticate is the challenge to send with a 401; nil = none.
	WWWAuthenticate []byte
	// ReplyHeaders are the headers of a forward-auth service's 401 or 403,
	// relayed with it (hop-by-hop ones removed), sorted by name; Body is
	// then its body. Nil otherwise.
	ReplyHeaders []auth.HeaderValue
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
	// SetSticky asks for a fresh sticky cookie for the backend that
	// serves the request.
	SetSticky bool
	// Client is the client address after trusted_proxies were applied:
	// the one access lists, limits and logs use.
	Client netip.Addr
	// TrustedPeer reports whether the TCP peer is a trusted proxy.
	TrustedPeer bool
	// Admitted reports whether Admit ran (it runs once per request).
	Admitted bool

	limitKey ratelimit.Key
	count4xx bool
	rid      []byte // RequestID's buffer
	buf      []byte // Location and separator-decoding scratch
	qbuf     []byte // Query scratch
	rpath    []byte // routing path scratch (AppendRoutingPath)
}

// Reset clears d for a new request, keeping its buffers, and gives it a
// fresh RequestID.
func (d *Decision) Reset() {
	buf, qbuf, rid, rpath := d.buf[:0], d.qbuf[:0], d.rid[:0], d.rpath[:0]
	*d = Decision{} // in place, as Request.Reset
	d.buf, d.qbuf, d.rpath = buf, qbuf, rpath
	d.rid = accesslog.AppendRequestID(rid)
	d.RequestID = d.rid
}

// Bits of Request.present: the request headers that PlanRequest removes
// (hop-by-hop, RFC 9110 §7.6.1, and the client's forwarding headers).
const (
	hdrBitConnection uint32 = 1 << iota
	hdrBitKeepAlive
	hdrBitProxyConnection
	hdrBitTE
	hdrBitTrailer
	hdrBitTransferEncoding
	hdrBitUpgrade
	hdrBitExpect
	hdrBitHTTP2Settings
	hdrBitXForwardedFor
	hdrBitXForwardedProto
	hdrBitXForwardedHost
	hdrBitXForwardedPort
	hdrBitXForwardedPrefix
	hdrBitXForwardedServer
	hdrBitXRealIP
	hdrBitForwarded
	hdrBitXRequestID
	hdrBitVia
)

// presentNames maps each bit of Request.present to its header name.
var presentNames = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding",
	"Upgrade", "Expect", "HTTP2-Settings", "X-Forwarded-For", "X-Forwarded-Proto",
	"X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
	"X-Real-IP", "Forwarded", "X-Request-Id", "Via",
}

// presentByLen lists, by name length, the bits whose names have it.
var presentByLen = func() (t [20][]uint32) {
	for i, n := range presentNames {
		t[len(n)] = append(t[len(n)], 1<<i)
	}
	return t
}()

// presentBit returns the Request.present bit of a header name (any
// case), or 0.
func presentBit(name []byte) uint32 {
	if len(name) >= len(presentByLen) {
		return 0
	}
	for _, bit := range presentByLen[len(name)] {
		if equalFold(name, presentNames[bits.TrailingZeros32(bit)]) {
			return bit
		}
	}
	return 0
}

// has reports whether the request has a line of the header of bit.
func (r *Request) has(bit uint32) bool { return r.present&bit != 0 }
