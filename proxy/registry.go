package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/metrics"
	"github.com/aralez-go/aralez/policy/auth"
	"github.com/aralez-go/aralez/policy/auth/forward"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

// UpstreamOptions configures the connection pool of every backend.
// Zero fields take the config package's defaults.
type UpstreamOptions struct {
	// KeepalivePoolSize is the number of idle keep-alive connections a
	// backend should keep (main.yaml upstream_keepalive_pool_size).
	KeepalivePoolSize int
	// MaxConns caps concurrent connections per backend; 0 = unlimited.
	MaxConns int
	// WaitTimeout is how long a request waits for a free connection when
	// MaxConns is reached; then 503.
	WaitTimeout time.Duration
	// ConnectTimeout bounds dialing a backend (then 504).
	ConnectTimeout time.Duration
	// Timeout bounds each upstream read and write (then 504).
	Timeout time.Duration
	// IdleTimeout closes idle upstream connections.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the upstream response header block.
	MaxHeaderBytes int
	// TLSVerify verifies the certificates of TLS backends (system roots
	// plus TLSCAFile); false accepts any, as Aralez does. The Registry
	// sets it per pool from each route's tls_verify; a value given to
	// NewRegistry is ignored.
	TLSVerify bool
	// TLSCAFile is a PEM bundle of extra roots for TLSVerify.
	TLSCAFile string
	// Metrics, when set, gives each backend its per-upstream metrics
	// index (metrics.UpstreamIndex).
	Metrics *metrics.Metrics
	// TunnelIdleTimeout closes a WebSocket tunnel after this long without
	// a byte in either direction. Zero means DefaultTunnelIdleTimeout.
	TunnelIdleTimeout time.Duration
}

// unlimitedConns stands for "no cap" in fasthttp.HostClient.MaxConns,
// which has no unlimited setting of its own.
const unlimitedConns = 1 << 30

// upstream is one backend's balancer state and connection pool.
type upstream struct {
	backend *balancer.Backend
	hc      *fasthttp.HostClient
	net     *netUpstream // net/http transports (h2.go)

	metricIdx int // metrics.UpstreamIndex of the address, -1 without metrics
}

// Registry holds per-backend state keyed by address (host:port), so that
// counters, health and pooled connections survive reloads that keep the
// backend. It is safe for concurrent use; lookups happen in Compile,
// never on the request path.
type Registry struct {
	opts UpstreamOptions
	set  *balancer.Set

	mu           sync.Mutex // guards upstreams and the sticky fields
	upstreams    map[string]*upstream
	randomSecret []byte
	stickyKey    []byte
	stickySigner *balancer.Sticky

	tunnels tunnelSet // open WebSocket tunnels (ws.go)
}

// NewRegistry returns an empty Registry whose pools use o.
func NewRegistry(o UpstreamOptions) *Registry {
	return &Registry{opts: o, set: balancer.NewSet(), upstreams: make(map[string]*upstream)}
}

// Backends returns the balancer's per-address state set.
func (r *Registry) Backends() *balancer.Set { return r.set }

// Upstream returns the balancer state of addr and its connection pools
// for the route settings o: certificate verification on or off
// (tls_verify), and the PROXY protocol version its connections open with
// (send_proxy_protocol), which it also records on the backend for health
// probes; the balancer state is shared by every pool of the address. It
// implements pipeline.Resolver.
func (r *Registry) Upstream(addr string, o pipeline.PoolOptions) (*balancer.Backend, pipeline.Upstream) {
	u := r.get(addr, o.TLSVerify, o.ProxyProtocol)
	u.backend.SetProxyHeader(o.ProxyProtocol)
	return u.backend, u
}

// CacheRouteIndex returns the per-route cache metrics index of route
// (metrics.CacheRouteIndex), or -1 without metrics. It allocates: the
// pipeline calls it when it compiles a cached route.
func (r *Registry) CacheRouteIndex(route string) int {
	if r.opts.Metrics == nil {
		return -1
	}
	return r.opts.Metrics.CacheRouteIndex(route)
}

var _ pipeline.CacheRouteIndexer = (*Registry)(nil)

