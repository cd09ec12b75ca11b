package pipeline

import "bytes"

// SetTarget parses the request target and the Host header (hostHeader is
// the Host field, or :authority in HTTP/2) into r.Host, r.Path, r.Query,
// r.RawHost and r.URI, normalizing the host (AppendNormalizedHost) and
// the path (AppendNormalizedPath) into r's own buffers. Set r.Proto and
// r.HTTP2 first. It returns 0, or the status to answer without
// forwarding:
//
//   - 505 for a request that is neither HTTP/2 nor HTTP/1.0 or HTTP/1.1
//     (RFC 9110 §15.6.6);
//   - 414 for a target longer than max_uri_bytes;
//   - 400 for a target that is neither origin-form nor absolute-form
//     (RFC 9112 §3.2), an absolute-form target without authority or with
//     userinfo (RFC 9110 §4.2.4), a malformed path or host, or a request
//     without Host other than HTTP/1.0 (RFC 9112 §3.2, RFC 9113 §8.3.1).
//
// An absolute-form target's authority replaces the Host header (RFC 9112
// §3.2.2), so the upstream sees the host that was routed on and checked:
// r.RawHost is that authority and the plan sets it. A fragment is
// dropped. It allocates only until r's buffers have grown.
func (p *Pipeline) SetTarget(r *Request, target, hostHeader []byte) int {
	if !r.HTTP2 && !bytes.Equal(r.Proto, strHTTP11) && !bytes.Equal(r.Proto, strHTTP10) {
		// The proxy speaks its own version upstream (RFC 9110 §6.2) and
		// serves HTTP/1.0 and HTTP/1.1 on this connection, so an
		// "HTTP/2.0" or "HTTP/0.9" request line is never passed on.
		return 505
	}
	if max := p.opts.MaxURIBytes; max > 0 && len(target) > max {
		return 414
	}
	r.URI = target
	host := hostHeader
	var rawPath, query []byte
	switch {
	case len(target) > 0 && target[0] == '/':
		rawPath = target
	case hasSchemePrefix(target):
		rest := target[bytes.IndexByte(target, ':')+3:]
		end := bytes.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		host, rawPath = rest[:end], rest[end:]
		if len(host) == 0 || bytes.IndexByte(host, '@') >= 0 {
			return 400
		}
		if len(rawPath) == 0 || rawPath[0] != '/' {
			r.bufs.targetBuf = append(append(r.bufs.targetBuf[:0], '/'), rawPath...)
			rawPath = r.bufs.targetBuf
		}
	default:
		return 400
	}
	if i := bytes.IndexByte(rawPath, '#'); i >= 0 {
		rawPath = rawPath[:i]
	}
	if i := bytes.IndexByte(rawPath, '?'); i >= 0 {
		rawPath, query = rawPath[:i], rawPath[i+1:]
	}
	var err error
	if r.bufs.pathBuf, err = AppendNormalizedPath(r.bufs.pathBuf[:0], rawPath); err != nil {
		return 400
	}
	r.Path, r.Query, r.RawHost = r.bufs.pathBuf, query, host
	r.bufs.hostBuf = r.bufs.hostBuf[:0]
	switch {
	case len(host) > 0:
		var ok bool
		if r.bufs.hostBuf, ok = AppendNormalizedHost(r.bufs.hostBuf, host); !ok {
			return 400
		}
	case !bytes.Equal(r.Proto, strHTTP10):
		// RFC 9112 §3.2 and RFC 9113 §8.3.1: only HTTP/1.0 may omit it.
		return 400
	}
	r.Host = r.bufs.hostBuf
	return 0
}

var (
	strHTTP11 = []byte("HTTP/1.1")
	strHTTP10 = []byte("HTTP/1.0")
)

// hasSchemePrefix reports whether t starts with "http://" or "https://",
// in any case.
func hasSchemePrefix(t []byte) bool {
	return len(t) > 8 && (bytes.EqualFold(t[:7], []byte("http://")) || bytes.EqualFold(t[:8], []byte("https://")))
}
