package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/pebbletest"
	"github.com/aralez-go/aralez/internal/syncbuf"
	edgetls "github.com/aralez-go/aralez/tls"
)

// testLog collects a test's log lines.
type testLog struct{ syncbuf.Buffer }

// listeners are the stand-ins for the proxy's listeners in these tests:
// a cleartext one answering HTTP-01 through Manager.HTTPChallenge, and a
// TLS one serving the store.
type listeners struct {
	httpLn, tlsLn net.Listener
	store         *edgetls.Store
	m             atomic.Pointer[Manager]
}

func newListeners(t *testing.T) *listeners {
	t.Helper()
	l := &listeners{}
	var err error
	if l.httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if l.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if l.store, err = edgetls.NewStore(filepath.Join(t.TempDir(), "certificates"), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.URL.Path, http01Prefix); ok {
			if m := l.m.Load(); m != nil {
				if ka, ok := m.HTTPChallenge([]byte(r.Host), []byte(tok)); ok {
					w.Write(ka)
					return
				}
			}
		}
		io.WriteString(w, "routed "+r.Host)
	})
	hs := &http.Server{Handler: h, ErrorLog: nil}
	ts := &http.Server{Handler: h, TLSConfig: l.store.ServerConfig(edgetls.GradeMedium, []string{"http/1.1"})}
	go hs.Serve(l.httpLn)
	go ts.ServeTLS(l.tlsLn, "", "")
	t.Cleanup(func() { hs.Close(); ts.Close() })
	return l
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// pebbleRoots reads the pebble HTTPS trust file into a pool.
func pebbleRoots(t *testing.T, p *pebbletest.Server) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool
}

// newManager returns a Manager over l's store and p's directory, with
// fast renewal checks, stopped when the test ends.
func newManager(t *testing.T, l *listeners, p *pebbletest.Server, o Options) (*Manager, *testLog) {
	t.Helper()
	lg := &testLog{}
	o.Store = l.store
	o.Directory = p.Directory
	o.TrustedRoots = pebbleRoots(t, p)
	if o.StorageDir == "" && o.Storage == nil {
		o.StorageDir = filepath.Join(t.TempDir(), "acme")
	}
	if o.RenewCheckInterval == 0 {
		o.RenewCheckInterval = 100 * time.Millisecond
	}
	o.Logger = slog.New(slog.NewTextHandler(lg, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := New(o)
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	l.m.Store(m)
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("manager log:\n%s", lg.String())
		}
	})
	return m, lg
}

// httpsGet fetches https://host/ from addr, verifying against roots.
func httpsGet(addr, host string, roots *x509.CertPool) (string, *x509.Certificate, error) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: host},
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.TLS.PeerCertificates[0], err
}

// waitFor polls cond every 20 ms for up to ceiling.
func waitFor(t *testing.T, ceiling time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ceiling)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", ceiling, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// served reports whether the store serves a certificate naming name.
func served(s *edgetls.Store, name string) bool {
	for _, n := range s.Names() {
		if n == name {
			return true
		}
	}
	return false
}

