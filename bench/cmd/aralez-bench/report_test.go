package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aralez-go/aralez/bench/peers"
)

// samplesFor builds kept samples of one case: per target, one value per
// round for req/s and requests per CPU-second.
func samplesFor(caseID string, rps map[string][]float64) []sample {
	var out []sample
	for _, name := range []string{"direct", "nginx", "haproxy", "aralez"} {
		vals, ok := rps[name]
		if !ok {
			continue
		}
		kind := kindPeer
		switch name {
		case "direct":
			kind = kindDirect
		case "aralez":
			kind = kindOurs
		}
		for i, v := range vals {
			sm := sample{Scenario: 1, Case: caseID, Target: name, Kind: kind, Round: i + 1, Kept: true,
				RPS: v, Requests: 2 * v, Elapsed: 2, P50us: 1000, P99us: 2000, P999us: 3000,
				BusyP: 95, BusyL: 99, Pinned: "0", Up1: v, Up2: v}
			if kind != kindDirect {
				sm.ProxyCPU = 1.9 // 95 % of the 2 s window
				sm.HWMKiB = 20 * 1024
			}
			out = append(out, sm)
		}
	}
	return out
}

func TestRenderTables(t *testing.T) {
	t.Parallel()
	samples := samplesFor("h1 100B c50", map[string][]float64{
		"direct":  {50000, 50000, 50000},
		"nginx":   {20000, 22000, 21000},
		"haproxy": {25000, 20000, 26000},
		"aralez":  {30000, 30000, 31000},
	})
	// A repeated (discarded) attempt and a failing window with errors.
	samples = append(samples, sample{Scenario: 1, Case: "h1 100B c50", Target: "nginx", Kind: kindPeer, Round: 1, Kept: false, Why: "noisy"})
	samples = append(samples, sample{Scenario: 1, Case: "h1 100B c256", Target: "aralez", Kind: kindOurs, Round: 1, Kept: true,
		RPS: 100, Requests: 200, Elapsed: 2, ProxyCPU: 0.1, Non2xx: 5, Errors: 1, ErrText: "read error", Pinned: "0"})
	samples = append(samples, sample{Scenario: 1, Case: "h1 100B c256", Target: "nginx", Kind: kindPeer, Round: 1, Kept: true,
		Failed: "the proxy process exited"})
	rows := aggregate(samples)
	if len(rows) != 6 {
		t.Fatalf("aggregate: %d rows; want 6", len(rows))
	}
	var b bytes.Buffer
	renderTables(&b, rows, 1, 20, 10)
	out := b.String()
	for _, want := range []string{
		"| h1 100B c50 | direct | 50000 | 50.0k–50.0k | 0% | 1.00 | 2.00 | 3.00 | 0 / 0 | - |",
		// nginx: median 21000; per-round best peer is 25000, 22000, 26000.
		"| h1 100B c50 | nginx | 21000 | 20.0k–22.0k | 10% |",
		"| h1 100B c50 | haproxy | 25000 | 20.0k–26.0k | 24% ? |",
		"1.90 (95%) | 22.1k | 20.0 | proxy |",
		// aralez vs best peer per round: 1.2, 1.36, 1.19 -> median 1.20.
		"| h1 100B c50 | aralez | 30000 | 30.0k–31.0k | 3% |",
		"| 1.20x | 0.60x | 1.20x |",
		"**5 / 1 !!!** read error",
		"| h1 100B c256 | nginx | **FAILED** | round 1: the proxy process exited |",
		"| 50 : 50 | 0 | 0 | 1 |", // nginx fairness: one repeat
	} {
		if !strings.Contains(out, want) {
			t.Errorf("renderTables output lacks %q; got:\n%s", want, out)
		}
	}
}

