package main

import (
	"strings"
	"testing"
)

func TestParseStraceSummary(t *testing.T) {
	t.Parallel()
	total, calls, err := parseStraceSummary(testdata(t, "strace-c.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if total != 363 {
		t.Errorf("parseStraceSummary total = %v; want 363", total)
	}
	// A line with an errors column and one without.
	if calls["openat"] != 69 || calls["read"] != 13 || calls["wait4"] != 4 {
		t.Errorf("parseStraceSummary calls: openat %v, read %v, wait4 %v; want 69, 13, 4", calls["openat"], calls["read"], calls["wait4"])
	}
	if _, ok := calls["total"]; ok {
		t.Errorf("parseStraceSummary counted the total line as a system call")
	}
	if _, _, err := parseStraceSummary([]byte("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n")); err == nil {
		t.Errorf("parseStraceSummary(no table) = nil error; want one")
	}
}

func TestParsePerfStat(t *testing.T) {
	t.Parallel()
	total, calls, err := parsePerfStat(testdata(t, "perf-stat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if total != 359 || calls["read"] != 13 || calls["write"] != 2 || calls["epoll_pwait"] != 0 {
		t.Errorf("parsePerfStat = %v, %v; want 359, read 13, write 2, epoll_pwait 0", total, calls)
	}
	if _, _, err := parsePerfStat([]byte("<not counted>,,raw_syscalls:sys_enter,0,100.00,,\n")); err == nil {
		t.Errorf("parsePerfStat(not counted) = nil error; want one")
	}
}

func TestTopCalls(t *testing.T) {
	t.Parallel()
	calls := map[string]float64{"read": 440, "write": 400, "epoll_pwait": 62, "futex": 62, "close": 0}
	if got, want := topCalls(calls, 200, 3), "read 2.20, write 2.00, epoll_pwait 0.31"; got != want {
		t.Errorf("topCalls = %q; want %q (ties by name)", got, want)
	}
	if got := topCalls(calls, 0, 3); got != "-" {
		t.Errorf("topCalls(no requests) = %q; want -", got)
	}
	if got := topCalls(map[string]float64{"close": 0}, 10, 3); strings.Contains(got, "close") {
		t.Errorf("topCalls lists a call made 0 times: %q", got)
	}
}
