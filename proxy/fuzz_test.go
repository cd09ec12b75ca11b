package proxy

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzServeFastHTTP feeds arbitrary request bytes through the parser and
// the whole fasthttp request path (route, policies, header hygiene,
// forward to an in-memory upstream): it must never panic, and whatever
// it answers must be a valid status.
func FuzzServeFastHTTP(f *testing.F) {
	for _, s := range []string{
		benchRequest,
		"GET /public/../admin HTTP/1.1\r\nHost: h0.bench.test\r\n\r\n",
		"GET /%2e%2e/%61pi HTTP/1.1\r\nHost: H0.BENCH.TEST.:80\r\nConnection: X-Forwarded-For, Via\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h0.bench.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET http://h0.bench.test/api?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
	} {
		f.Add(s)
	}
	pb := newPathBench(f, benchConfig(1), benchRequest, benchBody)
	f.Fuzz(func(t *testing.T, in string) {
		pb.ctx.Request.Reset()
		pb.ctx.Response.Reset()
		if err := pb.ctx.Request.Read(bufio.NewReader(bytes.NewReader([]byte(in)))); err != nil {
			return // fasthttp refused it; the server answers 400 itself
		}
		pb.e.ServeFastHTTP(&pb.ctx)
		if st := pb.ctx.Response.StatusCode(); st < 100 || st > 599 {
			t.Fatalf("status %d for %q", st, in)
		}
	})
}
