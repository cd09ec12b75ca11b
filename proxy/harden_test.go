package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"github.com/aralez-go/aralez/internal/syncbuf"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/metrics"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

// The tests of this file are the regressions of issue 11 ("Edge
// hardening"), each through a real listener: raw HTTP/1.1 bytes where
// framing matters, every front end where the pipeline applies.

// earlyBackend is a raw HTTP/1.1 backend that answers every request with
// 413 and "Connection: close" as soon as it has read the request head,
// then closes without reading the body (the kernel resets the connection
// under the proxy's body writes). It counts the requests it answered.
func earlyBackend(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				n.Add(1)
				io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nearly 413\n")
			}()
		}
	}()
	return ln.Addr().String(), &n
}

// dialFront opens a raw connection to the HTTP/1.1 side of a front end
// (cleartext, or TLS with ALPN http/1.1).
func dialFront(t *testing.T, fe frontEnd, f *fronts) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	if fe.xfp == "https" {
		c, err = tls.Dial("tcp", f.tls, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	} else {
		c, err = net.Dial("tcp", f.plain)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	return c
}

// closedAddr returns a loopback address where nothing listens: a backend
// that refuses connections.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// zeroReader yields zero bytes forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestFrontEndsEarlyUpstreamAnswer: a backend that answers 413 and
// closes while a large upload streams to it gets its 413 relayed, not a
// 502 that blames it (issue 11), for a declared length and a chunked
// body alike.
func TestFrontEndsEarlyUpstreamAnswer(t *testing.T) {
	t.Parallel()
	addr, answered := earlyBackend(t)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addr)}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	const size = 20 << 20
	for _, fe := range frontEnds {
		for _, chunked := range []bool{false, true} {
			name := fe.name + "/content-length"
			if chunked {
				name = fe.name + "/chunked"
			}
			t.Run(name, func(t *testing.T) {
				before := answered.Load()
				var status int
				var body string
				if fe.proto == 1 {
					c := dialFront(t, fe, f)
					head := "POST /upload HTTP/1.1\r\nHost: app.test\r\n"
					if chunked {
						head += "Transfer-Encoding: chunked\r\n\r\n"
					} else {
						head += "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n"
					}
					io.WriteString(c, head)
					go func() {
						chunk := make([]byte, 64<<10)
						for sent := 0; sent < size; sent += len(chunk) {
							var err error
							if chunked {
								_, err = io.WriteString(c, "10000\r\n"+string(chunk)+"\r\n")
							} else {
								_, err = c.Write(chunk)
							}
							if err != nil {
								return
							}
						}
					}()
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						t.Fatalf("reading the answer: %v", err)
					}
					b, _ := io.ReadAll(resp.Body)
					status, body = resp.StatusCode, string(b)
				} else {
					var r io.Reader = io.LimitReader(zeroReader{}, size)
					if chunked {
						r = struct{ io.Reader }{r} // unknown length
					}
					req, _ := http.NewRequest("POST", fe.base(f)+"/upload", r)
					req.Host = "app.test"
					if !chunked {
						req.ContentLength = size
					}
					resp, err := fe.client.Do(req)
					if err != nil {
						t.Fatalf("POST: %v", err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					status, body = resp.StatusCode, string(b)
				}
				if status != 413 || body != "early 413\n" {
					t.Errorf("upload answered early by the backend = %d %q; want 413 %q", status, body, "early 413\n")
				}
				if answered.Load() == before {
					t.Errorf("the backend saw no request")
				}
			})
		}
	}
}

