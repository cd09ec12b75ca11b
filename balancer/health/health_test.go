package health

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/internal/syncbuf"
)

// logBuf collects log output for assertions.
type logBuf struct{ syncbuf.Buffer }

func (l *logBuf) count(s string) int { return strings.Count(l.String(), s) }

// recorder is a backend handler with a settable status that records
// the last request it saw.
type recorder struct {
	status atomic.Int32
	mu     sync.Mutex
	last   struct{ method, host, path, proto, sni string }
	hits   atomic.Int64
}

func newRecorder(status int) *recorder {
	r := &recorder{}
	r.status.Store(int32(status))
	return r
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == "PRI" {
		// net/http hands the HTTP/2 preface sent by h2c detection to
		// handlers as a request; it is not a probe.
		w.WriteHeader(http.StatusHTTPVersionNotSupported)
		return
	}
	rec.hits.Add(1)
	rec.mu.Lock()
	rec.last.method, rec.last.host, rec.last.path, rec.last.proto = r.Method, r.Host, r.URL.Path, r.Proto
	rec.last.sni = ""
	if r.TLS != nil {
		rec.last.sni = r.TLS.ServerName
	}
	rec.mu.Unlock()
	w.WriteHeader(int(rec.status.Load()))
}

func (rec *recorder) lastRequest() struct{ method, host, path, proto, sni string } {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.last
}

func newChecker(t *testing.T, o HealthOptions) (*HealthChecker, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	o.Logger = slog.New(slog.NewTextHandler(lb, nil))
	return NewHealthChecker(o), lb
}

