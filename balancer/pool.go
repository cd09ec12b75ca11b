package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Kind is a load-balancing algorithm. The zero value is RoundRobin.
type Kind uint8

// Kinds.
const (
	// RoundRobin walks a precomputed smooth weighted schedule (the
	// algorithm of nginx's upstream module): weights 3:1 give exactly
	// 3 and 1 picks in every cycle of 4, interleaved.
	RoundRobin Kind = iota
	// LeastConn picks the available backend with the fewest in-flight
	// requests per unit of weight; ties go to the first one found from a
	// random start.
	LeastConn
	// Random picks a backend at random with probability proportional to
	// its weight.
	Random
)

// String returns the config name of k: "round_robin", "least_conn" or
// "random".
func (k Kind) String() string {
	switch k {
	case RoundRobin:
		return "round_robin"
	case LeastConn:
		return "least_conn"
	case Random:
		return "random"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ErrUnknownKind is returned by ParseKind for a name it does not know.
var ErrUnknownKind = errors.New("balancer: unknown load balancing algorithm")

// ParseKind returns the Kind named s: "round_robin" (also "" and
// "roundrobin"), "least_conn" (also "leastconn") or "random". Any other
// name gives an error wrapping ErrUnknownKind.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "", "round_robin", "roundrobin":
		return RoundRobin, nil
	case "least_conn", "leastconn":
		return LeastConn, nil
	case "random":
		return Random, nil
	}
	return 0, fmt.Errorf("%w %q", ErrUnknownKind, s)
}

// Member is one backend of a Pool.
type Member struct {
	// Backend is the shared state; nil members are dropped by NewPool.
	Backend *Backend
	// Weight is the relative share of requests. Values below 1 mean 1;
	// values above MaxWeight mean MaxWeight.
	Weight int
	// Backup members get requests only when no non-backup member is
	// available.
	Backup bool
}

// MaxWeight is the largest weight a Member may have; larger ones are
// clamped.
const MaxWeight = 1 << 20

// maxSchedule bounds the length of a round-robin schedule: weights
// whose sum (after division by their GCD) exceeds it are scaled down
// proportionally, each staying at least 1.
const maxSchedule = 4096

// redraws is how many more schedule slots or random draws a pick tries
// after an unavailable backend before it scans the members in order.
// Redrawing keeps the weighted proportions among the remaining backends
// when a few are down; the scan bounds the cost when most are.
const redraws = 8

// counter is a round-robin position on its own cache line.
type counter struct {
	_ pad
	n atomic.Uint64
	_ pad
}

// group is one selection set of a Pool (primaries, backups or all).
// Everything but the counter is read-only after NewPool.
type group struct {
	bs      []*Backend
	w       []int64  // weight per backend, reduced by the GCD
	sched   []uint32 // smooth weighted round-robin order; nil if uniform
	cum     []uint64 // cumulative weights for Random; nil if uniform
	total   uint64   // sum of w
	uniform bool     // all weights equal
	ctr     *counter
}

// Pool is an immutable selection over a fixed list of members, built once
// per config generation by NewPool (one per route). Picks take no locks
// and allocate nothing. A Pool is safe for concurrent use and must not be
// copied.
type Pool struct {
	_ noCopy

	members      []Member
	kind         Kind
	ignoreHealth bool

	primary, backup, all group
	index                map[*Backend]struct{} // for Contains on large pools

	sticky atomic.Pointer[stickyTable] // lazily built, see Sticky
}

