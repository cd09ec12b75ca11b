package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"
)

const (
	// DefaultSyncInterval is Options.SyncInterval when zero: how often
	// Run exchanges counts with the Store.
	DefaultSyncInterval = 100 * time.Millisecond

	// MaxSyncKeys is the most keys one exchange carries. Keys beyond it
	// wait in the queue for the next exchange; keys that find the queue
	// full are counted locally and retried by their next request.
	MaxSyncKeys = 1 << 14

	// firstGen is the exchange generation Run starts at; a new entry's
	// synced generation (0) is then at least two behind, so it is stale.
	firstGen = 2
)

// Store is where the instances of a fleet meet: each exchange pushes the
// counts an instance made since its previous exchange and brings back
// the fleet's state of each key. policy/ratelimit/redisstore implements
// it on Redis. Exchange is called by one goroutine at a time (Run's
// exchange loop), off the request path.
type Store interface {
	// Exchange adds each item's local counts to the fleet's state and
	// fills in its Ahead and X4Fleet, atomically per key. It also
	// announces this instance and returns how many instances announced
	// themselves recently (at least 1 on success). On error no item is
	// filled; ctx bounds the whole call.
	Exchange(ctx context.Context, items []Exchange) (instances int, err error)
}

// Exchange is one key's part of an exchange with a Store.
type Exchange struct {
	// Key names the counter. Stores build their own names from its
	// stable parts: Key.Client, Key.Host, Key.Route.
	Key Key

	// Interval is the emission interval of the key's rate limit: one
	// request per Interval on average, the GCRA "T". Zero means the key
	// has no rate limit (only X4 fields matter).
	Interval time.Duration
	// MaxAhead caps the fleet's theoretical arrival time: at most this
	// far ahead of the store's clock.
	MaxAhead time.Duration
	// Admitted is how many requests this instance admitted for Key since
	// its previous exchange of Key.
	Admitted int64
	// Ahead is set by the Store: how far the fleet's theoretical arrival
	// time (TAT) is ahead of the store's clock after adding Admitted
	// (TAT = max(TAT, now) + Admitted×Interval, capped at now+MaxAhead);
	// zero when the fleet's bucket is full.
	Ahead time.Duration

	// X4Window is the one-second window (Unix seconds, modulo 2^32) that
	// X4Count belongs to. X4Limit is the key's 4xx limit; zero means the
	// key has none and the X4 fields are ignored.
	X4Window uint32
	X4Limit  int
	// X4Count is how many 4xx responses this instance counted for Key in
	// X4Window since its previous exchange of Key.
	X4Count int64
	// X4Fleet is set by the Store: the fleet's 4xx count for Key in
	// X4Window, including X4Count.
	X4Fleet int64

	x4Local uint64 // this instance's count in X4Window when collected
}

// FleetStats describes the exchanges of a Limiter with its Store, for
// metrics. Counters only grow.
type FleetStats struct {
	// Up reports whether the last exchange succeeded (true before the
	// first one).
	Up bool
	// Instances is how many instances the Store counted at the last
	// successful exchange; 0 before the first.
	Instances int
	// Exchanges and Failures count exchanges and the failed ones.
	Exchanges, Failures uint64
	// Outages counts the times the Store became unreachable.
	Outages uint64
	// Keys counts the keys exchanged.
	Keys uint64
	// Dropped counts keys that could not be queued for an exchange (the
	// queue was full, or a concurrent insert won its slot); they were
	// counted locally until a later request queued them.
	Dropped uint64
}

// fleetEntry is the fleet part of an entry: what was counted here since
// the last exchange and what the fleet said at the last exchange. The
// fields the request path reads come first, next to the entry's words.
type fleetEntry struct {
	pending atomic.Int32  // requests admitted since the last exchange
	flags   atomic.Uint32 // flagQueued | flagHot | flagHot4
	limit   atomic.Int32  // the rate limit last applied (req/s)
	report  atomic.Int32  // admissions kept unreported (see thresholds)
	share   atomic.Int32  // admissions allowed while stale
	synced  atomic.Uint32 // generation of the last exchange that applied

	x4limit  atomic.Int32  // the 4xx limit last applied
	x4pend   atomic.Int32  // 4xx counted since the last exchange
	x4others atomic.Uint64 // window<<32 | 4xx counted elsewhere in it
}

