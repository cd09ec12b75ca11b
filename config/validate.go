package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Allowed values of upstreams.yaml enums.
var (
	providers    = []string{"file", "consul", "kubernetes"}
	authTypes    = []string{"basic", "apikey", "jwt", "forward"}
	loadBalances = []string{"round_robin", "least_conn", "random"}
)

// errs collects FieldErrors for the Validate methods.
type errs struct{ l ErrorList }

func (e *errs) add(p Pos, path, format string, args ...any) {
	e.l = append(e.l, &FieldError{Pos: p, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks a Main after ApplyDefaults: enums, ranges, addresses and
// the rules between keys. Positions are unknown (Main keeps none); the
// YAML key names the field. ParseMain runs the same checks with positions
// while walking the file, so this matters for values built in code. The
// error is an ErrorList.
func (m *Main) Validate() error {
	var e errs
	pos := Pos{}
	for _, kv := range []struct{ key, v string }{
		{"proxy_address_http", m.ProxyAddressHTTP},
		{"proxy_address_tls", m.ProxyAddressTLS},
		{"config_address", m.ConfigAddress},
		{"config_tls_address", m.ConfigTLSAddress},
		{"file_server_address", m.FileServerAddress},
	} {
		key, v := kv.key, kv.v
		if v != "" {
			if msg := checkHostPort(v, true); msg != "" {
				e.add(pos, key, "%s", msg)
			}
		}
	}
	if m.ProxyAddressHTTP == "" && m.ProxyAddressTLS == "" {
		e.add(pos, "proxy_address_http", "no listener: set proxy_address_http or proxy_address_tls")
	}
	enum := func(key, v string, allowed []string) {
		if !slices.Contains(allowed, v) {
			e.add(pos, key, "%s", enumMsg(key, v, allowed...))
		}
	}
	enum("proxy_tls_grade", m.ProxyTLSGrade, tlsGrades)
	enum("log_level", m.LogLevel, logLevels)
	enum("access_log", m.AccessLog, accessLogs)
	enum("hc_method", m.HCMethod, hcMethods)
	for _, kv := range []struct {
		key string
		v   int
	}{
		{"upstream_max_conns", m.UpstreamMaxConns},
		{"tcp_keepalive_idle", m.TCPKeepaliveIdle},
		{"tcp_keepalive_interval", m.TCPKeepaliveInterval},
		{"tcp_keepalive_count", m.TCPKeepaliveCount},
		{"cache_size_mb", m.CacheSizeMB},
	} {
		if kv.v < 0 {
			e.add(pos, kv.key, "must be at least 0, got %d", kv.v)
		}
	}
	for _, kv := range []struct {
		key    string
		v, max int
	}{
		{"tcp_keepalive_idle", m.TCPKeepaliveIdle, maxKeepaliveSeconds},
		{"tcp_keepalive_interval", m.TCPKeepaliveInterval, maxKeepaliveSeconds},
		{"tcp_keepalive_count", m.TCPKeepaliveCount, maxKeepaliveCount},
	} {
		if kv.v > kv.max {
			e.add(pos, kv.key, "must be at most %d, got %d", kv.max, kv.v)
		}
	}
	if m.Threads < 0 {
		e.add(pos, "threads", "must be at least 0, got %d", m.Threads)
	}
	if m.MaxRequestBodyBytes < 0 {
		e.add(pos, "max_request_body_bytes", "must be at least 0, got %d", m.MaxRequestBodyBytes)
	}
	for _, kv := range []struct {
		key string
		v   int
	}{
		{"upstream_keepalive_pool_size", m.UpstreamKeepalivePoolSize},
		{"hc_interval", m.HCInterval},
		{"health_check_rise", m.HealthCheckRise},
		{"health_check_fall", m.HealthCheckFall},
		{"max_header_bytes", m.MaxHeaderBytes},
		{"max_uri_bytes", m.MaxURIBytes},
		{"h2_max_concurrent_streams", m.H2MaxConcurrentStreams},
		{"body_buffer_bytes", m.BodyBufferBytes},
		{"log_file", min(m.LogFileSizeMB, m.LogFileKeep)},
		{"cache_ttl", m.CacheTTL},
		{"cache_max_object_bytes", m.CacheMaxObjectBytes},
	} {
		if kv.v < 1 {
			e.add(pos, kv.key, "must be a positive integer, got %d", kv.v)
		}
	}
	for _, kv := range []struct {
		key string
		v   int
	}{
		{"h2_stream_window_bytes", m.H2StreamWindowBytes},
		{"h2_connection_window_bytes", m.H2ConnectionWindowBytes},
	} {
		if kv.v < MinH2WindowBytes || kv.v > MaxH2WindowBytes {
			e.add(pos, kv.key, "must be between %d and %d bytes, got %d", MinH2WindowBytes, MaxH2WindowBytes, kv.v)
		}
	}
	for _, kv := range []struct {
		key string
		d   time.Duration
	}{
		{"upstream_wait_timeout", m.UpstreamWaitTimeout},
		{"upstream_connect_timeout", m.UpstreamConnectTimeout},
		{"upstream_timeout", m.UpstreamTimeout},
		{"upstream_idle_timeout", m.UpstreamIdleTimeout},
		{"read_header_timeout", m.ReadHeaderTimeout},
		{"read_timeout", m.ReadTimeout},
		{"write_timeout", m.WriteTimeout},
		{"idle_timeout", m.IdleTimeout},
		{"idle_release_timeout", m.IdleReleaseTimeout},
		{"drain_timeout", m.DrainTimeout},
	} {
		if kv.d <= 0 {
			e.add(pos, kv.key, "duration must be greater than zero, got %v", kv.d)
		}
	}
	if m.HealthCheckInterval < 0 {
		e.add(pos, "health_check_interval", "must not be negative, got %v", m.HealthCheckInterval)
	}
	if m.HealthCheckTimeout < 0 || m.HealthCheckTimeout > m.healthInterval() {
		e.add(pos, "health_check_timeout", "must be between 0 and the health check interval %v, got %v", m.healthInterval(), m.HealthCheckTimeout)
	}
	if m.ConfigTLSAddress != "" && (m.ConfigTLSCertificate == "" || m.ConfigTLSKeyFile == "") {
		e.add(pos, "config_tls_address", "config_tls_address needs config_tls_certificate and config_tls_key_file")
	}
	if (m.FileServerAddress == "") != (m.FileServerFolder == "") {
		e.add(pos, "file_server_address", "file_server_address and file_server_folder go together")
	}
	for i, p := range m.TrustedProxies {
		if !p.IsValid() {
			e.add(pos, indexPath("trusted_proxies", i), "invalid CIDR")
		}
	}
	if m.CacheStatusHeader != "" && !isToken(m.CacheStatusHeader) {
		e.add(pos, "cache_status_header", "header name %q is not a valid token", m.CacheStatusHeader)
	}
	m.validateFleet(&e)
	return e.l.err()
}

// Validate checks an Upstreams after ApplyDefaults: provider, hosts
// (syntax and duplicates), paths, servers, headers, limits, auth and
// enums, at the positions recorded in Host, Path, Server and Auth (line
// 0 for values built in code). ParseUpstreams runs the same checks while
// walking the file; this matters for values built in code or merged from
// discovery. The error is an ErrorList.
func (u *Upstreams) Validate() error {
	var e errs
	e.globals(u)
	seen := make(map[string]Pos, len(u.Hosts))
	for i := range u.Hosts {
		e.host(&u.Hosts[i], seen)
	}
	e.sendProxyConsistent(u)
	return e.l.err()
}

// globals checks the settings of u outside its hosts.
func (e *errs) globals(u *Upstreams) {
	if !slices.Contains(providers, u.Provider) {
		e.add(Pos{}, "provider", "%s", enumMsg("provider", u.Provider, providers...))
	}
	if u.StickySessions < 0 {
		e.add(Pos{}, "sticky_sessions", "must be at least 0, got %d", u.StickySessions)
	}
	e.policy(&u.Policy, Pos{}, "")
	if u.Consul != nil {
		for i, s := range u.Consul.Services {
			e.service(s.Proxy, s.Path, s.RealName, s.RedirectTo, &s.Policy, s.Pos, indexPath("consul.services", i))
		}
	}
	if u.Kubernetes != nil {
		for i, s := range u.Kubernetes.Services {
			e.service(s.Hostname, s.Path, s.Upstream, s.RedirectTo, &s.Policy, s.Pos, indexPath("kubernetes.services", i))
		}
	}
}

// host checks one host on its own; seen holds the hosts checked
// before it, for duplicates.
func (e *errs) host(h *Host, seen map[string]Pos) {
	hp := joinPath("upstreams", h.Name)
	name, msg := normaliseHost(h.Name)
	if msg != "" {
		e.add(h.Pos, hp, "%s", msg)
	} else if name != h.Name {
		e.add(h.Pos, hp, "host %q is not in canonical form %q", h.Name, name)
	}
	if first, dup := seen[h.Name]; dup {
		e.add(h.Pos, hp, "host %q defined twice (first at %s)", h.Name, first)
	}
	seen[h.Name] = h.Pos
	e.policy(&h.Policy, h.Pos, hp)
	type pathKey struct {
		prefix string
		match  PathMatch
	}
	var paths map[pathKey]bool
	if len(h.Paths) > 1 {
		paths = make(map[pathKey]bool, len(h.Paths))
	}
	for _, p := range h.Paths {
		pp := joinPath(hp, "paths."+p.Prefix)
		if msg := checkPathPrefix(p.Prefix); msg != "" {
			e.add(p.Pos, pp, "%s", msg)
		}
		if p.Match != MatchPrefix && p.Match != MatchExact {
			e.add(p.Pos, pp, "unknown path match %q; want %q or %q", p.Match, MatchPrefix, MatchExact)
		}
		key := pathKey{p.Prefix, p.Match}
		if paths[key] {
			e.add(p.Pos, pp, "path %q defined twice", p.Prefix)
		}
		if paths != nil {
			paths[key] = true
		}
		e.path(&p, pp)
	}
}

func (e *errs) path(p *Path, pp string) {
	if len(p.Servers) == 0 && p.RedirectTo == "" {
		e.add(p.Pos, pp, "no servers: give at least one server or redirect_to")
	}
	if p.RedirectTo != "" {
		if msg := checkHTTPURL(p.RedirectTo); msg != "" {
			e.add(p.Pos, joinPath(pp, "redirect_to"), "%s", msg)
		}
	}
	if !slices.Contains(loadBalances, p.LoadBalance) {
		e.add(p.Pos, joinPath(pp, "load_balance"), "%s", enumMsg("load_balance", p.LoadBalance, loadBalances...))
	}
	// YAML paths are built only for an error: a reload validates every
	// host of the table (issue 16).
	for i, s := range p.Servers {
		if msg := checkHostPort(s.Address, false); msg != "" {
			e.add(s.Pos, indexPath(joinPath(pp, "servers"), i), "%s", msg)
		}
		if s.Weight < 1 {
			e.add(s.Pos, indexPath(joinPath(pp, "servers"), i), "weight must be at least 1, got %d", s.Weight)
		}
	}
	for i, h := range p.AuthResponseHeaders {
		if !isToken(h) {
			e.add(p.Pos, indexPath(joinPath(pp, "auth_response_headers"), i), "header name %q is not a valid token", h)
		}
	}
	if p.CacheTTL < 0 {
		e.add(p.Pos, joinPath(pp, "cache_ttl"), "must be a positive integer, got %d", p.CacheTTL)
	}
	if p.SendProxyProtocol != "" && !slices.Contains(proxyProtocolVersions, p.SendProxyProtocol) {
		e.add(p.Pos, joinPath(pp, "send_proxy_protocol"), "%s", enumMsg("send_proxy_protocol", p.SendProxyProtocol, proxyProtocolVersions...))
	}
	e.policy(&p.Policy, p.Pos, pp)
}

func (e *errs) service(host, prefix, name, redirect string, pol *Policy, pos Pos, sp string) {
	if _, msg := normaliseHost(host); msg != "" {
		e.add(pos, joinPath(sp, "hostname"), "%s", msg)
	}
	if msg := checkPathPrefix(prefix); msg != "" {
		e.add(pos, joinPath(sp, "path"), "%s", msg)
	}
	if name == "" {
		e.add(pos, joinPath(sp, "upstream"), "missing service name")
	}
	if redirect != "" {
		if msg := checkHTTPURL(redirect); msg != "" {
			e.add(pos, joinPath(sp, "redirect_to"), "%s", msg)
		}
	}
	e.policy(pol, pos, sp)
}

func (e *errs) policy(p *Policy, pos Pos, path string) {
	if p.RateLimit < 0 {
		e.add(pos, joinPath(path, "rate_limit"), "must be a positive integer, got %d", p.RateLimit)
	}
	if p.X4xxLimit < 0 {
		e.add(pos, joinPath(path, "x4xx_limit"), "must be a positive integer, got %d", p.X4xxLimit)
	}
	e.headers(p.ServerHeaders, pos, path, "server_headers")
	e.headers(p.ClientHeaders, pos, path, "client_headers")
	e.prefixes(p.Allow, pos, path, "allow")
	e.prefixes(p.Deny, pos, path, "deny")
	for i, b := range p.CacheBypass {
		if msg := checkCacheBypass(b); msg != "" {
			e.add(pos, indexPath(joinPath(path, "cache_bypass"), i), "%s", msg)
		}
	}
	if a := p.Authorization; a != nil {
		if msg := checkAuth(a); msg != "" {
			e.add(a.Pos, joinPath(path, "authorization"), "%s", msg)
		}
	}
}

// headers checks the list under key of path.
func (e *errs) headers(hs []Header, pos Pos, path, key string) {
	for i, h := range hs {
		if msg := checkHeader(h); msg != "" {
			e.add(pos, indexPath(joinPath(path, key), i), "%s", msg)
		}
	}
}

// prefixes checks the list under key of path.
func (e *errs) prefixes(ps []netip.Prefix, pos Pos, path, key string) {
	for i, pf := range ps {
		if !pf.IsValid() {
			e.add(pos, indexPath(joinPath(path, key), i), "invalid CIDR")
		}
	}
}

// checkCacheBypass checks one cache_bypass entry: a header name, or
// "cookie:NAME" with a cookie name (both RFC 9110 tokens; RFC 6265 §4.1.1
// makes a cookie name a token).
func checkCacheBypass(s string) string {
	if name, ok := strings.CutPrefix(s, "cookie:"); ok {
		if !isToken(name) {
			return "cookie name " + strconv.Quote(name) + " is not a valid token"
		}
		return ""
	}
	if !isToken(s) {
		return "cache_bypass " + strconv.Quote(s) + " is neither a header name nor \"cookie:NAME\""
	}
	return ""
}

// checkAuth checks an authorization block.
func checkAuth(a *Auth) string {
	switch a.Type {
	case "basic":
		if len(a.Data) == 0 {
			return "basic auth needs data: \"user:password\" entries"
		}
		users := make(map[string]bool, len(a.Data))
		for _, d := range a.Data {
			u, _, ok := cutColon(d)
			if !ok || u == "" {
				return "basic auth data " + strconv.Quote(redact(d)) + " is not \"user:password\""
			}
			if users[u] {
				return "basic auth user " + strconv.Quote(u) + " given twice"
			}
			users[u] = true
		}
	case "apikey":
		if len(a.Data) == 0 {
			return "apikey auth needs data: the key(s)"
		}
		for _, d := range a.Data {
			if d == "" {
				return "apikey auth data has an empty key"
			}
		}
	case "jwt":
		if len(a.Data) > 1 {
			return "jwt auth takes one signing key"
		}
	case "forward":
		if len(a.Data) != 1 {
			return "forward auth needs data: one http:// or https:// URL"
		}
		if msg := checkHTTPURL(a.Data[0]); msg != "" {
			return "forward auth data: " + msg
		}
	default:
		return enumMsg("authorization type", a.Type, authTypes...)
	}
	return ""
}

// Validate validates Main and Upstreams.
func (c *Config) Validate() error {
	var l ErrorList
	for _, err := range []error{c.Main.Validate(), c.Upstreams.Validate()} {
		if el, ok := err.(ErrorList); ok {
			l = append(l, el...)
		}
	}
	return l.err()
}
