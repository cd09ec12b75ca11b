package pipeline

import (
	"bytes"
	"strconv"
	"unsafe"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/policy/auth"
)

// Field is one header line of a Plan. Key is Name in canonical form
// (net/textproto) when it is known in advance, for front ends whose
// header type is a canonical map; empty means the front end computes it.
// Values, when not nil, is Value as a one-element []string built once
// (for values fixed at compile time); such front ends may use it as a
// header value without copying, and must not modify it.
type Field struct {
	Name, Value []byte
	Key         string
	Values      []string
	// Fresh marks a Set field whose name the message has no line of once
	// the plan's Del names are gone: a front end may set it without
	// deleting first.
	Fresh bool
	add   bool // server/client_headers: a later line of a name
}

// Plan is the header and target rewrite that the pipeline decides for one
// message, and that each front end applies to its own header type in this
// order: delete every Del name (all lines, any case), then for each Set
// field replace every line of its name by one, then add each Add field as
// one more line. Host, URI and Body are applied where the message has
// them. Slices are valid until the next Plan* call on the same Plan; a
// Plan must not be shared between goroutines. The zero value is ready.
type Plan struct {
	// URI is the request target to send upstream: the normalized path
	// and the query to forward.
	URI []byte
	// Host is the Host (or :authority) to send upstream: the one routed
	// on. Empty means the request carried none (HTTP/1.0): send the
	// backend's address.
	Host []byte
	// Del, Set and Add are the header operations, applied in that order.
	Del, Set, Add []Field
	// Body is the body of the proxy's own answer (PlanReply).
	Body []byte

	uri, xff, via, cookie, body []byte
	fwd                         [numFwd][]byte
}

func (pl *Plan) reset() {
	pl.URI, pl.Host, pl.Body = nil, nil, nil
	pl.Del, pl.Set, pl.Add = pl.Del[:0], pl.Set[:0], pl.Add[:0]
}

// Header names the pipeline sets, removes or reads, with their canonical
// keys.
var (
	hdrConnection      = field("Connection", "")
	hdrUpgrade         = field("Upgrade", "")
	hdrTE              = field("TE", "trailers")
	hdrXForwardedFor   = field("X-Forwarded-For", "")
	hdrXRequestID      = field("X-Request-Id", "")
	hdrVia             = field("Via", "")
	hdrAuthorization   = field("Authorization", "")
	hdrAPIKey          = field("X-Api-Key", "")
	hdrSetCookie       = field("Set-Cookie", "")
	hdrContentType     = field("Content-Type", "text/plain; charset=utf-8")
	hdrRetryAfter      = field("Retry-After", "")
	hdrWWWAuthenticate = field("WWW-Authenticate", "")
	hdrLocation        = field("Location", "")

	// forwardedFields are the X-Forwarded-* headers kept from a trusted
	// peer, indexed like Request.Forwarded.
	forwardedFields = [numFwd]Field{
		FwdProto:  field("X-Forwarded-Proto", ""),
		FwdHost:   field("X-Forwarded-Host", ""),
		FwdPort:   field("X-Forwarded-Port", ""),
		FwdPrefix: field("X-Forwarded-Prefix", ""),
		FwdServer: field("X-Forwarded-Server", ""),
	}

	// clientForwarding are every header that names the client or the
	// original request to a backend: from a peer that is not a trusted
	// proxy, every client copy is removed (all lines, any case).
	clientForwarding = []Field{
		hdrXForwardedFor, forwardedFields[FwdProto], forwardedFields[FwdHost],
		forwardedFields[FwdPort], forwardedFields[FwdPrefix], forwardedFields[FwdServer],
		field("X-Real-IP", ""), field("Forwarded", ""),
	}
	// clientForwardingBits are the Request.present bits of
	// clientForwarding, in order.
	clientForwardingBits = []uint32{
		hdrBitXForwardedFor, hdrBitXForwardedProto, hdrBitXForwardedHost,
		hdrBitXForwardedPort, hdrBitXForwardedPrefix, hdrBitXForwardedServer,
		hdrBitXRealIP, hdrBitForwarded,
	}

	// hopByHop are removed in both directions, RFC 9110 §7.6.1, plus
	// Proxy-Connection (pre-standard), Expect (answered here, RFC 9110
	// §10.1.1) and HTTP2-Settings (RFC 9113 §3.2: meaningful only with
	// the h2c upgrade, which is never passed on).
	hopByHop = []Field{
		hdrConnection, field("Keep-Alive", ""), field("Proxy-Connection", ""),
		field("TE", ""), field("Trailer", ""), field("Transfer-Encoding", ""), hdrUpgrade,
		field("Expect", ""), field("HTTP2-Settings", ""),
	}
	// hopByHopBits are the Request.present bits of hopByHop, in order.
	hopByHopBits = []uint32{
		hdrBitConnection, hdrBitKeepAlive, hdrBitProxyConnection,
		hdrBitTE, hdrBitTrailer, hdrBitTransferEncoding, hdrBitUpgrade,
		hdrBitExpect, hdrBitHTTP2Settings,
	}

	// alwaysProtected are names whose "_" spellings are dropped on every
	// route (see PlanRequest).
	alwaysProtected = [][]byte{
		[]byte("X-Forwarded-For"), []byte("X-Forwarded-Proto"), []byte("X-Forwarded-Host"),
		[]byte("X-Forwarded-Port"), []byte("X-Forwarded-Prefix"), []byte("X-Forwarded-Server"),
		[]byte("X-Real-IP"), []byte("X-Request-Id"), []byte("Authorization"), []byte("X-Api-Key"),
		[]byte("Content-Length"), []byte("Transfer-Encoding"),
	}

	hdrProtoHTTP     = field("X-Forwarded-Proto", "http")
	hdrProtoHTTPS    = field("X-Forwarded-Proto", "https")
	strWebSocket     = []byte("websocket")
	strUpgradeToken  = []byte("upgrade")
	strTrailersToken = []byte("trailers")
	strGET           = []byte("GET")
)

