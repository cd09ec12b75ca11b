// Package balancer chooses the backend for each proxied request and
// keeps the state that choice depends on: per-backend counters, active
// health, passive ejection and the detected upstream protocol.
//
// It imports the standard library only (no net/http), and never
// sees a request: callers pass plain values (a cookie value, the time).
//
// # Backends and sets
//
// A Backend is the state of one address (host:port). A Set hands out one
// Backend per address, so every route and every config generation that
// names an address shares its counters and health, and a reload keeps
// them (Set.Sweep drops addresses no longer used, after the drain).
//
// # Pools and picks
//
// A Pool is an immutable selection over members (backend, weight,
// backup flag), built once per route and config generation. Pick takes
// no lock and allocates nothing: round robin walks a precomputed smooth
// weighted schedule with an atomic counter, random draws from the
// runtime's per-thread generator, least_conn scans the in-flight counts.
// The proxy calls Backend.Acquire when it sends a request and
// Backend.Release when the exchange ends.
//
// A pick considers, in order:
//
//  1. the available non-backup members (Up and not ejected);
//  2. when there are none, the available backups;
//  3. when there are none either, every member regardless of health, and
//     reports panic mode. Refusing all traffic because every health
//     signal is negative would turn a health-check mistake (a wrong
//     path, a firewall on the probe) into a full outage; sending to
//     backends that may be down costs nothing more than the errors the
//     clients would get anyway. This is Envoy's panic threshold at 0%.
//
// When one backend is unavailable, the pick redraws (the next schedule
// slot, or a new random number) a few times, which keeps the weighted
// shares among the remaining backends; when most are unavailable it
// scans the members from a random start.
//
// # Health
//
// Active health checks and protocol detection live in the subpackage
// balancer/health, which speaks HTTP/1.1 and HTTP/2 to backends; this
// package keeps the state they write (Backend.SetUp, SetProto,
// RecordCheck) and imports no HTTP stack, so the proxy's front-end-neutral
// pipeline can use it.
//
// # Passive ejection
//
// The proxy reports each exchange: ReportFailure for a connect error, a
// reset before the response, or a timeout; ReportSuccess for any
// response. DefaultFailThreshold (3) consecutive failures eject the
// backend for DefaultCooldown (10s). When the backend is actively
// checked, a passing probe ends the ejection at once and a failing probe
// prolongs it, so it lasts until a check passes; without checks it lasts
// the cooldown. Pools built with ignoreHealth (routes with health checks
// off) ignore the active state but still honour ejection.
//
// # Retries
//
// A retry must go to another backend: pass the failed backend as Pick's
// exclude. Pick never returns it; it returns nil when no other member
// exists. Retrying is only safe when the request was not sent (a connect
// error) or is idempotent and its body was not streamed; deciding that
// is the proxy's job. In panic mode the alternative may be down as well;
// the proxy may prefer not to retry then.
//
// # Sticky sessions
//
// The sticky cookie value is
//
//	<routeKey>.<mac>
//
// with routeKey the route's stable identity (the proxy's route key, an
// FNV-1a 64 hash of its host and path) in 16 lower-case hex digits, and
// mac the first StickyMACBytes (12) bytes of HMAC-SHA256(secret, routeKey
// as 8 big-endian bytes || backend address), base64url-encoded without
// padding (16 characters). It reveals no address, cannot be forged
// without the secret, is valid only for the route that issued it, and
// survives reloads that keep that route. Sticky.Lookup returns nil for a
// value that is malformed, for another route, forged, or names a backend
// that is gone from the pool or unavailable; the proxy then picks
// normally and sets a new value.
package balancer
