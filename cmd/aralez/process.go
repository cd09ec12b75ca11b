package main

// Process management of the standalone binary: daemon mode, the privilege
// drop to runuser/rungroup, TCP keep-alive on accepted client sockets and
// the pid file. The binary upgrade (SIGUSR2) is in upgrade.go.
//
// Order at start (runProcess in main.go):
//
//  1. newProcess: in daemon mode the foreground process re-executes
//     itself in a new session and waits for the daemon to be up.
//  2. The log file is opened, then every listener is bound (inherited from
//     the previous process after an upgrade).
//  3. dropPrivileges switches to runuser/rungroup; the pid file and the
//     log file are created before and handed to that account, so the
//     process (and a later upgrade, which runs as that account) can still
//     write them.
//  4. server.ready, once the listeners serve: the pid file names this
//     process, systemd gets MAINPID and READY=1, the previous process (if
//     any) is told to drain, and the waiting foreground process of daemon
//     mode exits 0.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/aralez-go/aralez/config"
)

// daemonEnv names the environment variable that tells the daemon child
// which file descriptor reaches the waiting foreground process. The child
// removes it at once, so a process it starts never sees it.
const daemonEnv = "ARALEZ_DAEMON_READY_FD"

// daemonReadyMarker ends what the daemon child writes on the ready pipe
// once it serves. Anything before it is the child's stderr up to then.
var daemonReadyMarker = []byte("\x00aralez-ready\n")

// process is what only the standalone binary does (runProcess with
// standalone set): the tableflip upgrader, the SIGUSR2 channel and, in
// the daemon child, the pipe to the foreground process. A nil *process
// means the in-process mode the tests use: plain listeners, no upgrade,
// no privilege drop; every method is a no-op or the plain behaviour then.
type process struct {
	upg    *tableflip.Upgrader
	usr2   chan os.Signal
	quit   chan os.Signal // SIGQUIT: hand the sockets over upgrade_sock
	daemon *daemonPipe    // nil unless this is the detached daemon child
	// stderr is where early errors go: the daemon pipe in the daemon
	// child until it is ready, else the stderr runProcess was given.
	stderr io.Writer
	// upgrade is set for `aralez -u` (not for a process started by a
	// SIGUSR2 upgrade, which inherits its sockets from its parent).
	upgrade bool

	mu sync.Mutex // guards the fields below
	// received are the sockets handed over upgrade_sock, by address,
	// until listen takes them; the rest are closed once ready.
	received map[string]*os.File
	// lns are this process's TCP listeners by address, for a handover.
	lns map[string]*net.TCPListener
}

// newProcess prepares the standalone process; upgrade is the -u flag.
// When it returns a nil process, the caller must exit with code: this
// was the foreground half of daemon mode (code 0 once the daemon serves,
// 1 if it failed), or the upgrader could not start.
func newProcess(m *config.Main, upgrade bool, stdout, stderr io.Writer) (*process, int) {
	p := &process{stderr: stderr, lns: make(map[string]*net.TCPListener)}
	if v, ok := os.LookupEnv(daemonEnv); ok {
		os.Unsetenv(daemonEnv)
		fd, err := strconv.Atoi(v)
		var f *os.File
		if err == nil && fd > 2 {
			f = os.NewFile(uintptr(fd), "daemon-ready")
		}
		if f == nil {
			fmt.Fprintf(stderr, "aralez: %s=%q is not a file descriptor\n", daemonEnv, v)
			return nil, 1
		}
		// Keep the pipe out of processes started later (the upgrade).
		syscall.CloseOnExec(fd)
		p.daemon = &daemonPipe{f: f}
		p.stderr = p.daemon
	}
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		fmt.Fprintf(p.stderr, "aralez: binary upgrade support: %v\n", err)
		return nil, 1
	}
	// An upgraded process is already detached: it is the child of the
	// daemon it replaces.
	if m.Daemon && p.daemon == nil && !upg.HasParent() {
		upg.Stop()
		return nil, daemonize(stdout, stderr)
	}
	p.upg = upg
	// A process started by SIGUSR2 gets the same arguments, -u included,
	// but its sockets come from its parent.
	p.upgrade = upgrade && !upg.HasParent()
	if p.upgrade && m.UpgradeSock == "" {
		fmt.Fprintln(p.stderr, "aralez: -u (--upgrade) needs upgrade_sock in main.yaml: the socket the running process hands its listeners over")
		upg.Stop()
		return nil, 1
	}
	// Catch SIGUSR2 and SIGQUIT from now on: their default actions would
	// end the process (SIGQUIT with a goroutine dump).
	p.usr2 = make(chan os.Signal, 1)
	notifyUpgradeSignal(p.usr2)
	p.quit = make(chan os.Signal, 1)
	signal.Notify(p.quit, syscall.SIGQUIT)
	return p, 0
}

