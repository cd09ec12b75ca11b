package cache

import (
	"iter"
	"time"
)

// Header names the rules read.
var (
	strAge               = []byte("Age")
	strDate              = []byte("Date")
	strExpires           = []byte("Expires")
	strETag              = []byte("ETag")
	strLastModified      = []byte("Last-Modified")
	strVary              = []byte("Vary")
	strCacheControl      = []byte("Cache-Control")
	strPragma            = []byte("Pragma")
	strRange             = []byte("Range")
	strAuthorization     = []byte("Authorization")
	strIfNoneMatch       = []byte("If-None-Match")
	strIfModifiedSince   = []byte("If-Modified-Since")
	strCookie            = []byte("Cookie")
	strLocation          = []byte("Location")
	strContentLocation   = []byte("Content-Location")
	strGET               = []byte("GET")
	strHEAD              = []byte("HEAD")
	strHeuristicStatuses = [...]int{200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}
)

// Reason says why a response was not stored; NotStored… values are
// returned by Store for tests, logs and the hit-for-miss rule.
type Reason uint8

// Reasons a response is not stored.
const (
	// Stored means the response was stored.
	Stored Reason = iota
	// NotStoredMethod: only GET responses are stored (HEAD is answered
	// from them).
	NotStoredMethod
	// NotStoredStatus: the status is not one the cache stores (206, 304,
	// 1xx, 5xx other than 501, and codes without explicit freshness that
	// are not heuristically cacheable).
	NotStoredStatus
	// NotStoredRequestNoStore: the request said Cache-Control: no-store.
	NotStoredRequestNoStore
	// NotStoredNoStore: the response said no-store.
	NotStoredNoStore
	// NotStoredPrivate: the response said private.
	NotStoredPrivate
	// NotStoredCredentials: the request carried credentials and the
	// response said neither public, s-maxage nor must-revalidate (RFC
	// 9111 §3.5).
	NotStoredCredentials
	// NotStoredSetCookie: the response sets a cookie.
	NotStoredSetCookie
	// NotStoredVaryStar: the response said Vary: *.
	NotStoredVaryStar
	// NotStoredTooLarge: the body is over the per-entry limit, or was
	// streamed.
	NotStoredTooLarge
	// NotStoredNoFreshness: nothing makes the response reusable: no
	// freshness, no validator and no stale-* window.
	NotStoredNoFreshness
	// NotStoredDisabled: the cache is off.
	NotStoredDisabled
	// NotStoredVaryRepeated: the request has more than one line of a
	// field the response varies on. The upstream saw every line, so
	// keying the answer on one of them would serve it to requests that
	// sent only that one (cache poisoning). The request's doing, not the
	// response's: no hit-for-miss marker is left.
	NotStoredVaryRepeated
	// NotStoredVaryProxySet: the response varies on a field the proxy
	// sets on the upstream request (X-Forwarded-*, X-Real-IP, Forwarded,
	// Via, X-Request-Id, forward auth's Remote-User and the rest of
	// its default headers). The upstream saw the proxy's value, which a
	// client can send itself to match another client's variant.
	NotStoredVaryProxySet
)

var reasonNames = [...]string{"stored", "method", "status", "request no-store", "no-store", "private",
	"credentials", "set-cookie", "vary *", "too large", "no freshness", "disabled", "vary repeated", "vary proxy-set"}

