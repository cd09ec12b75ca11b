package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics from a real server on 127.0.0.1 and parses the
// text format.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics = %d; want 200", resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing scrape: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the series of family name whose labels are
// exactly labels ("k=v" pairs), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := strings.Join(labels, ",")
	for _, mt := range f.Metric {
		var got []string
		for _, lp := range mt.Label {
			got = append(got, lp.GetName()+"="+lp.GetValue())
		}
		if strings.Join(got, ",") != want {
			continue
		}
		switch {
		case mt.Counter != nil:
			return mt.Counter.GetValue(), true
		case mt.Gauge != nil:
			return mt.Gauge.GetValue(), true
		case mt.Histogram != nil:
			return float64(mt.Histogram.GetSampleCount()), true
		case mt.Untyped != nil:
			return mt.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestScrapeAfterKnownMix(t *testing.T) {
	t.Parallel()
	m := New()
	a := m.UpstreamIndex("10.0.0.1:80")
	b := m.UpstreamIndex("10.0.0.2:80")
	if again := m.UpstreamIndex("10.0.0.1:80"); again != a {
		t.Fatalf("UpstreamIndex(same addr) = %d; want %d", again, a)
	}
	for range 5 {
		m.Observe([]byte("GET"), ProtoHTTP11, 200, a, 0.002)
	}
	for range 3 {
		m.Observe([]byte("POST"), ProtoHTTP2, 502, b, 0.3)
	}
	m.Observe([]byte("BREW"), ProtoHTTP10, 404, -1, 0.0001)
	m.Observe([]byte("HEAD"), 9, 999, 1000, 7)
	m.Retry()
	m.Retry()
	m.RateLimited()
	m.AuthRejected()
	m.AuthRejected()
	m.AuthRejected()
	m.Reload(true)
	m.Reload(true)
	m.Reload(false)
	m.SetGeneration(7)
	m.SessionOpened()
	m.SessionOpened()
	m.SessionClosed()
	m.SetLoggingErrors(func() uint64 { return 42 })
	m.SetUpstreamHealth(func(emit func(string, bool)) {
		emit("10.0.0.1:80", true)
		emit("10.0.0.2:80", false)
		emit("10.0.0.1:80", true) // shared by two routes: reported once
	})

	fams := scrape(t, m)
	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"requests", "aralez_requests_total", nil, 10},
		{"errors", "aralez_errors_total", nil, 4},
		{"status 200", "aralez_responses_total", []string{"status=200"}, 5},
		{"status 502", "aralez_responses_total", []string{"status=502"}, 3},
		{"status 404", "aralez_responses_total", []string{"status=404"}, 1},
		{"status other", "aralez_responses_total", []string{"status=other"}, 1},
		{"GET", "aralez_requests_by_method_total", []string{"method=GET"}, 5},
		{"POST", "aralez_requests_by_method_total", []string{"method=POST"}, 3},
		{"HEAD", "aralez_requests_by_method_total", []string{"method=HEAD"}, 1},
		{"OTHER", "aralez_requests_by_method_total", []string{"method=OTHER"}, 1},
		{"PUT unused", "aralez_requests_by_method_total", []string{"method=PUT"}, 0},
		{"HTTP/1.1", "aralez_requests_by_version_total", []string{"version=HTTP/1.1"}, 5},
		{"HTTP/2.0", "aralez_requests_by_version_total", []string{"version=HTTP/2.0"}, 3},
		{"HTTP/1.0", "aralez_requests_by_version_total", []string{"version=HTTP/1.0"}, 1},
		{"Unknown", "aralez_requests_by_version_total", []string{"version=Unknown"}, 1},
		{"upstream a", "aralez_requests_by_upstream", []string{"upstream=10.0.0.1:80"}, 5},
		{"upstream b", "aralez_requests_by_upstream", []string{"upstream=10.0.0.2:80"}, 3},
		{"latency count", "aralez_response_latency_seconds", nil, 10},
		{"retries", "aralez_retries_total", nil, 2},
		{"rate limited", "aralez_rate_limited_total", nil, 1},
		{"auth rejected", "aralez_auth_rejected_total", nil, 3},
		{"reloads ok", "aralez_reloads_total", []string{"result=ok"}, 2},
		{"reloads failed", "aralez_reloads_total", []string{"result=failed"}, 1},
		{"generation", "aralez_config_generation", nil, 7},
		{"sessions", "aralez_active_sessions", nil, 1},
		{"logging errors", "aralez_logging_errors", nil, 42},
		{"up a", "aralez_upstream_up", []string{"upstream=10.0.0.1:80"}, 1},
		{"up b", "aralez_upstream_up", []string{"upstream=10.0.0.2:80"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := value(fams, tt.metric, tt.labels...)
			if !ok || got != tt.want {
				t.Errorf("%s%v = %v (present %v); want %v", tt.metric, tt.labels, got, ok, tt.want)
			}
		})
	}
	if n := len(fams["aralez_upstream_up"].GetMetric()); n != 2 {
		t.Errorf("aralez_upstream_up series = %d; want 2", n)
	}

	// Histogram buckets: 5 × 2ms, 1 × 0.1ms, 3 × 300ms, 1 × 7s.
	h := fams["aralez_response_latency_seconds"].GetMetric()[0].GetHistogram()
	wantCum := map[float64]uint64{0.001: 1, 0.005: 6, 0.25: 6, 0.5: 9, 5: 9}
	for _, bk := range h.GetBucket() {
		if w, ok := wantCum[bk.GetUpperBound()]; ok && bk.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v = %d; want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), w)
		}
	}
	if s := h.GetSampleSum(); s < 7.9 || s > 7.92 {
		t.Errorf("latency sum = %v; want ≈ 7.9101", s)
	}
	if v, _ := value(fams, "aralez_memory_bytes"); v <= 0 {
		t.Errorf("aralez_memory_bytes = %v; want > 0", v)
	}
	if v, _ := value(fams, "aralez_open_files"); v < 3 {
		t.Errorf("aralez_open_files = %v; want >= 3", v)
	}
	m.SetSessions(func() int64 { return 12 })
	if v, _ := value(scrape(t, m), "aralez_active_sessions"); v != 12 {
		t.Errorf("aralez_active_sessions with SetSessions = %v; want 12", v)
	}
	m.SetSessions(nil)
	if v, _ := value(scrape(t, m), "aralez_active_sessions"); v != 1 {
		t.Errorf("aralez_active_sessions after SetSessions(nil) = %v; want 1", v)
	}
	if fams["go_goroutines"] == nil || fams["process_open_fds"] == nil {
		t.Errorf("go and process collectors missing")
	}
}

