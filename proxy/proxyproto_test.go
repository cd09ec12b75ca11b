package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pires/go-proxyproto"
	"golang.org/x/net/http2"

	"github.com/aralez-go/aralez/balancer/health"
	"github.com/aralez-go/aralez/config"
)

// ppHeader builds a PROXY protocol header of version (1 or 2) naming
// client as the source and 192.0.2.1:443 (or 2001:db8::1) as the
// destination.
func ppHeader(t testing.TB, version byte, client string) []byte {
	t.Helper()
	src := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(client))
	dst := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 443}
	if src.IP.To4() == nil {
		dst.IP = net.ParseIP("2001:db8::1")
	}
	b, err := proxyproto.HeaderProxyFromAddrs(version, src, dst).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ppV2Local is a v2 LOCAL header with an empty address block, as load
// balancers send it for their own health checks.
var ppV2Local = append(append([]byte{}, proxyproto.SIGV2...), 0x20, 0x00, 0x00, 0x00)

// ppV2WithTLVs is a v2 PROXY header for 198.51.100.9:5000 carrying an
// ALPN TLV and a NOOP TLV, which the reader must skip.
func ppV2WithTLVs() []byte {
	b := append([]byte{}, proxyproto.SIGV2...)
	tlvs := []byte{0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x03, 0, 0, 0}
	addr := []byte{198, 51, 100, 9, 192, 0, 2, 1, 0x13, 0x88, 0x01, 0xbb}
	n := len(addr) + len(tlvs)
	b = append(b, 0x21, 0x11, byte(n>>8), byte(n))
	b = append(b, addr...)
	return append(b, tlvs...)
}

// dialFrom opens a TCP connection to addr from the loopback address
// local (127.0.0.1 is the trusted balancer in these tests, 127.0.0.2 an
// untrusted client) and writes pre first.
func dialFrom(ctx context.Context, local, addr string, pre []byte) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if len(pre) > 0 {
		if _, err := c.Write(pre); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// ppClients returns clients of each front end whose connections start
// with the header pre, sent from local.
func ppClients(local string, pre []byte) map[string]*http.Client {
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) { return dialFrom(ctx, local, addr, pre) }
	dialTLS := func(protos ...string) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: protos})
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	return map[string]*http.Client{
		"http1":  {Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}},
		"https1": {Timeout: 10 * time.Second, Transport: &http.Transport{DialTLSContext: dialTLS("http/1.1"), DisableKeepAlives: true}},
		"h2c": {Timeout: 10 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return dial(ctx, network, addr)
			}}},
		"h2": {Timeout: 10 * time.Second, Transport: &http2.Transport{
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return dialTLS("h2")(ctx, network, addr)
			}}},
	}
}

// ppFronts serves an upstream that echoes the X-Forwarded-For it got
// behind both listeners, with 127.0.0.1 as the only PROXY protocol
// source.
func ppFronts(t *testing.T, timeout time.Duration, route func(*config.Host)) (*fronts, *seen) {
	t.Helper()
	up, s := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.Header.Get("X-Forwarded-For"))
	})
	h := oneRoute("DEFAULT", "/", addrOf(up))
	if route != nil {
		route(&h)
	}
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{h}
	lo := ListenOptions{HandshakeTimeout: timeout, ProxyProtocolFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	return startFronts(t, cfg, Options{}, UpstreamOptions{}, lo), s
}

func (f *fronts) url(name string) string {
	if name == "h2" || name == "https1" {
		return "https://" + f.tls
	}
	return "http://" + f.plain
}

