package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/aralez-go/aralez/config"
)

// wsBackend is a WebSocket echo server on 127.0.0.1. Paths:
// /echo echoes every message with its type; /sink reads and drops them;
// /close-first closes with
// 4002 "server bye" after the first message; /forbidden answers 403
// without upgrading. It records the close codes it received.
type wsBackend struct {
	mu         sync.Mutex
	closeCodes []int
	upgrades   atomic.Int64
	open       atomic.Int64
	sawUpgrade atomic.Pointer[string] // Upgrade header of the last plain request
}

func (b *wsBackend) codes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.closeCodes...)
}

func startWSBackend(t *testing.T) (string, *wsBackend) {
	t.Helper()
	wb := &wsBackend{}
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	srv, _ := newUpstream(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/forbidden":
			http.Error(w, "no websocket for you", http.StatusForbidden)
			return
		case !websocket.IsWebSocketUpgrade(r):
			u := r.Header.Get("Upgrade") + "|" + r.Header.Get("Connection")
			wb.sawUpgrade.Store(&u)
			fmt.Fprintf(w, "plain %s", r.Proto)
			return
		}
		c, err := up.Upgrade(w, r, http.Header{"X-Backend": {"ws"}})
		if err != nil {
			return
		}
		wb.upgrades.Add(1)
		wb.open.Add(1)
		defer wb.open.Add(-1)
		defer c.Close()
		c.SetReadLimit(4 << 20)
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					wb.mu.Lock()
					wb.closeCodes = append(wb.closeCodes, ce.Code)
					wb.mu.Unlock()
				}
				return
			}
			if r.URL.Path == "/close-first" {
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "server bye"), time.Now().Add(time.Second))
				// Wait for the client's close reply, then close.
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, _, _ = c.ReadMessage()
				return
			}
			if r.URL.Path == "/sink" {
				continue
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
	return addrOf(srv), wb
}

func wsDial(t testing.TB, url, host string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		TLSClientConfig:  &tls.Config{InsecureSkipVerify: true},
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
	h := http.Header{}
	if host != "" {
		h.Set("Host", host)
	}
	c, resp, err := d.Dial(url, h)
	if c != nil {
		c.SetReadLimit(4 << 20)
		c.SetReadDeadline(time.Now().Add(30 * time.Second)) // no test read blocks forever
	}
	return c, resp, err
}

func wsProxy(t *testing.T, idle time.Duration) (*fronts, *wsBackend) {
	t.Helper()
	addr, wb := startWSBackend(t)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("ws.test", "/", addr)}
	cfg.Upstreams.Policy.ClientHeaders = []config.Header{{Name: "X-Proxy", Value: "aralez"}}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{TunnelIdleTimeout: idle}, ListenOptions{})
	return f, wb
}

