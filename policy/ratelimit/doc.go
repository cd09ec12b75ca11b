// Package ratelimit keeps per-client request-rate and 4xx counters for the
// edge policies (rate_limit and x4xx_limit). It takes plain values (a
// netip.Addr, a host hash, a route id, a clock reading in nanoseconds) and
// knows nothing of HTTP.
//
// # Keys
//
// A Key is client address + host hash + route id. IPv4 clients are keyed by
// their address, IPv6 clients by their /64, so a host that owns a /64
// cannot escape its limit by rotating addresses. The caller picks the host
// hash (any stable 64-bit hash of the virtual host) and the route id: the
// id of the path entry when the limit is set on a path, 0 when it is set on
// the host or globally. Keying by host as well as address is what Aralez
// documents ("per requester IP plus virtual host"); Aralez itself keys by
// address only.
//
// # Request rate: GCRA token bucket
//
// Allow implements GCRA, the generic cell rate algorithm, which is a token
// bucket kept as a single number: the theoretical arrival time (TAT) at
// which the bucket is full again. A limit of N requests per second gives a
// bucket of N tokens refilled at one token every ceil(1e9/N) nanoseconds.
// One request costs one compare-and-swap on that word, so counting is exact
// under any concurrency; refused requests are not counted.
//
// Accuracy: with a fixed clock exactly N requests pass; over any interval
// of d seconds at most N + d*N requests pass (the burst plus the refill),
// and a client that sends steadily at or below N per second is never
// refused. The emission interval is rounded up to a whole nanosecond, so
// the long-run rate is at most N (and lower by under N/1e9 relative).
// Retry-After is the wait until the next token, rounded up to whole
// seconds: 1 for every limit once the burst is spent. Limits above 1e9 per
// second behave as 1e9. A TAT more than 2 s ahead of now can only come from
// the clock stepping back; the bucket is then reset rather than locking the
// client out until the clock catches up.
//
// # 4xx limit
//
// Count4xx counts 4xx responses per key in fixed one-second windows
// aligned to whole seconds of the clock. Blocked reports a key as blocked
// when more than its limit of 4xx responses were counted in the current
// window, and then stays blocked for the rest of that window (Retry-After
// 1). The caller counts the 4xx responses of upstreams and of its own
// policy checks, but never the 429s it answers for a rate or 4xx limit:
// counting those would keep a client that retries once a second locked out
// forever. Blocked never creates a key.
//
// One Limiter serves both limits: each entry holds the token bucket and the
// 4xx window, which do not interact.
//
// # Memory
//
// Keys live in a sharded xsync.MapOf; a key already seen is read without a
// lock or allocation. An entry takes about 90 bytes of heap with its share
// of the hash table (1,000,000 client addresses: about 90 MB, measured by
// BenchmarkMemory1MKeys), and the table shrinks back when keys are swept:
// after sweeping those 1,000,000 keys the benchmark finds about 100 bytes
// left.
//
// A key is idle once its bucket is full again and its 4xx window is over;
// Sweep (or Run, every DefaultSweepInterval) removes keys idle for
// Options.IdleTTL. A sweep visits every key; it is bound by memory latency
// (0.1 to 0.5 s per million keys on a loaded two-core machine), hence the
// 10 s default interval.
//
// Options.MaxKeys is a hard cap. An insert into a full map triggers a pass
// that removes idle keys, then the least recently active ones (by a
// 1,024-entry sample of activity times), about an eighth of the cap at a
// time. When Run is active it does that pass, so no request stalls on it;
// otherwise the inserting goroutine does. New keys arriving before the
// pass has made room are not stored and are treated as fresh (allowed, not
// blocked): the limiter fails open under a flood of new addresses larger
// than the cap, and its memory never grows past it.
//
// # Fleet
//
// With Options.Store (policy/ratelimit/redisstore on Redis), the limits
// hold for every instance sharing the store. The request path does not
// change in kind: it takes no lock, makes no network call and allocates
// nothing; the local counters decide, and a background loop started by
// Run exchanges them with the store every Options.SyncInterval (100 ms by
// default), one atomic script per key.
//
// The store keeps the same GCRA bucket as the local one, for the whole
// fleet: one theoretical arrival time per key, advanced by what every
// instance admitted. At each exchange an instance pushes what it admitted
// since its previous exchange and moves its local bucket to the fleet's
// (plus what it admitted during the round trip), never backwards. So the
// local decision is the fleet's bucket as of the last exchange, plus this
// instance's admissions since. The 4xx limit keeps its fixed one-second
// window: the store adds up the instances' counts per window, and Blocked
// compares the local count plus the other instances' (as of the last
// exchange) with the limit.
//
// Accuracy. Between two exchanges an instance does not see what the
// others admit. For a client over the limit, each instance's bucket is
// empty after an exchange and refills at the limit's rate, so in one
// interval the others can admit (N-1) × limit × interval beyond what the
// fleet allows; the fleet's bucket records that as debt, paid back by
// refusing for as long afterwards. On top of that, an instance keeps up
// to a quarter of one interval's refill divided by N unreported for a key
// that is not contended (see below). So over any second after the first,
// a fleet of N instances admits at most
//
//	limit + (N-1) × limit × interval + N × max(1, ⌈limit × interval / 4N⌉)
//
// (the first second may add the burst, limit, as on one instance). With
// 3 instances, rate_limit 100 and the default 100 ms that is 100 + 20 + 3
// = 123; three runs each of TestFleetLimit (redisstore, three limiters)
// and TestFleetRateLimit (cmd/aralez, three processes) measured 91 to
// 113 per second, and the seconds average out to the limit.
//
// Keys that need no exchange get none: a key is queued for the next
// exchange once an instance admitted a quarter of one interval's refill
// divided by N (at least one request), or counted a quarter of its 4xx
// limit divided by N, or when the last exchange found it contended (the
// fleet's bucket less than half full, or 4xx over half the limit). A
// limit far above the traffic therefore costs the store nothing, and the
// request path one more atomic add. At most MaxSyncKeys keys go in one
// exchange; others wait for the next.
//
// A key this instance has not exchanged in the last interval (a client
// new here, or back after a pause) is stale: until its next exchange the
// instance admits at most limit / N for it, N being the instances the
// store counted (each exchange announces the instance; Options.FleetSize
// before the first), so that a client arriving on every instance at once
// gets about one limit, not N.
//
// Outages. An exchange that fails or takes longer than the sync interval
// switches the Limiter to local limits: each instance enforces
// limit / Options.FleetSize (rounded up) alone, and logs one line. The
// next successful exchange switches back and logs one line. No request
// waits for the store at any time. FleetStats reports the state and the
// counters for metrics.
//
// Memory: a key takes about 70 bytes more with a store.
//
// # Clock
//
// Every method takes now as Unix time in nanoseconds
// (time.Now().UnixNano()); Run reads the same clock. Tests inject any
// value.
package ratelimit