// Bits of fleetEntry.flags.
const (
	flagQueued = 1 << iota // waiting in the exchange queue
	flagHot                // the fleet's bucket was less than half full
	flagHot4               // the fleet's 4xx count was over half the limit
)

// setFlag sets or clears bit in fe.flags.
func (fe *fleetEntry) setFlag(bit uint32, on bool) {
	if on {
		fe.flags.Or(bit)
	} else {
		fe.flags.And(^bit)
	}
}

// fleetPair is allocated for a key when the Limiter has a Store: one
// allocation for both parts.
type fleetPair struct {
	entry
	fleetEntry
}

// queued is an item of the exchange queue.
type queued struct {
	k Key
	e *entry
}

// fleet is the Limiter's link to a Store.
type fleet struct {
	store Store
	every time.Duration
	size  int64
	log   *slog.Logger
	q     *xsync.MPMCQueueOf[queued]

	gen       atomic.Uint32 // exchange generation, bumped by each exchange
	down      atomic.Bool   // the last exchange failed: local limits only
	instances atomic.Int64  // instances counted at the last exchange
	running   atomic.Bool   // an exchange loop runs

	exchanges, failures, outages, keys, dropped atomic.Uint64

	// Owned by the exchange loop.
	ents  []*entry
	batch []Exchange
}

