// Package proxy is the request path of aralez: the listeners and their
// protocol dispatch, the front ends, and the upstream transports. The
// rules every request follows live in the front-end-neutral subpackage
// proxy/pipeline; this package adapts them to its server libraries.
//
// # Data flow
//
// cmd/aralez loads a config.Config, Compile turns it into an immutable
// Snapshot (pipeline.Compile: host maps, prefix tables sorted longest
// first, precomputed header bytes, balancer pools, compiled policies),
// and (*Engine).Swap publishes it with one atomic store. Each request
// loads the snapshot once and runs the pipeline's steps (pipeline/doc.go).
// Per-backend state that must outlive a config (connection pools,
// health, counters, the sticky secret) lives in the Registry, keyed by
// address; the Registry is the pipeline's Resolver.
//
// # Files
//
//   - listen.go: the accept loops; cleartext connections are dispatched
//     by their first bytes (HTTP/2 preface → h2c, else HTTP/1.1), TLS ones
//     by ALPN;
//   - proxyproto.go: the PROXY protocol header of connections from the
//     load balancers in ListenOptions.ProxyProtocolFrom, read before that
//     dispatch; the client address it carries becomes the connection's
//     RemoteAddr, which every front end and the pipeline use;
//   - front_fast.go: the HTTP/1.1 front end (fasthttp) and its
//     pipeline.Transport;
//   - front_net.go, grpc.go: the net/http front end (h2, h2c, gRPC) and
//     its Transport, with gRPC's status mapping;
//   - ws.go: WebSocket tunnels from the HTTP/1.1 front end;
//   - upstream_fast.go, upstream_net.go, registry.go: the upstream
//     transports (fasthttp connection pools with streamed bodies; net/http
//     HTTP/2 and TLS transports) and the Registry that owns them;
//   - upstream_proxy.go: send_proxy_protocol, a PROXY header naming the
//     client on each upstream connection of such a route;
//   - observe.go: metrics and the access log of both front ends.
//
// # Guarantees
//
// The request path takes no locks of its own and, for bodies of known
// length up to Options.BodyBufferBytes, allocates nothing on the HTTP/1.1
// front end (TestRequestPathAllocs guards it). fasthttp's connection pool
// behind each backend uses a mutex of its own. Views returned by
// fasthttp's Peek are never kept after the handler returns. Each
// backend's in-flight count is released exactly once, when the relay of
// its response really ends: for a streamed HTTP/1.1 body that is the
// stream's Close, after the handler has returned.
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
