package cache

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/puzpuzpuz/xsync/v3"
)

// Defaults of Options.
const (
	// DefaultTTL is Options.DefaultTTL when zero: Aralez's cache_ttl.
	DefaultTTL = 60 * time.Second
	// DefaultMaxObjectBytes is Options.MaxObjectBytes when zero: 1 MiB.
	DefaultMaxObjectBytes = 1 << 20
	// DefaultLockTimeout is Options.LockTimeout when zero: how long a
	// request waits for another one fetching the same key (nginx's
	// proxy_cache_lock_timeout).
	DefaultLockTimeout = 5 * time.Second
	// DefaultHitForMiss is Options.HitForMiss when zero.
	DefaultHitForMiss = 10 * time.Second
	// DefaultKeepStale is Options.KeepStale when zero.
	DefaultKeepStale = 10 * time.Minute
	// DefaultMaxVariants is Options.MaxVariants when zero.
	DefaultMaxVariants = 8
)

// ErrNoSize is returned by New when Options.MaxBytes is not positive.
var ErrNoSize = errors.New("cache: MaxBytes must be positive")

// Options configures a Cache. Zero fields take the Default… values.
type Options struct {
	// MaxBytes bounds the stored entries' total size in bytes (bodies,
	// header fields, keys and a fixed per-entry overhead): cache_size_mb.
	MaxBytes int64
	// MaxObjectBytes is the largest body stored (cache_max_object_bytes);
	// it is capped at a quarter of MaxBytes so that one response cannot
	// flush the cache.
	MaxObjectBytes int
	// DefaultTTL is the freshness lifetime of a cacheable response
	// without freshness information (cache_ttl), unless the request's
	// route gives its own (Request.TTL).
	DefaultTTL time.Duration
	// LockTimeout bounds how long a request waits for another request
	// that is fetching or revalidating the same key; after it, the
	// request goes upstream itself.
	LockTimeout time.Duration
	// HitForMiss is how long an uncacheable answer leaves a marker that
	// sends later requests for the key straight upstream, without
	// waiting on each other.
	HitForMiss time.Duration
	// KeepStale is how long an entry with a validator (ETag or
	// Last-Modified) is kept after it has gone stale and its stale-*
	// windows have passed, for revalidation.
	KeepStale time.Duration
	// MaxVariants bounds the Vary variants stored per key; the oldest
	// goes first.
	MaxVariants int
}

// Cache is an RFC 9111 shared cache in memory. Entries live in an otter
// W-TinyLFU cache bounded by weight (bytes); lookups take no locks and
// allocate nothing. Concurrent misses for one key are coalesced: one
// request fetches, the others wait (at most LockTimeout) and are served
// from its answer. A Cache is safe for concurrent use and must not be
// copied; Close stops its maintenance goroutine.
type Cache struct {
	_     noCopy
	o     Options
	seed  maphash.Seed
	store *otter.Cache[uint64, *node]
	fills *xsync.MapOf[uint64, *Fill]

	items        atomic.Int64
	evictedItems atomic.Uint64
	evictedBytes atomic.Uint64
}

// node is what the storage holds per primary key: the Vary variants of
// the response (usually one), or a hit-for-miss marker. Nodes are
// immutable; a store replaces the node.
type node struct {
	key      []byte
	variants []*Entry
	hfmUntil int64 // hit-for-miss marker until this Unix ns; 0 = none
	expireAt int64 // Unix ns
	weight   uint32
}

// nodeOverhead estimates a node's own cost (struct, slice, storage).
const nodeOverhead = 128