// TestFrontEndsPathParameters: routes and their policies apply to the
// path a servlet backend serves: a segment's ";parameters" are not routed
// on but forwarded; encoded control bytes are refused; encoded "?", "#"
// and ";" are refused when decoding them would change the route, and
// forwarded as they are otherwise (issue 11).
func TestFrontEndsPathParameters(t *testing.T) {
	t.Parallel()
	pub, ps := newUpstream(t, "public", nil)
	adm, as := newUpstream(t, "admin", nil)
	cfg := &config.Config{}
	app := config.Host{Name: "app.test", Paths: []config.Path{
		{Prefix: "/", Servers: []config.Server{{Address: addrOf(pub), Weight: 1}}},
		{Prefix: "/admin", Servers: []config.Server{{Address: addrOf(adm), Weight: 1}}},
	}}
	app.Paths[1].Policy.Authorization = &config.Auth{Type: "basic", Data: []string{"u:p"}}
	cfg.Upstreams.Hosts = []config.Host{app}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	tests := []struct {
		target string
		auth   bool
		status int
		upURI  string // "" = no upstream request; "admin:" prefix = the admin backend
	}{
		{"/admin;v=1/x", false, 401, ""},
		{"/admin;x", false, 401, ""},
		{"/%61dmin;jsessionid=1/x", false, 401, ""},
		{"/admin;v=1/x", true, 200, "admin:/admin;v=1/x"},
		{"/%61dmin;jsessionid=1/x?q=1", true, 200, "admin:/admin;jsessionid=1/x?q=1"},
		{"/admin%3Bv=1/x", false, 400, ""},
		{"/x/..;/admin", false, 400, ""},
		{"/admin%00/x", false, 400, ""},
		{"/a%0Ab", false, 400, ""},
		{"/a%7f", false, 400, ""},
		{"/admin%3F/x", false, 400, ""},
		{"/admin%23/x", false, 400, ""},
		{"/public;v=1/x", false, 200, "/public;v=1/x"},
		{"/files/report%3F.txt", false, 200, "/files/report%3F.txt"},
		{"/files/a%23b", false, 200, "/files/a%23b"},
		{"/files/a%3Bb", false, 200, "/files/a%3Bb"},
	}
	for _, fe := range frontEnds {
		for _, tt := range tests {
			name := fe.name + tt.target
			if tt.auth {
				name += " with credentials"
			}
			t.Run(name, func(t *testing.T) {
				hdr := map[string]string{"Host": "app.test"}
				if tt.auth {
					hdr["Authorization"] = "Basic dTpw"
				}
				before := ps.hits.Load() + as.hits.Load()
				resp, body := doReq(t, fe.client, "GET", fe.base(f), tt.target, hdr, nil)
				if resp.StatusCode != tt.status {
					t.Fatalf("GET %s = %d %q; want %d", tt.target, resp.StatusCode, body, tt.status)
				}
				after := ps.hits.Load() + as.hits.Load()
				if tt.upURI == "" {
					if after != before {
						t.Errorf("upstream hits went %d → %d; want no upstream request", before, after)
					}
					return
				}
				s, uri := ps, tt.upURI
				if u, ok := strings.CutPrefix(uri, "admin:"); ok {
					s, uri = as, u
				}
				if r := s.last(); r == nil || r.RequestURI != uri {
					t.Errorf("upstream RequestURI = %v; want %q on that backend", r, uri)
				}
			})
		}
	}
}

// rawExchange writes req on a new raw connection to the HTTP/1.1 side of
// fe and reads one response; it reports the response, its body, whether
// the proxy then closed the connection, and how long the answer took.
func rawExchange(t *testing.T, fe frontEnd, f *fronts, req string) (*http.Response, string, bool, time.Duration) {
	t.Helper()
	c := dialFront(t, fe, f)
	start := time.Now()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	b, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	_, err = br.ReadByte()
	return resp, string(b), err == io.EOF, took
}

// h1FrontEnds are the front ends spoken to with raw HTTP/1.1 bytes.
func h1FrontEnds() []frontEnd {
	var out []frontEnd
	for _, fe := range frontEnds {
		if fe.proto == 1 {
			out = append(out, fe)
		}
	}
	return out
}

// bodyLengthFronts serves, for host app.test, a backend that answers
// "got N" for a request body of N bytes.
func bodyLengthFronts(t *testing.T) (*fronts, *seen) {
	t.Helper()
	up, s := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+strconv.Itoa(len(b)))
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addrOf(up))}
	return startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{}), s
}

