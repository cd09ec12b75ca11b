package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
)

// benchHostsYAML writes hosts from to to-1 of the load suite's shape (one
// path, two servers, a header each way), indented; host edited says tag
// in its response header.
func benchHostsYAML(b *strings.Builder, from, to int, indent string, servers [2]string, edited int, tag string) {
	for i := from; i < to; i++ {
		via := "aralez"
		if i == edited {
			via += tag
		}
		fmt.Fprintf(b, "%sh%05d.bench.test:\n%s  paths:\n%s    \"/\":\n%s      servers: [%q, %q]\n%s      server_headers: [\"X-Proxy-From: aralez\"]\n%s      client_headers: [\"X-Served-Via: %s\"]\n",
			indent, i, indent, indent, indent, servers[0], servers[1], indent, indent, via)
	}
}

// BenchmarkReload measures a SIGHUP reload of 10,000 hosts in the
// process, from the re-read of the files to the swap, as the reload loop
// runs it (issue 16): one host edited in a spread of 100 conf.d files of
// 100 hosts (one file parsed), and one host added to a single upstreams
// file (the whole file parsed). parse-ms/op and merge-ms/op are the
// reload's own LoadStats; rest-ms/op is all but the parse (merge,
// compile with the digest, swap). cpu-ms/op is the process's user and
// system time per reload, collector included (the measure that a busy
// shared machine disturbs least). The file's write is not timed.
func BenchmarkReload(b *testing.B) {
	var servers [2]string
	for i := range servers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		b.Cleanup(srv.Close)
		servers[i] = strings.TrimPrefix(srv.URL, "http://")
	}
	const hosts, files = 10000, 100
	for _, bc := range []struct {
		name   string
		spread bool
	}{{"conf.d one host edited", true}, {"whole file one host added", false}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			write := func(name, content string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			write("main.yaml", fmt.Sprintf("proxy_address_http: %q\nupstreams_conf: upstreams.yaml\nlog_level: info\n", freeAddr(b)))
			var edit func(n int)
			if bc.spread {
				if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
					b.Fatal(err)
				}
				write("upstreams.yaml", "provider: file\nupstreams: {}\n")
				per := hosts / files
				file := func(i, n int) string {
					var s strings.Builder
					benchHostsYAML(&s, i*per, (i+1)*per, "", servers, 42*per, fmt.Sprint(n))
					return s.String()
				}
				for i := range files {
					write(fmt.Sprintf("conf.d/%03d.yaml", i), file(i, 0))
				}
				edit = func(n int) { write("conf.d/042.yaml", file(42, n)) }
			} else {
				table := func(n int) string {
					var s strings.Builder
					s.WriteString("provider: file\nupstreams:\n")
					benchHostsYAML(&s, 0, hosts+n%2, "  ", servers, -1, "")
					return s.String()
				}
				write("upstreams.yaml", table(0))
				edit = func(n int) { write("upstreams.yaml", table(n)) }
			}
			mainPath := filepath.Join(dir, "main.yaml")
			parsed := new(config.Cache)
			cfg, err := parsed.Load(mainPath)
			if err != nil {
				b.Fatal(err)
			}
			s, err := newProcServer(cfg, mainPath, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, nil, parsed)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.frontLn.Close() })
			var parse, merge, cpu time.Duration
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				n++
				edit(n)
				gen := s.gen
				b.StartTimer()
				c0 := processCPU()
				s.onHUP()
				cpu += processCPU() - c0
				if s.gen != gen+1 || len(s.cfg.Upstreams.Hosts) < hosts {
					b.Fatalf("reload %d: generation %d, %d hosts; want generation %d and %d hosts", n, s.gen, len(s.cfg.Upstreams.Hosts), gen+1, hosts)
				}
				st := s.cfg.Upstreams.Stats
				if bc.spread && st.Parsed != 1 {
					b.Fatalf("reload %d parsed %d files; want 1", n, st.Parsed)
				}
				parse += st.Parse
				merge += st.Merge
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(n) / 1e6 }
			b.ReportMetric(ms(parse), "parse-ms/op")
			b.ReportMetric(ms(merge), "merge-ms/op")
			b.ReportMetric(float64(b.Elapsed())/float64(n)/1e6-ms(parse), "rest-ms/op")
			b.ReportMetric(ms(cpu), "cpu-ms/op")
		})
	}
}

// processCPU returns the user and system time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