// TestHTTP01TwoHosts obtains certificates for two hosts with HTTP-01
// answered through HTTPChallenge, then verifies an HTTPS request to each
// against pebble's root, and finds them exported as Aralez writes them
// (issue 13).
func TestHTTP01TwoHosts(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(l.httpLn), TLSPort: port(l.tlsLn)})
	export := t.TempDir()
	m, _ := newManager(t, l, p, Options{HTTPAddr: l.httpLn.Addr().String(), ExportDir: export})
	names := []string{"a.http01.test", "b.http01.test"}
	if err := m.Manage(names); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "both certificates", func() bool { return served(l.store, names[0]) && served(l.store, names[1]) })
	roots := p.Roots()
	for _, n := range names {
		body, leaf, err := httpsGet(l.tlsLn.Addr().String(), n, roots)
		if err != nil || body != "routed "+n {
			t.Fatalf("GET https://%s/ = %q, %v; want a verified answer", n, body, err)
		}
		if leaf.DNSNames[0] != n {
			t.Errorf("certificate for %s names %q", n, leaf.DNSNames)
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(export, n+".crt"), filepath.Join(export, n+".key"))
		if err != nil {
			t.Fatalf("exported pair of %s: %v", n, err)
		}
		if !bytes.Equal(pair.Certificate[0], leaf.Raw) {
			t.Errorf("exported %s.crt is not the served certificate", n)
		}
		if fi, err := os.Stat(filepath.Join(export, n+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("exported %s.key mode = %v, %v; want 0600", n, fi.Mode().Perm(), err)
		}
	}
	if got := p.Issued(); got != 2 {
		t.Errorf("pebble issued %d certificates; want 2", got)
	}
	for _, st := range m.Status() {
		if st.NotAfter.IsZero() || st.LastError != "" || st.Challenge != "http-01" {
			t.Errorf("Status() = %+v; want a certificate, no error, http-01", st)
		}
	}
	// An unknown token for a managed host and any token for another host
	// go on to routing.
	if _, ok := m.HTTPChallenge([]byte("a.http01.test"), []byte("nosuchtoken")); ok {
		t.Errorf("HTTPChallenge(unknown token) = ok")
	}
	if _, ok := m.HTTPChallenge([]byte("a.http01.test"), []byte("../../etc")); ok {
		t.Errorf("HTTPChallenge(malformed token) = ok")
	}
}

