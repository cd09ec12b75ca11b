package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/aralez-go/aralez/config"
	edgetls "github.com/aralez-go/aralez/tls"
)

// TestServeDispatch checks the cleartext listener: an HTTP/1.1 request
// goes to fasthttp, a prior-knowledge HTTP/2 connection (the RFC 9113
// §3.4 preface, as gRPC clients send it) to the HTTP/2 server; a client
// that sends nothing, or stops inside the preface, is closed by the
// handshake deadline without blocking other clients (issue 5).
func TestServeDispatch(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Via"))
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{HandshakeTimeout: 300 * time.Millisecond})

	// Silent clients first: they must not hold up the others.
	silent, err := net.Dial("tcp", f.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	partial, err := net.Dial("tcp", f.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	if _, err := io.WriteString(partial, "PRI * HTTP/2.0\r\n"); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name   string
		client *http.Client
		want   string
	}{
		{"http1", h1Client(), "1.1 aralez"},
		{"h2c", h2cClient(), "2 aralez"},
	} {
		resp, body := doReq(t, tt.client, "GET", "http://"+f.plain, "/v", nil, nil)
		if resp.StatusCode != 200 || body != tt.want {
			t.Errorf("%s: GET /v = %d %q; want 200 %q", tt.name, resp.StatusCode, body, tt.want)
		}
	}
	if n := s.hits.Load(); n != 2 {
		t.Errorf("upstream hits = %d; want 2", n)
	}

	start := time.Now()
	for _, c := range []net.Conn{silent, partial} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 1))
		if n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("silent client Read = %d, %v; want EOF from the proxy", n, err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent clients closed after %v; want about the 300 ms handshake timeout", d)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestServeTLSALPN checks the TLS listener's dispatch by ALPN: h2 to the
// HTTP/2 server, http/1.1 and no ALPN to fasthttp; and that a silent
// client is closed by the handshake deadline.
func TestServeTLSALPN(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Via")+" "+r.Header.Get("X-Forwarded-Proto"))
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{HandshakeTimeout: 300 * time.Millisecond})

	for _, tt := range []struct {
		name   string
		protos []string
		want   string
		proto  string
	}{
		{"alpn h2", []string{"h2"}, "200 2 aralez https", "h2"},
		{"alpn http/1.1", []string{"http/1.1"}, "200 1.1 aralez https", "http/1.1"},
		{"no alpn", nil, "200 1.1 aralez https", ""},
	} {
		c, err := tls.Dial("tcp", f.tls, &tls.Config{InsecureSkipVerify: true, NextProtos: tt.protos, ServerName: "app.test"})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != tt.proto {
			t.Errorf("%s: negotiated %q; want %q", tt.name, got, tt.proto)
		}
		var got string
		if tt.proto == "h2" {
			tr := &http2.Transport{}
			cc, err := tr.NewClientConn(c)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", "https://app.test/x", nil)
			resp, err := cc.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = resp.Status[:3] + " " + string(b)
			cc.Close()
		} else {
			io.WriteString(c, "GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = resp.Status[:3] + " " + string(b)
		}
		c.Close()
		if got != tt.want {
			t.Errorf("%s: %q; want %q", tt.name, got, tt.want)
		}
	}

	silent, err := net.Dial("tcp", f.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if n, err := silent.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("silent TLS client Read = %d, %v; want EOF", n, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent TLS client closed after %v; want about 300 ms", d)
	}
}

// TestServeTLSNoCertificate checks that a TLS listener with an empty
// certificate folder runs and refuses handshakes, then serves once a pair
// appears (issue 5: ACME and Kubernetes fill the folder later).
func TestServeTLSNoCertificate(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	reg := NewRegistry(UpstreamOptions{Timeout: 5 * time.Second})
	e := NewEngine(reg, Options{})
	snap, err := Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	e.Swap(snap)
	dir := t.TempDir()
	store, err := edgetls.NewStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fast := NewFastServer(e, ServerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeTLS(ctx, ln, store, edgetls.GradeMedium, fast, e, ListenOptions{}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTLS = %v; want nil", err)
		}
	}()
	conf := &tls.Config{InsecureSkipVerify: true}
	if c, err := tls.Dial("tcp", ln.Addr().String(), conf); err == nil {
		c.Close()
		t.Fatal("handshake succeeded with no certificate; want refused")
	}
	writeTestCert(t, dir, "late")
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	hc := h2Client()
	defer hc.CloseIdleConnections() // before the drain in the deferred cancel
	resp, body := doReq(t, hc, "GET", "https://"+ln.Addr().String(), "/z", nil, nil)
	if resp.StatusCode != 200 || body != "ok from a /z" {
		t.Errorf("after a pair appeared: %d %q; want 200 ok from a /z", resp.StatusCode, body)
	}
}

// TestServeShutdownDrainsH2 checks that cancelling Serve's context lets a
// running HTTP/2 stream finish (GOAWAY, then drain) and that Serve then
// returns nil.
func TestServeShutdownDrainsH2(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up, _ := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "finished")
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	reg := NewRegistry(UpstreamOptions{Timeout: 5 * time.Second})
	e := NewEngine(reg, Options{})
	snap, err := Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	e.Swap(snap)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fast := NewFastServer(e, ServerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, fast, e, ListenOptions{DrainTimeout: 5 * time.Second}) }()

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := h2cClient().Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	waitFor(t, 5*time.Second, "request at the upstream", func() bool { return e.reg.set.Lookup(addrOf(up)).InFlight() == 1 })
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v before the stream finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-res; r.err != nil || r.body != "finished" {
		t.Errorf("in-flight stream = %q, %v; want finished", r.body, r.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

// TestServeTLSGrades checks that ServeTLS applies proxy_tls_grade: high
// refuses TLS 1.1 and CBC suites, medium refuses TLS 1.1, unsafe accepts
// both, and every grade serves h2.
func TestServeTLSGrades(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	reg := NewRegistry(UpstreamOptions{Timeout: 5 * time.Second})
	e := NewEngine(reg, Options{})
	snap, err := Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	e.Swap(snap)
	dir := t.TempDir()
	writeTestCert(t, dir, "a")
	store, err := edgetls.NewStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cbc := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	tests := []struct {
		grade                  edgetls.Grade
		tls11, tls12cbc, tls13 bool // handshake succeeds
	}{
		{edgetls.GradeHigh, false, false, true},
		{edgetls.GradeMedium, false, true, true}, // Go's defaults keep ECDHE CBC suites
		{edgetls.GradeUnsafe, true, true, true},
	}
	for _, tt := range tests {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fast := NewFastServer(e, ServerOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ServeTLS(ctx, ln, store, tt.grade, fast, e, ListenOptions{}) }()
		try := func(c *tls.Config) bool {
			c.InsecureSkipVerify = true
			conn, err := tls.Dial("tcp", ln.Addr().String(), c)
			if err != nil {
				return false
			}
			conn.Close()
			return true
		}
		if got := try(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); got != tt.tls11 {
			t.Errorf("grade %v: TLS 1.1 handshake ok = %v; want %v", tt.grade, got, tt.tls11)
		}
		if got := try(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: cbc}); got != tt.tls12cbc {
			t.Errorf("grade %v: TLS 1.2 CBC handshake ok = %v; want %v", tt.grade, got, tt.tls12cbc)
		}
		if got := try(&tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}); got != tt.tls13 {
			t.Errorf("grade %v: TLS 1.3 h2 handshake ok = %v; want %v", tt.grade, got, tt.tls13)
		}
		hc := h2Client()
		resp, body := doReq(t, hc, "GET", "https://"+ln.Addr().String(), "/g", nil, nil)
		hc.CloseIdleConnections() // lets the drain below finish at once
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || body != "ok from a /g" {
			t.Errorf("grade %v: h2 GET = %d HTTP/%d %q; want 200 over HTTP/2", tt.grade, resp.StatusCode, resp.ProtoMajor, body)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTLS = %v; want nil", err)
		}
	}
}

// TestServeH2Settings checks that ListenOptions reach the HTTP/2 server
// (h2_max_concurrent_streams, h2_stream_window_bytes and
// h2_connection_window_bytes, issue 16): its SETTINGS frame announces the
// stream limit and the stream window, and a WINDOW_UPDATE on stream 0
// raises the connection window from the protocol's 65535 to the one set;
// the defaults are net/http's (250 streams, 1 MiB windows).
func TestServeH2Settings(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", "127.0.0.1:1")}
	for _, tt := range []struct {
		name                    string
		lo                      ListenOptions
		streams, stream, connWn uint32
	}{
		{"set", ListenOptions{MaxConcurrentStreams: 7, StreamWindowBytes: 100000, ConnectionWindowBytes: 300000}, 7, 100000, 300000},
		{"defaults", ListenOptions{}, 250, 1 << 20, 1 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := startFronts(t, cfg, Options{}, UpstreamOptions{}, tt.lo)
			c, err := net.Dial("tcp", f.plain)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
				t.Fatal(err)
			}
			fr := http2.NewFramer(c, c)
			if err := fr.WriteSettings(); err != nil {
				t.Fatal(err)
			}
			got := map[http2.SettingID]uint32{}
			var connWindow uint32
			for connWindow == 0 {
				frame, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("ReadFrame: %v (settings so far %v)", err, got)
				}
				switch fm := frame.(type) {
				case *http2.SettingsFrame:
					if !fm.IsAck() {
						_ = fm.ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil })
					}
				case *http2.WindowUpdateFrame:
					if fm.StreamID == 0 {
						connWindow = 65535 + fm.Increment
					}
				}
			}
			if got[http2.SettingMaxConcurrentStreams] != tt.streams || got[http2.SettingInitialWindowSize] != tt.stream || connWindow != tt.connWn {
				t.Errorf("server SETTINGS %v, connection window %d; want %d streams, stream window %d, connection window %d",
					got, connWindow, tt.streams, tt.stream, tt.connWn)
			}
		})
	}
}
