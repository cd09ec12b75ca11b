package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRenderCPU(t *testing.T) {
	t.Parallel()
	rows := aggregate([]sample{
		kept(1, "h1 100B c50", "direct", 1, 100000, 0, 1),
		// 1 CPU-s over 40,000 requests: 10 µs user, 15 µs system.
		kept(1, "h1 100B c50", "nginx", 1, 40000, 1, 1),
		kept(1, "h1 100B c50", "aralez", 1, 20000, 1, 1),
	})
	sysc := map[string]*sysCount{
		"h1 100B c50|nginx":  {tool: "perf", total: 20200, requests: 4000, calls: map[string]float64{"recvfrom": 8040, "writev": 8040, "getsockopt": 4000}},
		"h1 100B c50|aralez": {tool: "perf", err: "perf exited"},
		"h1 100B c50|caddy":  {tool: "strace", total: 1152, requests: 58, calls: map[string]float64{"nanosleep": 343}},
	}
	rows = append(rows, aggregate([]sample{kept(1, "h1 100B c50", "caddy", 1, 10000, 1, 1)})...)
	var b bytes.Buffer
	renderCPU(&b, rows, sysc, "perf")
	out := b.String()
	wantAll(t, "renderCPU", out,
		"| h1 100B c50 | nginx | 10.0 | 15.0 | 25.0 | 5.05 | recvfrom 2.01, writev 2.01, getsockopt 1.00 |",
		"| h1 100B c50 | aralez | 20.0 | 30.0 | 50.0 | not counted | - |",
		"| h1 100B c50 | caddy | 40.0 | 60.0 | 100.0 | 19.86 (only 58 requests) | nanosleep 5.91 |",
		"perf stat")
	if strings.Contains(out, "| direct |") {
		t.Errorf("renderCPU has a direct row:\n%s", out)
	}
	b.Reset()
	renderCPU(&b, rows, nil, "off")
	if !strings.Contains(b.String(), "| h1 100B c50 | nginx | 10.0 | 15.0 | 25.0 | - | - |") || !strings.Contains(b.String(), "SYSCALLS=1") {
		t.Errorf("renderCPU without syscalls = %s; want dashes and the SYSCALLS=1 hint", b.String())
	}
}

func TestRenderCache(t *testing.T) {
	t.Parallel()
	rows := aggregate([]sample{
		kept(10, "cache hit 100B c50", "direct", 1, 100000, 0, 1),
		kept(10, "cache hit 100B c50", "nginx", 1, 60000, 1, 1),
		kept(10, "cache hit 100B c50", "haproxy", 1, 50000, 1, 1),
		kept(10, "cache hit 100B c50", "aralez", 1, 20000, 1, 1),
	})
	for _, r := range rows {
		switch r.target {
		case "nginx": // hits: one request reached an upstream
			r.up1, r.up2 = []float64{1}, []float64{0}
		case "haproxy": // a cache that did not work: 80 % reached the upstreams
			r.up1, r.up2 = []float64{20000}, []float64{20000}
		}
	}
	var b bytes.Buffer
	renderCache(&b, rows)
	out := b.String()
	wantAll(t, "renderCache", out,
		"| cache hit 100B c50 | nginx | 60000 | 1 | 100.0 % |",
		"| cache hit 100B c50 | haproxy | 50000 | 40000 | 20.0 % |",
		"| cache hit 100B c50 | aralez | 20000 | 20000 | 0.0 % |",
		`**aralez answered "cache hit 100B c50" as cache misses: its response cache is not in this binary`,
		`**haproxy's cache did not answer "cache hit 100B c50": check its config**`)
	if strings.Contains(out, "nginx's cache did not") || strings.Contains(out, "| direct |") {
		t.Errorf("renderCache flags nginx or lists direct:\n%s", out)
	}
	if !cacheCase("cache hit 4KiB c50") || cacheCase("h1 100B c50") {
		t.Errorf("cacheCase misjudges the case ids")
	}
}
