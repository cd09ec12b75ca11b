package pipeline

import (
	"time"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/proxy/cache"
)

// CacheStatus is how the response cache served a request: the value of
// the cache status header and of the access log's cache field.
type CacheStatus uint8

// Cache statuses.
const (
	// CacheOff: the route has no cache (no status header, "-" in the log).
	CacheOff CacheStatus = iota
	// CacheHit: answered from a fresh entry (or 304 from one).
	CacheHit
	// CacheMiss: answered by the upstream.
	CacheMiss
	// CacheStale: answered from a stale entry (stale-while-revalidate,
	// stale-if-error, the client's max-stale).
	CacheStale
	// CacheRevalidated: a stale entry confirmed by the upstream's 304.
	CacheRevalidated
	// CacheBypass: the cache did not apply (method, Range, cache_bypass).
	CacheBypass
)

var cacheStatusText = [...][]byte{nil, []byte("HIT"), []byte("MISS"), []byte("STALE"), []byte("REVALIDATED"), []byte("BYPASS")}

// Bytes returns the status as sent in the status header ("HIT", …); nil
// for CacheOff. Do not modify it.
func (s CacheStatus) Bytes() []byte {
	if int(s) < len(cacheStatusText) {
		return cacheStatusText[s]
	}
	return nil
}

// CacheRouteIndexer is implemented by a Resolver that counts cache
// results per route (the proxy's Registry, with metrics): Compile asks
// it once per cached route for the index front ends then report with.
type CacheRouteIndexer interface {
	CacheRouteIndex(route string) int
}

// routeCache is a route's compiled cache settings; a route without one
// is not cached.
type routeCache struct {
	ttl         int64 // path-level cache_ttl in ns; 0 = main.yaml's
	bypass      cache.BypassList
	credentials bool // the route has authorization: every request carries credentials
	metricIdx   int
}

// compileCache returns the route's cache settings, or nil when its cache
// is off: cache_size_mb is 0, or cache: false at the path (else global)
// level.
func compileCache(cfg *config.Config, p *config.Path, r *Route, res Resolver) *routeCache {
	if cfg.Main.CacheSizeMB <= 0 || r.pool == nil {
		return nil
	}
	up := &cfg.Upstreams
	on := true
	if c := p.Policy.Cache; c != nil {
		on = *c
	} else if c := up.Policy.Cache; c != nil {
		on = *c
	}
	if !on {
		return nil
	}
	rc := &routeCache{ttl: int64(p.CacheTTL) * int64(time.Second), credentials: r.policy.authKind != authNone, metricIdx: -1}
	bypass := p.Policy.CacheBypass
	if bypass == nil {
		bypass = up.Policy.CacheBypass
	}
	rc.bypass = cache.NewBypassList(bypass)
	if ix, ok := res.(CacheRouteIndexer); ok {
		rc.metricIdx = ix.CacheRouteIndex(r.Name)
	}
	return rc
}

// Cached reports whether the route's responses go through the cache.
func (r *Route) Cached() bool { return r.cache != nil }

// CacheState is the response cache's part of one request: what the
// cache step decided and its scratch buffers. Front ends keep one in
// their pooled per-request state; Reset is called by CacheLookup. A
// CacheState must not be shared between goroutines.
type CacheState struct {
	// Status is how the cache served the request.
	Status CacheStatus
	// Result is the cache's verdict (Outcome Bypass when the cache does
	// not apply).
	Result cache.Result
	// Serve, when non-nil, is the entry to answer with instead of an
	// upstream response: a hit, a revalidated entry, or a stale one in
	// place of a failure.
	Serve *cache.Entry
	// NotModified asks for 304 Not Modified from Serve (the client's
	// conditional headers match it).
	NotModified bool
	// MetricIdx is the route's index for per-route cache metrics; -1 =
	// none.
	MetricIdx int

	req        cache.Request
	h          cache.Peeker  // the front end's request header lines
	seen       *CacheHeaders // the same, as Request.See recorded them
	key, age   []byte
	host       []byte // the key's host: Request.Host and the received port
	https      bool   // the key's scheme (keyTLS)
	loc        []byte
	inm, ims   []byte // the client's If-None-Match and If-Modified-Since
	hasINM     bool
	hasIMS     bool
	saved      bool // inm and ims hold the client's values (PlanCacheRequest)
	sentAt     int64
	invalidate bool
}

