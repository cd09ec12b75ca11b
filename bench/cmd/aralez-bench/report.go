package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// row is one target in one case, aggregated over the kept rounds.
type row struct {
	scen             int
	caseID, target   string
	kind             int
	rounds           []int
	rps              map[int]float64 // per round
	eff              map[int]float64 // requests per proxy CPU-second, per round
	userPR, sysPR    map[int]float64 // proxy user / system CPU seconds per request, per round
	p99R             map[int]float64 // p99 in µs, per round
	p50, p99, p999   []float64
	non2xx, errors   float64
	errText          string
	cpu, elapsed     []float64
	hwm              []float64
	busyP, busyL     []float64
	othersP, othersL []float64
	speedP, speedL   []float64
	upConns          []float64
	up1, up2, reqs   []float64
	pinned           string
	flagged, repeat  int
	failed           []string
}

// aggregate groups samples into rows in the order they were first seen.
func aggregate(samples []sample) []*row {
	var rows []*row
	idx := map[string]*row{}
	for _, sm := range samples {
		k := fmt.Sprintf("%d|%s|%s", sm.Scenario, sm.Case, sm.Target)
		r := idx[k]
		if r == nil {
			r = &row{scen: sm.Scenario, caseID: sm.Case, target: sm.Target, kind: sm.Kind,
				rps: map[int]float64{}, eff: map[int]float64{}, userPR: map[int]float64{}, sysPR: map[int]float64{},
				p99R: map[int]float64{}}
			idx[k] = r
			rows = append(rows, r)
		}
		if !sm.Kept {
			r.repeat++
			continue
		}
		if sm.Failed != "" {
			r.failed = append(r.failed, fmt.Sprintf("round %d: %s", sm.Round, sm.Failed))
			continue
		}
		r.rounds = append(r.rounds, sm.Round)
		r.rps[sm.Round] = sm.RPS
		if sm.ProxyCPU > 0 {
			r.eff[sm.Round] = sm.Requests / sm.ProxyCPU
		}
		if sm.Requests > 0 && sm.Kind != kindDirect {
			r.userPR[sm.Round] = sm.UserCPU / sm.Requests
			r.sysPR[sm.Round] = sm.SysCPU / sm.Requests
		}
		r.p50 = append(r.p50, sm.P50us)
		r.p99 = append(r.p99, sm.P99us)
		r.p99R[sm.Round] = sm.P99us
		r.p999 = append(r.p999, sm.P999us)
		r.non2xx += sm.Non2xx
		r.errors += sm.Errors
		if sm.ErrText != "" && r.errText == "" {
			r.errText = sm.ErrText
		}
		r.cpu = append(r.cpu, sm.ProxyCPU)
		r.elapsed = append(r.elapsed, sm.Elapsed)
		r.hwm = append(r.hwm, sm.HWMKiB)
		r.busyP = append(r.busyP, sm.BusyP)
		r.busyL = append(r.busyL, sm.BusyL)
		r.othersP = append(r.othersP, sm.OthersP)
		r.othersL = append(r.othersL, sm.OthersL)
		r.speedP = append(r.speedP, sm.SpeedP)
		r.speedL = append(r.speedL, sm.SpeedL)
		r.upConns = append(r.upConns, sm.UpConns)
		r.up1 = append(r.up1, sm.Up1)
		r.up2 = append(r.up2, sm.Up2)
		r.reqs = append(r.reqs, sm.Requests)
		r.pinned = sm.Pinned
		if sm.Why != "" {
			r.flagged++
		}
	}
	return rows
}