func TestRatioCellFlagsSpread(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []float64
		want string
	}{
		{"tight", []float64{1.0, 1.05, 0.98}, "1.00x"},
		{"wide", []float64{0.5, 1.0, 1.5}, "1.00x?"},
		{"none", nil, "-"},
	}
	for _, tt := range tests {
		if got := ratioCell(tt.in, 20); got != tt.want {
			t.Errorf("ratioCell(%v) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    row
		want string
	}{
		{"proxy", row{kind: kindPeer, cpu: []float64{1.9}, elapsed: []float64{2}, busyL: []float64{99}}, "proxy"},
		{"load", row{kind: kindPeer, cpu: []float64{1.0}, elapsed: []float64{2}, busyL: []float64{99}, othersL: []float64{2}}, "load CPU"},
		{"noisy", row{kind: kindPeer, cpu: []float64{1.0}, elapsed: []float64{2}, busyL: []float64{99}, othersL: []float64{40}}, "others (noisy)"},
		{"neither", row{kind: kindPeer, cpu: []float64{1.0}, elapsed: []float64{2}, busyL: []float64{50}, busyP: []float64{50}}, "neither"},
	}
	for _, tt := range tests {
		if got := tt.r.bound(1, 10); got != tt.want {
			t.Errorf("%s: bound() = %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestGoals(t *testing.T) {
	t.Parallel()
	rows := aggregate(samplesFor("h1 100B c50", map[string][]float64{
		"nginx":   {20000, 20000, 20000},
		"haproxy": {30000, 30000, 30000},
		"aralez":  {26000, 26000, 26000},
	}))
	if got := goals[0].judge(rows, 20); !strings.HasPrefix(got, "met") || !strings.Contains(got, "1.30x") {
		t.Errorf("goal vs nginx = %q; want met at 1.30x", got)
	}
	if got := goals[1].judge(rows, 20); !strings.Contains(got, "not met") {
		t.Errorf("goal vs haproxy = %q; want not met", got)
	}
	if got := goals[4].judge(rows, 20); got != "not measured in this run" {
		t.Errorf("TLS goal = %q; want not measured", got)
	}
}

func TestGoBenchTableAndAppend(t *testing.T) {
	t.Parallel()
	bs, failed := parseGoBench(testdata(t, "gobench.txt"))
	var b bytes.Buffer
	renderGoBenchTable(&b, bs, failed)
	for _, want := range []string{"| proxy | BenchmarkRouteLookup/hosts=1-2 | 95.1 | 0 | 0 |", "**FAILED:"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("renderGoBenchTable lacks %q; got:\n%s", want, b.String())
		}
	}
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	if err := appendResults(path, "### Run A\n"); err != nil {
		t.Fatal(err)
	}
	if err := appendResults(path, "### Run B\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), "# Bench results") || strings.Index(string(got), "Run A") > strings.Index(string(got), "Run B") {
		t.Errorf("appendResults produced:\n%s\nwant the header, then run A, then run B", got)
	}
}

func TestBuildCases(t *testing.T) {
	t.Parallel()
	cs := buildCases([]int{1, 4, 7, 8}, "tok", nil)
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.id)
	}
	want := "h1 100B c50,h1 100B c256,TLS h1 c50,TLS h2 c50x10,h1 10k hosts c50,h1 ratelimit+JWT c50"
	if got := strings.Join(ids, ","); got != want {
		t.Errorf("buildCases ids = %s; want %s", got, want)
	}
	last := cs[len(cs)-1]
	if last.set != setFeatures || last.headers[0] != "Authorization: Bearer tok" || last.deny == nil || !last.deny.oursOnly {
		t.Errorf("scenario 8 case = %+v; want features set, bearer header, ours-only refuse check", last)
	}
	cs = buildCases([]int{10, 11}, "", []int{50, 10000})
	ids = nil
	for _, c := range cs {
		ids = append(ids, c.id)
	}
	if got, want := strings.Join(ids, ","), "cache hit 100B c50,cache hit 4KiB c50,h1 sweep c50,h1 sweep c10000"; got != want {
		t.Errorf("buildCases(10, 11) ids = %s; want %s", got, want)
	}
	if c := cs[1]; !c.cache || c.set != setCache || c.path != "/cache/4k" || c.held {
		t.Errorf("cache case = %+v; want a cache case in the cache set on /cache/4k", c)
	}
	if c := cs[3]; !c.held || c.set != setSweep || c.conns != 10000 || c.direct != up1Addr {
		t.Errorf("sweep case = %+v; want a held case in the sweep set with 10000 connections and a direct row", c)
	}
	if !strings.Contains(hostsScript(3), "local n = 3") || !strings.Contains(hostsScript(3), `"h%05d.bench.test"`) {
		t.Errorf("hostsScript(3) = %s", hostsScript(3))
	}
}

func TestBenchGoals(t *testing.T) {
	t.Parallel()
	bs := []goBench{
		{Pkg: "github.com/aralez-go/aralez/proxy", Name: "BenchmarkRequestPath-2", NsPerOp: 900, AllocsPerOp: 0},
		{Pkg: "github.com/aralez-go/aralez/proxy", Name: "BenchmarkRouteLookup/1hosts-2", NsPerOp: 100, AllocsPerOp: 0},
		{Pkg: "github.com/aralez-go/aralez/proxy", Name: "BenchmarkRouteLookup/10000hosts-2", NsPerOp: 110, AllocsPerOp: 0},
	}
	got := benchGoals(bs)
	if len(got) != 2 || !strings.Contains(got[0], "— met") || !strings.Contains(got[1], "**not met**: 110.0 ns/op vs 100.0 ns/op (1.10x") {
		t.Errorf("benchGoals = %q; want request path met, route lookup not met at 1.10x", got)
	}
	got = benchGoals(nil)
	if !strings.Contains(got[0], "not measured") || !strings.Contains(got[1], "not measured") {
		t.Errorf("benchGoals(nil) = %q; want not measured twice", got)
	}
}

func TestBenchGoalsSubBenchmarks(t *testing.T) {
	t.Parallel()
	bs := []goBench{
		{Pkg: "github.com/aralez-go/aralez/proxy", Name: "BenchmarkRequestPath/plain-2", NsPerOp: 900, AllocsPerOp: 0},
		{Pkg: "github.com/aralez-go/aralez/proxy", Name: "BenchmarkRequestPath/jwt-2", NsPerOp: 1000, AllocsPerOp: 1},
		{Pkg: "github.com/aralez-go/aralez/proxy", Name: "BenchmarkRequestPathStreamed-2", NsPerOp: 9, AllocsPerOp: 5},
	}
	got := benchGoals(bs)[0]
	if !strings.Contains(got, "**not met**") || !strings.Contains(got, "BenchmarkRequestPath/plain 0 allocs/op") ||
		!strings.Contains(got, "BenchmarkRequestPath/jwt 1 allocs/op") || strings.Contains(got, "Streamed") {
		t.Errorf("benchGoals(sub-benchmarks)[0] = %q; want not met, plain and jwt listed, Streamed not", got)
	}
}

func TestJudgeReload(t *testing.T) {
	t.Parallel()
	split := reloadStages{logged: true, split: true, total: 400 * time.Millisecond, parse: 300 * time.Millisecond,
		merge: 10 * time.Millisecond, compile: 60 * time.Millisecond, swap: 30 * time.Millisecond}
	tests := []struct {
		name string
		r    *reloadResult
		took func(*reloadResult) (time.Duration, string, bool)
		want string
	}{
		{"none", nil, reloadApplied, "not measured in this run"},
		{"failed", &reloadResult{err: "boom"}, reloadApplied, "not measured: boom"},
		{"fast", &reloadResult{applied: 150 * time.Millisecond, requests: 1000}, reloadApplied, "met: applied after 150 ms; 0 non-2xx and 0 errors among 1000 requests"},
		{"slow", &reloadResult{applied: 250 * time.Millisecond, requests: 1000}, reloadApplied, "**not met**: applied after 250 ms"},
		{"fast with errors", &reloadResult{applied: 50 * time.Millisecond, requests: 1000, errors: 3}, reloadApplied, "**not met**: applied after 50 ms; 0 non-2xx and 3 errors"},
		{"non-parse", &reloadResult{applied: 420 * time.Millisecond, stages: split, requests: 9}, reloadNonParse,
			"met: applied after 420 ms, of which all but the parse (300 ms) took 100 ms; 0 non-2xx"},
		{"non-parse without stages", &reloadResult{applied: 420 * time.Millisecond, stages: reloadStages{logged: true}}, reloadNonParse,
			"not measured: the proxy logged no stage times"},
	}
	for _, tt := range tests {
		if got := judgeReload(tt.r, 200*time.Millisecond, tt.took); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: judgeReload = %q; want prefix %q", tt.name, got, tt.want)
		}
	}
}

