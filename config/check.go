package config

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// The check… functions return "" when the value is valid and a plain
// message otherwise. Both the YAML walk (which knows positions) and the
// Validate methods (for values built in code) use them.

// checkHostPort checks "host:port". listen allows an empty host
// (":6193", all interfaces). The port is 1–65535; an IPv6 host must be
// bracketed; the host is an IP address or a DNS name.
func checkHostPort(s string, listen bool) string {
	if s == "" {
		return "empty address; want host:port"
	}
	if strings.Contains(s, "://") {
		return "invalid address " + strconv.Quote(s) + ": want host:port, without a scheme"
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return "invalid address " + strconv.Quote(s) + ": an IPv6 address must be in brackets, as [::1]:8080"
		}
		if !strings.Contains(s, ":") || strings.HasSuffix(s, "]") {
			return "invalid address " + strconv.Quote(s) + ": missing port; want host:port"
		}
		return "invalid address " + strconv.Quote(s) + "; want host:port"
	}
	if msg := checkPort(port); msg != "" {
		return "invalid address " + strconv.Quote(s) + ": " + msg
	}
	bracketed := strings.HasPrefix(s, "[")
	if host == "" {
		if listen && !bracketed {
			return ""
		}
		return "invalid address " + strconv.Quote(s) + ": missing host"
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Is6() && !a.Is4In6() && !bracketed {
			return "invalid address " + strconv.Quote(s) + ": an IPv6 address must be in brackets, as [::1]:8080"
		}
		if bracketed && !a.Is6() {
			return "invalid address " + strconv.Quote(s) + ": only IPv6 addresses go in brackets"
		}
		return ""
	}
	if bracketed {
		return "invalid address " + strconv.Quote(s) + ": " + strconv.Quote(host) + " is not an IPv6 address"
	}
	if msg := checkDNSName(host); msg != "" {
		return "invalid address " + strconv.Quote(s) + ": " + msg
	}
	return ""
}

// checkPort checks a decimal port number in 1–65535.
func checkPort(p string) string {
	if p == "" {
		return "missing port"
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return "port " + strconv.Quote(p) + " is not a number"
		}
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "port " + p + " is out of range 1-65535"
	}
	return ""
}

// checkDNSName checks a host name: dot-separated labels of letters,
// digits, '-' and '_' (common in internal names), each 1–63 bytes and not
// starting or ending with '-'; 253 bytes at most. A single trailing dot
// is allowed.
func checkDNSName(h string) string {
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return "empty host name"
	}
	if len(h) > 253 {
		return "host name longer than 253 bytes"
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" {
			return "invalid host name " + strconv.Quote(h) + ": empty label"
		}
		if len(label) > 63 {
			return "invalid host name " + strconv.Quote(h) + ": label longer than 63 bytes"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "invalid host name " + strconv.Quote(h) + ": a label may not start or end with '-'"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "invalid host name " + strconv.Quote(h) + ": character " + strconv.QuoteRune(rune(c)) + " not allowed"
			}
		}
	}
	return ""
}

// normaliseHost turns an upstreams host key into its canonical form:
// lower-case, without a trailing dot. "DEFAULT" stays as is. A wildcard
// is "*." followed by a name; '*' anywhere else is an error, as is a port.
func normaliseHost(key string) (string, string) {
	if key == "DEFAULT" {
		return key, ""
	}
	h := strings.ToLower(strings.TrimSuffix(key, "."))
	if h == "" {
		return "", "empty host name"
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil && a.Is6() {
			return h, ""
		}
		return "", "invalid host " + strconv.Quote(key) + ": not an IPv6 address"
	}
	if _, err := netip.ParseAddr(h); err == nil {
		if strings.Contains(h, ":") {
			return "", "invalid host " + strconv.Quote(key) + ": write an IPv6 host in brackets, as [::1]"
		}
		return h, ""
	}
	if strings.Contains(h, ":") {
		return "", "invalid host " + strconv.Quote(key) + ": a host key has no port"
	}
	name := h
	if strings.HasPrefix(h, "*.") {
		name = h[2:]
	}
	if strings.Contains(name, "*") {
		return "", "invalid host " + strconv.Quote(key) + ": a wildcard is \"*.\" followed by a name, as *.example.com"
	}
	if msg := checkDNSName(name); msg != "" {
		return "", msg
	}
	return h, ""
}