func values(m map[int]float64) []float64 {
	out := make([]float64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// ratioCell formats the median of per-round ratios, with "?" when they
// spread more than warn % around it.
func ratioCell(rs []float64, warn float64) string {
	if len(rs) == 0 {
		return "-"
	}
	m := median(rs)
	q := ""
	if sp := spread(rs); !math.IsNaN(sp) && 100*sp > warn {
		q = "?"
	}
	return fmt.Sprintf("%.2fx%s", m, q)
}

func fmtK(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v >= 10000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func ms(us []float64) string {
	m := median(us)
	if math.IsNaN(m) {
		return "-"
	}
	return fmt.Sprintf("%.2f", m/1000)
}

// bound names the side that ran out of CPU first, from medians: "proxy"
// when the proxy used at least 90 % of its CPUs, "load CPU" when the load
// CPUs were at least 90 % busy with our own work, "others" when they were
// that busy only because of processes that are not ours (a noisy window).
func (r *row) bound(threads int, noiseMax float64) string {
	cpu, el := median(r.cpu), median(r.elapsed)
	if r.kind != kindDirect && el > 0 && 100*cpu/el >= 90*float64(threads) {
		return "proxy"
	}
	if median(r.busyL) >= 90 {
		if median(r.othersL) > noiseMax {
			return "others (noisy)"
		}
		return "load CPU"
	}
	if r.kind != kindDirect && median(r.busyP) >= 90 && median(r.othersP) > noiseMax {
		return "others (noisy)"
	}
	return "neither"
}

// renderTables writes the per-scenario tables for rows of one scenario.
// threads is the proxies' thread count (for the bound column).
func renderTables(w *bytes.Buffer, rows []*row, threads int, warn, noiseMax float64) {
	// Best peer and direct per case and round, for the ratio columns.
	bestRPS, bestEff, direct := map[string]map[int]float64{}, map[string]map[int]float64{}, map[string]map[int]float64{}
	peerRows := map[string][]*row{}
	for _, r := range rows {
		switch r.kind {
		case kindPeer:
			peerRows[r.caseID] = append(peerRows[r.caseID], r)
		case kindDirect:
			direct[r.caseID] = r.rps
		}
	}
	for id, prs := range peerRows {
		var rs, es []map[int]float64
		for _, p := range prs {
			rs = append(rs, p.rps)
			es = append(es, p.eff)
		}
		bestRPS[id] = bestPerRound(rs...)
		bestEff[id] = bestPerRound(es...)
	}
	fmt.Fprintln(w, "| case | target | req/s (median) | min–max | spread | p50 ms | p99 ms | p99.9 ms | non-2xx / errors | proxy CPU s (%) | req per proxy CPU-s | peak RSS MiB | bound | req/s vs best peer | req/s vs direct | req per CPU-s vs best peer |")
	fmt.Fprintln(w, "|---|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|")
	for _, r := range rows {
		if len(r.rounds) == 0 {
			fmt.Fprintf(w, "| %s | %s | **FAILED** | %s | | | | | | | | | | | | |\n", r.caseID, r.target, strings.Join(r.failed, "; "))
			continue
		}
		rv := values(r.rps)
		lo, hi := minMax(rv)
		sp := spread(rv)
		errCell := fmt.Sprintf("%.0f / %.0f", r.non2xx, r.errors)
		if r.non2xx > 0 || r.errors > 0 {
			errCell = fmt.Sprintf("**%.0f / %.0f !!!**", r.non2xx, r.errors)
			if r.errText != "" {
				errCell += " " + strings.ReplaceAll(r.errText, "|", "/")
			}
		}
		if len(r.failed) > 0 {
			errCell += " **failed windows: " + strings.ReplaceAll(strings.Join(r.failed, "; "), "|", "/") + "**"
		}
		cpu, eff, rss, vb, vd, ve := "-", "-", "-", "-", "-", "-"
		if r.kind != kindDirect {
			c, el := median(r.cpu), median(r.elapsed)
			cpu = fmt.Sprintf("%.2f (%.0f%%)", c, 100*c/el)
			if len(r.eff) > 0 {
				eff = fmtK(median(values(r.eff)))
			}
			rss = fmt.Sprintf("%.1f", slices.Max(r.hwm)/1024)
			vb = ratioCell(ratios(r.rps, bestRPS[r.caseID]), warn)
			vd = ratioCell(ratios(r.rps, direct[r.caseID]), warn)
			ve = ratioCell(ratios(r.eff, bestEff[r.caseID]), warn)
		}
		spCell := fmt.Sprintf("%.0f%%", 100*sp)
		if 100*sp > warn {
			spCell += " ?" // rounds disagree: do not quote this req/s without more rounds
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %s–%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.caseID, r.target, median(rv), fmtK(lo), fmtK(hi), spCell, ms(r.p50), ms(r.p99), ms(r.p999), errCell,
			cpu, eff, rss, r.bound(threads, noiseMax), vb, vd, ve)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "<details><summary>fairness checks</summary>")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | target | proxy CPUs busy % | others % | speed % | load CPUs busy % | others % | speed % | new upstream conns | forwarded / answered | up1 : up2 | pinned to | flagged | repeats |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
	best := 0.0
	for _, r := range rows {
		for _, v := range append(slices.Clone(r.speedP), r.speedL...) {
			best = max(best, v)
		}
	}
	pct := func(xs []float64) string {
		m := median(xs)
		if best <= 0 || math.IsNaN(m) || m == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", 100*m/best)
	}
	for _, r := range rows {
		if len(r.rounds) == 0 {
			continue
		}
		u1, u2, rq := median(r.up1), median(r.up2), median(r.reqs)
		fwd, split, conns := "-", "-", "-"
		// Cases served by benchd (uploads, gRPC, WebSocket, direct h2c)
		// never reach the nginx upstreams: their counters say nothing;
		// cache hits do not reach them either, and that is worth showing.
		if rq > 0 && (u1+u2 > 0.01*rq || cacheCase(r.caseID)) {
			conns = fmt.Sprintf("%.0f", median(r.upConns))
			fwd = fmt.Sprintf("%.3f", (u1+u2)/rq)
			if u1+u2 > 0 {
				split = fmt.Sprintf("%.0f : %.0f", 100*u1/(u1+u2), 100*u2/(u1+u2))
			}
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %d | %d |\n",
			r.caseID, r.target, median(r.busyP), median(r.othersP), pct(r.speedP), median(r.busyL), median(r.othersL), pct(r.speedL),
			conns, fwd, split, r.pinned, r.flagged, r.repeat)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "</details>")
	fmt.Fprintln(w)
}

// findReload returns target's reload of kind, or nil.
func findReload(rs []*reloadResult, target, kind string) *reloadResult {
	for _, r := range rs {
		if r.target == target && r.kind == kind {
			return r
		}
	}
	return nil
}

// judgeReload judges a reload goal: took (the time judged, ok false when
// it is unknown) under limit with no failed request.
func judgeReload(r *reloadResult, limit time.Duration, took func(*reloadResult) (time.Duration, string, bool)) string {
	switch {
	case r == nil:
		return "not measured in this run (needs scenario 7 with aralez)"
	case r.err != "":
		return "not measured: " + r.err
	}
	d, what, ok := took(r)
	if !ok {
		return "not measured: " + what
	}
	v := "met"
	if d >= limit || r.errors > 0 || r.non2xx > 0 {
		v = "**not met**"
	}
	return fmt.Sprintf("%s: %s %.0f ms; %.0f non-2xx and %.0f errors among %.0f requests during the window",
		v, what, float64(d.Microseconds())/1000, r.non2xx, r.errors, r.requests)
}

// reloadApplied is the time from the rename to the first answer of the
// new table.
func reloadApplied(r *reloadResult) (time.Duration, string, bool) {
	return r.applied, "applied after", true
}

// reloadNonParse is the logged time of the reload besides the parse.
func reloadNonParse(r *reloadResult) (time.Duration, string, bool) {
	if !r.stages.split {
		return 0, "the proxy logged no stage times (a build before issue 16)", false
	}
	return r.stages.nonParse(), fmt.Sprintf("applied after %.0f ms, of which all but the parse (%.0f ms) took",
		float64(r.applied.Microseconds())/1000, float64(r.stages.parse.Microseconds())/1000), true
}

// renderReloads writes the table of scenario 7's reloads.
func renderReloads(w io.Writer, rs []*reloadResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "**Reloads under load** (wrk over the %d hosts; the change written by rename, then SIGHUP; *applied* is from the rename to the first answer of the new table, polled every 2 ms; the stage times are the proxy's own `config applied` log line of that reload; *ran* and *waited* are the proxy's time on its CPU and waiting on a run queue for it, from the change to the answer, from /proc schedstat: the wait is what other processes on the machine took; a reload whose wait was over NOISE_MAX %% of its time to apply is repeated with a new change, up to %d windows, and the quietest is kept, with the failures of all). *%s*: upstreams.yaml rewritten with host %d added (the next one in its place on a repeat); *%s*: the same hosts in %d conf.d files, the first host of file %03d edited (its headers).\n\n",
		numHosts, maxReloadTries, reloadFile, numHosts+1, reloadSpread, spreadFiles, spreadEdited)
	fmt.Fprintln(w, "| target | reload | applied ms | logged ms | parse | merge | compile | swap | all but parse | files parsed | ran ms | waited ms | requests | non-2xx | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	for _, r := range rs {
		if r.err != "" {
			fmt.Fprintf(w, "| %s | %s | **not measured: %s** |  |  |  |  |  |  |  |  |  |  |  |  |\n", r.target, r.kind, r.err)
			continue
		}
		st := r.stages
		logged, parse, merge, compile, swap, nonParse, files := "?", "—", "—", "—", "—", "—", "—"
		if st.logged {
			logged = ms(st.total)
		}
		if st.split {
			parse, merge, compile, swap, nonParse = ms(st.parse), ms(st.merge), ms(st.compile), ms(st.swap), ms(st.nonParse())
			files = fmt.Sprintf("%d of %d", st.parsed, st.files)
		}
		fail := func(n float64) string {
			if n > 0 {
				return fmt.Sprintf("**!!! %.0f**", n)
			}
			return "0"
		}
		kind := r.kind
		if r.tries > 1 {
			kind = fmt.Sprintf("%s (%d windows)", r.kind, r.tries)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s |\n",
			r.target, kind, ms(r.applied), logged, parse, merge, compile, swap, nonParse, files, ms(r.ran), ms(r.waited),
			r.requests, fail(r.non2xx), fail(r.errors))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "A build before issue 16 logs no stage times, and its logged duration leaves out reading and parsing the files.")
	fmt.Fprintln(w)
}

// goal is one performance goal of issue 7 and how to judge it from rows.
type goal struct {
	text  string
	judge func(rows []*row, warn float64) string
}

// effVs returns the median per-round ratio of aralez's requests per CPU
// second to peer's in case id.
func effVs(rows []*row, id, peer string) ([]float64, bool) {
	var ours, them *row
	for _, r := range rows {
		if r.caseID != id {
			continue
		}
		switch r.target {
		case "aralez":
			ours = r
		case peer:
			them = r
		}
	}
	if ours == nil || them == nil || len(ours.eff) == 0 || len(them.eff) == 0 {
		return nil, false
	}
	return ratios(ours.eff, them.eff), true
}

func judgeEff(id, peer string, want float64) func([]*row, float64) string {
	return func(rows []*row, warn float64) string {
		rs, ok := effVs(rows, id, peer)
		if !ok {
			return "not measured in this run"
		}
		m := median(rs)
		verdict := "**not met**"
		if m >= want {
			verdict = "met"
		}
		return fmt.Sprintf("%s: %s (aralez / %s = %s)", verdict, id, peer, ratioCell(rs, warn))
	}
}

var goals = []goal{
	{"HTTP/1.1 keep-alive 100 B: requests per proxy CPU-second ≥ 1.25× nginx", judgeEff("h1 100B c50", "nginx", 1.25)},
	{"HTTP/1.1 keep-alive 100 B: requests per proxy CPU-second ≥ 1.25× HAProxy", judgeEff("h1 100B c50", "haproxy", 1.25)},
	{"HTTP/1.1 keep-alive 100 B: p99 no worse than nginx's", func(rows []*row, warn float64) string {
		var ours, ng *row
		for _, r := range rows {
			if r.caseID == "h1 100B c50" && r.target == "aralez" {
				ours = r
			}
			if r.caseID == "h1 100B c50" && r.target == "nginx" {
				ng = r
			}
		}
		if ours == nil || ng == nil || len(ours.p99) == 0 || len(ng.p99) == 0 {
			return "not measured in this run"
		}
		a, b := median(ours.p99), median(ng.p99)
		if a <= b {
			return fmt.Sprintf("met: p99 %.2f ms vs nginx %.2f ms", a/1000, b/1000)
		}
		return fmt.Sprintf("**not met**: p99 %.2f ms vs nginx %.2f ms", a/1000, b/1000)
	}},
	{"Connection per request: ≥ nginx per CPU-second", judgeEff("h1 close c50", "nginx", 1)},
	{"Peak RSS with 10,000 idle keep-alive connections ≤ 2× nginx's", func(rows []*row, warn float64) string {
		var ours, ng *row
		for _, r := range rows {
			if r.caseID == "idle 10k conns" && r.target == "aralez" {
				ours = r
			}
			if r.caseID == "idle 10k conns" && r.target == "nginx" {
				ng = r
			}
		}
		if ours == nil || ng == nil || len(ours.hwm) == 0 || len(ng.hwm) == 0 {
			return "not measured in this run"
		}
		a, b := slices.Max(ours.hwm)/1024, slices.Max(ng.hwm)/1024
		v := "**not met**"
		if a <= 2*b {
			v = "met"
		}
		if ours.errors > 0 || ng.errors > 0 {
			v += " (with connection errors, see the table)"
		}
		return fmt.Sprintf("%s: %.1f MiB vs nginx %.1f MiB (%.2fx)", v, a, b, a/b)
	}},
	{"TLS h2: ≥ Caddy per CPU-second", judgeEff("TLS h2 c50x10", "caddy", 1)},
	{"TLS h2: ≥ 0.8× nginx per CPU-second", judgeEff("TLS h2 c50x10", "nginx", 0.8)},
}

// findBench returns the benchmark of pkg (a suffix of the import path)
// whose name without the -GOMAXPROCS suffix is name.
func findBench(bs []goBench, pkg, name string) (goBench, bool) {
	for _, b := range bs {
		if trimProcs(b.Name) == name && strings.HasSuffix(b.Pkg, pkg) {
			return b, true
		}
	}
	return goBench{}, false
}

// trimProcs drops the -GOMAXPROCS suffix of a benchmark name.
func trimProcs(n string) string {
	if i := strings.LastIndexByte(n, '-'); i > 0 {
		if _, err := strconv.Atoi(n[i+1:]); err == nil {
			return n[:i]
		}
	}
	return n
}

// benchGoals judges the goals of issue 7 that the Go benchmarks measure.
func benchGoals(bs []goBench) []string {
	var out []string
	// BenchmarkRequestPath, or its sub-benchmarks (plain, ratelimit, ...).
	var paths []goBench
	for _, b := range bs {
		n := trimProcs(b.Name)
		if strings.HasSuffix(b.Pkg, "/proxy") && b.AllocsPerOp >= 0 &&
			(n == "BenchmarkRequestPath" || strings.HasPrefix(n, "BenchmarkRequestPath/")) {
			paths = append(paths, b)
		}
	}
	if len(paths) > 0 {
		v := "met"
		var parts []string
		for _, b := range paths {
			if b.AllocsPerOp != 0 {
				v = "**not met**"
			}
			parts = append(parts, fmt.Sprintf("%s %.0f allocs/op, %.0f ns/op", trimProcs(b.Name), b.AllocsPerOp, b.NsPerOp))
		}
		out = append(out, fmt.Sprintf("0 allocs/op for the request path — %s: proxy %s", v, strings.Join(parts, "; ")))
	} else {
		out = append(out, "0 allocs/op for the request path — not measured (no proxy BenchmarkRequestPath result)")
	}
	one, ok1 := findBench(bs, "/proxy", "BenchmarkRouteLookup/1hosts")
	many, ok2 := findBench(bs, "/proxy", "BenchmarkRouteLookup/10000hosts")
	if ok1 && ok2 && one.NsPerOp > 0 {
		r := many.NsPerOp / one.NsPerOp
		v := "**not met**"
		if r <= 1.05 {
			v = "met"
		}
		out = append(out, fmt.Sprintf("Route lookup with 10,000 hosts within 5 %% of 1 host — %s: %.1f ns/op vs %.1f ns/op (%.2fx; one -benchtime run, confirm with benchstat over -count=10)", v, many.NsPerOp, one.NsPerOp, r))
	} else {
		out = append(out, "Route lookup with 10,000 hosts within 5 % of 1 host — not measured (no proxy BenchmarkRouteLookup/1hosts and /10000hosts results)")
	}
	return out
}

// report renders the whole run as markdown.
func (s *suite) report(loadWall time.Duration) string {
	var w bytes.Buffer
	now := time.Now().UTC()
	mode := "full"
	switch {
	case s.o.quick:
		mode = "QUICK"
	case len(s.o.scenarios) < len(scenarioTitles):
		mode = "scenarios " + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(s.o.scenarios)), ","), "[]")
	}
	if s.o.long {
		mode += ", LONG"
	}
	if s.o.profile {
		mode += ", -profile"
	}
	if s.o.aralezBase != "" {
		mode += ", A/B"
	}
	if s.o.syscalls != "off" {
		mode += ", syscalls by " + s.o.syscalls
	}
	fmt.Fprintf(&w, "### Run %s (%s)\n\n", now.Format("2006-01-02 15:04 UTC"), mode)
	if s.o.note != "" {
		fmt.Fprintf(&w, "> **Note:** %s\n\n", s.o.note)
	}
	for _, l := range s.machine {
		fmt.Fprintf(&w, "- %s\n", l)
	}
	fmt.Fprintf(&w, "- settings: scenarios %v, rounds %d, warm-up %v, window %v, proxy CPUs %s, load CPUs %s, %d thread(s) per proxy, noise max %.0f%%, speed min %.0f%%, repeats used %d of %d\n",
		s.o.scenarios, s.o.rounds, s.o.warmup, s.o.duration, cpuList(s.o.proxyCPUs), cpuList(s.o.loadCPUs), s.o.threads,
		s.o.noiseMax, s.o.speedMin, s.retries, s.o.maxRetries)
	fmt.Fprintf(&w, "- command: `%s`\n", strings.Join(append([]string{"aralez-bench"}, os.Args[1:]...), " ")+envSummary())
	if s.o.aralezBase != "" {
		fmt.Fprintf(&w, "- A/B: `aralez` is %s, `%s` is %s (versions below); they run back to back in every case, in alternating order\n",
			relTo(s.o.root, s.o.aralezBin), baseName, relTo(s.o.root, s.o.aralezBase))
	}
	fmt.Fprintf(&w, "- wall time of the load part: %.0f s\n\n", loadWall.Seconds())
	fmt.Fprintln(&w, "```")
	for _, v := range s.versions {
		fmt.Fprintln(&w, v)
	}
	fmt.Fprintln(&w, "```")
	fmt.Fprintln(&w)
	for _, n := range s.notes {
		fmt.Fprintf(&w, "**%s**\n\n", n)
	}
	rows := aggregate(s.samples)
	for _, sc := range s.o.scenarios {
		fmt.Fprintf(&w, "#### Scenario %d: %s\n\n", sc, scenarioTitles[sc])
		if sc == 8 {
			fmt.Fprintln(&w, "Peers run their plain scenario-1 config here (open-source nginx has no JWT check); only aralez has rate limit and JWT on.")
			fmt.Fprintln(&w)
		}
		if sc == 9 {
			fmt.Fprintf(&w, "benchd opens %d keep-alive connections, completes one GET on each, and holds them idle for one window, in round 1 only. Here req/s is connections opened per second and \"errors\" counts connections that failed or were closed while idle; the column that matters is peak RSS.\n\n", numIdle)
		}
		if sc == 7 {
			renderReloads(&w, s.reloads)
		}
		if sc == 7 {
			fmt.Fprintf(&w, "Every proxy has %d hosts in its config; wrk sends requests round robin over all of them. Route lookup cost is judged by the Go benchmark, not here.\n\n", numHosts)
		}
		if sc == 10 {
			fmt.Fprintf(&w, "Response caching on, %d MiB: nginx proxy_cache (files on tmpfs, proxy_cache_valid 200, proxy_cache_lock on), HAProxy's in-memory cache, aralez's `cache_size_mb`; Caddy has no built-in cache. The upstream answers these paths with `Cache-Control: public, max-age=3600`, and every request asks for the same URL, so after the first request every answer can come from the cache. \"served from cache\" is the share of requests that did not reach the upstreams.\n\n", cacheMB)
		}
		if sc == 11 {
			fmt.Fprintln(&w, "One wrk per window with every connection held open: the warm-up begins only when all connections are established and accepted, and requests are counted at the upstreams inside the window (req/s and req per proxy CPU-s); p50/p99 and non-2xx/errors are wrk's over its whole run, connecting and warm-up included.")
			fmt.Fprintln(&w)
		}
		for _, l := range s.skips[sc] {
			fmt.Fprintf(&w, "- **%s**\n", l)
		}
		if len(s.skips[sc]) > 0 {
			fmt.Fprintln(&w)
		}
		var rs []*row
		for _, r := range rows {
			if r.scen == sc {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			fmt.Fprintln(&w, "**No row: nothing in this scenario could run.**")
			fmt.Fprintln(&w)
			continue
		}
		renderTables(&w, rs, s.o.threads, s.o.spreadWarn, s.o.noiseMax)
		if sc == 10 {
			renderCache(&w, rs)
		}
		if sc == 11 {
			renderSweep(&w, rs, s.o.spreadWarn)
		}
		renderCPU(&w, rs, s.sysc, s.o.syscalls)
		renderAB(&w, rs, s.o.spreadWarn)
		var ps []profileResult
		for _, p := range s.profiles {
			if p.scen == sc {
				ps = append(ps, p)
			}
		}
		renderProfiles(&w, ps)
	}
	fmt.Fprintln(&w, "#### Goals of issue 7 (this run)")
	fmt.Fprintln(&w)
	for _, g := range goals {
		fmt.Fprintf(&w, "- %s — %s\n", g.text, g.judge(rows, s.o.spreadWarn))
	}
	if s.o.goBench {
		for _, l := range benchGoals(s.goBench) {
			fmt.Fprintf(&w, "- %s\n", l)
		}
	} else {
		fmt.Fprintln(&w, "- 0 allocs/op on the request path; route lookup with 10,000 hosts within 5 % of 1 host — judged by the Go benchmarks, which this run skipped")
	}
	fmt.Fprintf(&w, "- Reload of the 10,000-host config applied in < 200 ms with no failed request — %s\n",
		judgeReload(findReload(s.reloads, "aralez", reloadFile), 200*time.Millisecond, reloadApplied))
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "#### Goals of issues 15 and 16 (this run)")
	fmt.Fprintln(&w)
	for _, g := range laterGoals {
		fmt.Fprintf(&w, "- %s — %s\n", g.text, g.judge(rows, s.o.spreadWarn))
	}
	fmt.Fprintf(&w, "- (issue 16) One-host edit of a 10,000-host conf.d spread applied in < 50 ms with no failed request — %s\n",
		judgeReload(findReload(s.reloads, "aralez", reloadSpread), 50*time.Millisecond, reloadApplied))
	fmt.Fprintf(&w, "- (issue 16) Whole-file reload of 10,000 hosts: all but the parse (merge, compile with the digest, swap) < 200 ms with no failed request — %s\n",
		judgeReload(findReload(s.reloads, "aralez", reloadFile), 200*time.Millisecond, reloadNonParse))
	fmt.Fprintln(&w)
	if s.o.goBench {
		s.renderGoBench(&w)
	}
	fmt.Fprintln(&w, "<details><summary>exact commands</summary>")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "```")
	keys := make([]string, 0, len(s.commands))
	for k := range s.commands {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&w, "# %s\n", k)
		for _, c := range s.commands[k] {
			fmt.Fprintln(&w, strings.ReplaceAll(c, s.o.outDir, "$OUT"))
		}
	}
	fmt.Fprintln(&w, "```")
	fmt.Fprintln(&w)
	fmt.Fprintf(&w, "`$OUT` = `%s` (configs, logs, raw.jsonl).\n\n", relTo(s.o.root, s.o.outDir))
	fmt.Fprintln(&w, "</details>")
	fmt.Fprintln(&w)
	return w.String()
}

