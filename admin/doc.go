// Package admin is the config API server (config_address, and
// config_tls_address with its certificate): it takes pushed routing
// tables, signs JWTs, and serves status, metrics, liveness, readiness and
// profiles. It runs on net/http, apart from the proxy's listeners, and
// talks to the rest of the process only through a discovery.Push (to
// hand over tables) and read-only views (StatusSource, a metrics
// handler).
//
// # Endpoints
//
//	POST /conf?key=K[&save]       body: an upstreams.yaml document
//	POST /jwt                     body: {"master_key": K, "owner": "name", "valid": minutes}
//	                              or Aralez's {"master_key", "owner", "exp": minutes, "random"}
//	POST /cache/purge?key=K&url=http://host/path?query     one cached URL
//	POST /cache/purge?key=K&host=H[&prefix=/path]          a host's URLs under a prefix
//	GET  /status[?live|?all|?certificates]   JSON, see StatusView (?certificates: the ACME-managed names)
//	GET  /metrics                 Prometheus text format
//	GET  /live                    200 while the process runs
//	GET  /ready                   200 when ready, 503 before and while draining
//	GET  /debug/pprof/…?key=K     net/http/pprof
//	ANY  /acme_create?key=K        register (or find) the ACME account; 200 with its URL
//	ANY  /acme_order/NAME?key=K    obtain a certificate for NAME now and keep it renewed
//	GET  /.well-known/acme-challenge/TOKEN   the HTTP-01 key authorization of a held token, else 404
//
// The ACME endpoints are Aralez's; unlike Aralez, /acme_create and
// /acme_order need the master key and are refused (403) when none is
// configured, as POST /conf is. /acme_order answers 200 "Certificate is
// successfully generated", 200 "Fresh certificate exists. Not renewing!"
// when a valid certificate was already stored, 400 for a name that is not
// a fully qualified domain name, and 500 with the CA's error otherwise.
// The challenge endpoint needs no key: it answers only tokens of pending
// challenges, for the request's Host.
//
// The master key is given as ?key=K (Aralez's form) or as an
// "Authorization: Bearer K" header, and compared in constant time
// (SHA-256 of both sides, then subtle.ConstantTimeCompare, so even the
// length does not leak). Keys are never logged.
//
// # POST /conf
//
// The checks run in this order, and the first that fails answers:
//
//   - config_api_enabled is false, or no master_key is configured (the
//     API is then read-only; the body says what to set): 403;
//   - no key given: 401 (with WWW-Authenticate: Bearer);
//   - wrong key: 403;
//   - body over Options.MaxBodyBytes (DefaultMaxBodyBytes, 4 MiB): 413;
//   - an empty body (only blank lines, comments and document markers):
//     400, so a script posting a missing file cannot empty the table or,
//     with save, the file; "upstreams: {}" is a table without routes;
//   - the document does not parse or validate: 400 with every error, one
//     per line, as "<api>:line:col: path: message";
//   - save without an upstreams_conf path: 400;
//   - the reload loop rejects it (compiling failed): 400 with its error;
//   - the reload loop does not answer within Options.ApplyTimeout: 503
//     (the table may still be applied).
//
// The pushed document takes the place of the upstreams file only: the
// hosts of conf.d/*.yaml beside upstreams_conf are merged in, exactly as
// a file reload merges them, so a push without save keeps them (a host
// both pushed and in conf.d is a 400). Nothing is applied when any check
// fails. Success is 200 with a one-line
// summary: "config applied: 3 hosts, 5 paths" (plus "; saved to PATH").
// Pushes are handled one at a time.
//
// save is Aralez's "?save" (presence) or "save=true"; "save=false", "0"
// and "no" do not save. With save the document is first written to upstreams_conf
// atomically — a temporary file in the same folder, fsync, rename, fsync
// of the folder — so a crash leaves either the old or the new file, never
// half of one. The file is then loaded back exactly as the file watcher
// will load it (with conf.d/) and that value is pushed; when the file
// watcher then reports the change, the reload loop sees the same digest
// (discovery.Digest) and skips it, so the table is applied once. When
// loading back or applying fails, the previous file content is restored
// the same way and the answer is 400.
//
// # POST /cache/purge
//
// Removes responses from this instance's response cache (other instances
// keep theirs): by exact URL (its scheme, host, port if given, path and
// query form the cache key; requests whose Host named a port are stored
// apart) or by host and path prefix under both schemes (a host without a
// port covers every port). It needs the
// master key, like /conf (no master_key: 403, the API is read-only); it
// does not need config_api_enabled, as it changes no routing. Without a
// cache (cache_size_mb 0) it answers 404; a missing or bad url, host or
// prefix is a 400. Success is 200 {"purged": N}, N counting each Vary
// variant.
//
// # Status, readiness, metrics
//
// /status reads Options.Status (nil answers 503). /ready is 200 only
// after SetReady(true) and while SetDraining(false). /metrics serves
// Options.Metrics (nil answers 404).
//
// # POST /jwt
//
// The body names the master key, an owner and the validity in minutes,
// as valid (ours) or exp (Aralez's; give one of them), from 1 to
// MaxTokenMinutes (about 292 years: a longer one is a 400, never a token
// whose expiry overflowed into the past). Aralez's optional random string
// is copied into a "random" claim. The answer is 201 {"token": "..."},
// HS256 with the master key, with the claims owner, iat and exp (Unix
// seconds); without a master key it is 403, a wrong key 403, a malformed
// body 400.
package admin
