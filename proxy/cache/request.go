package cache

import (
	"bytes"
	"strings"
)

// Peeker gives the cache read access to a request's header fields. Peek
// returns the value of the first field named name (case-insensitive), or
// nil when there is none; the value is only read during the call.
// Repeated reports whether the request has more than one field line
// named name, as forwarded upstream (lines a front end joins into the
// value Peek returns, such as HTTP/2's Cookie lines, count as one); the
// cache asks it only for the fields a response varies on. Front ends
// implement it on a pointer to their own header type, so passing one
// allocates nothing.
type Peeker interface {
	Peek(name []byte) []byte
	Repeated(name []byte) bool
}

// Request is what the cache reads from a client request. Its slices are
// views owned by the caller, read only during the call they are passed
// to.
type Request struct {
	// Method is the request method.
	Method []byte
	// Key is the primary cache key, built with AppendKey.
	Key []byte
	// Credentials marks a request that carries credentials: an
	// Authorization field, or any request on a route with an
	// authorization policy (the identity never reaches the cache key, so
	// every request there counts as authenticated). RFC 9111 §3.5.
	Credentials bool
	// TTL is the route's default freshness lifetime (path-level
	// cache_ttl); zero means the cache's Options.DefaultTTL.
	TTL int64
	// Header gives the request's fields: Cache-Control, Pragma, Range,
	// If-None-Match, If-Modified-Since and those a stored response varies
	// on.
	Header Peeker
}

// Response is what the cache reads from an upstream response. Its slices
// are copied when the response is stored.
type Response struct {
	// Status is the status code.
	Status int
	// Header holds the response fields as they would be sent to the
	// client, hop-by-hop fields removed, before the route's
	// client_headers are applied (those apply on every hit).
	Header Fields
	// Body is the whole body (nil for none).
	Body []byte
	// Streamed marks a body that was not buffered (too large or of
	// unknown length): such a response is never stored.
	Streamed bool
	// RequestTime and ResponseTime are when the request was sent upstream
	// and when the response headers arrived, Unix ns (RFC 9111 §4.2.3).
	RequestTime, ResponseTime int64
}

// AppendKey appends the primary cache key of a request to dst: scheme,
// "://", the normalized host, the forwarded path and, when non-empty,
// "?" and the forwarded query (without araleztoken). Aralez keys on the
// host and path (primary) plus the path and query (secondary); this key
// holds the same parts, plus the scheme so that a to_https route can
// never answer https from an http entry.
func AppendKey(dst []byte, tls bool, host, path, query []byte) []byte {
	if tls {
		dst = append(dst, "https://"...)
	} else {
		dst = append(dst, "http://"...)
	}
	dst = append(dst, host...)
	dst = append(dst, path...)
	if len(query) > 0 {
		dst = append(dst, '?')
		dst = append(dst, query...)
	}
	return dst
}

// AppendSameOriginKey appends the key of the URI reference ref (a
// Location or Content-Location value) resolved against a request on
// host, when it names the same origin: an absolute path, or an absolute
// URI with the same scheme and host. ok is false for anything else
// (RFC 9111 §4.4 invalidates only same-origin URIs).
func AppendSameOriginKey(dst []byte, tls bool, host, ref []byte) (_ []byte, ok bool) {
	ref = trimOWS(ref)
	if i := bytes.IndexByte(ref, '#'); i >= 0 {
		ref = ref[:i]
	}
	var scheme string
	switch {
	case len(ref) > 0 && ref[0] == '/' && (len(ref) == 1 || ref[1] != '/'):
	case hasPrefixFold(ref, "https://"):
		scheme, ref = "https://", ref[len("https://"):]
	case hasPrefixFold(ref, "http://"):
		scheme, ref = "http://", ref[len("http://"):]
	default:
		return dst, false
	}
	if scheme != "" {
		if (scheme == "https://") != tls {
			return dst, false
		}
		end := bytes.IndexAny(ref, "/?")
		if end < 0 {
			end = len(ref)
		}
		if !equalFold(ref[:end], host) {
			return dst, false
		}
		ref = ref[end:]
		if len(ref) == 0 || ref[0] == '?' {
			dst = AppendKey(dst, tls, host, []byte{'/'}, nil)
			if len(ref) > 1 {
				dst = append(dst, ref...)
			}
			return dst, true
		}
	}
	path, query := ref, []byte(nil)
	if i := bytes.IndexByte(ref, '?'); i >= 0 {
		path, query = ref[:i], ref[i+1:]
	}
	return AppendKey(dst, tls, host, path, query), true
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && equalFold(b[:len(p)], p)
}

// BypassList is a compiled cache_bypass list: request header names and
// cookie names whose presence makes a request skip the cache. The zero
// value bypasses nothing. It is immutable and safe for concurrent use.
type BypassList struct {
	headers [][]byte
	cookies [][]byte
}

// NewBypassList compiles cache_bypass entries: "Name" is a header,
// "cookie:NAME" a cookie (config.Validate has checked both are tokens).
func NewBypassList(entries []string) BypassList {
	var b BypassList
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e, "cookie:"); ok {
			b.cookies = append(b.cookies, []byte(name))
		} else {
			b.headers = append(b.headers, []byte(e))
		}
	}
	return b
}

// Match reports whether the request h has one of the listed headers or
// cookies. It allocates nothing.
func (b *BypassList) Match(h Peeker) bool {
	for _, n := range b.headers {
		if h.Peek(n) != nil {
			return true
		}
	}
	if len(b.cookies) == 0 {
		return false
	}
	c := h.Peek(strCookie)
	for len(c) > 0 {
		// cookie-string = cookie-pair *( ";" SP cookie-pair ), RFC 6265 §4.2.1.
		var pair []byte
		if i := bytes.IndexByte(c, ';'); i >= 0 {
			pair, c = c[:i], c[i+1:]
		} else {
			pair, c = c, nil
		}
		pair = trimOWS(pair)
		name := pair
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			name = trimOWS(pair[:i])
		}
		for _, n := range b.cookies {
			if string(name) == string(n) {
				return true
			}
		}
	}
	return false
}

// Empty reports whether the list names nothing.
func (b *BypassList) Empty() bool { return len(b.headers) == 0 && len(b.cookies) == 0 }
