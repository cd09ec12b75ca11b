package metrics

import "testing"

func BenchmarkObserve(b *testing.B) {
	m := New()
	up := m.UpstreamIndex("127.0.0.1:8080")
	get := []byte("GET")
	m.Observe(get, ProtoHTTP11, 200, up, 0.001) // first sight of 200 creates its child
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(get, ProtoHTTP11, 200, up, 0.0042)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	m := New()
	up := m.UpstreamIndex("127.0.0.1:8080")
	m.Observe([]byte("GET"), ProtoHTTP2, 200, up, 0.001)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		get := []byte("GET")
		for pb.Next() {
			m.Observe(get, ProtoHTTP2, 200, up, 0.0042)
		}
	})
}
