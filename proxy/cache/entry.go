package cache

import (
	"strconv"
	"time"
)

// Entry is one stored response: its status, the header fields to replay
// and the body, laid out in a single byte slice so that a front end can
// replay it without allocating (walk Header with Fields.Next, hand Body
// to the writer as is). An Entry is immutable once stored and never
// reused, so its slices stay valid for as long as the caller holds the
// Entry, even after it is evicted; it is safe for concurrent use.
type Entry struct {
	data []byte // key | header fields | vary fields | body

	keyEnd, hdrEnd, varyEnd int
	status                  int

	// RFC 9111 §4.2.3 inputs, Unix nanoseconds.
	responseTime        int64
	correctedInitialAge int64
	lifetime            int64 // freshness lifetime, ns
	swr, sie            int64 // stale-while-revalidate, stale-if-error windows in ns; -1 = none

	lastModified int64 // Last-Modified (else Date) as Unix seconds, for If-Modified-Since; 0 = unknown
	expireAt     int64 // when the storage may drop the entry, Unix ns

	noCache        bool // revalidate on every use (no-cache)
	mustRevalidate bool // never served stale (must-revalidate, proxy-revalidate, s-maxage)
	shareable      bool // may answer a request with credentials (public, s-maxage, must-revalidate), RFC 9111 §3.5
}

// Status returns the response status code.
func (e *Entry) Status() int { return e.status }

// Key returns the primary cache key the entry was stored under.
func (e *Entry) Key() []byte { return e.data[:e.keyEnd] }

// Header returns the stored header fields, in the order received, to
// replay on a hit: the upstream's fields minus Age, Content-Length and
// hop-by-hop fields (the front end sets Age from AppendAge and the length
// from the body). The route's client_headers are not stored: front ends
// apply them on hits as on misses.
func (e *Entry) Header() Fields { return Fields(e.data[e.keyEnd:e.hdrEnd]) }

// Body returns the stored body. Do not modify it.
func (e *Entry) Body() []byte { return e.data[e.varyEnd:] }

// ETag returns the stored ETag value (nil when none), the validator sent
// in If-None-Match on revalidation.
func (e *Entry) ETag() []byte { return e.Header().Get(strETag) }

// LastModified returns the stored Last-Modified value (nil when none),
// sent in If-Modified-Since on revalidation.
func (e *Entry) LastModified() []byte { return e.Header().Get(strLastModified) }

// vary returns the request fields the entry was selected by (RFC 9111
// §4.1): for each name in the response's Vary, the request's value.
func (e *Entry) vary() Fields { return Fields(e.data[e.hdrEnd:e.varyEnd]) }

// Age returns the entry's current age at now (Unix ns), RFC 9111 §4.2.3.
func (e *Entry) Age(now int64) time.Duration {
	resident := now - e.responseTime
	if resident < 0 {
		resident = 0
	}
	return time.Duration(e.correctedInitialAge + resident)
}

// AppendAge appends the Age header value at now: whole seconds, RFC 9111
// §5.1.
func (e *Entry) AppendAge(dst []byte, now int64) []byte {
	return strconv.AppendInt(dst, int64(e.Age(now)/time.Second), 10)
}

// Fresh reports whether the entry is fresh at now (RFC 9111 §4.2).
func (e *Entry) Fresh(now int64) bool { return e.lifetime > int64(e.Age(now)) }

// staleness returns how long the entry has been stale at now (0 while
// fresh).
func (e *Entry) staleness(now int64) int64 {
	s := int64(e.Age(now)) - e.lifetime
	if s < 0 {
		return 0
	}
	return s
}

// NotModified reports whether the client's conditional request headers
// let a fresh (or validated) entry be answered with 304 Not Modified
// (RFC 9110 §13.1.2, §13.1.3, §13.2.2): If-None-Match, when present, is
// evaluated with weak comparison and If-Modified-Since is ignored;
// otherwise If-Modified-Since against Last-Modified (or Date). Only
// entries with a 2xx status qualify.
func (e *Entry) NotModified(h Peeker) bool {
	if e.status < 200 || e.status > 299 {
		return false
	}
	if inm := h.Peek(strIfNoneMatch); inm != nil {
		return etagListMatches(inm, e.ETag())
	}
	ims := h.Peek(strIfModifiedSince)
	if ims == nil || e.lastModified == 0 {
		return false
	}
	t, ok := parseHTTPDate(ims)
	return ok && e.lastModified <= t
}

// etagListMatches evaluates an If-None-Match list against etag with the
// weak comparison function (RFC 9110 §8.8.3.2): W/ prefixes are ignored.
func etagListMatches(list, etag []byte) bool {
	if len(etag) == 0 {
		return false
	}
	etag = opaqueTag(etag)
	for len(list) > 0 {
		var item []byte
		item, list = nextListItem(list)
		if len(item) == 1 && item[0] == '*' {
			return true
		}
		if string(opaqueTag(item)) == string(etag) {
			return true
		}
	}
	return false
}

func opaqueTag(t []byte) []byte {
	t = trimOWS(t)
	if len(t) > 2 && t[0] == 'W' && t[1] == '/' {
		return t[2:]
	}
	return t
}

// notModifiedFields names the fields a 304 answered from the cache
// carries (RFC 9110 §15.4.5), besides Age.
var notModifiedFields = [...]string{"cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified"}

// NotModifiedField reports whether a stored field named name belongs in a
// 304 answer built from the entry (RFC 9110 §15.4.5).
func NotModifiedField(name []byte) bool {
	for _, f := range notModifiedFields {
		if equalFold(name, f) {
			return true
		}
	}
	return false
}

// size is the number of bytes the entry holds, with a fixed estimate of
// its bookkeeping, used as its weight against the size bound.
func (e *Entry) size() int { return cap(e.data) + entryOverhead }

// entryOverhead estimates what an Entry costs besides its data: the
// struct, its slice header and the storage's node.
const entryOverhead = 256
