package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/tlsonlytest"
)

// TestTLSOnlyBackendHealthChecked runs the proxy with health checks on in
// front of a backend that speaks only TLS, never answers clear text and
// leaves the HEAD probe unanswered, as `openssl s_server -www` does: the
// backend is detected as TLS before the proxy serves and before its first
// health check, nothing reaches it in clear text, and requests reach it
// over TLS although its probes fail (issue 11: it was reached in clear
// text and every request got 502).
func TestTLSOnlyBackendHealthChecked(t *testing.T) {
	be := tlsonlytest.Start(t, tlsonlytest.Options{NoHEAD: true})
	dir := t.TempDir()
	addr := freeAddr(t)
	writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(
		"proxy_address_http: %q\nupstreams_conf: upstreams.yaml\nlog_level: info\n"+
			"health_check_interval: 200ms\nupstream_timeout: 2s\ndrain_timeout: 1s\n", addr))
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML(be.Addr, ""))

	logs := runInProcess(t, filepath.Join(dir, "main.yaml"))
	url := "http://" + addr + "/"
	if !waitFor(10*time.Second, func() bool {
		got, err := body(url)
		return err == nil && got == tlsonlytest.Body
	}) {
		t.Fatalf("no request reached the TLS-only backend over TLS within 10 s; log:\n%s", logs())
	}
	for i := range 5 {
		if got, err := body(url); err != nil || got != tlsonlytest.Body {
			t.Errorf("request %d = %q, %v; want %q", i, got, err, tlsonlytest.Body)
		}
	}
	if l := logs(); !strings.Contains(l, "backend protocol detected") || !strings.Contains(l, "proto=tls+http1") {
		t.Errorf("log lacks the detected protocol (tls+http1); log:\n%s", l)
	}
	// Detection ran before the listener served and before the first
	// health check: neither a request nor a probe went out in clear text.
	if n := be.PlainConns(); n != 0 {
		t.Errorf("backend got %d clear-text connections; want 0; log:\n%s", n, logs())
	}
}
