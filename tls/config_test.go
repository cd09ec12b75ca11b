package tls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseGrade(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Grade
		wantErr bool
	}{
		{"", GradeMedium, false},
		{"medium", GradeMedium, false},
		{"high", GradeHigh, false},
		{"unsafe", GradeUnsafe, false},
		{"HIGH", GradeMedium, true},
		{"low", GradeMedium, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseGrade(tc.in)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("ParseGrade(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrUnknownGrade) {
				t.Errorf("ParseGrade(%q) error %v does not wrap ErrUnknownGrade", tc.in, err)
			}
			if err == nil && tc.in != "" && got.String() != tc.in {
				t.Errorf("ParseGrade(%q).String() = %q", tc.in, got.String())
			}
		})
	}
}

// clientProfile is a client limited to some versions or suites.
type clientProfile struct {
	name   string
	sni    string // ec.test (ECDSA) or rsa.test (RSA)
	min    uint16
	max    uint16
	suites []uint16
	// accepted by high, medium, unsafe.
	want [3]bool
}

var profiles = []clientProfile{
	{name: "tls1.3", sni: "ec.test", min: tls.VersionTLS13, want: [3]bool{true, true, true}},
	{name: "tls1.3 rsa cert", sni: "rsa.test", min: tls.VersionTLS13, want: [3]bool{true, true, true}},
	{name: "tls1.2 ecdhe aes-gcm", sni: "ec.test", max: tls.VersionTLS12,
		suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, want: [3]bool{true, true, true}},
	{name: "tls1.2 ecdhe chacha20", sni: "rsa.test", max: tls.VersionTLS12,
		suites: []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, want: [3]bool{true, true, true}},
	{name: "tls1.0 and 1.1 only", sni: "ec.test", min: tls.VersionTLS10, max: tls.VersionTLS11,
		want: [3]bool{false, false, true}},
	{name: "tls1.0 only rsa cert", sni: "rsa.test", min: tls.VersionTLS10, max: tls.VersionTLS10,
		want: [3]bool{false, false, true}},
	{name: "ecdhe cbc-sha only", sni: "ec.test", max: tls.VersionTLS12,
		suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA},
		want:   [3]bool{false, true, true}},
	{name: "ecdhe cbc-sha256 only", sni: "ec.test", max: tls.VersionTLS12,
		suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}, want: [3]bool{false, false, true}},
	{name: "rsa kx aes-gcm only", sni: "rsa.test", max: tls.VersionTLS12,
		suites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, want: [3]bool{false, false, true}},
	{name: "rsa kx cbc only", sni: "rsa.test", max: tls.VersionTLS12,
		suites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA},
		want:   [3]bool{false, false, true}},
	{name: "3des only", sni: "rsa.test", max: tls.VersionTLS12,
		suites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, want: [3]bool{false, false, true}},
	{name: "rc4 only", sni: "rsa.test", max: tls.VersionTLS12,
		suites: []uint16{tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA},
		want:   [3]bool{false, false, false}},
}

// TestGrades runs real handshakes from clients limited to given versions
// or suites against a listener of each grade.
func TestGrades(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, "ec", certSpec{cn: "ec", dns: []string{"ec.test"}})
	writePair(t, dir, "rsa", certSpec{cn: "rsa", dns: []string{"rsa.test"}, rsa: true})
	s, _ := newTestStore(t, dir)
	for gi, g := range []Grade{GradeHigh, GradeMedium, GradeUnsafe} {
		addr := serveTLS(t, s.ServerConfig(g, nil))
		for _, p := range profiles {
			t.Run(fmt.Sprintf("%s/%s", g, p.name), func(t *testing.T) {
				t.Parallel()
				c, err := dial(addr, p.sni, &tls.Config{
					InsecureSkipVerify: true, MinVersion: p.min, MaxVersion: p.max, CipherSuites: p.suites,
				})
				want := p.want[gi]
				if !want {
					if err == nil {
						st := c.ConnectionState()
						c.Close()
						t.Fatalf("handshake accepted (%s, %s); want refused",
							tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
					}
					// The server refused, not the client.
					if !strings.Contains(err.Error(), "remote error") {
						t.Errorf("handshake error = %v; want a server alert", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("handshake refused: %v; want accepted", err)
				}
				defer c.Close()
				st := c.ConnectionState()
				if p.min != 0 && st.Version < p.min || p.max != 0 && st.Version > p.max {
					t.Errorf("negotiated %s; want within the client's range", tls.VersionName(st.Version))
				}
				if p.suites != nil && !containsSuite(p.suites, st.CipherSuite) {
					t.Errorf("negotiated %s; want one of the client's", tls.CipherSuiteName(st.CipherSuite))
				}
				if got := st.PeerCertificates[0].Subject.CommonName + ".test"; got != p.sni {
					t.Errorf("served %q; want the certificate for %q", got, p.sni)
				}
			})
		}
	}
}

func containsSuite(list []uint16, id uint16) bool {
	for _, s := range list {
		if s == id {
			return true
		}
	}
	return false
}

// TestDualCertificates serves an ECDSA and an RSA certificate for one
// name: each client gets the one it supports.
func TestDualCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, "dual-ec", certSpec{cn: "dual-ec", dns: []string{"dual.test"}})
	writePair(t, dir, "dual-rsa", certSpec{cn: "dual-rsa", dns: []string{"dual.test"}, rsa: true})
	s, _ := newTestStore(t, dir)
	addr := serveTLS(t, s.ServerConfig(GradeUnsafe, nil))
	tests := []struct {
		name   string
		suites []uint16
		want   string
	}{
		{"modern client gets the first pair", nil, "dual-ec"},
		{"rsa kx client gets rsa", []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, "dual-rsa"},
		{"ecdhe-rsa client gets rsa", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, "dual-rsa"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := &tls.Config{InsecureSkipVerify: true, CipherSuites: tc.suites}
			if tc.suites != nil {
				cfg.MaxVersion = tls.VersionTLS12
			}
			c, err := dial(addr, "dual.test", cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != tc.want {
				t.Errorf("served %q; want %q", got, tc.want)
			}
		})
	}
}

func TestClientConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPEM, keyPEM := genPair(t, certSpec{
		cn: "upstream", dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}, isCA: true,
	})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)

	tests := []struct {
		name       string
		serverName string
		verify     bool
		caFile     string
		wantSNI    string
		wantErr    string // handshake error substring; "" means success
	}{
		{"no verify accepts self-signed", "localhost", false, "", "localhost", ""},
		{"no verify by IP", "127.0.0.1", false, "", "", ""},
		{"verify with CA file", "localhost", true, caFile, "localhost", ""},
		{"verify with CA file and port", "localhost:" + port, true, caFile, "localhost", ""},
		{"verify IP with CA file", "127.0.0.1", true, caFile, "", ""},
		{"verify without CA file refuses", "localhost", true, "", "localhost", "certificate"},
		{"verify wrong name refuses", "other.test", true, caFile, "other.test", "other.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ClientConfig(tc.serverName, tc.verify, tc.caFile)
			if err != nil {
				t.Fatalf("ClientConfig(%q, %v, %q) error: %v", tc.serverName, tc.verify, tc.caFile, err)
			}
			if cfg.ServerName != tc.wantSNI {
				t.Errorf("ClientConfig(%q).ServerName = %q; want %q", tc.serverName, cfg.ServerName, tc.wantSNI)
			}
			if cfg.InsecureSkipVerify == tc.verify {
				t.Errorf("InsecureSkipVerify = %v with verify %v", cfg.InsecureSkipVerify, tc.verify)
			}
			if cfg.ClientSessionCache == nil {
				t.Errorf("ClientSessionCache = nil; want a cache")
			}
			// tls.Dial fills an empty ServerName from the address, as
			// upstream transports do.
			c, err := tls.Dial("tcp", addr, cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("handshake error: %v; want success", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("handshake succeeded; want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("handshake error = %v; want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestClientConfigUnknownAuthority(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := genPair(t, certSpec{cn: "upstream", dns: []string{"localhost"}})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	cfg, err := ClientConfig("localhost", true, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tls.Dial("tcp", addr, cfg)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("handshake error = %v; want x509.UnknownAuthorityError", err)
	}
}

func TestClientConfigCAFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "missing.pem"), garbage} {
		if _, err := ClientConfig("a.test", true, f); err == nil {
			t.Errorf("ClientConfig(a.test, true, %q) = nil error; want one", f)
		}
	}
	// Without verification the CA file is not read.
	if _, err := ClientConfig("a.test", false, garbage); err != nil {
		t.Errorf("ClientConfig(a.test, false, garbage) error: %v; want nil", err)
	}
}

func TestSNIName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"api.internal", "api.internal"},
		{"api.internal:8443", "api.internal"},
		{"api.internal.", "api.internal"},
		{"10.0.0.1", ""},
		{"10.0.0.1:443", ""},
		{"::1", ""},
		{"[::1]:443", ""},
		{"fe80::1%eth0", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := sniName(tc.in); got != tc.want {
			t.Errorf("sniName(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func ExampleParseGrade() {
	for _, s := range []string{"", "high", "unsafe", "strong"} {
		g, err := ParseGrade(s)
		fmt.Println(g, err)
	}
	// Output:
	// medium <nil>
	// high <nil>
	// unsafe <nil>
	// medium edgetls: unknown TLS grade "strong" (want high, medium or unsafe)
}

func TestServerConfigGrades(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, t.TempDir())
	for _, tc := range []struct {
		g       Grade
		min     uint16
		nSuites int
	}{
		{GradeHigh, tls.VersionTLS12, 6},
		{GradeMedium, tls.VersionTLS12, 10},
		{GradeUnsafe, tls.VersionTLS10, 19},
		{Grade(200), tls.VersionTLS12, 10}, // out of range acts as medium
	} {
		cfg := s.ServerConfig(tc.g, nil)
		if cfg.MinVersion != tc.min || len(cfg.CipherSuites) != tc.nSuites {
			t.Errorf("ServerConfig(%v): MinVersion %s, %d suites; want %s, %d",
				tc.g, tls.VersionName(cfg.MinVersion), len(cfg.CipherSuites), tls.VersionName(tc.min), tc.nSuites)
		}
		// golang.org/x/net/http2.ConfigureServer insists on this suite.
		if !containsSuite(cfg.CipherSuites, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) {
			t.Errorf("ServerConfig(%v) lacks TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", tc.g)
		}
		if cfg.GetCertificate == nil {
			t.Errorf("ServerConfig(%v).GetCertificate = nil", tc.g)
		}
		cfg.CipherSuites[0] = 0 // must not corrupt the next config
	}
	if got := s.ServerConfig(GradeHigh, nil).CipherSuites[0]; got == 0 {
		t.Errorf("ServerConfig shares its suite slice between calls")
	}

	// unsafe is every TLS 1.0-1.2 suite crypto/tls implements except RC4.
	unsafe := s.ServerConfig(GradeUnsafe, nil).CipherSuites
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		tls12 := slices.Contains(cs.SupportedVersions, tls.VersionTLS12)
		rc4 := strings.Contains(cs.Name, "RC4")
		if got := containsSuite(unsafe, cs.ID); got != (tls12 && !rc4) {
			t.Errorf("unsafe lists %s = %v; want %v", cs.Name, got, tls12 && !rc4)
		}
	}
}
