package auth

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"
)

const (
	// DefaultFailureBurst is how many failed Basic checks a client address
	// may make at once before further unverified checks are refused with
	// Throttled.
	DefaultFailureBurst = 5

	// DefaultFailureInterval is how often a client earns back one failed
	// check: one bcrypt verification per second per client address.
	DefaultFailureInterval = time.Second

	// maxThrottled bounds the failure table. Past it, clients are not
	// tracked one by one but share the overflow bucket.
	maxThrottled = 1 << 16
)

// clientKey is a client address for throttling: IPv4 addresses whole,
// IPv6 by /64, as in the rate limiter.
type clientKey struct {
	addr uint64
	v6   bool
	over bool // the shared overflow bucket
}

func makeClientKey(a netip.Addr) clientKey {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return clientKey{addr: uint64(binary.BigEndian.Uint32(b[:]))}
	case a.Is6():
		b := a.As16()
		return clientKey{addr: binary.BigEndian.Uint64(b[:8]), v6: true}
	}
	return clientKey{}
}

// throttle limits failed checks per client address with a GCRA token
// bucket of burst tokens refilled every interval: a check takes a token
// and a successful one gives it back. The table is bounded by
// maxThrottled: recovered clients are pruned when it is full, and clients
// that still do not fit share one overflow bucket, so a distributed attack
// is bounded as a whole instead of escaping the limit. Safe for concurrent
// use.
type throttle struct {
	m        *xsync.MapOf[clientKey, *atomic.Int64] // theoretical arrival time
	n        atomic.Int64
	interval int64
	tau      int64
	max      int64
}

func newThrottle(burst int, interval time.Duration, max int) *throttle {
	return &throttle{
		m:        xsync.NewMapOf[clientKey, *atomic.Int64](),
		interval: int64(interval),
		tau:      int64(interval) * int64(burst-1),
		max:      int64(max),
	}
}

// take reserves one check for client at now and returns the bucket to
// refund when the check succeeds, or nil when client has no check left.
// Reserving before verifying bounds the concurrent bcrypt runs of one
// client to the burst, however many requests it sends at once.
func (t *throttle) take(client netip.Addr, now int64) *atomic.Int64 {
	k := makeClientKey(client)
	tat, ok := t.m.Load(k)
	if !ok {
		tat = t.insert(k, now)
	}
	for {
		old := tat.Load()
		v := max(old, now)
		if v-now > t.tau {
			return nil
		}
		if tat.CompareAndSwap(old, v+t.interval) {
			return tat
		}
	}
}

// refund gives back a check reserved by take that succeeded.
func (t *throttle) refund(tat *atomic.Int64) {
	tat.Add(-t.interval)
}

func (t *throttle) insert(k clientKey, now int64) *atomic.Int64 {
	for attempt := 0; ; attempt++ {
		v, ok := t.m.Compute(k, func(old *atomic.Int64, loaded bool) (*atomic.Int64, bool) {
			if loaded {
				return old, false
			}
			if t.n.Add(1) > t.max {
				t.n.Add(-1)
				return nil, true
			}
			return new(atomic.Int64), false
		})
		if ok {
			return v
		}
		if attempt == 0 {
			t.prune(now)
			continue
		}
		v, _ = t.m.LoadOrCompute(clientKey{over: true}, func() *atomic.Int64 { return new(atomic.Int64) })
		return v
	}
}

// prune drops the clients whose bucket is full again at now.
func (t *throttle) prune(now int64) {
	t.m.Range(func(k clientKey, tat *atomic.Int64) bool {
		if k.over || tat.Load() > now {
			return true
		}
		removed := false
		t.m.Compute(k, func(old *atomic.Int64, loaded bool) (*atomic.Int64, bool) {
			if !loaded {
				return nil, true
			}
			if old != tat || old.Load() > now {
				return old, false
			}
			removed = true
			return nil, true
		})
		if removed {
			t.n.Add(-1)
		}
		return true
	})
}
