// Package forward is the forward-auth client: it asks an external HTTP
// service whether a request may pass (Traefik's ForwardAuth, nginx's
// auth_request). The decision types live in package auth; this package
// holds the net/http client, so that the proxy's front-end-neutral
// pipeline can name forward auth without importing an HTTP stack.
package forward

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aralez-go/aralez/policy/auth"
)

// maxForwardBody is how much of an auth response body is read (and
// dropped) so that the connection can be reused.
const maxForwardBody = 64 << 10

// Client delegates authentication to an external HTTP service (forward
// auth, as in Traefik's ForwardAuth and nginx's auth_request). It fails
// closed: any error or unexpected answer is Unavailable. Safe for
// concurrent use; Close releases its idle connections.
type Client struct {
	url       string
	timeout   time.Duration
	headers   []string
	transport *http.Transport
	client    *http.Client
}

// New returns a Client calling rawURL. It returns an error
// wrapping ErrForwardURL when rawURL is not an absolute http or https URL
// with a host. It opens no connection.
func New(rawURL string, o auth.ForwardOptions) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", auth.ErrForwardURL, rawURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q: want http:// or https:// and a host", auth.ErrForwardURL, rawURL)
	}
	if o.Timeout <= 0 {
		o.Timeout = auth.DefaultForwardTimeout
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = auth.DefaultForwardMaxIdleConns
	}
	if o.ResponseHeaders == nil {
		o.ResponseHeaders = auth.DefaultResponseHeaders()
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
	return &Client{
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
// with the status and Location, 401 and 403 give Deny with the status,
// WWW-Authenticate, the headers to relay and the body (at most
// auth.MaxForwardReplyBytes), and anything else, an unreachable service
// or a timeout gives Unavailable (status 503).
func (f *Client) Check(ctx context.Context, r *auth.ForwardRequest) auth.ForwardResult {
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
		res := auth.ForwardResult{Decision: auth.Allow, Status: s}
		for _, name := range f.headers {
			for _, v := range resp.Header.Values(name) {
				res.Headers = append(res.Headers, auth.HeaderValue{Name: name, Value: v})
			}
		}
		return res
	case s >= 300 && s < 400:
		return auth.ForwardResult{Decision: auth.Redirect, Status: s, Location: resp.Header.Get("Location")}
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		// The answer is the auth service's own (a login hint, a JSON
		// error): relayed with its headers and body (issue 11).
		body, err := io.ReadAll(io.LimitReader(resp.Body, auth.MaxForwardReplyBytes))
		if err != nil {
			return unavailable(fmt.Errorf("forward auth: reading the %d body: %w", s, err))
		}
		return auth.ForwardResult{
			Decision:        auth.Deny,
			Status:          s,
			WWWAuthenticate: strings.Join(resp.Header.Values("Www-Authenticate"), ", "),
			Reply:           replyHeaders(resp.Header),
			Body:            body,
		}
	default:
		return unavailable(fmt.Errorf("forward auth: unexpected status %d", s))
	}
}

// hopByHop are the response headers that are never relayed (RFC 9110
// §7.6.1), with Content-Length, which the proxy sets for the body it sends.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

// replyHeaders returns the headers of h to relay, sorted by name: all but
// the hop-by-hop ones and those that Connection names.
func replyHeaders(h http.Header) []auth.HeaderValue {
	named := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				named[http.CanonicalHeaderKey(tok)] = true
			}
		}
	}
	names := make([]string, 0, len(h))
	for name := range h {
		if !hopByHop[name] && !named[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []auth.HeaderValue
	for _, name := range names {
		for _, v := range h[name] {
			out = append(out, auth.HeaderValue{Name: name, Value: v})
		}
	}
	return out
}

// Close closes the idle connections to the auth service. Check may still
// be called afterwards; it dials again.
func (f *Client) Close() { f.transport.CloseIdleConnections() }

func unavailable(err error) auth.ForwardResult {
	return auth.ForwardResult{Decision: auth.Unavailable, Status: http.StatusServiceUnavailable, Err: err}
}

func setIf(h http.Header, name, value string) {
	if value != "" {
		h.Set(name, value)
	}
}