// New returns a Cache bounded by o.MaxBytes.
//
// It returns ErrNoSize when o.MaxBytes is not positive.
func New(o Options) (*Cache, error) {
	if o.MaxBytes <= 0 {
		return nil, ErrNoSize
	}
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = DefaultMaxObjectBytes
	}
	o.MaxObjectBytes = int(min(int64(o.MaxObjectBytes), o.MaxBytes/4, 1<<31))
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = DefaultTTL
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.HitForMiss <= 0 {
		o.HitForMiss = DefaultHitForMiss
	}
	if o.KeepStale <= 0 {
		o.KeepStale = DefaultKeepStale
	}
	if o.MaxVariants <= 0 {
		o.MaxVariants = DefaultMaxVariants
	}
	c := &Cache{o: o, seed: maphash.MakeSeed(), fills: xsync.NewMapOf[uint64, *Fill]()}
	store, err := otter.New(&otter.Options[uint64, *node]{
		MaximumWeight: uint64(o.MaxBytes),
		Weigher:       func(_ uint64, n *node) uint32 { return n.weight },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[uint64, *node]) time.Duration {
			return time.Duration(e.Value.expireAt - time.Now().UnixNano())
		}),
		OnAtomicDeletion: c.deleted,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: building the storage: %w", err)
	}
	c.store = store
	return c, nil
}

// MaxObjectBytes returns the largest body the cache stores.
func (c *Cache) MaxObjectBytes() int { return c.o.MaxObjectBytes }

// Close stops the storage's maintenance goroutine. The Cache must not be
// used afterwards.
func (c *Cache) Close() { c.store.StopAllGoroutines() }

// deleted keeps the item and eviction counts; it runs inside the
// storage's atomic deletion.
func (c *Cache) deleted(e otter.DeletionEvent[uint64, *node]) {
	n := int64(len(e.Value.variants))
	c.items.Add(-n)
	if e.WasEvicted() {
		c.evictedItems.Add(uint64(n))
		c.evictedBytes.Add(uint64(e.Value.weight))
	}
}

// Stats is a snapshot of the storage, in Aralez's metric terms.
type Stats struct {
	// SizeBytes is the stored weight (aralez_cache_size_bytes); it stays
	// at or under Options.MaxBytes, apart from the instants between a
	// write and the eviction it triggers.
	SizeBytes uint64
	// Items counts stored responses, each Vary variant once
	// (aralez_cache_items).
	Items uint64
	// EvictedBytes and EvictedItems count what the size bound and expiry
	// removed (aralez_cache_evicted_bytes_total,
	// aralez_cache_evicted_items_total); purges, invalidations and
	// replacements are not evictions.
	EvictedBytes, EvictedItems uint64
}

// Stats returns the current storage figures.
func (c *Cache) Stats() Stats {
	return Stats{
		SizeBytes:    c.store.WeightedSize(),
		Items:        uint64(max(c.items.Load(), 0)),
		EvictedBytes: c.evictedBytes.Load(),
		EvictedItems: c.evictedItems.Load(),
	}
}

func (c *Cache) hash(key []byte) uint64 { return maphash.Bytes(c.seed, key) }

// Outcome is the cache's verdict on a request.
type Outcome uint8

// Outcomes of Lookup.
const (
	// Bypass: the cache does not apply (method, Range); forward as usual.
	Bypass Outcome = iota
	// Hit: serve Result.Entry (see Result.Stale and Result.NotModified).
	Hit
	// Miss: forward, then give the answer to Store.
	Miss
	// Revalidate: forward with the validators of Result.Entry
	// (If-None-Match from ETag, If-Modified-Since from Last-Modified);
	// a 304 goes to Revalidated, a full answer to Store, a failure to
	// StaleOnError.
	Revalidate
	// GatewayTimeout: only-if-cached and nothing usable is stored;
	// answer 504 (RFC 9111 §5.2.1.7).
	GatewayTimeout
)

var outcomeNames = [...]string{"bypass", "hit", "miss", "revalidate", "gateway timeout"}

// String returns the outcome's name.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Result is what Lookup decided.
type Result struct {
	// Outcome says what to do.
	Outcome Outcome
	// Entry is the entry to serve (Hit) or the stored entry to revalidate
	// (Revalidate; also the stale-if-error fallback).
	Entry *Entry
	// Fill, when non-nil, makes this request the one that fetches the
	// key for everyone waiting on it: hand it to Store, Revalidated or
	// StaleOnError, or call Abandon; one of them must be called. On a
	// stale Hit it asks the caller to revalidate in the background
	// (stale-while-revalidate).
	Fill *Fill
	// Stale marks a Hit served stale (stale-while-revalidate, or the
	// client's max-stale).
	Stale bool
	// NotModified marks a Hit whose client's conditional headers match:
	// answer 304 Not Modified.
	NotModified bool
}

