package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a long-running process the driver started (a proxy, an
// upstream). It runs in its own process group so that stop reaches every
// process it forked, and nothing else.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
	err  error         // Wait's result, valid after done
}

// procs remembers every process started, so cleanup can stop them all.
// mu guards list.
var procs struct {
	mu   sync.Mutex
	list []*proc
}

// startProc starts argv with its output appended to logPath and registers
// it for cleanup. env nil means the driver's environment.
func startProc(name string, argv, env []string, logPath string) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group, so stop reaches all its processes and nothing else;
	// killed with the driver even when the driver itself is SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	procs.mu.Lock()
	procs.list = append(procs.list, p)
	procs.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process id of the process group leader.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process has not exited.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits for the leader. It is safe to call more than once.
func (p *proc) stop(grace time.Duration) {
	if p.alive() {
		_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// Children of the leader may still be around even when it is gone
	// (nginx workers finish their requests): KILL what is left of the
	// group, and wait until none of it runs any more.
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	for deadline := time.Now().Add(grace); groupAlive(p.pid()) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	procs.mu.Lock()
	for i, q := range procs.list {
		if q == p {
			procs.list = append(procs.list[:i], procs.list[i+1:]...)
			break
		}
	}
	procs.mu.Unlock()
}

// groupAlive reports whether a process of group pgid is still running
// (zombies, which only wait to be reaped, do not count).
func groupAlive(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		// After the name: state, ppid, pgrp.
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) >= 3 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" && fields[0] != "X" {
			return true
		}
	}
	return false
}

// stopAll stops every registered process, newest first.
func stopAll() {
	procs.mu.Lock()
	list := append([]*proc(nil), procs.list...)
	procs.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(3 * time.Second)
	}
}

// runTool runs a load generator or checker to completion under a time
// limit, in its own process group (killed with the group on ctx cancel or
// timeout), and returns its combined output and its CPU time in seconds.
func runTool(ctx context.Context, limit time.Duration, argv []string, env []string) (out []byte, cpuSec float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	// Own process group, so stop reaches all its processes and nothing else;
	// killed with the driver even when the driver itself is SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("running %s: %w", argv[0], err)
	}
	p := &proc{name: argv[0], cmd: cmd, done: make(chan struct{})}
	procs.mu.Lock()
	procs.list = append(procs.list, p)
	procs.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop(time.Second)
	}
	p.stop(time.Second) // unregisters; the group is gone already
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpuSec = tvSec(ru.Utime) + tvSec(ru.Stime)
		}
	}
	if ctx.Err() != nil {
		return []byte(buf.String()), cpuSec, fmt.Errorf("running %s: %w", argv[0], ctx.Err())
	}
	if p.err != nil {
		return []byte(buf.String()), cpuSec, fmt.Errorf("running %s: %w", argv[0], p.err)
	}
	return []byte(buf.String()), cpuSec, nil
}

func tvSec(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// selfCPU returns the driver's own user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tvSec(ru.Utime) + tvSec(ru.Stime)
}

// portFree reports whether nothing listens on addr and we may bind it.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("address %s is taken: %w", addr, err)
	}
	return ln.Close()
}

// waitListen waits until addr accepts connections, up to limit, and fails
// early when p exits.
func waitListen(ctx context.Context, p *proc, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if p != nil && !p.alive() {
			if p.err == nil {
				return fmt.Errorf("%s exited (status 0) before listening on %s", p.name, addr)
			}
			return fmt.Errorf("%s exited before listening on %s: %w", p.name, addr, p.err)
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing listening on %s after %v", addr, limit)
}

// pinSelf moves every thread of the driver to cpus, so the driver (and any
// thread the Go runtime creates later, which inherits the mask) stays off
// the proxy's CPUs.
func pinSelf(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pinning the driver: %w", err)
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pinning the driver: %w", err)
	}
	return nil
}

// logTo returns a writer that writes to both w and the file at path.
func logTo(w io.Writer, path string) (io.Writer, func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return io.MultiWriter(w, f), func() { f.Close() }, nil
}
