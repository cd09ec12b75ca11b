package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/balancer/health"
	"github.com/aralez-go/aralez/config"
)

// protoUpstream starts a backend on 127.0.0.1 that speaks only the given
// protocol ("h2c", "h2" over TLS, "https1" over TLS, "http1") and
// answers with the protocol it saw, the request target, and a digest of
// the request body; /stream sends three flushed chunks.
func protoUpstream(t *testing.T, kind string) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			f := w.(http.Flusher)
			for i := range 3 {
				fmt.Fprintf(w, "chunk%d;", i)
				f.Flush()
			}
			return
		}
		sum := sha256.New()
		n, _ := io.Copy(sum, r.Body)
		w.Header().Set("X-Proto", r.Proto)
		fmt.Fprintf(w, "%s %s %d %s tls=%v", r.Proto, r.RequestURI, n, hex.EncodeToString(sum.Sum(nil))[:8], r.TLS != nil)
	})
	srv := httptest.NewUnstartedServer(h)
	var p http.Protocols
	switch kind {
	case "h2c":
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = &p
		srv.Start()
	case "h2":
		p.SetHTTP2(true)
		srv.Config.Protocols = &p
		srv.EnableHTTP2 = true
		srv.TLS = testTLSConfig(t, []string{"h2"})
		srv.StartTLS()
	case "https1":
		srv.TLS = testTLSConfig(t, []string{"http/1.1"})
		srv.StartTLS()
	default:
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// TestUpstreamProtocols sends HTTP/1.1 and HTTP/2 clients to backends of
// every detected protocol: HTTP/1.1 requests to h2-only backends go
// through the HTTP/2 transport, TLS backends are reached over TLS, and
// request and response bodies stream both ways (issue 5).
func TestUpstreamProtocols(t *testing.T) {
	t.Parallel()
	kinds := []struct {
		kind      string
		wantProto balancer.Proto
		sawProto  string
		sawTLS    bool
	}{
		{"h2c", balancer.ProtoH2C, "HTTP/2.0", false},
		{"h2", balancer.ProtoTLS | balancer.ProtoH2, "HTTP/2.0", true},
		{"https1", balancer.ProtoTLS | balancer.ProtoHTTP1, "HTTP/1.1", true},
		{"http1", balancer.ProtoHTTP1, "HTTP/1.1", false},
	}
	cfg := &config.Config{}
	addrs := map[string]string{}
	for _, k := range kinds {
		addrs[k.kind] = protoUpstream(t, k.kind)
		cfg.Upstreams.Hosts = append(cfg.Upstreams.Hosts, oneRoute(k.kind+".test", "/", addrs[k.kind]))
	}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	for _, k := range kinds {
		p, err := health.Detect(context.Background(), addrs[k.kind], "", 2*time.Second)
		if err != nil || p != k.wantProto {
			t.Fatalf("Detect(%s) = %v, %v; want %v", k.kind, p, err, k.wantProto)
		}
		f.reg.Backends().Get(addrs[k.kind]).SetProto(p)
	}
	body := bytes.Repeat([]byte("payload!"), 64<<10) // 512 KiB: streamed, not buffered
	sum := sha256.Sum256(body)
	for _, fe := range frontEnds {
		for _, k := range kinds {
			t.Run(fe.name+"/"+k.kind, func(t *testing.T) {
				host := map[string]string{"Host": k.kind + ".test"}
				resp, got := doReq(t, fe.client, "POST", fe.base(f), "/up?q=1", host, bytes.NewReader(body))
				want := fmt.Sprintf("%s /up?q=1 %d %s tls=%v", k.sawProto, len(body), hex.EncodeToString(sum[:])[:8], k.sawTLS)
				if resp.StatusCode != 200 || got != want {
					t.Fatalf("POST = %d %q; want 200 %q", resp.StatusCode, got, want)
				}
				resp, got = doReq(t, fe.client, "GET", fe.base(f), "/stream", host, nil)
				if resp.StatusCode != 200 || got != "chunk0;chunk1;chunk2;" {
					t.Errorf("GET /stream = %d %q; want the three chunks", resp.StatusCode, got)
				}
				resp, _ = doReq(t, fe.client, "HEAD", fe.base(f), "/h", host, nil)
				if resp.StatusCode != 200 || resp.Header.Get("X-Proto") != k.sawProto {
					t.Errorf("HEAD = %d X-Proto %q; want 200 %q", resp.StatusCode, resp.Header.Get("X-Proto"), k.sawProto)
				}
			})
		}
	}
}

// TestH2UpstreamTimeout checks that an HTTP/2 request to a backend that
// does not answer within UpstreamOptions.Timeout gets 504, on both front
// ends and for an h2c backend.
func TestH2UpstreamTimeout(t *testing.T) {
	t.Parallel()
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	slow := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	addr := startH2C(t, slow, true)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addr)}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{Timeout: 300 * time.Millisecond}, ListenOptions{})
	for _, proto := range []balancer.Proto{balancer.ProtoHTTP1, balancer.ProtoH2C} {
		f.reg.Backends().Get(addr).SetProto(proto)
		for _, fe := range frontEnds[:2] {
			start := time.Now()
			resp, body := doReq(t, fe.client, "GET", fe.base(f), "/", nil, nil)
			if resp.StatusCode != 504 || body != "504 Gateway Timeout\n" {
				t.Errorf("%s to %v backend: %d %q; want 504", fe.name, proto, resp.StatusCode, body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s to %v backend: answered after %v; want about 300 ms", fe.name, proto, d)
			}
		}
	}
}

