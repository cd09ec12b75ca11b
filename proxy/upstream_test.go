package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
)

// idleClosingBackend is an HTTP/1.1 backend (cleartext or TLS) that
// closes keep-alive connections after idle of idle, as Node.js (5 s),
// many application servers and cloud load balancers do. It counts the
// POSTs it answered and the connections it closed.
type idleClosingBackend struct {
	addr   string
	posts  atomic.Int64
	closed atomic.Int64
}

func newIdleClosingBackend(t *testing.T, idle time.Duration, tlsOn bool) *idleClosingBackend {
	t.Helper()
	b := &idleClosingBackend{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if r.Method == http.MethodPost {
				b.posts.Add(1)
			}
			io.WriteString(w, "got "+string(body))
		}),
		IdleTimeout: idle,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				b.closed.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	if tlsOn {
		srv.TLSConfig = testTLSConfig(t, []string{"http/1.1"})
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return b
}

// TestStaleKeepAlivePOST sends POSTs, each after the backend closed the
// pooled connection of the one before for being idle: every one must
// succeed and reach the backend exactly once, on every front end and
// over cleartext and TLS upstream connections. The proxy must find the
// closed connection before it writes a request to it; a POST is never
// replayed (issue 11: 10 of 20 POSTs sent 1.1 s apart to a backend with
// a 1 s keep-alive timeout got 502).
func TestStaleKeepAlivePOST(t *testing.T) {
	t.Parallel()
	const posts = 5
	for _, fe := range frontEnds {
		for _, tlsOn := range []bool{false, true} {
			name := fe.name + "/cleartext"
			if tlsOn {
				name = fe.name + "/tls"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				// Idle long enough to be checked (idleCheckAfter).
				be := newIdleClosingBackend(t, idleCheckAfter+50*time.Millisecond, tlsOn)
				cfg := &config.Config{}
				cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", be.addr)}
				f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
				if tlsOn {
					f.reg.Backends().Get(be.addr).SetProto(balancer.ProtoTLS | balancer.ProtoHTTP1)
				}
				for i := range posts {
					closed := be.closed.Load()
					body := "n=" + strconv.Itoa(i)
					resp, got := doReq(t, fe.client, http.MethodPost, fe.base(f), "/form", nil, strings.NewReader(body))
					if resp.StatusCode != 200 || got != "got "+body {
						t.Fatalf("POST %d = %d %q; want 200 %q", i, resp.StatusCode, got, "got "+body)
					}
					// The backend closes the idle pooled connection
					// before the next POST goes out.
					waitFor(t, 5*time.Second, "the backend to close the idle connection", func() bool {
						return be.closed.Load() > closed
					})
				}
				if n := be.posts.Load(); n != posts {
					t.Errorf("backend answered %d POSTs; want %d (each exactly once)", n, posts)
				}
			})
		}
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestUpstreamConnAlive checks the idle-connection check on real sockets:
// open and quiet is alive; a FIN, a reset, unasked bytes or a TLS
// close_notify from the upstream are not (issue 11).
func TestUpstreamConnAlive(t *testing.T) {
	t.Parallel()
	if !canPeek {
		t.Skip("no socket peek on this platform")
	}
	tests := []struct {
		name  string
		close func(server net.Conn)
		want  bool
	}{
		{"quiet", func(net.Conn) {}, true},
		{"fin", func(s net.Conn) { s.Close() }, false},
		{"reset", func(s net.Conn) { s.(*net.TCPConn).SetLinger(0); s.Close() }, false},
		{"unasked bytes", func(s net.Conn) { s.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n")) }, false},
		{"half close", func(s net.Conn) { s.(*net.TCPConn).CloseWrite() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s := tcpPair(t)
			uc := newUpstreamConn(c, time.Second)
			tt.close(s)
			// The upstream's FIN or RST reaches the socket soon after
			// its close returns; poll for it rather than sleep.
			got := uc.alive()
			for deadline := time.Now().Add(2 * time.Second); got != tt.want && time.Now().Before(deadline); got = uc.alive() {
				time.Sleep(time.Millisecond)
			}
			if got != tt.want {
				t.Errorf("alive() after %s = %v; want %v", tt.name, got, tt.want)
			}
			if tt.want {
				// The check consumed nothing: the connection still works.
				go s.Write([]byte("pong"))
				buf := make([]byte, 4)
				if _, err := io.ReadFull(uc, buf); err != nil || string(buf) != "pong" {
					t.Errorf("read after alive() = %q, %v; want \"pong\"", buf, err)
				}
			}
		})
	}
	t.Run("tls close_notify", func(t *testing.T) {
		t.Parallel()
		c, s := tcpPair(t)
		srv := tls.Server(s, testTLSConfig(t, nil))
		cli := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		go srv.Handshake()
		if err := cli.Handshake(); err != nil {
			t.Fatal(err)
		}
		uc := newUpstreamConn(cli, 0)
		if !uc.alive() {
			t.Fatal("alive() on an open TLS connection = false; want true")
		}
		srv.Close() // close_notify, then FIN
		waitFor(t, 2*time.Second, "alive() to see the close", func() bool { return !uc.alive() })
	})
	t.Run("no socket", func(t *testing.T) {
		t.Parallel()
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if uc := newUpstreamConn(a, 0); !uc.alive() {
			t.Error("alive() on a pipe = false; want true (nothing to look at)")
		}
	})
}

// TestIdleCheckFailsFirstWrite: when net/http hands out an idle
// connection that the upstream closed, the request's first write fails
// with errIdleClosed and writes nothing, so that net/http may send it
// again; a fresh or live connection is untouched (issue 11).
func TestIdleCheckFailsFirstWrite(t *testing.T) {
	t.Parallel()
	c, s := tcpPair(t)
	uc := newUpstreamConn(c, 0)
	idle := httptrace.GotConnInfo{Conn: uc, Reused: true, WasIdle: true, IdleTime: idleCheckAfter}
	idleCheck.GotConn(idle)
	if _, err := uc.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatalf("Write on a live idle connection = %v; want nil", err)
	}
	s.Close()
	waitFor(t, 2*time.Second, "the upstream's close to arrive", func() bool { return !uc.alive() })
	for _, info := range []httptrace.GotConnInfo{
		{Conn: uc},
		{Conn: uc, Reused: true, WasIdle: true, IdleTime: idleCheckAfter / 2},
	} {
		idleCheck.GotConn(info)
		if uc.closed.Load() {
			t.Fatalf("GotConn(%+v) checked the connection; want it left alone (new, or idle under idleCheckAfter)", info)
		}
	}
	idleCheck.GotConn(idle)
	if n, err := uc.Write([]byte("POST / HTTP/1.1\r\n\r\n")); n != 0 || !errors.Is(err, errIdleClosed) {
		t.Errorf("Write after the upstream closed = %d, %v; want 0, errIdleClosed", n, err)
	}
}

// TestReplayBody: a request body can be handed to another attempt until
// its first byte is read, and Close leaves the client's body open until
// then (issue 11).
func TestReplayBody(t *testing.T) {
	t.Parallel()
	src := &closeCounter{Reader: strings.NewReader("x=1")}
	rb := &replayBody{rc: src}
	rb.Close() // net/http closes the body of a request whose first write failed
	again, err := rb.again()
	if err != nil || again != io.ReadCloser(rb) || src.closed != 0 {
		t.Fatalf("again() before any read = %v, %v (client body closed %d times); want the body, nil, 0", again, err, src.closed)
	}
	if b, _ := io.ReadAll(again); string(b) != "x=1" {
		t.Errorf("body on the next attempt = %q; want \"x=1\"", b)
	}
	if _, err := rb.again(); !errors.Is(err, errBodySent) {
		t.Errorf("again() after a read = %v; want errBodySent", err)
	}
	rb.Close()
	if src.closed != 1 {
		t.Errorf("client body closed %d times after Close of a read body; want 1", src.closed)
	}
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }
