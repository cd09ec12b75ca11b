package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// architecture Go supports.
const clkTck = 100

// cpuTimes is one "cpuN" line of /proc/stat in ticks.
type cpuTimes struct {
	Busy  float64 // everything except idle and iowait
	Total float64 // every column, guest columns excluded (already in user)
}

// parseProcStat returns the per-CPU lines of /proc/stat keyed by CPU number.
func parseProcStat(b []byte) (map[int]cpuTimes, error) {
	out := map[int]cpuTimes{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		// user nice system idle iowait irq softirq steal [guest guest_nice]
		var v [8]float64
		for i := range v {
			v[i], err = strconv.ParseFloat(f[i+1], 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat line %q: %w", sc.Text(), err)
			}
		}
		total := 0.0
		for _, x := range v {
			total += x
		}
		out[n] = cpuTimes{Busy: total - v[3] - v[4], Total: total}
	}
	if len(out) == 0 {
		return nil, errors.New("/proc/stat has no per-CPU line")
	}
	return out, nil
}

// parsePidStat returns utime and stime in ticks from /proc/PID/stat. The
// command name may hold spaces and parentheses, so fields are counted from
// the last ')'.
func parsePidStat(b []byte) (user, sys float64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc/PID/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state(3) ppid(4) ... utime is field 14, stime 15 (1-based
	// over the whole line), i.e. index 11 and 12 here.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/PID/stat: %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("/proc/PID/stat: %w", err)
	}
	return u, s, nil
}

// statusField returns the value of "Key:" in /proc/PID/status text.
func statusField(b []byte, key string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// parseKB parses "29312 kB" into KiB.
func parseKB(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("empty size")
	}
	return strconv.ParseFloat(f[0], 64)
}

// treePids returns pid and all its descendants (through
// /proc/PID/task/*/children), pid first. Processes that vanish while
// walking are skipped.
func treePids(pid int) []int {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil
	}
	out := []int{pid}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, c := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(c); err == nil {
				out = append(out, treePids(n)...)
			}
		}
	}
	return out
}

// pidsTicks returns the summed utime+stime of pids in ticks; vanished
// processes count zero.
func pidsTicks(pids []int) float64 {
	u, s := pidsUserSys(pids)
	return u + s
}

// pidsUserSys returns the summed utime and stime of pids in ticks (each
// process's own threads included, its waited-for children not); vanished
// processes count zero.
func pidsUserSys(pids []int) (user, sys float64) {
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		if u, s, err := parsePidStat(b); err == nil {
			user += u
			sys += s
		}
	}
	return user, sys
}

// pidsHWM returns the summed VmHWM (peak resident set) of pids in KiB.
func pidsHWM(pids []int) float64 {
	sum := 0.0
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		if v, ok := statusField(b, "VmHWM"); ok {
			if kb, err := parseKB(v); err == nil {
				sum += kb
			}
		}
	}
	return sum
}

// pidsAffinity returns the distinct Cpus_allowed_list values of pids
// joined with "+", e.g. "0".
func pidsAffinity(pids []int) string {
	var seen []string
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		if v, ok := statusField(b, "Cpus_allowed_list"); ok && !slices.Contains(seen, v) {
			seen = append(seen, v)
		}
	}
	if len(seen) == 0 {
		return "-"
	}
	return strings.Join(seen, "+")
}

// resetHWM resets the peak RSS of pids (writing 5 to clear_refs), so VmHWM
// read after a window is the peak during it.
func resetHWM(pids []int) {
	for _, p := range pids {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p), []byte("5"), 0)
	}
}

// ksoftirqdPids returns the pid of ksoftirqd/N for each CPU in cpus. Their
// time is network work our own traffic causes, so it is not "others".
func ksoftirqdPids(cpus []int) []int {
	want := map[string]bool{}
	for _, c := range cpus {
		want[fmt.Sprintf("ksoftirqd/%d", c)] = true
	}
	var out []int
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, f := range comms {
		b, err := os.ReadFile(f)
		if err != nil || !want[strings.TrimSpace(string(b))] {
			continue
		}
		if n, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// parseCPUList parses a taskset-style list such as "0", "1-3" or "0,2".
func parseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cpu list %q is empty", s)
	}
	return out, nil
}

// pidsSched returns how long the threads of pids have run on a CPU and
// waited on a run queue for one, from /proc/PID/task/TID/schedstat (ns,
// unlike the ticks of stat); vanished threads count zero. The wait is
// the time others' processes, on the CPUs a pinned proxy may use, took
// from it.
func pidsSched(pids []int) (run, wait time.Duration) {
	for _, p := range pids {
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", p))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if r, w, err := parseSchedstat(b); err == nil {
				run += r
				wait += w
			}
		}
	}
	return run, wait
}

// parseSchedstat reads a schedstat line: time on a CPU, time waiting on
// a run queue (both ns) and the number of time slices.
func parseSchedstat(b []byte) (run, wait time.Duration, err error) {
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("schedstat %q: want 3 fields", b)
	}
	r, err1 := strconv.ParseInt(f[0], 10, 64)
	w, err2 := strconv.ParseInt(f[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("schedstat %q: %w", b, err)
	}
	return time.Duration(r), time.Duration(w), nil
}