// BenchmarkH2CProxy measures one small GET through the h2c front end to
// an HTTP/1.1 backend, with many concurrent streams on one connection.
func BenchmarkH2CProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", strings.TrimPrefix(up.URL, "http://"))}
	f := startFronts(b, cfg, Options{Logger: nil}, UpstreamOptions{KeepalivePoolSize: 256}, ListenOptions{})
	c := h2cClient()
	url := "http://" + f.plain + "/bench"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// TestUpstreamTLSVerify checks upstream certificate verification on both
// front ends and both TLS backend kinds: off accepts a self-signed
// certificate, on refuses it (502) unless TLSCAFile holds it.
func TestUpstreamTLSVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTestCert(t, dir, "up")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "up.crt"), filepath.Join(dir, "up.key"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for kind, protos := range map[string][]string{"https1": {"http/1.1"}, "h2": {"h2"}} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s tls=%v", r.Proto, r.TLS != nil)
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: protos}
		srv.EnableHTTP2 = kind == "h2"
		srv.StartTLS()
		t.Cleanup(srv.Close)
		addrs[kind] = srv.Listener.Addr().String()
	}
	cfg := &config.Config{}
	for kind, addr := range addrs {
		cfg.Upstreams.Hosts = append(cfg.Upstreams.Hosts, oneRoute(kind+".test", "/", addr))
	}
	for _, tt := range []struct {
		name   string
		uo     UpstreamOptions
		status int
	}{
		{"verify off", UpstreamOptions{}, 200},
		{"verify on, unknown CA", UpstreamOptions{TLSVerify: true}, 502},
		{"verify on, CA file", UpstreamOptions{TLSVerify: true, TLSCAFile: filepath.Join(dir, "up.crt")}, 200},
	} {
		// tls_verify comes from the routing table (global level here).
		c := *cfg
		c.Upstreams.Policy.TLSVerify = boolp(tt.uo.TLSVerify)
		f := startFronts(t, &c, Options{}, tt.uo, ListenOptions{})
		for kind, addr := range addrs {
			p, err := health.Detect(context.Background(), addr, "", 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			f.reg.Backends().Get(addr).SetProto(p)
			for _, fe := range frontEnds[:2] {
				resp, body := doReq(t, fe.client, "GET", fe.base(f), "/", map[string]string{"Host": kind + ".test"}, nil)
				if resp.StatusCode != tt.status || tt.status == 200 && !strings.HasSuffix(body, "tls=true") {
					t.Errorf("%s: %s to %s = %d %q; want %d over TLS", tt.name, fe.name, kind, resp.StatusCode, body, tt.status)
				}
			}
		}
	}
}

