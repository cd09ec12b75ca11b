package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/aralez-go/aralez/metrics"
)

// The proxy resolves each backend's index once (at compile time) and
// records every finished request with Observe.
func ExampleMetrics_Observe() {
	m := metrics.New()
	up := m.UpstreamIndex("127.0.0.1:8000")
	m.Observe([]byte("GET"), metrics.ProtoHTTP11, 200, up, 0.004)
	m.Observe([]byte("GET"), metrics.ProtoHTTP2, 404, -1, 0.001)
	m.Reload(true)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "aralez_re") && !strings.HasSuffix(line, " 0") && !strings.HasPrefix(line, "aralez_response_latency") {
			fmt.Println(line)
		}
	}
	// Output:
	// aralez_reloads_total{result="ok"} 1
	// aralez_requests_by_method_total{method="GET"} 2
	// aralez_requests_by_upstream{upstream="127.0.0.1:8000"} 1
	// aralez_requests_by_version_total{version="HTTP/1.1"} 1
	// aralez_requests_by_version_total{version="HTTP/2.0"} 1
	// aralez_requests_total 2
	// aralez_responses_total{status="200"} 1
	// aralez_responses_total{status="404"} 1
}
