package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aralez-go/aralez/internal/syncbuf"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/internal/pebbletest"
	"github.com/aralez-go/aralez/tls/acme/dnsprovider"
)

// apiGet fetches url and returns the status and body.
func apiGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tlsServes reports whether addr completes a handshake for name that
// verifies against roots.
func tlsServes(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// startACMEProcess runs an in-process server on main.yaml and
// upstreams.yaml written into a new folder, until the test ends, and
// waits until it is ready; it returns the folder and the log.
func startACMEProcess(t *testing.T, mainYAML, upstreamsYAML string) (string, *syncbuf.Buffer) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.yaml"), mainYAML)
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML)
	cfg, err := config.Load(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	srv, err := newServer(cfg, filepath.Join(dir, "main.yaml"), slog.New(slog.NewTextHandler(logs, nil)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, make(chan os.Signal)) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("aralez log:\n%s", logs.String())
		}
	})
	return dir, logs
}

// TestACMEHTTP01ThroughProxy obtains certificates for two routed hosts
// (acme_auto) with HTTP-01 answered by the proxy's own cleartext
// listener, although every route redirects to https and requires basic
// authorization; then an HTTPS request to each host verifies against
// pebble's root and reaches the backend (issue 13).
func TestACMEHTTP01ThroughProxy(t *testing.T) {
	httpAddr, tlsAddr := freeAddr(t), freeAddr(t)
	_, httpPort, _ := net.SplitHostPort(httpAddr)
	hp, _ := strconv.Atoi(httpPort)
	peb := pebbletest.Start(t, pebbletest.Options{HTTPPort: hp})
	a := named(t, "A")
	startACMEProcess(t, fmt.Sprintf(`proxy_address_http: %q
proxy_address_tls: %q
acme_auto: true
acme_directory: %s
acme_ca_file: %s
acme_challenges: [http-01]
`, httpAddr, tlsAddr, peb.Directory, peb.CAFile), fmt.Sprintf(`to_https: true
authorization: {type: basic, data: ["u:p"]}
upstreams:
  a.h01.test:
    paths:
      "/": {servers: [%q]}
  b.h01.test:
    paths:
      "/": {servers: [%q]}
  DEFAULT:
    paths:
      "/": {servers: [%q]}
`, a, a, a))
	var roots *x509.CertPool
	for _, host := range []string{"a.h01.test", "b.h01.test"} {
		if !waitFor(30*time.Second, func() bool {
			if roots == nil {
				roots = peb.Roots()
			}
			_, err := tlsServes(tlsAddr, host, roots)
			return err == nil
		}) {
			t.Fatalf("no verified certificate for %s within 30s", host)
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", tlsAddr)
			},
		}}
		req, _ := http.NewRequest("GET", "https://"+host+"/", nil)
		req.SetBasicAuth("u", "p")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET https://%s/: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "A" {
			t.Errorf("GET https://%s/ = %d %q; want 200 A", host, resp.StatusCode, b)
		}
	}
	if n := peb.Issued(); n != 2 {
		t.Errorf("pebble issued %d certificates; want 2", n)
	}
	// Other plain-HTTP requests still get the redirect.
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get("http://" + httpAddr + "/.well-known/acme-challenge/unknown")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 {
		t.Errorf("unknown token over plain HTTP = %d; want the route's 301", resp.StatusCode)
	}
}

