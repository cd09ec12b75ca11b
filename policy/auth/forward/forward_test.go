package forward

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/policy/auth"
)

// authServer runs handler on 127.0.0.1 and records the last request's
// method and headers.
type authServer struct {
	*httptest.Server
	method atomic.Value // string
	header atomic.Value // http.Header
	conns  atomic.Int64 // connections accepted
}

func newAuthServer(t *testing.T, handler http.HandlerFunc) *authServer {
	t.Helper()
	s := &authServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.method.Store(r.Method)
		s.header.Store(r.Header.Clone())
		handler(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func newForward(t *testing.T, url string, o auth.ForwardOptions) *Client {
	t.Helper()
	f, err := New(url, o)
	if err != nil {
		t.Fatalf("New(%q) = %v", url, err)
	}
	t.Cleanup(f.Close)
	return f
}

var fwdReq = auth.ForwardRequest{
	Method:        "POST",
	Proto:         "https",
	Host:          "app.example.com",
	URI:           "/private/page?x=1",
	ClientAddr:    "203.0.113.7",
	Authorization: "Bearer t0k3n",
	Cookie:        "session=abc",
}

func TestForwardAllowWithHeaders(t *testing.T) {
	t.Parallel()
	s := newAuthServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Remote-User", "alice")
		w.Header().Add("Remote-Groups", "admins")
		w.Header().Add("Remote-Groups", "dev")
		w.Header().Set("X-Not-Listed", "no")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok"))
	})
	f := newForward(t, s.URL+"/verify?rd=1", auth.ForwardOptions{})
	for i := range 3 {
		req := fwdReq
		got := f.Check(context.Background(), &req)
		want := auth.ForwardResult{Decision: auth.Allow, Status: 200, Headers: []auth.HeaderValue{
			{Name: "Remote-User", Value: "alice"}, {Name: "Remote-Groups", Value: "admins"}, {Name: "Remote-Groups", Value: "dev"},
		}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("call %d: Check = %+v; want %+v", i, got, want)
		}
	}
	if m := s.method.Load(); m != http.MethodGet {
		t.Fatalf("auth service saw method %v; want GET", m)
	}
	h := s.header.Load().(http.Header)
	for name, want := range map[string]string{
		"X-Forwarded-Method": "POST",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-Host":   "app.example.com",
		"X-Forwarded-Uri":    "/private/page?x=1",
		"X-Forwarded-For":    "203.0.113.7",
		"Authorization":      "Bearer t0k3n",
		"Cookie":             "session=abc",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("auth service saw %s = %q; want %q", name, got, want)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("auth service accepted %d connections for 3 calls; want 1 (pooled)", n)
	}
}

func TestForwardHeadAndEmptyFields(t *testing.T) {
	t.Parallel()
	s := newAuthServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Remote-User", "alice")
		w.WriteHeader(http.StatusNoContent)
	})
	f := newForward(t, s.URL, auth.ForwardOptions{ResponseHeaders: []string{}})
	got := f.Check(context.Background(), &auth.ForwardRequest{Method: "HEAD", URI: "/"})
	if got.Decision != auth.Allow || got.Status != 204 || got.Headers != nil {
		t.Fatalf("Check = %+v; want allow, 204, no headers", got)
	}
	if m := s.method.Load(); m != http.MethodHead {
		t.Fatalf("auth service saw method %v; want HEAD", m)
	}
	h := s.header.Load().(http.Header)
	for _, name := range []string{"Authorization", "Cookie", "X-Forwarded-For"} {
		if _, ok := h[name]; ok {
			t.Errorf("auth service saw %s for an empty field; want none", name)
		}
	}
}

func TestForwardDecisions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    auth.ForwardResult
	}{
		{
			name: "302 to login",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://login.example.com/?rd=x", http.StatusFound)
			},
			want: auth.ForwardResult{Decision: auth.Redirect, Status: 302, Location: "https://login.example.com/?rd=x"},
		},
		{
			name: "401 with challenge",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("WWW-Authenticate", `Basic realm="sso"`)
				w.Header().Set("Remote-User", "mallory")
				w.WriteHeader(http.StatusUnauthorized)
			},
			want: auth.ForwardResult{Decision: auth.Deny, Status: 401, WWWAuthenticate: `Basic realm="sso"`},
		},
		{
			name:    "403",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) },
			want:    auth.ForwardResult{Decision: auth.Deny, Status: 403},
		},
		{
			name:    "500 fails closed",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
			want:    auth.ForwardResult{Decision: auth.Unavailable, Status: 503},
		},
		{
			name:    "404 fails closed",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) },
			want:    auth.ForwardResult{Decision: auth.Unavailable, Status: 503},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newAuthServer(t, tt.handler)
			f := newForward(t, s.URL, auth.ForwardOptions{})
			req := fwdReq
			got := f.Check(context.Background(), &req)
			if (got.Err != nil) != (tt.want.Decision == auth.Unavailable) {
				t.Fatalf("Check error = %v; want one only for unavailable", got.Err)
			}
			got.Err = nil
			if got.Decision == auth.Deny {
				// The relayed headers and body: TestForwardDenyRelay.
				if got.Body == nil || got.Reply == nil {
					t.Errorf("Check(deny) Body %q, Reply %v; want both set", got.Body, got.Reply)
				}
				got.Body, got.Reply = nil, nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Check = %+v; want %+v", got, tt.want)
			}
		})
	}
}

