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
//     by ALPN, to fasthttp's server or to net/http's own HTTP/2 server;
//   - proxyproto.go: the PROXY protocol header of connections from the
//     load balancers in ListenOptions.ProxyProtocolFrom, read before that
//     dispatch; the client address it carries becomes the connection's
//     RemoteAddr, which every front end and the pipeline use;
//   - front_fast.go: the HTTP/1.1 front end (fasthttp) and its
//     pipeline.Transport;
//   - front_net.go, grpc.go: the net/http front end (h2, h2c, gRPC) and
//     its Transport, with gRPC's status mapping; it reaches HTTP/1.1
//     backends over the same fasthttp pools as the HTTP/1.1 front end;
//   - ws.go: WebSocket tunnels from the HTTP/1.1 front end;
//   - upstream_fast.go, upstream_net.go, registry.go: the upstream
//     transports (fasthttp connection pools with streamed bodies; net/http
//     HTTP/2 and TLS transports) and the Registry that owns them;
//   - upstream_proxy.go: send_proxy_protocol, a PROXY header naming the
//     client on each upstream connection of such a route;
//   - framing.go, bodylimit.go: the HTTP/1.1 request framing check
//     below fasthttp's parser, and the body limit while a body streams;
//   - upstream_early.go: a backend's answer before the end of the body;
//   - upstream_feed.go: a streamed HTTP/1.1 request body sent through a
//     net/http transport, fed by the goroutine serving the client and cut
//     off when the exchange ends;
//   - park.go: idle cleartext HTTP/1.1 keep-alive connections give
//     fasthttp's buffers and worker back after
//     ListenOptions.IdleReleaseTimeout and wait in a small goroutine of
//     their own until their next request;
//   - observe.go: metrics and the access log of both front ends.
//
// # Guarantees
//
// The request path takes no locks of its own and, for bodies of known
// length up to Options.BodyBufferBytes, allocates nothing on the HTTP/1.1
// front end (TestRequestPathAllocs guards it). fasthttp's connection pool
// behind each backend uses a mutex of its own. Views returned by
// fasthttp's Peek are never kept after the handler returns, and a
// streamed HTTP/1.1 request body is read only by the goroutine serving
// its client's connection, and only until the handler returns, also when
// a net/http transport sends it (upstream_feed.go). Each backend's
// in-flight count is released exactly once, when the relay of its
// response really ends: for a streamed HTTP/1.1 body that is the
// stream's Close, after the handler has returned.
//
// # Limits
//
// read_timeout and write_timeout of the front end bound a whole request
// and a whole response (fasthttp sets absolute deadlines); upstream
// connections instead get an idle deadline per read and write
// (upstream_timeout), so long bodies that keep flowing are never cut on
// the upstream side. max_request_body_bytes (the route's,
// pipeline.Decision.BodyLimit) holds for every body: a declared length is
// refused before anything is sent, a body of unknown length (chunked, or
// HTTP/2 without content-length) is cut where it goes over (bodylimit.go),
// and on HTTP/1.1 a chunk size that would go over is refused as soon as
// its line is read (framing.go), so no byte beyond the limit reaches a
// backend.
//
// On HTTP/1.1, framing.go also checks every request head below fasthttp's
// parser (a bare LF or CR gets 400 at once) and bounds chunk-size lines
// (maxChunkLineBytes); an HTTP/1.0 client gets a
// body of unknown length close-delimited, never chunked; requests go
// upstream as HTTP/1.1 whatever the client spoke, and versions other than
// 1.0 and 1.1 get 505. A backend that answers before it has read the
// whole body and closes has that answer relayed (upstream_early.go).
package proxy