func TestRetainUpstreams(t *testing.T) {
	t.Parallel()
	m := New()
	a := m.UpstreamIndex("127.0.0.1:1")
	b := m.UpstreamIndex("127.0.0.1:2")
	m.Observe([]byte("GET"), ProtoHTTP11, 200, a, 0.01)
	m.Observe([]byte("GET"), ProtoHTTP11, 200, b, 0.01)

	m.RetainUpstreams([]string{"127.0.0.1:1"})
	m.Observe([]byte("GET"), ProtoHTTP11, 200, b, 0.01) // removed: not counted
	fams := scrape(t, m)
	if _, ok := value(fams, "aralez_requests_by_upstream", "upstream=127.0.0.1:2"); ok {
		t.Errorf("removed upstream still exported")
	}
	if v, _ := value(fams, "aralez_requests_by_upstream", "upstream=127.0.0.1:1"); v != 1 {
		t.Errorf("kept upstream = %v; want 1", v)
	}

	if got := m.UpstreamIndex("127.0.0.1:2"); got != b {
		t.Fatalf("UpstreamIndex(re-added) = %d; want %d", got, b)
	}
	m.Observe([]byte("GET"), ProtoHTTP11, 200, b, 0.01)
	fams = scrape(t, m)
	if v, _ := value(fams, "aralez_requests_by_upstream", "upstream=127.0.0.1:2"); v != 1 {
		t.Errorf("re-added upstream = %v; want 1 (fresh series)", v)
	}
}

func TestObserveConcurrent(t *testing.T) {
	t.Parallel()
	m := New()
	const workers, per = 4, 500
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			idx := m.UpstreamIndex(fmt.Sprintf("127.0.0.1:%d", w))
			for i := range per {
				m.Observe([]byte("GET"), ProtoHTTP11, 200+i%3, idx, 0.001)
			}
		}()
	}
	for range workers {
		<-done
	}
	fams := scrape(t, m)
	if v, _ := value(fams, "aralez_requests_total"); v != workers*per {
		t.Errorf("aralez_requests_total = %v; want %d", v, workers*per)
	}
	sum := 0.0
	for _, c := range []string{"200", "201", "202"} {
		v, _ := value(fams, "aralez_responses_total", "status="+c)
		sum += v
	}
	if sum != workers*per {
		t.Errorf("sum of responses = %v; want %d", sum, workers*per)
	}
}

