package auth

import (
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v3"
)

// DefaultCacheSize is the number of verified credentials a Basic or JWT
// keeps when no size is configured.
const DefaultCacheSize = 4096

// cache remembers verified credentials so that the hot path does not
// re-run bcrypt or HMAC. It is keyed by a seeded hash of the credential
// and stores a copy of the credential, which a hit compares in constant
// time, so a hash collision can never let a different credential in. It
// holds at most max entries; a full cache drops expired entries and then
// arbitrary ones, an eighth of max at a time. Safe for concurrent use; a
// hit takes no lock and does not allocate.
type cache struct {
	seed maphash.Seed
	m    *xsync.MapOf[uint64, *cacheEntry]
	n    atomic.Int64
	max  int64
}

// cacheEntry is immutable once stored.
type cacheEntry struct {
	cred []byte
	exp  int64 // Unix nanoseconds after which the entry is void; 0 = never
}

func newCache(max int) *cache {
	if max <= 0 {
		max = DefaultCacheSize
	}
	return &cache{
		seed: maphash.MakeSeed(),
		m:    xsync.NewMapOf[uint64, *cacheEntry](),
		max:  int64(max),
	}
}

// get reports whether cred is cached and not expired at now.
func (c *cache) get(cred []byte, now int64) bool {
	h := maphash.Bytes(c.seed, cred)
	e, ok := c.m.Load(h)
	if !ok || !ctEqual(e.cred, cred) {
		return false
	}
	if e.exp != 0 && now > e.exp {
		c.remove(h, e)
		return false
	}
	return true
}

// put caches a copy of cred until exp (Unix nanoseconds; 0 = no expiry).
func (c *cache) put(cred []byte, exp int64, now int64) {
	e := &cacheEntry{cred: append([]byte(nil), cred...), exp: exp}
	h := maphash.Bytes(c.seed, cred)
	for attempt := 0; attempt < 2; attempt++ {
		stored := false
		c.m.Compute(h, func(old *cacheEntry, loaded bool) (*cacheEntry, bool) {
			if loaded {
				stored = true // replace: same hash, count unchanged
				return e, false
			}
			if c.n.Add(1) > c.max {
				c.n.Add(-1)
				return nil, true
			}
			stored = true
			return e, false
		})
		if stored {
			return
		}
		c.evict(now)
	}
}

// remove deletes h if it still maps to e.
func (c *cache) remove(h uint64, e *cacheEntry) {
	removed := false
	c.m.Compute(h, func(old *cacheEntry, loaded bool) (*cacheEntry, bool) {
		if !loaded {
			return nil, true
		}
		if old != e {
			return old, false
		}
		removed = true
		return nil, true
	})
	if removed {
		c.n.Add(-1)
	}
}

// evict frees about an eighth of the cache: expired entries first, then
// whatever the iteration (in hash order, so effectively random) meets.
func (c *cache) evict(now int64) {
	target := max(1, c.max/8)
	var freed int64
	c.m.Range(func(h uint64, e *cacheEntry) bool {
		if e.exp != 0 && now > e.exp {
			c.remove(h, e)
			freed++
		}
		return true
	})
	if freed >= target {
		return
	}
	c.m.Range(func(h uint64, e *cacheEntry) bool {
		c.remove(h, e)
		freed++
		return freed < target
	})
}

// len returns the number of cached entries.
func (c *cache) len() int { return int(c.n.Load()) }

// ctEqual reports whether a and b are equal in time that depends only on
// their lengths, like subtle.ConstantTimeCompare but eight bytes at a time:
// cached JWTs are a few hundred bytes long and this runs on every request.
func ctEqual(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var acc uint64
	i := 0
	for ; i+8 <= len(a); i += 8 {
		acc |= binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:])
	}
	for ; i < len(a); i++ {
		acc |= uint64(a[i] ^ b[i])
	}
	return acc == 0
}
