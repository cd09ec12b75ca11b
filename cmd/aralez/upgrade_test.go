package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	dir, addr := proxyDir(t, strings.TrimPrefix(up.URL, "http://"), "tcp_keepalive_idle: 21\ntcp_keepalive_interval: 4\ntcp_keepalive_count: 6\n")
	pidPath := filepath.Join(dir, "aralez.pid")
	pid := startBinary(t, dir, nil)
	if !waitFor(15*time.Second, func() bool { return readPID(pidPath) == pid }) {
		t.Fatalf("pid file names %d; want %d; log:\n%s", readPID(pidPath), pid, logOf(dir))
	}
	waitServing(t, addr, "U")

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
		if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("upgrade %d: old process %d wait status %v; want exit 0", i, pid, ws)
		}
		if !alive(next) {
			t.Fatalf("upgrade %d: new process %d is not running; log:\n%s", i, next, logOf(dir))
		}
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
