// Package pebbletest runs Let's Encrypt's ACME test server, pebble, with
// its companion pebble-challtestsrv as a DNS server, on 127.0.0.1 for
// end-to-end ACME tests. Both come from Debian's pebble package.
//
// The CA validates HTTP-01 on Options.HTTPPort and TLS-ALPN-01 on
// Options.TLSPort of 127.0.0.1 (challtestsrv answers every A query with
// 127.0.0.1 and no AAAA, and its own challenge responders are off), so
// the proxy under test answers the challenges. DNS-01 records are set
// through challtestsrv's management API (SetTXT, ClearTXT). Validation
// runs without pebble's random sleeps and without its random nonce
// rejections, and valid authorizations are never reused, so every order
// is validated. Nothing leaves loopback.
//
// It is test-only code: nothing outside _test.go files may import it.
package pebbletest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/aralez-go/aralez/internal/syncbuf"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Binaries are the programs of Debian's pebble package.
const (
	PebbleBinary       = "pebble"
	ChallTestSrvBinary = "pebble-challtestsrv"
)

// EnvCI names the variable that .ci/run sets: with it, a missing pebble
// fails the test instead of skipping it.
const EnvCI = "ARALEZ_CI"

// Need skips tb (or, under EnvCI, fails it) when pebble or
// pebble-challtestsrv is not installed.
func Need(tb testing.TB) {
	tb.Helper()
	for _, b := range []string{PebbleBinary, ChallTestSrvBinary} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv(EnvCI) != "" {
				tb.Fatalf("%s not installed; .ci/run installs Debian's pebble package", b)
			}
			tb.Skipf("%s not installed (apt-get install pebble); ACME end-to-end test skipped", b)
		}
	}
}

// Options configures Start.
type Options struct {
	// HTTPPort is the port of 127.0.0.1 where pebble fetches HTTP-01
	// key authorizations. Zero means an unused port (HTTP-01 fails).
	HTTPPort int
	// TLSPort is the port of 127.0.0.1 where pebble makes TLS-ALPN-01
	// handshakes. Zero means an unused port.
	TLSPort int
	// Validity is the lifetime of issued certificates, in whole seconds
	// (pebble's certificateValidityPeriod). Zero means pebble's default
	// (about five years).
	Validity time.Duration
	// EAB maps external account key IDs to base64url HMAC keys; when set,
	// pebble requires external account binding.
	EAB map[string]string
}

// Server is a running pebble and pebble-challtestsrv. Its methods are
// safe for concurrent use.
type Server struct {
	// Directory is the ACME directory URL (https on 127.0.0.1).
	Directory string
	// CAFile is a PEM file trusting pebble's HTTPS endpoints (the
	// acme_ca_file of the clients under test).
	CAFile string
	// DNSAddr is challtestsrv's DNS server (UDP and TCP), for DNS-01
	// propagation checks.
	DNSAddr string

	tb       testing.TB
	dir      string
	mgmt     string // pebble's management API, https
	chall    string // challtestsrv's management API, http
	client   *http.Client
	pebble   *proc
	challsrv *proc
	cfgPath  string
	env      []string
}

// proc is a started program and its combined output.
type proc struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
}

