package main

import (
	"bytes"
	"strings"
	"testing"
)

// kept returns a kept window of target in case id: requests answered,
// proxy CPU seconds split 40 % user / 60 % system, and p99 in µs.
func kept(scen int, id, target string, round int, requests, cpu, p99 float64) sample {
	kind := kindPeer
	switch {
	case target == "direct":
		kind = kindDirect
	case strings.HasPrefix(target, "aralez"):
		kind = kindOurs
	}
	return sample{Scenario: scen, Case: id, Target: target, Kind: kind, Round: round, Kept: true,
		RPS: requests / 2, Requests: requests, Elapsed: 2, ProxyCPU: cpu, UserCPU: 0.4 * cpu, SysCPU: 0.6 * cpu,
		P99us: p99, Up1: requests / 2, Up2: requests / 2, Pinned: "0"}
}

// wantAll checks that out, the output of what, has every line of want.
func wantAll(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q; got:\n%s", what, w, out)
		}
	}
}

func names(ts []*target) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.name)
	}
	return strings.Join(out, " ")
}

func TestRoundOrder(t *testing.T) {
	t.Parallel()
	var ts []*target
	for _, n := range []string{"direct", "nginx", "aralez", baseName} {
		ts = append(ts, &target{targetSpec: targetSpec{name: n}})
	}
	tests := []struct {
		round int
		want  string
	}{
		// The three others rotate; the base sits after aralez in odd
		// rounds and before it in even ones.
		{1, "direct nginx aralez aralez-base"},
		{2, "nginx aralez-base aralez direct"},
		{3, "aralez aralez-base direct nginx"},
		{4, "direct nginx aralez-base aralez"},
	}
	for _, tt := range tests {
		if got := names(roundOrder(ts, tt.round)); got != tt.want {
			t.Errorf("roundOrder(round %d) = %s; want %s", tt.round, got, tt.want)
		}
	}
	if got := names(roundOrder(ts[:3], 2)); got != "nginx aralez direct" {
		t.Errorf("roundOrder(no base, round 2) = %s; want plain rotation", got)
	}
	if got := names(roundOrder([]*target{ts[1], ts[3]}, 1)); got != "nginx aralez-base" {
		t.Errorf("roundOrder(base without aralez) = %s; want the base last", got)
	}
}

func TestRenderAB(t *testing.T) {
	t.Parallel()
	var ss []sample
	// Round 1: new 10 % more requests on the same CPU; round 2: 10 % fewer.
	for r, f := range map[int]float64{1: 1.1, 2: 0.9, 3: 1.2} {
		ss = append(ss, kept(1, "h1 100B c50", "aralez", r, 20000*f, 1, 2000),
			kept(1, "h1 100B c50", baseName, r, 20000, 1, 4000))
	}
	ss = append(ss, kept(1, "h1 100B c256", "aralez", 1, 100, 1, 1)) // no base row: no A/B line
	var b bytes.Buffer
	renderAB(&b, aggregate(ss), 20)
	out := b.String()
	wantAll(t, "renderAB", out,
		"| case | req/s | req per proxy CPU-s | user µs/req | sys µs/req | p99 | rounds with more req per CPU-s |",
		// The rounds spread 27 % around the median: "?" marks it.
		"| h1 100B c50 | 1.10x? (0.90–1.20) | 1.10x? (0.90–1.20) |",
		// CPU per request is the inverse: 1/1.1, 1/0.9, 1/1.2.
		"| 0.91x? (0.83–1.11) | 0.91x? (0.83–1.11) | 0.50x (0.50–0.50) | 2 of 3 |")
	if strings.Contains(out, "c256") {
		t.Errorf("renderAB has a case without a base row:\n%s", out)
	}
	b.Reset()
	renderAB(&b, aggregate(ss[:1]), 20)
	if b.Len() != 0 {
		t.Errorf("renderAB without a base = %q; want nothing", b.String())
	}
}