// TestAppliedLine reads the stage times of a reload from the proxy's log,
// of this build and of one before issue 16.
func TestAppliedLine(t *testing.T) {
	t.Parallel()
	log := []byte(`time=2026-12-05T14:00:00.000Z level=WARN msg="config warning" warning="a b=c"
time=2026-12-05T14:00:00.100Z level=INFO msg="config applied" reason=sighup generation=2 digest=3b21a21aa6416c6d duration_seconds=0.254848464 parse_seconds=0.023580747 merge_seconds=0.046320292 compile_seconds=0.135643152 swap_seconds=0.023038681 files=101 files_parsed=1 hosts=10000 routes=10000
time=2026-12-05T14:00:00.200Z level=INFO msg="config applied" reason=file generation=3 duration_seconds=9
`)
	got := appliedLine(log)
	want := reloadStages{logged: true, split: true, total: 254848464, parse: 23580747, merge: 46320292, compile: 135643152, swap: 23038681, files: 101, parsed: 1}
	if got != want {
		t.Errorf("appliedLine = %+v; want %+v", got, want)
	}
	old := appliedLine([]byte(`time=x level=INFO msg="config applied" reason=sighup generation=2 digest=71b4 duration_seconds=0.637 hosts=10001 routes=10001` + "\n"))
	if !old.logged || old.split || old.total != 637*time.Millisecond {
		t.Errorf("appliedLine(old build) = %+v; want logged, no stages, total 637 ms", old)
	}
	if got := appliedLine([]byte("level=INFO msg=\"config unchanged; reload skipped\"\n")); got.logged {
		t.Errorf("appliedLine(no applied line) = %+v; want nothing", got)
	}
}

