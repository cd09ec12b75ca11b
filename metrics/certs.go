package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// certMetrics are the certificate collectors: expiry per served name and
// ACME outcomes.
type certMetrics struct {
	expiry atomic.Pointer[func(emit func(name string, notAfter time.Time))]
	// orders holds aralez_acme_orders_total by kind (obtain, renew) and
	// outcome (success, failure).
	orders [2][2]prometheus.Counter
}

var expiryDesc = prometheus.NewDesc("aralez_certificate_expiry_timestamp_seconds",
	"NotAfter of the certificate served for a name, in seconds since the Unix epoch.", []string{"name"}, nil)

// init creates the counters and registers the collectors on reg.
func (c *certMetrics) init(reg *prometheus.Registry) {
	orders := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aralez_acme_orders_total", Help: "ACME certificate orders by kind (obtain, renew) and outcome (success, failure).",
	}, []string{"kind", "outcome"})
	for i, kind := range []string{"obtain", "renew"} {
		for j, outcome := range []string{"success", "failure"} {
			c.orders[i][j] = orders.WithLabelValues(kind, outcome)
		}
	}
	reg.MustRegister(orders, &expiryCollector{c})
}

// SetCertificateExpiry makes aralez_certificate_expiry_timestamp_seconds
// read f at scrape time: f calls emit once per served name with the
// NotAfter of the certificate served for it (typically from
// (*edgetls.Store).Expiry). f must be safe to call from the scrape
// goroutine. nil means no series.
func (m *Metrics) SetCertificateExpiry(f func(emit func(name string, notAfter time.Time))) {
	if f == nil {
		m.certs.expiry.Store(nil)
		return
	}
	m.certs.expiry.Store(&f)
}

// ACMEOrder counts one ACME order in aralez_acme_orders_total: renewal
// tells a renewal from a first order, ok a success from a failure. It is
// safe for concurrent use.
func (m *Metrics) ACMEOrder(renewal, ok bool) {
	i, j := 0, 0
	if renewal {
		i = 1
	}
	if !ok {
		j = 1
	}
	m.certs.orders[i][j].Inc()
}

// expiryCollector emits the expiry series from the callback at scrape
// time, so that nothing needs syncing when certificates change.
type expiryCollector struct{ c *certMetrics }

func (e *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (e *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	f := e.c.expiry.Load()
	if f == nil {
		return
	}
	seen := make(map[string]struct{})
	(*f)(func(name string, notAfter time.Time) {
		if _, dup := seen[name]; dup {
			return
		}
		seen[name] = struct{}{}
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(notAfter.Unix()), name)
	})
}