// run starts h.Run and stops it when the test ends.
func run(t *testing.T, h *HealthChecker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHealthRiseFall(t *testing.T) {
	t.Parallel()
	rec := newRecorder(http.StatusOK)
	s := newPlainServer(t, rec)
	b := balancer.NewBackend(s.Listener.Addr().String())
	h, logs := newChecker(t, HealthOptions{Interval: time.Second, Rise: 2, Fall: 3})
	h.SetTargets([]Target{{Backend: b}})
	ctx := context.Background()

	h.CheckNow(ctx)
	if !b.Up() || b.Proto() != balancer.ProtoHTTP1 || b.LastCheck().IsZero() {
		t.Fatalf("after a passing round: Up=%v Proto=%v LastCheck=%v; want up, http1, set", b.Up(), b.Proto(), b.LastCheck())
	}
	rec.status.Store(http.StatusServiceUnavailable)
	for i := range 3 {
		if !b.Up() {
			t.Fatalf("down after %d failing rounds; want Fall=3", i)
		}
		h.CheckNow(ctx)
	}
	if b.Up() {
		t.Fatalf("Up after 3 failing rounds = true; want false")
	}
	if st := b.Status(); !strings.Contains(st.LastError, "status 503") {
		t.Fatalf("Status().LastError = %q; want it to name status 503", st.LastError)
	}
	h.CheckNow(ctx)
	// Any status below 500 is healthy, 404 included.
	rec.status.Store(http.StatusNotFound)
	h.CheckNow(ctx)
	if b.Up() {
		t.Fatalf("Up after 1 passing round = true; want Rise=2")
	}
	h.CheckNow(ctx)
	if !b.Up() || b.Status().LastError != "" {
		t.Fatalf("after 2 passing rounds: Up=%v LastError=%q; want up, no error", b.Up(), b.Status().LastError)
	}
	if n := logs.count("backend down"); n != 1 {
		t.Errorf("%d \"backend down\" lines; want 1:\n%s", n, logs)
	}
	if n := logs.count("backend up"); n != 1 {
		t.Errorf("%d \"backend up\" lines; want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "reason=\"status 503\"") {
		t.Errorf("down line lacks its reason:\n%s", logs)
	}
}

func TestHealthRunStatusAndListener(t *testing.T) {
	t.Parallel()
	rec := newRecorder(http.StatusOK)
	s := httptest.NewUnstartedServer(rec)
	s.Start()
	addr := s.Listener.Addr().String()
	b := balancer.NewBackend(addr)
	h, _ := newChecker(t, HealthOptions{Interval: 50 * time.Millisecond})
	h.SetTargets([]Target{{Backend: b, Host: "app.test", Path: "/hc"}})
	run(t, h)

	waitFor(t, "first probe", func() bool { return !b.LastCheck().IsZero() })
	rec.status.Store(http.StatusInternalServerError)
	waitFor(t, "down on 500", func() bool { return !b.Up() })
	rec.status.Store(http.StatusOK)
	waitFor(t, "up on 200", func() bool { return b.Up() })

	s.Close()
	waitFor(t, "down with the listener closed", func() bool { return !b.Up() })
	if e := b.Status().LastError; !strings.Contains(e, "dialing") {
		t.Errorf("LastError = %q; want a dial error", e)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	s2 := &http.Server{Handler: rec}
	go s2.Serve(ln)
	t.Cleanup(func() { s2.Close() })
	waitFor(t, "up with the listener back", func() bool { return b.Up() })
	if got := rec.lastRequest(); got.host != "app.test" || got.path != "/hc" || got.method != http.MethodHead {
		t.Errorf("backend saw %+v; want HEAD app.test /hc", got)
	}
}

func TestHealthProtocols(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		start     func(t *testing.T, h http.Handler) *httptest.Server
		proto     balancer.Proto
		wireProto string
	}{
		{name: "http1", start: newPlainServer, proto: balancer.ProtoHTTP1, wireProto: "HTTP/1.1"},
		{name: "h2c", start: newH2CServer, proto: balancer.ProtoH2C, wireProto: "HTTP/2.0"},
		{name: "tls http1", start: func(t *testing.T, h http.Handler) *httptest.Server { return newTLSServer(t, h, false) },
			proto: balancer.ProtoTLS | balancer.ProtoHTTP1, wireProto: "HTTP/1.1"},
		{name: "tls h2", start: func(t *testing.T, h http.Handler) *httptest.Server { return newTLSServer(t, h, true) },
			proto: balancer.ProtoTLS | balancer.ProtoH2, wireProto: "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(http.StatusOK)
			s := tt.start(t, rec)
			b := balancer.NewBackend(s.Listener.Addr().String())
			h, _ := newChecker(t, HealthOptions{Interval: 2 * time.Second, Method: "get", Fall: 1})
			h.SetTargets([]Target{{Backend: b, Host: "app.example.com:8443", Path: "api/v1"}})
			// Round 1 detects, round 2 probes with the known protocol.
			for round := 1; round <= 2; round++ {
				h.CheckNow(context.Background())
				if !b.Up() || b.Proto() != tt.proto {
					t.Fatalf("round %d: Up=%v Proto=%v (%s); want up, %v", round, b.Up(), b.Proto(), b.Status().LastError, tt.proto)
				}
				got := rec.lastRequest()
				want := struct{ method, host, path, proto, sni string }{
					http.MethodGet, "app.example.com:8443", "/api/v1", tt.wireProto, "",
				}
				if tt.proto.Has(balancer.ProtoTLS) {
					want.sni = "app.example.com"
				}
				if got != want {
					t.Fatalf("round %d: backend saw %+v; want %+v", round, got, want)
				}
			}
			if n := rec.hits.Load(); n != 2 {
				t.Fatalf("backend got %d requests in 2 rounds; want 2", n)
			}
		})
	}
}

func TestHealthProtocolChange(t *testing.T) {
	t.Parallel()
	rec := newRecorder(http.StatusOK)
	plain := httptest.NewServer(rec)
	addr := plain.Listener.Addr().String()
	b := balancer.NewBackend(addr)
	h, logs := newChecker(t, HealthOptions{Interval: 2 * time.Second})
	h.SetTargets([]Target{{Backend: b}})
	h.CheckNow(context.Background())
	if b.Proto() != balancer.ProtoHTTP1 {
		t.Fatalf("Proto() = %v; want http1", b.Proto())
	}
	plain.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	s := httptest.NewUnstartedServer(rec)
	s.Listener.Close()
	s.Listener = ln
	s.EnableHTTP2 = true
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	h.CheckNow(context.Background())
	if b.Proto() != balancer.ProtoTLS|balancer.ProtoH2 || !b.Up() {
		t.Fatalf("after the switch to TLS: Proto=%v Up=%v (%s); want tls+h2, up", b.Proto(), b.Up(), b.Status().LastError)
	}

	// And back to clear text: the TLS handshake fails after connecting,
	// which triggers detection again.
	s.Close()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	s3 := &http.Server{Handler: rec}
	go s3.Serve(ln)
	t.Cleanup(func() { s3.Close() })
	h.CheckNow(context.Background())
	if b.Proto() != balancer.ProtoHTTP1 || !b.Up() {
		t.Fatalf("after the switch back to clear text: Proto=%v Up=%v (%s); want http1, up", b.Proto(), b.Up(), b.Status().LastError)
	}
	if n := logs.count("backend protocol detected"); n != 3 {
		t.Fatalf("%d protocol lines; want 3:\n%s", n, logs)
	}
}

func TestHealthTLSVerify(t *testing.T) {
	t.Parallel()
	s := newTLSServer(t, newRecorder(http.StatusOK), true)
	b := balancer.NewBackend(s.Listener.Addr().String())
	h, _ := newChecker(t, HealthOptions{TLSVerify: true, Fall: 1})
	h.SetTargets([]Target{{Backend: b, Host: "example.com"}})
	h.CheckNow(context.Background())
	if b.Up() || !strings.Contains(b.Status().LastError, "verifying upstream certificate") {
		t.Fatalf("self-signed with TLSVerify: Up=%v LastError=%q; want down, a verification error", b.Up(), b.Status().LastError)
	}
	if b.Proto() != balancer.ProtoTLS|balancer.ProtoH2 {
		t.Fatalf("Proto() = %v; want tls+h2 even when verification fails", b.Proto())
	}

	// The test server's certificate is valid for example.com under its
	// own root.
	roots := s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	h2, _ := newChecker(t, HealthOptions{TLSVerify: true, RootCAs: roots, Rise: 1})
	h2.SetTargets([]Target{{Backend: b, Host: "example.com"}})
	h2.CheckNow(context.Background())
	if !b.Up() {
		t.Fatalf("trusted root: Up=false (%s); want up", b.Status().LastError)
	}
	h3, _ := newChecker(t, HealthOptions{TLSVerify: true, RootCAs: roots, Fall: 1})
	h3.SetTargets([]Target{{Backend: b, Host: "other.test"}})
	h3.CheckNow(context.Background())
	if b.Up() {
		t.Fatalf("wrong host name: Up=true; want down")
	}
}

func TestHealthTargets(t *testing.T) {
	t.Parallel()
	recA, recB := newRecorder(http.StatusOK), newRecorder(http.StatusOK)
	sa, sb := newPlainServer(t, recA), newPlainServer(t, recB)
	a, b := balancer.NewBackend(sa.Listener.Addr().String()), balancer.NewBackend(sb.Listener.Addr().String())
	h, _ := newChecker(t, HealthOptions{Rise: 2, Fall: 2})

	h.SetTargets([]Target{
		{Backend: a},
		{Backend: a, Host: a.Addr(), Path: "/"},
		{Backend: a, Host: "*.example.com"},
		{Backend: a, Host: "DEFAULT", Path: "/"},
		{Backend: a, Host: "app.test", Path: "/x"},
		{Backend: a, Host: "app.test", Path: "/x"},
		{Backend: b, Host: "b.test"},
		{Backend: nil, Host: "ignored"},
	})
	got := fmt.Sprint(targetStrings(h.Targets()))
	want := fmt.Sprint([]string{a.Addr() + " " + a.Addr() + " /", a.Addr() + " app.test /x", b.Addr() + " b.test /"})
	if a.Addr() > b.Addr() {
		want = fmt.Sprint([]string{b.Addr() + " b.test /", a.Addr() + " " + a.Addr() + " /", a.Addr() + " app.test /x"})
	}
	if got != want {
		t.Fatalf("Targets() = %s; want %s", got, want)
	}

	// One passing target is enough: the first target of a is probed,
	// passes, and the second is not tried.
	h.CheckNow(context.Background())
	if n := recA.hits.Load(); n != 1 {
		t.Fatalf("backend a got %d probes in a round; want 1", n)
	}

	// State is kept across SetTargets: one failing round, new targets,
	// a second failing round takes a down.
	recA.status.Store(http.StatusInternalServerError)
	h.CheckNow(context.Background())
	if !a.Up() {
		t.Fatalf("a down after 1 failing round; want Fall=2")
	}
	h.SetTargets([]Target{{Backend: a, Host: "app.test"}, {Backend: b}})
	h.CheckNow(context.Background())
	if a.Up() {
		t.Fatalf("a up after 2 failing rounds around SetTargets; want down")
	}

	// A down backend that leaves the list keeps being checked until it
	// comes up; an up one leaves at once.
	h.SetTargets(nil)
	if got := targetStrings(h.Targets()); len(got) != 1 || !strings.HasPrefix(got[0], a.Addr()) {
		t.Fatalf("Targets() after dropping everything = %v; want only down backend a", got)
	}
	recA.status.Store(http.StatusOK)
	h.CheckNow(context.Background())
	if a.Up() || len(h.Targets()) != 1 {
		t.Fatalf("orphan after 1 passing round: Up=%v targets=%d; want down, still checked", a.Up(), len(h.Targets()))
	}
	h.CheckNow(context.Background())
	if !a.Up() || len(h.Targets()) != 0 {
		t.Fatalf("orphan after 2 passing rounds: Up=%v targets=%d; want up and dropped", a.Up(), len(h.Targets()))
	}
}

func targetStrings(ts []Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Backend.Addr()+" "+t.Host+" "+t.Path)
	}
	return out
}

