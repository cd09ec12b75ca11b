package tls

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// certOf builds a *tls.Certificate (Leaf left nil, as a source may hand
// it over) for spec.
func certOf(t *testing.T, spec certSpec) *tls.Certificate {
	t.Helper()
	c, k := genPair(t, spec)
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	cert.Leaf = nil
	return &cert
}

// cnFor returns the CN GetCertificate picks for sni.
func cnFor(t *testing.T, s *Store, sni string) string {
	t.Helper()
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	if err != nil {
		t.Fatalf("GetCertificate(%q) error: %v", sni, err)
	}
	return c.Leaf.Subject.CommonName
}

// TestSourcesLaterNotAfterWins checks that where the folder and other
// sources cover one name, the certificate with the later NotAfter is
// served, whichever source holds it (issue 13: a stale exported copy
// never beats a renewed certificate).
func TestSourcesLaterNotAfterWins(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	dir := t.TempDir()
	writePair(t, dir, "a.test", certSpec{cn: "folder-a", dns: []string{"a.test"}, notAfter: now.Add(24 * time.Hour)})
	writePair(t, dir, "b.test", certSpec{cn: "folder-b", dns: []string{"b.test"}, notAfter: now.Add(72 * time.Hour)})
	s, _ := newTestStore(t, dir)

	s.SetCertificates("acme", []*tls.Certificate{
		certOf(t, certSpec{cn: "acme-a", dns: []string{"a.test"}, notAfter: now.Add(48 * time.Hour)}),
		certOf(t, certSpec{cn: "acme-b", dns: []string{"b.test"}, notAfter: now.Add(48 * time.Hour)}),
		certOf(t, certSpec{cn: "acme-c", dns: []string{"c.test"}, notAfter: now.Add(48 * time.Hour)}),
	})
	for sni, want := range map[string]string{"a.test": "acme-a", "b.test": "folder-b", "c.test": "acme-c"} {
		if got := cnFor(t, s, sni); got != want {
			t.Errorf("GetCertificate(%q) = %q; want %q", sni, got, want)
		}
	}
	if got, want := s.Names(), []string{"a.test", "b.test", "c.test"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q; want %q", got, want)
	}
	exp := map[string]time.Time{}
	s.Expiry(func(n string, na time.Time) { exp[n] = na })
	if len(exp) != 3 || !exp["a.test"].Equal(now.Add(48*time.Hour)) || !exp["b.test"].Equal(now.Add(72*time.Hour)) {
		t.Errorf("Expiry() = %v; want a.test +48h, b.test +72h, c.test", exp)
	}
	if got, want := s.Pairs(), []string{"a.test", "b.test"}; !slices.Equal(got, want) {
		t.Errorf("Pairs() = %q; want %q", got, want)
	}

	// The folder copy is renewed past the ACME one: a reload serves it.
	writePair(t, dir, "a.test", certSpec{cn: "folder-a2", dns: []string{"a.test"}, notAfter: now.Add(96 * time.Hour)})
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := cnFor(t, s, "a.test"); got != "folder-a2" {
		t.Errorf("after the folder renewal GetCertificate(a.test) = %q; want folder-a2", got)
	}
	// A source of another name does not disturb this one.
	s.SetCertificates("kubernetes", []*tls.Certificate{
		certOf(t, certSpec{cn: "k8s-a", dns: []string{"a.test"}, notAfter: now.Add(120 * time.Hour)}),
	})
	if got := cnFor(t, s, "a.test"); got != "k8s-a" {
		t.Errorf("with a later Secret GetCertificate(a.test) = %q; want k8s-a", got)
	}
	s.SetCertificates("kubernetes", nil)
	s.SetCertificates("acme", nil)
	if got := cnFor(t, s, "a.test"); got != "folder-a2" {
		t.Errorf("after removing the sources GetCertificate(a.test) = %q; want folder-a2", got)
	}
	if got := cnFor(t, s, "c.test"); got != "folder-a2" {
		t.Errorf("after removing the sources GetCertificate(c.test) = %q; want the default folder-a2", got)
	}
}