// receive takes the listening sockets over upgrade_sock for `aralez -u`;
// it is a no-op otherwise. The socket file is handed to runuser when
// the process runs as root, so that an old process that dropped root
// can connect.
func (p *process) receive(m *config.Main, log *slog.Logger) error {
	if p == nil || !p.upgrade {
		return nil
	}
	var owner *account
	if os.Geteuid() == 0 && (m.RunUser != "" || m.RunGroup != "") {
		a, err := lookupAccount(m.RunUser, m.RunGroup)
		if err != nil {
			return err
		}
		owner = &a
	}
	log.Info("upgrade (-u): waiting for the running process on upgrade_sock; send it SIGQUIT", "upgrade_sock", m.UpgradeSock)
	got, err := receiveListeners(m.UpgradeSock, owner, handoverAcceptWait)
	if err != nil {
		return err
	}
	addrs := make([]string, 0, len(got))
	for a := range got {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	log.Info("upgrade (-u): listening sockets received", "addresses", addrs)
	p.mu.Lock()
	p.received = got
	p.mu.Unlock()
	return nil
}

// daemonize starts this binary again, with the same arguments, in a new
// session (setsid) with stdin, stdout and stderr on /dev/null, and waits
// until it serves or exits. It returns the exit code of the foreground
// process: 0 once the daemon is ready, 1 when it failed (its error
// messages are copied to stderr).
func daemonize(stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "aralez: daemon: finding the executable: %v\n", err)
		return 1
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stderr, "aralez: daemon: %v\n", err)
		return 1
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "aralez: daemon: %v\n", err)
		return 1
	}
	defer r.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), daemonEnv+"=3") // ExtraFiles[0] is fd 3
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		fmt.Fprintf(stderr, "aralez: daemon: starting %s: %v\n", exe, err)
		return 1
	}
	// The pipe reaches EOF when the daemon closes it once ready, or when
	// it exits.
	out, _ := io.ReadAll(r)
	msg, ready := bytes.CutSuffix(out, daemonReadyMarker)
	stderr.Write(msg)
	if ready {
		fmt.Fprintf(stdout, "aralez: daemon running, pid %d\n", cmd.Process.Pid)
		_ = cmd.Process.Release()
		return 0
	}
	werr := cmd.Wait()
	fmt.Fprintf(stderr, "aralez: daemon exited before it was ready (%v); its log is in log_file when one is set\n", werr)
	return 1
}

// daemonPipe is the daemon child's stderr until it is ready: what is
// written goes to the foreground process, which prints it. After ready
// it discards writes (stderr is /dev/null in a daemon; logs belong in
// log_file). It is safe for concurrent use.
type daemonPipe struct {
	mu sync.Mutex
	f  *os.File // nil after ready; guarded by mu
}

func (d *daemonPipe) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f != nil {
		_, _ = d.f.Write(p)
	}
	return len(p), nil
}

// ready tells the foreground process that the daemon serves, and closes
// the pipe. Later calls do nothing.
func (d *daemonPipe) ready() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return
	}
	_, _ = d.f.Write(daemonReadyMarker)
	d.f.Close()
	d.f = nil
}

// account is the user and group named by runuser and rungroup, and the
// supplementary groups the process gets.
type account struct {
	uid, gid int
	groups   []int // gid first, then the user's other groups
}