// TestSpreadFile: the spread's files hold every host once, and the edit
// changes the headers of one host only.
func TestSpreadFile(t *testing.T) {
	t.Parallel()
	p := peers.Params{Name: "aralez", Threads: 1, HTTPAddr: "127.0.0.1:1", TLSAddr: "127.0.0.1:2", H2CAddr: "127.0.0.1:1",
		Upstreams: []string{"127.0.0.1:3"}, Helpers: []string{"127.0.0.1:4"}, GRPC: []string{"127.0.0.1:5"}}
	for i := 1; i <= numHosts; i++ {
		p.Hosts = append(p.Hosts, hostName(i))
	}
	seen := 0
	for i := range spreadFiles {
		b, err := spreadFile(p, i, "")
		if err != nil {
			t.Fatal(err)
		}
		seen += strings.Count(string(b), ".bench.test:\n")
	}
	if seen != numHosts {
		t.Errorf("the spread holds %d hosts; want %d", seen, numHosts)
	}
	orig, _ := spreadFile(p, spreadEdited, "")
	edited, err := spreadFile(p, spreadEdited, "aralez-edited")
	if err != nil {
		t.Fatal(err)
	}
	first := hostName(spreadEdited*numHosts/spreadFiles + 1)
	if !strings.Contains(string(edited), first+":\n") || strings.Count(string(edited), "X-Served-Via: aralez-edited") != 1 ||
		strings.Count(string(edited), ".bench.test:\n") != strings.Count(string(orig), ".bench.test:\n") {
		t.Errorf("edited file:\n%s\nwant %s with X-Served-Via: aralez-edited and the other hosts unchanged", edited, first)
	}
	if i := strings.Index(string(edited), "aralez-edited"); i < 0 || i > strings.Index(string(edited), hostName(spreadEdited*numHosts/spreadFiles+2)) {
		t.Errorf("the edit is not on the file's first host %s", first)
	}
}

// TestRenderReloads: every row of the reload table has the header's
// columns, with the stage times, the CPU wait, the windows run and
// failures marked.
func TestRenderReloads(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	renderReloads(&b, []*reloadResult{
		{target: "aralez", kind: reloadSpread, applied: 24500 * time.Microsecond, ran: 18 * time.Millisecond, waited: 3 * time.Millisecond, tries: 2, requests: 5000, errors: 2,
			stages: reloadStages{logged: true, split: true, total: 20 * time.Millisecond, parse: 5 * time.Millisecond, merge: 3 * time.Millisecond, compile: 8 * time.Millisecond, swap: 4 * time.Millisecond, files: 101, parsed: 1}},
		{target: "aralez-base", kind: reloadFile, applied: time.Second, stages: reloadStages{logged: true, total: 400 * time.Millisecond}},
		{target: "aralez-base", kind: reloadSpread, err: "boom"},
	})
	var rows []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "| ") {
			rows = append(rows, l)
		}
	}
	if len(rows) != 4 {
		t.Fatalf("renderReloads wrote %d table lines; want a header and 3 rows:\n%s", len(rows), b.String())
	}
	for _, r := range rows[1:] {
		if got, want := strings.Count(r, "|"), strings.Count(rows[0], "|"); got != want {
			t.Errorf("row %q has %d bars; want %d", r, got, want)
		}
	}
	for i, want := range []string{
		"| aralez | conf.d spread (2 windows) | 24.5 | 20.0 | 5.0 | 3.0 | 8.0 | 4.0 | 15.0 | 1 of 101 | 18.0 | 3.0 | 5000 | 0 | **!!! 2** |",
		"| aralez-base | whole file | 1000.0 | 400.0 | — | — | — | — | — | — | 0.0 | 0.0 | 0 | 0 | 0 |",
		"| aralez-base | conf.d spread | **not measured: boom** |",
	} {
		if !strings.HasPrefix(rows[i+1], want) {
			t.Errorf("row %d = %q; want prefix %q", i+1, rows[i+1], want)
		}
	}
}

func TestReloadNoise(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		r    reloadResult
		want float64
	}{
		{reloadResult{applied: 40 * time.Millisecond, waited: 10 * time.Millisecond}, 25},
		{reloadResult{applied: 40 * time.Millisecond}, 0},
		{reloadResult{waited: time.Second}, 0}, // never applied: no ratio
	} {
		if got := tt.r.noise(); got != tt.want {
			t.Errorf("noise(applied %v, waited %v) = %v; want %v", tt.r.applied, tt.r.waited, got, tt.want)
		}
	}
}
