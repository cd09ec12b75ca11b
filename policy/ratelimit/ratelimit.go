package ratelimit

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"
)

const (
	// DefaultMaxKeys is the hard cap on live keys when Options.MaxKeys is
	// zero: 1<<20 keys, about 94 MB at most (see the package doc).
	DefaultMaxKeys = 1 << 20

	// DefaultIdleTTL is how long a key stays after it went idle when
	// Options.IdleTTL is zero.
	DefaultIdleTTL = 10 * time.Second

	// DefaultSweepInterval is the period Run uses when every is zero or
	// negative. A sweep visits every key (about 0.1 to 0.5 s per million
	// keys, bound by memory latency), so it runs as often as the TTL
	// needs and no more: an idle key goes within IdleTTL plus this.
	DefaultSweepInterval = 10 * time.Second
)

const (
	second = int64(time.Second)

	// maxLimit caps the limit so that the emission interval stays at
	// least one nanosecond; larger limits behave as maxLimit.
	maxLimit = second

	// maxAhead is the furthest a stored theoretical arrival time can be
	// ahead of now: limit*ceil(1e9/limit) < 2e9 for every limit. A value
	// further ahead means the clock went backwards, and the bucket is
	// reset instead of refusing the client until the clock catches up.
	maxAhead = 2 * second

	// deadTAT and deadX4 mark an entry that Sweep removed from the map.
	// A caller holding a stale pointer sees the marker and looks the
	// key up again, so no count is ever applied to a removed entry.
	deadTAT = math.MinInt64
	deadX4  = math.MaxUint64

	// trimSample is how many entries the cap eviction samples to find
	// the age cut-off.
	trimSample = 1024
)

// Key identifies one counter: a client address, a host hash and a route
// identity. IPv4 clients are keyed by their full address, IPv6 clients by
// their /64 (one subscriber's allocation, so rotating the interface
// identifier does not escape the limit). Key is comparable, 32 bytes,
// holds no pointers, and making one does not allocate. The zero Key is the
// key of the zero netip.Addr with host 0 and route 0.
type Key struct {
	addr  uint64 // IPv4 address, or the upper 64 bits of an IPv6 address
	host  uint64
	route uint64
	v6    bool
}

// MakeKey returns the key for client (IPv4-mapped IPv6 addresses count as
// IPv4; the zone is ignored; the zero Addr is one shared client), host (a
// hash of the virtual host name chosen by the caller) and route (an
// identity of the path entry the limit is set on, or 0 when the limit is
// set on the host or globally). With a Store, host and route must be the
// same in every instance and across reloads (a hash of the host name, of
// the host and path prefix), since the store names counters by them.
func MakeKey(client netip.Addr, host uint64, route uint64) Key {
	k := Key{host: host, route: route}
	client = client.Unmap()
	switch {
	case client.Is4():
		a := client.As4()
		k.addr = uint64(binary.BigEndian.Uint32(a[:]))
	case client.Is6():
		a := client.As16()
		k.addr = binary.BigEndian.Uint64(a[:8])
		k.v6 = true
	}
	return k
}

// Client returns the client part of k: the IPv4 address, or the IPv6
// /64 prefix. It is meant for logs and tests.
func (k Key) Client() netip.Prefix {
	if !k.v6 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(k.addr))
		return netip.PrefixFrom(netip.AddrFrom4(a), 32)
	}
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], k.addr)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// Host returns the host part of k, as given to MakeKey.
func (k Key) Host() uint64 { return k.host }

// Route returns the route part of k, as given to MakeKey.
func (k Key) Route() uint64 { return k.route }

// hashKey is the hasher for the key map. It mixes every field with the
// map's random seed (murmur3 finaliser rounds), so clients cannot aim for
// one bucket.
func hashKey(k Key, seed uint64) uint64 {
	h := fmix(seed ^ k.addr)
	h = fmix(h ^ k.host)
	if k.v6 {
		h = ^h
	}
	return fmix(h ^ k.route)
}

