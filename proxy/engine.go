package proxy

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/metrics"
	"github.com/aralez-go/aralez/policy/ratelimit"
)

// Options configures an Engine. Zero fields take the defaults noted.
type Options struct {
	// Logger receives request-path errors (upstream failures) at debug
	// and warn level. Nil means slog.Default().
	Logger *slog.Logger
	// TLSPort is the port of the TLS listener, used by to_https
	// redirects; 0 or 443 leaves the port out of the Location.
	TLSPort int
	// BodyBufferBytes is the largest body of known length that is
	// buffered; larger and chunked bodies stream. Default 64 KiB.
	BodyBufferBytes int
	// MaxRequestBodyBytes rejects larger request bodies with 413;
	// 0 means unlimited.
	MaxRequestBodyBytes int64
	// MaxURIBytes rejects longer request targets with 414; 0 = no limit
	// beyond the header buffer.
	MaxURIBytes int
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (rightmost untrusted hop) and is kept and appended to; from any
	// other peer the header is replaced and ignored for limits and auth.
	TrustedProxies []netip.Prefix
	// LimiterOptions sizes the rate-limit counters.
	LimiterOptions ratelimit.Options
	// Metrics records every request (Prometheus); nil = none.
	Metrics *metrics.Metrics
	// AccessLog receives one record per request; nil = off.
	AccessLog *accesslog.Logger
	// ViaName is the pseudonym in the Via header added to upstream
	// requests (RFC 9110 §7.6.3). Default "aralez".
	ViaName string
}

// DefaultBodyBufferBytes is Options.BodyBufferBytes when zero: 64 KiB.
const DefaultBodyBufferBytes = 64 << 10

// Engine is the request path: it holds the current Snapshot behind an
// atomic pointer and serves requests on it through the front ends. An
// Engine is safe for concurrent use; it must not be copied.
type Engine struct {
	_    noCopy
	opts Options
	log  *slog.Logger
	reg  *Registry
	snap atomic.Pointer[Snapshot]

	limiter *ratelimit.Limiter // rate_limit and x4xx_limit counters, kept across reloads

	via []byte // "1.1 <ViaName>"
}

// NewEngine returns an Engine serving no routes (every request gets 404)
// until the first Swap.
func NewEngine(reg *Registry, o Options) *Engine {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BodyBufferBytes <= 0 {
		o.BodyBufferBytes = DefaultBodyBufferBytes
	}
	if o.ViaName == "" {
		o.ViaName = "aralez"
	}
	e := &Engine{opts: o, log: o.Logger, reg: reg, via: []byte("1.1 " + o.ViaName), limiter: ratelimit.New(o.LimiterOptions)}
	e.snap.Store(&Snapshot{exact: map[string]*vhost{}, wildcard: map[string]*vhost{}})
	return e
}

// Swap publishes s as the snapshot for new requests and returns the
// previous one. Requests in flight finish on the snapshot they loaded.
func (e *Engine) Swap(s *Snapshot) *Snapshot { return e.snap.Swap(s) }

// Snapshot returns the snapshot new requests use.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Registry returns the per-backend state registry of the engine.
func (e *Engine) Registry() *Registry { return e.reg }

// Run sweeps idle rate-limit keys every ratelimit.DefaultSweepInterval
// until ctx is done.
func (e *Engine) Run(ctx context.Context) { e.limiter.Run(ctx, ratelimit.DefaultSweepInterval) }

// noCopy makes `go vet` report copies of the types that embed it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// nowNanos is the clock of the request path.
func nowNanos() int64 { return time.Now().UnixNano() }
