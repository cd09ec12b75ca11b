package config

import (
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Allowed values of main.yaml enums.
var (
	tlsGrades  = []string{"high", "medium", "unsafe"}
	logLevels  = []string{"trace", "debug", "info", "warn", "error", "off"}
	accessLogs = []string{"all", "error", "off"}
	hcMethods  = []string{"HEAD", "GET", "POST"}
)

// pingoraIgnored are Pingora server keys found in Aralez main.yaml files
// that this proxy accepts and does not use. The Pingora keys it maps
// (error_log, user, group, grace_period_seconds,
// graceful_shutdown_timeout_seconds, ca_file) have handlers instead.
var pingoraIgnored = []string{
	"version", "work_stealing", "listener_tasks_per_fd", "max_retries",
	"client_bind_to_ipv4", "client_bind_to_ipv6",
	"upstream_connect_offload_threadpools", "upstream_connect_offload_thread_per_pool",
	"upstream_debug_ssl_keylog",
}

// aralezObsolete are keys of older Aralez releases that are accepted with
// a deprecation warning and not used.
var aralezObsolete = map[string]string{
	"tls_certificate":    "certificates now live in proxy_configs/certificates",
	"tls_key_file":       "certificates now live in proxy_configs/certificates",
	"proxy_certificates": "certificates now live in proxy_configs/certificates",
	"proxy_port_tls":     "use proxy_address_tls",
	"sticky_sessions":    "sticky_sessions belongs in upstreams.yaml",
	"log_pattern":        "the log format is fixed",
}

// mainParser holds the state of one main.yaml walk.
type mainParser struct {
	*walker
	m    *Main
	seen map[string]entry
}

type mainHandler func(p *mainParser, e entry)

// mainKeys maps every main.yaml key to its handler.
var mainKeys = buildMainKeys()

// mainKeyNames is the sorted list of keys, for suggestions.
var mainKeyNames = sortedKeys(mainKeys)

func sortedKeys(m map[string]mainHandler) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func buildMainKeys() map[string]mainHandler {
	str := func(f func(*Main) *string) mainHandler {
		return func(p *mainParser, e entry) {
			if s, ok := p.str(e.val, e.path); ok {
				*f(p.m) = s
			}
		}
	}
	addr := func(f func(*Main) *string) mainHandler {
		return func(p *mainParser, e entry) {
			s, ok := p.str(e.val, e.path)
			if !ok {
				return
			}
			if msg := checkHostPort(s, true); msg != "" {
				p.errorf(e.val, e.path, "%s", msg)
				return
			}
			*f(p.m) = s
		}
	}
	bounded := func(f func(*Main) *int, lo, hi int64) mainHandler {
		return func(p *mainParser, e entry) {
			if n, ok := p.integer(e.val, e.path, lo, hi); ok {
				*f(p.m) = int(n)
			}
		}
	}
	integer := func(f func(*Main) *int, lo int64) mainHandler {
		return bounded(f, lo, math.MaxInt32)
	}
	boolean := func(f func(*Main) *bool) mainHandler {
		return func(p *mainParser, e entry) {
			if b, ok := p.boolean(e.val, e.path); ok {
				*f(p.m) = b
			}
		}
	}
	dur := func(f func(*Main) *time.Duration) mainHandler {
		return func(p *mainParser, e entry) {
			if d, ok := p.duration(e.val, e.path); ok {
				*f(p.m) = d
			}
		}
	}
	enum := func(f func(*Main) *string, what string, norm func(string) string, allowed []string) mainHandler {
		return func(p *mainParser, e entry) {
			s, ok := p.str(e.val, e.path)
			if !ok {
				return
			}
			v := norm(s)
			if !slices.Contains(allowed, v) {
				p.errorf(e.val, e.path, "%s", enumMsg(what, s, allowed...))
				return
			}
			*f(p.m) = v
		}
	}
	same := func(s string) string { return s }
	ignored := func(p *mainParser, e entry) {
		p.m.Ignored = append(p.m.Ignored, e.path)
	}

	keys := map[string]mainHandler{
		// Aralez keys.
		"threads":                      integer(func(m *Main) *int { return &m.Threads }, 0),
		"runuser":                      str(func(m *Main) *string { return &m.RunUser }),
		"rungroup":                     str(func(m *Main) *string { return &m.RunGroup }),
		"daemon":                       boolean(func(m *Main) *bool { return &m.Daemon }),
		"upstream_keepalive_pool_size": integer(func(m *Main) *int { return &m.UpstreamKeepalivePoolSize }, 1),
		"pid_file":                     str(func(m *Main) *string { return &m.PIDFile }),
		"upgrade_sock":                 str(func(m *Main) *string { return &m.UpgradeSock }),
		"config_api_enabled":           boolean(func(m *Main) *bool { return &m.ConfigAPIEnabled }),
		"config_address":               addr(func(m *Main) *string { return &m.ConfigAddress }),
		"config_tls_address":           addr(func(m *Main) *string { return &m.ConfigTLSAddress }),
		"config_tls_certificate":       str(func(m *Main) *string { return &m.ConfigTLSCertificate }),
		"config_tls_key_file":          str(func(m *Main) *string { return &m.ConfigTLSKeyFile }),
		"master_key":                   str(func(m *Main) *string { return &m.MasterKey }),
		"proxy_address_http":           addr(func(m *Main) *string { return &m.ProxyAddressHTTP }),
		"proxy_address_tls":            addr(func(m *Main) *string { return &m.ProxyAddressTLS }),
		"proxy_configs":                str(func(m *Main) *string { return &m.ProxyConfigs }),
		"proxy_tls_grade":              (*mainParser).tlsGrade,
		"upstreams_conf":               str(func(m *Main) *string { return &m.UpstreamsConf }),
		"file_server_folder":           str(func(m *Main) *string { return &m.FileServerFolder }),
		"file_server_address":          addr(func(m *Main) *string { return &m.FileServerAddress }),
		"log_level":                    enum(func(m *Main) *string { return &m.LogLevel }, "log_level", same, logLevels),
		"log_file":                     (*mainParser).logFile,
		"access_log": enum(func(m *Main) *string { return &m.AccessLog }, "access_log", func(s string) string {
			if s == "access" { // Aralez's name for logging every request.
				return "all"
			}
			return s
		}, accessLogs),
		"hc_method":              enum(func(m *Main) *string { return &m.HCMethod }, "hc_method", same, hcMethods),
		"hc_interval":            integer(func(m *Main) *int { return &m.HCInterval }, 1),
		"tcp_keepalive_idle":     bounded(func(m *Main) *int { return &m.TCPKeepaliveIdle }, 0, maxKeepaliveSeconds),
		"tcp_keepalive_interval": bounded(func(m *Main) *int { return &m.TCPKeepaliveInterval }, 0, maxKeepaliveSeconds),
		"tcp_keepalive_count":    bounded(func(m *Main) *int { return &m.TCPKeepaliveCount }, 0, maxKeepaliveCount),
		"log_structured":         (*mainParser).logStructured,
		"log_structired":         (*mainParser).logStructured, // the spelling of Aralez 0.92.x
		"acme_dns_provider":      str(func(m *Main) *string { return &m.ACMEDNSProvider }),

		// Keys of this project.
		"upstream_max_conns":         integer(func(m *Main) *int { return &m.UpstreamMaxConns }, 0),
		"upstream_wait_timeout":      dur(func(m *Main) *time.Duration { return &m.UpstreamWaitTimeout }),
		"upstream_connect_timeout":   dur(func(m *Main) *time.Duration { return &m.UpstreamConnectTimeout }),
		"upstream_timeout":           dur(func(m *Main) *time.Duration { return &m.UpstreamTimeout }),
		"upstream_idle_timeout":      dur(func(m *Main) *time.Duration { return &m.UpstreamIdleTimeout }),
		"read_header_timeout":        dur(func(m *Main) *time.Duration { return &m.ReadHeaderTimeout }),
		"read_timeout":               dur(func(m *Main) *time.Duration { return &m.ReadTimeout }),
		"write_timeout":              dur(func(m *Main) *time.Duration { return &m.WriteTimeout }),
		"idle_timeout":               dur(func(m *Main) *time.Duration { return &m.IdleTimeout }),
		"idle_release_timeout":       dur(func(m *Main) *time.Duration { return &m.IdleReleaseTimeout }),
		"drain_timeout":              dur(func(m *Main) *time.Duration { return &m.DrainTimeout }),
		"max_header_bytes":           integer(func(m *Main) *int { return &m.MaxHeaderBytes }, 1),
		"max_uri_bytes":              integer(func(m *Main) *int { return &m.MaxURIBytes }, 1),
		"h2_max_concurrent_streams":  integer(func(m *Main) *int { return &m.H2MaxConcurrentStreams }, 1),
		"h2_stream_window_bytes":     bounded(func(m *Main) *int { return &m.H2StreamWindowBytes }, MinH2WindowBytes, MaxH2WindowBytes),
		"h2_connection_window_bytes": bounded(func(m *Main) *int { return &m.H2ConnectionWindowBytes }, MinH2WindowBytes, MaxH2WindowBytes),
		"body_buffer_bytes":          integer(func(m *Main) *int { return &m.BodyBufferBytes }, 1),
		"max_request_body_bytes": func(p *mainParser, e entry) {
			if n, ok := p.integer(e.val, e.path, 0, math.MaxInt64); ok {
				p.m.MaxRequestBodyBytes = n
			}
		},
		"trusted_proxies": func(p *mainParser, e entry) {
			p.m.TrustedProxies = p.prefixes(e.val, e.path)
		},
		"sticky_secret":         str(func(m *Main) *string { return &m.StickySecret }),
		"health_check_interval": dur(func(m *Main) *time.Duration { return &m.HealthCheckInterval }),
		"health_check_timeout":  dur(func(m *Main) *time.Duration { return &m.HealthCheckTimeout }),
		"health_check_rise":     integer(func(m *Main) *int { return &m.HealthCheckRise }, 1),
		"health_check_fall":     integer(func(m *Main) *int { return &m.HealthCheckFall }, 1),

		// Pingora keys that map onto ours; applied after the walk.
		"error_log":                         func(p *mainParser, e entry) { p.str(e.val, e.path) },
		"user":                              func(p *mainParser, e entry) { p.str(e.val, e.path) },
		"group":                             func(p *mainParser, e entry) { p.str(e.val, e.path) },
		"grace_period_seconds":              func(p *mainParser, e entry) { p.integer(e.val, e.path, 1, math.MaxInt32) },
		"graceful_shutdown_timeout_seconds": func(p *mainParser, e entry) { p.integer(e.val, e.path, 1, math.MaxInt32) },
		"ca_file":                           str(func(m *Main) *string { return &m.TLSCAFile }),

		// Response cache (Aralez's cache_size_mb and cache_ttl, plus ours).
		"cache_size_mb":          integer(func(m *Main) *int { return &m.CacheSizeMB }, 0),
		"cache_ttl":              integer(func(m *Main) *int { return &m.CacheTTL }, 1),
		"cache_max_object_bytes": integer(func(m *Main) *int { return &m.CacheMaxObjectBytes }, 1),
		"cache_status_header": func(p *mainParser, e entry) {
			s, ok := p.str(e.val, e.path)
			if !ok {
				return
			}
			if !isToken(s) {
				p.errorf(e.val, e.path, "header name %q is not a valid token", s)
				return
			}
			p.m.CacheStatusHeader = s
		},
	}
	addACMEKeys(keys)
	fleetKeys(keys)
	for _, k := range pingoraIgnored {
		keys[k] = ignored
	}
	for k, why := range aralezObsolete {
		keys[k] = func(p *mainParser, e entry) {
			p.m.Ignored = append(p.m.Ignored, e.path)
			p.m.Deprecated = append(p.m.Deprecated, p.pos(e.keyN).String()+": "+e.path+": deprecated key, ignored: "+why)
		}
	}
	return keys
}

// ParseMain parses one main.yaml document. name is used as the file in
// errors. It applies defaults and validates; it does not read other
// files, resolve relative paths or look at the environment (Load does).
// The error, if any, is an ErrorList with every problem found. It is safe
// for concurrent use.
func ParseMain(name string, data []byte) (*Main, error) {
	m, errs := parseMain(name, data)
	if len(errs) > 0 {
		return nil, errs.err()
	}
	m.ApplyDefaults()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func parseMain(name string, data []byte) (*Main, ErrorList) {
	p := &mainParser{walker: newWalker(name), m: &Main{}, seen: make(map[string]entry)}
	body := p.parse(data)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	es, _ := p.entries(body, "")
	for _, e := range es {
		h, ok := mainKeys[e.key]
		if !ok {
			p.unknownKey(e, mainKeyNames)
			continue
		}
		if p.isNull(e.val) {
			continue
		}
		p.seen[e.key] = e
		h(p, e)
	}
	if len(p.errs) == 0 {
		p.mapPingora()
		p.crossChecks()
	}
	p.m.Warnings = append(p.m.Warnings, p.warns...)
	return p.m, p.errs
}

// mapPingora applies the Pingora keys that have an equivalent here, when
// the native key is absent.
func (p *mainParser) mapPingora() {
	strOf := func(key string) string {
		s, _ := p.str(p.seen[key].val, key)
		return s
	}
	if _, ok := p.seen["log_file"]; !ok {
		if _, ok := p.seen["error_log"]; ok {
			p.m.LogFile = strOf("error_log")
		}
	}
	if _, ok := p.seen["runuser"]; !ok {
		if _, ok := p.seen["user"]; ok {
			p.m.RunUser = strOf("user")
		}
	}
	if _, ok := p.seen["rungroup"]; !ok {
		if _, ok := p.seen["group"]; ok {
			p.m.RunGroup = strOf("group")
		}
	}
	if _, ok := p.seen["drain_timeout"]; !ok {
		for _, k := range []string{"graceful_shutdown_timeout_seconds", "grace_period_seconds"} {
			if e, ok := p.seen[k]; ok {
				n, _ := p.integer(e.val, k, 1, math.MaxInt32)
				p.m.DrainTimeout = time.Duration(n) * time.Second
				break
			}
		}
	}
}

// crossChecks reports rules that involve several keys, at the position
// of the key that needs the others.
func (p *mainParser) crossChecks() {
	m := p.m
	if e, ok := p.seen["config_tls_address"]; ok {
		if m.ConfigTLSCertificate == "" || m.ConfigTLSKeyFile == "" {
			p.errorf(e.keyN, e.path, "config_tls_address needs config_tls_certificate and config_tls_key_file")
		}
	}
	if e, ok := p.seen["file_server_address"]; ok && m.FileServerFolder == "" {
		p.errorf(e.keyN, e.path, "file_server_address needs file_server_folder")
	}
	if e, ok := p.seen["file_server_folder"]; ok && m.FileServerAddress == "" {
		p.errorf(e.keyN, e.path, "file_server_folder needs file_server_address")
	}
	p.listenerCollisions()
	p.acmeCrossChecks()
	p.fleetCrossChecks()
	if e, ok := p.seen["health_check_timeout"]; ok {
		if iv := m.healthInterval(); m.HealthCheckTimeout > iv {
			p.errorf(e.val, e.path, "health_check_timeout %v exceeds the health check interval %v", m.HealthCheckTimeout, iv)
		}
	}
}

// listenerCollisions reports a listener whose address another listener
// of the file already takes: the start would fail to bind the second one
// ("address already in use"), which aralez -t would otherwise not say.
// Two addresses collide on the same port when their hosts are equal or
// either is a wildcard (empty, 0.0.0.0 or ::: Go listens on both address
// families there). Host names are compared as written, not resolved.
func (p *mainParser) listenerCollisions() {
	m := p.m
	ls := []struct{ key, addr string }{
		{"proxy_address_http", m.ProxyAddressHTTP},
		{"proxy_address_tls", m.ProxyAddressTLS},
		{"config_address", m.ConfigAddress},
		{"config_tls_address", m.ConfigTLSAddress},
		{"file_server_address", m.FileServerAddress},
	}
	def := ""
	if ls[0].addr == "" {
		ls[0].addr, def = DefaultProxyAddressHTTP, " (the default)"
	}
	for i := 1; i < len(ls); i++ {
		e, ok := p.seen[ls[i].key]
		if !ok || ls[i].addr == "" {
			continue
		}
		for j := 0; j < i; j++ {
			if ls[j].addr == "" || !sameListener(ls[i].addr, ls[j].addr) {
				continue
			}
			note := ""
			if j == 0 {
				note = def
			}
			p.errorf(e.val, e.path, "%s %q is the address of %s %q%s; each listener needs its own",
				ls[i].key, ls[i].addr, ls[j].key, ls[j].addr, note)
			break
		}
	}
}

// sameListener reports whether listening on a and on b (valid host:port
// strings) would take the same socket.
func sameListener(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	wild := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || err == nil && ip.IsUnspecified()
	}
	if wild(ha) || wild(hb) {
		return true
	}
	ia, errA := netip.ParseAddr(ha)
	ib, errB := netip.ParseAddr(hb)
	if errA == nil && errB == nil {
		return ia.Unmap() == ib.Unmap()
	}
	return strings.EqualFold(strings.TrimSuffix(ha, "."), strings.TrimSuffix(hb, "."))
}

// healthInterval is the effective health check interval.
func (m *Main) healthInterval() time.Duration {
	if m.HealthCheckInterval > 0 {
		return m.HealthCheckInterval
	}
	if m.HCInterval > 0 {
		return time.Duration(m.HCInterval) * time.Second
	}
	return DefaultHCInterval * time.Second
}

// logFile reads Aralez's "path[, size_mb[, keep[, compress]]]".
func (p *mainParser) logFile(e entry) {
	s, ok := p.str(e.val, e.path)
	if !ok {
		return
	}
	f := strings.Split(s, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	if f[0] == "" {
		p.errorf(e.val, e.path, "empty log file path")
		return
	}
	p.m.LogFile = f[0]
	if len(f) > 4 {
		p.errorf(e.val, e.path, "want \"path[, size_mb[, keep[, compress]]]\", got %q", s)
		return
	}
	for i, v := range f[1:] {
		if i == 2 {
			switch strings.ToLower(v) {
			case "compress", "true", "yes":
				p.m.LogFileCompress = true
			case "", "false", "no":
			default:
				p.errorf(e.val, e.path, "the fourth field of log_file is \"compress\" or empty, got %q", v)
			}
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			p.errorf(e.val, e.path, "field %d of log_file must be a positive integer, got %q", i+2, v)
			continue
		}
		if i == 0 {
			p.m.LogFileSizeMB = n
		} else {
			p.m.LogFileKeep = n
		}
	}
}

// prefixes reads a list of CIDRs or bare IPs.
func (w *walker) prefixes(v *yaml.Node, path string) []netip.Prefix {
	items, ok := w.list(v, path)
	if !ok {
		return nil
	}
	var out []netip.Prefix
	for i, it := range items {
		ip := indexPath(path, i)
		s, ok := w.str(it, ip)
		if !ok {
			continue
		}
		pf, msg := parsePrefix(s)
		if msg != "" {
			w.errorf(it, ip, "%s", msg)
			continue
		}
		out = append(out, pf)
	}
	return out
}

// tlsGrade reads proxy_tls_grade. An unknown grade is not an error: as in
// Aralez, it falls back to DefaultProxyTLSGrade, with a warning.
func (p *mainParser) tlsGrade(e entry) {
	s, ok := p.str(e.val, e.path)
	if !ok {
		return
	}
	if v := strings.ToLower(s); slices.Contains(tlsGrades, v) {
		p.m.ProxyTLSGrade = v
		return
	}
	p.m.ProxyTLSGrade = DefaultProxyTLSGrade
	p.warnf(e.val, e.path, "%s; using %q", enumMsg("proxy_tls_grade", s, tlsGrades...), DefaultProxyTLSGrade)
}

// logStructured reads log_structured (and Aralez 0.92's spelling
// log_structired): a backend name, whose first word is kept in
// LogStructured, or a boolean (true is "json"). Any backend switches both
// logs to JSON lines; the process does not ship logs anywhere itself, so
// a backend other than "json" gets a warning saying so.
func (p *mainParser) logStructured(e entry) {
	if e.key == "log_structired" {
		p.m.Deprecated = append(p.m.Deprecated, p.pos(e.keyN).String()+": "+e.path+": misspelt key of Aralez 0.92, read as log_structured")
	}
	var backend string
	if b := p.resolve(e.val, e.path); isScalar(b, tagBool) {
		if strings.EqualFold(b.Value, "true") {
			backend = "json"
		}
	} else if s, ok := p.str(e.val, e.path); ok {
		if f := strings.Fields(s); len(f) > 0 {
			backend = strings.ToLower(f[0])
		}
	} else {
		return
	}
	p.m.LogStructured = backend
	if backend != "" && backend != "json" {
		p.warnf(e.val, e.path, "backend %q: the process and access logs are written as JSON lines to log_file (or stderr and stdout); shipping them to %s is left to a log collector such as Vector, Fluent Bit or Filebeat", backend, backend)
	}
}