// String returns a short name for the reason.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// heuristic reports whether status may get the default TTL when the
// response gives no freshness of its own (RFC 9110 §15.1 lists the
// heuristically cacheable codes; 206 is left out because Range requests
// bypass the cache).
func heuristic(status int) bool {
	for _, s := range strHeuristicStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// understood reports whether the cache stores status at all: the
// heuristic codes plus the redirects 302, 303 and 307 with explicit
// freshness. 206, 304, 1xx and server errors other than 501 are never
// stored, so stale-if-error can serve over them.
func understood(status int) bool {
	return heuristic(status) || status == 302 || status == 303 || status == 307
}

// freshness is the outcome of the storage rules for one response.
type freshness struct {
	reason         Reason
	lifetime       int64 // ns
	swr, sie       int64 // ns, -1 = none
	noCache        bool
	mustRevalidate bool
	shareable      bool
}

// storeRules applies RFC 9111 §3 (storing), §3.5 (credentials), §4.2.1
// (freshness lifetime) and RFC 5861 to a response. ttl is the default
// lifetime for responses without freshness information (cache_ttl);
// responseTime is when the response arrived (Unix ns), used when it has
// no Date.
func storeRules(r *Request, reqCC *requestCC, resp *Response, h Fields, maxObject int, ttl int64) freshness {
	f := freshness{swr: absent, sie: absent}
	if string(r.Method) != "GET" {
		f.reason = NotStoredMethod
		return f
	}
	if reqCC.noStore {
		f.reason = NotStoredRequestNoStore
		return f
	}
	if !understood(resp.Status) {
		f.reason = NotStoredStatus
		return f
	}
	cc := parseResponseCC(h)
	// must-understand with a status the cache understands overrides
	// no-store (RFC 9111 §5.2.2.3).
	if cc.noStore && !cc.mustUnderstd {
		f.reason = NotStoredNoStore
		return f
	}
	if cc.private {
		f.reason = NotStoredPrivate
		return f
	}
	f.shareable = cc.public || cc.sMaxAge != absent || cc.mustRevalidate
	if r.Credentials && !f.shareable {
		f.reason = NotStoredCredentials
		return f
	}
	if h.Has(strSetCookie) {
		f.reason = NotStoredSetCookie
		return f
	}
	if varyStar(h) {
		f.reason = NotStoredVaryStar
		return f
	}
	for name := range varyNames(h) {
		if proxySet(name) {
			f.reason = NotStoredVaryProxySet
			return f
		}
		if r.Header.Repeated(name) {
			f.reason = NotStoredVaryRepeated
			return f
		}
	}
	if resp.Streamed || len(resp.Body) > maxObject {
		f.reason = NotStoredTooLarge
		return f
	}
	f.noCache = cc.noCache
	// s-maxage implies proxy-revalidate for a shared cache (§5.2.2.10).
	f.mustRevalidate = cc.mustRevalidate || cc.proxyRevalidate || cc.sMaxAge != absent
	if !f.mustRevalidate {
		if cc.staleWhileRevalidate != absent {
			f.swr = cc.staleWhileRevalidate * int64(time.Second)
		}
		if cc.staleIfError != absent {
			f.sie = cc.staleIfError * int64(time.Second)
		}
	}
	switch {
	case cc.sMaxAge != absent:
		f.lifetime = cc.sMaxAge * int64(time.Second)
	case cc.maxAge != absent:
		f.lifetime = cc.maxAge * int64(time.Second)
	case h.Has(strExpires):
		exp, ok := parseHTTPDate(h.Get(strExpires))
		date, dok := parseHTTPDate(h.Get(strDate))
		if !dok {
			date = resp.ResponseTime / int64(time.Second)
		}
		if ok && exp > date {
			// An invalid Expires ("0") means already expired, §5.3.
			f.lifetime = (exp - date) * int64(time.Second)
		}
	case heuristic(resp.Status) || cc.public:
		// No freshness information: the configured default (cache_ttl)
		// stands in for RFC 9111 §4.2.2's heuristic.
		f.lifetime = ttl
	default:
		f.reason = NotStoredStatus
		return f
	}
	if f.lifetime == 0 && f.swr <= 0 && f.sie <= 0 && !h.Has(strETag) && !h.Has(strLastModified) {
		f.reason = NotStoredNoFreshness
		return f
	}
	return f
}

var strSetCookie = []byte("Set-Cookie")

// varyStar reports whether a Vary field lists "*".
func varyStar(h Fields) bool {
	for name := range varyNames(h) {
		if len(name) == 1 && name[0] == '*' {
			return true
		}
	}
	return false
}

// proxySetFields are the request fields whose upstream value the proxy
// sets itself (forwarding headers, Via, X-Request-Id, and forward
// auth's default auth_response_headers).
var proxySetFields = [...]string{"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
	"x-forwarded-prefix", "x-forwarded-server", "x-real-ip", "forwarded", "via", "x-request-id",
	"remote-user", "remote-groups", "remote-email", "remote-name", "x-forwarded-user"}

// proxySet reports whether name is one of proxySetFields.
func proxySet(name []byte) bool {
	for _, f := range proxySetFields {
		if equalFold(name, f) {
			return true
		}
	}
	return false
}

// varyNames iterates over the field names listed by the Vary fields of h.
func varyNames(h Fields) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for n, v := range h.All() {
			if !equalFold(n, "vary") {
				continue
			}
			for len(v) > 0 {
				var item []byte
				if item, v = nextListItem(v); len(item) > 0 && !yield(item) {
					return
				}
			}
		}
	}
}

// skipStored reports whether a response field is left out of an entry:
// Age (recomputed on every hit), Content-Length (the front end sets it
// from the body), and hop-by-hop fields a front end should have removed
// already (RFC 9110 §7.6.1; RFC 9111 §3.1).
func skipStored(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 3:
		return equalFold(name, "age")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 14:
		return equalFold(name, "content-length")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	}
	return false
}

// ageValue reads the response's Age field (RFC 9111 §5.1), 0 when absent
// or invalid.
func ageValue(h Fields) int64 {
	v := h.Get(strAge)
	if v == nil {
		return 0
	}
	return parseDelta(trimOWS(v))
}

// Invalidates reports whether a response with status to a request with
// method invalidates the stored responses for its target URI: an unsafe
// method (anything but GET, HEAD, OPTIONS, TRACE) answered with a
// non-error status (RFC 9111 §4.4).
func Invalidates(method []byte, status int) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return false
	}
	return status >= 200 && status < 400
}
