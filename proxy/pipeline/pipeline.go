package pipeline

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/aralez-go/aralez/policy/ratelimit"
	"github.com/aralez-go/aralez/proxy/cache"
)

// HTTPChallenger answers ACME HTTP-01 challenges (RFC 8555 §8.3).
type HTTPChallenger interface {
	// HTTPChallenge returns the key authorization for token on host, or
	// ok=false when this instance holds no such token (the request then
	// goes on to normal routing: a backend may run its own ACME client).
	HTTPChallenge(host, token []byte) (keyAuth []byte, ok bool)
}

// Recorder receives the pipeline's own events for metrics.
// *metrics.Metrics implements it. Its methods must be safe for
// concurrent use and should not allocate.
type Recorder interface {
	// Retry counts one upstream attempt retried on another backend or a
	// fresh connection.
	Retry()
}

// Options configures a Pipeline. Zero fields take the defaults noted.
type Options struct {
	// Logger receives request-path errors (upstream failures, forward
	// auth outages) at debug and warn level. Nil means slog.Default().
	Logger *slog.Logger
	// TLSPort is the port of the TLS listener, used by to_https
	// redirects; 0 or 443 leaves the port out of the Location.
	TLSPort int
	// MaxRequestBodyBytes is the request body limit of routes without
	// their own (Decision.BodyLimit); 0 means unlimited.
	MaxRequestBodyBytes int64
	// MaxURIBytes rejects longer request targets with 414; 0 = no limit
	// beyond the header buffer.
	MaxURIBytes int
	// TrustedProxies are the peers whose forwarding headers are believed
	// (X-Forwarded-For names the client, its rightmost untrusted hop;
	// X-Forwarded-Proto/-Host/-Port/-Prefix/-Server, X-Real-IP, Forwarded
	// and X-Request-Id are kept). From any other peer every client copy
	// of them is removed and replaced.
	TrustedProxies []netip.Prefix
	// LimiterOptions sizes the rate-limit counters and, with a Store,
	// shares them with the other instances of a fleet.
	LimiterOptions ratelimit.Options
	// ViaName is the pseudonym in the Via header added to upstream
	// requests (RFC 9110 §7.6.3). Default "aralez".
	ViaName string
	// Challenges answers ACME HTTP-01 challenges before routing; nil =
	// none.
	Challenges HTTPChallenger
	// Recorder receives retries; nil = none.
	Recorder Recorder
	// Cache is the response cache (cache_size_mb); nil = none. Routes
	// compiled with cache_size_mb > 0 use it unless they say cache:
	// false.
	Cache *cache.Cache
	// CacheStatusHeader names the response header that carries the
	// cache status on cached routes (cache_status_header); empty = none.
	CacheStatusHeader string
}

// Pipeline is the front-end-neutral request path: the steps every front
// end runs on each request, in this order (see doc.go):
//
//	Route → Admit → CacheLookup → PlanRequest → Attempt → CacheResponse → PlanResponse → Responded
//
// It owns the state that must outlive a routing snapshot (the rate-limit
// counters). A Pipeline is safe for concurrent use; it must not be
// copied.
type Pipeline struct {
	_       noCopy
	opts    Options
	log     *slog.Logger
	limiter *ratelimit.Limiter // rate_limit and x4xx_limit counters, kept across reloads

	via [2]Field // Via: "1.1 <name>", "2 <name>"

	cacheStatus [len(cacheStatusText)]Field // the cache status header per CacheStatus
}

// New returns a Pipeline configured by o.
func New(o Options) *Pipeline {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ViaName == "" {
		o.ViaName = "aralez"
	}
	return &Pipeline{
		opts:    o,
		log:     o.Logger,
		limiter: ratelimit.New(o.LimiterOptions),
		via:     [2]Field{field("Via", "1.1 "+o.ViaName), field("Via", "2 "+o.ViaName)},

		cacheStatus: cacheStatusFields(o.CacheStatusHeader),
	}
}

// Options returns the options p was built with (defaults filled in).
func (p *Pipeline) Options() Options { return p.opts }

// Logger returns the pipeline's logger.
func (p *Pipeline) Logger() *slog.Logger { return p.log }

// Run sweeps idle rate-limit keys every ratelimit.DefaultSweepInterval
// and, with a store, exchanges counts with it, until ctx is done.
func (p *Pipeline) Run(ctx context.Context) { p.limiter.Run(ctx, ratelimit.DefaultSweepInterval) }

// LimiterStats returns the counters of the rate limiter's exchanges with
// its store (the zero value without one), for metrics.
func (p *Pipeline) LimiterStats() ratelimit.FleetStats { return p.limiter.FleetStats() }

// Responded is the last step: it records the status the client got (an
// upstream's or the proxy's own) for the route's x4xx_limit. The proxy's
// own 429s are never counted.
func (p *Pipeline) Responded(d *Decision, status int) {
	if d.count4xx && status >= 400 && status < 500 && status != 429 {
		p.limiter.Count4xx(d.limitKey, nowNanos())
	}
}

// noCopy makes `go vet` report copies of the types that embed it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// nowNanos is the clock of the request path.
func nowNanos() int64 { return time.Now().UnixNano() }
