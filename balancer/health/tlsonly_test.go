package health

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/internal/tlsonlytest"
)

// TestHealthTLSOnlyBackend: a backend that speaks only TLS and never
// answers clear text is detected as TLS before its first health check
// and probed over TLS; its protocol stays known even when the probe
// fails (a HEAD it does not answer), so that the proxy reaches it over
// TLS (issue 11: such a backend was probed and then reached over plain
// HTTP, marked down, and every request got 502).
func TestHealthTLSOnlyBackend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		noHEAD bool
		method string
		wantUp bool
	}{
		{"answers the probe", false, http.MethodHead, true},
		{"answers GET only, probed with GET", true, http.MethodGet, true},
		{"does not answer the HEAD probe", true, http.MethodHead, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := tlsonlytest.Start(t, tlsonlytest.Options{NoHEAD: tt.noHEAD})
			b := balancer.NewBackend(be.Addr)
			// Detection gets Timeout and its TLS attempt half of it: generous,
			// since a -race build on a busy machine is slow to handshake.
			h, _ := newChecker(t, HealthOptions{Interval: 2 * time.Second, Timeout: 1600 * time.Millisecond, Rise: 1, Fall: 1, Method: tt.method})
			h.SetTargets([]Target{{Backend: b}})
			for round := 1; round <= 2; round++ {
				h.CheckNow(context.Background())
				if want := balancer.ProtoTLS | balancer.ProtoHTTP1; b.Proto() != want {
					t.Fatalf("round %d: Proto() = %v; want %v (detected by the TLS handshake, whatever the probe got)", round, b.Proto(), want)
				}
				if b.Up() != tt.wantUp {
					t.Fatalf("round %d: Up() = %v; want %v (%s)", round, b.Up(), tt.wantUp, b.Status().LastError)
				}
			}
			if n := be.PlainConns(); n != 0 {
				t.Errorf("backend got %d clear-text connections from the checker; want 0 (probed over TLS only)", n)
			}
		})
	}
}
