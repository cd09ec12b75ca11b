// Package balancer chooses the backend for each proxied request and
// keeps the state that choice depends on: per-backend counters, active
// health, passive ejection and the detected upstream protocol.
//
// It imports the standard library and golang.org/x/net only, and never
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
// The HealthChecker probes every target (backend, Host header, path) once
// per interval, with a bounded number of concurrent probes. A probe is
// one request, METHOD scheme://address/path with the route's Host (and
// SNI when the host is a DNS name), over a fresh connection. A backend
// passes a round when a probe gets any HTTP response with a status below
// 500; connection errors, TLS errors, timeouts and 5xx fail it. Aralez
// counted 100 to 498 as healthy; 499 is not a status servers send, so
// the rules agree in practice. Rise consecutive passing rounds bring a
// backend up and Fall consecutive failing ones take it down (2 and 2 by
// default); every flip is logged once with its reason. Backends start
// up, so a new backend gets traffic until probes say otherwise; call
// CheckNow before serving to settle the state first.
//
// Probing also detects the protocol (Detect): TLS with ALPN h2 or
// http/1.1, h2c with prior knowledge, or HTTP/1.1. The detected protocol
// is stored on the Backend for the proxy. Later probes speak it: over
// TLS the handshake's ALPN re-detects h2 on every probe for free; full
// detection runs again when the known protocol stops working (an error
// after connecting) or when a clear-text HTTP/1 probe gets 400, the
// answer of TLS servers to clear text (once: a 400 right after a
// detection that found clear text is taken as the backend's answer). Detection reuses its connection
// for the probe when it can (TLS, h2c). Note that HTTP/1-only servers
// built on Go's net/http pass the h2c detection preface ("PRI *
// HTTP/2.0") to their handler as a request, so such backends see one
// PRI request per detection. Backends of routes without health checks
// are not detected by the checker; call Detect and SetProto for them.
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
//	<routeID>.<mac>
//
// with routeID in decimal and mac the first StickyMACBytes (12) bytes of
// HMAC-SHA256(secret, routeID as 4 big-endian bytes || backend address),
// base64url-encoded without padding (16 characters). It reveals no
// address, cannot be forged without the secret, and is valid only for
// the route that issued it. Sticky.Lookup returns nil for a value that is
// malformed, for another route, forged, or names a backend that is gone
// from the pool or unavailable; the proxy then picks normally and sets a
// new value.
package balancer
