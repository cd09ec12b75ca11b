package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// onEvent follows certmagic's events: obtained and renewed certificates
// go to the store (and the export folder), failures into the status.
func (m *Manager) onEvent(ctx context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtained":
		name, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		certPath, _ := data["certificate_path"].(string)
		keyPath, _ := data["private_key_path"].(string)
		cert, err := m.loadPair(ctx, certPath, keyPath)
		if err != nil {
			m.log.Error("acme: loading the certificate just obtained", "name", name, "err", err)
			return nil
		}
		m.succeed(name, renewal, cert)
	case "cert_failed":
		name, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		err, _ := data["error"].(error)
		if err == nil {
			err = errors.New("unknown error")
		}
		m.fail(name, renewal, err)
	case "cached_managed_cert":
		sans, _ := data["sans"].([]string)
		m.syncFromCache(sans)
	}
	return nil
}

// loadPair reads a certificate and its key from storage.
func (m *Manager) loadPair(ctx context.Context, certPath, keyPath string) (*tls.Certificate, error) {
	certPEM, err := m.storage.Load(ctx, certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := m.storage.Load(ctx, keyPath)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &cert, nil
}

// succeed records a new certificate for name and publishes it.
func (m *Manager) succeed(name string, renewal bool, cert *tls.Certificate) {
	m.mu.Lock()
	m.obtained++
	if st, ok := m.names[name]; ok {
		st.LastError, st.LastErrorAt = "", time.Time{}
		if renewal {
			st.Renewals++
		}
	}
	m.setCertLocked(name, cert)
	m.mu.Unlock()
	m.log.Info("acme: certificate obtained", "name", name, "renewal", renewal, "not_after", cert.Leaf.NotAfter)
	if m.o.OnResult != nil {
		m.o.OnResult(name, renewal, nil)
	}
}

// fail records a failed order or renewal; the certificate served so far
// (if any) keeps serving.
func (m *Manager) fail(name string, renewal bool, err error) {
	m.mu.Lock()
	if st, ok := m.names[name]; ok {
		st.LastError, st.LastErrorAt = err.Error(), time.Now()
		if renewal {
			st.Failures++
		}
	}
	m.mu.Unlock()
	m.log.Error("acme: obtaining a certificate failed; the previous certificate (if any) keeps serving", "name", name, "renewal", renewal, "err", err)
	if m.o.OnResult != nil {
		m.o.OnResult(name, renewal, err)
	}
}

// syncFromCache takes the newest certificate of certmagic's cache for
// each managed name in names (all managed names when nil): a certificate
// loaded at start or renewed by another instance of the fleet.
func (m *Manager) syncFromCache(names []string) {
	if names == nil {
		names = m.Names()
	}
	for _, n := range names {
		var best *tls.Certificate
		for _, c := range m.cache.AllMatchingCertificates(n) {
			if c.Leaf == nil || !slices.Contains(c.Names, n) {
				continue
			}
			if best == nil || c.Leaf.NotAfter.After(best.Leaf.NotAfter) {
				tc := c.Certificate
				best = &tc
			}
		}
		if best == nil {
			continue
		}
		m.mu.Lock()
		if _, ok := m.names[n]; ok {
			m.setCertLocked(n, best)
		}
		m.mu.Unlock()
	}
}

// setCertLocked keeps cert for name unless the one held expires later,
// then publishes the set and exports cert. m.mu must be held.
func (m *Manager) setCertLocked(name string, cert *tls.Certificate) {
	if old, ok := m.certs[name]; ok {
		if bytes.Equal(old.Certificate[0], cert.Certificate[0]) || old.Leaf.NotAfter.After(cert.Leaf.NotAfter) {
			return
		}
	}
	m.certs[name] = cert
	if st, ok := m.names[name]; ok {
		st.NotAfter = cert.Leaf.NotAfter
	}
	m.publishLocked()
	if m.o.ExportDir != "" {
		if err := exportPair(m.o.ExportDir, name, cert); err != nil {
			m.log.Error("acme: exporting the certificate", "name", name, "dir", m.o.ExportDir, "err", err)
		}
	}
}

// publishLocked hands the store the certificates of the managed names.
// m.mu must be held.
func (m *Manager) publishLocked() {
	list := make([]*tls.Certificate, 0, len(m.certs))
	for _, n := range slices.Sorted(maps.Keys(m.certs)) {
		if !slices.Contains(list, m.certs[n]) {
			list = append(list, m.certs[n])
		}
	}
	m.o.Store.SetCertificates(Source, list)
}

// ExportName is the base file name a certificate for name is exported
// under: the name itself, a wildcard's '*' spelled "wildcard_".
func ExportName(name string) string { return certmagic.StorageKeys.Safe(name) }

// exportPair writes dir/NAME.key (0600) and then dir/NAME.crt, each to a
// hidden temporary file renamed into place, so that a folder watcher
// never reads half a file.
func exportPair(dir, name string, cert *tls.Certificate) error {
	var certPEM bytes.Buffer
	for _, der := range cert.Certificate {
		certPEM.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	keyPEM, err := certmagic.PEMEncodePrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := ExportName(name)
	if err := writeAtomic(dir, base+".key", keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(dir, base+".crt", certPEM.Bytes(), 0o644)
}

func writeAtomic(dir, name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, filepath.Join(dir, name))
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, werr)
	}
	return nil
}

