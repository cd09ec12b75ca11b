package balancer

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func backends(n int) []*Backend {
	bs := make([]*Backend, n)
	for i := range bs {
		bs[i] = NewBackend(fmt.Sprintf("127.0.0.1:%d", 10000+i))
	}
	return bs
}

func members(bs []*Backend, weights ...int) []Member {
	ms := make([]Member, len(bs))
	for i, b := range bs {
		ms[i] = Member{Backend: b, Weight: 1}
		if i < len(weights) {
			ms[i].Weight = weights[i]
		}
	}
	return ms
}

// counts picks n times and returns how often each backend came up.
func counts(t *testing.T, p *Pool, n int) map[*Backend]int {
	t.Helper()
	c := make(map[*Backend]int)
	for range n {
		b, panicMode := p.Pick(nil)
		if b == nil {
			t.Fatalf("Pick(nil) = nil; want a backend")
		}
		if panicMode {
			t.Fatalf("Pick(nil) panicMode = true; want false")
		}
		c[b]++
	}
	return c
}

func TestParseKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Kind
		err  bool
	}{
		{name: "empty", in: "", want: RoundRobin},
		{name: "round robin", in: "round_robin", want: RoundRobin},
		{name: "least conn", in: "least_conn", want: LeastConn},
		{name: "random", in: "random", want: Random},
		{name: "unknown", in: "ip_hash", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKind(tt.in)
			if tt.err {
				if !errors.Is(err, ErrUnknownKind) {
					t.Fatalf("ParseKind(%q) error = %v; want ErrUnknownKind", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseKind(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.in && tt.in != "" {
				t.Errorf("%v.String() = %q; want %q", got, got.String(), tt.in)
			}
		})
	}
}

func TestRoundRobinWeights(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "3:1", weights: []int{3, 1}},
		{name: "equal", weights: []int{1, 1, 1}},
		{name: "5:2:1", weights: []int{5, 2, 1}},
		{name: "gcd reduced", weights: []int{300, 100}},
		{name: "zero means one", weights: []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bs := backends(len(tt.weights))
			p := NewPool(members(bs, tt.weights...), RoundRobin, false)
			total := 0
			for _, m := range p.Members() {
				total += m.Weight
			}
			// Every full cycle gives exactly the weights' shares.
			c := counts(t, p, total*10)
			for i, m := range p.Members() {
				if got, want := c[bs[i]], m.Weight*10; got != want {
					t.Errorf("backend %d: %d picks; want %d (weights %v)", i, got, want, tt.weights)
				}
			}
		})
	}
}

func TestRoundRobinSmooth(t *testing.T) {
	t.Parallel()
	bs := backends(2)
	p := NewPool(members(bs, 3, 1), RoundRobin, false)
	// Smooth WRR for 3:1 never sends the light backend twice in a row and
	// never sends the heavy one more than three times in a row.
	run, last := 0, (*Backend)(nil)
	for range 40 {
		b, _ := p.Pick(nil)
		if b == last {
			run++
		} else {
			run = 1
		}
		last = b
		if b == bs[1] && run > 1 || run > 3 {
			t.Fatalf("Pick: %d consecutive picks of %s; want an interleaved schedule", run, b.Addr())
		}
	}
}

func TestLargeWeightsScaled(t *testing.T) {
	t.Parallel()
	bs := backends(2)
	p := NewPool(members(bs, MaxWeight*4, 3), RoundRobin, false)
	if w := p.Members()[0].Weight; w != MaxWeight {
		t.Fatalf("Members()[0].Weight = %d; want clamped to %d", w, MaxWeight)
	}
	if n := len(p.primary.sched); n > maxSchedule+2 {
		t.Fatalf("schedule length = %d; want at most about %d", n, maxSchedule)
	}
	c := counts(t, p, 10000)
	if c[bs[1]] == 0 {
		t.Fatalf("light backend got no picks; want at least one")
	}
}

func TestRandomWeights(t *testing.T) {
	t.Parallel()
	bs := backends(2)
	p := NewPool(members(bs, 3, 1), Random, false)
	const n = 40000
	c := counts(t, p, n)
	// 4 standard deviations of a binomial(n, 0.25) is about 350.
	if got := c[bs[1]]; math.Abs(float64(got)-n/4) > 600 {
		t.Fatalf("light backend got %d of %d picks; want about %d", got, n, n/4)
	}
}

