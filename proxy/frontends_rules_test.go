package proxy

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
)

// The tests of this file run one pipeline rule through every front end
// (HTTP/1.1 and HTTPS/1.1 on fasthttp, h2 and h2c on net/http) where the
// shared table of TestFrontEndsSameCases cannot express it (issue 10).

// TestFrontEndsTrustedForwarding: from a trusted peer, the X-Forwarded-For
// lines are joined in order and the peer appended; the first value of
// each other X-Forwarded-* header is kept (one line); X-Real-IP and the
// client's X-Request-Id are kept.
func TestFrontEndsTrustedForwarding(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", nil)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, UpstreamOptions{}, ListenOptions{})
	for _, fe := range frontEnds {
		t.Run(fe.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", fe.base(f)+"/t", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "app.test"
			req.Header["X-Forwarded-For"] = []string{"1.1.1.1", "2.2.2.2, 10.9.9.9"}
			req.Header["X-Forwarded-Proto"] = []string{"https", "http"}
			req.Header["X-Forwarded-Host"] = []string{"public.test"}
			req.Header["X-Forwarded-Port"] = []string{"443", "80"}
			req.Header["X-Forwarded-Prefix"] = []string{"/shop"}
			req.Header["X-Real-Ip"] = []string{"1.1.1.1"}
			req.Header["X-Request-Id"] = []string{"edge-4711"}
			resp, err := fe.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d; want 200", resp.StatusCode)
			}
			if g := resp.Header.Get("X-Request-Id"); g != "edge-4711" {
				t.Errorf("response X-Request-Id = %q; want the trusted client's edge-4711", g)
			}
			r := s.last()
			for k, want := range map[string]string{
				"X-Forwarded-For":    "1.1.1.1, 2.2.2.2, 10.9.9.9, 127.0.0.1",
				"X-Forwarded-Proto":  "https",
				"X-Forwarded-Host":   "public.test",
				"X-Forwarded-Port":   "443",
				"X-Forwarded-Prefix": "/shop",
				"X-Real-Ip":          "1.1.1.1",
				"X-Request-Id":       "edge-4711",
			} {
				if g := r.Header.Values(k); len(g) != 1 || g[0] != want {
					t.Errorf("upstream %s = %q; want one line %q", k, g, want)
				}
			}
		})
	}
}

// TestFrontEndsBackendDiesMidBody: a backend that dies while its body is
// relayed holds its in-flight count until the relay ends, and gives it
// back exactly once afterwards; the client never takes the truncated body
// for a whole one.
func TestFrontEndsBackendDiesMidBody(t *testing.T) {
	t.Parallel()
	proceed := make(chan struct{}, 1)
	up, _ := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		w.Write(make([]byte, 200<<10))
		w.(http.Flusher).Flush()
		<-proceed
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close() // the backend dies mid-body
		}
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	b := f.reg.Backends().Lookup(addrOf(up))
	for _, fe := range frontEnds {
		t.Run(fe.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", fe.base(f)+"/big", nil)
			req.Host = "app.test"
			resp, err := fe.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
				t.Fatalf("reading the first bytes: %v", err)
			}
			if n := b.InFlight(); n != 1 {
				t.Errorf("in-flight while the body is relayed = %d; want 1", n)
			}
			proceed <- struct{}{}
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Errorf("a body cut by the backend read to its end without error; want an error")
			}
			waitFor(t, 10*time.Second, "in-flight count back to 0", func() bool { return b.InFlight() == 0 })
		})
	}
	if n := b.InFlight(); n != 0 {
		t.Errorf("in-flight after every front end = %d; want 0", n)
	}
}

// TestFrontEndsClientCancelsUpload: a client that goes away in the middle
// of a streamed upload is its own fault: the backend is not marked failed
// and its in-flight count goes back to 0.
func TestFrontEndsClientCancelsUpload(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	up, _ := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("app.test", "/", addrOf(up))}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	b := f.reg.Backends().Lookup(addrOf(up))
	for _, fe := range frontEnds {
		t.Run(fe.name, func(t *testing.T) {
			got.Store(0)
			pr, pw := io.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", fe.base(f)+"/upload", pr)
			req.Host = "app.test"
			done := make(chan error, 1)
			go func() {
				resp, err := fe.client.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			chunk := make([]byte, 64<<10)
			go func() {
				for {
					if _, err := pw.Write(chunk); err != nil {
						return
					}
				}
			}()
			waitFor(t, 10*time.Second, "the backend receiving the upload", func() bool { return got.Load() > 0 })
			cancel()
			pw.CloseWithError(context.Canceled)
			<-done
			waitFor(t, 10*time.Second, "in-flight count back to 0", func() bool { return b.InFlight() == 0 })
			if st := b.Status(); st.Failures != 0 || st.Ejected {
				t.Errorf("backend after a client cancel: %d failures, ejected %v; want 0, false", st.Failures, st.Ejected)
			}
		})
	}
}

// TestFrontEndsExpectContinue: "Expect: 100-continue" runs the pipeline's
// Route and Admit once per request: with rate_limit 1 the first POST gets
// 100 and then 200, the next one 429 without 100 (RFC 9110 §10.1.1).
func TestFrontEndsExpectContinue(t *testing.T) {
	t.Parallel()
	up, s := newUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(b))
	})
	cfg := &config.Config{}
	for _, fe := range frontEnds {
		h := oneRoute("expect-"+fe.name+".test", "/", addrOf(up))
		h.Paths[0].Policy.RateLimit = 1
		cfg.Upstreams.Hosts = append(cfg.Upstreams.Hosts, h)
	}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	for _, fe := range frontEnds {
		t.Run(fe.name, func(t *testing.T) {
			host := "expect-" + fe.name + ".test"
			var statuses []int
			var continued []bool
			for range 2 {
				status, got100 := expectPOST(t, fe, f, host)
				statuses = append(statuses, status)
				continued = append(continued, got100)
			}
			if statuses[0] != 200 || !continued[0] {
				t.Errorf("first POST: status %d, 100 Continue %v; want 200 after 100", statuses[0], continued[0])
			}
			if statuses[1] != 429 || continued[1] {
				t.Errorf("second POST: status %d, 100 Continue %v; want 429 without 100", statuses[1], continued[1])
			}
		})
	}
	if n := s.hits.Load(); n != int64(len(frontEnds)) {
		t.Errorf("upstream requests = %d; want %d (one per front end)", n, len(frontEnds))
	}
}

// expectPOST sends a POST with "Expect: 100-continue" and a 5-byte body
// and reports the final status and whether 100 Continue came first. Over
// HTTP/1.1 it speaks raw bytes, so the interim response is seen as sent.
func expectPOST(t *testing.T, fe frontEnd, f *fronts, host string) (int, bool) {
	t.Helper()
	if fe.proto == 1 {
		c := dialFront(t, fe, f)
		io.WriteString(c, "POST /e HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got100 := resp.StatusCode == 100
		if got100 {
			io.WriteString(c, "hello")
			if resp, err = http.ReadResponse(br, nil); err != nil {
				t.Fatal(err)
			}
		}
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, got100
	}
	var got100 atomic.Bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got100Continue: func() { got100.Store(true) }})
	req, _ := http.NewRequestWithContext(ctx, "POST", fe.base(f)+"/e", strings.NewReader("hello"))
	req.Host = host
	req.Header.Set("Expect", "100-continue")
	resp, err := fe.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, got100.Load()
}