// TestForwardDenyRelay: a 401 or 403 of the auth service comes back with
// its headers, but the hop-by-hop ones and Content-Length, and its body
// up to 64 KiB, for the proxy to relay (issue 11).
func TestForwardDenyRelay(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", auth.MaxForwardReplyBytes+100)
	s := newAuthServer(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("WWW-Authenticate", `Bearer realm="sso"`)
		h.Add("WWW-Authenticate", `Basic realm="sso"`)
		h.Set("Content-Type", "application/json")
		h.Set("Set-Cookie", "rd=/app; Path=/")
		h.Set("Connection", "X-Private")
		h.Set("X-Private", "secret")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("X-Login", "https://login.test/")
		if r.Header.Get("Authorization") == "big" {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, big)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"login"}`)
	})
	f := newForward(t, s.URL, auth.ForwardOptions{})
	req := fwdReq
	got := f.Check(context.Background(), &req)
	if got.Decision != auth.Deny || got.Status != 401 || string(got.Body) != `{"error":"login"}` {
		t.Fatalf("Check = %v %d %q; want deny, 401, the service's body", got.Decision, got.Status, got.Body)
	}
	relayed := map[string][]string{}
	for _, hv := range got.Reply {
		relayed[hv.Name] = append(relayed[hv.Name], hv.Value)
	}
	for name, want := range map[string][]string{
		"Www-Authenticate": {`Bearer realm="sso"`, `Basic realm="sso"`},
		"Content-Type":     {"application/json"},
		"Set-Cookie":       {"rd=/app; Path=/"},
		"X-Login":          {"https://login.test/"},
	} {
		if !reflect.DeepEqual(relayed[name], want) {
			t.Errorf("relayed %s = %q; want %q", name, relayed[name], want)
		}
	}
	for _, name := range []string{"Connection", "X-Private", "Keep-Alive", "Content-Length"} {
		if v, ok := relayed[name]; ok {
			t.Errorf("relayed %s = %q; want it dropped", name, v)
		}
	}
	req.Authorization = "big"
	got = f.Check(context.Background(), &req)
	if got.Status != 403 || string(got.Body) != big[:auth.MaxForwardReplyBytes] {
		t.Errorf("Check(a big 403) = %d with %d body bytes; want 403 with the first %d", got.Status, len(got.Body), auth.MaxForwardReplyBytes)
	}
}

func TestForwardDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	f := newForward(t, "http://"+addr+"/auth", auth.ForwardOptions{Timeout: 5 * time.Second})
	req := fwdReq
	got := f.Check(context.Background(), &req)
	if got.Decision != auth.Unavailable || got.Status != 503 || got.Err == nil {
		t.Fatalf("Check(closed port) = %+v; want unavailable, 503, an error", got)
	}
}

func TestForwardSlow(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := newAuthServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(30 * time.Second):
		}
		w.WriteHeader(http.StatusOK)
	})
	t.Cleanup(func() { close(release) }) // runs before s.Close
	f := newForward(t, s.URL, auth.ForwardOptions{Timeout: 100 * time.Millisecond})
	start := time.Now()
	req := fwdReq
	got := f.Check(context.Background(), &req)
	if got.Decision != auth.Unavailable || got.Status != 503 || !errors.Is(got.Err, context.DeadlineExceeded) {
		t.Fatalf("Check(slow) = %+v; want unavailable, 503, deadline exceeded", got)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Check(slow) took %v; want about the 100ms timeout", d)
	}
}

func TestForwardCallerContext(t *testing.T) {
	t.Parallel()
	s := newAuthServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	f := newForward(t, s.URL, auth.ForwardOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := fwdReq
	if got := f.Check(ctx, &req); got.Decision != auth.Unavailable {
		t.Fatalf("Check(cancelled context) = %+v; want unavailable", got)
	}
}

func TestNewForwardErrors(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "auth.example.com/verify", "/verify", "ftp://auth.example.com/", "http://", "http://[::1"} {
		if _, err := New(u, auth.ForwardOptions{}); !errors.Is(err, auth.ErrForwardURL) {
			t.Errorf("New(%q) = %v; want ErrForwardURL", u, err)
		}
	}
}

func TestDecisionString(t *testing.T) {
	t.Parallel()
	var zero auth.Decision
	if zero != auth.Unavailable {
		t.Fatalf("zero Decision = %v; want unavailable (fail closed)", zero)
	}
	for d, want := range map[auth.Decision]string{auth.Allow: "allow", auth.Redirect: "redirect", auth.Deny: "deny", auth.Unavailable: "unavailable", 9: "unknown"} {
		if got := d.String(); got != want {
			t.Errorf("Decision(%d).String() = %q; want %q", d, got, want)
		}
	}
}

// TestForwardRejectsHeaderInjection checks that a client value carrying a
// line break never reaches the auth service as an extra header: the call
// fails closed instead.
func TestForwardRejectsHeaderInjection(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	s := newAuthServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	f := newForward(t, s.URL, auth.ForwardOptions{})
	req := fwdReq
	req.Authorization = "Bearer x\r\nRemote-User: admin"
	if got := f.Check(context.Background(), &req); got.Decision != auth.Unavailable {
		t.Fatalf("Check(value with CRLF) = %+v; want unavailable", got)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("auth service got %d calls; want 0", n)
	}
}