func newFleet(o Options) *fleet {
	f := &fleet{store: o.Store, every: o.SyncInterval, size: int64(o.FleetSize), log: o.Logger,
		q: xsync.NewMPMCQueueOf[queued](MaxSyncKeys)}
	if f.every <= 0 {
		f.every = DefaultSyncInterval
	}
	if f.size <= 0 {
		f.size = 1
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.gen.Store(firstGen)
	return f
}

func (l *Limiter) newEntry() *entry {
	if l.fleet == nil {
		return new(entry)
	}
	p := &fleetPair{}
	p.entry.f = &p.fleetEntry
	return &p.entry
}

// queue puts k's entry e in the exchange queue unless it is there
// already.
func (f *fleet) queue(k Key, e *entry) {
	fe := e.f
	if fe.flags.Load()&flagQueued != 0 || fe.flags.Or(flagQueued)&flagQueued != 0 {
		return
	}
	if !f.q.TryEnqueue(queued{k, e}) {
		fe.setFlag(flagQueued, false)
		f.dropped.Add(1)
	}
}

// rateLimit applies the fleet to a rate-limit decision for k's entry e:
// it returns the limit to enforce here, or 0 when the request must be
// refused before the local bucket is asked.
//
// While the store is unreachable each instance enforces limit/size.
// Otherwise a key that missed the last exchange (new here, or idle here
// for a while) is stale: this instance does not know what the others
// admitted, so until the next exchange it admits at most its share of
// the limit, limit divided by the instances the store counted. A key
// whose fleet bucket was less than half full at the last exchange is hot
// and exchanged every interval while requests come.
func (f *fleet) rateLimit(k Key, e *entry, lim int64) int64 {
	fe := e.f
	if int64(fe.limit.Load()) != lim {
		f.thresholds(fe, lim)
	}
	if !f.running.Load() {
		return lim // no exchange loop: nothing to wait for
	}
	if f.down.Load() {
		return ceilDiv(lim, f.size)
	}
	if fe.flags.Load()&flagHot != 0 {
		f.queue(k, e)
	}
	if fe.synced.Load()+1 < f.gen.Load() && fe.pending.Load() >= fe.share.Load() {
		f.queue(k, e)
		return 0
	}
	return lim
}

// admitted counts a request admitted for k's entry e and queues it for
// the next exchange once it has a report's worth of admissions.
func (f *fleet) admitted(k Key, e *entry) {
	if e.f.pending.Add(1) >= e.f.report.Load() {
		f.queue(k, e)
	}
}

// thresholds stores lim in fe with the numbers derived from it and the
// instance count: the share a stale key may admit (lim/n, rounded up)
// and the report, how many admissions an instance keeps to itself before
// it exchanges a key that is not hot: a quarter of the limit's refill in
// one interval divided among the instances, at least 1. Below the report
// a key costs the store nothing; the fleet can miss at most this many
// per instance, a quarter of one interval's refill in all.
func (f *fleet) thresholds(fe *fleetEntry, lim int64) {
	n := f.n()
	fe.share.Store(int32(ceilDiv(lim, n)))
	fe.report.Store(int32(max(1, (lim*int64(f.every)+4*n*second-1)/(4*n*second))))
	fe.limit.Store(int32(lim))
}

// n is the number of instances: as counted by the store, else the
// configured fleet size.
func (f *fleet) n() int64 {
	if n := f.instances.Load(); n > 0 {
		return n
	}
	return f.size
}

// x4Limit is rateLimit for the 4xx limit: it records the limit and
// returns the limit to enforce here.
func (f *fleet) x4Limit(k Key, e *entry, lim int64) int64 {
	fe := e.f
	if int64(fe.x4limit.Load()) != lim {
		f.x4thresholds(fe, lim)
	}
	if !f.running.Load() {
		return lim
	}
	if f.down.Load() {
		return ceilDiv(lim, f.size)
	}
	if fe.flags.Load()&flagHot4 != 0 {
		f.queue(k, e)
	}
	return lim
}

// x4thresholds records a 4xx limit in fe.
func (f *fleet) x4thresholds(fe *fleetEntry, lim int64) {
	fe.x4limit.Store(int32(lim))
}

// counted4xx counts a 4xx response for k's entry e and queues it for the
// next exchange once it has a report's worth: for a limit on whole
// one-second windows, a quarter of the limit divided among the
// instances, at least 1.
func (f *fleet) counted4xx(k Key, e *entry) {
	fe := e.f
	n := 4 * f.n()
	if int64(fe.x4pend.Add(1)) >= max(1, (int64(fe.x4limit.Load())+n-1)/n) {
		f.queue(k, e)
	}
}

// others returns the 4xx count the other instances made in window w, as
// of the last exchange.
func (f *fleet) others(e *entry, w uint64) uint64 {
	if f.down.Load() {
		return 0
	}
	o := e.f.x4others.Load()
	if o>>32 != w {
		return 0
	}
	return o & math.MaxUint32
}

func ceilDiv(a, b int64) int64 {
	if b <= 1 {
		return a
	}
	return (a + b - 1) / b
}

// emission returns the GCRA emission interval and burst tolerance of lim
// requests per second.
func emission(lim int64) (t, tau int64) {
	lim = min(max(lim, 1), maxLimit)
	t = (second + lim - 1) / lim
	return t, t * (lim - 1)
}

// fleetMaxAhead is how far the fleet's TAT may run ahead of now: an empty
// bucket (tau) plus up to a second of debt, so that what a fleet admitted
// over the limit during one exchange interval is paid back, but always
// less than maxAhead, which would look like a clock step.
func fleetMaxAhead(t, tau int64) int64 { return tau + second - t }

// exchangeLoop runs exchanges every interval until ctx is done.
func (l *Limiter) exchangeLoop(ctx context.Context) {
	f := l.fleet
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.safely(func() { f.exchange(ctx) })
		}
	}
}

