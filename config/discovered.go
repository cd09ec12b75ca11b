package config

import "errors"

// ParseHeader parses one header written "Name: Value", as in the header
// lists of upstreams.yaml (client_headers, server_headers): split at the
// first colon, both sides trimmed, the name an RFC 9110 token and no CR,
// LF or NUL anywhere (RFC 9110 §5.5). Discovery sources use it for
// headers given in Ingress annotations and Consul tags. The error says
// what is wrong and quotes s.
func ParseHeader(s string) (Header, error) {
	h, msg := parseHeader(s)
	if msg != "" {
		return Header{}, errors.New(msg)
	}
	return h, nil
}

// NormaliseHost returns the canonical form of a host key as
// upstreams.yaml writes it: lower-case, without a trailing dot;
// "DEFAULT", "*.example.com" (one wildcard label), IPv4 and bracketed
// IPv6 addresses are allowed, a port is not. Discovery sources use it
// for host names from Ingress rules and Consul tags. The error says what
// is wrong and quotes name.
func NormaliseHost(name string) (string, error) {
	h, msg := normaliseHost(name)
	if msg != "" {
		return "", errors.New(msg)
	}
	return h, nil
}
