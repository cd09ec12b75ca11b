// Package cache is the response cache of the proxy: an RFC 9111 shared
// cache in memory, written on front-end-neutral byte views so that the
// HTTP/1.1, h2 and h2c front ends serve hits alike. It imports neither
// fasthttp nor net/http (make deps checks it).
//
// # Storage
//
// Entries live in an otter (github.com/maypok86/otter/v2) cache bounded
// by weight: each entry weighs its bytes plus a fixed overhead, and the
// total stays under Options.MaxBytes (cache_size_mb). Otter was chosen
// over ristretto because its writes are synchronous (a stored entry is
// visible to the next lookup, which coalescing relies on; ristretto's
// buffered Set may drop or delay it), it can walk its entries (purge by
// host and prefix needs that; ristretto cannot iterate), it reports each
// deletion with its cause (evictions are counted apart from purges) and
// its W-TinyLFU policy keeps one-hit wonders from flushing popular
// entries. Lookups are lock-free and allocate nothing.
//
// An Entry keeps the key, the header fields (an encoded Fields block)
// and the body in one byte slice, so a hit is replayed by walking
// offsets and handing the body to the writer as is. A primary key holds
// up to Options.MaxVariants entries, one per combination of the request
// fields named by Vary.
//
// # Keys
//
// The primary key is scheme://host/path?query (AppendKey): the scheme
// the upstream request names (a trusted peer's X-Forwarded-Proto, else
// the listener's), the normalized host with the port the Host header
// named, if any (the header goes upstream as received, so a backend may
// build links from its port), and the forwarded path and query (without
// araleztoken). The secondary key is the Vary fields' values (RFC 9111
// §4.1). Aralez keys on host+path and path+query; the parts and their
// meaning are the same.
//
// # Rules, as implemented
//
//   - Stored: responses to GET with status 200, 203, 204, 300, 301, 308,
//     404, 405, 410, 414, 501 (the heuristically cacheable codes of RFC
//     9110 §15.1 minus 206), and 302, 303, 307 with explicit freshness.
//     Never stored: 206 (Range requests bypass the cache), 304, 1xx,
//     other 4xx and every 5xx but 501; no-store (unless must-understand),
//     private (qualified or not), Set-Cookie, Vary: *, a Vary naming a
//     field the proxy sets upstream (X-Forwarded-For and the other
//     forwarding fields, Via, X-Request-Id, forward auth's Remote-User
//     and the rest of its default fields), a request's
//     no-store, bodies over MaxObjectBytes or streamed, and responses to
//     requests with credentials unless public, s-maxage or
//     must-revalidate say otherwise (RFC 9111 §3.5).
//   - Freshness (§4.2.1): s-maxage, then max-age, then Expires − Date;
//     otherwise the route's cache_ttl (else Options.DefaultTTL) for the
//     heuristic codes or a public response. Age is computed as in §4.2.3
//     and sent on every hit.
//   - Reuse (§4): a fresh entry is served; the request's max-age,
//     min-fresh, max-stale, no-cache (and Pragma: no-cache),
//     only-if-cached (504 when nothing is stored) are honoured. no-cache
//     in the response revalidates every use. A stale entry is
//     revalidated with its ETag and Last-Modified; a 304 refreshes it
//     (§4.3.4). must-revalidate, proxy-revalidate and s-maxage forbid
//     serving stale. stale-while-revalidate serves stale while one
//     request revalidates in the background (Result.Fill on a stale Hit;
//     the proxy runs it); stale-if-error serves stale
//     in place of a failure (no answer, 500, 502, 503, 504) within its
//     window (RFC 5861).
//   - Conditional requests: a client's If-None-Match (weak comparison) or,
//     without it, If-Modified-Since is answered 304 from a usable entry.
//   - HEAD is answered from the GET entry; a HEAD miss goes upstream and
//     stores nothing.
//   - Invalidation (§4.4): a non-error answer to an unsafe method removes
//     the target's entries, and those of a same-origin Location or
//     Content-Location (Invalidates, AppendSameOriginKey, Invalidate).
//   - Coalescing: concurrent misses (or revalidations) of one key send
//     one request upstream; the others wait up to Options.LockTimeout and
//     are served from its answer. An answer that cannot be stored leaves
//     a hit-for-miss marker for Options.HitForMiss: requests for the key
//     then go upstream at once, without waiting on each other.
//   - Purge removes a host's entries under a path prefix, both schemes;
//     it is per instance.
//
// # Limits
//
// Revalidation updates the entry that was revalidated, not every entry
// the 304's validator selects. A HEAD answer does not update a stored
// GET entry (§4.3.5). A request with more than one line of a field a
// response varies on is served upstream and its answer not stored
// (matching would compare one line; the upstream saw them all).
package cache
