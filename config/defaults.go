package config

import "time"

// maxKeepaliveSeconds and maxKeepaliveCount are the largest
// tcp_keepalive_idle / tcp_keepalive_interval and tcp_keepalive_count
// Linux accepts (TCP_KEEPIDLE and TCP_KEEPINTVL, TCP_KEEPCNT); a larger
// value fails setsockopt on every accepted socket.
const (
	maxKeepaliveSeconds = 32767
	maxKeepaliveCount   = 127
)

// Defaults of main.yaml keys. ApplyDefaults sets a field to its default
// when the key is absent (the field is zero).
const (
	// DefaultProxyAddressHTTP is the cleartext listener (Aralez's default).
	DefaultProxyAddressHTTP = "0.0.0.0:6193"
	// DefaultUpstreamsConf is the routing table, beside main.yaml.
	DefaultUpstreamsConf = "upstreams.yaml"
	// DefaultProxyTLSGrade is the TLS cipher grade.
	DefaultProxyTLSGrade = "medium"
	// DefaultLogLevel is the process log level.
	DefaultLogLevel = "info"
	// DefaultLogFileSizeMB is the log rotation size in MiB (Aralez's).
	DefaultLogFileSizeMB = 100
	// DefaultLogFileKeep is how many rotated log files are kept (Aralez's).
	DefaultLogFileKeep = 5
	// DefaultAccessLog is the access log mode.
	DefaultAccessLog = "off"
	// DefaultHCMethod is the health check method.
	DefaultHCMethod = "HEAD"
	// DefaultHCInterval is the health check interval in whole seconds.
	DefaultHCInterval = 2
	// DefaultHealthCheckRise is how many passing probes mark a backend up.
	DefaultHealthCheckRise = 2
	// DefaultHealthCheckFall is how many failing probes mark a backend down.
	DefaultHealthCheckFall = 2
	// DefaultTCPKeepaliveInterval is the seconds between keep-alive probes
	// when tcp_keepalive_idle is set and tcp_keepalive_interval is not
	// (Aralez's default).
	DefaultTCPKeepaliveInterval = 10
	// DefaultTCPKeepaliveCount is the unanswered probes before a client
	// connection is dropped, when tcp_keepalive_idle is set (Aralez's).
	DefaultTCPKeepaliveCount = 5
	// DefaultUpstreamKeepalivePoolSize is the idle connections kept per
	// backend.
	DefaultUpstreamKeepalivePoolSize = 128
	// DefaultUpstreamWaitTimeout is how long a request waits for a free
	// upstream connection when upstream_max_conns is reached.
	DefaultUpstreamWaitTimeout = time.Second
	// DefaultUpstreamConnectTimeout bounds dialing a backend.
	DefaultUpstreamConnectTimeout = 5 * time.Second
	// DefaultUpstreamTimeout bounds waiting for upstream response headers
	// and each upstream read or write.
	DefaultUpstreamTimeout = 60 * time.Second
	// DefaultUpstreamIdleTimeout closes idle upstream connections.
	DefaultUpstreamIdleTimeout = 60 * time.Second
	// DefaultReadHeaderTimeout bounds reading a client's request headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole client request.
	DefaultReadTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds writing a response to a client.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout is how long a client keep-alive connection may
	// stay idle.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultIdleReleaseTimeout is how long a client keep-alive
	// connection waits for its next request before it gives back its
	// buffers: longer than the gap between the requests of a busy
	// connection, so those never wait on a pool.
	DefaultIdleReleaseTimeout = time.Second
	// DefaultDrainTimeout bounds graceful shutdown.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultMaxHeaderBytes limits a request's header block (bytes).
	DefaultMaxHeaderBytes = 16384
	// DefaultH2MaxConcurrentStreams is h2_max_concurrent_streams:
	// net/http's own default for its HTTP/2 server.
	DefaultH2MaxConcurrentStreams = 250
	// DefaultH2StreamWindowBytes is h2_stream_window_bytes: net/http's
	// own default, 1 MiB.
	DefaultH2StreamWindowBytes = 1 << 20
	// DefaultH2ConnectionWindowBytes is h2_connection_window_bytes:
	// net/http's own default, 1 MiB.
	DefaultH2ConnectionWindowBytes = 1 << 20
	// MinH2WindowBytes is the smallest HTTP/2 flow-control window the
	// h2_*_window_bytes keys accept: the protocol's initial window (RFC
	// 9113 §6.9.2). MaxH2WindowBytes is the largest (§6.9.1).
	MinH2WindowBytes = 65535
	MaxH2WindowBytes = 1<<31 - 1
	// DefaultMaxURIBytes limits the request target (bytes).
	DefaultMaxURIBytes = 8192
	// DefaultBodyBufferBytes is the largest known-length body buffered
	// (bytes); larger bodies stream.
	DefaultBodyBufferBytes = 65536
	// DefaultMaxRequestBodyBytes limits request bodies; 0 is unlimited.
	DefaultMaxRequestBodyBytes = 0
	// DefaultCacheTTL is cache_ttl in whole seconds (Aralez's default).
	DefaultCacheTTL = 60
	// DefaultCacheMaxObjectBytes is the largest body the cache stores:
	// 1 MiB.
	DefaultCacheMaxObjectBytes = 1 << 20
)

