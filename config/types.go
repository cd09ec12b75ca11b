package config

import (
	"net/netip"
	"time"
)

// Config is one complete, validated configuration: the process settings of
// main.yaml and the routing table of upstreams.yaml (plus conf.d/*.yaml).
// A Config is plain data: it is never mutated after Load returns, so it is
// safe to share between goroutines; use Clone before changing a copy.
type Config struct {
	// Main holds the keys of main.yaml.
	Main Main
	// Upstreams holds the routing table of upstreams.yaml and conf.d.
	Upstreams Upstreams
	// MainPath is the absolute path of main.yaml ("" when built in code).
	MainPath string
}

// Main is the parsed main.yaml. Keys inherited from Aralez keep Aralez's
// types and units; keys added by this project use Go duration strings
// ("250ms", "5s") and byte counts. Every field has a Default… constant
// applied by ApplyDefaults when the key is absent.
type Main struct {
	// Threads is the number of OS threads running Go code (GOMAXPROCS).
	// Zero means all CPUs. The GOMAXPROCS environment variable wins.
	Threads int
	// RunUser and RunGroup name the account to switch to after binding
	// listeners. Empty means keep the current account.
	RunUser, RunGroup string
	// Daemon detaches the process from its terminal when true.
	Daemon bool
	// PIDFile is the path of the pid file, written at start and removed at
	// exit. Empty means none.
	PIDFile string
	// UpgradeSock is Pingora's upgrade socket path; accepted and unused.
	UpgradeSock string

	// ConfigAPIEnabled allows pushing configs to POST /conf.
	ConfigAPIEnabled bool
	// ConfigAddress is the host:port of the plain-HTTP config API.
	// Empty means no config API listener.
	ConfigAddress string
	// ConfigTLSAddress is the host:port of the TLS config API, served with
	// ConfigTLSCertificate and ConfigTLSKeyFile (PEM paths).
	ConfigTLSAddress, ConfigTLSCertificate, ConfigTLSKeyFile string
	// MasterKey guards the config API and signs JWTs (HS256). The JWT_KEY
	// environment variable overrides it. Never logged.
	MasterKey string

	// ProxyAddressHTTP is the host:port of the cleartext listener
	// (HTTP/1.1 and h2c prior knowledge). Default DefaultProxyAddressHTTP.
	ProxyAddressHTTP string
	// ProxyAddressTLS is the host:port of the TLS listener. Empty means
	// no TLS listener.
	ProxyAddressTLS string
	// ProxyConfigs is the folder holding certificates/ (and ACME state).
	ProxyConfigs string
	// ProxyTLSGrade is "high", "medium" (default) or "unsafe".
	ProxyTLSGrade string
	// UpstreamsConf is the path of upstreams.yaml. conf.d/*.yaml beside
	// it is merged in file-name order.
	UpstreamsConf string

	// FileServerFolder is the folder served by the built-in static file
	// server on FileServerAddress. Both empty means no file server.
	FileServerFolder, FileServerAddress string

	// LogLevel is "trace", "debug", "info" (default), "warn", "error"
	// or "off" (Aralez's set).
	LogLevel string
	// LogFile is the path of the process log. Empty means stderr.
	// Aralez's form "path, size_mb, keep, compress" is accepted: the
	// extra fields go to LogFileSizeMB, LogFileKeep and LogFileCompress.
	LogFile string
	// LogFileSizeMB is the size in MiB at which the log file is rotated.
	// Default DefaultLogFileSizeMB.
	LogFileSizeMB int
	// LogFileKeep is how many rotated log files are kept. Default
	// DefaultLogFileKeep.
	LogFileKeep int
	// LogFileCompress gzips rotated log files when true.
	LogFileCompress bool
	// AccessLog is "all", "error" (status >= 500, as in Aralez) or "off"
	// (default). Aralez's "access" is read as "all".
	AccessLog string
	// LogStructured, when not empty, writes the process log and the
	// access log as one JSON object per line. It holds the backend named
	// by log_structured (first word, lower-case; "json" for true); every
	// backend writes the same lines, shipping them elsewhere is left to a
	// log collector. Aralez 0.92's spelling log_structired is read too.
	LogStructured string

	// ACMEDNSProvider names the DNS provider for ACME DNS-01 challenges
	// (acme_dns_provider). The DNS_PROVIDER environment variable
	// overrides it. Empty means none.
	ACMEDNSProvider string

	// HCMethod is the health check method: HEAD (default), GET or POST.
	HCMethod string
	// HCInterval is the health check interval in whole seconds
	// (Aralez's unit). Default DefaultHCInterval. HealthCheckInterval
	// overrides it with a finer duration.
	HCInterval int
	// HealthCheckInterval, when non-zero, replaces HCInterval (key
	// health_check_interval, a duration such as "250ms").
	HealthCheckInterval time.Duration
	// HealthCheckTimeout bounds one probe. Zero means 80% of the interval.
	HealthCheckTimeout time.Duration
	// HealthCheckRise and HealthCheckFall are how many consecutive probe
	// results flip a backend up or down. Default 2 each.
	HealthCheckRise, HealthCheckFall int

	// TCPKeepaliveIdle, TCPKeepaliveInterval (seconds) and
	// TCPKeepaliveCount configure keep-alive probes on accepted client
	// sockets. Zero idle means the system default; when idle is set, the
	// interval defaults to DefaultTCPKeepaliveInterval and the count to
	// DefaultTCPKeepaliveCount.
	TCPKeepaliveIdle, TCPKeepaliveInterval, TCPKeepaliveCount int

	// UpstreamKeepalivePoolSize is the number of idle keep-alive
	// connections kept per backend (as in Pingora). Default
	// DefaultUpstreamKeepalivePoolSize.
	UpstreamKeepalivePoolSize int
	// UpstreamMaxConns caps concurrent connections per backend; 0 means
	// unlimited. A request waits up to UpstreamWaitTimeout for a free
	// connection, then gets 503.
	UpstreamMaxConns int
	// UpstreamWaitTimeout is how long a request waits for a free upstream
	// connection when UpstreamMaxConns is reached.
	UpstreamWaitTimeout time.Duration
	// UpstreamConnectTimeout bounds dialing a backend (then 502).
	UpstreamConnectTimeout time.Duration
	// UpstreamTimeout bounds waiting for the upstream's response headers
	// and each upstream read/write (then 504).
	UpstreamTimeout time.Duration
	// UpstreamIdleTimeout closes idle upstream keep-alive connections.
	UpstreamIdleTimeout time.Duration

	// ReadHeaderTimeout bounds reading a request's headers from a client.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request (headers and body).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response to a client.
	WriteTimeout time.Duration
	// IdleTimeout is how long a client keep-alive connection may stay idle.
	IdleTimeout time.Duration
	// IdleReleaseTimeout is how long a cleartext HTTP/1.1 keep-alive
	// connection may wait for its next request before it gives back its
	// buffers and goroutine (parked until that request or IdleTimeout);
	// as long as IdleTimeout or longer keeps them while it is open.
	IdleReleaseTimeout time.Duration
	// DrainTimeout bounds graceful shutdown. Pingora's
	// graceful_shutdown_timeout_seconds and grace_period_seconds map here.
	DrainTimeout time.Duration

	// MaxHeaderBytes limits a request's header block (then 431).
	MaxHeaderBytes int
	// H2MaxConcurrentStreams caps the open streams of one HTTP/2 client
	// connection (SETTINGS_MAX_CONCURRENT_STREAMS, RFC 9113 §6.5.2).
	// Default DefaultH2MaxConcurrentStreams.
	H2MaxConcurrentStreams int
	// H2StreamWindowBytes is the flow-control window of each HTTP/2
	// request body, in bytes (SETTINGS_INITIAL_WINDOW_SIZE, RFC 9113
	// §6.9.2): how much a client may send on one stream before the proxy
	// reads it. At least 65535. Default DefaultH2StreamWindowBytes.
	H2StreamWindowBytes int
	// H2ConnectionWindowBytes is the flow-control window of each HTTP/2
	// client connection, in bytes (RFC 9113 §6.9.1), over all its
	// streams. At least 65535. Default DefaultH2ConnectionWindowBytes.
	H2ConnectionWindowBytes int
	// MaxURIBytes limits the request target (then 414).
	MaxURIBytes int
	// BodyBufferBytes is the largest body with a known length that is
	// buffered; larger and chunked bodies stream.
	BodyBufferBytes int
	// MaxRequestBodyBytes limits request bodies (then 413); 0 = unlimited.
	MaxRequestBodyBytes int64

	// TrustedProxies are the peers whose X-Forwarded-For is honoured.
	TrustedProxies []netip.Prefix
	// StickySecret keys sticky-session cookies. Empty means derived from
	// MasterKey, else random per process.
	StickySecret string
	// TLSCAFile is a PEM bundle of extra roots for verifying upstream
	// certificates when tls_verify is on (Pingora's ca_file). Empty means
	// system roots only.
	TLSCAFile string

	// CacheSizeMB bounds the response cache in MiB (Aralez's key and
	// unit). Zero means no cache: every route's cache setting is then
	// ignored.
	CacheSizeMB int
	// CacheTTL is the freshness lifetime in whole seconds given to a
	// cacheable response that carries no freshness information of its
	// own (Aralez's key and unit). Default DefaultCacheTTL.
	CacheTTL int
	// CacheMaxObjectBytes is the largest response body stored in the
	// cache, in bytes; larger responses are relayed and not stored.
	// Default DefaultCacheMaxObjectBytes.
	CacheMaxObjectBytes int
	// CacheStatusHeader names the response header that tells the client
	// how the cache served it (HIT, MISS, STALE, REVALIDATED, BYPASS).
	// Empty means no such header.
	CacheStatusHeader string

	// ACME configures automatic certificates (the acme_* keys).
	ACME ACME

	// ProxyProtocol turns on the PROXY protocol (v1 and v2) on the
	// proxy's listeners for the peers in ProxyProtocolFrom, which must
	// then be set: they must send the header, others are plain clients.
	ProxyProtocol bool
	// ProxyProtocolFrom lists the load balancers (CIDRs) that send a
	// PROXY protocol header when ProxyProtocol is on.
	ProxyProtocolFrom []netip.Prefix
	// RateLimitStore, when set (key rate_limit_store or the redis block),
	// shares rate_limit and x4xx_limit counts with every instance using
	// the same store, so that a limit holds for the whole fleet. Nil
	// means each instance counts alone.
	RateLimitStore *Redis
	// RateLimitSync is how often counts are exchanged with
	// RateLimitStore. Default DefaultRateLimitSync, at most
	// MaxRateLimitSync.
	RateLimitSync time.Duration
	// RateLimitFleetSize divides every limit while RateLimitStore is
	// unreachable (each instance then enforces limit/size alone), and
	// before the store has said how many instances run. Default 1.
	RateLimitFleetSize int

	// Ignored lists keys accepted for compatibility and not used
	// (Pingora keys), as YAML paths, in file order. cmd logs them once.
	Ignored []string
	// Deprecated lists warnings about deprecated keys, with positions.
	Deprecated []string
	// Warnings lists non-fatal remarks about values that were accepted
	// with a safe substitute (an unknown TLS grade, a config API without
	// a master key), each with its position. cmd logs them once and
	// `aralez -t` prints them.
	Warnings []string
}

