package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
)

// TestCoarseDeadline walks the rule of coarseDeadline.next through the
// sequence fasthttp and the upstream connections produce: the same
// timeout asked for again and again is set once, an earlier deadline is
// always set, a later one is set once the one in force would fire more
// than an eighth of the timeout early... never early.
func TestCoarseDeadline(t *testing.T) {
	base := time.Unix(1_000_000, 0)
	var d coarseDeadline
	steps := []struct {
		name    string
		now     time.Duration // since base
		want    time.Duration // asked-for deadline, since base; -1: zero
		set     bool
		applied time.Duration // the deadline set, since base
	}{
		{"first 60 s deadline is set with a sixteenth on top", 0, 60 * time.Second, true, 63750 * time.Millisecond},
		{"the same timeout 1 s later fits", time.Second, 61 * time.Second, false, 0},
		{"3.7 s later still fits", 3700 * time.Millisecond, 63700 * time.Millisecond, false, 0},
		{"4 s later would fire early: set", 4 * time.Second, 64 * time.Second, true, 67750 * time.Millisecond},
		{"a 10 s deadline (header) is earlier: set", 5 * time.Second, 15 * time.Second, true, 15625 * time.Millisecond},
		{"a 60 s deadline (body) is later: set", 5 * time.Second, 65 * time.Second, true, 68750 * time.Millisecond},
		{"zero clears it", 6 * time.Second, -1, true, -1},
		{"zero again is nothing", 6 * time.Second, -1, false, 0},
		{"a past deadline is set as it is", 7 * time.Second, 6 * time.Second, true, 6 * time.Second},
		{"a later one after it is set", 8 * time.Second, 68 * time.Second, true, 71750 * time.Millisecond},
	}
	for _, s := range steps {
		var want time.Time
		if s.want >= 0 {
			want = base.Add(s.want)
		}
		now := base.Add(s.now)
		got, ok := d.next(want, func() time.Time { return now })
		if ok != s.set {
			t.Fatalf("%s: set = %v, want %v", s.name, ok, s.set)
		}
		if !ok {
			continue
		}
		if s.applied < 0 {
			if !got.IsZero() {
				t.Fatalf("%s: set %v, want zero", s.name, got)
			}
			continue
		}
		if !got.Equal(base.Add(s.applied)) {
			t.Fatalf("%s: set %v, want %v", s.name, got.Sub(base), s.applied)
		}
		if got.Before(want) {
			t.Fatalf("%s: set %v before the deadline asked for %v", s.name, got.Sub(base), s.want)
		}
	}
	d.forget()
	if _, ok := d.next(base.Add(70*time.Second), func() time.Time { return base.Add(9 * time.Second) }); !ok {
		t.Fatal("after forget, next did not set")
	}
}

// TestCoarseDeadlineFires checks that a read through a framingConn whose
// deadline was asked for over and over still times out, and not before
// the time asked for.
func TestCoarseDeadlineFires(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			buf := make([]byte, 1)
			_, _ = c.Read(buf) // until the client closes
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newFramingConn(raw)
	defer c.Close()
	const timeout = 200 * time.Millisecond
	var start time.Time
	for range 100 {
		start = time.Now()
		if err := c.SetReadDeadline(start.Add(timeout)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Read(make([]byte, 1))
	took := time.Since(start)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if took < timeout {
		t.Fatalf("timed out after %v, before the %v asked for", took, timeout)
	}
	if took > 10*timeout {
		t.Fatalf("timed out after %v, want about %v", took, timeout)
	}
}

// BenchmarkDeadline is the cost of asking for a 60 s read deadline on a
// loopback TCP connection, as fasthttp does on every request: "direct"
// sets it on the socket every time, "coarse" through a framingConn.
func BenchmarkDeadline(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	for _, v := range []struct {
		name string
		c    net.Conn
	}{{"direct", raw}, {"coarse", newFramingConn(raw)}} {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReadDeadlinesKeepAlive checks the read deadlines of a keep-alive
// connection through the listener's own connections (framingConn, and
// parkConn when idle connections are parked), where a header deadline
// asked for after a request came whole is not set (framingConn.readsDone):
// an idle connection outlives read_header_timeout (its idle deadline is
// set after each response), and a later request whose head trickles is
// still cut at read_header_timeout, not at the idle timeout.
func TestReadDeadlinesKeepAlive(t *testing.T) {
	t.Parallel()
	const header = 300 * time.Millisecond
	for _, release := range []time.Duration{-1, time.Hour} {
		up, _ := newUpstream(t, "a", nil)
		cfg := &config.Config{}
		cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
		e, _ := newTestEngine(t, cfg, Options{}, UpstreamOptions{})
		fast := NewFastServer(e, ServerOptions{ReadHeaderTimeout: header, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 8192})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, ln, fast, e, ListenOptions{IdleReleaseTimeout: release}) }()
		t.Cleanup(func() {
			cancel()
			_ = fast.Shutdown()
			<-done
		})

		pc := dialPark(t, ln.Addr().String())
		for i := range 2 {
			if st, _ := pc.send(t, parkGET); st != 200 {
				t.Fatalf("release %v: GET %d = %d; want 200", release, i, st)
			}
		}
		// Idle for over three header timeouts: the idle deadline holds.
		idleUntil := time.Now().Add(4 * header)
		for time.Now().Before(idleUntil) {
			_ = pc.c.SetReadDeadline(time.Now().Add(header / 4))
			if _, err := pc.br.Peek(1); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("release %v: idle connection: peek = %v; want our own read timeout (the proxy closed it or sent bytes)", release, err)
			}
		}
		_ = pc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if st, _ := pc.send(t, parkGET); st != 200 {
			t.Fatalf("release %v: GET after idling = %d; want 200", release, st)
		}
		// A trickled head on the same connection is cut; so is one after
		// an empty line that came in a read of its own (RFC 9112 §2.2
		// lets a client send one before a request line).
		for _, lead := range []string{"", "\r\n"} {
			c := pc
			if lead != "" {
				c = dialPark(t, ln.Addr().String())
				if st, _ := c.send(t, parkGET); st != 200 {
					t.Fatalf("release %v: GET = %d; want 200", release, st)
				}
				if _, err := io.WriteString(c.c, lead); err != nil {
					t.Fatal(err)
				}
				// Shapes the input only: were the empty line and the head
				// read together, this is the case above.
				time.Sleep(50 * time.Millisecond)
			}
			start := time.Now()
			if _, err := io.WriteString(c.c, "GET /x HTTP/1.1\r\nHost: app.test\r\n"); err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(c.br) // 408 and a close, or a close
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("release %v, lead %q: a trickled head held the connection %v; want about read_header_timeout (%v)", release, lead, d, header)
			}
			if len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 408")) {
				t.Errorf("release %v, lead %q: answer %q; want 408 or a close", release, lead, b)
			}
		}
	}
}

// TestMonoTime: a deadline made on the monotonic clock of monoNanos is
// the wall-clock time it stands for, to within the clock reads between.
func TestMonoTime(t *testing.T) {
	before := time.Now()
	at := monoTime(monoNanos() + int64(time.Minute))
	after := time.Now()
	if at.Before(before.Add(time.Minute)) || at.After(after.Add(time.Minute)) {
		t.Fatalf("monoTime(now + 1m) = %v; want between %v and %v", at, before.Add(time.Minute), after.Add(time.Minute))
	}
	if d := time.Until(at); d < 59*time.Second || d > time.Minute {
		t.Fatalf("time.Until(monoTime(now + 1m)) = %v; want about 1m", d)
	}
}