// TestBareLineFeedRefused: a bare LF (or CR) anywhere in a request head
// gets 400 and the connection closes at once, including a head that only
// bare LFs end, which fasthttp alone waits on until the read timeout;
// bodies holding LF bytes are not affected (issue 11, RFC 9112 §2.2).
func TestBareLineFeedRefused(t *testing.T) {
	t.Parallel()
	f, s := bodyLengthFronts(t)
	refused := []string{
		"GET / HTTP/1.1\nHost: app.test\r\n\r\n",
		"GET / HTTP/1.1\nHost: app.test\n\n",
		"GET / HTTP/1.1\r\nHost: app.test\n\r\n",
		"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n\n",
		"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: 1\rX-B: 2\r\n\r\n",
		// The second request of a keep-alive connection.
		"GET / HTTP/1.1\r\nHost: app.test\r\n\r\nGET / HTTP/1.1\nHost: app.test\n\n",
		// A chunked body's trailer section.
		"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\n\r\n",
	}
	for _, fe := range h1FrontEnds() {
		for i, req := range refused {
			t.Run(fe.name+"/refused"+strconv.Itoa(i), func(t *testing.T) {
				before := s.hits.Load()
				c := dialFront(t, fe, f)
				start := time.Now()
				io.WriteString(c, req)
				br := bufio.NewReader(c)
				var statuses []int
				for {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						break
					}
					io.Copy(io.Discard, resp.Body)
					statuses = append(statuses, resp.StatusCode)
				}
				took := time.Since(start)
				if len(statuses) == 0 || statuses[len(statuses)-1] != 400 {
					t.Fatalf("%q: statuses %v; want the last one 400", req, statuses)
				}
				if took > 5*time.Second {
					t.Errorf("%q: answered and closed after %v; want at once", req, took)
				}
				if strings.Contains(req, "chunked") {
					return // the body streams: the backend saw the request begin, never its end
				}
				if got, want := s.hits.Load()-before, int64(len(statuses)-1); got != want {
					t.Errorf("%q: %d upstream requests; want %d (the refused one never reaches it)", req, got, want)
				}
			})
		}
		t.Run(fe.name+"/LF bytes in bodies", func(t *testing.T) {
			body := "a\nb\n\nc\r\n\n"
			req := "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body +
				"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n" +
				"\r\nGET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
			c := dialFront(t, fe, f)
			io.WriteString(c, req)
			br := bufio.NewReader(c)
			for i, want := range []string{"got 9", "got 9", "got 0"} {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(b) != want {
					t.Errorf("response %d = %d %q; want 200 %q", i, resp.StatusCode, b, want)
				}
			}
		})
	}
}

// TestChunkLineBounded: a chunk-size line longer than maxChunkLineBytes
// (chunk extensions included, RFC 9112 §7.1.1) gets 400 and the
// connection closes; when the line arrives with the request head the
// request never reaches the backend. A line of exactly the bound is
// served.
func TestChunkLineBounded(t *testing.T) {
	t.Parallel()
	f, s := bodyLengthFronts(t)
	const head = "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
	// line returns a chunk-size line for size 3 of n bytes before its CRLF.
	line := func(n int) string { return "3;x=" + strings.Repeat("a", n-4) + "\r\n" }
	for _, fe := range h1FrontEnds() {
		t.Run(fe.name+"/at the bound", func(t *testing.T) {
			req := strings.Replace(head, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1) + line(maxChunkLineBytes) + "abc\r\n0\r\n\r\n"
			resp, body, _, _ := rawExchange(t, fe, f, req)
			if resp.StatusCode != 200 || body != "got 3" {
				t.Errorf("chunk-size line of %d bytes: %d %q; want 200 \"got 3\"", maxChunkLineBytes, resp.StatusCode, body)
			}
		})
		for _, tt := range []struct {
			name, req string
			reaches   bool // the backend may see the request begin
		}{
			{"first line one over", head + line(maxChunkLineBytes+1) + "abc\r\n0\r\n\r\n", false},
			{"first line 64 KiB", head + line(64<<10) + "abc\r\n0\r\n\r\n", false},
			{"second line over", head + "3\r\nabc\r\n" + line(2*maxChunkLineBytes) + "abc\r\n0\r\n\r\n", true},
		} {
			t.Run(fe.name+"/"+tt.name, func(t *testing.T) {
				before := s.hits.Load()
				resp, body, closed, took := rawExchange(t, fe, f, tt.req)
				if resp.StatusCode != 400 || !closed {
					t.Errorf("%s: %d %q, closed %v; want 400, closed", tt.name, resp.StatusCode, body, closed)
				}
				if took > 5*time.Second {
					t.Errorf("%s: answered and closed after %v; want at once", tt.name, took)
				}
				if n := s.hits.Load() - before; n != 0 && !tt.reaches {
					t.Errorf("%s: reached the backend %d times; want never", tt.name, n)
				}
			})
		}
	}
}

// TestHTTPVersionsRefused: the HTTP/1.1 listener serves HTTP/1.0 and
// HTTP/1.1 only; any other version gets 505 from the proxy and never
// reaches a backend (issue 11, RFC 9110 §6.2).
func TestHTTPVersionsRefused(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	for _, fe := range h1FrontEnds() {
		for _, v := range []string{"HTTP/2.0", "HTTP/0.9", "HTTP/9.9", "HTTP/1.2"} {
			t.Run(fe.name+"/"+v, func(t *testing.T) {
				before := s.hits.Load()
				resp, body, closed, _ := rawExchange(t, fe, f, "GET / "+v+"\r\nHost: app.test\r\n\r\n")
				if resp.StatusCode != 505 || !strings.HasPrefix(body, "505 HTTP Version Not Supported\n") || !closed {
					t.Errorf("GET / %s = %d %q, closed %v; want 505 from the proxy, closed", v, resp.StatusCode, body, closed)
				}
				if n := s.hits.Load() - before; n != 0 {
					t.Errorf("GET / %s reached the backend %d times; want never", v, n)
				}
			})
		}
	}
}

