// Package metrics holds the proxy's Prometheus collectors. Names and
// labels follow Aralez, so existing dashboards keep working:
//
//	aralez_requests_total                      counter
//	aralez_errors_total                        counter, responses with status >= 500
//	aralez_responses_total{status}             counter, status is the code ("200") or "other"
//	aralez_response_latency_seconds            histogram, Aralez's buckets (1ms … 5s)
//	aralez_requests_by_method_total{method}    counter, GET POST PUT DELETE HEAD OPTIONS PATCH OTHER
//	aralez_requests_by_version_total{version}  counter, HTTP/1.0 HTTP/1.1 HTTP/2.0 Unknown
//	aralez_requests_by_upstream{upstream}      counter, upstream is the backend's host:port
//	aralez_active_sessions                     gauge
//	aralez_memory_bytes                        gauge, resident set size (Go runtime total off Linux)
//	aralez_open_files                          gauge, open file descriptors (Linux)
//	aralez_logging_errors                      gauge, access-log records dropped
//
// and adds:
//
//	aralez_upstream_up{upstream}               gauge 1/0, active health, read at scrape time
//	aralez_retries_total                       counter
//	aralez_rate_limited_total                  counter
//	aralez_auth_rejected_total                 counter
//	aralez_reloads_total{result="ok|failed"}   counter
//	aralez_config_generation                   gauge
//	aralez_cache_size_bytes                    gauge, response cache size (Aralez's)
//	aralez_cache_items                         gauge, stored responses (Aralez's)
//	aralez_cache_evicted_bytes_total           counter (a gauge in Aralez)
//	aralez_cache_evicted_items_total           counter (a gauge in Aralez)
//	aralez_cache_requests_total{route,status}  counter, status hit, miss, stale, revalidated, bypass
//
// plus the Go runtime (go_*) and process (process_*) collectors.
//
// Recording a request (Observe) allocates nothing: every label child it
// touches is looked up once and kept in a fixed table (status codes in an
// array indexed by code, methods and versions by a switch, upstreams by a
// stable index from UpstreamIndex). All methods are safe for concurrent
// use.
package metrics

import (
	"bytes"
	"net/http"
	"os"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Proto values for Observe's proto argument.
const (
	// ProtoUnknown counts under version "Unknown".
	ProtoUnknown uint8 = 0
	// ProtoHTTP10 counts under version "HTTP/1.0".
	ProtoHTTP10 uint8 = 1
	// ProtoHTTP11 counts under version "HTTP/1.1".
	ProtoHTTP11 uint8 = 2
	// ProtoHTTP2 counts under version "HTTP/2.0".
	ProtoHTTP2 uint8 = 3
)

// LatencyBuckets are the upper bounds, in seconds, of
// aralez_response_latency_seconds: Aralez's buckets.
var LatencyBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2, 5}

var (
	methodLabels  = [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "OTHER"}
	versionLabels = [...]string{"Unknown", "HTTP/1.0", "HTTP/1.1", "HTTP/2.0"}
)

// maxStatus bounds the status table: codes 100–599 get their own child,
// anything else counts as "other" (slot 0).
const maxStatus = 600

// counterRef boxes a Counter so that it can sit behind an atomic.Pointer.
type counterRef struct{ c prometheus.Counter }

// upTable is an immutable per-upstream child table; a reload publishes a
// new one. A nil entry is an upstream whose series was removed.
type upTable struct{ c []prometheus.Counter }

