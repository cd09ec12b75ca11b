package proxy

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/metrics"
	"github.com/aralez-go/aralez/policy/ratelimit"
	"github.com/aralez-go/aralez/proxy/cache"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

// Snapshot is the compiled routing table (see pipeline.Snapshot).
type Snapshot = pipeline.Snapshot

// Route is one compiled path entry of a Snapshot (see pipeline.Route).
type Route = pipeline.Route

// ErrNoRoute is the cause logged when a request matches no host and there
// is no DEFAULT host; the client gets 404.
var ErrNoRoute = pipeline.ErrNoRoute

// ErrNoBackend is the cause logged when a route has no usable backend;
// the client gets 503.
var ErrNoBackend = pipeline.ErrNoBackend

// Compile builds a Snapshot from a validated config, taking per-backend
// state (counters, health, connection pools) from reg so that it survives
// reloads. It starts no goroutines and binds no sockets; on error nothing
// is changed and the returned error names the host and path.
func Compile(cfg *config.Config, reg *Registry) (*Snapshot, error) {
	return pipeline.Compile(cfg, reg)
}

// Recompile is Compile that takes from prev, a snapshot compiled with
// the same reg (the one serving), the routes of the hosts whose content
// and inherited settings did not change (see pipeline.Recompile): a
// reload compiles only what it changed. prev is not modified; nil
// compiles every host.
func Recompile(prev *Snapshot, cfg *config.Config, reg *Registry) (*Snapshot, error) {
	return pipeline.Recompile(prev, cfg, reg)
}

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
	// TrustedProxies are the peers whose forwarding headers are believed
	// (see pipeline.Options.TrustedProxies).
	TrustedProxies []netip.Prefix
	// LimiterOptions sizes the rate-limit counters and, with a Store,
	// shares them with the other instances of a fleet.
	LimiterOptions ratelimit.Options
	// Metrics records every request (Prometheus); nil = none.
	Metrics *metrics.Metrics
	// AccessLog receives one record per request; nil = off.
	AccessLog *accesslog.Logger
	// ViaName is the pseudonym in the Via header added to upstream
	// requests (RFC 9110 §7.6.3). Default "aralez".
	ViaName string
	// Challenges answers ACME HTTP-01 challenges before routing; nil =
	// none.
	Challenges pipeline.HTTPChallenger
	// Cache is the response cache (cache_size_mb); nil = none.
	Cache *cache.Cache
	// CacheStatusHeader names the cache status response header
	// (cache_status_header); empty = none.
	CacheStatusHeader string
}

// DefaultBodyBufferBytes is Options.BodyBufferBytes when zero: 64 KiB.
const DefaultBodyBufferBytes = 64 << 10

// Engine is the request path: the pipeline, the current Snapshot behind
// an atomic pointer, and the front ends (ServeFastHTTP for HTTP/1.1,
// ServeHTTP for h2 and h2c) that adapt it to their server libraries. An
// Engine is safe for concurrent use; it must not be copied.
type Engine struct {
	_    noCopy
	opts Options
	pl   *pipeline.Pipeline
	reg  *Registry
	snap atomic.Pointer[Snapshot]

	// writeTimeout is the HTTP/1.1 front end's write_timeout, set by
	// NewFastServer before serving: it bounds the answers the engine
	// writes on a taken-over connection.
	writeTimeout time.Duration
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
	po := pipeline.Options{
		Logger:              o.Logger,
		TLSPort:             o.TLSPort,
		MaxRequestBodyBytes: o.MaxRequestBodyBytes,
		MaxURIBytes:         o.MaxURIBytes,
		TrustedProxies:      o.TrustedProxies,
		LimiterOptions:      o.LimiterOptions,
		ViaName:             o.ViaName,
		Challenges:          o.Challenges,
		Cache:               o.Cache,
		CacheStatusHeader:   o.CacheStatusHeader,
	}
	if o.Metrics != nil {
		po.Recorder = o.Metrics
	}
	e := &Engine{opts: o, pl: pipeline.New(po), reg: reg}
	empty, _ := pipeline.Compile(&config.Config{}, reg)
	e.snap.Store(empty)
	return e
}

// Swap publishes s as the snapshot for new requests and returns the
// previous one. Requests in flight finish on the snapshot they loaded.
func (e *Engine) Swap(s *Snapshot) *Snapshot { return e.snap.Swap(s) }

// Snapshot returns the snapshot new requests use.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Registry returns the per-backend state registry of the engine.
func (e *Engine) Registry() *Registry { return e.reg }

// Pipeline returns the engine's front-end-neutral pipeline.
func (e *Engine) Pipeline() *pipeline.Pipeline { return e.pl }

// Run sweeps idle rate-limit keys until ctx is done.
func (e *Engine) Run(ctx context.Context) { e.pl.Run(ctx) }

// noCopy makes `go vet` report copies of the types that embed it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