// protectedNames lists the names whose "_" spellings PlanRequest drops on
// route r: the forwarding headers, credentials, the request ID, the
// identity headers forward auth sets by default (Remote-User and the
// like, on every route: backends read REMOTE_USER whoever set it), and
// every header the route's forward auth and server_headers set.
func protectedNames(r *Route) [][]byte {
	out := append([][]byte(nil), alwaysProtected...)
	for _, h := range auth.DefaultResponseHeaders() {
		out = append(out, []byte(h))
	}
	for _, h := range r.policy.authHeaders {
		out = append(out, []byte(h))
	}
	for _, f := range r.serverHeaders {
		out = append(out, f.Name)
	}
	return out
}

// IsWebSocket reports whether r asks to open a WebSocket: GET over
// HTTP/1.1 with "Upgrade: websocket" and an "upgrade" token in
// Connection, case-insensitive (RFC 6455 §4.1). Any other Upgrade (h2c
// above all, which would let a client speak HTTP/2 to a backend past
// every rule) is removed as hop-by-hop.
func IsWebSocket(r *Request) bool {
	return !r.HTTP2 && bytes.Equal(r.Method, strGET) && bytes.Equal(r.Proto, strHTTP11) &&
		bytes.EqualFold(bytes.TrimSpace(r.Upgrade), strWebSocket) && hasToken(r.Connection, strUpgradeToken)
}

