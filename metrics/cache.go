package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// CacheStatus is how the response cache served a request, for
// ObserveCache.
type CacheStatus uint8

// Cache statuses, the values of aralez_cache_requests_total's status
// label.
const (
	// CacheHit: served fresh from the cache (a 304 to a conditional
	// request included).
	CacheHit CacheStatus = iota
	// CacheMiss: fetched from upstream (stored or not).
	CacheMiss
	// CacheStale: served stale (stale-while-revalidate, stale-if-error,
	// the client's max-stale).
	CacheStale
	// CacheRevalidated: a stale entry was confirmed by a 304 upstream.
	CacheRevalidated
	// CacheBypass: the cache did not apply (method, Range, cache_bypass,
	// an unsafe method's invalidation).
	CacheBypass
	numCacheStatus
)

var cacheStatusLabels = [numCacheStatus]string{"hit", "miss", "stale", "revalidated", "bypass"}

// String returns the label value of s.
func (s CacheStatus) String() string {
	if s < numCacheStatus {
		return cacheStatusLabels[s]
	}
	return "unknown"
}

// CacheStats is the storage side of the response cache, read at scrape
// time (see SetCacheStats).
type CacheStats struct {
	// SizeBytes is the stored size (aralez_cache_size_bytes).
	SizeBytes uint64
	// Items is the number of stored responses (aralez_cache_items).
	Items uint64
	// EvictedBytes and EvictedItems count what the size bound and expiry
	// removed (aralez_cache_evicted_bytes_total,
	// aralez_cache_evicted_items_total).
	EvictedBytes, EvictedItems uint64
}

// cacheRoutes is an immutable per-route table of status counters; a nil
// entry is a route whose series were removed.
type cacheRoutes struct {
	c []*[numCacheStatus]prometheus.Counter
}

// cacheMetrics holds the response cache's collectors.
type cacheMetrics struct {
	requests *prometheus.CounterVec
	stats    atomic.Pointer[func() CacheStats]
	table    atomic.Pointer[cacheRoutes]

	// mu guards index, names and publishing a new table.
	mu    sync.Mutex
	index map[string]int
	names []string
}

var (
	cacheSizeDesc = prometheus.NewDesc("aralez_cache_size_bytes",
		"Current cache size in bytes.", nil, nil)
	cacheItemsDesc = prometheus.NewDesc("aralez_cache_items",
		"Current number of cached objects.", nil, nil)
	cacheEvictedBytesDesc = prometheus.NewDesc("aralez_cache_evicted_bytes_total",
		"Total bytes evicted from cache.", nil, nil)
	cacheEvictedItemsDesc = prometheus.NewDesc("aralez_cache_evicted_items_total",
		"Total cache items evicted.", nil, nil)
)

func (cm *cacheMetrics) init() {
	cm.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aralez_cache_requests_total", Help: "Requests on cached routes by route and cache status.",
	}, []string{"route", "status"})
	cm.index = make(map[string]int)
	cm.table.Store(&cacheRoutes{})
}

// Describe and Collect make cacheMetrics the collector of the storage
// figures, read from the SetCacheStats source at scrape time (zero
// without one, so dashboards always find the series).
func (cm *cacheMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheSizeDesc
	ch <- cacheItemsDesc
	ch <- cacheEvictedBytesDesc
	ch <- cacheEvictedItemsDesc
}

func (cm *cacheMetrics) Collect(ch chan<- prometheus.Metric) {
	var s CacheStats
	if f := cm.stats.Load(); f != nil {
		s = (*f)()
	}
	ch <- prometheus.MustNewConstMetric(cacheSizeDesc, prometheus.GaugeValue, float64(s.SizeBytes))
	ch <- prometheus.MustNewConstMetric(cacheItemsDesc, prometheus.GaugeValue, float64(s.Items))
	// Aralez declares these two as gauges that only grow; a counter is
	// the Prometheus type for a _total, and rate() works on both.
	ch <- prometheus.MustNewConstMetric(cacheEvictedBytesDesc, prometheus.CounterValue, float64(s.EvictedBytes))
	ch <- prometheus.MustNewConstMetric(cacheEvictedItemsDesc, prometheus.CounterValue, float64(s.EvictedItems))
}

// SetCacheStats makes the aralez_cache_* storage series read f at scrape
// time (typically the response cache's Stats). nil means zeros.
func (m *Metrics) SetCacheStats(f func() CacheStats) {
	if f == nil {
		m.cache.stats.Store(nil)
		return
	}
	m.cache.stats.Store(&f)
}

// CacheRouteIndex returns the stable index of route (its name, e.g.
// "example.com/api") for ObserveCache, creating its
// aralez_cache_requests_total series when needed. The index never changes
// for a name during the process's life, so it can be computed when a
// snapshot is compiled and kept across reloads. It allocates; call it off
// the request path.
func (m *Metrics) CacheRouteIndex(route string) int {
	cm := &m.cache
	cm.mu.Lock()
	defer cm.mu.Unlock()
	i, ok := cm.index[route]
	if ok && cm.table.Load().c[i] != nil {
		return i
	}
	if !ok {
		i = len(cm.names)
		cm.index[route] = i
		cm.names = append(cm.names, route)
	}
	var row [numCacheStatus]prometheus.Counter
	for s, l := range cacheStatusLabels {
		row[s] = cm.requests.WithLabelValues(route, l)
	}
	next := make([]*[numCacheStatus]prometheus.Counter, len(cm.names))
	copy(next, cm.table.Load().c)
	next[i] = &row
	cm.table.Store(&cacheRoutes{c: next})
	return i
}

// RetainCacheRoutes removes the aralez_cache_requests_total series of
// every known route not in keep (after a reload removed it). Indexes stay
// reserved, as with RetainUpstreams.
func (m *Metrics) RetainCacheRoutes(keep []string) {
	set := make(map[string]struct{}, len(keep))
	for _, r := range keep {
		set[r] = struct{}{}
	}
	cm := &m.cache
	cm.mu.Lock()
	defer cm.mu.Unlock()
	next := append([]*[numCacheStatus]prometheus.Counter(nil), cm.table.Load().c...)
	for i, r := range cm.names {
		if _, ok := set[r]; ok || next[i] == nil {
			continue
		}
		for _, l := range cacheStatusLabels {
			cm.requests.DeleteLabelValues(r, l)
		}
		next[i] = nil
	}
	cm.table.Store(&cacheRoutes{c: next})
}

// ObserveCache counts one request of the route at index route (from
// CacheRouteIndex) with cache status s. It allocates nothing; an unknown
// index or status is not counted.
func (m *Metrics) ObserveCache(route int, s CacheStatus) {
	t := m.cache.table.Load()
	if route < 0 || route >= len(t.c) || t.c[route] == nil || s >= numCacheStatus {
		return
	}
	t.c[route][s].Inc()
}