// TestProxyProtocolInbound sends v1 and v2 headers (with TLVs, LOCAL,
// UNKNOWN) from the trusted balancer through every front end: the client
// address the header carries reaches the backend in X-Forwarded-For,
// and LOCAL/UNKNOWN keep the socket's address (issue 17).
func TestProxyProtocolInbound(t *testing.T) {
	t.Parallel()
	f, _ := ppFronts(t, 2*time.Second, nil)
	for _, tt := range []struct {
		name string
		pre  []byte
		want string // X-Forwarded-For at the backend
	}{
		{"v1-tcp4", ppHeader(t, 1, "203.0.113.7:40000"), "203.0.113.7"},
		{"v1-tcp6", ppHeader(t, 1, "[2001:db8:5::7]:40000"), "2001:db8:5::7"},
		{"v2-tcp4", ppHeader(t, 2, "203.0.113.8:40000"), "203.0.113.8"},
		{"v2-tcp6", ppHeader(t, 2, "[2001:db8:5::8]:40000"), "2001:db8:5::8"},
		{"v2-tlvs", ppV2WithTLVs(), "198.51.100.9"},
		{"v2-local", ppV2Local, "127.0.0.1"},
		{"v1-unknown", []byte("PROXY UNKNOWN\r\n"), "127.0.0.1"},
	} {
		for name, c := range ppClients("127.0.0.1", tt.pre) {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				resp, body := doReq(t, c, "GET", f.url(name), "/", nil, nil)
				if resp.StatusCode != 200 || !strings.HasSuffix(body, " "+tt.want) {
					t.Errorf("GET = %d %q; want 200 and X-Forwarded-For %q", resp.StatusCode, body, tt.want)
				}
			})
		}
	}
}

// TestProxyProtocolWebSocket opens a WebSocket through a v2 header on
// both listeners: the handshake reaches the backend with the carried
// address, and frames flow through the tunnel (issue 17).
func TestProxyProtocolWebSocket(t *testing.T) {
	t.Parallel()
	addr, _ := startWSBackend(t)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addr)}
	lo := ListenOptions{ProxyProtocolFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, lo)
	pre := ppHeader(t, 2, "203.0.113.70:1234")
	for _, url := range []string{"ws://" + f.plain + "/echo", "wss://" + f.tls + "/echo"} {
		d := websocket.Dialer{
			HandshakeTimeout: 5 * time.Second,
			TLSClientConfig:  &tls.Config{InsecureSkipVerify: true},
			NetDialContext: func(ctx context.Context, _, a string) (net.Conn, error) {
				return dialFrom(ctx, "127.0.0.1", a, pre)
			},
		}
		c, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("%s: dial: %v", url, err)
		}
		if got := resp.Header.Get("X-Backend"); got != "ws" {
			t.Errorf("%s: X-Backend = %q; want ws", url, got)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hi" {
			t.Errorf("%s: echo = %q, %v; want hi", url, msg, err)
		}
		c.Close()
	}
}

