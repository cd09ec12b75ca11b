package health

import (
	"context"
	"crypto/tls"
	"github.com/aralez-go/aralez/balancer"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		w.WriteHeader(http.StatusNoContent)
	})
}

// newH2CServer starts a clear-text server that speaks HTTP/2 with prior
// knowledge (and HTTP/1.1).
func newH2CServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h2c.NewHandler(h, &http2.Server{}))
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func newTLSServer(t *testing.T, h http.Handler, h2 bool) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = h2
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short by Detect
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func newPlainServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestDetect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start func(t *testing.T) *httptest.Server
		want  balancer.Proto
	}{
		{name: "http1", start: func(t *testing.T) *httptest.Server { return newPlainServer(t, okHandler()) }, want: balancer.ProtoHTTP1},
		{name: "h2c", start: func(t *testing.T) *httptest.Server { return newH2CServer(t, okHandler()) }, want: balancer.ProtoH2C},
		{name: "tls http1", start: func(t *testing.T) *httptest.Server { return newTLSServer(t, okHandler(), false) }, want: balancer.ProtoTLS | balancer.ProtoHTTP1},
		{name: "tls h2", start: func(t *testing.T) *httptest.Server { return newTLSServer(t, okHandler(), true) }, want: balancer.ProtoTLS | balancer.ProtoH2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tt.start(t)
			addr := s.Listener.Addr().String()
			for _, sni := range []string{"", "example.com"} {
				got, err := Detect(context.Background(), addr, sni, 3*time.Second)
				if err != nil || got != tt.want {
					t.Fatalf("Detect(%s, %q) = %v, %v; want %v", addr, sni, got, err, tt.want)
				}
			}
		})
	}
}

func TestDetectErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if p, err := Detect(context.Background(), addr, "", time.Second); err == nil || p != balancer.ProtoUnknown {
		t.Fatalf("Detect(closed port) = %v, %v; want ProtoUnknown and an error", p, err)
	}

	// A TLS server that answers our hello with an alert speaks TLS, just
	// not with us: an error, not a fallback to clear text.
	picky := httptest.NewUnstartedServer(okHandler())
	picky.TLS = &tls.Config{NextProtos: []string{"h3"}}
	picky.Config.ErrorLog = log.New(io.Discard, "", 0)
	picky.StartTLS()
	defer picky.Close()
	if p, err := Detect(context.Background(), picky.Listener.Addr().String(), "", time.Second); err == nil {
		t.Fatalf("Detect(TLS server rejecting ALPN) = %v, nil; want an error", p)
	}

	// A server that accepts and says nothing is taken for HTTP/1 once
	// the timeout ends.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	p, err := Detect(context.Background(), silent.Addr().String(), "", 400*time.Millisecond)
	if err != nil || p != balancer.ProtoHTTP1 {
		t.Fatalf("Detect(silent server) = %v, %v; want ProtoHTTP1", p, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Detect(silent server) took %v; want about the 400ms timeout", d)
	}
}

func TestServerNameOf(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"example.com:8443", "example.com"},
		{"127.0.0.1:80", ""},
		{"[::1]:443", ""},
		{"::1", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := serverNameOf(tt.in); got != tt.want {
			t.Errorf("serverNameOf(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	if !strings.HasPrefix(balancer.ProtoH2C.Scheme(), "http") {
		t.Errorf("ProtoH2C.Scheme() = %q; want http", balancer.ProtoH2C.Scheme())
	}
}