// syncLoop picks up, every RenewCheckInterval, certificates that
// certmagic reloaded without an event (renewed by another instance
// sharing the storage).
func (m *Manager) syncLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.o.RenewCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.syncFromCache(nil)
		}
	}
}

// Stop ends certificate management: background orders and renewals are
// canceled and the maintenance goroutines end. Certificates already
// handed to the store keep serving. Stop waits for the Manager's own
// goroutines.
func (m *Manager) Stop() {
	m.cancel()
	m.cache.Stop()
	m.wg.Wait()
}

// http01Prefix is the path of HTTP-01 key authorizations (RFC 8555
// §8.3).
const http01Prefix = "/.well-known/acme-challenge/"

// maxTokenLen bounds the tokens HTTPChallenge looks up; RFC 8555 §8.3
// tokens are 43 base64url characters at Let's Encrypt.
const maxTokenLen = 256

// HTTPChallenge returns the key authorization for an HTTP-01 token (RFC
// 8555 §8.3) for host, or ok=false when this instance holds no such
// token. host may carry a port; it is matched without regard to case.
// The returned slice is the caller's.
//
// Tokens of challenges this process started are answered from memory;
// for a managed name, a token another instance of the fleet started is
// looked up in the shared storage. Other hosts, malformed tokens and
// unknown tokens answer ok=false at once, so that the request goes on
// to normal routing (a backend may run its own ACME client).
func (m *Manager) HTTPChallenge(host, token []byte) (keyAuth []byte, ok bool) {
	if len(token) == 0 || len(token) > maxTokenLen || !base64URL(token) {
		return nil, false
	}
	h := strings.ToLower(string(hostOnly(host)))
	if chal, ok := certmagic.GetACMEChallenge(h); ok && chal.Type == acme.ChallengeTypeHTTP01 && chal.Token == string(token) {
		return []byte(chal.KeyAuthorization), true
	}
	m.mu.Lock()
	_, managed := m.names[h]
	m.mu.Unlock()
	if !managed || m.iss == nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	path := http01Prefix + string(token)
	req := (&http.Request{
		Method: http.MethodGet, URL: &url.URL{Path: path}, RequestURI: path,
		Host: h, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}).WithContext(ctx)
	w := &keyAuthWriter{h: http.Header{}}
	if !m.iss.HandleHTTPChallenge(w, req) || w.buf.Len() == 0 {
		return nil, false
	}
	return w.buf.Bytes(), true
}

// keyAuthWriter captures what certmagic writes for an HTTP-01 request.
type keyAuthWriter struct {
	h   http.Header
	buf bytes.Buffer
}

func (w *keyAuthWriter) Header() http.Header         { return w.h }
func (w *keyAuthWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *keyAuthWriter) WriteHeader(int)             {}

// hostOnly strips a port from a Host value ("[::1]:80" keeps "[::1]").
func hostOnly(h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[i:], ']') < 0 {
		return h[:i]
	}
	return h
}

// base64URL reports whether b holds only base64url characters, the
// alphabet of ACME tokens (RFC 8555 §8.1).
func base64URL(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// TLSALPNCertificate answers a TLS-ALPN-01 validation handshake (RFC
// 8737) with the certificate of a pending challenge for
// hello.ServerName, started by this process or, through the shared
// storage, by another instance. It implements edgetls.ChallengeResponder.
func (m *Manager) TLSALPNCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.o.TLSAddr == "" {
		return nil, errors.New("acme: TLS-ALPN-01 is not enabled")
	}
	return m.cfg.GetCertificate(hello)
}
