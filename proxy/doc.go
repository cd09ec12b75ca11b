// Package proxy is the request path of aralez: the listeners, the fasthttp
// front end (HTTP/1.1), the routing snapshot, the policy chain and the
// forwarding to backends.
//
// # Data flow
//
// cmd/aralez loads a config.Config, Compile turns it into an immutable
// Snapshot (host maps, prefix tables sorted longest first, precomputed
// header bytes, balancer pools, compiled policies), and (*Engine).Swap
// publishes it with one atomic store. Each request loads the snapshot
// once, fills the front-end-neutral Request view, runs the policy chain
// (decide) and acts on the Decision. Per-backend state that must outlive a
// config (connection pools, health, counters, the sticky secret) lives in
// the Registry, keyed by address.
//
// # Path normalization
//
// fasthttp's own path normalization is not used (its decoded path is
// never read). The proxy applies exactly one policy, AppendNormalizedPath:
// percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2),
// every other escape is kept with upper-case hex (so %2F and %5C stay
// encoded and never become separators), dot-segments are removed (§5.2.4)
// and runs of "/" are merged. The normalized path is both the path routed
// on and the path forwarded, so "/public/../admin" or "/%61dmin" can never
// be routed by one rule and reach the upstream as another. A malformed
// escape, a control byte or a target that is not an absolute path gets
// 400. The query string is forwarded byte for byte, minus parameters the
// proxy consumed (araleztoken).
//
// # Guarantees
//
// The request path takes no locks of its own and, for bodies of known
// length up to Options.BodyBufferBytes, allocates nothing
// (TestRequestPathAllocs guards it). fasthttp's connection pool behind
// each backend uses a mutex of its own. Views returned by fasthttp's Peek
// are never kept after the handler returns.
//
// # Limits
//
// read_timeout and write_timeout of the front end bound a whole request
// and a whole response (fasthttp sets absolute deadlines); upstream
// connections instead get an idle deadline per read and write
// (upstream_timeout), so long bodies that keep flowing are never cut on
// the upstream side. A chunked request body is not limited by
// max_request_body_bytes, which applies to declared lengths.
package proxy