// TestHTTP10ResponseFraming: an HTTP/1.0 client never gets
// Transfer-Encoding: a body of unknown length comes close-delimited, one
// of known length with Content-Length; the backend is spoken to in
// HTTP/1.1, the proxy's own version (issue 11, RFC 9112 §6.1, §6.3).
func TestHTTP10ResponseFraming(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream-Proto", r.Proto)
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush()
			io.WriteString(w, "chunk-one ")
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "chunk-two")
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	for _, fe := range h1FrontEnds() {
		for _, tt := range []struct{ path, body, length string }{
			{"/chunked", "chunk-one chunk-two", ""},
			{"/fixed", "chunk-two", "9"},
		} {
			t.Run(fe.name+tt.path, func(t *testing.T) {
				c := dialFront(t, fe, f)
				io.WriteString(c, "GET "+tt.path+" HTTP/1.0\r\nHost: app.test\r\n\r\n")
				all, err := io.ReadAll(c)
				if err != nil {
					t.Fatalf("reading until close: %v", err)
				}
				head, body, _ := strings.Cut(string(all), "\r\n\r\n")
				if strings.Contains(strings.ToLower(head), "transfer-encoding") {
					t.Errorf("HTTP/1.0 response head has Transfer-Encoding:\n%s", head)
				}
				if body != tt.body {
					t.Errorf("body = %q; want %q", body, tt.body)
				}
				resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(head+"\r\n\r\n")), nil)
				if err != nil {
					t.Fatal(err)
				}
				if g := resp.Header.Get("Content-Length"); g != tt.length {
					t.Errorf("Content-Length = %q; want %q", g, tt.length)
				}
				if g := resp.Header.Get("X-Upstream-Proto"); g != "HTTP/1.1" {
					t.Errorf("the backend saw %q; want HTTP/1.1", g)
				}
			})
		}
	}
}

// bodyCountingBackend answers "got N" after reading the whole body and adds
// every body byte it reads to n as it arrives.
func bodyCountingBackend(t *testing.T) (*httptest.Server, *atomic.Int64, *seen) {
	t.Helper()
	var n atomic.Int64
	up, s := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		var got int
		for {
			k, err := r.Body.Read(buf)
			got += k
			n.Add(int64(k))
			if err != nil {
				break
			}
		}
		io.WriteString(w, "got "+strconv.Itoa(got))
	})
	return up, &n, s
}