// TestH2BodyLimit checks max_request_body_bytes on the net/http front end:
// a declared length over it gets 413 before the upstream is asked, and a
// streamed body of unknown length is cut at the limit with 413.
func TestH2BodyLimit(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{MaxRequestBodyBytes: 1 << 20}, UpstreamOptions{}, ListenOptions{})
	c := h2cClient()
	base := "http://" + f.plain
	if resp, body := doReq(t, c, "POST", base, "/small", nil, strings.NewReader("hello")); resp.StatusCode != 200 || body != "5" {
		t.Errorf("small body = %d %q; want 200 5", resp.StatusCode, body)
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	if resp, body := doReq(t, c, "POST", base, "/declared", nil, bytes.NewReader(big)); resp.StatusCode != 413 {
		t.Errorf("declared 2 MiB body = %d %q; want 413", resp.StatusCode, body)
	}
	// io.MultiReader hides the length: the client streams without one.
	resp, body := doReq(t, c, "POST", base, "/streamed", nil, io.MultiReader(bytes.NewReader(big)))
	if resp.StatusCode != 413 {
		t.Errorf("streamed 2 MiB body = %d %q; want 413", resp.StatusCode, body)
	}
	// The upstream saw the small body and the start of the streamed one.
	waitFor(t, 5*time.Second, "2 upstream requests", func() bool { return s.hits.Load() == 2 })
}

// TestH2ToHTTP1Backend checks the h2 and h2c front ends' exchanges with an
// HTTP/1.1 backend over its fasthttp pool (issue 16): header values that
// repeat, change or are unique to a request all reach the client as the
// backend sent them, many requests in a row (the per-state value cache
// never hands one request's value to another); the backend's connections
// are reused; and a client that accepts trailers ("TE: trailers") gets
// the backend's chunked trailers, over the net/http transport.
func TestH2ToHTTP1Backend(t *testing.T) {
	t.Parallel()
	var n, conns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("X-Same", "constant")
		w.Header().Set("X-Seq", strconv.FormatInt(i, 10))
		w.Header().Set("X-Mod", strconv.FormatInt(i%3, 10))
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		if r.URL.Path == "/trailer" {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.(http.Flusher).Flush() // chunked, so the trailer can follow
			w.Header().Set("X-Sum", "t"+strconv.FormatInt(i, 10))
			return
		}
		io.WriteString(w, "seq="+strconv.FormatInt(i, 10)+" te="+r.Header.Get("Te"))
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	addr := up.Listener.Addr().String()
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addr)}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{KeepalivePoolSize: 4}, ListenOptions{})
	for _, fe := range frontEnds[1:3] { // h2c, h2
		t.Run(fe.name, func(t *testing.T) {
			for range 200 {
				resp, body := doReq(t, fe.client, "GET", fe.base(f), "/seq", nil, nil)
				seq := resp.Header.Get("X-Seq")
				mod, _ := strconv.Atoi(seq)
				if resp.StatusCode != 200 || body != "seq="+seq+" te=" || resp.Header.Get("X-Same") != "constant" ||
					resp.Header.Get("X-Mod") != strconv.Itoa(mod%3) || strings.Join(resp.Header["X-Multi"], ",") != "a,b" {
					t.Fatalf("GET /seq = %d %q, header %v; want 200, the body's seq in X-Seq, X-Mod = seq%%3, X-Multi a,b", resp.StatusCode, body, resp.Header)
				}
			}
			req, err := http.NewRequest("GET", fe.base(f)+"/trailer", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("TE", "trailers")
			resp, err := fe.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.Trailer.Get("X-Sum"); resp.StatusCode != 200 || string(b) != "body" || !strings.HasPrefix(got, "t") {
				t.Errorf("GET /trailer with TE: trailers = %d %q, trailer X-Sum %q; want 200 \"body\" and the backend's trailer", resp.StatusCode, b, got)
			}
		})
	}
	// Sequential requests reuse pooled connections: a few at most (one
	// pool per transport), not one per request.
	if c := conns.Load(); c > 4 {
		t.Errorf("backend saw %d connections for %d requests; want them reused (at most 4)", c, n.Load())
	}
}