// Start runs pebble-challtestsrv and pebble on free loopback ports and
// stops both when the test ends. It calls Need first.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	Need(tb)
	s := &Server{tb: tb, dir: tb.TempDir()}
	s.CAFile = filepath.Join(s.dir, "pebble-https.pem")
	keyFile := filepath.Join(s.dir, "pebble-https.key")
	pool := writeSelfSigned(tb, s.CAFile, keyFile)
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	s.DNSAddr = freeUDPTCP(tb)
	s.chall = "127.0.0.1:" + strconv.Itoa(freePort(tb))
	s.challsrv = s.run(ChallTestSrvBinary, nil,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dns01", s.DNSAddr, "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", s.chall)
	s.waitUp("pebble-challtestsrv", func() error {
		resp, err := http.Post("http://"+s.chall+"/clear-request-history", "application/json", strings.NewReader(`{"type":"dns"}`))
		if err == nil {
			resp.Body.Close()
		}
		return err
	})

	listen := "127.0.0.1:" + strconv.Itoa(freePort(tb))
	s.mgmt = "127.0.0.1:" + strconv.Itoa(freePort(tb))
	s.Directory = "https://" + listen + "/dir"
	httpPort, tlsPort := o.HTTPPort, o.TLSPort
	if httpPort == 0 {
		httpPort = freePort(tb)
	}
	if tlsPort == 0 {
		tlsPort = freePort(tb)
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        s.mgmt,
		"certificate":                    s.CAFile,
		"privateKey":                     keyFile,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": len(o.EAB) > 0,
		"externalAccountMACKeys":         o.EAB,
		"certificateValidityPeriod":      int64(o.Validity / time.Second),
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s.cfgPath = filepath.Join(s.dir, "pebble-config.json")
	if err := os.WriteFile(s.cfgPath, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	s.env = []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
	s.startPebble()
	return s
}

// startPebble runs pebble and waits until its directory answers.
func (s *Server) startPebble() {
	s.tb.Helper()
	s.pebble = s.run(PebbleBinary, s.env, "-config", s.cfgPath, "-dnsserver", s.DNSAddr)
	s.waitUp("pebble", func() error {
		resp, err := s.client.Get(s.Directory)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", s.Directory, resp.Status)
		}
		return nil
	})
}

// run starts name with args and env, and kills it at the end of the test.
func (s *Server) run(name string, env []string, args ...string) *proc {
	s.tb.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		s.tb.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	s.tb.Cleanup(func() {
		p.stop()
		if s.tb.Failed() {
			s.tb.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// stop kills the process (by its own PID) and waits for it.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitUp polls check every 20 ms for up to 20 s.
func (s *Server) waitUp(what string, check func() error) {
	s.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("%s did not come up within 20s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops pebble (the CA) and leaves challtestsrv running: orders and
// renewals then fail to connect.
func (s *Server) Stop() { s.pebble.stop() }

// Restart starts pebble again with the same configuration after Stop. Its
// issuing root is new, as after any pebble start.
func (s *Server) Restart() {
	s.tb.Helper()
	s.pebble.stop()
	s.startPebble()
}

// Issued counts the certificates pebble has issued since it (re)started
// (its "Issued certificate serial" log lines).
func (s *Server) Issued() int {
	return strings.Count(s.pebble.out.String(), "Issued certificate serial")
}

// Log returns pebble's output so far.
func (s *Server) Log() string { return s.pebble.out.String() }

// Roots returns a pool holding the root that signs pebble's issued
// certificates (fetched from its management API; it changes on every
// start).
func (s *Server) Roots() *x509.CertPool {
	s.tb.Helper()
	pool := x509.NewCertPool()
	for _, p := range []string{"/roots/0"} {
		resp, err := s.client.Get("https://" + s.mgmt + p)
		if err != nil {
			s.tb.Fatalf("fetching pebble's %s: %v", p, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			s.tb.Fatalf("fetching pebble's %s: %s, %v", p, resp.Status, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			s.tb.Fatalf("pebble's %s holds no PEM certificate", p)
		}
	}
	return pool
}

// SetTXT makes challtestsrv answer TXT queries for host (a fully
// qualified name, trailing dot optional) with value.
func (s *Server) SetTXT(ctx context.Context, host, value string) error {
	return s.challtest(ctx, "/set-txt", map[string]string{"host": fqdn(host), "value": value})
}

// ClearTXT removes the TXT answers of host.
func (s *Server) ClearTXT(ctx context.Context, host string) error {
	return s.challtest(ctx, "/clear-txt", map[string]string{"host": fqdn(host)})
}

func (s *Server) challtest(ctx context.Context, path string, body map[string]string) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.chall+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pebble-challtestsrv %s: %w", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pebble-challtestsrv %s: %s", path, resp.Status)
	}
	return nil
}

func fqdn(h string) string {
	if strings.HasSuffix(h, ".") {
		return h
	}
	return h + "."
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeUDPTCP returns 127.0.0.1:port where the port was free for both UDP
// and TCP a moment ago (a DNS server binds both).
func freeUDPTCP(tb testing.TB) string {
	tb.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			ln.Close()
			return addr
		}
	}
	tb.Fatal("no port free for both UDP and TCP")
	return ""
}

// writeSelfSigned writes a self-signed ECDSA certificate for 127.0.0.1
// and localhost, and its key, and returns a pool trusting it.
func writeSelfSigned(tb testing.TB, certFile, keyFile string) *x509.CertPool {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "pebble test endpoint"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