// TestACMEOrderThroughAPI orders a certificate through the config API's
// /acme_order on the running process (TLS-ALPN-01 on its TLS listener,
// which starts without any certificate), then checks that the proxy
// serves it, that domains.json and the exported pair hold it, and that
// /status and /metrics show it (issue 13).
func TestACMEOrderThroughAPI(t *testing.T) {
	tlsAddr, api, addr := freeAddr(t), freeAddr(t), freeAddr(t)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	p, _ := strconv.Atoi(tlsPort)
	peb := pebbletest.Start(t, pebbletest.Options{TLSPort: p})
	dir, _ := startACMEProcess(t, fmt.Sprintf(`proxy_address_http: %q
proxy_address_tls: %q
config_address: %q
master_key: k3y
acme_directory: %s
acme_ca_file: %s
acme_email: ops@api.test
acme_challenges: [tls-alpn-01]
log_level: debug
`, addr, tlsAddr, api, peb.Directory, peb.CAFile), upstreamsYAML(named(t, "A"), ""))
	if !waitFor(10*time.Second, func() bool { c, _ := apiGet(t, "http://"+api+"/ready"); return c == 200 }) {
		t.Fatal("process not ready")
	}
	if _, err := tlsServes(tlsAddr, "api.acme.test", nil); err == nil {
		t.Fatal("handshake succeeded before any certificate exists")
	}
	keys := filepath.Join(dir, "acme", "aralez", "accounts")
	if ents, err := os.ReadDir(keys); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("account keys before any order: %d in %s (%v); want none (made on first use)", len(ents), keys, err)
	}
	if code, body := apiGet(t, "http://"+api+"/acme_order/api.acme.test"); code != 401 {
		t.Errorf("acme_order without key = %d %q; want 401", code, body)
	}
	code, body := apiGet(t, "http://"+api+"/acme_order/API.acme.test?key=k3y")
	if code != 200 || body != "Certificate is successfully generated\n" {
		t.Fatalf("acme_order = %d %q", code, body)
	}
	roots := peb.Roots()
	leaf, err := tlsServes(tlsAddr, "api.acme.test", roots)
	if err != nil || leaf.DNSNames[0] != "api.acme.test" {
		t.Fatalf("TLS handshake for api.acme.test: %v", err)
	}
	if code, body := apiGet(t, "http://"+api+"/acme_order/api.acme.test?key=k3y"); code != 200 || !strings.Contains(body, "Fresh certificate exists") {
		t.Errorf("acme_order again = %d %q; want fresh", code, body)
	}
	if n := peb.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates; want 1", n)
	}
	if ents, err := os.ReadDir(keys); err != nil || len(ents) != 1 {
		t.Errorf("account keys after the order: %d in %s (%v); want 1", len(ents), keys, err)
	}
	var domains []string
	b, err := os.ReadFile(filepath.Join(dir, "autoconfigs", "domains.json"))
	if err != nil || json.Unmarshal(b, &domains) != nil || len(domains) != 1 || domains[0] != "api.acme.test" {
		t.Errorf("domains.json = %q, %v; want [\"api.acme.test\"]", b, err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "certificates", "api.acme.test.crt"), filepath.Join(dir, "certificates", "api.acme.test.key")); err != nil {
		t.Errorf("exported pair: %v", err)
	}
	_, status := apiGet(t, "http://"+api+"/status?certificates")
	if !strings.Contains(status, `"name": "api.acme.test"`) || !strings.Contains(status, `"challenge": "tls-alpn-01"`) || strings.Contains(status, "last_error") {
		t.Errorf("/status?certificates = %s", status)
	}
	_, metrics := apiGet(t, "http://"+api+"/metrics")
	if want := `aralez_acme_orders_total{kind="obtain",outcome="success"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %q", want)
	}
	_, v, _ := strings.Cut(metrics, `aralez_certificate_expiry_timestamp_seconds{name="api.acme.test"} `)
	v, _, _ = strings.Cut(v, "\n")
	if f, err := strconv.ParseFloat(v, 64); err != nil || int64(f) != leaf.NotAfter.Unix() {
		t.Errorf("/metrics expiry of api.acme.test = %q; want %d", v, leaf.NotAfter.Unix())
	}
}

// TestNoACMEWritesNothing starts the process with a TLS listener and no
// ACME configuration: the certificate manager exists (for the config
// API's /acme_order and /acme_create) but writes nothing under
// <proxy_configs>/acme/, not even an account key, until it is used.
func TestNoACMEWritesNothing(t *testing.T) {
	tlsAddr, api, addr := freeAddr(t), freeAddr(t), freeAddr(t)
	dir, _ := startACMEProcess(t, fmt.Sprintf(`proxy_address_http: %q
proxy_address_tls: %q
config_address: %q
master_key: k3y
`, addr, tlsAddr, api), upstreamsYAML(named(t, "A"), ""))
	if !waitFor(10*time.Second, func() bool { c, _ := apiGet(t, "http://"+api+"/ready"); return c == 200 }) {
		t.Fatal("process not ready")
	}
	if code, _ := apiGet(t, "http://"+api+"/status?certificates"); code != 200 {
		t.Errorf("/status?certificates = %d; want 200 (a manager exists)", code)
	}
	var files []string
	err := filepath.WalkDir(filepath.Join(dir, "acme"), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			files = append(files, p)
		}
		return err
	})
	if !errors.Is(err, fs.ErrNotExist) || len(files) != 0 {
		t.Errorf("%s holds %q (%v); want no acme folder without ACME configuration", filepath.Join(dir, "acme"), files, err)
	}
}

// TestDNSProviderChoice maps acme_dns_provider to the providers, with
// Aralez's environment variables.
func TestDNSProviderChoice(t *testing.T) {
	t.Setenv("CLOUDFLARE_API_TOKEN", "tok")
	t.Setenv("CLOUDFLARE_ZONE_ID", "zone")
	t.Setenv("AWS_HOSTED_ZONE_ID", "Z1")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	if p, err := dnsProvider("cloudflare"); err != nil || p.(*dnsprovider.Cloudflare).ZoneID != "zone" {
		t.Errorf("dnsProvider(cloudflare) = %v, %v", p, err)
	}
	if p, err := dnsProvider("Route53"); err != nil || p.(*dnsprovider.Route53).ZoneID != "Z1" {
		t.Errorf("dnsProvider(route53) = %v, %v", p, err)
	}
	if _, err := dnsProvider("bind"); err == nil || !strings.Contains(err.Error(), "want cloudflare or route53") {
		t.Errorf("dnsProvider(bind) error = %v", err)
	}
	t.Setenv("CLOUDFLARE_ZONE_ID", "")
	if _, err := dnsProvider("cloudflare"); err == nil {
		t.Errorf("dnsProvider(cloudflare) without a zone = nil error")
	}
}