// dialListener opens a TCP connection from local to f's TLS or
// cleartext listener, writes send, and closes it when the test ends.
func dialListener(t *testing.T, f *fronts, local string, tls bool, send string) net.Conn {
	t.Helper()
	addr := f.plain
	if tls {
		addr = f.tls
	}
	c, err := dialFrom(context.Background(), local, addr, []byte(send))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads what the proxy sends on c until it closes (or 5 s pass)
// and reports how long that took.
func readAll(c net.Conn) (string, time.Duration, error) {
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if isReset(err) {
		err = nil
	}
	return string(b), time.Since(start), err
}

// TestProxyProtocolRefused covers the headers that must not be trusted
// or served: from the trusted balancer a missing, malformed, slow or
// partial header closes the connection (within the header timeout)
// without reaching the backend; from any other peer a PROXY header is a
// bad request and the peer's own address is the client (issue 17).
func TestProxyProtocolRefused(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	f, s := ppFronts(t, timeout, nil)
	get := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	for _, tt := range []struct {
		name  string
		local string
		tls   bool
		send  string
		want  string // prefix of what the proxy answers; "" = closed without a byte
	}{
		{"missing", "127.0.0.1", false, get, ""},
		{"missing-tls", "127.0.0.1", true, "\x16\x03\x01\x00\x05hello", ""},
		{"malformed-v1", "127.0.0.1", false, "PROXY TCP4 300.1.1.1 192.0.2.1 1 2\r\n" + get, ""},
		{"v1-no-crlf", "127.0.0.1", false, "PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n" + get, ""},
		{"v1-too-long", "127.0.0.1", false, "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n" + get, ""},
		{"v2-bad-command", "127.0.0.1", false, string(proxyproto.SIGV2) + "\x2f\x11\x00\x0c" + strings.Repeat("\x00", 12) + get, ""},
		{"v2-bad-family", "127.0.0.1", false, string(proxyproto.SIGV2) + "\x21\x51\x00\x0c" + strings.Repeat("\x00", 12) + get, ""},
		{"v2-truncated", "127.0.0.1", false, string(proxyproto.SIGV2) + "\x21\x11\x00\x0c\x01\x02", ""},
		{"slow-v2-signature", "127.0.0.1", false, string(proxyproto.SIGV2[:6]), ""},
		{"silent", "127.0.0.1", false, "", ""},
		{"untrusted-v1", "127.0.0.2", false, "PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n" + get, "HTTP/1.1 400"},
		{"untrusted-v2", "127.0.0.2", false, string(ppHeader(t, 2, "203.0.113.7:1")) + get, "HTTP/1.1 400"},
		{"untrusted-tls", "127.0.0.2", true, string(ppHeader(t, 2, "203.0.113.7:1")), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialListener(t, f, tt.local, tt.tls, tt.send)
			got, took, err := readAll(c)
			if err != nil {
				t.Fatalf("reading: %v after %v; want the proxy to answer or close", err, took)
			}
			switch {
			case tt.want != "" && !strings.HasPrefix(got, tt.want):
				t.Errorf("answer %q; want %q…", got, tt.want)
			case tt.want == "" && !tt.tls && got != "":
				t.Errorf("answer %q; want a close without a byte", got)
			}
			if tt.want == "" && took > timeout+2*time.Second {
				t.Errorf("closed after %v; want within the %v header timeout", took, timeout)
			}
		})
	}
	t.Run("untrusted-plain", func(t *testing.T) {
		// A client outside proxy_protocol_from is served as it is.
		c := ppClients("127.0.0.2", nil)["http1"]
		resp, body := doReq(t, c, "GET", "http://"+f.plain, "/", nil, nil)
		if resp.StatusCode != 200 || body != "HTTP/1.1 127.0.0.2" {
			t.Errorf("GET from 127.0.0.2 = %d %q; want 200 %q", resp.StatusCode, body, "HTTP/1.1 127.0.0.2")
		}
	})
	if n := s.hits.Load(); n != 1 {
		t.Errorf("backend hits = %d; want 1 (only the plain untrusted request)", n)
	}
}

// TestProxyProtocolRefusedOrderly: a refused PROXY header from the
// trusted balancer, with more bytes behind it than the header reader
// takes, ends in an orderly close (EOF), not a reset, on both listeners;
// a PROXY header from another peer gets its 400 and then EOF too. A
// reset could destroy what the peer has not read yet, and tells a
// balancer nothing.
func TestProxyProtocolRefusedOrderly(t *testing.T) {
	t.Parallel()
	f, s := ppFronts(t, 2*time.Second, nil)
	// tail is more than the header reader's buffer and the socket's
	// first read, so that bytes are still unread when the proxy closes.
	tail := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 32<<10) + "\r\n\r\n"
	for _, tt := range []struct {
		name, local string
		tls         bool
		send        string
		want        string // prefix of the answer; "" = none
	}{
		{"v2-bad-command", "127.0.0.1", false, string(proxyproto.SIGV2) + "\x2f\x11\x00\x0c" + strings.Repeat("\x00", 12) + tail, ""},
		{"v2-bad-command-tls", "127.0.0.1", true, string(proxyproto.SIGV2) + "\x2f\x11\x00\x0c" + strings.Repeat("\x00", 12) + tail, ""},
		{"v1-malformed", "127.0.0.1", false, "PROXY TCP4 300.1.1.1 192.0.2.1 1 2\r\n" + tail, ""},
		{"missing", "127.0.0.1", false, tail, ""},
		{"untrusted-v1", "127.0.0.2", false, "PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n" + tail, "HTTP/1.1 400"},
		{"untrusted-v2", "127.0.0.2", false, string(ppHeader(t, 2, "203.0.113.7:1")) + tail, "HTTP/1.1 400"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialListener(t, f, tt.local, tt.tls, tt.send)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("reading after %q…: %v; want EOF (an orderly close, not a reset)", tt.send[:20], err)
			}
			if got := string(b); tt.want == "" && got != "" || !strings.HasPrefix(got, tt.want) {
				t.Errorf("answer %.40q; want %q", got, tt.want)
			}
		})
	}
	if n := s.hits.Load(); n != 0 {
		t.Errorf("backend hits = %d; want 0", n)
	}
}