// TestH2BackendEarlyAnswer sends HTTP/1.1 uploads, buffered and streamed,
// to an h2c backend that answers before reading them (net/http's
// transport reads request bodies on goroutines of its own; a streamed one
// is fed by the goroutine serving the client, upstream_feed.go). Every
// answer must be the backend's, and every request must get its own.
func TestH2BackendEarlyAnswer(t *testing.T) {
	t.Parallel()
	var seen atomic.Int64
	f := h2cOnlyFronts(t, func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if r.URL.Path == "/read-some" {
			_, _ = io.CopyN(io.Discard, r.Body, 1000)
		}
		w.Header().Set("X-Early", r.URL.Path)
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "early")
	}, UpstreamOptions{})
	fe := frontEnds[0] // HTTP/1.1
	want := 0
	for i := range 12 {
		size := 40 << 10 // buffered, under the h2 window
		if i%3 == 1 {
			size = 100 << 10 // over BodyBufferBytes: streamed, and over the window
		}
		path := "/early"
		if i%2 == 1 {
			path = "/read-some"
		}
		body := bytes.Repeat([]byte{byte('a' + i)}, size)
		resp, got := doReq(t, fe.client, "POST", fe.base(f), path, nil, bytes.NewReader(body))
		want++
		if resp.StatusCode != http.StatusRequestEntityTooLarge || got != "early" || resp.Header.Get("X-Early") != path {
			t.Fatalf("request %d (%d bytes to %s): %d %q X-Early %q", i, size, path, resp.StatusCode, got, resp.Header.Get("X-Early"))
		}
	}
	if n := int(seen.Load()); n != want {
		t.Fatalf("backend saw %d requests, want %d", n, want)
	}
}

// startH2C starts srv speaking cleartext HTTP/2 with prior knowledge
// (and HTTP/1.1 too when h1), closed when the test ends, and returns its
// address.
func startH2C(t *testing.T, srv *httptest.Server, h1 bool) string {
	t.Helper()
	var p http.Protocols
	p.SetHTTP1(h1)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// The streamed uploads of the HTTP/1.1 front end to backends that speak
// only HTTP/2 (upstream_feed.go).

// h2cOnlyFronts serves h on 127.0.0.1 as a backend that speaks only
// h2c, detected as such, behind the front ends of startFronts with a
// body_buffer_bytes of 48 KiB, for every host.
func h2cOnlyFronts(t *testing.T, h http.HandlerFunc, uo UpstreamOptions) *fronts {
	t.Helper()
	addr := startH2C(t, httptest.NewUnstartedServer(h), false)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addr)}
	f := startFronts(t, cfg, Options{BodyBufferBytes: 48 << 10}, uo, ListenOptions{})
	f.reg.Backends().Get(addr).SetProto(balancer.ProtoH2C)
	return f
}

// feedUpload is one upload of the tests below: its head and its body
// split in two, framed with a declared length or chunked.
type feedUpload struct {
	head, first, rest string
}

// newFeedUpload frames a POST of size bytes to target, the first of them
// in first.
func newFeedUpload(target string, size, first int, chunked bool) feedUpload {
	body := strings.Repeat("u", size)
	u := feedUpload{head: "POST " + target + " HTTP/1.1\r\nHost: app.test\r\n"}
	if !chunked {
		u.head += "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n"
		u.first, u.rest = body[:first], body[first:]
		return u
	}
	u.head += "Transfer-Encoding: chunked\r\n\r\n"
	chunk := func(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }
	u.first, u.rest = chunk(body[:first]), chunk(body[first:])+"0\r\n\r\n"
	return u
}