// Upstreams is the parsed upstreams.yaml plus conf.d/*.yaml: the global
// policies and the hosts with their path entries.
type Upstreams struct {
	// Provider is "file" (default), "consul" or "kubernetes".
	Provider string
	// StickySessions is the sticky-session cookie lifetime in seconds;
	// 0 disables sticky sessions.
	StickySessions int
	// Policy holds the global policies; hosts and paths override them.
	Policy Policy
	// Consul configures the Consul provider (nil unless set).
	Consul *Consul
	// Kubernetes configures the Kubernetes provider (nil unless set).
	Kubernetes *Kubernetes
	// Hosts are the virtual hosts in file order (conf.d files after
	// upstreams.yaml, in file-name order).
	Hosts []Host
	// Files lists the files this value was read from, in order.
	Files []string
	// Warnings lists non-fatal remarks (empty file, deprecated keys),
	// each prefixed with file:line:col.
	Warnings []string
	// Stats says how the table was read from its files (Load,
	// LoadUpstreams); zero for a table built otherwise. It is not part
	// of the routing table.
	Stats LoadStats
}

// Policy is the set of per-request settings that can be given globally,
// per host and per path. A nil pointer or empty slice means "not set
// here": the next outer level applies.
type Policy struct {
	// ToHTTPS redirects plain-HTTP requests with 301 to https.
	ToHTTPS *bool
	// RateLimit is requests per second per client address + host.
	// 0 means not set. Configured values are >= 1.
	RateLimit int
	// X4xxLimit is 4xx responses per second per client address + host
	// before the client gets 429. 0 means not set.
	X4xxLimit int
	// ServerHeaders are set on the upstream request.
	ServerHeaders []Header
	// ClientHeaders are set on the response to the client.
	ClientHeaders []Header
	// Authorization is the auth policy; nil means not set here.
	Authorization *Auth
	// Allow and Deny are client CIDR lists (deny wins; no allow = all).
	Allow, Deny []netip.Prefix
	// TLSVerify verifies upstream certificates against system roots
	// (and TLSCAFile) when true. Default false, as in Aralez.
	TLSVerify *bool
	// Cache turns the response cache on or off for the routes below this
	// level. nil means not set: the cache is on for every route when
	// Main.CacheSizeMB > 0, as in Aralez.
	Cache *bool
	// CacheBypass lists what makes a request skip the cache when present:
	// a request header name ("X-Debug") or a cookie written
	// "cookie:NAME". Nil means not set here.
	CacheBypass []string
}