// TestFrontEndsBodyLimit: max_request_body_bytes holds for bodies of
// unknown length (chunked on HTTP/1.1, no content-length on HTTP/2): 413,
// and no byte beyond the limit reaches the backend; a chunk size over the
// limit gets 413 at once; a path's own limit replaces the global one
// (issue 11).
func TestFrontEndsBodyLimit(t *testing.T) {
	t.Parallel()
	up, got, s := bodyCountingBackend(t)
	cfg := &config.Config{}
	big, free := int64(4<<20), int64(0)
	app := config.Host{Name: "app.test", Paths: []config.Path{
		{Prefix: "/", Servers: []config.Server{{Address: addrOf(up), Weight: 1}}},
		{Prefix: "/big", Servers: []config.Server{{Address: addrOf(up), Weight: 1}}, MaxRequestBodyBytes: &big},
		{Prefix: "/free", Servers: []config.Server{{Address: addrOf(up), Weight: 1}}, MaxRequestBodyBytes: &free},
	}}
	cfg.Upstreams.Hosts = []config.Host{app}
	const limit = 1 << 20
	f := startFronts(t, cfg, Options{MaxRequestBodyBytes: limit}, UpstreamOptions{}, ListenOptions{})
	const size = 5 << 19 // 2.5 MiB
	for _, fe := range frontEnds {
		for _, tt := range []struct {
			path   string
			status int
		}{
			{"/", 413}, {"/big", 200}, {"/free", 200},
		} {
			t.Run(fe.name+tt.path, func(t *testing.T) {
				got.Store(0)
				var status int
				var body string
				if fe.proto == 1 {
					var b strings.Builder
					b.WriteString("POST " + tt.path + " HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n")
					chunk := strings.Repeat("z", 64<<10)
					for sent := 0; sent < size; sent += len(chunk) {
						b.WriteString("10000\r\n" + chunk + "\r\n")
					}
					b.WriteString("0\r\n\r\n")
					c := dialFront(t, fe, f)
					go io.WriteString(c, b.String())
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						t.Fatal(err)
					}
					rb, _ := io.ReadAll(resp.Body)
					status, body = resp.StatusCode, string(rb)
					if status == 413 && !resp.Close {
						t.Errorf("413 without Connection: close")
					}
				} else {
					req, _ := http.NewRequest("POST", fe.base(f)+tt.path, struct{ io.Reader }{io.LimitReader(zeroReader{}, size)})
					req.Host = "app.test"
					resp, err := fe.client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					rb, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					status, body = resp.StatusCode, string(rb)
				}
				if status != tt.status {
					t.Fatalf("POST %s with a %d-byte body of unknown length = %d %q; want %d", tt.path, size, status, body, tt.status)
				}
				if tt.status == 200 && body != "got "+strconv.Itoa(size) {
					t.Errorf("body = %q; want got %d", body, size)
				}
				if tt.status == 413 && got.Load() > limit {
					t.Errorf("the backend read %d body bytes; want at most the limit, %d", got.Load(), limit)
				}
			})
		}
		if fe.proto != 1 {
			continue
		}
		t.Run(fe.name+"/huge chunk size", func(t *testing.T) {
			before := s.hits.Load()
			// A 4 GiB chunk with a few bytes behind it, then silence.
			resp, body, closed, took := rawExchange(t, fe, f,
				"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n100000005\r\nabc")
			if resp.StatusCode != 413 || !closed || took > 5*time.Second {
				t.Errorf("a 4 GiB chunk = %d %q, closed %v after %v; want 413 and close at once", resp.StatusCode, body, closed, took)
			}
			if n := s.hits.Load() - before; n != 0 {
				t.Errorf("the backend saw %d requests; want none", n)
			}
		})
		t.Run(fe.name+"/huge chunk size mid-body", func(t *testing.T) {
			got.Store(0)
			c := dialFront(t, fe, f)
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n")
			waitFor(t, 10*time.Second, "the backend reading the first chunk", func() bool { return got.Load() == 16 })
			start := time.Now()
			io.WriteString(c, "100000005\r\nabc")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 413 || time.Since(start) > 5*time.Second {
				t.Errorf("a 4 GiB chunk mid-body = %d after %v; want 413 at once", resp.StatusCode, time.Since(start))
			}
			if got.Load() != 16 {
				t.Errorf("the backend read %d body bytes; want the first chunk's 16", got.Load())
			}
		})
	}
}

// TestFrontEndsExpectOverPathLimit: "Expect: 100-continue" with a
// declared length over the path's own limit gets 413 at once, never 100
// first (issue 11, RFC 9110 §10.1.1), with the proxy's usual answer.
func TestFrontEndsExpectOverPathLimit(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	small := int64(4)
	cfg := &config.Config{}
	h := oneRoute("small.test", "/", addrOf(up))
	h.Paths[0].MaxRequestBodyBytes = &small
	cfg.Upstreams.Hosts = []config.Host{h}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	for _, fe := range frontEnds {
		t.Run(fe.name, func(t *testing.T) {
			status, got100 := expectPOST(t, fe, f, "small.test") // a 5-byte body
			if status != 413 || got100 {
				t.Errorf("Expect: 100-continue over the path's limit: status %d, 100 Continue %v; want 413 without 100", status, got100)
			}
		})
	}
	t.Run("http1 answer", func(t *testing.T) {
		resp, body, closed, _ := rawExchange(t, frontEnds[0], f, "POST /e HTTP/1.1\r\nHost: small.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		if resp.StatusCode != 413 || !strings.HasPrefix(body, "413 Request Entity Too Large\nrequest_id: ") || resp.Header.Get("X-Request-Id") == "" || !closed {
			t.Errorf("answer = %d %q (X-Request-Id %q), closed %v; want the proxy's 413 body and request ID, closed",
				resp.StatusCode, body, resp.Header.Get("X-Request-Id"), closed)
		}
	})
	if n := s.hits.Load(); n != 0 {
		t.Errorf("the backend saw %d requests; want none", n)
	}
}

