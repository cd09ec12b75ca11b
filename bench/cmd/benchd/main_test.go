package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeAndLoad runs the upstream on real loopback listeners and drives
// each of its endpoints with the load clients for a fraction of a second.
func TestServeAndLoad(t *testing.T) {
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"-http", httpAddr, "-grpc", grpcAddr, "-name", "t1"}, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not come up in 10 s")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	}()

	resp, err := http.Get("http://" + httpAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) != 100 || resp.Header.Get("X-Upstream") != "t1" {
		t.Errorf("GET / = %d bytes, X-Upstream %q; want 100 bytes, t1", len(body), resp.Header.Get("X-Upstream"))
	}
	resp, err = http.Post("http://"+httpAddr+"/upload", "application/octet-stream", bytes.NewReader(make([]byte, 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "1048576" {
		t.Errorf("POST /upload 1 MiB = %q; want 1048576", body)
	}

	for _, tc := range []struct {
		name string
		run  func(w io.Writer) error
	}{
		{"grpc", func(w io.Writer) error {
			return grpcLoad([]string{"-addr", grpcAddr, "-c", "4", "-conns", "2", "-d", "200ms", "-size", "64"}, w)
		}},
		{"idle", func(w io.Writer) error {
			return idleConns([]string{"-addr", httpAddr, "-n", "50", "-hold", "100ms"}, w)
		}},
		{"ws", func(w io.Writer) error {
			return wsLoad([]string{"-url", "ws://" + httpAddr + "/ws", "-c", "4", "-d", "200ms", "-size", "64"}, w)
		}},
	} {
		var out bytes.Buffer
		if err := tc.run(&out); err != nil {
			t.Fatalf("%s load: %v", tc.name, err)
		}
		var res loadResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%s load output %q: %v", tc.name, out.String(), err)
		}
		if tc.name == "idle" && res.Requests != 50 {
			t.Errorf("idle load held %v connections; want 50", res.Requests)
		}
		if res.Requests < 1 || res.Errors != 0 || res.P50us <= 0 || res.P50us > res.P999us {
			t.Errorf("%s load = %+v; want requests, no error, 0 < p50 <= p99.9", tc.name, res)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:1", true}, {"[::1]:1", true}, {"localhost:1", true},
		{"10.0.0.1:1", false}, {"192.168.1.1:80", false}, {"example:1", false}, {"nope", false},
	} {
		err := loopbackOnly(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("loopbackOnly(%q) = %v; want ok=%v", tc.addr, err, tc.ok)
		}
	}
	if err := wsLoad([]string{"-url", "ws://10.1.2.3:80/ws", "-d", "10ms"}, io.Discard); err == nil {
		t.Errorf("wsLoad to 10.1.2.3 = nil error; want a refusal")
	}
	if err := grpcLoad([]string{"-addr", "10.1.2.3:80", "-d", "10ms"}, io.Discard); err == nil {
		t.Errorf("grpcLoad to 10.1.2.3 = nil error; want a refusal")
	}
}