// Host is one virtual host: an exact name ("app.example.com"), a
// wildcard of one label ("*.example.com") or "DEFAULT".
type Host struct {
	// Name is lower-case, without port or trailing dot.
	Name string
	// Policy holds host-level overrides (rate_limit, x4xx_limit, …).
	Policy Policy
	// Paths are the path entries in file order.
	Paths []Path
	// Pos is where the host key appears.
	Pos Pos
}

// Path is one path entry of a host: a prefix and where it goes.
type Path struct {
	// Prefix is the path prefix, starting with "/".
	Prefix string
	// Match is how Prefix is compared with a request path; the zero
	// value is MatchPrefix. upstreams.yaml has no key for it: only
	// discovery sources (Kubernetes Ingress) set it.
	Match PathMatch
	// Servers are the backends; empty only when RedirectTo is set.
	Servers []Server
	// Policy holds path-level overrides.
	Policy Policy
	// HealthCheck false exempts the servers from active checks; nil = true.
	HealthCheck *bool
	// RedirectTo, when set, answers 301 to RedirectTo + path + query.
	RedirectTo string
	// LoadBalance is "round_robin" (default), "least_conn" or "random".
	LoadBalance string
	// ForwardCredentials keeps the Authorization header for basic/jwt.
	ForwardCredentials bool
	// AuthResponseHeaders names the forward-auth response headers copied
	// onto the upstream request. nil means DefaultAuthResponseHeaders.
	AuthResponseHeaders []string
	// SendProxyProtocol is "v1" or "v2" to open every upstream
	// connection with a PROXY protocol header naming the client, as
	// HAProxy's send-proxy does; empty means none. A server address has
	// one setting in the whole table.
	SendProxyProtocol string
	// CacheTTL replaces Main.CacheTTL for this path: whole seconds of
	// freshness for cacheable responses without freshness information.
	// Zero means not set.
	CacheTTL int
	// MaxRequestBodyBytes replaces Main.MaxRequestBodyBytes for this
	// path (key max_request_body_bytes, bytes; 0 = unlimited). Nil means
	// not set: the global limit applies.
	MaxRequestBodyBytes *int64
	// Pos is where the path key appears.
	Pos Pos
}