// Defaults of upstreams.yaml keys.
const (
	// DefaultProvider is the upstreams provider.
	DefaultProvider = "file"
	// DefaultLoadBalance is a path's load-balancing policy.
	DefaultLoadBalance = "round_robin"
	// DefaultWeight is a server's round-robin weight.
	DefaultWeight = 1
	// DefaultPath is the path of a Consul or Kubernetes service entry
	// without one.
	DefaultPath = "/"
	// DefaultStickySessions is the cookie lifetime in seconds used for
	// the deprecated form "sticky_sessions: true".
	DefaultStickySessions = 86400
)

// DefaultAuthResponseHeaders are the forward-auth response headers copied
// onto the upstream request when a path sets no auth_response_headers.
// Treat it as read-only.
var DefaultAuthResponseHeaders = []string{"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "X-Forwarded-User"}

// ApplyDefaults sets every zero field that has a Default… constant.
// Fields where zero is meaningful (Threads, UpstreamMaxConns,
// MaxRequestBodyBytes, HealthCheckInterval, HealthCheckTimeout,
// CacheSizeMB) are left
// alone; TCPKeepaliveInterval and TCPKeepaliveCount get their defaults
// only when TCPKeepaliveIdle is set, as in Aralez. It is idempotent.
func (m *Main) ApplyDefaults() {
	setStr(&m.ProxyAddressHTTP, DefaultProxyAddressHTTP)
	setStr(&m.UpstreamsConf, DefaultUpstreamsConf)
	setStr(&m.ProxyTLSGrade, DefaultProxyTLSGrade)
	setStr(&m.LogLevel, DefaultLogLevel)
	setStr(&m.AccessLog, DefaultAccessLog)
	setStr(&m.HCMethod, DefaultHCMethod)
	setInt(&m.LogFileSizeMB, DefaultLogFileSizeMB)
	setInt(&m.LogFileKeep, DefaultLogFileKeep)
	setInt(&m.HCInterval, DefaultHCInterval)
	setInt(&m.HealthCheckRise, DefaultHealthCheckRise)
	setInt(&m.HealthCheckFall, DefaultHealthCheckFall)
	setInt(&m.UpstreamKeepalivePoolSize, DefaultUpstreamKeepalivePoolSize)
	setInt(&m.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setInt(&m.MaxURIBytes, DefaultMaxURIBytes)
	setInt(&m.H2MaxConcurrentStreams, DefaultH2MaxConcurrentStreams)
	setInt(&m.H2StreamWindowBytes, DefaultH2StreamWindowBytes)
	setInt(&m.H2ConnectionWindowBytes, DefaultH2ConnectionWindowBytes)
	setInt(&m.BodyBufferBytes, DefaultBodyBufferBytes)
	setInt(&m.CacheTTL, DefaultCacheTTL)
	setInt(&m.CacheMaxObjectBytes, DefaultCacheMaxObjectBytes)
	setDur(&m.UpstreamWaitTimeout, DefaultUpstreamWaitTimeout)
	setDur(&m.UpstreamConnectTimeout, DefaultUpstreamConnectTimeout)
	setDur(&m.UpstreamTimeout, DefaultUpstreamTimeout)
	setDur(&m.UpstreamIdleTimeout, DefaultUpstreamIdleTimeout)
	setDur(&m.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&m.ReadTimeout, DefaultReadTimeout)
	setDur(&m.WriteTimeout, DefaultWriteTimeout)
	setDur(&m.IdleTimeout, DefaultIdleTimeout)
	setDur(&m.IdleReleaseTimeout, DefaultIdleReleaseTimeout)
	setDur(&m.DrainTimeout, DefaultDrainTimeout)
	setStr(&m.ACME.Directory, DefaultACMEDirectory)
	setStr(&m.ACME.Storage, DefaultACMEStorage)
	if m.ACME.Storage == ACMEStorageConsul {
		setStr(&m.ACME.ConsulPrefix, DefaultACMEConsulPrefix)
	}
	m.applyFleetDefaults()
	if m.TCPKeepaliveIdle > 0 {
		setInt(&m.TCPKeepaliveInterval, DefaultTCPKeepaliveInterval)
		setInt(&m.TCPKeepaliveCount, DefaultTCPKeepaliveCount)
	}
}

// ApplyDefaults sets Provider, each path's LoadBalance and each server's
// Weight when they are zero. It is idempotent.
func (u *Upstreams) ApplyDefaults() {
	setStr(&u.Provider, DefaultProvider)
	for hi := range u.Hosts {
		h := &u.Hosts[hi]
		for pi := range h.Paths {
			p := &h.Paths[pi]
			setStr(&p.LoadBalance, DefaultLoadBalance)
			for si := range p.Servers {
				setInt(&p.Servers[si].Weight, DefaultWeight)
			}
		}
	}
	if u.Consul != nil {
		for i := range u.Consul.Services {
			setStr(&u.Consul.Services[i].Path, DefaultPath)
		}
	}
	if u.Kubernetes != nil {
		for i := range u.Kubernetes.Services {
			setStr(&u.Kubernetes.Services[i].Path, DefaultPath)
		}
	}
}

// ApplyDefaults applies the defaults of Main and Upstreams.
func (c *Config) ApplyDefaults() {
	c.Main.ApplyDefaults()
	c.Upstreams.ApplyDefaults()
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *time.Duration, v time.Duration) {
	if *p == 0 {
		*p = v
	}
}
