package pipeline

import "errors"

// ErrBadPath is returned by AppendNormalizedPath for a request target that
// is not an absolute path: it does not start with "/", holds a malformed
// percent-encoding, or holds a NUL, CR, LF or other control byte.
var ErrBadPath = errors.New("proxy: malformed request path")

// AppendNormalizedPath appends the normalized form of the absolute path p
// (no query) to dst and returns the extended slice.
//
// The steps, in order, are the only ones this proxy applies (see doc.go):
//  1. percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_",
//     "~") are decoded, RFC 3986 §6.2.2.2; every other percent-encoding,
//     %2F and %5C included, stays encoded with upper-case hex digits
//     (§6.2.2.1);
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