// ForwardAuth returns a forward-auth client for url (policy/auth/forward).
// It implements pipeline.Resolver; errors wrap auth.ErrForwardURL.
func (r *Registry) ForwardAuth(url string, o auth.ForwardOptions) (pipeline.ForwardAuthorizer, error) {
	c, err := forward.New(url, o)
	if err != nil {
		return nil, err
	}
	return c, nil
}

var _ pipeline.Resolver = (*Registry)(nil)

// get returns the connection pools for addr with upstream certificate
// verification on or off.
func (r *Registry) get(addr string, verify bool, proxyProto uint8) *upstream {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := addr
	if verify {
		key += " verify"
	}
	if proxyProto != 0 {
		key += " proxy-v" + strconv.Itoa(int(proxyProto))
	}
	if u, ok := r.upstreams[key]; ok {
		return u
	}
	opts := r.opts
	opts.TLSVerify = verify
	u := &upstream{backend: r.set.Get(addr), hc: r.newHostClient(addr), metricIdx: -1}
	if opts.Metrics != nil {
		u.metricIdx = opts.Metrics.UpstreamIndex(addr)
	}
	u.net = newNetUpstream(addr, u.backend, opts)
	u.net.proxyProto = proxyProto
	u.hc.Dial = pooledDial(u.net.dialHostClient, opts.Timeout) // TLS when the backend was detected as TLS
	r.upstreams[key] = u
	return u
}

// Sweep closes the idle connections of, and forgets, every backend for
// which keep returns false. Call it after the drain timeout of a reload.
func (r *Registry) Sweep(keep func(addr string) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for key, u := range r.upstreams {
		if !keep(u.backend.Addr()) {
			u.hc.CloseIdleConnections()
			u.net.closeIdle()
			delete(r.upstreams, key)
			n++
		}
	}
	r.set.Sweep(keep)
	return n
}

func (r *Registry) newHostClient(addr string) *fasthttp.HostClient {
	o := r.opts
	maxConns := o.MaxConns
	if maxConns <= 0 {
		maxConns = unlimitedConns
	}
	// Dial is set by get: TCP or TLS by the detected protocol, each
	// connection an upstreamConn.
	return &fasthttp.HostClient{
		Addr:                          addr,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		MaxConns:                      maxConns,
		MaxConnWaitTimeout:            o.WaitTimeout,
		MaxIdleConnDuration:           o.IdleTimeout,
		MaxResponseBodySize:           0,
		ReadBufferSize:                o.MaxHeaderBytes,
		MaxIdemponentCallAttempts:     1,
		StreamResponseBody:            true,
		// The most recently used idle connection first, as nginx's
		// keepalive cache does: under load the same few connections (and
		// their buffers) stay hot in the CPU cache, the ones not needed
		// age out by MaxIdleConnDuration, and taking one is O(1) (FIFO,
		// fasthttp's default, shifts the whole idle list every time).
		ConnPoolStrategy: fasthttp.LIFO,
	}
}

// Sticky returns the sticky-cookie signer for m: keyed by sticky_secret,
// else derived from master_key, else a random per-process secret (kept
// for the life of the Registry, so reloads do not break affinity). It
// implements pipeline.Resolver.
func (r *Registry) Sticky(m config.Main) *balancer.Sticky {
	r.mu.Lock()
	defer r.mu.Unlock()
	var secret []byte
	switch {
	case m.StickySecret != "":
		secret = []byte(m.StickySecret)
	case m.MasterKey != "":
		sum := sha256.Sum256([]byte("aralez sticky\x00" + m.MasterKey))
		secret = sum[:]
	default:
		if r.randomSecret == nil {
			r.randomSecret = make([]byte, 32)
			if _, err := rand.Read(r.randomSecret); err != nil {
				panic(err) // crypto/rand never fails on Linux
			}
		}
		secret = r.randomSecret
	}
	if r.stickySigner == nil || !bytes.Equal(secret, r.stickyKey) {
		r.stickySigner, r.stickyKey = balancer.NewSticky(secret), secret
	}
	return r.stickySigner
}