// PlanRequest is step 3 of the pipeline: the upstream request's target,
// Host and header rewrite for a request that Admit let through, written
// into pl. The rules, in the order their operations apply:
//
//  1. headers named in Connection, then the hop-by-hop list, are removed
//     (RFC 9110 §7.6.1), before anything is set, so a client cannot
//     remove the proxy's own headers by naming them; "TE: trailers" is
//     kept (RFC 9110 §10.1.4; gRPC needs it), and a WebSocket handshake
//     keeps "Connection: Upgrade" and "Upgrade: websocket";
//  2. credentials the proxy consumed (basic or jwt Authorization,
//     X-Api-Key) and client copies of the forward-auth response headers
//     are removed; forward auth's values are set;
//  3. forwarding headers: from a peer that is not in trusted_proxies,
//     every client line of X-Forwarded-For, -Proto, -Host, -Port,
//     -Prefix, -Server, X-Real-IP and Forwarded is removed and ours are
//     set (X-Forwarded-For: the peer; -Proto: http or https; -Host: the
//     Host received). From a trusted peer, the X-Forwarded-For lines are
//     joined in order and the peer appended (RFC 7239 §8.1 picks the
//     client from it), and the first value of each of -Proto, -Host,
//     -Port, -Prefix and -Server is kept (ours when absent);
//  4. X-Request-Id is set to Decision.RequestID; Via gets our entry
//     appended ("1.1 aralez" or "2 aralez", RFC 9110 §7.6.3);
//  5. a header whose name differs from one the proxy sets or consumes
//     only by "_" for "-" (X_Forwarded_For, Remote_User) is removed: CGI,
//     WSGI and PHP backends read both spellings as one variable;
//  6. the route's server_headers are applied last, so an operator can
//     still set a forwarding header on purpose.
//
// It allocates only until pl's buffers have grown.
func (p *Pipeline) PlanRequest(r *Request, d *Decision, pl *Plan) {
	pl.reset()
	rt := d.Route
	pl.uri = appendPathQuery(pl.uri[:0], r.Path, d.Query)
	pl.URI = pl.uri
	pl.Host = r.RawHost

	// 1. Hop-by-hop (only the names the request has: each deletion is a
	// search of the front end's header list).
	pl.delTokens(r.Connection)
	for i := range hopByHop {
		if r.has(hopByHopBits[i]) {
			pl.Del = append(pl.Del, hopByHop[i])
		}
	}
	if hasToken(r.TE, strTrailersToken) {
		pl.Set = append(pl.Set, hdrTE)
	}
	if IsWebSocket(r) {
		pl.Set = append(pl.Set, Field{Name: hdrConnection.Name, Key: hdrConnection.Key, Value: hdrUpgrade.Name},
			Field{Name: hdrUpgrade.Name, Key: hdrUpgrade.Key, Value: strWebSocket})
	}

	// 2. Credentials and forward auth.
	if d.DropAuthorization {
		pl.Del = append(pl.Del, hdrAuthorization)
	}
	if d.DropAPIKey {
		pl.Del = append(pl.Del, hdrAPIKey)
	}
	for _, name := range d.StripHeaders {
		pl.Del = append(pl.Del, Field{Name: s2b(name), Key: name})
	}
	for _, hv := range d.AddHeaders {
		pl.Set = append(pl.Set, Field{Name: s2b(hv.Name), Key: hv.Name, Value: s2b(hv.Value)})
	}

	// 3. Forwarding headers.
	pl.xff = pl.xff[:0]
	if d.TrustedPeer {
		if len(r.XForwardedFor) > 0 {
			pl.xff = append(append(pl.xff, r.XForwardedFor...), ", "...)
		}
		for i := range r.Forwarded {
			if v := r.Forwarded[i]; v != nil {
				// Copied: the front end deletes the lines it points into.
				pl.fwd[i] = append(pl.fwd[i][:0], v...)
				pl.Del = append(pl.Del, forwardedFields[i])
				pl.Set = append(pl.Set, Field{Name: forwardedFields[i].Name, Key: forwardedFields[i].Key, Value: pl.fwd[i]})
			}
		}
	} else {
		for i := range clientForwarding {
			if r.has(clientForwardingBits[i]) {
				pl.Del = append(pl.Del, clientForwarding[i])
			}
		}
	}
	// gone: the client's lines of a forwarding header are deleted above
	// (untrusted peer) or there are none.
	gone := func(bit uint32) bool { return !d.TrustedPeer || !r.has(bit) }
	pl.xff = r.Peer.AppendTo(pl.xff)
	pl.Set = append(pl.Set, Field{Name: hdrXForwardedFor.Name, Key: hdrXForwardedFor.Key, Value: pl.xff, Fresh: gone(hdrBitXForwardedFor)})
	if !d.TrustedPeer || r.Forwarded[FwdProto] == nil {
		proto := hdrProtoHTTP
		if r.TLS {
			proto = hdrProtoHTTPS
		}
		proto.Fresh = gone(hdrBitXForwardedProto)
		pl.Set = append(pl.Set, proto)
	}
	if !d.TrustedPeer || r.Forwarded[FwdHost] == nil {
		if len(r.RawHost) > 0 {
			pl.Set = append(pl.Set, Field{Name: forwardedFields[FwdHost].Name, Key: forwardedFields[FwdHost].Key, Value: r.RawHost, Fresh: gone(hdrBitXForwardedHost)})
		} else if d.TrustedPeer {
			pl.Del = append(pl.Del, forwardedFields[FwdHost])
		}
	}

	// 4. Request ID and Via.
	pl.Set = append(pl.Set, Field{Name: hdrXRequestID.Name, Key: hdrXRequestID.Key, Value: d.RequestID, Fresh: !r.has(hdrBitXRequestID)})
	via := p.via[0]
	if r.HTTP2 {
		via = p.via[1]
	}
	if len(r.Via) > 0 {
		pl.via = append(append(append(pl.via[:0], r.Via...), ", "...), via.Value...)
		via = Field{Name: hdrVia.Name, Key: hdrVia.Key, Value: pl.via}
	}
	via.Fresh = !r.has(hdrBitVia)
	pl.Set = append(pl.Set, via)

	// 5. Underscore spellings of protected names.
	for _, name := range r.Underscored {
		for _, prot := range rt.protected {
			if equalDashFold(name, prot) {
				pl.Del = append(pl.Del, Field{Name: name})
				break
			}
		}
	}

	// 6. server_headers.
	for _, f := range rt.serverHeaders {
		switch {
		case f.Key == "Host":
			pl.Host = f.Value
		case f.add:
			pl.Add = append(pl.Add, f)
		default:
			pl.Set = append(pl.Set, f)
		}
	}
}