func fmix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Options configures a Limiter. The zero value is usable.
type Options struct {
	// MaxKeys is the hard cap on live keys. When the map is full, a pass
	// evicts idle keys and then the least recently active ones, about one
	// eighth of the cap at a time; Run does it when active, else the
	// inserting goroutine. Until the pass has made room, new keys are not
	// stored and are treated as fresh (allowed, not blocked). Zero or
	// negative means DefaultMaxKeys.
	MaxKeys int

	// IdleTTL is how long a key is kept after it became idle: after its
	// token bucket refilled completely and its 4xx window ended. Zero or
	// negative means DefaultIdleTTL.
	IdleTTL time.Duration

	// Store, when not nil, makes the limits hold for a fleet of
	// instances sharing it (see "Fleet" in the package doc): Run then
	// exchanges counts with it every SyncInterval.
	Store Store
	// SyncInterval is how often Run exchanges counts with Store. Zero or
	// negative means DefaultSyncInterval.
	SyncInterval time.Duration
	// FleetSize is the number of instances assumed while Store is
	// unreachable (each then enforces limit/FleetSize, rounded up) and
	// before Store has counted them. Zero or negative means 1.
	FleetSize int
	// Logger receives one line when Store becomes unreachable and one
	// when it is back. Nil means slog.Default().
	Logger *slog.Logger
}

// entry is the state of one key. Both words are only changed with
// compare-and-swap, so a removed entry (marked dead) can never absorb a
// count.
type entry struct {
	// tat is the GCRA theoretical arrival time in nanoseconds: the
	// instant the token bucket is full again. deadTAT when removed.
	tat atomic.Int64
	// x4 is the 4xx window: the window number (now/1s, 32 bits) in the
	// upper half and the count of 4xx responses in it in the lower half.
	// deadX4 when removed.
	x4 atomic.Uint64
	// f is the fleet state; nil unless the Limiter has a Store.
	f *fleetEntry
}

// lastActive returns when e stops mattering: the later of the bucket
// refill time and the end of the 4xx window.
func lastActive(tat int64, x4 uint64) int64 {
	end := (int64(x4>>32) + 1) * second
	if x4 == 0 {
		end = 0
	}
	return max(tat, end)
}

// Limiter holds per-key request-rate and 4xx state. All methods are safe
// for concurrent use; Allow, Blocked and Count4xx for a key already seen
// take no lock and do not allocate. A Limiter must not be copied after
// first use.
//
// One Limiter can serve both the request rate (Allow) and the 4xx limit
// (Blocked, Count4xx): every entry carries both states and they do not
// interfere. Keys for the two limits may differ (route 0 for a host-level
// 4xx limit, a route id for a path-level rate limit) and share the cap.
type Limiter struct {
	_ noCopy

	m       *xsync.MapOf[Key, *entry]
	n       atomic.Int64 // live keys, including ones being inserted
	maxKeys int64
	idleTTL int64

	trimming atomic.Bool // set while one caller trims; it owns sample
	sample   []int64
	running  atomic.Int32  // Run loops active
	trimCh   chan struct{} // wakes Run to trim a full map

	fleet *fleet // nil without Options.Store
}

// New returns a Limiter configured by o.
func New(o Options) *Limiter {
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = DefaultIdleTTL
	}
	l := &Limiter{
		m:       xsync.NewMapOfWithHasher[Key, *entry](hashKey),
		maxKeys: int64(o.MaxKeys),
		idleTTL: int64(o.IdleTTL),
		trimCh:  make(chan struct{}, 1),
	}
	if o.Store != nil {
		l.fleet = newFleet(o)
	}
	return l
}

// Len returns the number of live keys. It is exact when no insert is in
// flight.
func (l *Limiter) Len() int { return int(l.n.Load()) }

// lookup returns the entry of k without creating it, or nil.
func (l *Limiter) lookup(k Key) *entry {
	e, _ := l.m.Load(k)
	return e
}

// get returns the entry of k, creating it when absent. It returns nil when
// the map is full and nothing could be evicted.
func (l *Limiter) get(k Key, now int64) *entry {
	if e, ok := l.m.Load(k); ok {
		return e
	}
	return l.insert(k, now)
}

// insert looks k up under the bucket lock and creates its entry. Taking
// the lock also waits out a concurrent Sweep of k, so a caller that saw a
// dead entry gets either the revived entry or a new one.
func (l *Limiter) insert(k Key, now int64) *entry {
	for attempt := 0; ; attempt++ {
		e, ok := l.m.Compute(k, func(old *entry, loaded bool) (*entry, bool) {
			if loaded {
				return old, false
			}
			if l.n.Add(1) > l.maxKeys {
				l.n.Add(-1)
				return nil, true
			}
			return l.newEntry(), false
		})
		if ok {
			return e
		}
		if attempt > 0 {
			return nil
		}
		if l.running.Load() > 0 {
			// Run owns eviction: wake it and serve this key untracked
			// rather than stall the request for a pass over the map.
			select {
			case l.trimCh <- struct{}{}:
			default:
			}
			return nil
		}
		if !l.trim(now) {
			return nil
		}
	}
}