// lookupAccount resolves runuser and rungroup (names or numeric ids). An
// empty runuser keeps the current user; an empty rungroup means the
// user's primary group (the current group when runuser is empty too).
// The supplementary groups are gid plus, when runuser is set, every
// group that lists the user, as initgroups(3) does for nginx's user
// directive (so a key readable by group ssl-cert stays readable); when
// the group database cannot be read they are gid alone.
func lookupAccount(runUser, runGroup string) (account, error) {
	a := account{uid: os.Getuid(), gid: os.Getgid()}
	var u *user.User
	if runUser != "" {
		var err error
		u, err = user.Lookup(runUser)
		if err != nil {
			if _, nerr := strconv.Atoi(runUser); nerr != nil {
				return a, fmt.Errorf("runuser %q: %w", runUser, err)
			}
			if u, err = user.LookupId(runUser); err != nil {
				return a, fmt.Errorf("runuser %q: %w", runUser, err)
			}
		}
		if a.uid, err = strconv.Atoi(u.Uid); err != nil {
			return a, fmt.Errorf("runuser %q: uid %q: %w", runUser, u.Uid, err)
		}
		if a.gid, err = strconv.Atoi(u.Gid); err != nil {
			return a, fmt.Errorf("runuser %q: gid %q: %w", runUser, u.Gid, err)
		}
	}
	if runGroup != "" {
		g, err := user.LookupGroup(runGroup)
		if err != nil {
			if _, nerr := strconv.Atoi(runGroup); nerr != nil {
				return a, fmt.Errorf("rungroup %q: %w", runGroup, err)
			}
			if g, err = user.LookupGroupId(runGroup); err != nil {
				return a, fmt.Errorf("rungroup %q: %w", runGroup, err)
			}
		}
		if a.gid, err = strconv.Atoi(g.Gid); err != nil {
			return a, fmt.Errorf("rungroup %q: gid %q: %w", runGroup, g.Gid, err)
		}
	}
	a.groups = []int{a.gid}
	if u != nil {
		ids, _ := u.GroupIds()
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil && !slices.Contains(a.groups, n) {
				a.groups = append(a.groups, n)
			}
		}
	}
	return a, nil
}

// dropPrivileges switches the whole process (every thread: on Linux the
// Go runtime applies setgroups, setgid and setuid to all threads) to
// runuser and rungroup, after the listeners are bound. It first creates
// the pid file and hands it and the log file to that account, so they
// stay writable. It is a no-op for a nil process (in-process mode), when
// neither key is set, and when the process already runs as that account
// (a process started by an upgrade). Not running as root and asked for
// another account is an error; so is any failed step, and a process that
// could still regain root afterwards: the caller must then exit rather
// than keep running as root.
func (p *process) dropPrivileges(m *config.Main) error {
	if p == nil || (m.RunUser == "" && m.RunGroup == "") {
		return nil
	}
	a, err := lookupAccount(m.RunUser, m.RunGroup)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		if os.Geteuid() == a.uid && os.Getuid() == a.uid && os.Getegid() == a.gid && os.Getgid() == a.gid {
			return nil
		}
		return fmt.Errorf("runuser %q rungroup %q (uid %d gid %d): running as uid %d, not root, so the account cannot be changed",
			m.RunUser, m.RunGroup, a.uid, a.gid, os.Geteuid())
	}
	if m.PIDFile != "" {
		f, err := os.OpenFile(m.PIDFile, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("creating pid_file before the privilege drop: %w", err)
		}
		f.Close()
	}
	for _, path := range []string{m.PIDFile, m.LogFile} {
		if path == "" {
			continue
		}
		if err := os.Chown(path, a.uid, a.gid); err != nil {
			return fmt.Errorf("handing %s to uid %d gid %d: %w", path, a.uid, a.gid, err)
		}
	}
	// Groups first: setgid and setgroups need root, which setuid ends.
	if err := syscall.Setgroups(a.groups); err != nil {
		return fmt.Errorf("setgroups(%v): %w", a.groups, err)
	}
	if err := syscall.Setgid(a.gid); err != nil {
		return fmt.Errorf("setgid(%d): %w", a.gid, err)
	}
	if err := syscall.Setuid(a.uid); err != nil {
		return fmt.Errorf("setuid(%d): %w", a.uid, err)
	}
	if os.Getuid() != a.uid || os.Geteuid() != a.uid || os.Getgid() != a.gid || os.Getegid() != a.gid {
		return fmt.Errorf("after the switch the process runs as uid %d/%d gid %d/%d; want uid %d gid %d",
			os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), a.uid, a.gid)
	}
	if a.uid != 0 && syscall.Setuid(0) == nil {
		return errors.New("the process could switch back to root after the privilege drop")
	}
	return nil
}

