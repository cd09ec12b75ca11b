package tls

import (
	"crypto/tls"
	"fmt"
	"testing"
)

// benchStore returns a store with n exact-name pairs and one wildcard.
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	dir := b.TempDir()
	writePair(b, dir, "000-default", certSpec{cn: "default", dns: []string{"default.test"}})
	writePair(b, dir, "wild", certSpec{cn: "wild", dns: []string{"*.example.com"}})
	for i := range n {
		writePair(b, dir, fmt.Sprintf("host%04d", i), certSpec{cn: "h", dns: []string{fmt.Sprintf("host%d.test", i)}})
	}
	s, _ := newTestStore(b, dir)
	return s
}

func BenchmarkGetCertificate(b *testing.B) {
	s := benchStore(b, 100)
	for _, bc := range []struct{ name, sni string }{
		{"exact", "host42.test"},
		{"wildcard", "www.example.com"},
		{"default", "unknown.test"},
		{"no-sni", ""},
		{"upper-case", "HOST42.test"},
	} {
		hello := &tls.ClientHelloInfo{ServerName: bc.sni}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.GetCertificate(hello); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			hello := &tls.ClientHelloInfo{ServerName: "www.example.com"}
			for pb.Next() {
				if _, err := s.GetCertificate(hello); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkReloadUnchanged measures a reload of 100 pairs none of which
// changed: the cost of every debounced event in a busy folder.
func BenchmarkReloadUnchanged(b *testing.B) {
	s := benchStore(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Reload(); err != nil {
			b.Fatal(err)
		}
	}
}
