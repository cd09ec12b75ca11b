package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
)

// parkFront is a cleartext listener whose idle HTTP/1.1 connections are
// parked after release.
type parkFront struct {
	addr   string
	parked *atomic.Int64
	up     *seen
	stop   func() // ends Serve and waits for it
}

func startParkFront(t *testing.T, idle, release time.Duration) *parkFront {
	t.Helper()
	up, s := newUpstream(t, "a", nil)
	limit := int64(64)
	h := oneRoute("DEFAULT", "/", addrOf(up))
	h.Paths[0].MaxRequestBodyBytes = &limit
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{h}
	e, _ := newTestEngine(t, cfg, Options{}, UpstreamOptions{})
	fast := NewFastServer(e, ServerOptions{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: idle, MaxHeaderBytes: 8192})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pf := &parkFront{addr: ln.Addr().String(), parked: new(atomic.Int64), up: s}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, fast, e, ListenOptions{IdleReleaseTimeout: release, Parked: pf.parked}) }()
	var stopped bool
	pf.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = fast.ShutdownWithContext(sctx)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve() = %v; want nil after shutdown", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10 s of shutdown")
		}
	}
	t.Cleanup(pf.stop)
	return pf
}

// parkClient is one raw keep-alive client connection.
type parkClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialPark(t *testing.T, addr string) *parkClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &parkClient{c: c, br: bufio.NewReader(c)}
}

// send writes raw and reads one response.
func (pc *parkClient) send(t *testing.T, raw string) (int, string) {
	t.Helper()
	if _, err := io.WriteString(pc.c, raw); err != nil {
		t.Fatal(err)
	}
	return pc.read(t)
}