// keepAliveConfig is the TCP keep-alive of accepted client sockets:
// tcp_keepalive_idle and tcp_keepalive_interval in seconds,
// tcp_keepalive_count probes. With none set it is Go's default
// (keep-alive on, 15 s idle, 15 s interval, 9 probes); a zero field among
// set ones takes Go's default for that field.
func keepAliveConfig(m *config.Main) net.KeepAliveConfig {
	if m.TCPKeepaliveIdle <= 0 && m.TCPKeepaliveInterval <= 0 && m.TCPKeepaliveCount <= 0 {
		return net.KeepAliveConfig{}
	}
	return net.KeepAliveConfig{
		Enable:   true,
		Idle:     time.Duration(m.TCPKeepaliveIdle) * time.Second,
		Interval: time.Duration(m.TCPKeepaliveInterval) * time.Second,
		Count:    m.TCPKeepaliveCount,
	}
}

// keepAliveListener applies a keep-alive config to each accepted
// connection. It wraps listeners inherited over an upgrade: those come
// from net.FileListener, which knows no ListenConfig, so the config is
// set per connection instead. As with a ListenConfig, a setting the
// kernel refuses leaves the connection's keep-alive as it was: an error
// from Accept would stop the server that calls it.
type keepAliveListener struct {
	*net.TCPListener
	cfg net.KeepAliveConfig
}

func (l keepAliveListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	_ = c.SetKeepAliveConfig(l.cfg)
	return c, nil
}

// withKeepAlive returns ln, wrapped to apply cfg to accepted connections
// when cfg is set and ln is a TCP listener.
func withKeepAlive(ln net.Listener, cfg net.KeepAliveConfig) net.Listener {
	if tl, ok := ln.(*net.TCPListener); ok && cfg.Enable {
		return keepAliveListener{TCPListener: tl, cfg: cfg}
	}
	return ln
}

// listen binds the TCP address addr ("host:port") for a listener of s,
// with the keep-alive config of main.yaml; after an upgrade the listener
// is the previous process's (see process.listen in upgrade.go).
func (s *server) listen(addr string) (net.Listener, error) {
	return s.proc.listen(addr, keepAliveConfig(&s.cfg.Main))
}

// ready runs once the listeners serve. In-process it only tells systemd.
// In the standalone binary it also writes the pid file, tells systemd
// this process is the main one (MAINPID) before the previous process
// drains and exits, completes an upgrade, and releases the foreground
// process of daemon mode.
func (s *server) ready() {
	if s.proc == nil {
		notifyReady(s.log)
		return
	}
	if path := s.cfg.Main.PIDFile; path != "" {
		if err := writePIDFile(path); err != nil {
			s.log.Warn("cannot write pid_file", "path", path, "err", err)
		} else {
			s.pidWrote = true
		}
	}
	notifyReady(s.log)
	s.proc.ready(s.log)
	if s.proc.daemon != nil {
		s.proc.daemon.ready()
	}
}

// writePIDFile writes the process id and a newline to path. It writes a
// temporary file in the same folder and renames it, so a reader never
// sees a partial file; when the folder is not writable (after the
// privilege drop, the pid file lives in a folder of root's) it rewrites
// the file in place, which dropPrivileges made writable.
func writePIDFile(path string) error {
	data := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*"); err == nil {
		_, werr := f.Write(data)
		cerr := f.Close()
		if werr == nil && cerr == nil {
			if err := os.Chmod(f.Name(), 0o644); err == nil {
				if err := os.Rename(f.Name(), path); err == nil {
					return nil
				}
			}
		}
		os.Remove(f.Name())
	}
	return os.WriteFile(path, data, 0o644)
}

// removePIDFile removes the pid file at exit when it still names this
// process: after an upgrade it names the new process and stays.
func removePIDFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		return
	}
	os.Remove(path)
}