func TestLeastConnPrefersFewerInFlight(t *testing.T) {
	t.Parallel()
	bs := backends(3)
	p := NewPool(members(bs), LeastConn, false)
	bs[0].Acquire()
	bs[0].Acquire()
	bs[2].Acquire()
	for range 20 {
		if b, _ := p.Pick(nil); b != bs[1] {
			t.Fatalf("Pick(nil) = %s; want %s (no requests in flight)", b.Addr(), bs[1].Addr())
		}
	}
	bs[1].Acquire()
	bs[1].Acquire()
	bs[1].Acquire()
	for range 20 {
		if b, _ := p.Pick(nil); b != bs[2] {
			t.Fatalf("Pick(nil) = %s; want %s (1 in flight)", b.Addr(), bs[2].Addr())
		}
	}
	bs[0].Release()
	bs[0].Release()
	bs[1].Release()
	bs[1].Release()
	bs[1].Release()
	bs[2].Release()
	// All equal: ties are spread by the random start.
	c := counts(t, p, 3000)
	for i, b := range bs {
		if c[b] < 700 {
			t.Errorf("backend %d got %d of 3000 tied picks; want about 1000", i, c[b])
		}
	}
	if got := bs[0].Requests(); got != 2 {
		t.Errorf("Requests() = %d; want 2", got)
	}
}

func TestLeastConnWeighted(t *testing.T) {
	t.Parallel()
	bs := backends(2)
	p := NewPool(members(bs, 4, 1), LeastConn, false)
	for range 3 {
		bs[0].Acquire()
	}
	// 3/4 < 1/1 once bs[1] has one in flight.
	bs[1].Acquire()
	if b, _ := p.Pick(nil); b != bs[0] {
		t.Fatalf("Pick(nil) = %s; want %s (3 in flight at weight 4 beats 1 at weight 1)", b.Addr(), bs[0].Addr())
	}
}

func TestPickSkipsUnavailableAndBackups(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{RoundRobin, LeastConn, Random} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			bs := backends(4)
			ms := members(bs, 1, 2, 1, 1)
			ms[2].Backup = true
			ms[3].Backup = true
			p := NewPool(ms, kind, false)

			c := counts(t, p, 300)
			if c[bs[2]]+c[bs[3]] != 0 {
				t.Fatalf("backups got %d picks while primaries are up; want 0", c[bs[2]]+c[bs[3]])
			}

			bs[0].SetUp(false)
			c = counts(t, p, 300)
			if c[bs[1]] != 300 {
				t.Fatalf("with %s down: %s got %d of 300; want all", bs[0].Addr(), bs[1].Addr(), c[bs[1]])
			}

			// Passive ejection counts as unavailable as well.
			for range DefaultFailThreshold {
				bs[1].ReportFailure(time.Now().UnixNano())
			}
			c = counts(t, p, 300)
			if c[bs[2]]+c[bs[3]] != 300 || c[bs[2]] == 0 || c[bs[3]] == 0 {
				t.Fatalf("primaries unavailable: picks %v; want all on both backups", c)
			}

			bs[2].SetUp(false)
			c = counts(t, p, 100)
			if c[bs[3]] != 100 {
				t.Fatalf("one backup left: %s got %d of 100; want all", bs[3].Addr(), c[bs[3]])
			}

			bs[3].SetUp(false)
			seen := make(map[*Backend]int)
			for range 400 {
				b, panicMode := p.Pick(nil)
				if b == nil || !panicMode {
					t.Fatalf("all down: Pick(nil) = %v, %v; want a backend and panicMode", b, panicMode)
				}
				seen[b]++
			}
			if len(seen) != 4 {
				t.Fatalf("panic mode picked %d distinct backends; want all 4", len(seen))
			}

			bs[0].SetUp(true)
			if b, panicMode := p.Pick(nil); b != bs[0] || panicMode {
				t.Fatalf("after recovery: Pick(nil) = %s, %v; want %s, false", b.Addr(), panicMode, bs[0].Addr())
			}
		})
	}
}

