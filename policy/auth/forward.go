package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// DefaultForwardTimeout bounds one call to the auth service, from
	// dialling to the response headers, when ForwardOptions.Timeout is
	// zero.
	DefaultForwardTimeout = 5 * time.Second

	// DefaultForwardMaxIdleConns is the number of idle connections kept to
	// the auth service when ForwardOptions.MaxIdleConns is zero.
	DefaultForwardMaxIdleConns = 64

	// maxForwardBody is how much of an auth response body is read (and
	// dropped) so that the connection can be reused.
	maxForwardBody = 64 << 10
)

// ErrForwardURL is returned by NewForward for a URL that is not an
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
	// Deny means the auth service answered 401 or 403: send that status
	// and WWW-Authenticate to the client.
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
	// challenges, comma-separated), for Deny.
	WWWAuthenticate string
	// Headers holds the auth service's values of the ResponseHeaders, in
	// that order, for Allow; nil otherwise.
	Headers []HeaderValue
	// Err says why the decision is Unavailable, for the log; nil
	// otherwise.
	Err error
}

// Forward delegates authentication to an external HTTP service (forward
// auth, as in Traefik's ForwardAuth and nginx's auth_request). It fails
// closed: any error or unexpected answer is Unavailable. Safe for
// concurrent use; Close releases its idle connections.
type Forward struct {
	url       string
	timeout   time.Duration
	headers   []string
	transport *http.Transport
	client    *http.Client
}

// NewForward returns a Forward calling rawURL. It returns an error
// wrapping ErrForwardURL when rawURL is not an absolute http or https URL
// with a host. It opens no connection.
func NewForward(rawURL string, o ForwardOptions) (*Forward, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrForwardURL, rawURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q: want http:// or https:// and a host", ErrForwardURL, rawURL)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultForwardTimeout
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = DefaultForwardMaxIdleConns
	}
	if o.ResponseHeaders == nil {
		o.ResponseHeaders = DefaultResponseHeaders()
	}
	headers := make([]string, len(o.ResponseHeaders))
	for i, h := range o.ResponseHeaders {
		headers[i] = http.CanonicalHeaderKey(h)
	}
	t := &http.Transport{
		Proxy:                 nil, // never route auth calls through an environment proxy
		DialContext:           (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          o.MaxIdleConns,
		MaxIdleConnsPerHost:   o.MaxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		ForceAttemptHTTP2:     true,
	}
	return &Forward{
		url:       u.String(),
		timeout:   o.Timeout,
		headers:   headers,
		transport: t,
		client: &http.Client{
			Transport: t,
			// A redirect is the auth service's answer for the client,
			// not something to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Check asks the auth service about r: a GET (HEAD when r.Method is HEAD)
// to the URL with X-Forwarded-Method, -Proto, -Host, -Uri and -For and the
// client's Authorization and Cookie headers, bounded by the timeout and
// ctx. 2xx gives Allow with the ResponseHeaders values, 3xx gives Redirect
// with the status and Location, 401 and 403 give Deny with the status and
// WWW-Authenticate, and anything else, an unreachable service or a timeout
// gives Unavailable (status 503).
func (f *Forward) Check(ctx context.Context, r *ForwardRequest) ForwardResult {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	method := http.MethodGet
	if r.Method == http.MethodHead {
		method = http.MethodHead
	}
	req, err := http.NewRequestWithContext(ctx, method, f.url, nil)
	if err != nil {
		return unavailable(fmt.Errorf("forward auth: building request: %w", err))
	}
	h := req.Header
	setIf(h, "X-Forwarded-Method", r.Method)
	setIf(h, "X-Forwarded-Proto", r.Proto)
	setIf(h, "X-Forwarded-Host", r.Host)
	setIf(h, "X-Forwarded-Uri", r.URI)
	setIf(h, "X-Forwarded-For", r.ClientAddr)
	setIf(h, "Authorization", r.Authorization)
	setIf(h, "Cookie", r.Cookie)

	resp, err := f.client.Do(req)
	if err != nil {
		return unavailable(fmt.Errorf("forward auth: %w", err))
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxForwardBody))
		_ = resp.Body.Close()
	}()

	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		res := ForwardResult{Decision: Allow, Status: s}
		for _, name := range f.headers {
			for _, v := range resp.Header.Values(name) {
				res.Headers = append(res.Headers, HeaderValue{Name: name, Value: v})
			}
		}
		return res
	case s >= 300 && s < 400:
		return ForwardResult{Decision: Redirect, Status: s, Location: resp.Header.Get("Location")}
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return ForwardResult{
			Decision:        Deny,
			Status:          s,
			WWWAuthenticate: strings.Join(resp.Header.Values("Www-Authenticate"), ", "),
		}
	default:
		return unavailable(fmt.Errorf("forward auth: unexpected status %d", s))
	}
}

// Close closes the idle connections to the auth service. Check may still
// be called afterwards; it dials again.
func (f *Forward) Close() { f.transport.CloseIdleConnections() }

func unavailable(err error) ForwardResult {
	return ForwardResult{Decision: Unavailable, Status: http.StatusServiceUnavailable, Err: err}
}

func setIf(h http.Header, name, value string) {
	if value != "" {
		h.Set(name, value)
	}
}