// Allow reports whether one more request for k fits in limit requests per
// second at nowNanos, and counts it when it does. When it does not,
// retryAfterSeconds is the whole number of seconds (at least 1) until the
// next request for k would be allowed, for the Retry-After header.
//
// The algorithm is GCRA, a token bucket of capacity limit refilled at limit
// tokens per second: a client may send limit requests at once, then one
// every 1/limit seconds. Refused requests are not counted. The count is
// exact under concurrency (one compare-and-swap on one word); see the
// package doc for the bound over any interval. A limit of zero or less
// means no limit. nowNanos is Unix time in nanoseconds (time.Now().UnixNano()),
// the clock Run uses too.
func (l *Limiter) Allow(k Key, limit int, nowNanos int64) (ok bool, retryAfterSeconds int) {
	if limit <= 0 {
		return true, 0
	}
	e := l.get(k, nowNanos)
	if e == nil {
		return true, 0 // full: fail open, see Options.MaxKeys
	}
	lim := min(int64(limit), maxLimit)
	if l.fleet != nil && e.f != nil {
		if lim = l.fleet.rateLimit(k, e, lim); lim == 0 {
			return false, 1
		}
	}
	t, tau := emission(lim) // emission interval (rounded up), burst tolerance
	for {
		old := e.tat.Load()
		if old == deadTAT {
			if e = l.insert(k, nowNanos); e == nil {
				return true, 0
			}
			continue
		}
		tat := old
		if tat < nowNanos || tat-nowNanos > maxAhead {
			tat = nowNanos
		}
		if wait := tat - tau - nowNanos; wait > 0 {
			return false, ceilSeconds(wait)
		}
		if e.tat.CompareAndSwap(old, tat+t) {
			if e.f != nil {
				l.fleet.admitted(k, e)
			}
			return true, 0
		}
	}
}

// Blocked reports whether k is over its 4xx limit: more than limit 4xx
// responses were counted for k in the current one-second window (windows
// are aligned to whole seconds of nowNanos). A blocked key stays blocked
// for the rest of that window; retryAfterSeconds is then 1. Without a
// Store, Blocked only reads: it never creates a key; with one it creates
// the key, so that the 4xx counted by the other instances reach it, and
// adds their count to the local one. A limit of zero or less means no
// limit.
func (l *Limiter) Blocked(k Key, limit int, nowNanos int64) (blocked bool, retryAfterSeconds int) {
	if limit <= 0 {
		return false, 0
	}
	var e *entry
	if l.fleet == nil {
		e = l.lookup(k)
	} else {
		// The other instances may have counted 4xx for a client new
		// here: the key must exist to be exchanged.
		e = l.get(k, nowNanos)
	}
	if e == nil {
		return false, 0
	}
	w := window(nowNanos)
	lim := uint64(limit)
	var n uint64
	if x4 := e.x4.Load(); x4 != deadX4 && x4>>32 == w {
		n = x4 & math.MaxUint32
	}
	if l.fleet != nil && e.f != nil {
		lim = uint64(l.fleet.x4Limit(k, e, int64(limit)))
		n += l.fleet.others(e, w)
	}
	if n <= lim {
		return false, 0
	}
	return true, ceilSeconds((int64(w)+1)*second - nowNanos)
}

// Count4xx counts one 4xx response for k in the window of nowNanos. The
// caller counts the responses of upstreams and of its own policy checks
// (401, 403, 404), but never the 429s the proxy itself answers for a rate
// or 4xx limit: counting those would keep a client that retries once a
// second locked out forever.
func (l *Limiter) Count4xx(k Key, nowNanos int64) {
	e := l.get(k, nowNanos)
	w := window(nowNanos)
	for e != nil {
		old := e.x4.Load()
		if old == deadX4 {
			e = l.insert(k, nowNanos)
			continue
		}
		nw := w<<32 | 1
		if old>>32 == w {
			if old&math.MaxUint32 == math.MaxUint32 {
				return // saturated
			}
			nw = old + 1
		}
		if e.x4.CompareAndSwap(old, nw) {
			if e.f != nil {
				l.fleet.counted4xx(k, e)
			}
			return
		}
	}
}

