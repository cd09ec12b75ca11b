package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
)

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func named(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write by rename, as many editors do.
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func upstreamsYAML(server string, extraPath string) string {
	s := fmt.Sprintf("upstreams:\n  DEFAULT:\n    paths:\n      \"/\":\n        servers: [\"%s\"]\n", server)
	if extraPath != "" {
		s += fmt.Sprintf("      \"%s\":\n        servers: [\"%s\"]\n", extraPath, server)
	}
	return s
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func body(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

// TestReloadUnderLoad changes the routing table 20 times, by file writes
// and by SIGHUP, while clients send requests: no request may fail and
// every change must take effect (issue 2, §6 and §8). The process gets
// real signals; SIGTERM ends it with exit code 0.
func TestReloadUnderLoad(t *testing.T) {
	a, b := named(t, "A"), named(t, "B")
	dir := t.TempDir()
	addr := freeAddr(t)
	pid := filepath.Join(dir, "aralez.pid")
	writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(
		"proxy_address_http: %q\nupstreams_conf: upstreams.yaml\npid_file: aralez.pid\nlog_level: warn\nhealth_check_interval: 200ms\ndrain_timeout: 5s\n", addr))
	upPath := filepath.Join(dir, "upstreams.yaml")
	writeFile(t, upPath, upstreamsYAML(a, ""))

	var stderr bytes.Buffer
	var stderrMu sync.Mutex
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-c", filepath.Join(dir, "main.yaml")}, io.Discard, lockedWriter{&stderr, &stderrMu})
	}()
	url := "http://" + addr + "/"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err := body(url); err == nil && got == "A" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("proxy did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile(pid); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("pid file = %q, %v; want %d", b, err, os.Getpid())
	}

	var failures, total atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				total.Add(1)
				if got, err := body(url); err != nil || (got != "A" && got != "B") {
					failures.Add(1)
					lastErr.Store(fmt.Sprintf("%q %v", got, err))
				}
			}
		}()
	}

	var worst time.Duration
	for i := 1; i <= 20; i++ {
		want, server := "B", b
		if i%2 == 0 {
			want, server = "A", a
		}
		// A new path each time proves a whole new table, not a cached one.
		extra := fmt.Sprintf("/v%d", i)
		writeFile(t, upPath, upstreamsYAML(server, extra))
		if i%2 == 0 {
			syscall.Kill(os.Getpid(), syscall.SIGHUP)
		}
		start := time.Now()
		for {
			got, err := body("http://" + addr + extra + "/x")
			if err == nil && got == want {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("change %d: %s still answers %q, %v; want %q", i, extra, got, err, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Since(start); d > worst {
			worst = d
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("20 changes applied; slowest took %v; %d requests during the changes", worst, total.Load())
	if f := failures.Load(); f != 0 {
		t.Errorf("%d of %d requests failed during reloads; last: %v", f, total.Load(), lastErr.Load())
	}

	// A broken file is rejected with file:line:col and the old table
	// keeps serving.
	writeFile(t, upPath, "upstreams:\n  DEFAULT:\n    paths:\n      \"/\":\n        servers: [\"not-an-address\"]\n")
	if !waitFor(10*time.Second, func() bool {
		stderrMu.Lock()
		defer stderrMu.Unlock()
		return strings.Contains(stderr.String(), "upstreams.yaml:5:")
	}) {
		t.Errorf("log lacks the file:line:col of the bad server; log:\n%s", stderr.String())
	}
	if got, err := body(url); err != nil || got != "A" {
		t.Errorf("after a bad config: %q, %v; want the old route (A)", got, err)
	}

	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d; want 0", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pid file still there after exit: %v", err)
	}
}

func waitFor(ceiling time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(ceiling)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCheckFlag covers `aralez -t`: a valid config prints the routing
// table and exits 0; a broken one prints every error with file:line:col
// and exits 1.
func TestCheckFlag(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.yaml"), "proxy_address_http: \"127.0.0.1:1\"\n")
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML("127.0.0.1:9", "/api"))
	var out, errb bytes.Buffer
	if code := run([]string{"-t", "-c", filepath.Join(dir, "main.yaml")}, &out, &errb); code != 0 {
		t.Fatalf("-t on a valid config = %d; stderr %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "DEFAULT /api -> 127.0.0.1:9") {
		t.Errorf("-t output lacks the route table:\n%s", out.String())
	}
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), "upstreams:\n  app.test:\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:99999\"]\n        rate_limit: 0\n    bogus: 1\n")
	out.Reset()
	errb.Reset()
	if code := run([]string{"-t", "-c", filepath.Join(dir, "main.yaml")}, &out, &errb); code != 1 {
		t.Fatalf("-t on a broken config = %d; want 1", code)
	}
	for _, want := range []string{"upstreams.yaml:5:", "upstreams.yaml:6:", "upstreams.yaml:7:"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("-t errors lack %q:\n%s", want, errb.String())
		}
	}
	out.Reset()
	if code := run([]string{"-version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "aralez ") {
		t.Errorf("-version = %d %q", code, out.String())
	}
}