// isToken reports whether s is an RFC 9110 token (section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// parseHeader splits "Name: Value" at the first colon and trims both
// sides. The name must be a token; CR, LF and NUL are never allowed, as
// they would let a config inject headers (RFC 9110 section 5.5).
func parseHeader(s string) (Header, string) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return Header{}, "header " + strconv.Quote(s) + " contains CR, LF or NUL"
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return Header{}, "header " + strconv.Quote(s) + " has no colon; want \"Name: Value\""
	}
	h := Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)}
	if msg := checkHeader(h); msg != "" {
		return Header{}, msg
	}
	return h, ""
}

// checkHeader checks a parsed header.
func checkHeader(h Header) string {
	if !isToken(h.Name) {
		return "header name " + strconv.Quote(h.Name) + " is not a valid token"
	}
	if strings.ContainsAny(h.Value, "\r\n\x00") {
		return "header " + strconv.Quote(h.Name) + " value contains CR, LF or NUL"
	}
	return ""
}

// parsePrefix reads a CIDR ("10.0.0.0/8") or a bare IP (a /32 or /128).
// Host bits are cleared.
func parsePrefix(s string) (netip.Prefix, string) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, "invalid CIDR " + strconv.Quote(s)
		}
		return p.Masked(), ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, "invalid CIDR or IP address " + strconv.Quote(s)
	}
	a = a.WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), ""
}

// checkPathPrefix checks a path key: it starts with "/" and holds no
// whitespace, control characters, '?' or '#'.
func checkPathPrefix(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "path " + strconv.Quote(p) + " must start with \"/\""
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return "path " + strconv.Quote(p) + " contains " + strconv.QuoteRune(rune(c)) + "; a path prefix has no spaces, control characters, '?' or '#'"
		}
	}
	return ""
}

// checkHTTPURL checks an absolute http or https URL with a host.
func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "want an http:// or https:// URL, got " + strconv.Quote(s)
	}
	if strings.ContainsAny(s, " \r\n\t\x00") {
		return "URL " + strconv.Quote(s) + " contains whitespace or control characters"
	}
	return ""
}

// parseServer reads "host:port [weight=N] [backup]".
func parseServer(s string) (Server, string) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Server{}, "empty server; want \"host:port [weight=N] [backup]\""
	}
	srv, msg := parseServerFields(f)
	if msg != "" && s != f[0] {
		// The message quotes one field: quote the whole value too, so
		// that "not an addr" is not reported as "not".
		msg = "server " + strconv.Quote(s) + ": " + msg
	}
	return srv, msg
}

// parseServerFields is parseServer on the value's fields (at least one).
func parseServerFields(f []string) (Server, string) {
	srv := Server{Address: f[0], Weight: DefaultWeight}
	if msg := checkHostPort(srv.Address, false); msg != "" {
		if strings.Contains(srv.Address, "://") {
			msg += " (upstream TLS and HTTP/2 are detected)"
		}
		return Server{}, msg
	}
	seenWeight := false
	for _, opt := range f[1:] {
		switch {
		case opt == "backup":
			if srv.Backup {
				return Server{}, "option \"backup\" given twice"
			}
			srv.Backup = true
		case strings.HasPrefix(opt, "weight="):
			if seenWeight {
				return Server{}, "option \"weight\" given twice"
			}
			seenWeight = true
			v := strings.TrimPrefix(opt, "weight=")
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1_000_000 || v[0] == '+' {
				return Server{}, "invalid weight " + strconv.Quote(v) + ": want an integer from 1 to 1000000"
			}
			srv.Weight = n
		default:
			return Server{}, "unknown server option " + strconv.Quote(opt) + "; want weight=N or backup"
		}
	}
	return srv, ""
}

// enumMsg is the message for a value outside allowed.
func enumMsg(what, got string, allowed ...string) string {
	msg := "unknown " + what + " " + strconv.Quote(got) + "; want " + strings.Join(allowed, ", ")
	if s := suggest(got, allowed); s != "" {
		msg += " (did you mean " + strconv.Quote(s) + "?)"
	}
	return msg
}

// cutColon splits "user:secret".
func cutColon(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// redact hides a credential in messages: only the part before the first
// colon, or the first two bytes, are kept.
func redact(s string) string {
	if u, _, ok := cutColon(s); ok {
		return u + ":…"
	}
	if len(s) > 2 {
		return s[:2] + "…"
	}
	return "…"
}

// isObjectName reports whether s is a Kubernetes object name: an RFC
// 1123 subdomain of lower-case letters, digits, '-' and '.', starting
// and ending with a letter or digit, at most 253 bytes.
func isObjectName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return alnum(s[0]) && alnum(s[len(s)-1])
}