// Lookup decides how to serve r at now (Unix ns): from the cache, or
// upstream. When another request is already fetching the key, Lookup
// waits for it, at most Options.LockTimeout. A fresh hit allocates
// nothing.
func (c *Cache) Lookup(r *Request, now int64) Result {
	get := string(r.Method) == "GET"
	if !get && string(r.Method) != "HEAD" {
		return Result{Outcome: Bypass}
	}
	h := r.Header
	if h.Peek(strRange) != nil {
		// Range requests bypass the cache: 206 is never stored, and a
		// full stored response is not cut into ranges.
		return Result{Outcome: Bypass}
	}
	reqCC := parseRequestCC(h.Peek(strCacheControl), h.Peek(strPragma))
	hash := c.hash(r.Key)
	for waited := false; ; waited = true {
		raw, _ := c.store.GetIfPresent(hash)
		n := raw
		if n != nil && !bytes.Equal(n.key, r.Key) {
			n = nil // a hash collision: another key
		}
		var e *Entry
		if n != nil {
			e = n.match(h)
			if e != nil && r.Credentials && !e.shareable {
				// RFC 9111 §3.5: not for requests with credentials. Go
				// upstream alone: the answer may differ per identity.
				return Result{Outcome: Miss}
			}
		}
		out := Miss
		if e != nil {
			res := c.use(e, r, &reqCC, now)
			if res.Outcome == Hit {
				if res.Stale && !reqCC.onlyIfCached && get && e.swr >= 0 && !e.mustRevalidate {
					res.Fill, _ = c.lead(hash, now, false)
				}
				return res
			}
			out = Revalidate
		} else if reqCC.onlyIfCached {
			return Result{Outcome: GatewayTimeout}
		}
		if !get || n != nil && n.hfmUntil > now {
			// HEAD answers cannot fill a GET entry; a hit-for-miss
			// marker sends the request straight upstream.
			return Result{Outcome: out, Entry: e}
		}
		f, lead := c.lead(hash, now, !waited)
		if lead {
			if again, _ := c.store.GetIfPresent(hash); again != raw {
				// Another fill stored its answer and finished between
				// the look above and this lead: use that answer.
				f.finish(false)
				continue
			}
			return Result{Outcome: out, Entry: e, Fill: f}
		}
		if f == nil || waited || !f.wait(c.o.LockTimeout) || f.pass.Load() {
			return Result{Outcome: out, Entry: e}
		}
	}
}

// use applies RFC 9111 §4 (reuse), §4.2.4 (serving stale), RFC 5861 and
// the request's directives (§5.2.1) to a stored entry that matches r.
func (c *Cache) use(e *Entry, r *Request, cc *requestCC, now int64) Result {
	if e.noCache || cc.noCache {
		return Result{Outcome: Revalidate, Entry: e}
	}
	age := int64(e.Age(now))
	if e.lifetime > age {
		if cc.maxAge != absent && age > cc.maxAge*int64(time.Second) ||
			cc.minFresh != absent && e.lifetime-age < cc.minFresh*int64(time.Second) {
			return Result{Outcome: Revalidate, Entry: e}
		}
		return Result{Outcome: Hit, Entry: e, NotModified: e.NotModified(r.Header)}
	}
	if !e.mustRevalidate {
		stale := age - e.lifetime
		if cc.maxStale != absent && stale <= cc.maxStale*int64(time.Second) ||
			e.swr >= 0 && stale <= e.swr {
			return Result{Outcome: Hit, Entry: e, Stale: true, NotModified: e.NotModified(r.Header)}
		}
	}
	return Result{Outcome: Revalidate, Entry: e}
}

// match returns the variant whose Vary fields match h, RFC 9111 §4.1.
func (n *node) match(h Peeker) *Entry {
	for i := len(n.variants) - 1; i >= 0; i-- {
		if e := n.variants[i]; varyMatches(e.vary(), h) {
			return e
		}
	}
	return nil
}

