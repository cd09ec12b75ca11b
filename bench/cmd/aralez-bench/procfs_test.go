package main

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	in := "cpu  100 0 50 1000 10 0 5 0 0 0\n" +
		"cpu0 40 0 20 500 5 0 3 2 0 0\n" +
		"cpu1 60 1 30 500 5 0 2 0 7 0\n" +
		"intr 12345\n"
	got, err := parseProcStat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("parseProcStat: %d CPUs; want 2", len(got))
	}
	// busy = total - idle - iowait; guest columns are already in user.
	if want := (cpuTimes{Busy: 65, Total: 570}); got[0] != want {
		t.Errorf("parseProcStat cpu0 = %+v; want %+v", got[0], want)
	}
	if want := (cpuTimes{Busy: 93, Total: 598}); got[1] != want {
		t.Errorf("parseProcStat cpu1 = %+v; want %+v", got[1], want)
	}
	if _, err := parseProcStat([]byte("cpu 1 2 3\n")); err == nil {
		t.Errorf("parseProcStat(no per-CPU line) = nil error; want one")
	}
	real, err := parseProcStat(testdata(t, "proc-stat.txt"))
	if err != nil || len(real) == 0 {
		t.Errorf("parseProcStat(testdata) = %v, %v; want CPUs", real, err)
	}
}

func TestParsePidStat(t *testing.T) {
	t.Parallel()
	u, sys, err := parsePidStat(testdata(t, "proc-pid-stat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if u != 1234 || sys != 567 {
		t.Errorf("parsePidStat = %v, %v; want 1234, 567 (a name with spaces and parentheses)", u, sys)
	}
	if _, _, err := parsePidStat([]byte("1 (x) S 1 2")); err == nil {
		t.Errorf("parsePidStat(short) = nil error; want one")
	}
}

func TestStatusFields(t *testing.T) {
	t.Parallel()
	b := testdata(t, "proc-pid-status.txt")
	v, ok := statusField(b, "VmHWM")
	if !ok {
		t.Fatal("statusField(VmHWM) not found")
	}
	kb, err := parseKB(v)
	if err != nil || kb != 29312 {
		t.Errorf("parseKB(%q) = %v, %v; want 29312", v, kb, err)
	}
	if v, _ := statusField(b, "Cpus_allowed_list"); v != "0" {
		t.Errorf("statusField(Cpus_allowed_list) = %q; want \"0\"", v)
	}
	if _, ok := statusField(b, "Nope"); ok {
		t.Errorf("statusField(Nope) found; want not found")
	}
}

func TestParseCPUList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"0", []int{0}, false},
		{"1-3", []int{1, 2, 3}, false},
		{"0,2-3,2", []int{0, 2, 3}, false},
		{"3-1", nil, true},
		{"x", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := parseCPUList(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if got, err := parseScenarios(""); err != nil || len(got) != 9 {
		t.Errorf("parseScenarios(\"\") = %v, %v; want all 9", got, err)
	}
	if got, err := parseScenarios("1,4-5"); err != nil || !slices.Equal(got, []int{1, 4, 5}) {
		t.Errorf("parseScenarios(1,4-5) = %v, %v; want [1 4 5]", got, err)
	}
	if _, err := parseScenarios("12"); err == nil {
		t.Errorf("parseScenarios(12) = nil error; want one")
	}
}

// TestProcessTree starts a real shell with a child, reads its CPU time and
// peak RSS from /proc, and checks that stop leaves no process behind.
func TestProcessTree(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	p, err := startProc("tree", []string{sh, "-c", "sleep 30 & sleep 30 & wait"}, nil, dir+"/log")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pids = treePids(p.pid()); len(pids) == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(pids) != 3 || pids[0] != p.pid() {
		t.Fatalf("treePids = %v; want the shell and its two children", pids)
	}
	if hwm := pidsHWM(pids); hwm <= 0 {
		t.Errorf("pidsHWM = %v; want > 0", hwm)
	}
	resetHWM(pids)
	if ticks := pidsTicks(pids); ticks < 0 {
		t.Errorf("pidsTicks = %v; want >= 0", ticks)
	}
	if aff := pidsAffinity(pids); aff == "-" || aff == "" {
		t.Errorf("pidsAffinity = %q; want a CPU list", aff)
	}
	p.stop(3 * time.Second)
	if p.alive() {
		t.Fatalf("process alive after stop")
	}
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("process %d still running after stop: %s", pid, b)
		}
	}
	procs.mu.Lock()
	n := slices.Index(procs.list, p)
	procs.mu.Unlock()
	if n >= 0 {
		t.Errorf("stopped process still registered for cleanup")
	}
}

func TestRunTool(t *testing.T) {
	t.Parallel()
	out, _, err := runTool(t.Context(), 10*time.Second, []string{"sh", "-c", "echo hello; echo err >&2"}, nil)
	if err != nil || !strings.Contains(string(out), "hello") || !strings.Contains(string(out), "err") {
		t.Errorf("runTool(echo) = %q, %v; want hello and err", out, err)
	}
	start := time.Now()
	_, _, err = runTool(t.Context(), 200*time.Millisecond, []string{"sh", "-c", "sleep 30"}, nil)
	if err == nil {
		t.Errorf("runTool(sleep 30, 200ms limit) = nil error; want a timeout")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("runTool(sleep 30, 200ms limit) took %v; want it killed promptly", el)
	}
}

func TestPortFree(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := portFree(addr); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("portFree(%s) while listening = %v; want taken", addr, err)
	}
	ln.Close()
	// Other tests running in parallel may briefly use the freed port as
	// the source port of an outgoing connection: poll for it.
	var err2 error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err2 = portFree(addr); err2 == nil {
			return
		}
	}
	t.Errorf("portFree(%s) after close = %v; want nil", addr, err2)
}

func TestParseSchedstat(t *testing.T) {
	t.Parallel()
	run, wait, err := parseSchedstat([]byte("12452927 7503246 43\n"))
	if err != nil || run != 12452927 || wait != 7503246 {
		t.Errorf("parseSchedstat = %v, %v, %v; want 12.452927ms, 7.503246ms", run, wait, err)
	}
	for _, bad := range []string{"", "12", "x 1 2"} {
		if _, _, err := parseSchedstat([]byte(bad)); err == nil {
			t.Errorf("parseSchedstat(%q) = nil error; want one", bad)
		}
	}
	// This process's own threads have run.
	if run, _ := pidsSched([]int{os.Getpid()}); run <= 0 {
		t.Errorf("pidsSched(self) ran %v; want > 0", run)
	}
}
