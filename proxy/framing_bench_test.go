package proxy

import "testing"

// BenchmarkFramerScan measures the framing check on a typical keep-alive
// GET head (issue 11): the cost it adds per request on HTTP/1.1.
func BenchmarkFramerScan(b *testing.B) {
	head := []byte(benchRequest)
	f := &framer{}
	f.startHead()
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		if _, err := f.scan(head); err != nil {
			b.Fatal(err)
		}
	}
}
