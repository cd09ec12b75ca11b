package config

import (
	"fmt"
	"strings"
	"testing"
)

// benchUpstreams builds an upstreams.yaml with n hosts of 3 paths each.
func benchUpstreams(n int) []byte {
	var b strings.Builder
	b.WriteString("provider: file\nclient_headers: [\"X-A: 1\"]\nupstreams:\n")
	for i := range n {
		fmt.Fprintf(&b, "  h%d.example.com:\n    rate_limit: 100\n    paths:\n", i)
		for _, p := range []string{"/", "/api", "/static"} {
			fmt.Fprintf(&b, "      %q:\n        servers: [\"10.0.%d.1:8080 weight=2\", \"10.0.%d.2:8080\"]\n        server_headers: [\"X-Forwarded-Proto: https\"]\n", p, i%250, i%250)
		}
	}
	return []byte(b.String())
}

func BenchmarkParseUpstreams(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		data := benchUpstreams(n)
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := ParseUpstreams("b.yaml", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkClone(b *testing.B) {
	u, err := ParseUpstreams("b.yaml", benchUpstreams(1000))
	if err != nil {
		b.Fatal(err)
	}
	c := &Config{Upstreams: *u}
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Clone()
	}
}

// BenchmarkSyntaxError measures a syntax error in a 10,000-host
// upstreams file, located by a few trial parses (syntax.go): at the end
// of the file, and in the first host.
func BenchmarkSyntaxError(b *testing.B) {
	data := benchUpstreams(10000)
	for _, c := range []struct {
		name string
		src  []byte
	}{
		{"at the end", append(append([]byte{}, data...), "  bad.test:\n   paths: {}\n"...)},
		{"first host", append([]byte("upstreams:\n  a.test:\n paths: 1\n"), data[strings.Index(string(data), "upstreams:\n")+len("upstreams:\n"):]...)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.src)))
			for b.Loop() {
				if _, err := ParseUpstreams("b.yaml", c.src); err == nil {
					b.Fatal("want a syntax error")
				}
			}
		})
	}
}
