package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/redistest"
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

// storeUp reads aralez_ratelimit_store_up from the /metrics of the config
// API at addr: 1, 0, or -1 when it cannot be read.
func storeUp(addr string) int {
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "aralez_ratelimit_store_up "); ok {
			if v == "1" {
				return 1
			}
			return 0
		}
	}
	return -1
}

// fleetLoad sends requests round robin over the proxies at a fixed pace
// from a few goroutines until stop is closed, and records each answer.
type fleetLoad struct {
	mu      sync.Mutex
	ok      []time.Time // 200s
	other   int         // neither 200 nor 429, or a transport error
	lastErr string
	slowest time.Duration
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startFleetLoad(addrs []string, workers int, gap time.Duration) *fleetLoad {
	l := &fleetLoad{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
			defer c.CloseIdleConnections()
			tk := time.NewTicker(gap)
			defer tk.Stop()
			for i := w; ; i++ {
				select {
				case <-l.stop:
					return
				case <-tk.C:
				}
				start := time.Now()
				resp, err := c.Get("http://" + addrs[i%len(addrs)] + "/")
				took := time.Since(start)
				status := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				l.mu.Lock()
				l.slowest = max(l.slowest, took)
				switch {
				case status == 200:
					l.ok = append(l.ok, start)
				case status != 429:
					l.other++
					l.lastErr = fmt.Sprintf("status %d, %v", status, err)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// admittedSince counts the 200s at or after t0 and before t1.
func (l *fleetLoad) admittedSince(t0, t1 time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, t := range l.ok {
		if !t.Before(t0) && t.Before(t1) {
			n++
		}
	}
	return n
}

func (l *fleetLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// TestFleetRateLimit runs three proxy processes sharing a real
// redis-server (rate_limit 100, rate_limit_sync 100ms,
// rate_limit_fleet_size 3) with one client spread over all three: each
// second after the first admits at most 100 plus the documented
// allowance; with the server paused (SIGSTOP) and then killed, every
// instance falls back to limit/3 and no request fails or waits on it;
// with the server back, the fleet limit holds again (issue 17).
func TestFleetRateLimit(t *testing.T) {
	becomeSubreaper(t)
	srv := redistest.Start(t)
	const limit, sync = 100, 100 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	var addrs, apis []string
	for range 3 {
		api := freeAddr(t)
		dir, addr := proxyDir(t, strings.TrimPrefix(up.URL, "http://"), fmt.Sprintf(
			"rate_limit_store: redis://%s\nrate_limit_sync: %v\nrate_limit_fleet_size: 3\nconfig_address: %q\n", srv.Addr, sync, api))
		writeFile(t, dir+"/upstreams.yaml", "rate_limit: 100\n"+upstreamsYAML(strings.TrimPrefix(up.URL, "http://"), ""))
		pid := startBinary(t, dir, nil)
		defer syscall.Kill(pid, syscall.SIGTERM)
		waitServing(t, addr, "ok")
		addrs, apis = append(addrs, addr), append(apis, api)
	}
	allUp := func(want int) bool {
		for _, a := range apis {
			if storeUp(a) != want {
				return false
			}
		}
		return true
	}
	if !waitFor(10*time.Second, func() bool { return allUp(1) }) {
		t.Fatal("aralez_ratelimit_store_up is not 1 on every instance")
	}
	load := startFleetLoad(addrs, 6, 10*time.Millisecond) // 600 requests per second
	defer load.end()
	a := 2*limit/10 + 3 // (3-1) × limit × 0.1 s + 3 × ⌈limit × 0.1 s / 12⌉
	start := time.Now()
	time.Sleep(3 * time.Second) //nolint:forbidigo // the load runs for a measured time
	per := []int{load.admittedSince(start, start.Add(time.Second)),
		load.admittedSince(start.Add(time.Second), start.Add(2*time.Second)),
		load.admittedSince(start.Add(2*time.Second), start.Add(3*time.Second))}
	t.Logf("fleet of 3, one client at 600 req/s: admitted per second %v (limit %d, allowance %d)", per, limit, a)
	for i, c := range per[1:] {
		if c > limit+a+limit/10 {
			t.Errorf("second %d admitted %d; want at most %d + %d", i+2, c, limit, a)
		}
	}
	if per[1]+per[2] < limit {
		t.Errorf("seconds 2 and 3 admitted %d; want about %d", per[1]+per[2], 2*limit)
	}

	srv.Stop()
	stopped := time.Now()
	if !waitFor(5*time.Second, func() bool { return allUp(0) }) {
		t.Fatal("aralez_ratelimit_store_up is still 1 somewhere 5 s after SIGSTOP")
	}
	fellBack := time.Since(stopped)
	t.Logf("every instance fell back %v after SIGSTOP (sync interval %v)", fellBack, sync)
	if fellBack > 10*sync {
		t.Errorf("fallback took %v; want within a few sync intervals of %v", fellBack, sync)
	}
	time.Sleep(time.Second) //nolint:forbidigo // traffic during the outage
	srv.Kill()
	time.Sleep(500 * time.Millisecond) //nolint:forbidigo // traffic with the server gone
	load.mu.Lock()
	other, lastErr, slowest := load.other, load.lastErr, load.slowest
	load.mu.Unlock()
	t.Logf("outage: %d failed requests, slowest request %v", other, slowest)
	if other != 0 {
		t.Errorf("%d requests failed (last: %s); want only 200 and 429", other, lastErr)
	}
	if slowest > time.Second {
		t.Errorf("slowest request %v; want no request waiting on the store", slowest)
	}

	srv.Restart()
	if !waitFor(10*time.Second, func() bool { return allUp(1) }) {
		t.Fatal("aralez_ratelimit_store_up is not back to 1 everywhere 10 s after the restart")
	}
	back := time.Now().Add(time.Second) // after the burst second
	time.Sleep(2 * time.Second)         //nolint:forbidigo // the load runs for a measured time
	if c := load.admittedSince(back, back.Add(time.Second)); c > limit+a+limit/10 {
		t.Errorf("after the store came back: %d admitted in a second; want at most %d + %d", c, limit, a)
	} else {
		t.Logf("after the store came back: %d admitted in a second", c)
	}
}