// TestProxyProtocolRateLimit checks that a rate limit keys on the
// carried client address: two clients behind the same balancer each
// get their own budget (issue 17).
func TestProxyProtocolRateLimit(t *testing.T) {
	t.Parallel()
	f, _ := ppFronts(t, 2*time.Second, func(h *config.Host) { h.Policy.RateLimit = 2 })
	for _, client := range []string{"203.0.113.10:1000", "203.0.113.11:1000"} {
		var codes []int
		for range 3 {
			c, err := dialFrom(context.Background(), "127.0.0.1", f.plain, ppHeader(t, 1, client))
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			codes = append(codes, resp.StatusCode)
			c.Close()
		}
		if fmt.Sprint(codes) != "[200 200 429]" {
			t.Errorf("client %s: statuses %v; want [200 200 429]", client, codes)
		}
	}
}

// TestProxyProtocolBehindHAProxy puts a real HAProxy in TCP mode with
// send-proxy-v2 in front of both listeners: a client connecting to
// HAProxy from 127.0.0.3 reaches the backend with X-Forwarded-For
// 127.0.0.3, over HTTP/1.1 and over TLS with h2, while the proxy's peer
// is HAProxy on 127.0.0.1 (issue 17).
func TestProxyProtocolBehindHAProxy(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("ARALEZ_CI") != "" {
			t.Fatalf("haproxy not found, and ARALEZ_CI is set (.ci/run installs it): %v", err)
		}
		t.Skip("haproxy is not installed (Debian package haproxy); skipping")
	}
	f, _ := ppFronts(t, 2*time.Second, nil)
	plain, tlsFront := freeLoopback(t), freeLoopback(t)
	cfg := fmt.Sprintf(`global
    maxconn 100
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend plain
    bind %s
    default_backend aralez_plain
frontend tls
    bind %s
    default_backend aralez_tls
backend aralez_plain
    server a %s send-proxy-v2
backend aralez_tls
    server a %s send-proxy-v2
`, plain, tlsFront, f.plain, f.tls)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	clients := ppClients("127.0.0.3", nil)
	for _, c := range []struct{ name, url string }{{"http1", "http://" + plain}, {"h2", "https://" + tlsFront}} {
		var resp *http.Response
		var body string
		deadline := time.Now().Add(10 * time.Second)
		for {
			// HAProxy binds its ports shortly after it starts.
			r, err := clients[c.name].Get(c.url + "/")
			if err == nil {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				resp, body = r, string(b)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s through HAProxy: %v; HAProxy said:\n%s", c.name, err, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if resp.StatusCode != 200 || !strings.HasSuffix(body, " 127.0.0.3") {
			t.Errorf("%s through HAProxy = %d %q; want 200 and X-Forwarded-For 127.0.0.3", c.name, resp.StatusCode, body)
		}
	}
}

// freeLoopback returns a free 127.0.0.1 port (closed again, for a server
// that binds it itself).
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ppBackend is a backend that requires a PROXY header on every
// connection (go-proxyproto's REQUIRE) and answers with the client
// address it carried (and, to a POST, the length and SHA-256 of the body
// it read); it counts connections and requests.
type ppBackend struct {
	addr        string
	conns, reqs atomic.Int64
}