// PlanResponse is step 5 of the pipeline: the rewrite of an upstream
// response's headers before it is relayed. connection is the response's
// Connection value (all lines joined); b is the backend that answered.
// Headers named in Connection and the hop-by-hop list are removed (RFC
// 9110 §7.6.1), the route's client_headers applied, a sticky-session
// cookie added when the request was not pinned to b, and X-Request-Id
// set. It allocates only until pl's buffers have grown.
//
// seen holds the response's header names (HeaderSet.See each of them),
// or AllHeaders when the front end does not look: only hop-by-hop names
// in it are deleted.
func (p *Pipeline) PlanResponse(d *Decision, b *balancer.Backend, connection []byte, seen HeaderSet, pl *Plan) {
	pl.reset()
	rt := d.Route
	pl.delTokens(connection)
	for i := range hopByHop {
		if uint32(seen)&hopByHopBits[i] != 0 {
			pl.Del = append(pl.Del, hopByHop[i])
		}
	}
	for _, f := range rt.clientHeaders {
		if f.add {
			pl.Add = append(pl.Add, f)
		} else {
			pl.Set = append(pl.Set, f)
		}
	}
	if rt.policy.sticky != nil && (d.SetSticky || d.Sticky != nil && b != d.Sticky) {
		pl.cookie = appendStickyCookie(pl.cookie[:0], rt, b)
		pl.Add = append(pl.Add, Field{Name: hdrSetCookie.Name, Key: hdrSetCookie.Key, Value: pl.cookie})
	}
	pl.Set = append(pl.Set, Field{Name: hdrXRequestID.Name, Key: hdrXRequestID.Key, Value: d.RequestID, Fresh: uint32(seen)&hdrBitXRequestID == 0})
}

// HeaderSet records which of the headers a plan removes (hop-by-hop,
// forwarding, X-Request-Id, Via) a message has, so that a plan deletes
// only those: each deletion is a search of the front end's header list.
// The zero value has none.
type HeaderSet uint32

