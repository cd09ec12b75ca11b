package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// benchUpstreams builds an upstreams.yaml with n hosts of 3 paths each.
func benchUpstreams(n int) []byte {
	var b strings.Builder
	b.WriteString("provider: file\nclient_headers: [\"X-A: 1\"]\nupstreams:\n")
	benchHosts(&b, 0, n, "  ", "")
	return []byte(b.String())
}

// benchHosts writes hosts from to to-1, indented, of 3 paths each; tag
// goes into a header value, to make an edited copy.
func benchHosts(b *strings.Builder, from, to int, indent, tag string) {
	for i := from; i < to; i++ {
		fmt.Fprintf(b, "%sh%d.example.com:\n%s  rate_limit: 100\n%s  paths:\n", indent, i, indent, indent)
		for _, p := range []string{"/", "/api", "/static"} {
			fmt.Fprintf(b, "%s    %q:\n%s      servers: [\"10.0.%d.1:8080 weight=2\", \"10.0.%d.2:8080\"]\n%s      server_headers: [\"X-Forwarded-Proto: https%s\"]\n",
				indent, p, indent, i%250, i%250, indent, tag)
		}
	}
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

// benchSpread writes the 10,000 hosts of benchUpstreams as conf.d/NNN.yaml
// files of 100 hosts each beside an upstreams.yaml with the global keys
// only, and returns the upstreams file's path and a function that edits
// one host of one file (each call toggles it).
func benchSpread(b *testing.B) (string, func()) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "upstreams.yaml")
	if err := os.WriteFile(path, []byte("provider: file\nclient_headers: [\"X-A: 1\"]\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	file := func(i int, tag string) []byte {
		var s strings.Builder
		benchHosts(&s, i*100, i*100+100, "", "")
		if tag != "" {
			benchHosts(&s, 10000+i, 10000+i+1, "", tag)
		}
		return []byte(s.String())
	}
	for i := range 100 {
		if err := os.WriteFile(filepath.Join(dir, "conf.d", fmt.Sprintf("%03d.yaml", i)), file(i, ""), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	edits := 0
	edit := func() {
		edits++
		if err := os.WriteFile(filepath.Join(dir, "conf.d/042.yaml"), file(42, strconv.Itoa(edits)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return path, edit
}

// BenchmarkLoadConfD loads a 10,000-host table spread over 100 conf.d
// files (issue 16): without a cache (every file parsed), through a
// cache with nothing changed, and through a cache after one file was
// edited (the file's write is not timed).
func BenchmarkLoadConfD(b *testing.B) {
	path, edit := benchSpread(b)
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := LoadUpstreams(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		var c Cache
		if _, err := c.LoadUpstreams(path); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.LoadUpstreams(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one file edited", func(b *testing.B) {
		var c Cache
		if _, err := c.LoadUpstreams(path); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			edit()
			b.StartTimer()
			u, err := c.LoadUpstreams(path)
			if err != nil || u.Stats.Parsed != 1 {
				b.Fatalf("LoadUpstreams: %d parsed, %v; want 1 parsed", u.Stats.Parsed, err)
			}
		}
	})
}

// BenchmarkUpstreamsSum measures the sum of a 10,000-host table (the
// reload digest and the compile's reuse key).
func BenchmarkUpstreamsSum(b *testing.B) {
	u, err := ParseUpstreams("b.yaml", benchUpstreams(10000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		u.Sum()
	}
}

// BenchmarkValidate measures Upstreams.Validate on 10,000 hosts.
func BenchmarkValidate(b *testing.B) {
	u, err := ParseUpstreams("b.yaml", benchUpstreams(10000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := u.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadTogether loads a changed 10,000-host upstreams file
// through one Cache from two goroutines at once, as the file watcher and
// SIGHUP do after one edit (issue 16). cpu-ms/op is the process's user
// and system time per pair of loads: one parse's worth when the second
// load takes the first one's parse. The file's write is not timed.
func BenchmarkLoadTogether(b *testing.B) {
	path := filepath.Join(b.TempDir(), "upstreams.yaml")
	data := [2][]byte{benchUpstreams(10000), benchUpstreams(10001)}
	var c Cache
	var cpu time.Duration
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		n++
		if err := os.WriteFile(path, data[n%2], 0o644); err != nil {
			b.Fatal(err)
		}
		c0 := processCPU()
		b.StartTimer()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if _, err := c.LoadUpstreams(path); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		cpu += processCPU() - c0
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu)/float64(n)/1e6, "cpu-ms/op")
}

// processCPU returns the user and system time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