// TestFrontEndsStickyAcrossReload: a sticky cookie names its route by the
// route's stable key (host and path), not its position in the table, so
// it keeps pinning its backend across a reload that adds an unrelated
// host in front of it (issue 11).
func TestFrontEndsStickyAcrossReload(t *testing.T) {
	t.Parallel()
	a, sa := newUpstream(t, "a", nil)
	b, sb := newUpstream(t, "b", nil)
	app := config.Host{Name: "app.test", Paths: []config.Path{
		{Prefix: "/", Servers: []config.Server{{Address: addrOf(a), Weight: 1}, {Address: addrOf(b), Weight: 1}}},
	}}
	build := func(hosts ...config.Host) *config.Config {
		cfg := &config.Config{}
		cfg.Main.StickySecret = "s3cret"
		cfg.Upstreams.StickySessions = 600
		cfg.Upstreams.Hosts = hosts
		return cfg
	}
	f := startFronts(t, build(app), Options{}, UpstreamOptions{}, ListenOptions{})
	key := fmt.Sprintf("%016x.", pipeline.RouteKey("app.test", "/"))
	for i, fe := range frontEnds {
		t.Run(fe.name, func(t *testing.T) {
			// A cookie pinning backend b, the one a fresh pool picks second.
			var cookie string
			for range 4 {
				before := sb.hits.Load()
				resp, _ := doReq(t, fe.client, "GET", fe.base(f), "/", map[string]string{"Host": "app.test"}, nil)
				if sb.hits.Load() > before {
					cookie = strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
					break
				}
			}
			if v, ok := strings.CutPrefix(cookie, "backend_id="); !ok || !strings.HasPrefix(v, key) {
				t.Fatalf("sticky cookie = %q; want backend_id=%s<mac>, naming the route's key", cookie, key)
			}
			// Reload: unrelated hosts before app.test move its position.
			others := make([]config.Host, 0, i+1)
			for j := range i + 1 {
				others = append(others, oneRoute("other"+strconv.Itoa(j)+".test", "/", addrOf(a)))
			}
			snap, err := Compile(build(append(others, app)...), f.reg)
			if err != nil {
				t.Fatal(err)
			}
			f.e.Swap(snap)
			beforeA, beforeB := sa.hits.Load(), sb.hits.Load()
			for range 4 {
				resp, _ := doReq(t, fe.client, "GET", fe.base(f), "/", map[string]string{"Host": "app.test", "Cookie": cookie}, nil)
				if sc := resp.Header.Get("Set-Cookie"); sc != "" {
					t.Errorf("after the reload the cookie was replaced: Set-Cookie %q", sc)
				}
			}
			if da, db := sa.hits.Load()-beforeA, sb.hits.Load()-beforeB; da != 0 || db != 4 {
				t.Errorf("after the reload: a %d, b %d requests; want all 4 on b", da, db)
			}
		})
	}
}

// TestFrontEndsRedirectStatus: to_https and redirect_to answer 301 to GET
// and HEAD and 308 to any other method, so that a client repeats a POST as
// a POST (RFC 9110 §15.4.9); an HTTP/1.0 request without Host never gets
// "Location: https:///…" (issue 11).
func TestFrontEndsRedirectStatus(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	secure := oneRoute("secure.test", "/", addrOf(up))
	secure.Paths[0].Policy.ToHTTPS = boolp(true)
	def := oneRoute("DEFAULT", "/", addrOf(up))
	def.Paths[0].Policy.ToHTTPS = boolp(true)
	moved := config.Host{Name: "old.test", Paths: []config.Path{{Prefix: "/", RedirectTo: "https://new.test"}}}
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{secure, def, moved}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	for _, fe := range frontEnds {
		for _, method := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"} {
			want := 308
			if method == "GET" || method == "HEAD" {
				want = 301
			}
			for _, host := range []string{"secure.test", "old.test"} {
				if host == "secure.test" && fe.xfp == "https" {
					continue // to_https does nothing over TLS
				}
				t.Run(fe.name+"/"+method+"/"+host, func(t *testing.T) {
					var body io.Reader
					if method == "POST" || method == "PUT" || method == "PATCH" {
						body = strings.NewReader("payload")
					}
					resp, _ := doReq(t, fe.client, method, fe.base(f), "/p?q=1", map[string]string{"Host": host}, body)
					loc := "https://secure.test/p?q=1"
					if host == "old.test" {
						loc = "https://new.test/p?q=1"
					}
					if resp.StatusCode != want || resp.Header.Get("Location") != loc {
						t.Errorf("%s %s = %d, Location %q; want %d, %q", method, host, resp.StatusCode, resp.Header.Get("Location"), want, loc)
					}
				})
			}
		}
	}
	for _, fe := range h1FrontEnds() {
		if fe.xfp == "https" {
			continue
		}
		t.Run(fe.name+"/HTTP/1.0 without Host", func(t *testing.T) {
			before := s.hits.Load()
			resp, body, _, _ := rawExchange(t, fe, f, "GET /p HTTP/1.0\r\n\r\n")
			if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
				t.Errorf("HTTP/1.0 without Host on a to_https DEFAULT route = %d %q, Location %q; want 400 without Location",
					resp.StatusCode, body, resp.Header.Get("Location"))
			}
			if s.hits.Load() != before {
				t.Errorf("the request reached the backend")
			}
		})
	}
}

