package pipeline

import (
	"bytes"
	"errors"
)

// ErrBadPath is returned by AppendNormalizedPath for a request target that
// is not an absolute path: it does not start with "/", holds a malformed
// percent-encoding, or holds a NUL, CR, LF or other control byte, raw or
// percent-encoded (%00–%1F, %7F: no backend serves a file name with one,
// and some cut the path at a NUL, issue 11).
var ErrBadPath = errors.New("proxy: malformed request path")

// AppendNormalizedPath appends the normalized form of the absolute path p
// (no query) to dst and returns the extended slice.
//
// The steps, in order, are the only ones this proxy applies (see doc.go):
//  1. percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_",
//     "~") are decoded, RFC 3986 §6.2.2.2; every other percent-encoding,
//     %2F and %5C included, stays encoded with upper-case hex digits
//     (§6.2.2.1), except control bytes, which are an error;
//  2. dot-segments are removed, RFC 3986 §5.2.4;
//  3. runs of "/" are merged into one.
//
// The result always starts with "/". It allocates only when dst lacks
// capacity. Errors: ErrBadPath.
func AppendNormalizedPath(dst, p []byte) ([]byte, error) {
	if len(p) == 0 || p[0] != '/' {
		return dst, ErrBadPath
	}
	start := len(dst)
	// Decode unreserved escapes, merge slashes and resolve dot-segments in
	// one pass over segments. A segment is written as "/" + bytes; "." is
	// dropped and ".." removes the last written segment.
	i := 0
	for i < len(p) {
		// p[i] == '/' here; skip the run of slashes.
		for i < len(p) && p[i] == '/' {
			i++
		}
		segStart := len(dst)
		dst = append(dst, '/')
		for i < len(p) && p[i] != '/' {
			c := p[i]
			switch {
			case c == '%':
				if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
					return dst[:start], ErrBadPath
				}
				v := unhex(p[i+1])<<4 | unhex(p[i+2])
				if v < 0x20 || v == 0x7f {
					return dst[:start], ErrBadPath
				}
				if isUnreserved(v) {
					dst = append(dst, v)
				} else {
					dst = append(dst, '%', upperHex[v>>4], upperHex[v&15])
				}
				i += 3
			case c < 0x21 || c == 0x7f:
				return dst[:start], ErrBadPath
			default:
				dst = append(dst, c)
				i++
			}
		}
		seg := dst[segStart+1:]
		switch {
		case len(seg) == 1 && seg[0] == '.':
			dst = dst[:segStart]
			if i >= len(p) {
				// A trailing "." keeps the directory form: "/a/." is "/a/".
				dst = append(dst, '/')
			}
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			dst = dst[:segStart]
			// Remove the previous segment, never above the root.
			j := len(dst) - 1
			for j >= start && dst[j] != '/' {
				j--
			}
			if j < start {
				j = start
			}
			dst = dst[:j]
			if i >= len(p) {
				dst = append(dst, '/')
			}
		}
	}
	if len(dst) == start {
		dst = append(dst, '/')
	}
	// "/a//" or "/a/" keeps one trailing slash; a final empty segment was
	// written as "/" and the merging above never doubles it.
	if n := len(dst); n-start >= 2 && dst[n-1] == '/' && dst[n-2] == '/' {
		dst = dst[:n-1]
	}
	return dst, nil
}

// AppendRoutingPath appends the path that routes are matched on for a
// normalized path p (the output of AppendNormalizedPath): p with every
// segment's ";parameters" dropped, as servlet containers and Spring do
// before they serve a path (Servlet 4.0 §3.5: "/admin;v=1/x" is served as
// "/admin/x"), a segment left empty being merged with the next. The
// forwarded path keeps them. It reports false when dropping parameters
// turns a segment into "." or ".." ("/x/..;/admin"): servlet backends
// resolve it as a dot-segment and others as a name, so no one route is
// right for it. It allocates only when dst lacks capacity.
func AppendRoutingPath(dst, p []byte) ([]byte, bool) {
	start := len(dst)
	for i := 0; i < len(p); {
		j := i + 1
		for j < len(p) && p[j] != '/' {
			j++
		}
		seg := p[i+1 : j]
		if k := bytes.IndexByte(seg, ';'); k >= 0 {
			seg = seg[:k]
			if isDotSegment(seg) {
				return dst[:start], false
			}
			if len(seg) == 0 && j < len(p) {
				i = j // "/a/;x/b" is "/a/b"
				continue
			}
		}
		dst = append(dst, '/')
		dst = append(dst, seg...)
		i = j
	}
	return dst, true
}

func isDotSegment(s []byte) bool {
	return len(s) == 1 && s[0] == '.' || len(s) == 2 && s[0] == '.' && s[1] == '.'
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isUnreserved reports whether c is in RFC 3986 §2.3's unreserved set.
func isUnreserved(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