func TestPickExclude(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{RoundRobin, LeastConn, Random} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			bs := backends(3)
			p := NewPool(members(bs), kind, false)
			for range 100 {
				if b, _ := p.Pick(bs[1]); b == bs[1] || b == nil {
					t.Fatalf("Pick(%s) = %v; want another backend", bs[1].Addr(), b)
				}
			}
			// Only the excluded one is available: the other two are
			// tried in panic mode rather than retrying the same one.
			bs[0].SetUp(false)
			bs[2].SetUp(false)
			b, panicMode := p.Pick(bs[1])
			if b == bs[1] || b == nil || !panicMode {
				t.Fatalf("Pick(%s) = %v, %v; want a down backend in panic mode", bs[1].Addr(), b, panicMode)
			}

			single := NewPool(members(bs[:1]), kind, false)
			if b, _ := single.Pick(bs[0]); b != nil {
				t.Fatalf("single-member Pick(member) = %s; want nil", b.Addr())
			}
		})
	}
}

func TestPickEmpty(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{RoundRobin, LeastConn, Random} {
		p := NewPool(nil, kind, false)
		if b, panicMode := p.Pick(nil); b != nil || panicMode {
			t.Fatalf("%v: empty Pick(nil) = %v, %v; want nil, false", kind, b, panicMode)
		}
		if p.Len() != 0 || p.Contains(NewBackend("x:1")) {
			t.Fatalf("%v: empty pool Len() = %d; want 0", kind, p.Len())
		}
	}
	p := NewPool([]Member{{Backend: nil, Weight: 3}}, RoundRobin, false)
	if p.Len() != 0 {
		t.Fatalf("NewPool(nil backend).Len() = %d; want 0", p.Len())
	}
}

func TestIgnoreHealth(t *testing.T) {
	t.Parallel()
	bs := backends(2)
	p := NewPool(members(bs), RoundRobin, true)
	bs[0].SetUp(false)
	c := counts(t, p, 100)
	if c[bs[0]] != 50 {
		t.Fatalf("ignoreHealth: down backend got %d of 100; want 50", c[bs[0]])
	}
	for range DefaultFailThreshold {
		bs[0].ReportFailure(time.Now().UnixNano())
	}
	c = counts(t, p, 100)
	if c[bs[0]] != 0 {
		t.Fatalf("ignoreHealth: ejected backend got %d of 100; want 0", c[bs[0]])
	}
}

func TestContains(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, 20} {
		bs := backends(n + 1)
		p := NewPool(members(bs[:n]), RoundRobin, false)
		for _, b := range bs[:n] {
			if !p.Contains(b) {
				t.Fatalf("n=%d: Contains(%s) = false; want true", n, b.Addr())
			}
		}
		if p.Contains(bs[n]) || p.Contains(nil) {
			t.Fatalf("n=%d: Contains(outsider) = true; want false", n)
		}
	}
}

