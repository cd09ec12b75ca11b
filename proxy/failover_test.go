package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/balancer/health"
	"github.com/aralez-go/aralez/config"
)

// restartable is a backend on a fixed 127.0.0.1 port that can be killed
// and started again on the same address.
type restartable struct {
	t     *testing.T
	addr  string
	name  string
	mu    sync.Mutex
	srv   *http.Server
	hits  atomic.Int64
	posts atomic.Int64
}

func newRestartable(t *testing.T, name string) *restartable {
	r := &restartable{t: t, name: name}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.kill)
	return r
}

func (r *restartable) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		if req.Method == "POST" {
			r.posts.Add(1)
		}
		io.WriteString(w, r.name)
	})}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck
}

func (r *restartable) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		r.srv.Close() // closes the listener and every connection
		r.srv = nil
	}
}

func (r *restartable) start() {
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ { // the port may linger briefly after Close
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.serve(ln)
}

// TestFailoverUnderLoad kills and restarts one of two backends while a
// client loop sends GETs: no request fails (retries and ejection), the dead
// backend leaves rotation within hc_interval + 1 s and is back within two
// intervals of its restart (issue 3).
func TestFailoverUnderLoad(t *testing.T) {
	a, b := newRestartable(t, "a"), newRestartable(t, "b")
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", a.addr, b.addr)}
	e, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	interval := 200 * time.Millisecond
	hc := health.NewHealthChecker(health.HealthOptions{Interval: interval, Timeout: 150 * time.Millisecond, Rise: 2, Fall: 2})
	hc.SetTargets(e.Snapshot().HealthTargets())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go hc.Run(ctx)

	var failures, total atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
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
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					failures.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					lastErr.Store(resp.Status + " " + string(body))
				}
			}
		}()
	}
	backendA := e.Registry().Backends().Lookup(a.addr)
	waitUntil := func(what string, ceiling time.Duration, cond func() bool) time.Duration {
		start := time.Now()
		for !cond() {
			if time.Since(start) > ceiling {
				t.Fatalf("%s: not within %v", what, ceiling)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitUntil("warm-up", 5*time.Second, func() bool { return a.hits.Load() > 20 && b.hits.Load() > 20 })
	a.kill()
	killedAt := time.Now()
	out := waitUntil("a marked down", 10*time.Second, func() bool { return !backendA.Up() })
	t.Logf("a out of rotation after %v (limit hc_interval + 1 s = %v)", out, interval+time.Second)
	if out > interval+time.Second {
		t.Errorf("a left rotation after %v; want within %v", out, interval+time.Second)
	}
	hitsWhileDown := a.hits.Load()
	a.start()
	back := waitUntil("a back up", 10*time.Second, func() bool { return backendA.Up() })
	t.Logf("a back after %v (limit two intervals plus a probe = %v)", back, 2*interval+150*time.Millisecond)
	if back > 3*interval+time.Second {
		t.Errorf("a came back after %v; want about two intervals", back)
	}
	waitUntil("a serving again", 5*time.Second, func() bool { return a.hits.Load() > hitsWhileDown+5 })
	close(stop)
	wg.Wait()
	t.Logf("%d requests during the cycle (killed %v ago)", total.Load(), time.Since(killedAt))
	if f := failures.Load(); f != 0 {
		t.Errorf("%d of %d requests failed during kill/restart; last: %v", f, total.Load(), lastErr.Load())
	}
}

// TestPOSTNeverSentTwice checks that a non-idempotent request is not
// retried, even when its first backend fails (issue 3).
func TestPOSTNeverSentTwice(t *testing.T) {
	t.Parallel()
	// A backend that reads the request and then resets the connection
	// without answering: the request did reach it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var seen atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4096)
				n, _ := c.Read(buf)
				if strings.HasPrefix(string(buf[:n]), "POST") {
					seen.Add(1)
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}()
	good, gs := newUpstream(t, "good", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", ln.Addr().String(), addrOf(good))}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	for i := 0; i < 6; i++ {
		resp, err := client.Post("http://"+addr+"/", "text/plain", strings.NewReader("x=1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var goodPosts int
	gs.mu.Lock()
	for _, r := range gs.reqs {
		if r.Method == "POST" {
			goodPosts++
		}
	}
	gs.mu.Unlock()
	if n := seen.Load(); n+int64(goodPosts) != 6 {
		t.Errorf("POSTs seen: failing backend %d + good backend %d; want 6 in all (never sent twice)", n, goodPosts)
	}
}

// TestStaleKeepAliveNo502 uses an upstream that closes idle keep-alive
// connections quickly: the next request on the pooled connection must not
// fail (issue 3).
func TestStaleKeepAliveNo502(t *testing.T) {
	t.Parallel()
	var closed atomic.Int64
	srv := &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		IdleTimeout: 50 * time.Millisecond,
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", ln.Addr().String())}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	for i := 0; i < 5; i++ {
		before := closed.Load()
		if resp, body := get(t, "http://"+addr+"/", nil); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		// Wait until the upstream has closed the idle pooled connection.
		deadline := time.Now().Add(5 * time.Second)
		for closed.Load() == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestTLSVerifyPerPath: one self-signed TLS backend behind two paths; the
// path with tls_verify: true refuses it (502), the other accepts it, as
// Aralez does by default (issue 3).
func TestTLSVerifyPerPath(t *testing.T) {
	t.Parallel()
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls ok")
	}))
	t.Cleanup(up.Close)
	addr := strings.TrimPrefix(up.URL, "https://")
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{{Name: "DEFAULT", Paths: []config.Path{
		{Prefix: "/", Servers: []config.Server{{Address: addr, Weight: 1}}},
		{Prefix: "/strict", Servers: []config.Server{{Address: addr, Weight: 1}}, Policy: config.Policy{TLSVerify: boolp(true)}},
	}}}
	e, proxyAddr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	e.Registry().Backends().Lookup(addr).SetProto(balancer.ProtoTLS | balancer.ProtoHTTP1)
	if resp, body := get(t, "http://"+proxyAddr+"/x", nil); resp.StatusCode != 200 || body != "tls ok" {
		t.Errorf("default path = %d %q; want 200 (self-signed accepted)", resp.StatusCode, body)
	}
	if resp, _ := get(t, "http://"+proxyAddr+"/strict/x", nil); resp.StatusCode != 502 {
		t.Errorf("tls_verify path = %d; want 502 (unknown authority)", resp.StatusCode)
	}
}