func TestRenderSweep(t *testing.T) {
	t.Parallel()
	var ss []sample
	for _, c := range []struct {
		id          string
		ng, ar, dir float64
	}{{"h1 sweep c50", 30000, 27000, 50000}, {"h1 sweep c256", 30000, 18000, 45000}, {"h1 sweep c1000", 27000, 13500, 40000}} {
		ss = append(ss, kept(11, c.id, "direct", 1, c.dir, 0, 1), kept(11, c.id, "nginx", 1, c.ng, 1, 1), kept(11, c.id, "aralez", 1, c.ar, 1, 1))
	}
	rows := aggregate(ss)
	var b bytes.Buffer
	renderSweep(&b, rows, 20)
	out := b.String()
	wantAll(t, "renderSweep", out,
		"| connections | nginx | aralez | aralez ÷ nginx |",
		"| 50 | 30.0k | 27.0k | 0.90x |",
		"| 256 | 30.0k (+0%) | 18.0k (-33%) | 0.60x |",
		"| 1000 | 27.0k (-10%) | 13.5k (-50%) | 0.50x |")
	if strings.Contains(out, "direct") {
		t.Errorf("renderSweep has a direct column:\n%s", out)
	}
	if got := laterGoals[1].judge(rows, 20); !strings.HasPrefix(got, "**not met**") || !strings.Contains(got, "h1 sweep c1000: aralez / nginx = 0.50x") {
		t.Errorf("sweep vs nginx goal = %q; want not met with c1000 at 0.50x", got)
	}
	if got := laterGoals[2].judge(rows, 20); !strings.HasPrefix(got, "**not met**") || !strings.Contains(got, "h1 sweep c256 = 0.67x of c50") {
		t.Errorf("sweep self goal = %q; want not met, c256 at 0.67x of c50", got)
	}
	if got := sweepConns("h1 sweep c10000"); got != 10000 {
		t.Errorf("sweepConns = %d; want 10000", got)
	}
}

func TestLaterGoals(t *testing.T) {
	t.Parallel()
	if got := laterGoals[0].judge(nil, 20); !strings.HasPrefix(got, "not measured") {
		t.Errorf("cache goal without rows = %q; want not measured", got)
	}
	// aralez answers misses: every request reaches the upstreams.
	miss := aggregate([]sample{kept(10, "cache hit 100B c50", "nginx", 1, 60000, 1, 1), kept(10, "cache hit 100B c50", "aralez", 1, 20000, 1, 1)})
	for _, r := range miss {
		if r.target == "nginx" {
			r.up1, r.up2 = []float64{0}, []float64{0}
		}
	}
	if got := laterGoals[0].judge(miss, 20); !strings.Contains(got, "not measurable yet") || strings.Contains(got, "met:") {
		t.Errorf("cache goal with misses = %q; want not measurable yet", got)
	}
	hit := aggregate([]sample{kept(10, "cache hit 100B c50", "nginx", 1, 40000, 1, 1), kept(10, "cache hit 100B c50", "aralez", 1, 80000, 1, 1)})
	for _, r := range hit {
		r.up1, r.up2 = []float64{0}, []float64{0}
	}
	if got := laterGoals[0].judge(hit, 20); !strings.HasPrefix(got, "met") || !strings.Contains(got, "2.00x") {
		t.Errorf("cache goal with hits at 2x = %q; want met at 2.00x", got)
	}
	// User µs per request: aralez 0.4 CPU-s over 20,000 vs nginx 0.4 over 40,000.
	user := aggregate([]sample{kept(1, "h1 100B c50", "nginx", 1, 40000, 1, 1), kept(1, "h1 100B c50", "aralez", 1, 20000, 1, 1)})
	if got := laterGoals[3].judge(user, 20); !strings.HasPrefix(got, "**not met**") || !strings.Contains(got, "20.0 vs nginx 10.0 µs (2.00x)") {
		t.Errorf("user µs goal = %q; want not met, 20.0 vs 10.0 µs", got)
	}
}