// PathMatch is how a path entry's Prefix is compared with the
// (normalized) request path.
type PathMatch string

// The path match kinds.
const (
	// MatchPrefix, the zero value, matches the path and everything below
	// it on a segment boundary: "/api" matches "/api" and "/api/x", not
	// "/apix"; "/api/" matches only below "/api/"; the longest prefix
	// wins. Kubernetes' pathType Prefix (element-wise, trailing "/"
	// ignored) is this rule with the trailing "/" removed, and
	// ImplementationSpecific is this rule as written.
	MatchPrefix PathMatch = ""
	// MatchExact matches only a request path equal to Prefix, byte for
	// byte (Kubernetes' pathType Exact). On its host it is tried before
	// every prefix.
	MatchExact PathMatch = "exact"
)

// Server is one backend of a path entry, parsed from
// "host:port [weight=N] [backup]".
type Server struct {
	// Address is host:port as written (IPv6 in brackets).
	Address string
	// Weight is the relative share for round robin; default 1.
	Weight int
	// Backup servers get traffic only when every non-backup one is down.
	Backup bool
	// Pos is where the server string appears.
	Pos Pos
}

// Header is one "Name: Value" header from a header list. Name is an RFC
// 9110 token; Value has no CR, LF or NUL; both are trimmed.
type Header struct {
	Name, Value string
}