func relTo(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}

// envSummary lists the bench environment variables that were set.
func envSummary() string {
	var parts []string
	for _, k := range []string{"QUICK", "LONG", "SCENARIOS", "SWEEP", "ROUNDS", "WARMUP", "DURATION", "PROXY_CPUS", "LOAD_CPUS", "THREADS", "TARGETS", "GOBENCH", "ARALEZ_BASE", "SYSCALLS", "PROFILE"} {
		if v := os.Getenv(k); v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " with " + strings.Join(parts, " ")
}

// runGoBench runs the Go micro-benchmarks of the whole module.
func (s *suite) runGoBench() {
	argv := []string{"go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", s.o.goBenchTime, "./..."}
	s.goCmd = strings.Join(argv, " ")
	// The driver is pinned to the load CPUs and its children inherit that;
	// the benchmarks get the whole machine (the load part is over).
	if online, err := parseProcStatFile(); err == nil {
		var all []int
		for c := range online {
			all = append(all, c)
		}
		slices.Sort(all)
		argv = append([]string{"taskset", "-c", cpuList(all)}, argv...)
	}
	s.say("running %s", s.goCmd)
	cmd := exec.CommandContext(s.ctx, argv[0], argv[1:]...)
	cmd.Dir = s.o.root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	// The whole default run must stay within 15 minutes on 2 cores: give
	// the benchmarks what is left of that, but at least 2 minutes.
	limit := max(2*time.Minute, 15*time.Minute-time.Since(s.start))
	s.say("time limit for the Go benchmarks: %v", limit.Round(time.Second))
	timer := time.AfterFunc(limit, func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	})
	err := cmd.Run()
	timer.Stop()
	_ = os.WriteFile(filepath.Join(s.o.outDir, "logs", "gobench.txt"), buf.Bytes(), 0o644)
	s.goBench, s.goFailed = parseGoBench(buf.Bytes())
	if err != nil {
		s.goErr = err.Error()
	}
}