// AllHeaders is the HeaderSet of a message whose names were not looked
// at: every name may be present.
const AllHeaders = HeaderSet(^uint32(0))

// See records one header name (any case).
func (s *HeaderSet) See(name []byte) { *s |= HeaderSet(presentBit(name)) }

// PlanReply fills pl with the proxy's own answer to d (ActRespond or
// ActRedirect, d.Status): Content-Type, Retry-After for a 429,
// WWW-Authenticate for a 401, Location for a redirect, X-Request-Id, and
// a short plain body naming the status and the request ID (or d.Body). A
// forward-auth service's 401 or 403 is relayed instead: its headers
// (d.ReplyHeaders, in place of the Content-Type) and its body.
// Front ends that speak gRPC turn it into a trailers-only status instead.
func (p *Pipeline) PlanReply(d *Decision, pl *Plan) {
	pl.reset()
	if d.ReplyHeaders == nil {
		pl.Set = append(pl.Set, hdrContentType)
	}
	if d.RetryAfter > 0 {
		pl.via = strconv.AppendInt(pl.via[:0], int64(d.RetryAfter), 10)
		pl.Set = append(pl.Set, Field{Name: hdrRetryAfter.Name, Key: hdrRetryAfter.Key, Value: pl.via})
	}
	if d.WWWAuthenticate != nil && d.Status == 401 {
		pl.Set = append(pl.Set, Field{Name: hdrWWWAuthenticate.Name, Key: hdrWWWAuthenticate.Key, Value: d.WWWAuthenticate})
	}
	if d.Action == ActRedirect {
		pl.Set = append(pl.Set, Field{Name: hdrLocation.Name, Key: hdrLocation.Key, Value: d.Location})
	}
	for i := range d.ReplyHeaders {
		hv := &d.ReplyHeaders[i]
		f := Field{Name: s2b(hv.Name), Key: hv.Name, Value: s2b(hv.Value)}
		if i > 0 && d.ReplyHeaders[i-1].Name == hv.Name {
			pl.Add = append(pl.Add, f) // a repeated name (they are sorted)
		} else {
			pl.Set = append(pl.Set, f)
		}
	}
	pl.Set = append(pl.Set, Field{Name: hdrXRequestID.Name, Key: hdrXRequestID.Key, Value: d.RequestID})
	if d.Body != nil {
		pl.Body = d.Body
		return
	}
	pl.body = AppendStatusBody(pl.body[:0], d.Status, d.RequestID)
	pl.Body = pl.body
}

// delTokens adds each comma-separated token of a Connection value to Del
// (RFC 9110 §7.6.1).
func (pl *Plan) delTokens(v []byte) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		tok := v
		if i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if tok = bytes.TrimSpace(tok); len(tok) > 0 {
			pl.Del = append(pl.Del, Field{Name: tok})
		}
	}
}

// hasToken reports whether the comma-separated list v holds tok, ignoring
// case and optional whitespace (RFC 9110 §5.6.1).
func hasToken(v, tok []byte) bool {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		t := v
		if i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if bytes.EqualFold(bytes.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// equalDashFold reports whether a and b are equal ignoring ASCII case and
// treating "_" and "-" as the same byte.
func equalDashFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := lower(a[i]), lower(b[i])
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if x != y {
			return false
		}
	}
	return true
}

// appendStickyCookie appends the Set-Cookie value pinning rt to b
// (Aralez's cookie name backend_id).
func appendStickyCookie(dst []byte, rt *Route, b *balancer.Backend) []byte {
	rp := &rt.policy
	c := append(dst, strStickyCookie...)
	c = append(c, '=')
	c = rp.sticky.AppendValue(c, rt.Key, b)
	c = append(c, "; Path="...)
	c = append(c, rp.cookiePath...)
	c = append(c, "; Max-Age="...)
	c = strconv.AppendInt(c, int64(rp.stickyMaxAge), 10)
	c = append(c, "; HttpOnly; SameSite=Lax"...)
	return c
}

// s2b returns the bytes of s without copying; they must not be modified.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