func TestPassiveEjection(t *testing.T) {
	t.Parallel()
	b := NewBackend("127.0.0.1:1")
	const t0 = int64(1_000_000_000_000)
	for i := range DefaultFailThreshold - 1 {
		if b.ReportFailure(t0 + int64(i)) {
			t.Fatalf("ReportFailure #%d = true; want false before the threshold", i+1)
		}
	}
	// A success in between resets the count.
	b.ReportSuccess()
	for i := range DefaultFailThreshold - 1 {
		b.ReportFailure(t0 + int64(i))
	}
	if !b.Available(t0) {
		t.Fatalf("Available after %d failures = false; want true", DefaultFailThreshold-1)
	}
	if !b.ReportFailure(t0) {
		t.Fatalf("ReportFailure at the threshold = false; want true")
	}
	if b.Available(t0+1) || !b.Ejected(t0+1) {
		t.Fatalf("Available just after ejection = true; want false")
	}
	end := t0 + int64(DefaultCooldown)
	if b.Available(end - 1) {
		t.Fatalf("Available 1ns before the cooldown ends = true; want false")
	}
	if !b.Available(end) {
		t.Fatalf("Available when the cooldown ends = false; want true")
	}
	if st := b.Status(); st.Ejections != 1 || st.Failures != 0 {
		t.Fatalf("Status() = %+v; want 1 ejection, 0 failures", st)
	}

	// A passing active check ends an ejection; a failing one prolongs it.
	for range DefaultFailThreshold {
		b.ReportFailure(t0)
	}
	b.RecordCheck(t0+int64(5*time.Second), "probe failed")
	if b.Available(t0 + int64(DefaultCooldown)) {
		t.Fatalf("Available after a failing check prolonged the ejection = true; want false")
	}
	b.RecordCheck(t0+1, "")
	if !b.Available(t0 + 1) {
		t.Fatalf("Available after a passing check = false; want true")
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	s := NewSet()
	a := s.Get("127.0.0.1:1")
	if s.Get("127.0.0.1:1") != a {
		t.Fatalf("Get twice returned two Backends; want one")
	}
	a.Acquire()
	s.Get("127.0.0.1:2")
	s.Get("127.0.0.1:3")
	if n := s.Sweep(func(addr string) bool { return addr != "127.0.0.1:2" }); n != 1 {
		t.Fatalf("Sweep removed %d; want 1", n)
	}
	var got []string
	s.Range(func(b *Backend) bool { got = append(got, b.Addr()); return true })
	if fmt.Sprint(got) != "[127.0.0.1:1 127.0.0.1:3]" {
		t.Fatalf("Range visited %v; want [127.0.0.1:1 127.0.0.1:3]", got)
	}
	if s.Get("127.0.0.1:1").InFlight() != 1 || s.Lookup("127.0.0.1:2") != nil || s.Len() != 2 {
		t.Fatalf("state after Sweep: wrong")
	}
}

func TestProtoString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Proto
		want string
	}{
		{ProtoUnknown, "unknown"},
		{ProtoHTTP1, "http1"},
		{ProtoH2C, "h2c"},
		{ProtoTLS | ProtoHTTP1, "tls+http1"},
		{ProtoTLS | ProtoH2, "tls+h2"},
		{ProtoTLS | ProtoH2 | ProtoHTTP1, "tls+http1+h2"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("Proto(%d).String() = %q; want %q", tt.p, got, tt.want)
		}
	}
	if !(ProtoTLS | ProtoH2).Has(ProtoTLS) || ProtoHTTP1.Has(ProtoTLS) || (ProtoTLS|ProtoH2).Scheme() != "https" {
		t.Errorf("Has/Scheme wrong")
	}
}

// TestPickConcurrent runs picks from many goroutines while health and
// ejection change underneath; under -race it checks that the pick path
// is free of data races, and it checks that in-flight counts balance.
func TestPickConcurrent(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{RoundRobin, LeastConn, Random} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			bs := backends(5)
			ms := members(bs, 3, 1, 2, 1, 1)
			ms[4].Backup = true
			p := NewPool(ms, kind, false)
			stop := make(chan struct{})
			flipped := make(chan struct{})
			go func() {
				defer close(flipped)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					b := bs[i%len(bs)]
					b.SetUp(i%3 != 0)
					if i%7 == 0 {
						b.ReportFailure(time.Now().UnixNano())
					} else {
						b.ReportSuccess()
					}
				}
			}()
			const workers, picks = 4, 2000
			errs := make(chan error, workers)
			for w := range workers {
				go func() {
					var prev *Backend
					for i := range picks {
						b, _ := p.Pick(prev)
						if b == nil {
							errs <- fmt.Errorf("worker %d pick %d: nil backend", w, i)
							return
						}
						if b == prev {
							errs <- fmt.Errorf("worker %d pick %d: got the excluded backend", w, i)
							return
						}
						b.Acquire()
						b.Release()
						if i%2 == 0 {
							prev = b
						} else {
							prev = nil
						}
					}
					errs <- nil
				}()
			}
			for range workers {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			close(stop)
			<-flipped
			var total uint64
			for _, b := range bs {
				if n := b.InFlight(); n != 0 {
					t.Errorf("%s: InFlight() = %d after all releases; want 0", b.Addr(), n)
				}
				total += b.Requests()
			}
			if total != workers*picks {
				t.Errorf("sum of Requests() = %d; want %d", total, workers*picks)
			}
		})
	}
}