func (s *suite) renderGoBench(w *bytes.Buffer) {
	fmt.Fprintf(w, "#### Go micro-benchmarks (`%s`)\n\n", s.goCmd)
	renderGoBenchTable(w, s.goBench, s.goFailed)
	if s.goErr != "" {
		fmt.Fprintf(w, "**go test ended with: %s** (output: logs/gobench.txt)\n\n", s.goErr)
	}
}

func renderGoBenchTable(w *bytes.Buffer, bs []goBench, failed []string) {
	if len(bs) == 0 {
		fmt.Fprintln(w, "No benchmark in the module yet.")
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "| package | benchmark | ns/op | B/op | allocs/op |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|")
		for _, b := range bs {
			bo, ao := "-", "-"
			if b.BytesPerOp >= 0 {
				bo = fmt.Sprintf("%.0f", b.BytesPerOp)
			}
			if b.AllocsPerOp >= 0 {
				ao = fmt.Sprintf("%.0f", b.AllocsPerOp)
			}
			fmt.Fprintf(w, "| %s | %s | %.1f | %s | %s |\n", strings.TrimPrefix(b.Pkg, "github.com/aralez-go/aralez/"), b.Name, b.NsPerOp, bo, ao)
		}
		fmt.Fprintln(w)
	}
	for _, f := range failed {
		fmt.Fprintf(w, "- **FAILED: %s**\n", f)
	}
	if len(failed) > 0 {
		fmt.Fprintln(w)
	}
}

// appendResults appends report to the results file, creating it with a
// header when missing.
func appendResults(path, report string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(path, []byte("# Bench results\n\nSee bench/README.md for how to read these tables.\n\n## Runs\n\n"), 0o644); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("\n" + report); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