// varyMatches reports whether the request h has the same values (OWS
// trimmed, absent = absent) for every field the stored request had. A
// request with more than one line of such a field matches nothing: the
// stored value is one line's.
func varyMatches(v Fields, h Peeker) bool {
	for off := 0; ; {
		name, val, next := v.Next(off)
		if next < 0 {
			return true
		}
		off = next
		if h.Repeated(name) {
			return false
		}
		got := h.Peek(name)
		storedAbsent := len(val) == 1 && val[0] == 0
		if got == nil {
			if !storedAbsent {
				return false
			}
			continue
		}
		if storedAbsent || string(trimOWS(got)) != string(val) {
			return false
		}
	}
}

// absentValue stands for "the request had no such field" in a vary
// block; a real field value never holds a NUL byte.
var absentValue = []byte{0}

// Fill is the handle of the request that fetches a key for the requests
// waiting on it. Its methods are safe to call more than once and from
// any goroutine.
type Fill struct {
	c       *Cache
	hash    uint64
	started int64
	done    chan struct{}
	closed  atomic.Bool
	pass    atomic.Bool // the answer was not stored: waiters go upstream
}

// lead makes the caller the fetcher of hash unless another request is
// fetching it already; then it returns that request's fill (nil when
// that fill is older than LockTimeout: it is taken over). join false
// never waits and never returns another's fill.
func (c *Cache) lead(hash uint64, now int64, join bool) (*Fill, bool) {
	var mine *Fill
	f, _ := c.fills.Compute(hash, func(old *Fill, loaded bool) (*Fill, bool) {
		if loaded && now-old.started < int64(c.o.LockTimeout) {
			return old, false
		}
		mine = &Fill{c: c, hash: hash, started: now, done: make(chan struct{})}
		return mine, false
	})
	if f == mine {
		return mine, true
	}
	if !join {
		return nil, false
	}
	return f, false
}

// wait blocks until the fill finishes or d passes; it reports whether
// the fill finished.
func (f *Fill) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.done:
		return true
	case <-t.C:
		return false
	}
}

// finish wakes the waiters; pass tells them to go upstream themselves.
func (f *Fill) finish(pass bool) {
	if f == nil || !f.closed.CompareAndSwap(false, true) {
		return
	}
	f.pass.Store(pass)
	f.c.fills.Compute(f.hash, func(old *Fill, loaded bool) (*Fill, bool) {
		// Delete only our own fill; when none is there, store nothing.
		return old, !loaded || old == f
	})
	close(f.done)
}

// Abandon ends a fill without an answer (the upstream failed): the
// waiting requests go upstream themselves. A nil Fill is a no-op.
func (f *Fill) Abandon() { f.finish(true) }

// Store stores resp, the upstream's answer to r, when RFC 9111 allows
// it, and finishes f (which may be nil). It returns the stored entry, or
// nil and the reason it was not stored. An answer the leader of a fill
// could not store leaves a hit-for-miss marker (Options.HitForMiss), so
// later requests for the key go upstream without waiting on each other.
func (c *Cache) Store(r *Request, f *Fill, resp *Response) (*Entry, Reason) {
	reqCC := parseRequestCC(r.Header.Peek(strCacheControl), r.Header.Peek(strPragma))
	fr := storeRules(r, &reqCC, resp, resp.Header, c.o.MaxObjectBytes, c.ttl(r))
	hash := c.hash(r.Key)
	if fr.reason != Stored {
		if f != nil && fr.reason != NotStoredRequestNoStore && fr.reason != NotStoredMethod && fr.reason != NotStoredVaryRepeated {
			c.markHitForMiss(hash, r.Key, resp.ResponseTime)
		}
		f.finish(true)
		return nil, fr.reason
	}
	e := c.build(r, resp, resp.Header, nil, &fr)
	c.insert(hash, e, resp.ResponseTime)
	f.finish(false)
	return e, Stored
}

func (c *Cache) ttl(r *Request) int64 {
	if r.TTL > 0 {
		return r.TTL
	}
	return int64(c.o.DefaultTTL)
}

