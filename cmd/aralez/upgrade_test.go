package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeUnderLoad upgrades the running binary three times with
// SIGUSR2 while clients send requests over keep-alive connections. A
// client that retries idempotent requests on a closed idle connection
// (net/http) sees no error; each time the pid file names the new process,
// the old one exits 0, and the new one applies tcp_keepalive_* to the
// sockets it inherited. A new binary that fails to start leaves the old
// one serving (issue 6).
func TestUpgradeUnderLoad(t *testing.T) {
	becomeSubreaper(t)
	// Requests to /slow take 100 ms, so some are always in flight when
	// the old process drains.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(w, "U")
	}))
	defer up.Close()
	// Every kind of listener is inherited: cleartext, TLS, config API and
	// file server.
	tlsAddr, apiAddr, filesAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	dir, addr := proxyDir(t, strings.TrimPrefix(up.URL, "http://"), fmt.Sprintf(
		"tcp_keepalive_idle: 21\ntcp_keepalive_interval: 4\ntcp_keepalive_count: 6\n"+
			"proxy_address_tls: %q\nconfig_address: %q\nfile_server_address: %q\nfile_server_folder: public\n",
		tlsAddr, apiAddr, filesAddr))
	writeCert(t, filepath.Join(dir, "certificates"), "upgrade.test")
	if err := os.Mkdir(filepath.Join(dir, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "public", "f.txt"), "F")
	// systemd's side of sd_notify: each process must announce itself.
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	pidPath := filepath.Join(dir, "aralez.pid")
	pid := startBinary(t, dir, nil, "NOTIFY_SOCKET="+filepath.Join(dir, "notify.sock"))
	if !waitFor(15*time.Second, func() bool { return readPID(pidPath) == pid }) {
		t.Fatalf("pid file names %d; want %d; log:\n%s", readPID(pidPath), pid, logOf(dir))
	}
	waitServing(t, addr, "U")
	checkNotify(t, notify, pid)
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "upgrade.test"}}}
	defer tlsClient.CloseIdleConnections()
	checkListeners := func(when string) {
		t.Helper()
		for _, c := range []struct{ url, want string }{
			{"https://" + tlsAddr + "/", "U"},
			{"http://" + filesAddr + "/f.txt", "F"},
		} {
			resp, err := tlsClient.Get(c.url)
			if err != nil {
				t.Errorf("%s: GET %s: %v", when, c.url, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != c.want {
				t.Errorf("%s: GET %s = %d %q; want 200 %q", when, c.url, resp.StatusCode, b, c.want)
			}
		}
		if resp, err := tlsClient.Get("http://" + apiAddr + "/ready"); err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: config API /ready = %v, %v; want 200", when, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	checkListeners("before the upgrades")

	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute},
	}
	defer client.CloseIdleConnections()
	var total, failures, closes atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		path := "/"
		if i >= 4 {
			path = "/slow"
		}
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
				resp, err := client.Get("http://" + addr + path)
				if err != nil {
					failures.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Close {
					closes.Add(1) // Connection: close from a draining process
				}
				if err != nil || resp.StatusCode != 200 || string(b) != "U" {
					failures.Add(1)
					lastErr.Store(fmt.Sprintf("%d %q %v", resp.StatusCode, b, err))
				}
			}
		}()
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()

	for i := 1; i <= 3; i++ {
		before := total.Load()
		if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		var next int
		if !waitFor(20*time.Second, func() bool { next = readPID(pidPath); return next != pid && next != 0 }) {
			t.Fatalf("upgrade %d: pid file still names %d; log:\n%s", i, pid, logOf(dir))
		}
		killAtCleanup(t, next)
		checkNotify(t, notify, next)
		if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("upgrade %d: old process %d wait status %v; want exit 0", i, pid, ws)
		}
		if !alive(next) {
			t.Fatalf("upgrade %d: new process %d is not running; log:\n%s", i, next, logOf(dir))
		}
		checkListeners(fmt.Sprintf("after upgrade %d", i))
		// The new process serves, on the socket it inherited, with the
		// configured keep-alive.
		c := dialServed(t, addr)
		if got, want := serverKeepAlive(t, next, c), (keepAlive{1, 21, 4, 6}); got != want {
			t.Errorf("upgrade %d: keep-alive of a socket accepted by the new process = %+v; want %+v", i, got, want)
		}
		c.Close()
		if !waitFor(10*time.Second, func() bool { return total.Load() > before+200 }) {
			t.Errorf("upgrade %d: load stalled at %d requests", i, total.Load())
		}
		pid = next
	}
	stopLoad()
	t.Logf("%d requests during 3 upgrades, %d failed, %d answered with Connection: close", total.Load(), failures.Load(), closes.Load())
	if f := failures.Load(); f != 0 {
		t.Errorf("%d of %d requests failed during upgrades; last: %v", f, total.Load(), lastErr.Load())
	}
	if closes.Load() == 0 {
		t.Errorf("no response carried Connection: close; in-flight requests of a draining process must")
	}

	// A new binary whose config is broken never gets ready: the upgrade
	// fails and the running process keeps serving.
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), "upstreams:\n  DEFAULT:\n    paths:\n      \"/\":\n        servers: [\"not-an-address\"]\n")
	syscall.Kill(pid, syscall.SIGUSR2)
	if !waitFor(20*time.Second, func() bool { return strings.Contains(logOf(dir), "upgrade failed; this process keeps serving") }) {
		t.Errorf("log lacks the failed upgrade:\n%s", logOf(dir))
	}
	if got := readPID(pidPath); got != pid || !alive(pid) {
		t.Errorf("after a failed upgrade the pid file names %d (alive %v); want %d", got, alive(pid), pid)
	}
	if got, err := body("http://" + addr + "/"); err != nil || got != "U" {
		t.Errorf("after a failed upgrade: %q, %v; want U", got, err)
	}

	syscall.Kill(pid, syscall.SIGTERM)
	if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("last process wait status %v; want exit 0", ws)
	}
}

