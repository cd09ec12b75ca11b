package auth

import (
	"errors"
	"time"
)

const (
	// MaxForwardReplyBytes caps the body of a 401 or 403 from the auth
	// service that is relayed to the client: 64 KiB.
	MaxForwardReplyBytes = 64 << 10

	// DefaultForwardTimeout bounds one call to the auth service, from
	// dialling to the response headers, when ForwardOptions.Timeout is
	// zero.
	DefaultForwardTimeout = 5 * time.Second

	// DefaultForwardMaxIdleConns is the number of idle connections kept to
	// the auth service when ForwardOptions.MaxIdleConns is zero.
	DefaultForwardMaxIdleConns = 64
)

// ErrForwardURL is returned by forward.New for a URL that is not an
// absolute http or https URL with a host.
var ErrForwardURL = errors.New("auth: invalid forward auth URL")

// DefaultResponseHeaders returns the headers taken from the auth service
// when ForwardOptions.ResponseHeaders is nil: Remote-User, Remote-Groups,
// Remote-Email, Remote-Name and X-Forwarded-User. It returns a new slice
// on each call.
func DefaultResponseHeaders() []string {
	return []string{"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "X-Forwarded-User"}
}

// Decision is what the proxy does with a request after forward auth. The
// zero value is Unavailable, so a Decision that was never set fails
// closed.
type Decision uint8

const (
	// Unavailable means the auth service could not give an answer: it was
	// unreachable, timed out, or answered with a status other than 2xx,
	// 3xx, 401 or 403. The proxy answers 503 and never forwards.
	Unavailable Decision = iota
	// Allow means the auth service answered 2xx: forward the request,
	// with ForwardResult.Headers set on it.
	Allow
	// Redirect means the auth service answered 3xx: send that status and
	// Location to the client (typically a login page).
	Redirect
	// Deny means the auth service answered 401 or 403: send that status,
	// its headers and its body to the client (ForwardResult.Reply and
	// Body).
	Deny
)

// String returns the lower-case name of d, for logs and metrics labels.
func (d Decision) String() string {
	switch d {
	case Unavailable:
		return "unavailable"
	case Allow:
		return "allow"
	case Redirect:
		return "redirect"
	case Deny:
		return "deny"
	}
	return "unknown"
}

// HeaderValue is one header field. Name is in canonical form.
type HeaderValue struct {
	Name, Value string
}

// ForwardOptions configures a Forward. The zero value is usable.
type ForwardOptions struct {
	// Timeout bounds one call to the auth service, including dialling,
	// TLS and waiting for the response headers. Zero or negative means
	// DefaultForwardTimeout.
	Timeout time.Duration

	// ResponseHeaders names the headers copied from a 2xx answer of the
	// auth service to the upstream request. The caller must also remove
	// client-sent copies of these names, whatever the decision. Nil means
	// DefaultResponseHeaders; an empty non-nil slice means none.
	ResponseHeaders []string

	// MaxIdleConns is the number of idle connections kept to the auth
	// service. Zero or negative means DefaultForwardMaxIdleConns.
	MaxIdleConns int
}

// ForwardRequest is what the auth service is told about a client request.
// Empty fields are not sent.
type ForwardRequest struct {
	Method        string // the client's method; sent as X-Forwarded-Method
	Proto         string // "http" or "https"; sent as X-Forwarded-Proto
	Host          string // the client's Host; sent as X-Forwarded-Host
	URI           string // the client's request URI (path and query); sent as X-Forwarded-Uri
	ClientAddr    string // the client address (see trusted_proxies); sent as X-Forwarded-For
	Authorization string // the client's Authorization header, sent as is
	Cookie        string // the client's Cookie header, sent as is
}

// ForwardResult is the answer of the auth service, reduced to what the
// proxy needs.
type ForwardResult struct {
	// Decision says what to do with the request.
	Decision Decision
	// Status is the auth service's status code for Allow, Redirect and
	// Deny, and 503 for Unavailable.
	Status int
	// Location is the auth service's Location header, for Redirect.
	Location string
	// WWWAuthenticate is the auth service's WWW-Authenticate header (all
	// challenges, comma-separated), for Deny. Reply holds it too.
	WWWAuthenticate string
	// Reply holds, for Deny, every header of the auth service's answer
	// but the hop-by-hop ones (RFC 9110 §7.6.1) and Content-Length, in
	// canonical form, a repeated name once per value; the proxy relays
	// them with the status. Nil otherwise.
	Reply []HeaderValue
	// Body is, for Deny, the auth service's body, at most
	// MaxForwardReplyBytes of it (the rest is dropped). Nil otherwise.
	Body []byte
	// Headers holds the auth service's values of the ResponseHeaders, in
	// that order, for Allow; nil otherwise.
	Headers []HeaderValue
	// Err says why the decision is Unavailable, for the log; nil
	// otherwise.
	Err error
}
