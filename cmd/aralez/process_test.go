package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aralez-go/aralez/config"
)

// buildDir holds the aralez binary the process tests run; TestMain
// removes it.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// aralezBinary builds ./cmd/aralez once per test run. The folder is
// world-readable so that a process which dropped root can start it again
// (an upgrade after the privilege drop).
func aralezBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "aralez-bin-"); buildErr != nil {
			return
		}
		if buildErr = os.Chmod(buildDir, 0o755); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "aralez")
		out, err := exec.Command("go", "build", "-o", buildBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// becomeSubreaper makes this test process the reaper of the processes its
// children leave behind (the daemon after its foreground half exits, the
// new process after an upgrade), so that reap can collect their exit
// status.
var subreaperOnce sync.Once

func becomeSubreaper(t *testing.T) {
	t.Helper()
	var err error
	subreaperOnce.Do(func() { err = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })
	if err != nil {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", err)
	}
}

// reap waits, polling, until pid (a child or an orphan this process
// reaps) has exited and returns its wait status.
func reap(t *testing.T, pid int, ceiling time.Duration) syscall.WaitStatus {
	t.Helper()
	deadline := time.Now().Add(ceiling)
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid {
			return ws
		}
		if err != nil && !errors.Is(err, syscall.ECHILD) && !errors.Is(err, syscall.EINTR) {
			t.Fatalf("wait4(%d): %v", pid, err)
		}
		// ECHILD: an orphan not handed to us yet (its parent still runs).
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still running after %v", pid, ceiling)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// killAtCleanup ends pid with SIGKILL at the end of the test if it still
// runs: only processes the test started (directly or through the binary).
func killAtCleanup(t *testing.T, pid int) {
	t.Cleanup(func() {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			for i := 0; i < 250 && alive(pid); i++ {
				time.Sleep(20 * time.Millisecond)
			}
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
	})
}

// readPID returns the pid in path, or 0.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// procStatus returns the value of a /proc/<pid>/status line ("Uid").
func procStatus(t *testing.T, pid int, key string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("/proc/%d/status has no %s line", pid, key)
	return ""
}

// keepAlive is the TCP keep-alive state of a socket.
type keepAlive struct {
	on, idle, interval, count int
}

// serverKeepAlive finds, in process pid, the socket whose peer is the
// local address of the client connection c, and reads its keep-alive
// options. It copies the descriptor with pidfd_getfd(2), which needs
// ptrace rights over pid (the same user, or root).
func serverKeepAlive(t *testing.T, pid int, c net.Conn) keepAlive {
	t.Helper()
	want := c.LocalAddr().(*net.TCPAddr)
	pidfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("pidfd_open needs Linux 5.3 (pidfd_getfd 5.6)")
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(pidfd)
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "socket:") {
			continue
		}
		n, _ := strconv.Atoi(e.Name())
		fd, err := unix.PidfdGetfd(pidfd, n, 0)
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("pidfd_getfd needs Linux 5.6")
		}
		if err != nil {
			continue // closed meanwhile
		}
		sa, err := unix.Getpeername(fd)
		peer, ok := sa.(*unix.SockaddrInet4)
		if err != nil || !ok || peer.Port != want.Port || !net.IP(peer.Addr[:]).Equal(want.IP) {
			unix.Close(fd)
			continue
		}
		var ka keepAlive
		get := func(level, opt int) int {
			v, err := unix.GetsockoptInt(fd, level, opt)
			if err != nil {
				t.Fatalf("getsockopt: %v", err)
			}
			return v
		}
		ka.on = get(unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		ka.idle = get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		ka.interval = get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		ka.count = get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
		unix.Close(fd)
		return ka
	}
	t.Fatalf("no socket in pid %d has the peer %s", pid, want)
	return keepAlive{}
}

// dialServed opens a connection to addr and completes one request on it,
// so the server has accepted it and keeps it open (keep-alive).
func dialServed(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: keepalive.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 ") {
		t.Fatalf("response line %q, %v", line, err)
	}
	return c
}

