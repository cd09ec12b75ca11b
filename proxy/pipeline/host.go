package pipeline

// AppendNormalizedHost appends the routing form of a Host header value to
// dst: the port is stripped (IPv6 literals keep their brackets, as in
// "[::1]"), ASCII letters are lower-cased and one trailing dot is removed
// (RFC 9110 §7.2; RFC 1034 §3.1 absolute names). It reports false for a
// value that cannot be a host: empty after stripping, or holding bytes
// outside the registered-name and IP-literal alphabets (RFC 3986 §3.2.2).
// It allocates only when dst lacks capacity.
func AppendNormalizedHost(dst, h []byte) ([]byte, bool) {
	start := len(dst)
	if len(h) > 0 && h[0] == '[' {
		end := -1
		for i := 1; i < len(h); i++ {
			if h[i] == ']' {
				end = i
				break
			}
		}
		if end < 0 {
			return dst, false
		}
		rest := h[end+1:]
		if len(rest) > 0 && (rest[0] != ':' || !allDigits(rest[1:])) {
			return dst, false
		}
		for _, c := range h[:end+1] {
			if !(isHex(c) || c == ':' || c == '.' || c == '[' || c == ']') {
				return dst[:start], false
			}
			dst = append(dst, lower(c))
		}
		return dst, true
	}
	end := len(h)
	for i := 0; i < len(h); i++ {
		if h[i] == ':' {
			if !allDigits(h[i+1:]) {
				return dst, false
			}
			end = i
			break
		}
	}
	h = h[:end]
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	if len(h) == 0 {
		return dst, false
	}
	for _, c := range h {
		if !isHostByte(c) {
			return dst[:start], false
		}
		dst = append(dst, lower(c))
	}
	return dst, true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isHostByte reports whether c may appear in a reg-name as sent in Host:
// unreserved characters and the sub-delims that real clients use.
func isHostByte(c byte) bool {
	return isUnreserved(c) || c == '!' || c == '$' || c == '&' || c == '\'' ||
		c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == ';' || c == '='
}

// hostPort returns the port part of a Host value that
// AppendNormalizedHost accepted, colon included (":8080", or ":" for an
// empty port), or nil when it has none.
func hostPort(h []byte) []byte {
	i := 0
	if len(h) > 0 && h[0] == '[' {
		for i < len(h) && h[i] != ']' {
			i++
		}
	}
	for ; i < len(h); i++ {
		if h[i] == ':' {
			return h[i:]
		}
	}
	return nil
}