func TestHealthEndsEjection(t *testing.T) {
	t.Parallel()
	s := newPlainServer(t, newRecorder(http.StatusOK))
	b := balancer.NewBackend(s.Listener.Addr().String())
	now := time.Now().UnixNano()
	for range balancer.DefaultFailThreshold {
		b.ReportFailure(now)
	}
	if b.Available(now) {
		t.Fatalf("Available after ejection = true; want false")
	}
	h, _ := newChecker(t, HealthOptions{})
	h.SetTargets([]Target{{Backend: b}})
	h.CheckNow(context.Background())
	if !b.Available(now) {
		t.Fatalf("Available after a passing check = false; want true")
	}
}

func TestHealthCancelledRoundDoesNotCount(t *testing.T) {
	t.Parallel()
	// A backend that accepts and never answers: probes end by the
	// context, not by the backend.
	ln := silentListener(t)
	b := balancer.NewBackend(ln.Addr().String())
	h, _ := newChecker(t, HealthOptions{Interval: 10 * time.Second, Fall: 1})
	h.SetTargets([]Target{{Backend: b}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	h.CheckNow(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("CheckNow with a cancelled context took %v; want it to stop early", d)
	}
	if !b.Up() {
		t.Fatalf("Up after a cancelled round = false; want true")
	}
}

func TestHealthManyBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 listeners")
	}
	const n = 1000
	// Raw listeners with a minimal responder keep the server side cheap:
	// the test measures the checker. Anything that is not a probe (a TLS
	// hello, the HTTP/2 preface) also gets the HTTP/1 answer, as from a
	// plain HTTP/1 server.
	const answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	var lns []net.Listener
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
	})
	var ts []Target
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					buf := make([]byte, 2048)
					if _, err := c.Read(buf); err == nil {
						io.WriteString(c, answer)
					}
				}()
			}
		}()
		ts = append(ts, Target{Backend: balancer.NewBackend(ln.Addr().String())})
	}
	const interval = 2 * time.Second
	h, _ := newChecker(t, HealthOptions{Interval: interval})
	h.SetTargets(ts)
	// The first round also detects every backend's protocol.
	h.CheckNow(context.Background())
	start := time.Now()
	h.CheckNow(context.Background())
	took := time.Since(start)
	for _, tg := range ts {
		b := tg.Backend
		if lc := b.LastCheck(); lc.Before(start) || !b.Up() || b.Proto() != balancer.ProtoHTTP1 {
			t.Fatalf("%s: LastCheck=%v (round started %v) Up=%v Proto=%v (%s); want checked in the round, up, http1",
				b.Addr(), lc, start, b.Up(), b.Proto(), b.Status().LastError)
		}
	}
	if took > interval && !raceEnabled {
		t.Fatalf("a round over %d backends took %v; want under the %v interval", n, took, interval)
	}
	t.Logf("round over %d backends: %v", n, took)
}