// TestCacheMetrics checks the response cache's series (issue 15): the
// storage figures read at scrape time and the per-route status counters.
func TestCacheMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	fams := scrape(t, m)
	if v, ok := value(fams, "aralez_cache_size_bytes"); !ok || v != 0 {
		t.Errorf("aralez_cache_size_bytes without a source = %v, %v; want 0, present", v, ok)
	}
	m.SetCacheStats(func() CacheStats { return CacheStats{SizeBytes: 1000, Items: 3, EvictedBytes: 500, EvictedItems: 2} })
	api := m.CacheRouteIndex("ex.com/api")
	root := m.CacheRouteIndex("ex.com/")
	if again := m.CacheRouteIndex("ex.com/api"); again != api {
		t.Fatalf("CacheRouteIndex(same) = %d; want %d", again, api)
	}
	for range 3 {
		m.ObserveCache(api, CacheHit)
	}
	m.ObserveCache(api, CacheMiss)
	m.ObserveCache(root, CacheStale)
	m.ObserveCache(root, CacheRevalidated)
	m.ObserveCache(99, CacheHit) // unknown: ignored
	fams = scrape(t, m)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"aralez_cache_size_bytes", nil, 1000},
		{"aralez_cache_items", nil, 3},
		{"aralez_cache_evicted_bytes_total", nil, 500},
		{"aralez_cache_evicted_items_total", nil, 2},
		{"aralez_cache_requests_total", []string{"route=ex.com/api", "status=hit"}, 3},
		{"aralez_cache_requests_total", []string{"route=ex.com/api", "status=miss"}, 1},
		{"aralez_cache_requests_total", []string{"route=ex.com/", "status=stale"}, 1},
		{"aralez_cache_requests_total", []string{"route=ex.com/", "status=revalidated"}, 1},
		{"aralez_cache_requests_total", []string{"route=ex.com/", "status=bypass"}, 0},
	} {
		if v, ok := value(fams, tc.name, tc.labels...); !ok || v != tc.want {
			t.Errorf("%s%v = %v, %v; want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	m.RetainCacheRoutes([]string{"ex.com/"})
	fams = scrape(t, m)
	if _, ok := value(fams, "aralez_cache_requests_total", "route=ex.com/api", "status=hit"); ok {
		t.Error("a removed route's series is still exported")
	}
	m.ObserveCache(api, CacheHit) // removed: not counted, no panic
	if i := m.CacheRouteIndex("ex.com/api"); i != api {
		t.Errorf("CacheRouteIndex(re-added) = %d; want the reserved %d", i, api)
	}
}

// TestCertificateMetrics checks the expiry series and the ACME order
// counters (issue 13).
func TestCertificateMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	exp := time.Unix(1900000000, 0)
	m.SetCertificateExpiry(func(emit func(string, time.Time)) {
		emit("a.example.com", exp)
		emit("*.example.com", exp.Add(time.Hour))
		emit("a.example.com", exp) // reported once
	})
	m.ACMEOrder(false, true)
	m.ACMEOrder(true, true)
	m.ACMEOrder(true, false)
	m.ACMEOrder(true, false)
	fams := scrape(t, m)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"aralez_certificate_expiry_timestamp_seconds", []string{"name=a.example.com"}, 1900000000},
		{"aralez_certificate_expiry_timestamp_seconds", []string{"name=*.example.com"}, 1900003600},
		{"aralez_acme_orders_total", []string{"kind=obtain", "outcome=success"}, 1},
		{"aralez_acme_orders_total", []string{"kind=renew", "outcome=success"}, 1},
		{"aralez_acme_orders_total", []string{"kind=renew", "outcome=failure"}, 2},
		{"aralez_acme_orders_total", []string{"kind=obtain", "outcome=failure"}, 0},
	} {
		if got, ok := value(fams, tc.name, tc.labels...); !ok || got != tc.want {
			t.Errorf("%s%v = %v, %v; want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if n := len(fams["aralez_certificate_expiry_timestamp_seconds"].GetMetric()); n != 2 {
		t.Errorf("expiry series = %d; want 2", n)
	}
}

// TestRateLimitStoreMetrics checks the aralez_ratelimit_store_* series
// read from the callback at scrape time (issue 17).
func TestRateLimitStoreMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	if _, ok := value(scrape(t, m), "aralez_ratelimit_store_up"); ok {
		t.Error("aralez_ratelimit_store_up present without a store")
	}
	m.SetRateLimitStore(func() StoreStats {
		return StoreStats{Up: false, Instances: 3, Exchanges: 40, Failures: 5, Outages: 1, Keys: 120, Dropped: 2}
	})
	fams := scrape(t, m)
	for name, want := range map[string]float64{
		"aralez_ratelimit_store_up": 0, "aralez_ratelimit_store_instances": 3,
		"aralez_ratelimit_store_exchanges_total": 40, "aralez_ratelimit_store_errors_total": 5,
		"aralez_ratelimit_store_outages_total": 1, "aralez_ratelimit_store_keys_total": 120,
		"aralez_ratelimit_store_dropped_total": 2,
	} {
		if got, ok := value(fams, name); !ok || got != want {
			t.Errorf("%s = %v, %v; want %v", name, got, ok, want)
		}
	}
}
