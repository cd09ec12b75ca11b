// Package tlsonlytest starts, on 127.0.0.1, a backend that speaks
// HTTP/1.1 over TLS only, the way `openssl s_server -www` does: a
// connection whose first byte is not a TLS handshake record never gets
// an answer (it is held open, silent, until the client gives up or the
// test ends), and with Options.NoHEAD a HEAD request gets no answer
// either. Tests of upstream protocol detection use it: a proxy or a
// health checker that speaks clear text to it waits in vain.
//
// It is test-only code: nothing outside _test.go files may import it.
package tlsonlytest

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Body is what the backend answers to every request it serves.
const Body = "tls only"

// Options configures Start.
type Options struct {
	// NoHEAD leaves HEAD requests unanswered (the connection is held
	// until the server closes), as s_server -www does.
	NoHEAD bool
}

// Server is a running TLS-only backend. Its counters are safe for
// concurrent use.
type Server struct {
	// Addr is the listening address, host:port.
	Addr  string
	plain atomic.Int64
	tls   atomic.Int64
}

// PlainConns returns how many connections opened with something other
// than a TLS handshake (and were never answered).
func (s *Server) PlainConns() int64 { return s.plain.Load() }

// Requests returns how many requests were answered (over TLS).
func (s *Server) Requests() int64 { return s.tls.Load() }

// Start starts a TLS-only backend with httptest's self-signed
// certificate and ALPN http/1.1; it stops when the test ends.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String()}
	quit := make(chan struct{}) // closed when the test ends
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && o.NoHEAD {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				<-quit // never answered
				c.Close()
			}
			return
		}
		s.tls.Add(1)
		io.WriteString(w, Body)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Listener.Close()
	tlsConns := &chanListener{addr: ln.Addr(), c: make(chan net.Conn), done: make(chan struct{})}
	srv.Listener = tlsConns
	srv.StartTLS() // wraps tlsConns in TLS, ALPN http/1.1
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				first, err := br.Peek(1)
				if err != nil {
					c.Close()
					return
				}
				if first[0] != 0x16 { // not a TLS handshake record
					s.plain.Add(1)
					mu.Lock()
					held = append(held, c) // no answer, ever
					mu.Unlock()
					return
				}
				select {
				case tlsConns.c <- &peekedConn{Conn: c, r: br}:
				case <-tlsConns.done:
					c.Close()
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		close(quit)
		ln.Close()
		srv.CloseClientConnections()
		srv.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return s
}

// chanListener hands out the connections sent on c until it is closed.
type chanListener struct {
	addr net.Addr
	c    chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
