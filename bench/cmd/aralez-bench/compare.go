package main

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// findRow returns the row of target in case id, or nil.
func findRow(rows []*row, id, target string) *row {
	for _, r := range rows {
		if r.caseID == id && r.target == target {
			return r
		}
	}
	return nil
}

// rangeCell formats per-round ratios as their median with the range,
// e.g. "1.03x (0.98–1.07)", "?" marking a spread above warn %.
func rangeCell(rs []float64, warn float64) string {
	if len(rs) == 0 {
		return "-"
	}
	c := ratioCell(rs, warn)
	if len(rs) == 1 {
		return c
	}
	lo, hi := minMax(rs)
	return fmt.Sprintf("%s (%.2f–%.2f)", c, lo, hi)
}

// renderAB writes the same-run A/B of the binary under test ("aralez")
// against the base binary (baseName): for every case both ran, the ratios
// new ÷ base taken inside each round, where the two ran back to back.
func renderAB(w *bytes.Buffer, rows []*row, warn float64) {
	type pair struct{ n, b *row }
	var ps []pair
	for _, r := range rows {
		if r.target != "aralez" || len(r.rounds) == 0 {
			continue
		}
		if b := findRow(rows, r.caseID, baseName); b != nil && len(b.rounds) > 0 {
			ps = append(ps, pair{r, b})
		}
	}
	if len(ps) == 0 {
		return
	}
	fmt.Fprintf(w, "A/B, `aralez` (new) ÷ `%s` (base): ratios taken inside each round, where the two ran back to back; median and range over rounds. Above 1.00x is better for req/s and req per proxy CPU-s; below 1.00x is better for µs per request and p99.\n\n", baseName)
	fmt.Fprintln(w, "| case | req/s | req per proxy CPU-s | user µs/req | sys µs/req | p99 | rounds with more req per CPU-s |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, p := range ps {
		eff := ratios(p.n.eff, p.b.eff)
		ahead := 0
		for _, x := range eff {
			if x > 1 {
				ahead++
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d of %d |\n", p.n.caseID,
			rangeCell(ratios(p.n.rps, p.b.rps), warn), rangeCell(eff, warn),
			rangeCell(ratios(p.n.userPR, p.b.userPR), warn), rangeCell(ratios(p.n.sysPR, p.b.sysPR), warn),
			rangeCell(ratios(p.n.p99R, p.b.p99R), warn), ahead, len(eff))
	}
	fmt.Fprintln(w)
}

// sweepConns returns N of a scenario-11 case id "h1 sweep cN", or 0.
func sweepConns(id string) int {
	v, ok := strings.CutPrefix(id, "h1 sweep c")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(v)
	return n
}

// renderSweep writes the connection sweep as one row per connection count
// and one column per target: median req per proxy CPU-s, with its change
// from the same target's figure at the smallest count, so a cliff shows as
// a row; then aralez's ratios to nginx, HAProxy and the A/B base, taken
// inside each round.
func renderSweep(w *bytes.Buffer, rows []*row, warn float64) {
	var counts []int
	var targets []string
	for _, r := range rows {
		if n := sweepConns(r.caseID); n > 0 && !slices.Contains(counts, n) {
			counts = append(counts, n)
		}
		if r.kind != kindDirect && !slices.Contains(targets, r.target) {
			targets = append(targets, r.target)
		}
	}
	if len(counts) == 0 || len(targets) == 0 {
		return
	}
	slices.Sort(counts)
	var vs []string
	for _, p := range []string{"nginx", "haproxy", baseName} {
		if slices.Contains(targets, p) && slices.Contains(targets, "aralez") {
			vs = append(vs, p)
		}
	}
	fmt.Fprintln(w, "Connection sweep: req per proxy CPU-s (median over rounds), and in brackets its change from the same target's figure at the smallest count.")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| connections |")
	for _, t := range targets {
		fmt.Fprintf(w, " %s |", t)
	}
	for _, p := range vs {
		fmt.Fprintf(w, " aralez ÷ %s |", p)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "|---:|"+strings.Repeat("---:|", len(targets)+len(vs)))
	id := func(n int) string { return "h1 sweep c" + strconv.Itoa(n) }
	for _, n := range counts {
		fmt.Fprintf(w, "| %d |", n)
		for _, t := range targets {
			r := findRow(rows, id(n), t)
			if r == nil || len(r.eff) == 0 {
				fmt.Fprint(w, " - |")
				continue
			}
			cell := fmtK(median(values(r.eff)))
			if first := findRow(rows, id(counts[0]), t); n != counts[0] && first != nil && len(first.eff) > 0 {
				cell += fmt.Sprintf(" (%+.0f%%)", 100*(median(values(r.eff))/median(values(first.eff))-1))
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		for _, p := range vs {
			ours, them := findRow(rows, id(n), "aralez"), findRow(rows, id(n), p)
			if ours == nil || them == nil {
				fmt.Fprint(w, " - |")
				continue
			}
			fmt.Fprintf(w, " %s |", ratioCell(ratios(ours.eff, them.eff), warn))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

// laterGoals are the goals of issues 15 (cache) and 16 (performance) that
// the load tables can judge.
var laterGoals = []goal{
	{"(issue 15) Cache hit, 100 B and 4 KiB: req per proxy CPU-s ≥ 1.5× nginx", judgeCache},
	{"(issue 16) Connection sweep: req per proxy CPU-s at 256 and 1,000 connections ≥ 1.0× nginx", judgeSweepVs("nginx", 1.0)},
	{"(issue 16) Connection sweep: at 256 and 1,000 connections no more than 10 % below our own 50-connection figure", judgeSweepSelf},
	{"(issue 16) User µs per request ≤ nginx's at 50 and 256 connections", judgeUser},
}

func judgeCache(rows []*row, warn float64) string {
	var parts []string
	measured, met := 0, true
	for _, id := range []string{"cache hit 100B c50", "cache hit 4KiB c50"} {
		ours := findRow(rows, id, "aralez")
		if ours == nil || len(ours.rounds) == 0 {
			continue
		}
		if served := median(servedFromCache(ours)); served < missThreshold {
			parts = append(parts, fmt.Sprintf("%s: not measurable yet, aralez served %.0f %% from cache (it answered misses)", id, 100*served))
			met = false
			continue
		}
		rs, ok := effVs(rows, id, "nginx")
		if !ok {
			continue
		}
		measured++
		if median(rs) < 1.5 {
			met = false
		}
		parts = append(parts, fmt.Sprintf("%s: aralez / nginx = %s", id, ratioCell(rs, warn)))
	}
	switch {
	case len(parts) == 0:
		return "not measured in this run (scenario 10)"
	case measured == 0:
		return strings.Join(parts, "; ")
	case met:
		return "met: " + strings.Join(parts, "; ")
	}
	return "**not met**: " + strings.Join(parts, "; ")
}

func judgeSweepVs(peer string, want float64) func([]*row, float64) string {
	return func(rows []*row, warn float64) string {
		var parts []string
		met := true
		for _, id := range []string{"h1 sweep c256", "h1 sweep c1000"} {
			rs, ok := effVs(rows, id, peer)
			if !ok {
				continue
			}
			if median(rs) < want {
				met = false
			}
			parts = append(parts, fmt.Sprintf("%s: aralez / %s = %s", id, peer, ratioCell(rs, warn)))
		}
		return verdict(parts, met, "scenario 11 with c256 and c1000")
	}
}

func judgeSweepSelf(rows []*row, warn float64) string {
	base := findRow(rows, "h1 sweep c50", "aralez")
	if base == nil || len(base.eff) == 0 {
		return "not measured in this run (scenario 11 with c50)"
	}
	var parts []string
	met := true
	for _, id := range []string{"h1 sweep c256", "h1 sweep c1000"} {
		r := findRow(rows, id, "aralez")
		if r == nil || len(r.eff) == 0 {
			continue
		}
		rs := ratios(r.eff, base.eff)
		if median(rs) < 0.9 {
			met = false
		}
		parts = append(parts, fmt.Sprintf("%s = %s of c50", id, ratioCell(rs, warn)))
	}
	return verdict(parts, met, "scenario 11 with c256 and c1000")
}

func judgeUser(rows []*row, warn float64) string {
	var parts []string
	met := true
	for _, ids := range [][2]string{{"h1 100B c50", "h1 sweep c50"}, {"h1 100B c256", "h1 sweep c256"}} {
		for _, id := range ids {
			ours, ng := findRow(rows, id, "aralez"), findRow(rows, id, "nginx")
			if ours == nil || ng == nil || len(ours.userPR) == 0 || len(ng.userPR) == 0 {
				continue
			}
			rs := ratios(ours.userPR, ng.userPR)
			if median(rs) > 1 {
				met = false
			}
			parts = append(parts, fmt.Sprintf("%s: %.1f vs nginx %.1f µs (%s)", id,
				median(values(ours.userPR))*1e6, median(values(ng.userPR))*1e6, ratioCell(rs, warn)))
			break // one scenario per connection count: 1 if it ran, else 11
		}
	}
	return verdict(parts, met, "scenario 1 or 11")
}

// verdict joins judged parts into "met: ..." or "**not met**: ...", or
// says what was not measured.
func verdict(parts []string, met bool, needs string) string {
	switch {
	case len(parts) == 0:
		return "not measured in this run (" + needs + ")"
	case met:
		return "met: " + strings.Join(parts, "; ")
	}
	return "**not met**: " + strings.Join(parts, "; ")
}
