package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreStats are the counters of the shared rate-limit store
// (rate_limit_store) that an instance exchanges its counts with.
type StoreStats struct {
	// Up reports whether the last exchange succeeded.
	Up bool
	// Instances is how many instances the store counted at the last
	// exchange.
	Instances int
	// Exchanges counts exchanges; Failures the failed ones; Outages the
	// times the store became unreachable.
	Exchanges, Failures, Outages uint64
	// Keys counts the keys exchanged; Dropped the keys that could not be
	// queued for an exchange (queue full or contended).
	Keys, Dropped uint64
}

// storeMetrics emits the aralez_ratelimit_store_* series from a callback
// at scrape time.
type storeMetrics struct {
	stats atomic.Pointer[func() StoreStats]
}

var (
	storeUpDesc = prometheus.NewDesc("aralez_ratelimit_store_up",
		"1 when the last exchange with the shared rate-limit store succeeded, 0 while each instance enforces its limits alone.", nil, nil)
	storeInstancesDesc = prometheus.NewDesc("aralez_ratelimit_store_instances",
		"Instances sharing the rate-limit store, as counted at the last exchange.", nil, nil)
	storeExchangesDesc = prometheus.NewDesc("aralez_ratelimit_store_exchanges_total",
		"Exchanges of rate-limit counts with the shared store.", nil, nil)
	storeFailuresDesc = prometheus.NewDesc("aralez_ratelimit_store_errors_total",
		"Exchanges with the shared rate-limit store that failed or timed out.", nil, nil)
	storeOutagesDesc = prometheus.NewDesc("aralez_ratelimit_store_outages_total",
		"Times the shared rate-limit store became unreachable (each instance then enforces limit / rate_limit_fleet_size).", nil, nil)
	storeKeysDesc = prometheus.NewDesc("aralez_ratelimit_store_keys_total",
		"Rate-limit keys exchanged with the shared store.", nil, nil)
	storeDroppedDesc = prometheus.NewDesc("aralez_ratelimit_store_dropped_total",
		"Rate-limit keys that could not be queued for an exchange (queue full or contended; counted locally until a later request).", nil, nil)
)

// SetRateLimitStore makes the aralez_ratelimit_store_* series read f at
// scrape time (typically from (*ratelimit.Limiter).FleetStats). f must be
// safe to call from the scrape goroutine. nil means no series.
func (m *Metrics) SetRateLimitStore(f func() StoreStats) {
	if f == nil {
		m.store.stats.Store(nil)
		return
	}
	m.store.stats.Store(&f)
}

func (s *storeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{storeUpDesc, storeInstancesDesc, storeExchangesDesc,
		storeFailuresDesc, storeOutagesDesc, storeKeysDesc, storeDroppedDesc} {
		ch <- d
	}
}

func (s *storeMetrics) Collect(ch chan<- prometheus.Metric) {
	f := s.stats.Load()
	if f == nil {
		return
	}
	st := (*f)()
	up := 0.0
	if st.Up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(storeInstancesDesc, prometheus.GaugeValue, float64(st.Instances))
	for _, c := range []struct {
		d *prometheus.Desc
		v uint64
	}{
		{storeExchangesDesc, st.Exchanges}, {storeFailuresDesc, st.Failures}, {storeOutagesDesc, st.Outages},
		{storeKeysDesc, st.Keys}, {storeDroppedDesc, st.Dropped},
	} {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v))
	}
}
