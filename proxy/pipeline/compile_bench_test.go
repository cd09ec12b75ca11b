package pipeline

import (
	"fmt"
	"testing"

	"github.com/aralez-go/aralez/config"
)

// benchTable returns n hosts of one path with two servers and a header
// each way, the shape of the load suite's 10,000-host config; tag goes
// into host 42's response header.
func benchTable(n int, tag string) *config.Config {
	cfg := &config.Config{}
	for i := range n {
		v := "aralez"
		if i == 42 {
			v += tag
		}
		cfg.Upstreams.Hosts = append(cfg.Upstreams.Hosts, config.Host{
			Name: fmt.Sprintf("h%05d.bench.test", i),
			Paths: []config.Path{{
				Prefix:      "/",
				Servers:     []config.Server{{Address: "127.0.0.1:19001", Weight: 1}, {Address: "127.0.0.1:19002", Weight: 1}},
				LoadBalance: "round_robin",
				Policy: config.Policy{
					ServerHeaders: []config.Header{{Name: "X-Proxy-From", Value: "aralez"}},
					ClientHeaders: []config.Header{{Name: "X-Served-Via", Value: v}},
				},
			}},
		})
	}
	return cfg
}

// BenchmarkCompile compiles 10,000 hosts: all of them (Compile, a start
// or a change of what every host inherits), and after one host changed
// (Recompile from the previous snapshot, a reload's usual case; issue
// 16).
func BenchmarkCompile(b *testing.B) {
	res := newTestResolver()
	b.Run("all hosts", func(b *testing.B) {
		cfg := benchTable(10000, "")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Compile(cfg, res); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one host changed", func(b *testing.B) {
		cfgs := [2]*config.Config{benchTable(10000, "-a"), benchTable(10000, "-b")}
		prev, err := Compile(cfgs[1], res)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if prev, err = Recompile(prev, cfgs[i%2], res); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
