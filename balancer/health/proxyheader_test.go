package health

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/balancer"
)

// headerListener passes on only the connections that open with want (a
// PROXY header), as a backend behind send_proxy_protocol does; it closes
// the others and counts both.
type headerListener struct {
	net.Listener
	want          []byte
	good, refused atomic.Int64
}

func (l *headerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		got := make([]byte, len(l.want))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, l.want) {
			l.refused.Add(1)
			c.Close()
			continue
		}
		c.SetReadDeadline(time.Time{})
		l.good.Add(1)
		return c, nil
	}
}

// TestProxyHeaderProbes runs detection and health probes against TLS
// backends that require a PROXY header: with the backend's ProxyHeader
// set, every connection opens with LOCAL (v2) or UNKNOWN (v1), detection
// finds TLS and the backend stays up; plain Detect, without the header,
// is refused (issue 17).
func TestProxyHeaderProbes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		version uint8
		want    string
	}{{1, "PROXY UNKNOWN\r\n"}, {2, "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"}} {
		rec := newRecorder(http.StatusOK)
		s := httptest.NewUnstartedServer(rec)
		s.Config.ErrorLog = log.New(io.Discard, "", 0)
		hl := &headerListener{Listener: s.Listener, want: []byte(tt.want)}
		s.Listener = hl
		s.StartTLS()
		t.Cleanup(s.Close)
		b := balancer.NewBackend(s.Listener.Addr().String())

		if p, _ := Detect(context.Background(), b.Addr(), "", time.Second); p.Has(balancer.ProtoTLS) {
			t.Errorf("v%d: Detect without a header = %v; want the backend to refuse it", tt.version, p)
		}
		b.SetProxyHeader(tt.version)
		if p, err := DetectBackend(context.Background(), b, "", 2*time.Second); err != nil || p != balancer.ProtoTLS|balancer.ProtoHTTP1 {
			t.Errorf("v%d: DetectBackend = %v, %v; want TLS HTTP/1.1", tt.version, p, err)
		}
		h, _ := newChecker(t, HealthOptions{Interval: 2 * time.Second, Fall: 1})
		h.SetTargets([]Target{{Backend: b, Host: "app.example.com", Path: "/"}})
		for round := 1; round <= 2; round++ {
			h.CheckNow(context.Background())
			if !b.Up() {
				t.Fatalf("v%d round %d: backend down (%s); want up", tt.version, round, b.Status().LastError)
			}
		}
		if rec.hits.Load() != 2 || hl.good.Load() < 3 {
			t.Errorf("v%d: %d probes answered over %d connections with the header; want 2 over at least 3", tt.version, rec.hits.Load(), hl.good.Load())
		}
	}
}
