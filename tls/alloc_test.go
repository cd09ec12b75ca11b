//go:build !race

package tls

import (
	"crypto/tls"
	"testing"
)

// TestGetCertificateAllocs guards the handshake-path promise of the Store
// doc: no allocation, whatever the case of the name.
func TestGetCertificateAllocs(t *testing.T) {
	s, _ := newTestStore(t, sniDir(t))
	for _, sni := range []string{"exact.example.com", "x.example.com", "X.Example.COM", "EXACT.example.com", "other.test", "OTHER.test", ""} {
		hello := &tls.ClientHelloInfo{ServerName: sni}
		if n := testing.AllocsPerRun(100, func() { _, _ = s.GetCertificate(hello) }); n != 0 {
			t.Errorf("GetCertificate(%q) allocates %v times; want 0", sni, n)
		}
	}
}
