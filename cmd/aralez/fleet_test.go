package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// viaBalancer sends one GET to addr from 127.0.0.2, the load balancer of
// these tests, opening the connection with the PROXY v1 header line hdr,
// and returns the response body.
func viaBalancer(addr, hdr string) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, hdr+"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b), err
}

// TestProxyProtocolAcrossUpgrade runs the binary with proxy_protocol on
// for 127.0.0.2: the client address of the header reaches the backend
// before and after a binary upgrade (SIGUSR2), and a connection from
// the balancer without a header is closed unanswered (issue 17).
func TestProxyProtocolAcrossUpgrade(t *testing.T) {
	becomeSubreaper(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	}))
	defer up.Close()
	dir, addr := proxyDir(t, strings.TrimPrefix(up.URL, "http://"), "proxy_protocol: true\nproxy_protocol_from: [\"127.0.0.2\"]\nread_header_timeout: 1s\n")
	pid := startBinary(t, dir, nil)
	pidPath := dir + "/aralez.pid"
	if !waitFor(15*time.Second, func() bool { return readPID(pidPath) == pid }) {
		t.Fatalf("pid file names %d; want %d; log:\n%s", readPID(pidPath), pid, logOf(dir))
	}
	check := func(when string) {
		t.Helper()
		// Clients other than the balancer are served as they are.
		if got, err := body("http://" + addr + "/"); err != nil || got != "127.0.0.1" {
			t.Errorf("%s: direct GET = %q, %v; want X-Forwarded-For 127.0.0.1", when, got, err)
		}
		for hdr, want := range map[string]string{
			"PROXY TCP4 203.0.113.9 192.0.2.1 5555 80\r\n": "200 203.0.113.9",
			"PROXY UNKNOWN\r\n":                            "200 127.0.0.2",
		} {
			if got, err := viaBalancer(addr, hdr); err != nil || got != want {
				t.Errorf("%s: GET via the balancer with %q = %q, %v; want %q", when, hdr, got, err, want)
			}
		}
		if got, err := viaBalancer(addr, ""); err == nil || got != "" {
			t.Errorf("%s: GET via the balancer without a header = %q, %v; want a close", when, got, err)
		}
	}
	check("before the upgrade")
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	var next int
	if !waitFor(20*time.Second, func() bool { next = readPID(pidPath); return next != pid && next != 0 }) {
		t.Fatalf("pid file still names %d; log:\n%s", pid, logOf(dir))
	}
	killAtCleanup(t, next)
	if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("old process %d wait status %v; want exit 0", pid, ws)
	}
	check("after the upgrade")
	syscall.Kill(next, syscall.SIGTERM)
	reap(t, next, 20*time.Second)
}
