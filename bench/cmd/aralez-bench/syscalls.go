package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sysCount is the system calls of one proxy in one syscalls window.
type sysCount struct {
	tool     string             // "perf" or "strace"
	total    float64            // every system call
	calls    map[string]float64 // by name; perf: only perfSyscalls
	requests float64            // requests answered in the same span
	err      string
}

// perfSyscalls are the system calls perf counts one by one (besides the
// total): what a proxy's request path makes.
var perfSyscalls = []string{"read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
	"epoll_wait", "epoll_pwait", "epoll_ctl", "futex", "nanosleep", "getsockopt", "setsockopt", "accept4",
	"close", "sendfile64", "openat", "fstat", "newfstatat", "pread64", "getpid", "tgkill", "madvise", "sched_yield"}

// resolveSyscalls picks the counter for -syscalls auto: perf when it can
// count the raw_syscalls tracepoint here (a cheap counter), else strace
// (ptrace stops on every call: the proxy runs several times slower in
// that window, which changes the rate but not the count per request).
// It also finds which per-call tracepoints perf has.
func (s *suite) resolveSyscalls() {
	if s.o.syscalls == "off" {
		return
	}
	perfOK := false
	if _, err := exec.LookPath("perf"); err == nil {
		out, err := exec.CommandContext(s.ctx, "perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true").CombinedOutput()
		perfOK = err == nil && bytes.Contains(out, []byte("raw_syscalls:sys_enter"))
		if perfOK {
			list, _ := exec.CommandContext(s.ctx, "perf", "list", "syscalls:sys_enter_*").CombinedOutput()
			for _, n := range perfSyscalls {
				if bytes.Contains(list, []byte("syscalls:sys_enter_"+n+" ")) {
					s.perfEvts = append(s.perfEvts, n)
				}
			}
		}
	}
	_, straceErr := exec.LookPath("strace")
	switch {
	case s.o.syscalls == "auto" && perfOK, s.o.syscalls == "perf" && perfOK:
		s.o.syscalls = "perf"
	case (s.o.syscalls == "auto" || s.o.syscalls == "strace") && straceErr == nil:
		s.o.syscalls = "strace"
	default:
		s.loud(0, "SYSCALLS: no usable counter (%s asked; perf usable: %v; strace installed: %v): no syscalls column in this run",
			s.o.syscalls, perfOK, straceErr == nil)
		s.o.syscalls = "off"
	}
}

// syscallWindow runs one extra, unmeasured window of case c against proxy
// t while counting the system calls of its whole process tree, and keeps
// the count per request answered in the same span. Held cases (the
// connection sweep) count only after every connection is up, with
// requests from the upstream counters; the others count over the whole
// load generator run, with requests from its own report.
func (s *suite) syscallWindow(c tcase, t *target) {
	sc := &sysCount{tool: s.o.syscalls}
	key := c.id + "|" + t.name
	s.sysc[key] = sc
	defer func() {
		if sc.err != "" {
			s.loud(c.scen, "SYSCALLS of %s in %q not counted: %s", t.name, c.id, sc.err)
		} else {
			s.say("syscalls of %s in %q (%s): %.2f per request (%.0f calls, %.0f requests)", t.name, c.id, sc.tool,
				sc.total/sc.requests, sc.total, sc.requests)
		}
	}()
	if t.p == nil || !t.p.alive() {
		sc.err = "the proxy is not running"
		return
	}
	ps := s.pidSets(t)
	base := fmt.Sprintf("s%d.%s.%s.syscalls", c.scen, strings.ReplaceAll(c.id, " ", "_"), t.name)
	outFile := filepath.Join(s.o.outDir, "logs", base+"."+sc.tool+".txt")
	var err error
	if c.held {
		var counted bool
		h := s.runHeld(c, t, ps, filepath.Join(s.o.outDir, "logs", base+".load.txt"), func(d time.Duration) {
			var r0, r1 [2]float64
			sc.total, sc.calls, err = s.traceSyscalls(ps.proxy, outFile, func() {
				_, r0 = upCounters()
				sleepCtx(s.ctx, d)
				_, r1 = upCounters()
			})
			counted = true
			// Each stub_status read is one request on each upstream.
			sc.requests = max(0, r1[0]-r0[0]-1) + max(0, r1[1]-r0[1]-1)
		})
		if err == nil && !counted {
			err = h.err
			if err == nil {
				err = errors.New("the load did not start")
			}
		}
	} else {
		argv, aerr := s.loadArgv(c, t, s.o.duration, true)
		if aerr != nil {
			sc.err = aerr.Error()
			return
		}
		s.note(t.name, append([]string{"syscalls (" + sc.tool + "):"}, argv...))
		var out []byte
		var runErr error
		sc.total, sc.calls, err = s.traceSyscalls(ps.proxy, outFile, func() {
			os.Remove(filepath.Join(s.shm, "h2.log"))
			out, _, runErr = runTool(s.ctx, s.o.duration+30*time.Second, argv, nil)
		})
		_ = os.WriteFile(filepath.Join(s.o.outDir, "logs", base+".load.txt"), out, 0o644)
		if err == nil {
			var r loadResult
			r, err = s.parseLoad(c, out)
			if err == nil {
				err = runErr
			}
			sc.requests = r.Requests
		}
	}
	switch {
	case err != nil:
		sc.err = err.Error()
	case sc.requests <= 0:
		sc.err = "no request completed while counting"
	}
}