// TestFrontEndsForwardAuthDenyRelayed: a 401 or 403 from the forward-auth
// service reaches the client as the service sent it: its headers but the
// hop-by-hop ones, and its body, capped at 64 KiB (issue 11).
func TestFrontEndsForwardAuthDenyRelayed(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	big := strings.Repeat("y", 70<<10)
	authSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Set-Cookie", "rd=/app; Path=/")
		h.Set("Connection", "X-Private")
		h.Set("X-Private", "secret")
		h.Set("X-Login", "https://login.test/")
		if r.Header.Get("Authorization") == "Bearer big" {
			w.WriteHeader(403)
			io.WriteString(w, big)
			return
		}
		h.Set("WWW-Authenticate", `Bearer realm="sso"`)
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"login"}`)
	}))
	t.Cleanup(authSrv.Close)
	fwd := oneRoute("fwd.test", "/", addrOf(up))
	fwd.Paths[0].Policy.Authorization = &config.Auth{Type: "forward", Data: []string{authSrv.URL}}
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{fwd}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	for _, fe := range frontEnds {
		t.Run(fe.name, func(t *testing.T) {
			resp, body := doReq(t, fe.client, "GET", fe.base(f), "/x", map[string]string{"Host": "fwd.test", "Authorization": "Bearer bad"}, nil)
			if resp.StatusCode != 401 || body != `{"error":"login"}` {
				t.Errorf("denied = %d %q; want the service's 401 and body", resp.StatusCode, body)
			}
			for k, want := range map[string]string{
				"Content-Type": "application/json", "Set-Cookie": "rd=/app; Path=/", "X-Login": "https://login.test/",
				"Www-Authenticate": `Bearer realm="sso"`, "X-Private": "", "Content-Length": strconv.Itoa(len(body)),
			} {
				if fe.proto == 2 && k == "Content-Length" {
					continue // the client may not see it over HTTP/2
				}
				if g := strings.Join(resp.Header.Values(k), ","); g != want {
					t.Errorf("response %s = %q; want %q", k, g, want)
				}
			}
			if rid := resp.Header.Get("X-Request-Id"); len(rid) != 32 {
				t.Errorf("X-Request-Id = %q; want the proxy's", rid)
			}
			resp, body = doReq(t, fe.client, "GET", fe.base(f), "/x", map[string]string{"Host": "fwd.test", "Authorization": "Bearer big"}, nil)
			if resp.StatusCode != 403 || body != big[:64<<10] {
				t.Errorf("denied with a 70 KiB body = %d with %d body bytes; want 403 with the first 65536", resp.StatusCode, len(body))
			}
		})
	}
	if n := s.hits.Load(); n != 0 {
		t.Errorf("the backend saw %d requests; want none", n)
	}
}

// TestFrontEndsAccessLogOwnReplies: the access log records the real body
// size of the proxy's own answers (401, 404, 429, 502, 504), and a 502 or
// 504 line names the backend that failed (issue 11).
func TestFrontEndsAccessLogOwnReplies(t *testing.T) {
	t.Parallel()
	dead := closedAddr(t)
	release := make(chan struct{})
	slow, _ := newUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	up, _ := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	basic := oneRoute("basic.test", "/", addrOf(up))
	basic.Paths[0].Policy.Authorization = &config.Auth{Type: "basic", Data: []string{"u:p"}}
	cfg.Upstreams.Hosts = []config.Host{basic, oneRoute("dead.test", "/", dead), oneRoute("slow.test", "/", addrOf(slow))}
	for _, fe := range frontEnds {
		limited := oneRoute("limit-"+fe.name+".test", "/", addrOf(up))
		limited.Paths[0].Policy.RateLimit = 1
		cfg.Upstreams.Hosts = append(cfg.Upstreams.Hosts, limited)
	}
	var buf syncbuf.Buffer
	al, err := accesslog.New(&buf, accesslog.Options{Mode: accesslog.ModeAll, JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	var plog syncbuf.Buffer
	logger := slog.New(slog.NewJSONHandler(&plog, nil))
	f := startFronts(t, cfg, Options{AccessLog: al, Logger: logger}, UpstreamOptions{Timeout: 300 * time.Millisecond}, ListenOptions{})
	type sent struct {
		name, host   string
		status, size int
		upstream     string
	}
	byID := map[string]sent{}
	for _, fe := range frontEnds {
		for _, c := range []struct {
			host     string
			status   int
			upstream string
		}{
			{"basic.test", 401, ""}, {"nope.test", 404, ""}, {"dead.test", 502, dead}, {"slow.test", 504, addrOf(slow)},
			{"limit-" + fe.name + ".test", 200, addrOf(up)}, {"limit-" + fe.name + ".test", 429, ""},
		} {
			req, _ := http.NewRequest("GET", fe.base(f)+"/x", nil)
			req.Host = c.host
			resp, err := fe.client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", fe.name, c.host, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("%s %s = %d; want %d", fe.name, c.host, resp.StatusCode, c.status)
			}
			byID[resp.Header.Get("X-Request-Id")] = sent{fe.name, c.host, c.status, len(b), c.upstream}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := al.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	seenIDs := 0
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct {
			Status    int    `json:"status"`
			Bytes     int64  `json:"bytes"`
			Upstream  string `json:"upstream"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		s, ok := byID[rec.RequestID]
		if !ok {
			continue
		}
		seenIDs++
		if rec.Status != s.status || rec.Bytes != int64(s.size) || rec.Upstream != s.upstream {
			t.Errorf("%s %s: logged status %d, bytes %d, upstream %q; want %d, %d, %q",
				s.name, s.host, rec.Status, rec.Bytes, rec.Upstream, s.status, s.size, s.upstream)
		}
	}
	if seenIDs != len(byID) {
		t.Errorf("%d of %d requests logged", seenIDs, len(byID))
	}
	// The process log's line for each 502 and 504 names the backend too.
	failed := 0
	for _, line := range strings.Split(strings.TrimSpace(plog.String()), "\n") {
		var rec struct {
			Msg       string `json:"msg"`
			Status    int    `json:"status"`
			Backend   string `json:"backend"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "upstream request failed" {
			continue
		}
		if s, ok := byID[rec.RequestID]; ok {
			failed++
			if rec.Status != s.status || rec.Backend != s.upstream {
				t.Errorf("%s %s: process log status %d, backend %q; want %d, %q", s.name, s.host, rec.Status, rec.Backend, s.status, s.upstream)
			}
		}
	}
	if want := 2 * len(frontEnds); failed != want {
		t.Errorf("%d process log lines for failed upstream requests; want %d", failed, want)
	}
}

// TestFrontEndErrorsCounted: the answers of the HTTP/1.1 front end to
// requests it could not read, 408 for a head too slow and 431 for one too
// large, are counted in aralez_responses_total (issue 11).
func TestFrontEndErrorsCounted(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addrOf(up))}
	m := metrics.New()
	e, _ := newTestEngine(t, cfg, Options{Metrics: m}, UpstreamOptions{})
	fast := NewFastServer(e, ServerOptions{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second, MaxHeaderBytes: 4096})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, fast, e, ListenOptions{}) }()
	t.Cleanup(func() {
		cancel()
		fast.Shutdown()
		<-done
	})
	for _, c := range []struct {
		req    string
		status int
	}{
		{"GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + strings.Repeat("b", 8000) + "\r\n\r\n", 431},
		{"GET / HTTP/1.1\r\nHost: app.te", 408}, // and then silence
		{"GET / HTTP/1.1\nHost: app.test\n\n", 400},
	} {
		got := raw(t, ln.Addr().String(), c.req)
		if !strings.HasPrefix(got, strconv.Itoa(c.status)+" ") {
			t.Fatalf("answer = %q; want %d", got, c.status)
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`aralez_responses_total{status="408"} 1`, `aralez_responses_total{status="431"} 1`, `aralez_responses_total{status="400"} 1`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestRefusedRequestAnswerArrives: after a refused head (a bare LF)
// followed by more bytes than the proxy reads, the client still gets the
// 400: the connection is closed after the client's bytes are drained
// (lingering close), not reset with them unread, which can destroy the
// answer in flight (RFC 9112 §9.6).
func TestRefusedRequestAnswerArrives(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	junk := bytes.Repeat([]byte("x"), 256<<10)
	for _, fe := range h1FrontEnds() {
		for i := range 5 {
			c := dialFront(t, fe, f)
			// The client sends everything before it reads, as a
			// pipelining client may: by then the proxy has answered and
			// closed; a reset would have destroyed the answer.
			if _, err := c.Write(append([]byte("GET / HTTP/1.1\nHost: app.test\n\n"), junk...)); err != nil {
				t.Fatalf("%s #%d: write: %v (the proxy reset the connection)", fe.name, i, err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%s #%d: no answer: %v", fe.name, i, err)
			}
			if resp.StatusCode != 400 {
				t.Fatalf("%s #%d: status %d; want 400", fe.name, i, resp.StatusCode)
			}
			c.Close()
		}
	}
}