func (pc *parkClient) read(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(pc.br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// closedByPeer reports whether the proxy closed the connection: a read
// gets EOF (or a reset) within the ceiling.
func (pc *parkClient) closedByPeer(ceiling time.Duration) bool {
	_ = pc.c.SetReadDeadline(time.Now().Add(ceiling))
	_, err := pc.br.ReadByte()
	return errors.Is(err, io.EOF) || isReset(err)
}

const parkGET = "GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n"

// TestParkIdleConnections: keep-alive connections idle for longer than
// IdleReleaseTimeout are parked (counted in ListenOptions.Parked, the
// fasthttp server no longer holding them), and each is served again
// when its next request comes, in one piece, split across the release
// timeout, or pipelined; the chunk-size check (framing.go) still knows
// which request it follows (issue 16).
func TestParkIdleConnections(t *testing.T) {
	t.Parallel()
	const n = 8
	pf := startParkFront(t, 10*time.Second, 50*time.Millisecond)
	clients := make([]*parkClient, n)
	for i := range clients {
		clients[i] = dialPark(t, pf.addr)
		if st, body := clients[i].send(t, parkGET); st != 200 || body != "ok from a /x" {
			t.Fatalf("first GET = %d %q; want 200 \"ok from a /x\"", st, body)
		}
	}
	waitFor(t, 10*time.Second, "every connection parked", func() bool { return pf.parked.Load() == n })

	for round := range 2 {
		for i, pc := range clients {
			if st, body := pc.send(t, parkGET); st != 200 || body != "ok from a /x" {
				t.Fatalf("round %d, client %d: GET after parking = %d %q; want 200", round, i, st, body)
			}
		}
		waitFor(t, 10*time.Second, "every connection parked again", func() bool { return pf.parked.Load() == n })
	}
	if got := pf.up.hits.Load(); got != 3*n {
		t.Errorf("upstream requests = %d; want %d", got, 3*n)
	}

	t.Run("head split across the release timeout", func(t *testing.T) {
		pc := clients[0]
		if _, err := io.WriteString(pc.c, "GET /x HT"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the connection unparked", func() bool { return pf.parked.Load() == n-1 })
		time.Sleep(150 * time.Millisecond) // three release timeouts inside a head: nothing may park it
		if st, _ := pc.send(t, "TP/1.1\r\nHost: app.test\r\n\r\n"); st != 200 {
			t.Errorf("a head split across the release timeout = %d; want 200", st)
		}
	})
	t.Run("pipelined after parking", func(t *testing.T) {
		pc := clients[1]
		if _, err := io.WriteString(pc.c, parkGET+parkGET); err != nil {
			t.Fatal(err)
		}
		for k := range 2 {
			if st, _ := pc.read(t); st != 200 {
				t.Errorf("pipelined request %d = %d; want 200", k, st)
			}
		}
	})
	t.Run("chunk size over the limit after parking", func(t *testing.T) {
		pc := clients[2]
		waitFor(t, 10*time.Second, "the connection parked", func() bool { return pf.parked.Load() >= n-2 })
		start := time.Now()
		// A 4 GiB chunk with a few bytes behind it, then silence: the
		// route allows 64 bytes, so 413 at once, not at a timeout.
		st, _ := pc.send(t, "POST /x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n100000005\r\nabc")
		if st != 413 || time.Since(start) > 5*time.Second {
			t.Errorf("a 4 GiB chunk on an unparked connection = %d after %v; want 413 at once", st, time.Since(start))
		}
	})
}

// TestParkKeepsIdleTimeout: a parked connection is closed when the idle
// timeout fasthttp set for it runs out, not before; a client that closes
// a parked connection frees it; a shutdown closes parked connections.
func TestParkKeepsIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	pf := startParkFront(t, idle, 50*time.Millisecond)

	pc := dialPark(t, pf.addr)
	sent := time.Now() // the idle timeout starts after the response, later
	if st, _ := pc.send(t, parkGET); st != 200 {
		t.Fatalf("GET = %d; want 200", st)
	}
	waitFor(t, 10*time.Second, "the connection parked", func() bool { return pf.parked.Load() == 1 })
	if !pc.closedByPeer(10 * time.Second) {
		t.Fatal("the parked connection was not closed at its idle timeout")
	}
	if d := time.Since(sent); d < idle {
		t.Errorf("parked connection closed %v after its last request; want the %v idle timeout at least", d, idle)
	}
	waitFor(t, 10*time.Second, "the parked count back to 0", func() bool { return pf.parked.Load() == 0 })

	gone := dialPark(t, pf.addr)
	if st, _ := gone.send(t, parkGET); st != 200 {
		t.Fatalf("GET = %d; want 200", st)
	}
	waitFor(t, 10*time.Second, "the connection parked", func() bool { return pf.parked.Load() == 1 })
	gone.c.Close()
	waitFor(t, 10*time.Second, "the closed connection let go", func() bool { return pf.parked.Load() == 0 })

	pf2 := startParkFront(t, 10*time.Second, 50*time.Millisecond)
	held := dialPark(t, pf2.addr)
	if st, _ := held.send(t, parkGET); st != 200 {
		t.Fatalf("GET = %d; want 200", st)
	}
	waitFor(t, 10*time.Second, "the connection parked", func() bool { return pf2.parked.Load() == 1 })
	pf2.stop()
	if !held.closedByPeer(5 * time.Second) {
		t.Error("a parked connection stayed open after the shutdown")
	}
	if got := pf2.parked.Load(); got != 0 {
		t.Errorf("parked after the shutdown = %d; want 0", got)
	}
}

// TestParkCutTooLate: a sweep's cut that lands after the next request
// began (the sweep and the first byte race) is undone: the read goes on
// under the deadline fasthttp asked for, and the request is whole.
func TestParkCutTooLate(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p := newParker(func(net.Conn) {}, nil, time.Hour)
	defer p.stop()
	c := newParkConn(raw, p)
	defer c.Close()

	for _, deadline := range []time.Time{{}, time.Now().Add(time.Minute)} {
		if err := c.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(client, "GET /x HT"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "GET /x HT" {
			t.Fatalf("Read() = %q, %v; want the first bytes", buf[:n], err)
		}
		_ = c.Conn.SetReadDeadline(aLongTimeAgo) // the sweep's cut, too late
		go io.WriteString(client, "TP/1.1\r\nHost: a\r\n\r\n")
		n, err = io.ReadAtLeast(c, buf, len("TP/1.1\r\nHost: a\r\n\r\n"))
		if err != nil || string(buf[:n]) != "TP/1.1\r\nHost: a\r\n\r\n" {
			t.Errorf("deadline %v: Read() after a late cut = %q, %v; want the rest of the head", deadline, buf[:n], err)
		}
		if c.state.Load() != connServed {
			t.Errorf("state = %d after a late cut; want served", c.state.Load())
		}
	}
}