// Peek gives the cache the client's request header lines: the front
// end's, except the conditional headers the upstream request loses
// (PlanCacheRequest saves them first), so that a stored answer is still
// checked against the client's conditions.
func (cs *CacheState) Peek(name []byte) []byte {
	if !cs.saved && cs.seen != nil {
		// Before the plan touches the front end's headers, the lines
		// See recorded answer without a search.
		switch len(name) {
		case 5:
			if equalFold(name, "Range") {
				return cs.seen.Range
			}
		case 6:
			if equalFold(name, "Pragma") {
				return cs.seen.Pragma
			}
		case 13:
			if equalFold(name, "Cache-Control") {
				return cs.seen.CacheControl
			}
			if equalFold(name, "If-None-Match") {
				return cs.seen.IfNoneMatch
			}
		case 17:
			if equalFold(name, "If-Modified-Since") {
				return cs.seen.IfModifiedSince
			}
		}
	}
	if cs.saved {
		switch {
		case equalFold(name, "If-None-Match"):
			if !cs.hasINM {
				return nil
			}
			return cs.inm
		case equalFold(name, "If-Modified-Since"):
			if !cs.hasIMS {
				return nil
			}
			return cs.ims
		}
	}
	return cs.h.Peek(name)
}

// Repeated reports whether the request has more than one line named name.
func (cs *CacheState) Repeated(name []byte) bool { return cs.h.Repeated(name) }

var _ cache.Peeker = (*CacheState)(nil)

// Reset clears cs for a new request, keeping its buffers.
func (cs *CacheState) Reset() {
	key, age, host, loc, inm, ims := cs.key[:0], cs.age[:0], cs.host[:0], cs.loc[:0], cs.inm[:0], cs.ims[:0]
	*cs = CacheState{} // in place, as Request.Reset
	cs.key, cs.age, cs.host, cs.loc, cs.inm, cs.ims, cs.MetricIdx = key, age, host, loc, inm, ims, -1
}

// Request returns the cache's view of the request (valid until Reset).
func (cs *CacheState) Request() *cache.Request { return &cs.req }

// Upstream reports whether the request goes upstream through the cache
// (a miss or a revalidation): the front end then hands the answer to
// CacheResponse.
func (cs *CacheState) Upstream() bool {
	o := cs.Result.Outcome
	return cs.Status != CacheOff && cs.Serve == nil && (o == cache.Miss || o == cache.Revalidate || cs.invalidate)
}

var (
	strIfNoneMatch     = []byte("If-None-Match")
	strIfModifiedSince = []byte("If-Modified-Since")
	hdrIfNoneMatch     = field("If-None-Match", "")
	hdrIfModifiedSince = field("If-Modified-Since", "")
	hdrAge             = field("Age", "")
)

// CacheLookup is the cache step, after Admit and before the attempt loop,
// for a request that Admit let through (d.Action == ActForward; not a
// WebSocket handshake). h gives the request's header lines to the cache
// (Vary, Cache-Control, conditionals, cache_bypass). It fills cs: a hit
// sets cs.Serve; only-if-cached with nothing usable turns d into a 504;
// a miss or a revalidation goes on to PlanCacheRequest and the attempt
// loop. A fresh hit allocates nothing. now is Unix ns.
func (p *Pipeline) CacheLookup(r *Request, d *Decision, h cache.Peeker, cs *CacheState, now int64) {
	cs.Reset()
	c, rc := p.opts.Cache, d.Route.cache
	if c == nil || rc == nil {
		return
	}
	cs.MetricIdx, cs.h, cs.seen = rc.metricIdx, h, &r.Cache
	// The Host header goes upstream as received, port included, and a
	// backend may build links and redirects from it: a port the key
	// ignored would let "Host: example.com:1" fill example.com's entry
	// (cache poisoning). Case and a trailing dot stay normalized.
	cs.host = append(append(cs.host[:0], r.Host...), hostPort(r.RawHost)...)
	cs.https = keyTLS(r, d)
	cs.key = cache.AppendKey(cs.key[:0], cs.https, cs.host, r.Path, d.Query)
	cs.req = cache.Request{Method: r.Method, Key: cs.key, Credentials: rc.credentials || r.Authorization != nil, TTL: rc.ttl, Header: cs}
	if !rc.bypass.Empty() && rc.bypass.Match(h) || r.ContentLength != 0 && isSafe(r.Method) {
		// A safe request with a body ("fat GET") sends it upstream, and
		// the key has no body: its answer must neither be stored nor
		// stand in for another's (cache poisoning).
		cs.Status = CacheBypass
		return
	}
	cs.Result = c.Lookup(&cs.req, now)
	switch cs.Result.Outcome {
	case cache.Hit:
		cs.Status = CacheHit
		if cs.Result.Stale {
			cs.Status = CacheStale
		}
		cs.Serve, cs.NotModified = cs.Result.Entry, cs.Result.NotModified
	case cache.Miss, cache.Revalidate:
		cs.Status = CacheMiss
	case cache.GatewayTimeout:
		cs.Status = CacheMiss
		d.Action, d.Status = ActRespond, 504
	default:
		cs.Status = CacheBypass
		// An unsafe method's answer invalidates what is stored for its
		// target (RFC 9111 §4.4).
		cs.invalidate = !isSafe(r.Method)
	}
}