// Revalidated applies a 304 answer to a revalidation of stale (RFC 9111
// §4.3.3, §4.3.4): the stored fields are updated with the 304's, the
// freshness is computed anew, and the updated entry is stored and
// returned for serving. When the updated response may no longer be
// stored (the 304 said no-store, say), it is still returned for this
// request, and the stored one is removed. f may be nil.
func (c *Cache) Revalidated(r *Request, f *Fill, stale *Entry, resp *Response) (*Entry, Reason) {
	merged := make(Fields, 0, len(stale.Header())+len(resp.Header))
	for name, val := range stale.Header().All() {
		if !resp.Header.Has(name) {
			merged = AppendField(merged, name, val)
		}
	}
	for name, val := range resp.Header.All() {
		if !equalFold(name, "content-length") {
			merged = AppendField(merged, name, val)
		}
	}
	full := Response{Status: stale.status, Header: merged, Body: stale.Body(), RequestTime: resp.RequestTime, ResponseTime: resp.ResponseTime}
	reqCC := parseRequestCC(r.Header.Peek(strCacheControl), r.Header.Peek(strPragma))
	fr := storeRules(r, &reqCC, &full, merged, c.o.MaxObjectBytes, c.ttl(r))
	e := c.build(r, &full, merged, stale.vary(), &fr)
	hash := c.hash(r.Key)
	if fr.reason == Stored {
		c.insert(hash, e, resp.ResponseTime)
	} else {
		c.Invalidate(r.Key)
	}
	f.finish(fr.reason != Stored)
	return e, fr.reason
}

// StaleOnError returns the stale entry of res to serve in place of an
// upstream failure, or nil: status is the upstream's status (0 when no
// answer came: refused, reset, timed out), and the entry is served only
// for 0, 500, 502, 503 and 504, within its stale-if-error window (RFC
// 5861 §4) and never when it says must-revalidate, proxy-revalidate or
// s-maxage (RFC 9111 §4.2.4). It abandons res.Fill either way.
func (c *Cache) StaleOnError(res *Result, status int, now int64) *Entry {
	res.Fill.Abandon()
	e := res.Entry
	if e == nil || e.mustRevalidate || e.sie < 0 {
		return nil
	}
	switch status {
	case 0, 500, 502, 503, 504:
	default:
		return nil
	}
	if e.staleness(now) > e.sie {
		return nil
	}
	return e
}

// build lays out an entry: key, stored fields, vary fields and body in
// one allocation. vary, when non-nil, is reused (a revalidation);
// otherwise it is taken from the request for each name in Vary.
func (c *Cache) build(r *Request, resp *Response, h Fields, vary Fields, fr *freshness) *Entry {
	if vary == nil {
		for name := range varyNames(h) {
			if vary.Has(name) {
				continue
			}
			v := r.Header.Peek(name)
			if v == nil {
				v = absentValue
			}
			vary = AppendField(vary, name, trimOWS(v))
		}
	}
	// slices.Grow rounds the capacity up to the allocator's size class,
	// so the entry's weight (its capacity) is the memory it really holds.
	data := slices.Grow([]byte(nil), len(r.Key)+len(h)+len(vary)+len(resp.Body))
	data = append(data, r.Key...)
	e := &Entry{status: resp.Status, keyEnd: len(data)}
	for name, val := range h.All() {
		if !skipStored(name) {
			data = AppendField(data, name, val)
		}
	}
	e.hdrEnd = len(data)
	data = append(data, vary...)
	e.varyEnd = len(data)
	data = append(data, resp.Body...)
	e.data = data

	// RFC 9111 §4.2.3.
	respTime, reqTime := resp.ResponseTime, resp.RequestTime
	if reqTime == 0 || reqTime > respTime {
		reqTime = respTime
	}
	var apparent int64
	if d, ok := parseHTTPDate(h.Get(strDate)); ok {
		apparent = max(0, respTime-d*int64(time.Second))
	}
	corrected := ageValue(h)*int64(time.Second) + (respTime - reqTime)
	e.correctedInitialAge = max(apparent, corrected)
	e.responseTime = respTime
	e.lifetime, e.swr, e.sie = fr.lifetime, fr.swr, fr.sie
	e.noCache, e.mustRevalidate, e.shareable = fr.noCache, fr.mustRevalidate, fr.shareable
	if lm, ok := parseHTTPDate(h.Get(strLastModified)); ok {
		e.lastModified = lm
	}
	keep := max(e.swr, e.sie, 0)
	if e.ETag() != nil || e.LastModified() != nil {
		keep = max(keep, int64(c.o.KeepStale))
	}
	e.expireAt = respTime - e.correctedInitialAge + e.lifetime + keep
	return e
}