// TestTLSALPN01EmptyStore obtains the first certificate with TLS-ALPN-01
// while the store holds none (issue 13).
func TestTLSALPN01EmptyStore(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	p := pebbletest.Start(t, pebbletest.Options{TLSPort: port(l.tlsLn)})
	if n := len(l.store.Names()); n != 0 {
		t.Fatalf("store starts with %d names; want 0", n)
	}
	m, _ := newManager(t, l, p, Options{TLSAddr: l.tlsLn.Addr().String()})
	if err := m.Manage([]string{"alpn.test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the certificate", func() bool { return served(l.store, "alpn.test") })
	if body, _, err := httpsGet(l.tlsLn.Addr().String(), "alpn.test", p.Roots()); err != nil || body != "routed alpn.test" {
		t.Fatalf("GET https://alpn.test/ = %q, %v", body, err)
	}
	if st := m.Status(); len(st) != 1 || st[0].Challenge != "tls-alpn-01" {
		t.Errorf("Status() = %+v; want tls-alpn-01 (pebble's HTTP-01 port is closed)", st)
	}
}

// challtestDNS is a DNSProvider over pebble-challtestsrv's management
// API, standing in for Cloudflare or Route53.
type challtestDNS struct{ p *pebbletest.Server }

func (d challtestDNS) SetTXT(ctx context.Context, name, value string) error {
	return d.p.SetTXT(ctx, name, value)
}

func (d challtestDNS) ClearTXT(ctx context.Context, name, _ string) error {
	return d.p.ClearTXT(ctx, name)
}

// TestDNS01Wildcard obtains a wildcard certificate with DNS-01 through a
// DNS provider, propagation checked against the test DNS server (issue
// 13).
func TestDNS01Wildcard(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	p := pebbletest.Start(t, pebbletest.Options{})
	m, _ := newManager(t, l, p, Options{HTTPAddr: l.httpLn.Addr().String(), DNS: challtestDNS{p}, DNSResolvers: []string{p.DNSAddr}, DNSPollInterval: 50 * time.Millisecond})
	if err := m.Manage([]string{"*.wild.test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the wildcard certificate", func() bool { return served(l.store, "*.wild.test") })
	for _, h := range []string{"a.wild.test", "b.wild.test"} {
		if body, leaf, err := httpsGet(l.tlsLn.Addr().String(), h, p.Roots()); err != nil || leaf.DNSNames[0] != "*.wild.test" {
			t.Errorf("GET https://%s/ = %q, %v", h, body, err)
		}
	}
	if st := m.Status(); len(st) != 1 || st[0].Challenge != "dns-01" {
		t.Errorf("Status() = %+v; want one dns-01 name", st)
	}
}

// TestWildcardWithoutDNS checks that a wildcard is refused without a DNS
// provider, and the other names are managed anyway.
func TestWildcardWithoutDNS(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	m, err := New(Options{Store: l.store, StorageDir: t.TempDir(), HTTPAddr: l.httpLn.Addr().String(), Directory: "https://127.0.0.1:1/dir", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	err = m.Manage([]string{"*.example.com", "www.example.com"})
	if !errors.Is(err, ErrNoDNSProvider) {
		t.Errorf("Manage(wildcard) error = %v; want ErrNoDNSProvider", err)
	}
	if got := m.Names(); len(got) != 1 || got[0] != "www.example.com" {
		t.Errorf("Names() = %q; want [www.example.com]", got)
	}
	if _, err := m.Order(context.Background(), "*.example.com"); !errors.Is(err, ErrNoDNSProvider) {
		t.Errorf("Order(wildcard) error = %v; want ErrNoDNSProvider", err)
	}
}

// TestRenewalNoFailedRequest renews a short-lived certificate while
// clients keep connecting: every handshake verifies, and the served
// certificate changes (issue 13).
func TestRenewalNoFailedRequest(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(l.httpLn), Validity: 20 * time.Second})
	var renewals atomic.Int32
	m, _ := newManager(t, l, p, Options{
		HTTPAddr: l.httpLn.Addr().String(), RenewalWindowRatio: 0.9,
		OnResult: func(_ string, renewal bool, err error) {
			if renewal && err == nil {
				renewals.Add(1)
			}
		},
	})
	if err := m.Manage([]string{"renew.test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the certificate", func() bool { return served(l.store, "renew.test") })
	roots := p.Roots()
	_, first, err := httpsGet(l.tlsLn.Addr().String(), "renew.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	var reqs, fails int
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, leaf, err := httpsGet(l.tlsLn.Addr().String(), "renew.test", roots)
		reqs++
		if err != nil {
			fails++
			t.Errorf("request %d during renewal: %v", reqs, err)
		} else if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate not renewed within 30s (%d requests)", reqs)
		}
	}
	if renewals.Load() < 1 || p.Issued() < 2 {
		t.Errorf("renewals reported %d, pebble issued %d; want >= 1 and >= 2", renewals.Load(), p.Issued())
	}
	t.Logf("%d requests during the renewal, %d failed", reqs, fails)
}

// TestRenewalFailsCAStopped stops the CA before the renewal: the old
// certificate keeps serving and the error shows in Status and the log
// (issue 13).
func TestRenewalFailsCAStopped(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(l.httpLn), Validity: 30 * time.Second})
	var failures atomic.Int32
	m, lg := newManager(t, l, p, Options{
		HTTPAddr: l.httpLn.Addr().String(), RenewalWindowRatio: 0.9,
		OnResult: func(_ string, renewal bool, err error) {
			if renewal && err != nil {
				failures.Add(1)
			}
		},
	})
	if err := m.Manage([]string{"stopped.test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the certificate", func() bool { return served(l.store, "stopped.test") })
	roots := p.Roots()
	_, first, err := httpsGet(l.tlsLn.Addr().String(), "stopped.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
	waitFor(t, 30*time.Second, "a failed renewal", func() bool { return failures.Load() > 0 })
	st := m.Status()
	if len(st) != 1 || st[0].LastError == "" || st[0].Failures < 1 || !st[0].NotAfter.Equal(first.NotAfter) {
		t.Errorf("Status() = %+v; want the old NotAfter %v and the error", st, first.NotAfter)
	}
	if !strings.Contains(lg.String(), "the previous certificate (if any) keeps serving") {
		t.Errorf("log shows no failed renewal")
	}
	_, leaf, err := httpsGet(l.tlsLn.Addr().String(), "stopped.test", roots)
	if err != nil || leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("after the failed renewal: %v, serial changed %v; want the old certificate", err, leaf != nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0)
	}
}

// TestOrderAndAccount runs the config API's operations: CreateAccount
// twice (the same account), Order for a new name (a certificate), Order
// again (fresh, nothing ordered).
func TestOrderAndAccount(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(l.httpLn)})
	dir := filepath.Join(t.TempDir(), "acme")
	m, _ := newManager(t, l, p, Options{HTTPAddr: l.httpLn.Addr().String(), Email: "ops@order.test", StorageDir: dir})
	if files := storedFiles(t, dir); len(files) != 0 {
		t.Errorf("storage before CreateAccount holds %q; want nothing (the key is made on first use)", files)
	}
	a1, err := m.CreateAccount(context.Background())
	if err != nil || !strings.HasPrefix(a1, "https://127.0.0.1:") {
		t.Fatalf("CreateAccount() = %q, %v", a1, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(m.accountKeyPath()))); err != nil || !strings.Contains(string(b), "PRIVATE KEY") {
		t.Errorf("account key after CreateAccount = %q, %v; want a PEM private key", b, err)
	}
	a2, err := m.CreateAccount(context.Background())
	if err != nil || a2 != a1 {
		t.Errorf("CreateAccount() again = %q, %v; want %q", a2, err, a1)
	}
	fresh, err := m.Order(context.Background(), "order.test")
	if err != nil || fresh {
		t.Fatalf("Order(order.test) = fresh %v, %v; want a new certificate", fresh, err)
	}
	if !served(l.store, "order.test") {
		t.Errorf("store does not serve order.test after Order")
	}
	fresh, err = m.Order(context.Background(), "order.test")
	if err != nil || !fresh {
		t.Errorf("Order(order.test) again = fresh %v, %v; want fresh", fresh, err)
	}
	if got := p.Issued(); got != 1 {
		t.Errorf("pebble issued %d; want 1", got)
	}
	if !strings.Contains(p.Log(), strconv.Quote("mailto:ops@order.test")[1:]) && !strings.Contains(p.Log(), "ops@order.test") {
		t.Logf("pebble log does not show the contact (not required)")
	}
}