func startPPBackend(t *testing.T, tlsToo bool) *ppBackend {
	t.Helper()
	pb := &ppBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &proxyproto.Listener{Listener: &countingListener{Listener: ln, n: &pb.conns},
		ConnPolicy: func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }}
	up := websocket.Upgrader{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PRI" {
			// The HTTP/2 preface of h2c detection, not a request.
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
			return
		}
		pb.reqs.Add(1)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.WriteMessage(websocket.TextMessage, []byte(host))
			return
		}
		if r.Method == http.MethodPost {
			sum := sha256.New()
			n, err := io.Copy(sum, r.Body)
			fmt.Fprintf(w, "%s %d %x %v", host, n, sum.Sum(nil), err)
			return
		}
		io.WriteString(w, host)
	}))
	srv.Listener = pl
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsToo {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	pb.addr = ln.Addr().String()
	return pb
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestSendProxyProtocol routes two clients (127.0.0.2 and 127.0.0.3)
// through every front end to backends that require a PROXY header
// (send_proxy_protocol v1 and v2, cleartext and TLS): each request
// reaches the backend on a connection of its own whose header names its
// client, so no upstream connection is shared across clients, and a
// WebSocket tunnel carries its client's header too (issue 17). An upload
// over body_buffer_bytes streams whole to the backend (from HTTP/1.1
// clients through net/http's transport, fed by the serving goroutine,
// upstream_feed.go).
func TestSendProxyProtocol(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		version string
		tls     bool
	}{{"v1", "v1", false}, {"v2-tls", "v2", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := startPPBackend(t, tt.tls)
			h := oneRoute("DEFAULT", "/", be.addr)
			h.Paths[0].SendProxyProtocol = tt.version
			cfg := &config.Config{}
			cfg.Upstreams.Hosts = []config.Host{h}
			f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
			// Detection as the health checker would run it, with the
			// backend's LOCAL/UNKNOWN header.
			snap := f.e.Snapshot()
			for _, r := range snap.Routes {
				for _, m := range r.Pool().Members() {
					b := m.Backend
					p, err := health.DetectBackend(context.Background(), b, "", 2*time.Second)
					if err != nil {
						t.Fatalf("DetectBackend: %v", err)
					}
					b.SetProto(p)
				}
			}
			const upload = 300<<10 + 3 // over body_buffer_bytes: streamed
			wantUpload := fmt.Sprintf(" %d %s <nil>", upload, patternSum(upload))
			want := 0
			for _, client := range []string{"127.0.0.2", "127.0.0.3"} {
				for name, c := range ppClients(client, nil) {
					for range 2 {
						resp, body := doReq(t, c, "GET", f.url(name), "/", nil, nil)
						want++
						if resp.StatusCode != 200 || body != client {
							t.Errorf("%s from %s: %d %q; want 200 and the backend seeing %s", name, client, resp.StatusCode, body, client)
						}
					}
					resp, body := doReq(t, c, "POST", f.url(name), "/", nil, &patternReader{n: upload})
					want++
					if resp.StatusCode != 200 || body != client+wantUpload {
						t.Errorf("%s from %s: upload answered %d %q; want 200 %q", name, client, resp.StatusCode, body, client+wantUpload)
					}
				}
				d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
					NetDialContext: func(ctx context.Context, _, a string) (net.Conn, error) { return dialFrom(ctx, client, a, nil) }}
				c, _, err := d.Dial("ws://"+f.plain+"/ws", nil)
				if err != nil {
					t.Fatalf("WebSocket from %s: %v", client, err)
				}
				want++
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, msg, err := c.ReadMessage(); err != nil || string(msg) != client {
					t.Errorf("WebSocket from %s: backend saw %q, %v; want %s", client, msg, err, client)
				}
				c.Close()
			}
			if r, n := be.reqs.Load(), be.conns.Load(); r != int64(want) || n < r {
				t.Errorf("backend: %d requests over %d connections; want %d requests, each on its own connection", r, n, want)
			}
		})
	}
}
