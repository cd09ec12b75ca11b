package accesslog

import (
	"context"
	"io"
	"testing"
)

var (
	benchHost = []byte("app.example.com")
	benchPath = []byte("/api/v1/users?id=42")
	benchUA   = []byte("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0")
)

// fillFast fills r the way the request path does: appends from views.
func fillFast(r *Record, id []byte) {
	r.Time = t0
	r.Status = 200
	r.Bytes = 512
	r.Duration = 0.00042
	r.Client = append(r.Client, "203.0.113.7"...)
	r.Method = append(r.Method, "GET"...)
	r.Host = append(r.Host, benchHost...)
	r.Path = append(r.Path, benchPath...)
	r.Protocol = append(r.Protocol, "HTTP/1.1"...)
	r.Upstream = append(r.Upstream, "127.0.0.1:8000"...)
	r.UserAgent = append(r.UserAgent, benchUA...)
	r.RequestID = append(r.RequestID, id...)
}

func BenchmarkLog(b *testing.B) {
	l, _ := New(io.Discard, Options{Mode: "all"})
	defer l.Shutdown(context.Background())
	id := AppendRequestID(nil)
	b.ReportAllocs()
	for b.Loop() {
		r := AcquireRecord()
		fillFast(r, id)
		l.Log(r)
	}
}

func BenchmarkLogParallel(b *testing.B) {
	l, _ := New(io.Discard, Options{Mode: "all"})
	defer l.Shutdown(context.Background())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := make([]byte, 0, 32)
		for pb.Next() {
			id = AppendRequestID(id[:0])
			r := AcquireRecord()
			fillFast(r, id)
			l.Log(r)
		}
	})
}

func BenchmarkAppendText(b *testing.B) {
	r := &Record{}
	fillFast(r, AppendRequestID(nil))
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendText(buf[:0], r)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	r := &Record{}
	fillFast(r, AppendRequestID(nil))
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], r)
	}
}

func BenchmarkAppendRequestID(b *testing.B) {
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRequestID(buf[:0])
	}
}