// window returns the 4xx window number of now: whole seconds, modulo 2^32.
func window(now int64) uint64 {
	return uint64(now/second) & math.MaxUint32
}

// ceilSeconds converts a positive duration in nanoseconds to whole seconds,
// rounding up, at least 1.
func ceilSeconds(d int64) int {
	return int(max(1, (d+second-1)/second))
}

// Sweep removes the keys that have been idle for at least Options.IdleTTL
// at nowNanos and returns how many it removed. It runs concurrently with
// the other methods without losing counts. The owner calls it
// periodically, or uses Run.
func (l *Limiter) Sweep(nowNanos int64) int {
	cutoff := nowNanos - l.idleTTL
	n := 0
	l.m.Range(func(k Key, e *entry) bool {
		if lastActive(e.tat.Load(), e.x4.Load()) <= cutoff && l.evict(k, e, cutoff) {
			n++
		}
		return true
	})
	return n
}

// evict removes k if its entry is still e and still inactive since cutoff.
// It marks the entry dead under the bucket lock first, so a concurrent
// Allow or Count4xx either lands before (and the entry stays) or sees the
// marker and re-inserts after the removal.
func (l *Limiter) evict(k Key, e *entry, cutoff int64) bool {
	removed := false
	l.m.Compute(k, func(old *entry, loaded bool) (*entry, bool) {
		if !loaded {
			return nil, true
		}
		if old != e {
			return old, false
		}
		tat, x4 := e.tat.Load(), e.x4.Load()
		if tat == deadTAT || lastActive(tat, x4) > cutoff {
			return old, false
		}
		if !e.tat.CompareAndSwap(tat, deadTAT) {
			return old, false
		}
		if !e.x4.CompareAndSwap(x4, deadX4) {
			e.tat.Store(tat) // a 4xx arrived in between: keep the key
			return old, false
		}
		removed = true
		return nil, true
	})
	if removed {
		l.n.Add(-1)
	}
	return removed
}

// trim makes room when the map is full: it removes idle keys and then the
// least recently active ones until about one eighth of the cap is free.
// Only one caller trims at a time; the others return false at once. It
// reports whether it ran.
func (l *Limiter) trim(now int64) bool {
	if !l.trimming.CompareAndSwap(false, true) {
		return false
	}
	defer l.trimming.Store(false)

	target := max(1, l.maxKeys/8)
	removed := int64(l.Sweep(now))
	if removed >= target {
		return true
	}
	// The map iterates in hash order, so its first entries are a uniform
	// sample. Find the activity time below which about the needed fraction
	// of keys lies.
	l.sample = l.sample[:0]
	l.m.Range(func(_ Key, e *entry) bool {
		l.sample = append(l.sample, lastActive(e.tat.Load(), e.x4.Load()))
		return len(l.sample) < trimSample
	})
	if len(l.sample) == 0 {
		return true
	}
	slices.Sort(l.sample)
	live := max(1, l.n.Load())
	i := int((target - removed) * int64(len(l.sample)) / live)
	cutoff := l.sample[min(i, len(l.sample)-1)]
	l.m.Range(func(k Key, e *entry) bool {
		if lastActive(e.tat.Load(), e.x4.Load()) <= cutoff && l.evict(k, e, cutoff) {
			removed++
		}
		return removed < target
	})
	return true
}

// Run calls Sweep every interval (DefaultSweepInterval when every is zero
// or negative) with the current Unix time until ctx is done. While Run is
// active it also does the cap eviction, woken by the first insert into a
// full map, so that no request pays for a pass over the map; new keys
// arriving until the pass ends are served untracked (see Options.MaxKeys).
// Without Run, the inserting goroutine evicts. A panic in a pass is
// recovered and the next pass runs as scheduled. Several Run loops may
// share a Limiter, though one is enough.
func (l *Limiter) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultSweepInterval
	}
	l.running.Add(1)
	defer l.running.Add(-1)
	if f := l.fleet; f != nil && f.running.CompareAndSwap(false, true) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.exchangeLoop(ctx)
		}()
		defer func() { <-done; f.running.Store(false) }()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.safely(func() { l.Sweep(now.UnixNano()) })
		case <-l.trimCh:
			l.safely(func() { l.trim(time.Now().UnixNano()) })
		}
	}
}

func (l *Limiter) safely(f func()) {
	defer func() { _ = recover() }()
	f()
}

// noCopy makes go vet report copies of a Limiter.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
