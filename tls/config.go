package tls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Grade is a TLS security level for the listener: which protocol versions
// and TLS 1.2-and-older cipher suites a server [tls.Config] accepts. The
// zero value is GradeMedium. The exact lists are in the package doc.
type Grade uint8

const (
	// GradeMedium is TLS 1.2 and 1.3 with Go's default secure suites:
	// ECDHE with AES-GCM, ChaCha20-Poly1305 and AES-CBC-SHA. It is the
	// default (the zero value and the empty string).
	GradeMedium Grade = iota
	// GradeHigh is TLS 1.2 and 1.3 with only ECDHE key exchange and AEAD
	// ciphers (AES-GCM, ChaCha20-Poly1305).
	GradeHigh
	// GradeUnsafe adds TLS 1.0 and 1.1, the CBC-SHA256 suites, RSA key
	// exchange and 3DES to GradeMedium, for legacy clients only.
	GradeUnsafe
)

// ErrUnknownGrade is returned (wrapped) by ParseGrade for a value other
// than "high", "medium", "unsafe" or "".
var ErrUnknownGrade = errors.New("edgetls: unknown TLS grade")

// ParseGrade parses a proxy_tls_grade value: "high", "medium" or
// "unsafe"; "" means GradeMedium. Matching is exact (lower case). Any
// other value returns GradeMedium and an error wrapping ErrUnknownGrade.
func ParseGrade(s string) (Grade, error) {
	switch s {
	case "", "medium":
		return GradeMedium, nil
	case "high":
		return GradeHigh, nil
	case "unsafe":
		return GradeUnsafe, nil
	}
	return GradeMedium, fmt.Errorf("%w %q (want high, medium or unsafe)", ErrUnknownGrade, s)
}

// String returns the configuration name of g: "high", "medium" or
// "unsafe". An out-of-range value prints as "medium", the grade it acts as.
func (g Grade) String() string {
	switch g {
	case GradeHigh:
		return "high"
	case GradeUnsafe:
		return "unsafe"
	}
	return "medium"
}

// Cipher suites for TLS 1.0 to 1.2, per grade. TLS 1.3 suites are not
// configurable in crypto/tls and are always TLS_AES_128_GCM_SHA256,
// TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256, all AEAD.
// The lists are pinned rather than left nil so that GODEBUG settings
// (tlsrsakex, tls3des) cannot silently change what a grade means.
var (
	// suitesHigh: ECDHE key exchange with an AEAD cipher only.
	suitesHigh = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	// suitesMedium: Go's default list (crypto/tls defaultCipherSuites with
	// no GODEBUG): suitesHigh plus ECDHE with AES-CBC-SHA.
	suitesMedium = append(slices.Clone(suitesHigh),
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	)
	// suitesUnsafe: suitesMedium plus every other suite crypto/tls
	// implements except RC4 (RFC 7465 forbids it).
	suitesUnsafe = append(slices.Clone(suitesMedium),
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
		tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
	)
)

// minVersion returns the lowest protocol version g accepts.
func (g Grade) minVersion() uint16 {
	if g == GradeUnsafe {
		return tls.VersionTLS10
	}
	return tls.VersionTLS12
}

// cipherSuites returns a fresh copy of g's TLS 1.0-1.2 suite list.
func (g Grade) cipherSuites() []uint16 {
	switch g {
	case GradeHigh:
		return slices.Clone(suitesHigh)
	case GradeUnsafe:
		return slices.Clone(suitesUnsafe)
	}
	return slices.Clone(suitesMedium)
}

// defaultNextProtos is the ALPN list ServerConfig offers when the caller
// passes none: HTTP/2 first, then HTTP/1.1.
var defaultNextProtos = []string{"h2", "http/1.1"}

// ServerConfig returns a new server [tls.Config] that takes certificates
// from s (GetCertificate, so reloads apply to new handshakes without a new
// config) with the versions and cipher suites of grade g; an out-of-range
// g acts as GradeMedium. nextProtos is the ALPN list in preference order;
// nil or empty means ["h2", "http/1.1"]. The slice is copied. Every grade
// lists TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, which
// golang.org/x/net/http2.ConfigureServer requires.
//
// Every call returns a distinct value the caller may modify before use;
// once handed to a listener it must not be modified. It is safe to call
// concurrently.
func (s *Store) ServerConfig(g Grade, nextProtos []string) *tls.Config {
	if len(nextProtos) == 0 {
		nextProtos = defaultNextProtos
	}
	return &tls.Config{
		GetCertificate:     s.GetCertificate,
		GetConfigForClient: s.getConfigForClient,
		NextProtos:         slices.Clone(nextProtos),
		MinVersion:         g.minVersion(),
		CipherSuites:       g.cipherSuites(),
	}
}