// TestSourcesWildcardAgainstExact checks the NotAfter rule between a
// certificate naming a host and a wildcard covering it.
func TestSourcesWildcardAgainstExact(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	s, _ := newTestStore(t, t.TempDir())
	exact := certSpec{cn: "exact", dns: []string{"www.example.com"}, notAfter: now.Add(24 * time.Hour)}
	wild := certSpec{cn: "wild", dns: []string{"*.example.com"}, notAfter: now.Add(24 * time.Hour)}
	s.SetCertificates("acme", []*tls.Certificate{certOf(t, exact), certOf(t, wild)})
	if got := cnFor(t, s, "www.example.com"); got != "exact" {
		t.Errorf("equal NotAfter: GetCertificate(www.example.com) = %q; want exact", got)
	}
	if got := cnFor(t, s, "api.example.com"); got != "wild" {
		t.Errorf("GetCertificate(api.example.com) = %q; want wild", got)
	}
	wild.notAfter = now.Add(48 * time.Hour)
	s.SetCertificates("acme", []*tls.Certificate{certOf(t, exact), certOf(t, wild)})
	if got := cnFor(t, s, "www.example.com"); got != "wild" {
		t.Errorf("later wildcard: GetCertificate(www.example.com) = %q; want wild", got)
	}
}

// TestSourcesOnlyDefault checks that with an empty folder a source's
// certificate answers clients without SNI, and that handshakes are
// refused again once the source is gone.
func TestSourcesOnlyDefault(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, t.TempDir())
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("empty store: GetCertificate() error = %v; want ErrNoCertificate", err)
	}
	s.SetCertificates("acme", []*tls.Certificate{certOf(t, certSpec{cn: "only", dns: []string{"only.test"}})})
	addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))
	for _, sni := range []string{"only.test", "", "other.test"} {
		if got, err := servedCN(addr, sni); err != nil || got != "only" {
			t.Errorf("servedCN(%q) = %q, %v; want only", sni, got, err)
		}
	}
	s.SetCertificates("acme", []*tls.Certificate{{}})
	if _, err := servedCN(addr, "only.test"); err == nil {
		t.Errorf("handshake succeeded after the source was emptied")
	}
}

// challengeResponder is a ChallengeResponder with a fixed certificate for
// one name.
type challengeResponder struct {
	name string
	cert *tls.Certificate
}

func (r challengeResponder) TLSALPNCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName != r.name {
		return nil, errors.New("no challenge pending")
	}
	return r.cert, nil
}

// TestTLSALPNChallenge checks that acme-tls/1 handshakes reach the
// challenge responder, also while the store is empty (issue 13), and that
// nothing else does.
func TestTLSALPNChallenge(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, t.TempDir())
	addr := serveTLS(t, s.ServerConfig(GradeHigh, nil))
	acme := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ACMETLS1Protocol}}

	if _, err := dial(addr, "new.example.com", acme); err == nil {
		t.Fatalf("acme-tls/1 handshake without a responder succeeded")
	}
	s.SetChallengeResponder(challengeResponder{name: "new.example.com", cert: certOf(t, certSpec{cn: "challenge", dns: []string{"new.example.com"}})})
	c, err := dial(addr, "new.example.com", acme)
	if err != nil {
		t.Fatalf("acme-tls/1 handshake: %v", err)
	}
	st := c.ConnectionState()
	c.Close()
	if st.NegotiatedProtocol != ACMETLS1Protocol || st.PeerCertificates[0].Subject.CommonName != "challenge" {
		t.Errorf("acme-tls/1 handshake = protocol %q, CN %q; want %q, challenge", st.NegotiatedProtocol, st.PeerCertificates[0].Subject.CommonName, ACMETLS1Protocol)
	}
	if _, err := dial(addr, "other.example.com", acme); err == nil {
		t.Errorf("acme-tls/1 handshake for a name without a challenge succeeded")
	}
	// Ordinary handshakes still fail on the empty store: the challenge
	// certificate is never served to them.
	if _, err := dial(addr, "new.example.com", &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", ACMETLS1Protocol}}); err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Errorf("ordinary handshake on an empty store: err = %v; want a refusal", err)
	}
	s.SetChallengeResponder(nil)
	if _, err := dial(addr, "new.example.com", acme); err == nil {
		t.Errorf("acme-tls/1 handshake after removing the responder succeeded")
	}
}