// TestH2StreamedUploadEarlyAnswer: an HTTP/1.1 upload larger than
// body_buffer_bytes goes to an h2c-only backend that answers 413 at once
// without reading it, and the client waits for that answer before it
// sends the rest of its body. The backend's answer must reach the
// client, and net/http's transport, which reads request bodies on
// goroutines of its own, must never read the client's connection or
// fasthttp's body stream once the exchange is over (under -race this
// reported a data race on the stream before upstream_feed.go). Then the
// connection is closed after the answer (the client's further bytes may
// meet a closed socket) or drained, serving its next request.
func TestH2StreamedUploadEarlyAnswer(t *testing.T) {
	t.Parallel()
	var seen atomic.Int64
	f := h2cOnlyFronts(t, func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.Header().Set("X-Early", r.URL.Path)
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "early")
	}, UpstreamOptions{})
	want := int64(0)
	for _, fe := range h1FrontEnds() {
		for _, chunked := range []bool{false, true} {
			for i := range 3 {
				name := fmt.Sprintf("%s chunked=%v #%d", fe.name, chunked, i)
				up := newFeedUpload("/upload", 300<<10, 100<<10, chunked)
				c := dialFront(t, fe, f) // its deadline is the test's ceiling
				if _, err := io.WriteString(c, up.head+up.first); err != nil {
					t.Fatalf("%s: writing the head and the first bytes: %v", name, err)
				}
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("%s: no answer before the rest of the body: %v", name, err)
				}
				b, err := io.ReadAll(resp.Body)
				want++
				if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || string(b) != "early" || resp.Header.Get("X-Early") != "/upload" {
					t.Fatalf("%s: answer = %d %q (%v) X-Early %q; want the backend's 413 %q", name, resp.StatusCode, b, err, resp.Header.Get("X-Early"), "early")
				}
				_, werr := io.WriteString(c, up.rest)
				if resp.Close {
					// Closed after the answer: nothing more comes.
					if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
						t.Fatalf("%s: after Connection: close, read %d bytes, err %v; want the connection closed", name, n, err)
					}
					c.Close()
					continue
				}
				// Drained: the connection serves the next request.
				if werr != nil {
					t.Fatalf("%s: kept alive, but the rest of the body could not be sent: %v", name, werr)
				}
				if _, err := io.WriteString(c, "POST /next HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\n\r\n"); err != nil {
					t.Fatalf("%s: next request: %v", name, err)
				}
				resp, err = http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("%s: no answer to the next request on the drained connection: %v", name, err)
				}
				resp.Body.Close()
				want++
				if resp.Header.Get("X-Early") != "/next" {
					t.Fatalf("%s: next request answered with X-Early %q; want %q", name, resp.Header.Get("X-Early"), "/next")
				}
				c.Close()
			}
		}
	}
	if got := seen.Load(); got != want {
		t.Errorf("backend saw %d requests; want %d", got, want)
	}
}

// TestH2StreamedUploadWhole: an HTTP/1.1 upload larger than
// body_buffer_bytes to an h2c-only backend that reads all of it arrives
// byte for byte (its SHA-256 and length), with a declared length and
// chunked, also when the backend sends its response head before it reads
// the body (the upload goes on after the transport's RoundTrip has
// returned), twice on each keep-alive connection.
func TestH2StreamedUploadWhole(t *testing.T) {
	t.Parallel()
	f := h2cOnlyFronts(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/head-first" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		sum := sha256.New()
		n, err := io.Copy(sum, r.Body)
		if err != nil {
			fmt.Fprintf(w, "read error after %d bytes: %v", n, err)
			return
		}
		fmt.Fprintf(w, "%d %x", n, sum.Sum(nil))
	}, UpstreamOptions{})
	const size = 1<<20 + 3
	wantBody := fmt.Sprintf("%d %s", size, patternSum(size))
	for _, fe := range h1FrontEnds() {
		for _, chunked := range []bool{false, true} {
			for _, path := range []string{"/read-first", "/head-first", "/read-first", "/head-first"} {
				name := fmt.Sprintf("%s chunked=%v %s", fe.name, chunked, path)
				var body io.Reader = &patternReader{n: size}
				if chunked {
					body = struct{ io.Reader }{body} // unknown length
				}
				req, err := http.NewRequest("POST", fe.base(f)+path, body)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = "app.test"
				if !chunked {
					req.ContentLength = size
				}
				resp, err := fe.client.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || string(got) != wantBody {
					t.Fatalf("%s: backend got %d %q (%v); want 200 %q", name, resp.StatusCode, got, err, wantBody)
				}
			}
		}
	}
}

// TestH2StreamedUploadBackendStalls: an h2c-only backend that takes
// neither the rest of a streamed upload nor answers holds the exchange
// for upstream_timeout once the body has stopped flowing, not until the
// backend gives up: the client gets 504.
func TestH2StreamedUploadBackendStalls(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	f := h2cOnlyFronts(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
	}, UpstreamOptions{Timeout: 200 * time.Millisecond})
	t.Cleanup(func() { close(release) }) // runs before the backend's Close
	const size = 8 << 20                 // over the backend's flow-control windows
	up := newFeedUpload("/stall", size, size, false)
	c := dialFront(t, frontEnds[0], f)                         // its deadline is the test's ceiling
	go func() { _, _ = io.WriteString(c, up.head+up.first) }() // ends when c closes
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer while the backend stalls: %v", err)
	}
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("stalled upload answered %d; want 504", resp.StatusCode)
	}
}