func TestHealthOrphanExpires(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := balancer.NewBackend(ln.Addr().String())
	ln.Close() // nothing listens: every probe fails to dial
	h, logs := newChecker(t, HealthOptions{Fall: 1})
	h.SetTargets([]Target{{Backend: b}})
	h.CheckNow(context.Background())
	if b.Up() {
		t.Fatalf("Up with nothing listening = true; want false")
	}
	h.SetTargets(nil)
	h.CheckNow(context.Background())
	if b.Up() || len(h.Targets()) != 1 {
		t.Fatalf("orphan within its TTL: Up=%v targets=%d; want down, still checked", b.Up(), len(h.Targets()))
	}
	h.orphanTTL = 0
	h.CheckNow(context.Background())
	if !b.Up() || len(h.Targets()) != 0 {
		t.Fatalf("orphan past its TTL: Up=%v targets=%d; want up (unchecked) and dropped", b.Up(), len(h.Targets()))
	}
	if n := logs.count("no longer checked"); n != 1 {
		t.Fatalf("%d \"no longer checked\" lines; want 1:\n%s", n, logs)
	}
}

// silentListener accepts connections and never writes to them.
func silentListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln
}

func TestHealthHungBackend(t *testing.T) {
	t.Parallel()
	ln := silentListener(t)
	b := balancer.NewBackend(ln.Addr().String())
	const timeout = 300 * time.Millisecond
	h, _ := newChecker(t, HealthOptions{Interval: time.Second, Timeout: timeout, Fall: 1})
	h.SetTargets([]Target{{Backend: b, Path: "/a"}, {Backend: b, Path: "/b"}, {Backend: b, Path: "/c"}})
	start := time.Now()
	h.CheckNow(context.Background())
	took := time.Since(start)
	if b.Up() {
		t.Fatalf("Up after a round against a silent backend = true; want false")
	}
	if b.Proto() != balancer.ProtoUnknown {
		t.Fatalf("Proto() = %v after probes that got no answer; want unknown", b.Proto())
	}
	if e := b.Status().LastError; !strings.Contains(e, "deadline") && !strings.Contains(e, "timeout") {
		t.Fatalf("LastError = %q; want a timeout", e)
	}
	// One target's timeout, not three: the others are skipped.
	if took >= 3*timeout && !raceEnabled {
		t.Fatalf("round took %v; want about one %v timeout", took, timeout)
	}
}

