package proxy

import (
	"net"
	"testing"
	"time"
)

// memConn is an in-memory client connection for the wrapper benchmarks:
// every Read returns one whole GET, writes and deadlines cost nothing.
type memConn struct{ net.Conn }

var benchGET = []byte("GET /x HTTP/1.1\r\nHost: app.test\r\nUser-Agent: bench\r\n\r\n")

func (memConn) Read(p []byte) (int, error)       { return copy(p, benchGET), nil }
func (memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (memConn) SetReadDeadline(time.Time) error  { return nil }
func (memConn) SetWriteDeadline(time.Time) error { return nil }
func (memConn) Close() error                     { return nil }

// BenchmarkConnRequestCycle is what the HTTP/1.1 front end's connection
// wrapper adds to one keep-alive request as fasthttp drives it: the idle
// deadline, the read of the request, the header deadline, the response's
// write. "framing" is the wrapper without parking, "park" the one of a
// listener with IdleReleaseTimeout (park.go): the difference is the cost
// of parking to a busy connection (issue 16).
func BenchmarkConnRequestCycle(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	p := newParker(func(net.Conn) {}, nil, time.Hour)
	defer p.stop()
	for _, tc := range []struct {
		name string
		c    net.Conn
	}{
		{"framing", newFramingConn(memConn{})},
		{"park", newParkConn(memConn{}, p)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 4096)
			base := time.Now()
			i := 0
			for b.Loop() {
				i++
				now := base.Add(time.Duration(i) * time.Microsecond)
				_ = tc.c.SetReadDeadline(now.Add(time.Minute)) // idle
				if _, err := tc.c.Read(buf); err != nil {
					b.Fatal(err)
				}
				_ = tc.c.SetReadDeadline(now.Add(10 * time.Second)) // header
				if _, err := tc.c.Write(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