// TestUpgradeWrk upgrades the binary twice while wrk keeps 8 connections
// busy: wrk may see read errors (an idle keep-alive connection closed by
// the draining process; wrk does not retry) but no non-2xx response
// (issue 6). It is skipped when wrk is not installed.
func TestUpgradeWrk(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk not installed")
	}
	becomeSubreaper(t)
	var served atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "W")
	}))
	defer up.Close()
	dir, addr := proxyDir(t, strings.TrimPrefix(up.URL, "http://"), "")
	pidPath := filepath.Join(dir, "aralez.pid")
	pid := startBinary(t, dir, nil)
	if !waitFor(15*time.Second, func() bool { return readPID(pidPath) == pid }) {
		t.Fatalf("pid file names %d; want %d; log:\n%s", readPID(pidPath), pid, logOf(dir))
	}
	waitServing(t, addr, "W")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrk, "-t1", "-c8", "-d5s", "--timeout", "5s", "http://"+addr+"/")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wrkDone := make(chan error, 1)
	go func() { wrkDone <- cmd.Wait() }()
	for i := 1; i <= 2; i++ {
		before := served.Load()
		if !waitFor(10*time.Second, func() bool { return served.Load() > before+1000 }) {
			t.Fatalf("upgrade %d: load stalled at %d requests", i, served.Load())
		}
		syscall.Kill(pid, syscall.SIGUSR2)
		var next int
		if !waitFor(20*time.Second, func() bool { next = readPID(pidPath); return next != pid && next != 0 }) {
			t.Fatalf("upgrade %d: pid file still names %d; log:\n%s", i, pid, logOf(dir))
		}
		killAtCleanup(t, next)
		if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("upgrade %d: old process wait status %v; want exit 0", i, ws)
		}
		pid = next
	}
	before := served.Load()
	if !waitFor(10*time.Second, func() bool { return served.Load() > before+1000 }) {
		t.Errorf("no load after the last upgrade; wrk ended too early")
	}
	select {
	case err := <-wrkDone:
		if err != nil {
			t.Fatalf("wrk: %v\n%s", err, out.String())
		}
	case <-ctx.Done():
		t.Fatal("wrk did not end")
	}
	t.Logf("wrk during 2 upgrades:\n%s", out.String())
	if strings.Contains(out.String(), "Non-2xx") {
		t.Errorf("wrk saw non-2xx responses during upgrades:\n%s", out.String())
	}
	if !strings.Contains(out.String(), " requests in ") {
		t.Errorf("wrk output lacks its summary:\n%s", out.String())
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("last process wait status %v; want exit 0", ws)
	}
}

// checkNotify reads the next sd_notify datagram and checks that it is
// READY=1 with MAINPID=pid.
func checkNotify(t *testing.T, c *net.UnixConn, pid int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("sd_notify: %v", err)
	}
	got := strings.Fields(string(buf[:n]))
	want := []string{"READY=1", fmt.Sprintf("MAINPID=%d", pid)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("sd_notify message %q; want %q", got, want)
	}
}

// writeCert writes a self-signed ECDSA certificate for host as
// dir/host.crt and dir/host.key.
func writeCert(t *testing.T, dir, host string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, host+".crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, filepath.Join(dir, host+".key"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
}
