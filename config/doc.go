// Package config parses and validates aralez's configuration: main.yaml
// (process settings) and upstreams.yaml plus conf.d/*.yaml (the routing
// table), in Aralez's format.
//
// The package is plain data: it starts no goroutines and touches no
// network. Parsing walks the YAML AST so that every error carries
// file:line:col and the YAML path of the offending key; all errors of a
// file are collected, not only the first. Results are returned as an
// ErrorList of *FieldError:
//
//	upstreams.yaml:12:13: upstreams.app.test.paths./api.servers[1]: invalid address "10.0.0.2": missing port; want host:port
//
// # Parsing rules
//
//   - Keys are strict: an unknown key is an error, with a "did you mean"
//     when a known key is close. Duplicate keys in a mapping are errors.
//   - Types are never coerced: 1.5 or "10" for an integer key, "true" for
//     a boolean, or 8080 for a string key are errors. YAML 1.2 applies, so
//     yes, no, on and off are strings, not booleans.
//   - Anchors, aliases and merge keys ("<<: *base") are resolved; explicit
//     keys win over merged ones. Tags (!!str) are rejected. The work for
//     one document is bounded, so aliases cannot expand without limit.
//   - A key written without a value (null) counts as absent.
//   - Parsing time is linear in the input; nesting deeper than 10,000
//     levels is an error. A syntax error is reported where it is, at
//     any file size (syntax.go): an unclosed "[" or "{" at the bracket,
//     a file that ends inside a value at its end, anything else on the
//     first line that makes the file fail, found by a few trial parses
//     (O(n log n) at worst, on the error path only). The column is the
//     offending ":" for "mapping values are not allowed", else the
//     line's first character, or, for inputs up to 16 KiB, where
//     goccy/go-yaml places it.
//   - Keys inherited from Aralez keep Aralez's types and units (hc_interval
//     and sticky_sessions are whole seconds, rate_limit is requests per
//     second). Keys added by this project take Go duration strings
//     ("250ms", "5s", which must be > 0) and byte counts.
//
// # main.yaml
//
// Aralez keys: threads, runuser, rungroup, daemon, pid_file, upgrade_sock
// (unused), config_api_enabled, config_address, config_tls_address,
// config_tls_certificate, config_tls_key_file, master_key (the JWT_KEY
// environment variable overrides it), proxy_address_http (default
// "0.0.0.0:6193"), proxy_address_tls, proxy_configs, proxy_tls_grade
// (high, medium, unsafe; any case; default medium; any other value is
// medium with a warning, as in Aralez), upstreams_conf
// (default "upstreams.yaml"), file_server_folder and file_server_address
// (both or neither; no two listener addresses may take the same socket:
// equal hosts, or a wildcard host, on one port), log_level (trace, debug, info, warn, error, off;
// default info), log_file ("path[, size_mb[, keep[, compress]]]"),
// access_log (all, error = status >= 500 as in Aralez 0.92, off;
// Aralez's "access" means all; default off), log_structured (a backend
// name such as "elasticsearch", or true: both logs as JSON lines; Aralez
// 0.92's spelling log_structired is read with a deprecation note),
// acme_dns_provider (stored for ACME DNS-01; the DNS_PROVIDER environment
// variable overrides it),
// hc_method (HEAD, GET, POST; default HEAD), hc_interval (seconds, default
// 2), tcp_keepalive_idle, tcp_keepalive_interval, tcp_keepalive_count,
// upstream_keepalive_pool_size (default 128).
//
// Keys of this project, with their defaults: upstream_max_conns (0 =
// unlimited), upstream_wait_timeout (1s), upstream_connect_timeout (5s),
// upstream_timeout (60s), upstream_idle_timeout (60s), read_header_timeout
// (10s), read_timeout (60s), write_timeout (60s), idle_timeout (60s),
// idle_release_timeout (1s), drain_timeout (10s), max_header_bytes
// (16384), max_uri_bytes (8192),
// h2_max_concurrent_streams (250), h2_stream_window_bytes and
// h2_connection_window_bytes (bytes, 65535 to 2^31-1; 1048576 each, the
// HTTP/2 defaults of net/http), body_buffer_bytes (65536), max_request_body_bytes (0 = unlimited),
// trusted_proxies (CIDRs; a bare IP is a /32 or /128), sticky_secret,
// health_check_interval (overrides hc_interval), health_check_timeout
// (at most the interval), health_check_rise and health_check_fall (2),
// cache_size_mb (MiB, Aralez's; 0 = no response cache), cache_ttl (whole
// seconds, Aralez's; 60), cache_max_object_bytes (1048576) and
// cache_status_header (a header name; none by default).
//
// Keys for running several instances behind one address: proxy_protocol
// (false) with proxy_protocol_from (CIDRs, required with it);
// rate_limit_store (redis://[[user]:password@]host:port[/db] or
// rediss://, no query options) or, not both, a redis block {address,
// username, password_env (the environment variable Load reads the
// password from), db, tls, key_prefix ("aralez:")}; rate_limit_sync
// (100ms, at most 1s) and rate_limit_fleet_size (1).
//
// Pingora keys found in Aralez files are accepted. error_log sets log_file,
// user and group set runuser and rungroup, graceful_shutdown_timeout_seconds
// (else grace_period_seconds) sets drain_timeout and ca_file sets
// Main.TLSCAFile, each only when the native key is absent. version,
// work_stealing, listener_tasks_per_fd, max_retries, client_bind_to_ipv4,
// client_bind_to_ipv6, upstream_connect_offload_threadpools,
// upstream_connect_offload_thread_per_pool and upstream_debug_ssl_keylog
// are listed in Main.Ignored. Keys of older Aralez releases
// (tls_certificate, tls_key_file, proxy_certificates, proxy_port_tls,
// sticky_sessions, log_pattern) are also ignored, with a note in
// Main.Deprecated. Values accepted with a safe substitute get a note in
// Main.Warnings.
//
// Load resolves upstreams_conf, pid_file, file_server_folder, log_file,
// proxy_configs, config_tls_certificate, config_tls_key_file and ca_file
// against main.yaml's folder. config_api_enabled without a master key
// is accepted, as in Aralez, with a warning: the config API is then
// read-only.
//
// # upstreams.yaml
//
// Top level: provider (file, consul, kubernetes; default file),
// sticky_sessions (seconds; 0 = off), to_https, rate_limit, x4xx_limit,
// server_headers, client_headers, authorization, allow, deny, tls_verify,
// cache, cache_bypass, consul, kubernetes and upstreams. Hosts and paths
// override these.
// A host entry (a mapping with paths) written at the top level, as
// Aralez's README and documentation show it, is read as a host of
// upstreams, with a warning (Aralez itself ignores it).
//
// upstreams maps HOST → {rate_limit, x4xx_limit, allow, deny, paths}.
// HOST is lower-cased and loses a trailing dot; DEFAULT (exactly) catches
// every other host; "*.example.com" matches exactly one label. paths maps
// a prefix starting with "/" to {servers, to_https, client_headers,
// server_headers, rate_limit, x4xx_limit, healthcheck, redirect_to,
// authorization, load_balance, allow, deny, tls_verify,
// forward_credentials, auth_response_headers, cache, cache_ttl,
// cache_bypass, send_proxy_protocol, max_request_body_bytes}.
//
//   - servers: "host:port [weight=N] [backup]"; the port is 1–65535 and
//     an IPv6 host is bracketed ("[::1]:8080"). A path needs servers
//     unless it has redirect_to (an http or https URL).
//   - Headers are "Name: Value", split at the first colon and trimmed; the
//     name is an RFC 9110 token and CR, LF and NUL are refused.
//   - rate_limit and x4xx_limit are positive integers.
//   - authorization is {type, data}: type basic ("user:password" entries),
//     apikey, jwt (data optional: the master key signs) or forward (one
//     http or https URL). data is a string or a list of strings.
//   - allow and deny are CIDRs or bare IPs; deny wins.
//   - load_balance is round_robin (default), least_conn or random.
//   - send_proxy_protocol is v1 or v2; a server address has one setting
//     in the whole table.
//   - auth_response_headers defaults to DefaultAuthResponseHeaders.
//   - cache is a boolean; cache_ttl is a positive integer of seconds;
//     cache_bypass is a list of header names and "cookie:NAME" entries.
//     Load warns when cache: true is set while cache_size_mb is 0.
//   - max_request_body_bytes is an integer of bytes >= 0 (0 = unlimited)
//     that replaces main.yaml's for the path.
//
// consul holds servers (host:port or URLs), token and services; kubernetes
// holds servers, tokenpath, ingress_class (a Kubernetes object name) and
// services. A service is {hostname, upstream, path (default "/"),
// to_https, rate_limit, x4xx_limit, client_headers, server_headers,
// authorization, redirect_to}; Aralez's older {proxy, real} form is read
// too. Without services, discovery finds the routes itself (Consul tags,
// Kubernetes Ingresses); Path.Match (exact paths) is set only by it.
//
// Files in conf.d beside upstreams.yaml are read in file-name order; each
// holds hosts at its top level, as in Aralez. A host defined in two files
// is an error naming both. A table without hosts is valid with a
// "no routes" warning.
//
// # Reloads
//
// A Cache keeps what each upstreams and conf.d file gave, keyed by the
// file's name and content: loads through it read every file but parse
// only those whose bytes changed, so a table spread over many conf.d
// files costs one file's parse per edit. Each file's hosts are checked
// on their own when parsed; a load then checks only what spans files
// (duplicate hosts, send_proxy_protocol per server). Upstreams.Stats
// says how many files a load read and parsed and the time it took.
// Host.Sum and Upstreams.Sum hash the routing content of a host and of a
// table, leaving out where it was written, for skipping unchanged
// reloads and for compiling only the hosts that changed.
//
// Keys of older Aralez releases are read with a warning in
// Upstreams.Warnings: globals.headers and a top-level headers list (Aralez
// set them on responses, so they are client headers), path-level headers
// (server_headers, as issue 2 defines them), globals.authorization
// ([type, data...]), path-level ssl (ignored:
// upstream TLS is detected), and a boolean sticky_sessions (false is 0,
// true is DefaultStickySessions).
package config