func TestHealthPlain400DetectsOnce(t *testing.T) {
	t.Parallel()
	rec := newRecorder(http.StatusBadRequest)
	s := newPlainServer(t, rec)
	b := balancer.NewBackend(s.Listener.Addr().String())
	h, _ := newChecker(t, HealthOptions{Rise: 1, Fall: 1})
	h.SetTargets([]Target{{Backend: b}})
	for round := 1; round <= 3; round++ {
		h.CheckNow(context.Background())
		if !b.Up() || b.Proto() != balancer.ProtoHTTP1 {
			t.Fatalf("round %d: Up=%v Proto=%v; want up (400 < 500), http1", round, b.Up(), b.Proto())
		}
	}
	// Round 1 detects and sees the 400 right after: later rounds trust
	// it and send one probe each instead of detecting again.
	if n := rec.hits.Load(); n != 3 {
		t.Fatalf("backend got %d probes in 3 rounds; want 3", n)
	}
	// A 200 clears that; a 400 after it is checked by detection again.
	rec.status.Store(http.StatusOK)
	h.CheckNow(context.Background())
	rec.status.Store(http.StatusBadRequest)
	h.CheckNow(context.Background())
	if n := rec.hits.Load(); n != 6 {
		t.Fatalf("backend got %d probes after 200 then 400; want 6", n)
	}
}