// ACMETLS1Protocol is the ALPN protocol of a TLS-ALPN-01 validation
// handshake (RFC 8737 §6.2).
const ACMETLS1Protocol = "acme-tls/1"

// ChallengeResponder answers TLS-ALPN-01 validation handshakes (RFC
// 8737) on the store's listeners; an ACME client implements it. It must
// be safe for concurrent use.
type ChallengeResponder interface {
	// TLSALPNCertificate returns the self-signed validation certificate
	// for hello.ServerName, or an error when no TLS-ALPN-01 challenge is
	// pending for that name (the handshake then fails).
	TLSALPNCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// responderBox holds a ChallengeResponder behind an atomic.Pointer.
type responderBox struct{ r ChallengeResponder }

// SetChallengeResponder makes every config from ServerConfig answer
// TLS-ALPN-01 validation handshakes with r, also while the store holds
// no certificate, so that the first certificate can be obtained. nil
// stops answering them. It may be called at any time, also after the
// listener started, and is safe for concurrent use.
func (s *Store) SetChallengeResponder(r ChallengeResponder) {
	if r == nil {
		s.responder.Store(nil)
		return
	}
	s.responder.Store(&responderBox{r: r})
}

// errNoResponder fails an acme-tls/1 handshake when nothing answers it.
var errNoResponder = errors.New("edgetls: no TLS-ALPN-01 challenge pending")

// getConfigForClient diverts an ACME validation handshake, whose only
// ALPN protocol is acme-tls/1 (RFC 8737 §3), to the challenge responder;
// every other handshake goes on with the listener's config (nil).
func (s *Store) getConfigForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != ACMETLS1Protocol {
		return nil, nil
	}
	box := s.responder.Load()
	if box == nil || hello.ServerName == "" {
		return nil, errNoResponder
	}
	cert, err := box.r.TLSALPNCertificate(hello)
	if err != nil {
		return nil, fmt.Errorf("edgetls: TLS-ALPN-01 for %q: %w", hello.ServerName, err)
	}
	// RFC 8737 §4: TLS 1.2 or later, the single protocol acme-tls/1.
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{ACMETLS1Protocol},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// DefaultClientSessionCacheSize is the number of upstream TLS sessions a
// ClientConfig keeps for resumption, so that reconnecting to a backend
// skips the full handshake.
const DefaultClientSessionCacheSize = 64

// ClientConfig returns a [tls.Config] for dialing an upstream over TLS.
//
// serverName is the backend host, optionally with a port ("api.internal"
// or "api.internal:8443"). When its host part is a DNS name, it is sent as
// SNI and verified; when it is an IP address or empty, ServerName is left
// empty (crypto/tls then fills it from the dialed address when verifying).
//
// With verify false the upstream certificate is not checked at all
// (InsecureSkipVerify), so self-signed upstreams work, as in Aralez. With
// verify true the chain is verified against the system roots plus, when
// caFile is not empty, the PEM certificates in caFile.
//
// The config allows TLS 1.2 and 1.3, leaves NextProtos empty for the
// caller to set, and carries its own session cache of
// DefaultClientSessionCacheSize entries: use one config per backend.
//
// It returns an error when caFile cannot be read or holds no certificate.
func ClientConfig(serverName string, verify bool, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         sniName(serverName),
		InsecureSkipVerify: !verify, //nolint:gosec // Aralez default: upstreams are often self-signed.
		ClientSessionCache: tls.NewLRUClientSessionCache(DefaultClientSessionCacheSize),
	}
	if verify && caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("edgetls: reading upstream CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("edgetls: upstream CA file %q holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// sniName returns the host part of hostport when it is a DNS name, and ""
// when it is empty or an IP address (RFC 6066 §3: literal IP addresses are
// not permitted in SNI).
func sniName(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	return host
}
