package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// renderCPU writes the CPU breakdown per request of every proxy row:
// user and system CPU µs per request from /proc/PID/stat over the
// measured windows (medians over rounds), and the system calls per request
// of the extra syscalls window when one was run (sysc, keyed by
// case|target; tool is the counter, "off" for none).
func renderCPU(w *bytes.Buffer, rows []*row, sysc map[string]*sysCount, tool string) {
	var rs []*row
	for _, r := range rows {
		if r.kind != kindDirect && len(r.rounds) > 0 {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "CPU per request: user and system CPU of the proxy's processes (/proc/PID/stat, medians over rounds; system time includes the network work the kernel does in the proxy's context), and system calls per request.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | target | user µs/req | sys µs/req | CPU µs/req | syscalls/req | most frequent syscalls per request |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|")
	for _, r := range rs {
		u, sy := median(values(r.userPR))*1e6, median(values(r.sysPR))*1e6
		calls, top := "-", "-"
		if sc := sysc[r.caseID+"|"+r.target]; sc != nil {
			if sc.err != "" {
				calls = "not counted"
			} else {
				calls = fmt.Sprintf("%.2f", sc.total/sc.requests)
				if sc.requests < fewRequests {
					// The proxy's own timers and health checks weigh
					// on so few requests (strace on a busy machine).
					calls += fmt.Sprintf(" (only %.0f requests)", sc.requests)
				}
				top = topCalls(sc.calls, sc.requests, 4)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.caseID, r.target, us(u), us(sy), us(u+sy), calls, top)
	}
	fmt.Fprintln(w)
	switch tool {
	case "off":
		fmt.Fprintln(w, "Syscalls per request: not counted in this run (`SYSCALLS=1` adds one unmeasured window per case and proxy).")
	case "strace":
		fmt.Fprintln(w, "Syscalls counted with `strace -c -f` attached to the proxy's processes in one extra unmeasured window per case (the proxy runs several times slower under strace; the count per request is what this column is for).")
	default:
		fmt.Fprintln(w, "Syscalls counted with `perf stat` (raw_syscalls:sys_enter for the total, syscalls:sys_enter_* for the named ones) on the proxy's processes in one extra unmeasured window per case.")
	}
	fmt.Fprintln(w)
}

// fewRequests is the request count of a syscalls window below which its
// per-request figure is marked as imprecise.
const fewRequests = 1000

func us(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// servedFromCache returns, per round, the share of the requests answered
// that did not reach the upstreams.
func servedFromCache(r *row) []float64 {
	var out []float64
	for i, rq := range r.reqs {
		if rq > 0 {
			out = append(out, max(0, 1-(r.up1[i]+r.up2[i])/rq))
		}
	}
	return out
}

// cacheCase reports whether the case id is one of scenario 10's.
func cacheCase(id string) bool { return strings.HasPrefix(id, "cache hit ") }

// missThreshold is the share served from cache below which a row of the
// cache hit scenario counts as answered by proxying, not by a cache.
const missThreshold = 0.5

// renderCache writes, for the cache hit scenario, how many requests each
// proxy answered from its cache, and says loudly which rows are not cache
// hits at all (aralez before its cache exists, or a peer whose cache did
// not work).
func renderCache(w *bytes.Buffer, rows []*row) {
	var lines []string
	fmt.Fprintln(w, "| case | target | requests (median) | reached the upstreams (median) | served from cache |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|")
	for _, r := range rows {
		if r.kind == kindDirect || len(r.rounds) == 0 {
			continue
		}
		served := median(servedFromCache(r))
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.1f %% |\n", r.caseID, r.target, median(r.reqs), median(r.up1)+median(r.up2), 100*served)
		if served < missThreshold {
			what := fmt.Sprintf("%s's cache did not answer %q: check its config", r.target, r.caseID)
			if r.kind == kindOurs {
				what = fmt.Sprintf("%s answered %q as cache misses: its response cache is not in this binary (or not on), so this row measures proxying, not cache hits", r.target, r.caseID)
			}
			lines = append(lines, what)
		}
	}
	fmt.Fprintln(w)
	for _, l := range lines {
		fmt.Fprintf(w, "- **%s**\n", l)
	}
	if len(lines) > 0 {
		fmt.Fprintln(w)
	}
}