// TestKeepAliveConfig checks that tcp_keepalive_idle/interval/count reach
// accepted client sockets of the proxy listener, read back from the
// kernel: unset keeps Go's default (15 s, 15 s, 9), idle alone takes
// Aralez's interval and count defaults (issue 6).
func TestKeepAliveConfig(t *testing.T) {
	up := named(t, "K")
	tests := []struct {
		name string
		yaml string
		want keepAlive
	}{
		{"unset", "", keepAlive{1, 15, 15, 9}},
		{"idle only", "tcp_keepalive_idle: 20\n", keepAlive{1, 20, config.DefaultTCPKeepaliveInterval, config.DefaultTCPKeepaliveCount}},
		{"all", "tcp_keepalive_idle: 7\ntcp_keepalive_interval: 3\ntcp_keepalive_count: 4\n", keepAlive{1, 7, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			addr := freeAddr(t)
			writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf("proxy_address_http: %q\nlog_level: error\n%s", addr, tt.yaml))
			writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML(up, ""))
			cfg, err := config.Load(filepath.Join(dir, "main.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			srv, err := newServer(cfg, filepath.Join(dir, "main.yaml"), slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.serve(ctx, make(chan os.Signal)) }()
			defer func() {
				cancel()
				<-done
			}()
			c := dialServed(t, addr)
			if got := serverKeepAlive(t, os.Getpid(), c); got != tt.want {
				t.Errorf("accepted socket keep-alive = %+v; want %+v", got, tt.want)
			}
		})
	}
}

// TestKeepAliveInherited checks the listener path of an upgraded process:
// a listener rebuilt from a file descriptor has no ListenConfig, so
// withKeepAlive sets the config on each accepted connection.
func TestKeepAliveInherited(t *testing.T) {
	orig, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	f, err := orig.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	inherited, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ln := withKeepAlive(inherited, keepAliveConfig(&config.Main{TCPKeepaliveIdle: 11, TCPKeepaliveInterval: 2, TCPKeepaliveCount: 3}))
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	if sc == nil {
		t.FailNow()
	}
	defer sc.Close()
	want := keepAlive{1, 11, 2, 3}
	if got := serverKeepAlive(t, os.Getpid(), c); got != want {
		t.Errorf("inherited listener: keep-alive = %+v; want %+v", got, want)
	}
	// Unset config leaves the listener as it is.
	if got := withKeepAlive(inherited, net.KeepAliveConfig{}); got != inherited {
		t.Errorf("withKeepAlive(ln, unset) = %T; want ln itself", got)
	}
}

// TestKeepAliveRefusedKeepsServing: a keep-alive setting the kernel
// refuses for an accepted socket (a count over TCP_KEEPCNT's 127, say)
// leaves that socket's keep-alive as it is, as a fresh listener's
// ListenConfig does, instead of failing Accept: a failing Accept stopped
// the whole process right after a binary upgrade.
func TestKeepAliveRefusedKeepsServing(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := withKeepAlive(inner, net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Count: 100000})
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept with a refused keep-alive count = %v; want the connection", err)
	}
	sc.Close()
}

// needNobody skips a test on systems without the Debian accounts
// nobody (65534) and nogroup (65534) the privilege tests use.
func needNobody(t *testing.T) {
	t.Helper()
	u, err := user.Lookup("nobody")
	g, gerr := user.LookupGroup("nogroup")
	if err != nil || gerr != nil || u.Uid != "65534" || u.Gid != "65534" || g.Gid != "65534" {
		t.Skip("needs user nobody and group nogroup, both 65534")
	}
}

