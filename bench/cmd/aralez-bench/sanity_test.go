package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

// serveOn runs h on a real 127.0.0.1 listener (HTTP/1.1 and h2c) until the
// test ends and returns its address.
func serveOn(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestSanity(t *testing.T) {
	t.Parallel()
	enforcing := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Served-Via", "aralez")
	}
	lax := func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Served-Via", "aralez") }
	noHeader := func(w http.ResponseWriter, r *http.Request) {}
	hostRouting := func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.Host, ".bench.test") || r.Host == "unknown.bench.test" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("X-Served-Via", "aralez")
	}
	cases := buildCases([]int{1, 5, 7, 8}, "tok", nil)
	byID := map[string]tcase{}
	for _, c := range cases {
		byID[c.id] = c
	}
	tests := []struct {
		name    string
		h       http.HandlerFunc
		caseID  string
		kind    int
		wantErr string
	}{
		{"h1 ok", lax, "h1 100B c50", kindOurs, ""},
		{"h1 missing header", noHeader, "h1 100B c50", kindOurs, `X-Served-Via ""; want "aralez"`},
		{"direct needs no header", noHeader, "h1 100B c50", kindDirect, ""},
		{"h2c ok", lax, "h2c c50x10", kindOurs, ""},
		{"jwt enforced", enforcing, "h1 ratelimit+JWT c50", kindOurs, ""},
		{"jwt not enforced", lax, "h1 ratelimit+JWT c50", kindOurs, "JWT authorization is not enforced"},
		{"jwt refuse check is ours only", lax, "h1 ratelimit+JWT c50", kindPeer, ""},
		{"hosts routed", hostRouting, "h1 10k hosts c50", kindPeer, ""},
		{"unknown host routed", lax, "h1 10k hosts c50", kindPeer, "not in the config was routed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := serveOn(t, tt.h)
			s := &suite{ctx: context.Background()}
			tg := &target{targetSpec: targetSpec{name: "aralez", kind: tt.kind, http: addr, h2c: addr}}
			c := byID[tt.caseID]
			if tt.kind == kindDirect {
				c.direct = addr
			}
			err := s.sanity(c, tg)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("sanity(%s) = %v; want nil", tt.caseID, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("sanity(%s) = %v; want %q", tt.caseID, err, tt.wantErr)
			}
		})
	}
}

func TestSanityWrongProtocol(t *testing.T) {
	t.Parallel()
	// An HTTP/1.1-only listener must fail the h2c check.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-Via", "aralez")
	}), Protocols: &p}
	go srv.Serve(ln)
	defer srv.Close()
	var h2c tcase
	for _, c := range buildCases([]int{5}, "", nil) {
		if c.tool == "h2load" {
			h2c = c
		}
	}
	s := &suite{ctx: context.Background()}
	tg := &target{targetSpec: targetSpec{name: "aralez", kind: kindOurs, http: ln.Addr().String(), h2c: ln.Addr().String()}}
	if err := s.sanity(h2c, tg); err == nil {
		t.Errorf("sanity(h2c) against an HTTP/1.1-only server = nil; want an error")
	}
}