// TestWebSocketTunnel covers echo of text and binary frames up to 1 MiB,
// ping/pong, close codes both ways, the backend closing first, non-101
// answers, both listeners, and h2c upgrades being stripped (issue 5).
func TestWebSocketTunnel(t *testing.T) {
	t.Parallel()
	f, wb := wsProxy(t, 5*time.Second)
	for _, base := range []string{"ws://" + f.plain, "wss://" + f.tls} {
		t.Run(base[:strings.Index(base, ":")], func(t *testing.T) {
			c, resp, err := wsDial(t, base+"/echo", "ws.test")
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if resp.StatusCode != 101 || resp.Header.Get("X-Backend") != "ws" || resp.Header.Get("X-Proxy") != "aralez" {
				t.Errorf("handshake = %d X-Backend=%q X-Proxy=%q; want 101 ws aralez", resp.StatusCode, resp.Header.Get("X-Backend"), resp.Header.Get("X-Proxy"))
			}
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			msgs := []struct {
				typ  int
				data []byte
			}{
				{websocket.TextMessage, []byte("hello")},
				{websocket.BinaryMessage, []byte{0, 1, 2, 255}},
				{websocket.TextMessage, big},
				{websocket.BinaryMessage, big},
			}
			for _, m := range msgs {
				if err := c.WriteMessage(m.typ, m.data); err != nil {
					t.Fatal(err)
				}
				typ, got, err := c.ReadMessage()
				if err != nil || typ != m.typ || !bytes.Equal(got, m.data) {
					t.Fatalf("echo of %d bytes (type %d) = %d bytes (type %d), %v", len(m.data), m.typ, len(got), typ, err)
				}
			}

			pong := make(chan string, 1)
			c.SetPongHandler(func(s string) error { pong <- s; return nil })
			if err := c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("after ping")); err != nil {
				t.Fatal(err)
			}
			if _, got, err := c.ReadMessage(); err != nil || string(got) != "after ping" {
				t.Fatalf("after ping = %q, %v", got, err)
			}
			select {
			case s := <-pong:
				if s != "p1" {
					t.Errorf("pong = %q; want p1", s)
				}
			default:
				t.Error("no pong before the next message")
			}

			// Client closes first with 4001; the backend echoes the code.
			n := len(wb.codes())
			if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "client bye")); err != nil {
				t.Fatal(err)
			}
			_, _, err = c.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4001 {
				t.Errorf("close reply = %v; want close 4001", err)
			}
			waitFor(t, 5*time.Second, "backend close code", func() bool { return len(wb.codes()) > n })
			if got := wb.codes()[n]; got != 4001 {
				t.Errorf("backend close code = %d; want 4001", got)
			}

			// The backend closes first.
			c2, _, err := wsDial(t, base+"/close-first", "ws.test")
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if err := c2.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
				t.Fatal(err)
			}
			_, _, err = c2.ReadMessage()
			if !errors.As(err, &ce) || ce.Code != 4002 || ce.Text != "server bye" {
				t.Errorf("server close = %v; want close 4002 \"server bye\"", err)
			}

			// A non-101 answer is relayed as a normal response.
			before := wb.upgrades.Load()
			_, resp, err = wsDial(t, base+"/forbidden", "ws.test")
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != 403 {
				t.Errorf("forbidden handshake = %v, %v; want ErrBadHandshake with 403", resp, err)
			}
			if wb.upgrades.Load() != before {
				t.Error("backend upgraded a forbidden handshake")
			}
		})
	}
	waitFor(t, 10*time.Second, "tunnels closed", func() bool { return f.reg.Tunnels() == 0 })

	// Upgrade: h2c is stripped and the request served as plain HTTP/1.1.
	got := raw(t, f.plain, "GET /x HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
	if got != "200 plain HTTP/1.1" {
		t.Errorf("h2c upgrade request = %q; want 200 plain HTTP/1.1", got)
	}
	if u := wb.sawUpgrade.Load(); u == nil || *u != "|" {
		t.Errorf("backend saw Upgrade|Connection = %v; want both empty", u)
	}
}

// wsConns is the number of concurrent tunnels TestWebSocketMany opens:
// 200, or ARALEZ_WS_CONNS (the 1,000: ARALEZ_WS_CONNS=1000).
func wsConns() int {
	if n, err := strconv.Atoi(os.Getenv("ARALEZ_WS_CONNS")); err == nil && n > 0 {
		return n
	}
	return 200
}

// TestWebSocketMany holds many tunnels open at once, echoes on each, then
// closes them (half from the client, half from the backend) and checks
// that no goroutine is left behind. It is not parallel so that the
// goroutine count is its own.
func TestWebSocketMany(t *testing.T) {
	f, wb := wsProxy(t, time.Minute) // opening many tunnels under -race takes seconds
	n := wsConns()
	// Warm up one tunnel so that pools and transports exist before the
	// baseline is taken.
	if c, _, err := wsDial(t, "ws://"+f.plain+"/echo", "ws.test"); err == nil {
		c.Close()
	}
	waitFor(t, 10*time.Second, "warm-up tunnel closed", func() bool { return f.reg.Tunnels() == 0 && wb.open.Load() == 0 })
	base := runtime.NumGoroutine()

	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 50) // bound dial concurrency, not open tunnels
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			path := "/echo"
			if i%2 == 1 {
				path = "/close-first"
			}
			c, _, err := wsDial(t, "ws://"+f.plain+path, "ws.test")
			if err != nil {
				errs <- fmt.Errorf("dial %d: %w", i, err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("%d tunnels open", n), func() bool { return f.reg.Tunnels() == n })

	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			msg := []byte("m" + strconv.Itoa(i))
			if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
				t.Errorf("conn %d write: %v", i, err)
				return
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			typ, got, err := c.ReadMessage()
			if i%2 == 1 {
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != 4002 {
					t.Errorf("conn %d: %v; want backend close 4002", i, err)
				}
				return
			}
			if err != nil || typ != websocket.TextMessage || !bytes.Equal(got, msg) {
				t.Errorf("conn %d echo = %q, %v; want %q", i, got, err, msg)
				return
			}
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			_, _, _ = c.ReadMessage()
		}()
	}
	wg.Wait()
	waitFor(t, 20*time.Second, "all tunnels closed", func() bool { return f.reg.Tunnels() == 0 })
	waitFor(t, 20*time.Second, "backend connections closed", func() bool { return wb.open.Load() == 0 })
	// Allow a few goroutines of idle keep-alive machinery, not one per
	// tunnel.
	waitFor(t, 20*time.Second, fmt.Sprintf("goroutines back near %d", base), func() bool { return runtime.NumGoroutine() <= base+10 })
}

