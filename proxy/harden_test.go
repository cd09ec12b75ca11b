package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
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