// exchange sends the queued keys' counts to the store and applies what
// it answers: each key's local bucket is moved to the fleet's TAT (plus
// what was admitted here since), and the 4xx counts of the other
// instances are kept for Blocked. A failed exchange switches every key to
// its local limit (divided by the fleet size) until one succeeds; it is
// logged once per outage.
func (f *fleet) exchange(ctx context.Context) {
	g := f.gen.Add(1)
	w := window(time.Now().UnixNano())
	f.ents, f.batch = f.ents[:0], f.batch[:0]
	for len(f.ents) < MaxSyncKeys {
		qi, ok := f.q.TryDequeue()
		if !ok {
			break
		}
		e, fe := qi.e, qi.e.f
		fe.setFlag(flagQueued, false)
		if e.tat.Load() == deadTAT {
			continue // swept
		}
		it := Exchange{Key: qi.k, Admitted: int64(fe.pending.Swap(0))}
		if lim := int64(fe.limit.Load()); lim > 0 {
			t, tau := emission(lim)
			it.Interval, it.MaxAhead = time.Duration(t), time.Duration(fleetMaxAhead(t, tau))
		}
		if xl := fe.x4limit.Load(); xl > 0 {
			// Counts of an earlier window are not pushed: it is over.
			it.X4Limit, it.X4Window = int(xl), uint32(w)
			n := int64(fe.x4pend.Swap(0))
			if x4 := e.x4.Load(); x4 != deadX4 && x4>>32 == w {
				it.X4Count, it.x4Local = n, x4&math.MaxUint32
			}
		}
		f.ents = append(f.ents, e)
		f.batch = append(f.batch, it)
	}
	cctx, cancel := context.WithTimeout(ctx, f.every)
	n, err := f.store.Exchange(cctx, f.batch)
	cancel()
	f.exchanges.Add(1)
	if err != nil {
		f.failures.Add(1)
		if !f.down.Swap(true) {
			f.outages.Add(1)
			f.log.Warn("rate-limit store unreachable; each instance enforces its limits alone",
				"fleet_size", f.size, "err", err)
		}
		return
	}
	if f.down.Swap(false) {
		f.log.Info("rate-limit store reachable again; limits hold for the fleet", "instances", n)
	}
	f.instances.Store(int64(max(n, 1)))
	f.keys.Add(uint64(len(f.batch)))
	now := time.Now().UnixNano()
	for i, e := range f.ents {
		f.apply(e, &f.batch[i], now, g)
	}
}

// apply moves e to the fleet's state in it, as of now.
func (f *fleet) apply(e *entry, it *Exchange, now int64, g uint32) {
	fe := e.f
	if it.Interval > 0 {
		t := int64(it.Interval)
		limit := now + int64(it.MaxAhead)
		fleetTAT := min(now+int64(it.Ahead), limit)
		for {
			old := e.tat.Load()
			if old == deadTAT {
				break
			}
			// The fleet's TAT counts what this instance pushed; what it
			// admitted since comes on top.
			nt := max(old, min(fleetTAT+int64(fe.pending.Load())*t, limit))
			if nt == old || e.tat.CompareAndSwap(old, nt) {
				break
			}
		}
		lim := int64(fe.limit.Load())
		_, tau := emission(lim)
		fe.setFlag(flagHot, 2*int64(it.Ahead) > tau)
		f.thresholds(fe, lim)
	}
	if it.X4Limit > 0 && uint64(it.X4Window) == window(now) {
		others := uint64(max(it.X4Fleet, 0))
		others -= min(others, it.x4Local)
		fe.x4others.Store(uint64(it.X4Window)<<32 | min(others, math.MaxUint32))
		fe.setFlag(flagHot4, 2*it.X4Fleet > int64(it.X4Limit))
		f.x4thresholds(fe, int64(it.X4Limit))
	}
	fe.synced.Store(g)
}

// FleetStats returns the counters of the exchanges with the Store; the
// zero value when the Limiter has none.
func (l *Limiter) FleetStats() FleetStats {
	f := l.fleet
	if f == nil {
		return FleetStats{}
	}
	return FleetStats{
		Up:        !f.down.Load(),
		Instances: int(f.instances.Load()),
		Exchanges: f.exchanges.Load(),
		Failures:  f.failures.Load(),
		Outages:   f.outages.Load(),
		Keys:      f.keys.Load(),
		Dropped:   f.dropped.Load(),
	}
}