func TestLookupAccount(t *testing.T) {
	t.Parallel()
	needNobody(t)
	tests := []struct {
		name, user, group string
		want              account
		err               string
	}{
		{"empty keeps the current account", "", "", account{os.Getuid(), os.Getgid(), []int{os.Getgid()}}, ""},
		{"user name takes its primary group", "nobody", "", account{65534, 65534, []int{65534}}, ""},
		{"numeric ids", "65534", "0", account{65534, 0, []int{0, 65534}}, ""},
		{"group only", "", "nogroup", account{os.Getuid(), 65534, []int{65534}}, ""},
		{"unknown user", "no-such-user-aralez", "", account{}, `runuser "no-such-user-aralez"`},
		{"unknown group", "nobody", "no-such-group-aralez", account{}, `rungroup "no-such-group-aralez"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := lookupAccount(tt.user, tt.group)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("lookupAccount(%q, %q) error = %v; want %q", tt.user, tt.group, err, tt.err)
				}
				return
			}
			if err != nil || got.uid != tt.want.uid || got.gid != tt.want.gid || !slices.Equal(got.groups, tt.want.groups) {
				t.Errorf("lookupAccount(%q, %q) = %+v, %v; want %+v", tt.user, tt.group, got, err, tt.want)
			}
		})
	}
}

func TestPIDFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aralez.pid")
	if err := writePIDFile(path); err != nil {
		t.Fatal(err)
	}
	if got := readPID(path); got != os.Getpid() {
		t.Fatalf("pid file names %d; want %d", got, os.Getpid())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("pid file mode = %v, %v; want 0644", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d files after the write; want only the pid file", len(entries))
	}
	// A pid file naming another process (the one that took over after an
	// upgrade) stays.
	os.WriteFile(path, []byte("1\n"), 0o644)
	removePIDFile(path)
	if readPID(path) != 1 {
		t.Errorf("removePIDFile removed another process's pid file")
	}
	writePIDFile(path)
	removePIDFile(path)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("removePIDFile left this process's pid file: %v", err)
	}
}

// proxyDir writes main.yaml (with the given extra keys) and an upstreams
// file routing everything to upstream into a fresh folder readable by
// every user, and returns the folder and the proxy address.
func proxyDir(t *testing.T, upstream, extra string) (dir, addr string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "aralez-proc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr = freeAddr(t)
	writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(
		"proxy_address_http: %q\nupstreams_conf: upstreams.yaml\npid_file: aralez.pid\nlog_file: aralez.log\nlog_level: info\ndrain_timeout: 5s\nhealth_check_interval: 200ms\n%s", addr, extra))
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML(upstream, ""))
	return dir, addr
}

// waitServing polls until the proxy at addr answers want.
func waitServing(t *testing.T, addr, want string) {
	t.Helper()
	if !waitFor(15*time.Second, func() bool { got, err := body("http://" + addr + "/"); return err == nil && got == want }) {
		got, err := body("http://" + addr + "/")
		t.Fatalf("proxy at %s answers %q, %v; want %q", addr, got, err, want)
	}
}

// logOf returns the log file and the captured stderr of the binary.
func logOf(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "aralez.log"))
	e, _ := os.ReadFile(filepath.Join(dir, "stderr.txt"))
	return string(b) + string(e)
}

// TestDaemon starts the binary with daemon: true, and with Aralez's -d
// flag (issue 12): the command returns 0 only once the daemon serves,
// the pid file names the daemon (another process, in its own session),
// which serves requests, upgrades in place on SIGUSR2, and exits 0 on
// SIGTERM, removing the pid file (issue 6).
func TestDaemon(t *testing.T) {
	bin := aralezBinary(t)
	becomeSubreaper(t)
	for _, tt := range []struct {
		name, yaml string
		flags      []string
	}{
		{name: "daemon: true", yaml: "daemon: true\n"},
		{name: "-d", flags: []string{"-d"}},
	} {
		t.Run(tt.name, func(t *testing.T) { testDaemon(t, bin, tt.yaml, tt.flags) })
	}
}

func testDaemon(t *testing.T, bin, yaml string, flags []string) {
	dir, addr := proxyDir(t, named(t, "D"), yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(flags, "-c", filepath.Join(dir, "main.yaml"))...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aralez -c (daemon) = %v; output:\n%s\nlog:\n%s", err, out, logOf(dir))
	}
	pid := readPID(filepath.Join(dir, "aralez.pid"))
	if pid == 0 {
		t.Fatalf("no pid file when the command returned; output %s", out)
	}
	killAtCleanup(t, pid)
	if pid == cmd.Process.Pid || !alive(pid) {
		t.Fatalf("pid file names %d (foreground was %d); want a live daemon", pid, cmd.Process.Pid)
	}
	if want := fmt.Sprintf("daemon running, pid %d", pid); !strings.Contains(string(out), want) {
		t.Errorf("output %q lacks %q", out, want)
	}
	// It answers at once: the command returned after the listeners were up.
	if got, err := body("http://" + addr + "/"); err != nil || got != "D" {
		t.Errorf("daemon answers %q, %v; want D", got, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name: state ppid pgrp session.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if f[3] != strconv.Itoa(pid) {
		t.Errorf("daemon session id = %s; want its own pid %d (setsid)", f[3], pid)
	}
	// The daemon upgrades in place: the new process is not daemonized
	// again (it is already detached) and takes over the pid file.
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("upgraded daemon wait status %v; want exit 0", ws)
	}
	next := readPID(filepath.Join(dir, "aralez.pid"))
	if next == pid || !alive(next) {
		t.Fatalf("after the upgrade the pid file names %d; want a live new daemon; log:\n%s", next, logOf(dir))
	}
	killAtCleanup(t, next)
	waitServing(t, addr, "D")
	pid = next
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("daemon wait status %v; want exit 0; log:\n%s", ws, logOf(dir))
	}
	if _, err := os.Stat(filepath.Join(dir, "aralez.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file still there after the daemon exited: %v", err)
	}
}

// TestDaemonStartFailure: a daemon that cannot bind its listener makes
// the command exit 1 and print why, though the daemon's own stderr is
// /dev/null.
func TestDaemonStartFailure(t *testing.T) {
	bin := aralezBinary(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir, _ := proxyDir(t, "127.0.0.1:9", "daemon: true\n")
	// No log_file: the error must travel back to the foreground process.
	writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(
		"proxy_address_http: %q\nupstreams_conf: upstreams.yaml\ndaemon: true\n", busy.Addr().String()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-c", filepath.Join(dir, "main.yaml")).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("aralez -c (daemon, busy port) = %v; want exit 1; output:\n%s", err, out)
	}
	for _, want := range []string{"address already in use", "daemon exited before it was ready"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// With log_file, as README advises for a daemon, the reason is
	// printed too, not only written to the file.
	writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(
		"proxy_address_http: %q\nupstreams_conf: upstreams.yaml\ndaemon: true\nlog_file: %q\n",
		busy.Addr().String(), filepath.Join(dir, "aralez.log")))
	out, err = exec.CommandContext(ctx, bin, "-c", filepath.Join(dir, "main.yaml")).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "address already in use") {
		t.Errorf("aralez -c (daemon with log_file, busy port) = %v; want exit 1 and the reason; output:\n%s", err, out)
	}
}

// startBinary starts the binary on dir/main.yaml in the foreground, with
// env added to the environment, and returns its pid; it is reaped by the
// caller (reap).
func startBinary(t *testing.T, dir string, cred *syscall.Credential, env ...string) int {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, "stderr.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(aralezBinary(t), "-c", filepath.Join(dir, "main.yaml"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release() // reaped with wait4 by pid
	killAtCleanup(t, pid)
	return pid
}

// TestPrivilegeDrop runs the binary as root with runuser nobody and
// rungroup nogroup: after binding, every id of the process is nobody's,
// requests work, the pid file and log file stay writable (the pid file's
// folder is root's, so it is rewritten in place), and an upgrade started
// by the unprivileged process works too (issue 6).
func TestPrivilegeDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	needNobody(t)
	becomeSubreaper(t)
	dir, addr := proxyDir(t, named(t, "P"), "runuser: nobody\nrungroup: nogroup\n")
	pidPath := filepath.Join(dir, "aralez.pid")
	pid := startBinary(t, dir, nil)
	if !waitFor(15*time.Second, func() bool { return readPID(pidPath) == pid }) {
		t.Fatalf("pid file names %d; want %d; log:\n%s", readPID(pidPath), pid, logOf(dir))
	}
	waitServing(t, addr, "P")
	checkIDs := func(pid int) {
		t.Helper()
		for key, want := range map[string]string{"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "65534"} {
			if got := procStatus(t, pid, key); got != want {
				t.Errorf("pid %d /proc status %s = %q; want %q", pid, key, got, want)
			}
		}
	}
	checkIDs(pid)
	for _, name := range []string{"aralez.pid", "aralez.log"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s owned by %d:%d; want 65534:65534", name, st.Uid, st.Gid)
		}
	}

	// The unprivileged process upgrades itself.
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("old process wait status %v; want exit 0", ws)
	}
	next := readPID(pidPath)
	if next == pid || !alive(next) {
		t.Fatalf("after the upgrade the pid file names %d; want a live new process; log:\n%s", next, logOf(dir))
	}
	killAtCleanup(t, next)
	checkIDs(next)
	waitServing(t, addr, "P")
	syscall.Kill(next, syscall.SIGTERM)
	if ws := reap(t, next, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("new process wait status %v; want exit 0", ws)
	}
	if l := logOf(dir); !strings.Contains(l, "upgrade: the new process is ready") {
		t.Errorf("log lacks the upgrade:\n%s", l)
	}
}

// TestPrivilegeDropRefused: asking a process that is not root for another
// account, or for an unknown one, ends it with exit 1 and a clear error.
func TestPrivilegeDropRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start the binary as another user")
	}
	needNobody(t)
	becomeSubreaper(t)
	tests := []struct {
		name, extra string
		cred        *syscall.Credential
		want        string
	}{
		{"not root", "runuser: root\n", &syscall.Credential{Uid: 65534, Gid: 65534}, "not root, so the account cannot be changed"},
		{"unknown user", "runuser: no-such-user-aralez\n", nil, "unknown user no-such-user-aralez"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := proxyDir(t, "127.0.0.1:9", tt.extra)
			// No log_file: the error goes to stderr.
			main := filepath.Join(dir, "main.yaml")
			b, _ := os.ReadFile(main)
			writeFile(t, main, strings.Replace(string(b), "log_file: aralez.log\n", "", 1))
			pid := startBinary(t, dir, tt.cred)
			if ws := reap(t, pid, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 1 {
				t.Errorf("wait status %v; want exit 1", ws)
			}
			out, _ := os.ReadFile(filepath.Join(dir, "stderr.txt"))
			if !strings.Contains(string(out), "privilege drop failed; refusing to run") || !strings.Contains(string(out), tt.want) {
				t.Errorf("stderr lacks the refusal and %q:\n%s", tt.want, out)
			}
		})
	}
}