// TestExternalAccountBinding registers the account at a CA that requires
// EAB (as ZeroSSL does): without the binding it is refused, with it the
// account exists.
func TestExternalAccountBinding(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	p := pebbletest.Start(t, pebbletest.Options{EAB: map[string]string{kid: hmac}})
	without, _ := newManager(t, l, p, Options{})
	if _, err := without.CreateAccount(context.Background()); err == nil || !strings.Contains(err.Error(), "externalAccountRequired") {
		t.Errorf("CreateAccount() without EAB error = %v; want externalAccountRequired", err)
	}
	with, _ := newManager(t, l, p, Options{EABKeyID: kid, EABHMACKey: hmac})
	if acct, err := with.CreateAccount(context.Background()); err != nil || acct == "" {
		t.Errorf("CreateAccount() with EAB = %q, %v", acct, err)
	}
}

// storedFiles lists the files under dir (relative, slash-separated); a
// missing dir holds none.
func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// TestNewWritesNothing builds a Manager, as the proxy does for every TLS
// listener, and uses the parts a proxy without ACME configuration uses
// (Manage of no names, HTTP-01 lookups, a TLS-ALPN-01 handshake, Status): nothing
// is written to its storage, not even the account key, which is made on
// first use (an order or CreateAccount). No CA is contacted.
func TestNewWritesNothing(t *testing.T) {
	t.Parallel()
	l := newListeners(t)
	dir := filepath.Join(t.TempDir(), "acme")
	m, err := New(Options{Store: l.store, StorageDir: dir, HTTPAddr: l.httpLn.Addr().String(), TLSAddr: l.tlsLn.Addr().String(),
		Directory: "https://127.0.0.1:1/dir", RenewCheckInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Manage(nil); err != nil {
		t.Errorf("Manage(nil) = %v", err)
	}
	if _, ok := m.HTTPChallenge([]byte("a.test"), []byte("tok")); ok {
		t.Errorf("HTTPChallenge(unknown token) ok; want not found")
	}
	if c, err := tls.Dial("tcp", l.tlsLn.Addr().String(), &tls.Config{ServerName: "a.test", NextProtos: []string{"acme-tls/1"}, InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Errorf("TLS-ALPN-01 handshake for a name without challenge succeeded; want refused")
	}
	if st := m.Status(); len(st) != 0 {
		t.Errorf("Status() = %v; want none", st)
	}
	m.Stop()
	if files := storedFiles(t, dir); len(files) != 0 {
		t.Errorf("storage of an unused Manager holds %q; want nothing", files)
	}
}
