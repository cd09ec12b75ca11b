// Package pipeline is the front-end-neutral request path of the proxy:
// every rule about what a request may do and what reaches a backend is
// written here once, and the front ends (fasthttp for HTTP/1.1, net/http
// for h2, h2c and gRPC, the WebSocket tunnel) are thin adapters that fill
// a Request, call the steps, and apply the resulting Plans to their own
// header types. The package imports neither fasthttp nor net/http, even
// transitively (`make deps` checks it), so a rule cannot be written into
// one front end by accident.
//
// # Steps
//
// For each request, a front end runs, in this order:
//
//  1. SetTarget and See: parse the target and the headers into the
//     Request view (400, 414 for malformed input);
//  2. Route (pure, no side effects): ACME HTTP-01 challenge → host, then
//     an exact path route (Kubernetes' Exact pathType), else the longest
//     path prefix of the routing path (404; a ";parameter" that makes a
//     dot-segment, 400) → the route's body size limit (413) → encoded
//     delimiters that would route elsewhere (400) → client address and
//     allow/deny (403) → to_https / redirect_to (301, 308) → no backend
//     (503);
//  3. Admit (exactly once per request, with the request's context): 4xx
//     limit and rate limit (429) → authorization (401, 403, a forward-auth
//     redirect, or the forward-auth service's own 401 or 403 relayed with
//     its headers and body; 503 when forward auth is unavailable) →
//     sticky cookie;
//  4. CacheLookup (routes with the response cache, cache.go): a hit is
//     answered from the cache (PlanHit) and skips the rest; a miss or a
//     revalidation goes on, with PlanCacheRequest after PlanRequest and
//     CacheResponse (or CacheFailed) after Attempt;
//  5. PlanRequest: the upstream target, Host and header rewrite (the
//     hop-by-hop and forwarding-header rules are documented there);
//  6. Attempt: the one attempt loop (pick, in-flight count, one error
//     classifier, one retry rule) over the front end's Transport;
//  7. PlanResponse (or PlanReply for the proxy's own answers) and
//     Responded, which feeds the x4xx_limit.
//
// Because Route is pure, an "Expect: 100-continue" request can be routed
// and admitted before its body is read, and the result reused: limits
// count each request once.
//
// # Path normalization
//
// AppendNormalizedPath is the one normalization policy: percent-encoded
// unreserved characters are decoded (RFC 3986 §6.2.2.2), every other
// escape is kept with upper-case hex (so %2F and %5C stay encoded and
// never become separators), dot-segments are removed (§5.2.4) and runs of
// "/" are merged. The normalized path is the path forwarded and, with one
// exception, the path routed on, so "/public/../admin" or "/%61dmin" can
// never be routed by one rule and reach the upstream as another. A
// malformed escape, a control byte (raw or encoded, %00–%1F and %7F) or a
// target that is not an absolute path gets 400. The query string is
// forwarded byte for byte, minus parameters the proxy consumed
// (araleztoken).
//
// The exception: a segment's ";parameters" are ignored for routing
// (AppendRoutingPath), because servlet containers and Spring strip them
// before serving: "/admin;v=1/x" is routed (and authorized) as
// "/admin/x", and forwarded as "/admin;v=1/x". A segment that is "." or
// ".." once its parameters are dropped ("/x/..;/admin") gets 400.
//
// Delimiters that stay encoded are forwarded as they are, unless an
// upstream that decodes them would see a path of another route: %2F, %5C
// and a raw "" (as "/"), %3B (as ";", then dropped with its parameter),
// %3F and %23 (ending the path there). Then the request gets 400, so
// "/admin%2Fx", "/admin%3Bv=1/x" or "/admin%3F/x" never reach /admin's
// content through the policies of "/"; "/files/a%3Fb" still works.
//
// # Guarantees
//
// The steps take no locks and, but for forward auth (a network call),
// allocate nothing once a Request, Decision and Plan have been reused a
// few times (the proxy package's TestRequestPathAllocs guards the whole
// HTTP/1.1 path). Byte slices in a Request, Decision or Plan are views
// valid until the handler returns.
package pipeline
