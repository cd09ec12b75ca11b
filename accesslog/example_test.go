package accesslog_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aralez-go/aralez/accesslog"
)

// The request path fills a pooled Record from byte views and hands it to
// Log; the writer goroutine formats and writes it.
func ExampleLogger_Log() {
	l, err := accesslog.New(os.Stdout, accesslog.Options{Mode: accesslog.ModeError})
	if err != nil {
		panic(err)
	}
	for _, status := range []int{200, 502} {
		if !l.Enabled(status) { // ModeError: 200 is not logged, skip filling
			continue
		}
		r := accesslog.AcquireRecord()
		r.Time = time.Date(2026, 11, 29, 17, 31, 49, 0, time.UTC)
		r.Status = status
		r.Bytes = 17
		r.Duration = 0.0125
		r.Client = append(r.Client, "203.0.113.7"...)
		r.Method = append(r.Method, "GET"...)
		r.Host = append(r.Host, "app.example.com"...)
		r.Path = append(r.Path, "/api"...)
		r.Protocol = append(r.Protocol, "HTTP/1.1"...)
		r.Upstream = append(r.Upstream, "127.0.0.1:8000"...)
		r.RequestID = append(r.RequestID, "9f86d081884c7d65000000000000002a"...)
		l.Log(r)
	}
	l.Shutdown(context.Background())
	fmt.Println("dropped:", l.Dropped())
	// Output:
	// 2026-11-29T17:31:49.000Z 203.0.113.7 GET app.example.com /api HTTP/1.1 502 17 0.012500 127.0.0.1:8000 - 9f86d081884c7d65000000000000002a -
	// dropped: 0
}

func ExampleAppendRequestID() {
	id := accesslog.AppendRequestID(make([]byte, 0, 32))
	fmt.Println(len(id))
	// Output: 32
}
