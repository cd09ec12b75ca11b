package pipeline

import (
	"bytes"
	"strconv"
)

// acmeChallengePrefix is where ACME HTTP-01 challenges are fetched
// (RFC 8555 §8.3).
var acmeChallengePrefix = []byte("/.well-known/acme-challenge/")

// Route is step 1 of the pipeline. It is pure: it reads s and r, writes d
// and changes no counter, so it may run more than once for a request
// (Expect: 100-continue). In order:
//
//   - an ACME HTTP-01 challenge this instance holds → 200 with the key
//     authorization, before anything else (no route, list or auth may
//     block certificate issuance);
//   - host, then an exact route for the routing path (the path without
//     its segments' ";parameters", AppendRoutingPath), else its longest
//     path prefix → 404 when nothing matches; a segment that is "." or
//     ".." once its parameters are dropped → 400;
//   - a declared body over the route's max_request_body_bytes (the
//     path's, else the global one; Decision.BodyLimit) → 413;
//   - %2F, %5C, "\", %3B, %3F or %23 in the path that, decoded, would
//     route elsewhere → 400 (else the path is forwarded as it is);
//   - the client address (trusted_proxies), then allow/deny → 403;
//   - to_https and redirect_to → 301 for GET and HEAD, else 308; to_https
//     for an HTTP/1.0 request without Host (routed to DEFAULT, which names
//     no host to redirect to) → 400;
//   - no backend → 503;
//   - else ActForward, for Admit.
//
// d must have been Reset for this request. It allocates nothing.
func (p *Pipeline) Route(s *Snapshot, r *Request, d *Decision) {
	d.Action, d.Status, d.Route = ActRespond, 0, nil
	d.TrustedPeer = len(p.opts.TrustedProxies) > 0 && InPrefixes(p.opts.TrustedProxies, r.Peer)
	d.Client = p.clientOf(r)
	if in := r.RequestID; d.TrustedPeer && validRequestID(in) {
		d.rid = append(d.rid[:0], in...)
		d.RequestID = d.rid
	}
	if p.opts.Challenges != nil && bytes.HasPrefix(r.Path, acmeChallengePrefix) {
		if ka, ok := p.opts.Challenges.HTTPChallenge(r.Host, r.Path[len(acmeChallengePrefix):]); ok {
			d.Status, d.Body = 200, ka
			return
		}
	}
	path := r.Path
	if bytes.IndexByte(path, ';') >= 0 {
		// Servlet backends serve "/admin;v=1/x" as "/admin/x": route
		// (and so authorize) on that, forward the path unchanged.
		rp, ok := AppendRoutingPath(d.rpath[:0], path)
		d.rpath = rp
		if !ok {
			d.Status = 400
			return
		}
		path = rp
	}
	rt := s.Match(r.Host, path)
	if rt == nil {
		d.Status = 404
		return
	}
	d.BodyLimit = p.opts.MaxRequestBodyBytes
	if rt.maxBodySet {
		d.BodyLimit = rt.maxBody
	}
	if d.BodyLimit > 0 && r.ContentLength > d.BodyLimit {
		d.Status = 413
		return
	}
	if hasEncodedDelimiter(r.Path) {
		// An upstream that decodes %2F or %5C (or treats "\" as "/"),
		// %3B, or %3F and %23 (then cutting the path there) would see
		// another path than the one routed on; refuse when that path
		// belongs to another route, so /admin%2Fx or /admin%3F/x can
		// never bypass /admin's policies through the "/" route.
		alt, ok := appendDecodedPath(d.buf[:0], r.Path)
		d.buf = alt[:0]
		if !ok || s.Match(r.Host, alt) != rt {
			d.Status = 400
			return
		}
	}
	d.Route = rt
	if !rt.policy.allowed(d.Client) {
		d.Status = 403
		return
	}
	if rt.toHTTPS && !r.TLS {
		if len(r.Host) == 0 {
			// HTTP/1.0 without Host, which only the DEFAULT host routes:
			// it names no host to redirect to, and "https:///…" is no URL.
			d.Status = 400
			return
		}
		b := append(d.buf[:0], "https://"...)
		b = append(b, r.Host...)
		if port := p.opts.TLSPort; port != 0 && port != 443 {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(port), 10)
		}
		b = appendPathQuery(b, r.Path, redirectQuery(r.Query, d))
		d.Action, d.Status = ActRedirect, redirectStatus(r.Method)
		d.buf, d.Location = b, b
		return
	}
	if len(rt.redirectTo) > 0 {
		b := append(d.buf[:0], rt.redirectTo...)
		b = appendPathQuery(b, r.Path, redirectQuery(r.Query, d))
		d.Action, d.Status = ActRedirect, redirectStatus(r.Method)
		d.buf, d.Location = b, b
		return
	}
	if rt.pool == nil || rt.pool.Len() == 0 {
		d.Status = 503
		return
	}
	d.Action = ActForward
}

// redirectStatus is the status of a to_https or redirect_to answer: 301
// for GET and HEAD, as Aralez sends; 308 for any other method, which a
// client must repeat with the same method and body (RFC 9110 §15.4.9),
// where after a 301 many turn a POST into a GET (§15.4.2).
func redirectStatus(method []byte) int {
	switch string(method) {
	case "GET", "HEAD":
		return 301
	}
	return 308
}

// validRequestID reports whether a client's X-Request-Id may be kept: 1
// to 128 visible ASCII characters.
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// appendPathQuery appends path, then "?" and query when query is not
// empty.
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
func redirectQuery(q []byte, d *Decision) []byte {
	if !bytes.Contains(q, strTokenParam) {
		return q
	}
	d.qbuf = appendQueryWithout(d.qbuf[:0], q, strTokenParam)
	return d.qbuf
}

// hasEncodedDelimiter reports whether a normalized path holds %2F, %5C,
// %3B, %3F or %23 (normalization upper-cases escapes) or a raw backslash.
func hasEncodedDelimiter(p []byte) bool {
	if bytes.IndexByte(p, '\\') >= 0 {
		return true
	}
	for {
		i := bytes.IndexByte(p, '%')
		if i < 0 || i+2 >= len(p) {
			return false
		}
		switch string(p[i+1 : i+3]) {
		case "2F", "5C", "3B", "3F", "23":
			return true
		}
		p = p[i+3:]
	}
}

// appendDecodedPath appends the routing path (AppendRoutingPath) of the
// path an upstream that decodes delimiters would see for the normalized
// path p: %2F, %5C and "\" become "/", %3B becomes ";", and %3F or %23
// ends the path (the rest would be a query or a fragment). It reports
// false when that path cannot be routed at all.
func appendDecodedPath(dst, p []byte) ([]byte, bool) {
	start := len(dst)
decode:
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			switch string(p[i+1 : i+3]) {
			case "2F", "5C":
				dst = append(dst, '/')
				i += 2
				continue
			case "3B":
				dst = append(dst, ';')
				i += 2
				continue
			case "3F", "23":
				break decode
			}
		}
		if c == '\\' {
			c = '/'
		}
		dst = append(dst, c)
	}
	n := len(dst)
	dst, err := AppendNormalizedPath(dst, dst[start:n])
	if err != nil {
		return dst[:start], false
	}
	m := len(dst)
	dst, ok := AppendRoutingPath(dst, dst[n:m])
	if !ok {
		return dst[:start], false
	}
	return append(dst[:start], dst[m:]...), true
}
