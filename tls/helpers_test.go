package tls

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/syncbuf"
)

// certSpec describes a test certificate. Every certificate carries CN so
// that tests can tell which one a server presented.
type certSpec struct {
	cn   string
	dns  []string
	ips  []net.IP
	rsa  bool // RSA 2048 instead of ECDSA P-256
	key  crypto.Signer
	isCA bool
	// notAfter is the end of validity; zero means testNotAfter, the same
	// for every certificate so that NotAfter ties never depend on when a
	// test ran (the store serves the later NotAfter).
	notAfter time.Time
}

// testNotAfter is the NotAfter of test certificates that set none.
var testNotAfter = time.Now().Add(24 * time.Hour).Truncate(time.Second)

// rsaKey is generated once: RSA key generation is slow under -race.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// genPair returns a self-signed certificate and its key, PEM-encoded.
func genPair(t testing.TB, spec certSpec) (certPEM, keyPEM []byte) {
	t.Helper()
	key := spec.key
	if key == nil {
		if spec.rsa {
			key = rsaKey()
		} else {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			key = k
		}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: spec.cn},
		DNSNames:              spec.dns,
		IPAddresses:           spec.ips,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              cmp.Or(spec.notAfter, testNotAfter),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if spec.isCA {
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// writeFile writes data to dir/name atomically (temporary hidden file,
// then rename), as careful tools do.
func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// writePair generates a certificate for spec and writes NAME.key, then
// NAME.crt, into dir.
func writePair(t testing.TB, dir, name string, spec certSpec) {
	t.Helper()
	c, k := genPair(t, spec)
	writeFile(t, dir, name+KeyExt, k)
	writeFile(t, dir, name+CertExt, c)
}

// logBuffer collects log output from concurrent goroutines.
type logBuffer struct{ syncbuf.Buffer }

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// newTestStore returns a store over dir with sub-second watch timings.
func newTestStore(t testing.TB, dir string) (*Store, *logBuffer) {
	t.Helper()
	log, buf := newLogger()
	s, err := NewStore(dir, log)
	if err != nil {
		t.Fatalf("NewStore(%q) error: %v", dir, err)
	}
	s.Debounce = 30 * time.Millisecond
	s.PollInterval = 50 * time.Millisecond
	return s, buf
}

// serveTLS runs an echo server on 127.0.0.1 with cfg until the test ends.
func serveTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				_, _ = io.Copy(tc, tc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial completes a TLS handshake with addr sending sni (none when empty).
// base may be nil, meaning a default client that skips verification.
func dial(addr, sni string, base *tls.Config) (*tls.Conn, error) {
	cfg := &tls.Config{InsecureSkipVerify: true}
	if base != nil {
		cfg = base.Clone()
	}
	cfg.ServerName = sni
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, cfg)
}

// servedCN returns the CN of the certificate addr presents for sni.
func servedCN(addr, sni string) (string, error) {
	c, err := dial(addr, sni, nil)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// waitFor polls cond every 10 ms until it returns true or 10 s pass, and
// returns how long it took.
func waitFor(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// cnIs returns a condition that addr serves CN want for sni.
func cnIs(addr, sni, want string) func() bool {
	return func() bool {
		got, err := servedCN(addr, sni)
		return err == nil && got == want
	}
}

// echo writes msg on c and checks that it comes back.
func echo(t testing.TB, c *tls.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write on established connection: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read on established connection: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q; want %q", buf, msg)
	}
}

func hasAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