// TestWebSocketPolicies checks that auth and rate limits apply to the
// handshake: a rejected handshake never reaches the backend (issue 5).
func TestWebSocketPolicies(t *testing.T) {
	t.Parallel()
	addr, wb := startWSBackend(t)
	cfg := &config.Config{}
	locked := oneRoute("locked.test", "/", addr)
	locked.Paths[0].Policy.Authorization = &config.Auth{Type: "apikey", Data: []string{"k1"}}
	limited := oneRoute("limited.test", "/", addr)
	limited.Paths[0].Policy.RateLimit = 1
	cfg.Upstreams.Hosts = []config.Host{locked, limited}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})

	_, resp, err := wsDial(t, "ws://"+f.plain+"/echo", "locked.test")
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != 401 {
		t.Errorf("handshake without key = %v, %v; want 401", resp, err)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws://"+f.plain+"/echo", http.Header{"Host": {"locked.test"}, "X-Api-Key": {"k1"}})
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake with key = %v, %v; want 101", resp, err)
	}
	c.Close()
	// The backend counts an upgrade after its 101 went out.
	waitFor(t, 10*time.Second, "the backend counting the upgrade", func() bool { return wb.upgrades.Load() >= 1 })
	if n := wb.upgrades.Load(); n != 1 {
		t.Errorf("backend upgrades = %d; want 1 (only the authorized handshake)", n)
	}

	statuses := make([]int, 0, 3)
	for range 3 {
		c, resp, err := wsDial(t, "ws://"+f.plain+"/echo", "limited.test")
		if c != nil {
			c.Close()
		}
		if resp == nil {
			t.Fatalf("handshake: %v", err)
		}
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[0] != 101 || statuses[len(statuses)-1] != 429 {
		t.Errorf("handshakes at 1/s = %v; want 101 first and 429 last", statuses)
	}
}

// TestWebSocketIdleTimeout checks that a tunnel without traffic closes
// after UpstreamOptions.TunnelIdleTimeout, while one with traffic in a
// single direction stays open past it.
func TestWebSocketIdleTimeout(t *testing.T) {
	t.Parallel()
	addr, _ := startWSBackend(t)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("ws.test", "/", addr)}
	const idle = 400 * time.Millisecond
	f := startFronts(t, cfg, Options{}, UpstreamOptions{TunnelIdleTimeout: idle}, ListenOptions{})

	quiet, _, err := wsDial(t, "ws://"+f.plain+"/echo", "ws.test")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	busy, _, err := wsDial(t, "ws://"+f.plain+"/sink", "ws.test")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// busy keeps only the client→backend direction moving for 3 idle
	// periods (the backend answers nothing).
	start := time.Now()
	for time.Since(start) < 3*idle {
		if err := busy.WriteMessage(websocket.TextMessage, []byte("tick")); err != nil {
			t.Fatalf("write on a busy tunnel after %v: %v", time.Since(start), err)
		}
		time.Sleep(idle / 8)
	}
	if _, _, err := quiet.ReadMessage(); err == nil {
		t.Error("quiet tunnel delivered a message; want it closed")
	}
	if d := time.Since(start); d > 3*idle+5*time.Second {
		t.Errorf("quiet tunnel closed after %v; want about %v", d, idle)
	}
	waitFor(t, 5*time.Second, "only the busy tunnel open", func() bool { return f.reg.Tunnels() == 1 })
	if err := busy.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Errorf("busy tunnel after %v: %v; want open", time.Since(start), err)
	}
	if n := f.reg.Tunnels(); n != 1 {
		t.Errorf("open tunnels = %d; want 1 (the busy one)", n)
	}
}