// keyTLS is the scheme the cache keys a request on: the one its upstream
// request names. From a trusted peer that is X-Forwarded-Proto (its
// first value, which the plan forwards): behind a TLS-terminating proxy
// one listener serves both schemes, and a backend that redirects
// plain-HTTP requests to https must not have that redirect served to the
// https ones (a redirect loop), nor https pages to plain-HTTP ones.
// Otherwise it is the listener's.
func keyTLS(r *Request, d *Decision) bool {
	if p := r.Forwarded[FwdProto]; d.TrustedPeer && p != nil {
		return equalFold(p, "https")
	}
	return r.TLS
}

// isSafe reports whether a method is safe (RFC 9110 §9.2.1).
func isSafe(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// PlanCacheRequest adds the cache's part to a request plan (after
// PlanRequest): on a miss or a revalidation of a GET, the client's own
// If-None-Match and If-Modified-Since are removed, so that the upstream
// sends a full answer the cache can store (the client's conditions are
// then evaluated against the stored entry, from copies kept in cs); on a
// revalidation, the entry's validators are sent instead. Call it before
// the plan is applied. now is Unix ns, the request time of RFC 9111
// §4.2.3.
func (p *Pipeline) PlanCacheRequest(cs *CacheState, pl *Plan, now int64) {
	cs.sentAt = now
	if !cs.Upstream() || string(cs.req.Method) != "GET" {
		return
	}
	v := cs.h.Peek(strIfNoneMatch)
	cs.inm, cs.hasINM = append(cs.inm[:0], v...), v != nil
	v = cs.h.Peek(strIfModifiedSince)
	cs.ims, cs.hasIMS = append(cs.ims[:0], v...), v != nil
	cs.saved = true
	pl.Del = append(pl.Del, hdrIfNoneMatch, hdrIfModifiedSince)
	if e := cs.Result.Entry; cs.Result.Outcome == cache.Revalidate && e != nil {
		if v := e.ETag(); v != nil {
			pl.Set = append(pl.Set, Field{Name: hdrIfNoneMatch.Name, Key: hdrIfNoneMatch.Key, Value: v})
		}
		if v := e.LastModified(); v != nil {
			pl.Set = append(pl.Set, Field{Name: hdrIfModifiedSince.Name, Key: hdrIfModifiedSince.Key, Value: v})
		}
	}
}

// CacheBodyLimit returns the largest upstream body a front end should
// read into memory for this request: def (body_buffer_bytes), raised to
// the cache's object limit when the answer may be stored.
func (p *Pipeline) CacheBodyLimit(cs *CacheState, def int) int {
	if c := p.opts.Cache; c != nil && cs.Upstream() && string(cs.req.Method) == "GET" {
		return max(def, c.MaxObjectBytes())
	}
	return def
}

// CacheResponse hands the upstream's answer to the cache (for a request
// with cs.Upstream()): status, its header fields (hop-by-hop removed,
// before client_headers) and the body (streamed when it was not read
// into memory). A 304 to a revalidation refreshes the entry and sets
// cs.Serve; a 5xx over a stale entry with stale-if-error serves that
// entry; a storable answer is stored, and when the client's own
// conditions match it, cs.Serve and cs.NotModified answer 304. A 2xx or
// 3xx answer to an unsafe method invalidates the target's entries and
// those of its same-origin Location and Content-Location. now is Unix ns.
func (p *Pipeline) CacheResponse(r *Request, cs *CacheState, status int, h cache.Fields, body []byte, streamed bool, now int64) {
	c := p.opts.Cache
	if c == nil || !cs.Upstream() {
		return
	}
	if cs.invalidate {
		if cache.Invalidates(r.Method, status) {
			c.Invalidate(cs.key)
			for _, name := range [...][]byte{strLocation, strContentLocation} {
				var ok bool
				if cs.loc, ok = cache.AppendSameOriginKey(cs.loc[:0], cs.https, cs.host, h.Get(name)); ok {
					c.Invalidate(cs.loc)
				}
			}
		}
		return
	}
	res := &cs.Result
	if e := res.Entry; e != nil && res.Outcome == cache.Revalidate {
		switch {
		case status == 304:
			resp := cache.Response{Status: status, Header: h, RequestTime: cs.sentAt, ResponseTime: now}
			cs.Serve, _ = c.Revalidated(&cs.req, res.Fill, e, &resp)
			cs.Status, cs.NotModified = CacheRevalidated, cs.Serve.NotModified(cs.req.Header)
			return
		case status >= 500:
			if cs.Serve = c.StaleOnError(res, status, now); cs.Serve != nil {
				cs.Status, cs.NotModified = CacheStale, cs.Serve.NotModified(cs.req.Header)
				return
			}
		}
	}
	resp := cache.Response{Status: status, Header: h, Body: body, Streamed: streamed, RequestTime: cs.sentAt, ResponseTime: now}
	e, _ := c.Store(&cs.req, res.Fill, &resp)
	if e != nil && e.NotModified(cs.req.Header) {
		cs.Serve, cs.NotModified = e, true
	}
}

var (
	strLocation        = []byte("Location")
	strContentLocation = []byte("Content-Location")
)

// CacheFailed tells the cache that no upstream answered (the attempt
// loop failed): a stale entry with stale-if-error is served instead
// (cs.Serve), else waiting requests are released.
func (p *Pipeline) CacheFailed(cs *CacheState, now int64) {
	c := p.opts.Cache
	if c == nil || !cs.Upstream() || cs.invalidate {
		return
	}
	if cs.Serve = c.StaleOnError(&cs.Result, 0, now); cs.Serve != nil {
		cs.Status, cs.NotModified = CacheStale, cs.Serve.NotModified(cs.req.Header)
	}
}

// Refresh is a stale hit's background revalidation (RFC 5861
// stale-while-revalidate), detached from its request: it owns the fill
// and copies of what the cache needs, so it outlives the handler.
type Refresh struct {
	// Request is the cache's view of the request; its Header must be set
	// to a Peeker over the detached upstream request.
	Request cache.Request
	// Fill is the key's fill, finished by Done.
	Fill *cache.Fill
	// Stale is the entry being revalidated; its validators go upstream.
	Stale *cache.Entry
	// SentAt is when the request went upstream (Unix ns).
	SentAt int64
}

// TakeRefresh returns the background revalidation a stale hit was elected
// for (nil when none: a fresh hit, or another request is revalidating),
// taking the fill out of cs so that CacheDone leaves it alone. The
// caller sends the request upstream (with Stale's validators) outside
// the handler and ends with Refreshed.
func (p *Pipeline) TakeRefresh(cs *CacheState) *Refresh {
	f := cs.Result.Fill
	if f == nil || cs.Serve == nil {
		return nil
	}
	cs.Result.Fill = nil
	r := &Refresh{Request: cs.req, Fill: f, Stale: cs.Serve}
	// Nothing may point into the handler's buffers.
	r.Request.Key = append([]byte(nil), cs.key...)
	r.Request.Method = strGET
	r.Request.Header = nil
	return r
}

// Refreshed ends a background revalidation with the upstream's answer:
// a 304 refreshes the stale entry, a server error keeps it (stale-if-error
// permitting or not, the next request after the window revalidates
// again), any other answer replaces it (or, when it cannot be stored,
// leaves a hit-for-miss marker). status 0 means no upstream answered.
func (p *Pipeline) Refreshed(r *Refresh, status int, h cache.Fields, body []byte, streamed bool, now int64) {
	c := p.opts.Cache
	switch {
	case c == nil:
		r.Fill.Abandon()
	case status == 304:
		c.Revalidated(&r.Request, r.Fill, r.Stale, &cache.Response{Status: status, Header: h, RequestTime: r.SentAt, ResponseTime: now})
	case status == 0 || status >= 500:
		r.Fill.Abandon()
	default:
		c.Store(&r.Request, r.Fill, &cache.Response{Status: status, Header: h, Body: body, Streamed: streamed, RequestTime: r.SentAt, ResponseTime: now})
	}
}

// PlanRefresh adds a background revalidation's conditional headers to a
// request plan made by PlanRequest: the client's own If-None-Match and
// If-Modified-Since are removed, the stale entry's ETag and Last-Modified
// sent.
func (p *Pipeline) PlanRefresh(r *Refresh, pl *Plan) {
	pl.Del = append(pl.Del, hdrIfNoneMatch, hdrIfModifiedSince)
	if v := r.Stale.ETag(); v != nil {
		pl.Set = append(pl.Set, Field{Name: hdrIfNoneMatch.Name, Key: hdrIfNoneMatch.Key, Value: v})
	}
	if v := r.Stale.LastModified(); v != nil {
		pl.Set = append(pl.Set, Field{Name: hdrIfModifiedSince.Name, Key: hdrIfModifiedSince.Key, Value: v})
	}
}

// CacheDone ends the request's part in the cache: a fill it still holds
// is abandoned, so that requests waiting on it go upstream (its answer
// was never handed over: the client went away, the body streamed, or a
// stale hit's background revalidation was not started). A front end that
// starts that revalidation takes cs.Result.Fill (and sets it to nil)
// first. Front ends defer it.
func (p *Pipeline) CacheDone(cs *CacheState) {
	if f := cs.Result.Fill; f != nil {
		f.Abandon()
	}
}

// PlanHit fills pl with the response plan of an answer from the cache
// (cs.Serve): Age, the route's client_headers, X-Request-Id and the
// cache status header. The front end first writes the entry's status
// (304 when cs.NotModified) and its stored fields (only the 304 fields of
// cache.NotModifiedField for a 304), then applies pl. It allocates
// nothing once pl's and cs's buffers have grown.
func (p *Pipeline) PlanHit(d *Decision, cs *CacheState, pl *Plan, now int64) {
	pl.reset()
	cs.age = cs.Serve.AppendAge(cs.age[:0], now)
	pl.Set = append(pl.Set, Field{Name: hdrAge.Name, Key: hdrAge.Key, Value: cs.age})
	for _, f := range d.Route.clientHeaders {
		if f.add {
			pl.Add = append(pl.Add, f)
		} else {
			pl.Set = append(pl.Set, f)
		}
	}
	pl.Set = append(pl.Set, Field{Name: hdrXRequestID.Name, Key: hdrXRequestID.Key, Value: d.RequestID})
	p.planCacheStatus(cs, pl)
}

// PlanCacheStatus adds the cache status header (cache_status_header) to
// a response plan made by PlanResponse or PlanReply, on cached routes.
func (p *Pipeline) PlanCacheStatus(cs *CacheState, pl *Plan) { p.planCacheStatus(cs, pl) }

func (p *Pipeline) planCacheStatus(cs *CacheState, pl *Plan) {
	if p.cacheStatus[0].Name == nil || cs.Status == CacheOff || int(cs.Status) >= len(p.cacheStatus) {
		return
	}
	pl.Set = append(pl.Set, p.cacheStatus[cs.Status])
}

// cacheStatusFields returns the status header's field for each status,
// built once (name empty: no status header).
func cacheStatusFields(name string) (f [len(cacheStatusText)]Field) {
	if name == "" {
		return f
	}
	for i := range f {
		f[i] = field(name, string(cacheStatusText[i]))
	}
	return f
}