// Metrics is the set of the proxy's collectors on its own registry. Use
// New; the zero value is not usable. A Metrics must not be copied.
type Metrics struct {
	_ noCopy

	reg *prometheus.Registry

	requests   prometheus.Counter
	errors     prometheus.Counter
	responses  *prometheus.CounterVec
	status     [maxStatus]atomic.Pointer[counterRef]
	latency    prometheus.Histogram
	methods    [len(methodLabels)]prometheus.Counter
	versions   [len(versionLabels)]prometheus.Counter
	byUpstream *prometheus.CounterVec
	up         atomic.Pointer[upTable]
	sessions   atomic.Int64
	sessionsFn atomic.Pointer[func() int64]

	retries      prometheus.Counter
	rateLimited  prometheus.Counter
	authRejected prometheus.Counter
	reloadOK     prometheus.Counter
	reloadFailed prometheus.Counter
	generation   prometheus.Gauge

	cache cacheMetrics
	certs certMetrics
	store storeMetrics

	logErrors atomic.Pointer[func() uint64]
	health    atomic.Pointer[func(emit func(addr string, up bool))]

	// mu guards upIndex, upAddrs and publishing a new up table.
	mu      sync.Mutex
	upIndex map[string]int
	upAddrs []string
}

// New returns a Metrics with every collector registered on a fresh
// registry (never the global one, so tests and several instances do not
// collide).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), upIndex: make(map[string]int)}
	m.requests = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aralez_requests_total", Help: "Total number of requests handled by Aralez.",
	})
	m.errors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aralez_errors_total", Help: "Requests answered with a status of 500 or more.",
	})
	m.responses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aralez_responses_total", Help: "Responses grouped by status code.",
	}, []string{"status"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "aralez_response_latency_seconds", Help: "Response latency in seconds.", Buckets: LatencyBuckets,
	})
	byMethod := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aralez_requests_by_method_total", Help: "Number of requests by HTTP method.",
	}, []string{"method"})
	for i, l := range methodLabels {
		m.methods[i] = byMethod.WithLabelValues(l)
	}
	byVersion := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aralez_requests_by_version_total", Help: "Number of requests by HTTP version.",
	}, []string{"version"})
	for i, l := range versionLabels {
		m.versions[i] = byVersion.WithLabelValues(l)
	}
	m.byUpstream = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aralez_requests_by_upstream", Help: "Number of requests by upstream server.",
	}, []string{"upstream"})
	m.up.Store(&upTable{})
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aralez_active_sessions", Help: "Current number of active client connections.",
	}, func() float64 {
		if f := m.sessionsFn.Load(); f != nil {
			return float64((*f)())
		}
		return float64(m.sessions.Load())
	})
	memory := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aralez_memory_bytes", Help: "Memory used by the process in bytes (resident set size).",
	}, memoryBytes)
	openFiles := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aralez_open_files", Help: "Number of open file descriptors.",
	}, openFiles)
	logErrors := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aralez_logging_errors", Help: "Number of access-log records dropped.",
	}, func() float64 {
		if f := m.logErrors.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aralez_retries_total", Help: "Requests retried on another backend.",
	})
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aralez_rate_limited_total", Help: "Requests refused by a rate limit (429).",
	})
	m.authRejected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aralez_auth_rejected_total", Help: "Requests refused by an authorization policy.",
	})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aralez_reloads_total", Help: "Config reloads by result.",
	}, []string{"result"})
	m.reloadOK = reloads.WithLabelValues("ok")
	m.reloadFailed = reloads.WithLabelValues("failed")
	m.generation = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aralez_config_generation", Help: "Generation of the config serving now.",
	})

	m.cache.init()
	m.certs.init(m.reg)
	m.reg.MustRegister(
		&m.cache, m.cache.requests,
		m.requests, m.errors, m.responses, m.latency, byMethod, byVersion, m.byUpstream,
		sessions, memory, openFiles, logErrors,
		m.retries, m.rateLimited, m.authRejected, reloads, m.generation,
		&healthCollector{m: m}, &m.store,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry holding every collector, for callers that
// add their own or gather directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the /metrics handler: the Prometheus text format (or
// OpenMetrics when negotiated) of the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Observe records one finished request: the request counter, its method,
// protocol version (a Proto… constant), response status, latency in
// seconds, and the upstream it went to (an index from UpstreamIndex, or
// -1 when the proxy answered itself). method is only read during the
// call. Observe allocates nothing once a status code has been seen.
func (m *Metrics) Observe(method []byte, proto uint8, status int, upstream int, seconds float64) {
	m.requests.Inc()
	m.methods[methodIndex(method)].Inc()
	if int(proto) >= len(m.versions) {
		proto = ProtoUnknown
	}
	m.versions[proto].Inc()
	m.statusCounter(status).Inc()
	if status >= 500 {
		m.errors.Inc()
	}
	m.latency.Observe(seconds)
	if upstream >= 0 {
		t := m.up.Load()
		if upstream < len(t.c) && t.c[upstream] != nil {
			t.c[upstream].Inc()
		}
	}
}

// ObserveRefused records a request the front end answered before it had
// read the whole request head (a 400, 408 or 431 from the HTTP/1.1
// parser): the request counter, the protocol version and the response
// status, and the error counter for a 5xx, but no method (it may not have
// been read), no latency and no upstream. It allocates nothing once the
// status code has been seen.
func (m *Metrics) ObserveRefused(proto uint8, status int) {
	m.requests.Inc()
	if int(proto) >= len(m.versions) {
		proto = ProtoUnknown
	}
	m.versions[proto].Inc()
	m.statusCounter(status).Inc()
	if status >= 500 {
		m.errors.Inc()
	}
}

// methodIndex maps a method to its slot in methodLabels. A switch on
// string(b) does not allocate.
func methodIndex(b []byte) int {
	switch string(b) {
	case "GET":
		return 0
	case "POST":
		return 1
	case "PUT":
		return 2
	case "DELETE":
		return 3
	case "HEAD":
		return 4
	case "OPTIONS":
		return 5
	case "PATCH":
		return 6
	}
	return 7
}

// statusCounter returns the child for status, creating it the first time
// the code is seen (that one call allocates).
func (m *Metrics) statusCounter(status int) prometheus.Counter {
	i := status
	if i < 100 || i >= maxStatus {
		i = 0
	}
	if r := m.status[i].Load(); r != nil {
		return r.c
	}
	label := "other"
	if i != 0 {
		label = strconv.Itoa(i)
	}
	// Two racing first calls get the same child from the vector.
	r := &counterRef{c: m.responses.WithLabelValues(label)}
	m.status[i].Store(r)
	return r.c
}

// UpstreamIndex returns the stable index of the backend at addr for
// Observe, creating its aralez_requests_by_upstream series when needed.
// The index never changes for an address during the process's life, so
// the proxy can compute it once per backend (at compile time) and keep
// it across reloads. It allocates; call it off the request path.
func (m *Metrics) UpstreamIndex(addr string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.upIndex[addr]
	if ok {
		if m.up.Load().c[i] != nil {
			return i
		}
	} else {
		i = len(m.upAddrs)
		m.upIndex[addr] = i
		m.upAddrs = append(m.upAddrs, addr)
	}
	old := m.up.Load().c
	next := make([]prometheus.Counter, len(m.upAddrs))
	copy(next, old)
	next[i] = m.byUpstream.WithLabelValues(addr)
	m.up.Store(&upTable{c: next})
	return i
}

// RetainUpstreams removes the aralez_requests_by_upstream series of every
// known backend not in keep (after a reload removed it). Their indexes
// stay reserved: a later UpstreamIndex for the same address returns the
// same index with a fresh series. Requests recorded with a removed index
// are not counted.
func (m *Metrics) RetainUpstreams(keep []string) {
	set := make(map[string]struct{}, len(keep))
	for _, a := range keep {
		set[a] = struct{}{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.up.Load().c
	next := make([]prometheus.Counter, len(old))
	copy(next, old)
	changed := false
	for i, a := range m.upAddrs {
		if _, ok := set[a]; ok || next[i] == nil {
			continue
		}
		m.byUpstream.DeleteLabelValues(a)
		next[i] = nil
		changed = true
	}
	if changed {
		m.up.Store(&upTable{c: next})
	}
}

// SessionOpened adds one to aralez_active_sessions; call it when a client
// connection opens and SessionClosed when it closes. Not needed when
// SetSessions gives a source.
func (m *Metrics) SessionOpened() { m.sessions.Add(1) }

// SessionClosed subtracts one from aralez_active_sessions.
func (m *Metrics) SessionClosed() { m.sessions.Add(-1) }

// SetSessions makes aralez_active_sessions read f at scrape time instead
// of the SessionOpened/SessionClosed count, e.g. the sum of the front
// ends' open connection counts. nil goes back to the count.
func (m *Metrics) SetSessions(f func() int64) {
	if f == nil {
		m.sessionsFn.Store(nil)
		return
	}
	m.sessionsFn.Store(&f)
}

// Retry counts one request retried on another backend.
func (m *Metrics) Retry() { m.retries.Inc() }

// RateLimited counts one request refused by a rate limit.
func (m *Metrics) RateLimited() { m.rateLimited.Inc() }

// AuthRejected counts one request refused by an authorization policy.
func (m *Metrics) AuthRejected() { m.authRejected.Inc() }

// Reload counts one config reload attempt: ok true for a config that was
// applied (or unchanged), false for one that was rejected.
func (m *Metrics) Reload(ok bool) {
	if ok {
		m.reloadOK.Inc()
	} else {
		m.reloadFailed.Inc()
	}
}

// SetGeneration sets aralez_config_generation to the generation now
// serving.
func (m *Metrics) SetGeneration(gen uint64) { m.generation.Set(float64(gen)) }

// SetLoggingErrors makes aralez_logging_errors read f at scrape time
// (typically (*accesslog.Logger).Dropped). nil means 0.
func (m *Metrics) SetLoggingErrors(f func() uint64) {
	if f == nil {
		m.logErrors.Store(nil)
		return
	}
	m.logErrors.Store(&f)
}

// SetUpstreamHealth makes aralez_upstream_up read f at scrape time: f
// calls emit once per backend with its address and active health. f
// must be safe to call from the scrape goroutine. nil means no series.
func (m *Metrics) SetUpstreamHealth(f func(emit func(addr string, up bool))) {
	if f == nil {
		m.health.Store(nil)
		return
	}
	m.health.Store(&f)
}

var upDesc = prometheus.NewDesc("aralez_upstream_up",
	"Active health of a backend: 1 up, 0 down.", []string{"upstream"}, nil)

// healthCollector emits aralez_upstream_up from the SetUpstreamHealth
// callback at scrape time, so that no state needs syncing on reload.
type healthCollector struct{ m *Metrics }

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- upDesc }

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.m.health.Load()
	if f == nil {
		return
	}
	seen := make(map[string]struct{})
	(*f)(func(addr string, up bool) {
		// A backend shared by several routes is reported once.
		if _, dup := seen[addr]; dup {
			return
		}
		seen[addr] = struct{}{}
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, v, addr)
	})
}

// memoryBytes returns the resident set size from /proc/self/statm (as
// Aralez reports VmRSS), or the Go runtime's total mapped memory where
// /proc is not available.
func memoryBytes() float64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		// statm: size resident shared … in pages.
		if f := bytes.Fields(b); len(f) >= 2 {
			if pages, err := strconv.Atoi(string(f[1])); err == nil && pages > 0 {
				return float64(pages * os.Getpagesize())
			}
		}
	}
	s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() == rtmetrics.KindUint64 {
		return float64(s[0].Value.Uint64())
	}
	return 0
}

// openFiles counts the entries of /proc/self/fd; 0 where it is missing.
func openFiles() float64 {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(256)
		n += len(names)
		if err != nil {
			break
		}
	}
	// The descriptor used to read the folder is not the process's own.
	return float64(n - 1)
}

// noCopy makes go vet's copylocks check flag copies of a Metrics.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
