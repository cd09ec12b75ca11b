// Package auth checks the credentials of the edge authorization policies:
// HTTP Basic, API key, JWT and forward auth. The checks take plain values
// (header bytes, a netip.Addr, a clock reading in Unix nanoseconds) and
// know nothing of the proxy's front ends; the proxy maps their results to
// responses. The zero Result (Invalid) and the zero Decision (Unavailable)
// both refuse, so an unset value fails closed.
//
// # Basic
//
// Users are "user:password" (plain text) or "user:<bcrypt hash>" in the
// htpasswd -B form ($2y$, $2a$ or $2b$). Plain passwords are compared as
// SHA-256 digests in constant time. An unknown user costs one bcrypt
// comparison at the list's highest cost when the list has bcrypt users, so
// it cannot be told from a wrong password by timing.
//
// bcrypt takes tens of milliseconds of CPU, so verified header values are
// cached: at most DefaultCacheSize (4096) entries per Basic, keyed by a
// seeded hash of the value and holding a copy of it that a hit compares in
// constant time; entries do not expire (a new user list builds a new Basic)
// and a full cache drops an eighth of its entries. A hit allocates nothing.
// Only successes are cached.
//
// Failed checks are limited per client address (IPv6 by /64): a burst of
// DefaultFailureBurst failures, then one per DefaultFailureInterval. An
// uncached check reserves a failure before it verifies and gives it back
// when the credentials are right, so one client never runs more bcrypt
// checks at once than the burst. A throttled client's uncached credentials
// are answered Throttled without running bcrypt; its cached ones still
// pass. The failure table holds at
// most 65,536 addresses; when it is full, recovered addresses are pruned,
// and addresses that still do not fit share one overflow bucket, so even a
// distributed guessing attack is bounded to about one bcrypt per second
// beyond the tracked clients, at the price of throttling untracked clients
// together while it lasts.
//
// # API key
//
// APIKey compares in time that depends only on the configured key's
// length, whatever the value sent, so neither the key nor its length leaks
// through timing.
//
// # JWT
//
// Only HS256 is accepted; "none", HS384, HS512 and the asymmetric
// algorithms are rejected before the key is touched. exp is required; exp
// and nbf are checked with DefaultJWTLeeway (5 s) of clock skew unless
// JWTOptions.Leeway says otherwise. Valid tokens are cached until exp plus
// the leeway, in a bounded cache like Basic's (JWTOptions.CacheSize,
// default 4096, expired entries evicted first), so the hot path does not
// parse JSON or compute an HMAC. Each JWT has its own cache: a token for one
// key never opens a JWT with another key. BearerToken extracts the token
// of an Authorization header; reading the araleztoken query parameter (and
// removing it before forwarding) is the proxy's job.
//
// # Forward auth
//
// The forward subpackage asks an external service over a pooled net/http
// client (no environment proxy, redirects not followed) with a timeout
// (DefaultForwardTimeout, 5 s). 2xx allows the request and returns the
// service's values of the configured response headers (default
// DefaultResponseHeaders) for the proxy to set on the upstream request; the
// proxy removes client-sent copies of those names in every case. 3xx is
// passed to the client as a redirect, 401 and 403 as a denial with
// WWW-Authenticate. Every other status, a connection error or a timeout is
// Unavailable: the proxy answers 503 and never forwards (fail closed).
package auth