// insert adds e to its key's node, replacing the variant with the same
// Vary fields and dropping expired ones and the oldest beyond
// MaxVariants.
func (c *Cache) insert(hash uint64, e *Entry, now int64) {
	var nn *node
	c.store.Compute(hash, func(old *node, found bool) (*node, otter.ComputeOp) {
		nn = &node{key: e.Key()}
		if found && bytes.Equal(old.key, nn.key) {
			for _, v := range old.variants {
				if v.expireAt > now && !bytes.Equal(v.vary(), e.vary()) {
					nn.variants = append(nn.variants, v)
				}
			}
			if extra := len(nn.variants) + 1 - c.o.MaxVariants; extra > 0 {
				nn.variants = nn.variants[extra:]
			}
		}
		nn.variants = append(nn.variants, e)
		w := nodeOverhead
		for _, v := range nn.variants {
			w += v.size()
			nn.expireAt = max(nn.expireAt, v.expireAt)
		}
		nn.weight = uint32(min(w, 1<<32-1))
		return nn, otter.WriteOp
	})
	c.items.Add(int64(len(nn.variants)))
}

// markHitForMiss replaces the key's node with a hit-for-miss marker.
func (c *Cache) markHitForMiss(hash uint64, key []byte, now int64) {
	until := now + int64(c.o.HitForMiss)
	n := &node{key: bytes.Clone(key), hfmUntil: until, expireAt: until, weight: uint32(len(key) + nodeOverhead)}
	c.store.Set(hash, n)
}

// Invalidate removes every stored response (all Vary variants) and any
// hit-for-miss marker for the primary key key, as RFC 9111 §4.4 asks
// after an unsafe request, and returns how many responses it removed.
func (c *Cache) Invalidate(key []byte) int {
	hash := c.hash(key)
	removed := 0
	c.store.ComputeIfPresent(hash, func(old *node) (*node, otter.ComputeOp) {
		if !bytes.Equal(old.key, key) {
			return old, otter.CancelOp
		}
		removed = len(old.variants)
		return nil, otter.InvalidateOp
	})
	return removed
}

// Purge removes every stored response whose key has host (compared
// case-insensitively; with any port, or none, unless host names one) and
// a path starting with prefix, under both schemes, and returns how many
// responses (Vary variants counted one by one) it removed. It walks the
// whole storage: use it from the config API, not per request.
func (c *Cache) Purge(host, prefix string) int {
	n := 0
	for hash, nd := range c.store.All() {
		h, p, ok := splitKey(nd.key)
		if !ok || !sameHost(h, host) || !bytes.HasPrefix(p, []byte(prefix)) {
			continue
		}
		before := len(nd.variants)
		c.store.ComputeIfPresent(hash, func(old *node) (*node, otter.ComputeOp) {
			if old != nd {
				return old, otter.CancelOp
			}
			n += before
			return nil, otter.InvalidateOp
		})
	}
	return n
}

// sameHost reports whether a key's host (with the request's port, if it
// had one) is host, or host with a port when host names none.
func sameHost(keyHost []byte, host string) bool {
	if equalFold(keyHost, host) {
		return true
	}
	n := len(host)
	return len(keyHost) > n && keyHost[n] == ':' && equalFold(keyHost[:n], host) && !hasPort(host)
}

// hasPort reports whether host ("name", "name:port", "[v6]",
// "[v6]:port") names a port; an unbracketed IPv6 address counts as one.
func hasPort(host string) bool {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			host = host[i+1:]
		}
	}
	return strings.IndexByte(host, ':') >= 0
}

// splitKey splits a primary key into its host and its path with query.
func splitKey(key []byte) (host, pathQuery []byte, ok bool) {
	i := bytes.Index(key, []byte("://"))
	if i < 0 {
		return nil, nil, false
	}
	rest := key[i+3:]
	j := bytes.IndexByte(rest, '/')
	if j < 0 {
		return nil, nil, false
	}
	return rest[:j], rest[j:], true
}

// noCopy makes go vet report copies of a Cache.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