// NewPool builds a Pool over members with the algorithm kind. When
// ignoreHealth is true the active health state (Backend.Up) is ignored,
// for routes whose health checks are disabled; passive ejection still
// applies. NewPool copies members; it drops nil backends.
func NewPool(members []Member, kind Kind, ignoreHealth bool) *Pool {
	p := &Pool{kind: kind, ignoreHealth: ignoreHealth}
	var prim, back, all []*Backend
	var primW, backW, allW []int64
	for _, m := range members {
		if m.Backend == nil {
			continue
		}
		w := int64(m.Weight)
		w = min(max(w, 1), MaxWeight)
		m.Weight = int(w)
		p.members = append(p.members, m)
		if m.Backup {
			back, backW = append(back, m.Backend), append(backW, w)
		} else {
			prim, primW = append(prim, m.Backend), append(primW, w)
		}
	}
	// Panic mode picks among primaries then backups, keeping weights.
	all = append(append(all, prim...), back...)
	allW = append(append(allW, primW...), backW...)
	p.primary = newGroup(prim, primW)
	p.backup = newGroup(back, backW)
	p.all = newGroup(all, allW)
	if len(p.members) > 8 {
		p.index = make(map[*Backend]struct{}, len(p.members))
		for _, m := range p.members {
			p.index[m.Backend] = struct{}{}
		}
	}
	return p
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func newGroup(bs []*Backend, w []int64) group {
	g := group{bs: bs, w: w, ctr: new(counter)}
	if len(bs) == 0 {
		return g
	}
	d := w[0]
	for _, x := range w[1:] {
		d = gcd(d, x)
	}
	var total int64
	for i := range w {
		w[i] /= d
		total += w[i]
	}
	if total > maxSchedule {
		// Scale down; the sum stays near maxSchedule, or len(w) when
		// there are more members than that.
		for i := range w {
			w[i] = max(1, w[i]*maxSchedule/total)
		}
	}
	g.uniform = true
	for _, x := range w {
		if x != w[0] {
			g.uniform = false
		}
	}
	g.total = 0
	for _, x := range w {
		g.total += uint64(x)
	}
	if g.uniform {
		g.total = uint64(len(w))
		return g
	}
	g.cum = make([]uint64, len(w))
	var c uint64
	for i, x := range w {
		c += uint64(x)
		g.cum[i] = c
	}
	g.sched = smoothSchedule(w, g.total)
	return g
}

// smoothSchedule returns one cycle of nginx's smooth weighted round
// robin over weights w: each step adds every weight to its current
// value, picks the largest and subtracts the total from it.
func smoothSchedule(w []int64, total uint64) []uint32 {
	cur := make([]int64, len(w))
	sched := make([]uint32, total)
	for s := range sched {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(total)
		sched[s] = uint32(best)
	}
	return sched
}

// Len returns the number of members.
func (p *Pool) Len() int { return len(p.members) }

// Kind returns the algorithm of the pool.
func (p *Pool) Kind() Kind { return p.kind }

// Members returns the members in the order given to NewPool, with
// weights clamped. The slice is shared: do not modify it.
func (p *Pool) Members() []Member { return p.members }

// Contains reports whether b is a member of p.
func (p *Pool) Contains(b *Backend) bool {
	if b == nil {
		return false
	}
	if p.index != nil {
		_, ok := p.index[b]
		return ok
	}
	for i := range p.members {
		if p.members[i].Backend == b {
			return true
		}
	}
	return false
}

// available reports whether b may get requests from this pool at now
// (unix nanoseconds; 0 means read the clock if an ejection must be
// checked).
func (p *Pool) available(b *Backend, now int64) bool {
	if !p.ignoreHealth && b.down.Load() {
		return false
	}
	return !b.ejected(now)
}

// Pick returns the backend for the next request, or nil when the pool
// has no member other than exclude. It takes no locks and allocates
// nothing.
//
// Pick chooses among the available (Up and not ejected) non-backup
// members with the pool's algorithm; when there are none, among the
// available backups; when there are none either, among all members
// regardless of health, and then panicMode is true: sending to a backend
// that may be down beats refusing every request when the health signal
// itself may be wrong (Envoy's panic threshold, at 0%).
//
// exclude, when non-nil, is never returned: pass the backend of a failed
// attempt to retry on another one. Pick does not call Acquire.
func (p *Pool) Pick(exclude *Backend) (b *Backend, panicMode bool) {
	var now int64 // read lazily, only if some backend is ejected
	if b = p.pick(&p.primary, exclude, false, &now); b != nil {
		return b, false
	}
	if b = p.pick(&p.backup, exclude, false, &now); b != nil {
		return b, false
	}
	if b = p.pick(&p.all, exclude, true, &now); b != nil {
		return b, true
	}
	return nil, false
}

// usable reports whether b can be returned by a pick.
func (p *Pool) usable(b, exclude *Backend, panicMode bool, now *int64) bool {
	if b == exclude {
		return false
	}
	if panicMode {
		return true
	}
	if !p.ignoreHealth && b.down.Load() {
		return false
	}
	if b.ejectedUntil.Load() == 0 {
		return true
	}
	if *now == 0 {
		*now = time.Now().UnixNano()
	}
	return !b.ejected(*now)
}

func (p *Pool) pick(g *group, exclude *Backend, panicMode bool, now *int64) *Backend {
	n := len(g.bs)
	switch {
	case n == 0:
		return nil
	case n == 1:
		if b := g.bs[0]; p.usable(b, exclude, panicMode, now) {
			return b
		}
		return nil
	}
	switch p.kind {
	case LeastConn:
		return p.leastConn(g, exclude, panicMode, now)
	case Random:
		for range redraws {
			r := rand.Uint64N(g.total)
			i := int(r)
			if !g.uniform {
				i = searchCum(g.cum, r)
			}
			if b := g.bs[i]; p.usable(b, exclude, panicMode, now) {
				return b
			}
		}
	default:
		for range redraws {
			s := g.ctr.n.Add(1) - 1
			var i int
			if g.uniform {
				i = int(s % uint64(n))
			} else {
				i = int(g.sched[s%uint64(len(g.sched))])
			}
			if b := g.bs[i]; p.usable(b, exclude, panicMode, now) {
				return b
			}
		}
	}
	// Most backends are unusable: scan them all from a random start.
	start := int(rand.Uint32N(uint32(n)))
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		if b := g.bs[i]; p.usable(b, exclude, panicMode, now) {
			return b
		}
	}
	return nil
}

// searchCum returns the first index i with r < cum[i].
func searchCum(cum []uint64, r uint64) int {
	lo, hi := 0, len(cum)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cum[m] <= r {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (p *Pool) leastConn(g *group, exclude *Backend, panicMode bool, now *int64) *Backend {
	n := len(g.bs)
	start := int(rand.Uint32N(uint32(n)))
	var best *Backend
	var bestLoad, bestW int64
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		b := g.bs[i]
		if !p.usable(b, exclude, panicMode, now) {
			continue
		}
		// Compare load/weight without division: l/w < bl/bw.
		l, w := b.inFlight.Load(), g.w[i]
		if best == nil || l*bestW < bestLoad*w {
			best, bestLoad, bestW = b, l, w
		}
	}
	return best
}