// Auth is an authorization block: {type, data}.
type Auth struct {
	// Type is "basic", "apikey", "jwt" or "forward".
	Type string
	// Data holds the credentials: "user:password" or bcrypt entries for
	// basic (several allowed), the key for apikey, the signing key for
	// jwt (empty = master key), the auth service URL for forward.
	Data []string
	// Pos is where the authorization key appears.
	Pos Pos
}

// Consul configures the Consul discovery provider.
type Consul struct {
	// Servers are Consul agent addresses (host:port or URLs).
	Servers []string
	// Services maps hosts and paths to Consul service names.
	Services []ConsulService
	// Token is the ACL token. Never logged.
	Token string
}

// ConsulService maps one Consul service to a host and path. YAML keys:
// hostname (or the older proxy), upstream (or the older real), path and
// the per-path policy keys to_https, rate_limit, x4xx_limit,
// client_headers, server_headers, authorization and redirect_to.
type ConsulService struct {
	Proxy    string // host name (upstreams key)
	Path     string // path prefix, default "/"
	RealName string // Consul service name
	// Policy holds the service's per-path policy overrides.
	Policy Policy
	// RedirectTo, when set, answers 301 to RedirectTo + path + query.
	RedirectTo string
	// Pos is where the service entry appears.
	Pos Pos
}

// Kubernetes configures the Kubernetes discovery provider.
type Kubernetes struct {
	// Servers are API server addresses; empty means in-cluster config.
	Servers []string
	// Services maps hosts and paths to Kubernetes services.
	Services []KubernetesService
	// Tokenpath is the service account token file.
	Tokenpath string
	// IngressClass is the ingress class the Ingress controller serves
	// (used when Services is empty). Empty means "aralez".
	IngressClass string
}

// KubernetesService maps one Kubernetes service to a host and path. YAML
// keys: hostname, upstream, path and the per-path policy keys, as for
// ConsulService.
type KubernetesService struct {
	Hostname string // host name
	Path     string // path prefix, default "/"
	Upstream string // service name (namespace/name or name)
	// Policy holds the service's per-path policy overrides.
	Policy Policy
	// RedirectTo, when set, answers 301 to RedirectTo + path + query.
	RedirectTo string
	// Pos is where the service entry appears.
	Pos Pos
}

// Pos is a position in a YAML file: 1-based line and column. Line 0
// means unknown (a value built in code).
type Pos struct {
	File      string
	Line, Col int
}