// TestConfigAPIMetricsAccessLog runs the process with the config API, an
// access log to log_file and metrics: a pushed table takes effect, the
// request counters move, and the access log names the request (issue 6).
func TestConfigAPIMetricsAccessLog(t *testing.T) {
	a, b := named(t, "A"), named(t, "B")
	dir := t.TempDir()
	addr, api := freeAddr(t), freeAddr(t)
	logPath := filepath.Join(dir, "aralez.log")
	writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(
		"proxy_address_http: %q\nconfig_address: %q\nconfig_api_enabled: true\nmaster_key: k3y\naccess_log: all\nlog_file: aralez.log\nlog_level: warn\n", addr, api))
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML(a, ""))
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := config.Load(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	srv, err := newServer(cfg, filepath.Join(dir, "main.yaml"), slog.New(slog.NewTextHandler(logf, nil)), logf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, make(chan os.Signal)) }()
	defer func() {
		cancel()
		<-done
	}()
	if !waitFor(10*time.Second, func() bool { got, err := body("http://" + addr + "/"); return err == nil && got == "A" }) {
		t.Fatal("proxy did not come up")
	}
	// Push a table that routes to B.
	resp, err := httpClient.Post("http://"+api+"/conf?key=k3y", "application/yaml", strings.NewReader(upstreamsYAML(b, "")))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /conf = %d %s", resp.StatusCode, msg)
	}
	if got, err := body("http://" + addr + "/"); err != nil || got != "B" {
		t.Fatalf("after push: %q, %v; want B", got, err)
	}
	// A wrong key changes nothing.
	resp, err = httpClient.Post("http://"+api+"/conf?key=nope", "application/yaml", strings.NewReader(upstreamsYAML(a, "")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("POST /conf with a wrong key = %d; want 403", resp.StatusCode)
	}
	if got, _ := body("http://" + addr + "/"); got != "B" {
		t.Errorf("after a refused push: %q; want B", got)
	}
	resp, err = httpClient.Get("http://" + api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"aralez_requests_total 3", `aralez_responses_total{status="200"} 3`, `aralez_reloads_total{result="ok"} 2`} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !waitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), `"GET / HTTP/1.1" 200`) >= 3 || strings.Count(string(b), "GET") >= 3
	}) {
		b, _ := os.ReadFile(logPath)
		t.Errorf("access log lacks the requests:\n%s", b)
	}
}

func TestRestartKeys(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ProxyAddressHTTP": "proxy_address_http", "HCInterval": "hc_interval", "MaxURIBytes": "max_uri_bytes",
		"TCPKeepaliveIdle": "tcp_keepalive_idle", "ReadHeaderTimeout": "read_header_timeout", "Threads": "threads",
		"H2MaxConcurrentStreams": "h2_max_concurrent_streams", "H2ConnectionWindowBytes": "h2_connection_window_bytes",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q; want %q", in, got, want)
		}
	}
	a := config.Main{ReadHeaderTimeout: time.Second, MasterKey: "x"}
	b := a
	b.ReadHeaderTimeout, b.MasterKey = 2*time.Second, "y"
	if got := fmt.Sprint(restartKeys(&a, &b)); got != "[master_key read_header_timeout]" {
		t.Errorf("restartKeys = %s; want [master_key read_header_timeout]", got)
	}
}