// traceSyscalls attaches the configured counter to pids (every thread,
// and threads and children started later), runs body, detaches, and
// returns the number of system calls made meanwhile, in total and by name.
// The counter's report is kept at outFile.
func (s *suite) traceSyscalls(pids []int, outFile string, body func()) (float64, map[string]float64, error) {
	if len(pids) == 0 {
		return 0, nil, errors.New("no process to count")
	}
	ids := make([]string, len(pids))
	for i, p := range pids {
		ids[i] = strconv.Itoa(p)
	}
	var argv []string
	switch s.o.syscalls {
	case "perf":
		events := []string{"raw_syscalls:sys_enter"}
		for _, n := range s.perfEvts {
			events = append(events, "syscalls:sys_enter_"+n)
		}
		argv = []string{"perf", "stat", "-x,", "-o", outFile, "-e", strings.Join(events, ","), "-p", strings.Join(ids, ",")}
	case "strace":
		argv = []string{"strace", "-c", "-f", "-o", outFile}
		for _, id := range ids {
			argv = append(argv, "-p", id)
		}
	default:
		return 0, nil, fmt.Errorf("no syscall counter %q", s.o.syscalls)
	}
	s.note("syscall counter", argv)
	os.Remove(outFile)
	logPath := outFile + ".log"
	os.Remove(logPath)
	p, err := startProc(argv[0], argv, nil, logPath)
	if err != nil {
		return 0, nil, err
	}
	defer p.stop(3 * time.Second)
	if err := waitAttached(s, p, logPath, len(pids)); err != nil {
		return 0, nil, err
	}
	body()
	_ = syscall.Kill(p.pid(), syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		return 0, nil, fmt.Errorf("%s did not stop within 20 s of SIGINT", argv[0])
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		return 0, nil, fmt.Errorf("%s wrote no report: %w", argv[0], err)
	}
	if s.o.syscalls == "perf" {
		return parsePerfStat(b)
	}
	return parseStraceSummary(b)
}

// waitAttached waits until the counter has attached to all n processes:
// strace says "Process N attached" once per process; perf attaches before
// it reads its first event and says nothing, so a short pause does.
func waitAttached(s *suite, p *proc, logPath string, n int) error {
	if s.o.syscalls == "perf" {
		sleepCtx(s.ctx, 300*time.Millisecond)
		if !p.alive() {
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("perf exited: %s", oneLine(b))
		}
		return nil
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		b, _ := os.ReadFile(logPath)
		if bytes.Count(b, []byte(" attached")) >= n {
			sleepCtx(s.ctx, 100*time.Millisecond)
			return nil
		}
		if !p.alive() {
			return fmt.Errorf("strace exited: %s", oneLine(b))
		}
		if !sleepCtx(s.ctx, 50*time.Millisecond) {
			return s.ctx.Err()
		}
	}
	return errors.New("strace did not attach within 15 s")
}

// parseStraceSummary reads the table `strace -c` prints (calls in the
// fourth column, the name in the last; the errors column may be empty)
// and returns the "total" line's calls and the calls by name.
func parseStraceSummary(b []byte) (float64, map[string]float64, error) {
	calls := map[string]float64{}
	total, found := 0.0, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] == "%" || strings.HasPrefix(f[0], "---") {
			continue
		}
		n, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			continue
		}
		name := f[len(f)-1]
		if name == "total" {
			total, found = n, true
			continue
		}
		calls[name] += n
	}
	if !found {
		return 0, nil, fmt.Errorf("no total line in the strace summary: %s", oneLine(b))
	}
	return total, calls, nil
}

// parsePerfStat reads `perf stat -x,` output: raw_syscalls:sys_enter is
// the total, syscalls:sys_enter_NAME the calls of NAME.
func parsePerfStat(b []byte) (float64, map[string]float64, error) {
	calls := map[string]float64{}
	total, found := 0.0, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue // "<not counted>" or "<not supported>"
		}
		switch ev := f[2]; {
		case ev == "raw_syscalls:sys_enter":
			total, found = n, true
		case strings.HasPrefix(ev, "syscalls:sys_enter_"):
			calls[strings.TrimPrefix(ev, "syscalls:sys_enter_")] = n
		}
	}
	if !found {
		return 0, nil, fmt.Errorf("no raw_syscalls:sys_enter count in the perf report: %s", oneLine(b))
	}
	return total, calls, nil
}

// topCalls formats the n most frequent system calls per request, e.g.
// "read 2.20, write 2.00, epoll_pwait 0.31".
func topCalls(calls map[string]float64, requests float64, n int) string {
	if requests <= 0 || len(calls) == 0 {
		return "-"
	}
	names := make([]string, 0, len(calls))
	for k, v := range calls {
		if v > 0 {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if calls[a] != calls[b] {
			if calls[a] > calls[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range names[:min(n, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, calls[k]/requests))
	}
	return strings.Join(parts, ", ")
}
