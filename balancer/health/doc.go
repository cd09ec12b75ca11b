// Package health is the active health checker of the balancer's
// backends and the detector of their protocol.
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
// Before a backend's first probe, the checker detects its protocol
// (Detect): TLS with ALPN h2 or http/1.1, h2c with prior knowledge, or
// HTTP/1.1. Detection is a step of its own with its own Timeout, and
// what it proves (a TLS handshake, an HTTP/2 SETTINGS frame) is stored on
// the Backend at once, for the proxy and for the probes, whether or not
// the probes then pass: a TLS-only backend is never probed or proxied to
// in clear text because a probe failed. Clear-text HTTP/1.1, the answer
// when neither worked, is stored once a probe gets an answer. Probes
// speak the stored protocol: over TLS the handshake's ALPN re-detects h2
// on every probe for free; full detection runs again when the known
// protocol stops working (an error after connecting) or when a
// clear-text HTTP/1 probe gets 400, the answer of TLS servers to clear
// text (once: a 400 right after a detection that found clear text is
// taken as the backend's answer). Note that HTTP/1-only servers built on
// Go's net/http pass the h2c detection preface ("PRI * HTTP/2.0") to
// their handler as a request, so such backends see one PRI request per
// detection. Backends of routes without health checks are not detected
// by the checker; call DetectBackend and SetProto for them.
package health
