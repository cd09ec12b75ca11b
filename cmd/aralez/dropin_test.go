package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
)

// TestFlags runs each command-line flag, in Aralez's and our spellings
// (issue 12). -d and -u, which start processes, are run through the
// binary in TestDaemon and TestQuitHandover.
func TestFlags(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.yaml")
	writeFile(t, main, "proxy_address_http: \"127.0.0.1:1\"\n")
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML("127.0.0.1:9", ""))
	tests := []struct {
		name string
		args []string
		code int
		out  []string // substrings of stdout
		err  string   // substring of stderr
	}{
		{name: "-t -c", args: []string{"-t", "-c", main}, out: []string{"is valid"}},
		{name: "--test --conf", args: []string{"--test", "--conf", main}, out: []string{"is valid"}},
		{name: "--conf=", args: []string{"--test", "--conf=" + main}, out: []string{"is valid"}},
		{name: "positional path", args: []string{"-t", main}, out: []string{"is valid"}},
		{name: "path before flags", args: []string{main, "--test"}, out: []string{"is valid"}},
		{name: "--nocapture ignored", args: []string{"--nocapture", "-t", main}, out: []string{"is valid"}},
		{name: "-v anywhere", args: []string{"-c", "/nonexistent/main.yaml", "-t", "-v"}, out: []string{"aralez "}},
		{name: "--version", args: []string{"--version"}, out: []string{"aralez "}},
		{name: "-version", args: []string{"-version"}, out: []string{"aralez "}},
		{name: "-h", args: []string{"-h"}, out: []string{"-c, --conf", "-t, --test", "-d, --daemon", "-u, --upgrade", "-v, --version", "--nocapture", "QUIT"}},
		{name: "--help", args: []string{"--help"}, out: []string{"-u, --upgrade"}},
		{name: "unknown flag", args: []string{"-x"}, code: 2, err: "flag provided but not defined: -x"},
		{name: "two paths", args: []string{"-t", main, main}, code: 2, err: "one config path expected"},
		{name: "-c and a path", args: []string{"-c", main, main}, code: 2, err: "config path given twice"},
		{name: "missing file", args: []string{"-t", filepath.Join(dir, "none.yaml")}, code: 1, err: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("run(%q) = %d; want %d; stdout %q stderr %q", tt.args, code, tt.code, out.String(), errb.String())
			}
			for _, w := range tt.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("run(%q) stdout = %q; want %q in it", tt.args, out.String(), w)
				}
			}
			if !strings.Contains(errb.String(), tt.err) {
				t.Errorf("run(%q) stderr = %q; want %q in it", tt.args, errb.String(), tt.err)
			}
		})
	}
}

// TestCheckReportsStartProblems covers what -t adds to config.Load: an
// unreadable file is an error, a TLS listener whose certificate folder is
// missing or empty is a warning, except with ACME, which fills it (issue
// 12).
func TestCheckReportsStartProblems(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.yaml")
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML("127.0.0.1:9", ""))
	check := func(yaml string) (int, string) {
		writeFile(t, main, "proxy_address_http: \"127.0.0.1:1\"\n"+yaml)
		var out, errb bytes.Buffer
		code := run([]string{"-t", main}, &out, &errb)
		return code, errb.String()
	}
	code, msg := check("file_server_address: \"127.0.0.1:2\"\nfile_server_folder: nowhere\nca_file: none.pem\n")
	if code != 1 || !strings.Contains(msg, "file_server_folder: "+filepath.Join(dir, "nowhere")+": no such file or directory") ||
		!strings.Contains(msg, "ca_file: ") || !strings.Contains(msg, "configuration invalid: 2 error(s)") {
		t.Errorf("-t with missing files = %d %q; want 1 and both errors", code, msg)
	}
	writeFile(t, filepath.Join(dir, "api.crt"), "not a certificate\n")
	writeFile(t, filepath.Join(dir, "api.key"), "not a key\n")
	code, msg = check("config_tls_address: \"127.0.0.1:4\"\nconfig_tls_certificate: api.crt\nconfig_tls_key_file: api.key\n")
	if code != 1 || !strings.Contains(msg, "config_tls_certificate "+filepath.Join(dir, "api.crt")) || !strings.Contains(msg, "PEM") {
		t.Errorf("-t with a broken config API certificate = %d %q; want 1 and the pair's error", code, msg)
	}
	code, msg = check("proxy_address_tls: \"127.0.0.1:3\"\n")
	if code != 0 || !strings.Contains(msg, "warning: proxy_address_tls: certificate folder "+filepath.Join(dir, "certificates")+" does not exist") {
		t.Errorf("-t without a certificate folder = %d %q; want 0 and a warning", code, msg)
	}
	if err := os.Mkdir(filepath.Join(dir, "certificates"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, msg = check("proxy_address_tls: \"127.0.0.1:3\"\n")
	if code != 0 || !strings.Contains(msg, "holds no NAME.crt and NAME.key pair") {
		t.Errorf("-t with an empty certificate folder = %d %q; want 0 and a warning", code, msg)
	}
	code, msg = check("proxy_address_tls: \"127.0.0.1:3\"\nacme_auto: true\n")
	if code != 0 || strings.Contains(msg, "certificate folder") {
		t.Errorf("-t with ACME and an empty certificate folder = %d %q; want 0 and no warning", code, msg)
	}
	code, msg = check("acme_domains: [www.example.com]\n")
	if code != 0 || !strings.Contains(msg, "warning: acme_auto and acme_domains need proxy_address_tls") {
		t.Errorf("-t with acme_domains and no TLS listener = %d %q; want 0 and the start's warning", code, msg)
	}
	code, msg = check("proxy_tls_grade: a+\n")
	if code != 0 || !strings.Contains(msg, `warning: `) || !strings.Contains(msg, `using "medium"`) {
		t.Errorf("-t with grade a+ = %d %q; want 0 and a warning", code, msg)
	}
}

// slowBackend answers /slow only when release is closed (or after 20 s,
// so that it stops by itself), and everything else at once. started
// receives a value when a /slow request arrives.
func slowBackend(t *testing.T) (addr string, started chan struct{}, release func()) {
	started = make(chan struct{}, 16)
	rel := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			select {
			case <-rel:
			case <-time.After(20 * time.Second):
			}
		}
		io.WriteString(w, "S")
	}))
	release = func() { once.Do(func() { close(rel) }) }
	t.Cleanup(func() { release(); srv.Close() })
	return strings.TrimPrefix(srv.URL, "http://"), started, release
}

// refused reports whether a new TCP connection to addr is refused.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// TestShutdownRefusesNewConnections stops the binary (the upgrader
// active, as always in the binary) with SIGTERM and SIGINT while a slow
// request is in flight: the listening sockets, the upgrader's duplicates
// included, close at once, so a new connection is refused, while the
// slow request still gets its 200 (issue 11: the kernel kept accepting
// for the whole drain and reset those connections at exit).
func TestShutdownRefusesNewConnections(t *testing.T) {
	becomeSubreaper(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			backend, started, release := slowBackend(t)
			dir, addr := proxyDir(t, backend, "")
			pid := startBinary(t, dir, nil)
			waitServing(t, addr, "S")
			type result struct {
				code int
				body string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/slow")
				if err != nil {
					done <- result{err: err}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- result{resp.StatusCode, string(b), err}
			}()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the slow request did not reach the backend")
			}
			syscall.Kill(pid, sig)
			// Well inside drain_timeout (5 s), after which the process
			// exits and refuses anyway.
			if !waitFor(3*time.Second, func() bool { return refused(addr) }) {
				t.Errorf("a new connection is still accepted during the drain; want refused")
			}
			select {
			case r := <-done:
				t.Fatalf("the slow request ended before its backend answered: %v", r.err)
			default:
			}
			release()
			if r := <-done; r.err != nil || r.code != 200 || r.body != "S" {
				t.Errorf("slow request across the shutdown = %+v; want 200 S", r)
			}
			if ws := reap(t, pid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("exit = %v; want 0; log:\n%s", ws, logOf(dir))
			}
			if _, err := os.Stat(filepath.Join(dir, "aralez.pid")); !os.IsNotExist(err) {
				t.Errorf("pid file after exit: %v; want removed", err)
			}
		})
	}
}

// TestClosedStdout runs `aralez | head -c 300` with access_log: all and
// no log_file: the access log and the process log go to a pipe whose
// reader goes away. The proxy must keep serving (no SIGPIPE) and still
// remove its pid file at SIGTERM (issue 11).
func TestClosedStdout(t *testing.T) {
	becomeSubreaper(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(
		"proxy_address_http: %q\npid_file: aralez.pid\naccess_log: all\ndrain_timeout: 2s\n", addr))
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML(named(t, "P"), ""))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(aralezBinary(t), "-c", filepath.Join(dir, "main.yaml"))
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	pid := cmd.Process.Pid
	cmd.Process.Release()
	killAtCleanup(t, pid)
	waitServing(t, addr, "P")
	// head -c 300: read 300 bytes, then go away.
	if _, err := io.ReadFull(r, make([]byte, 300)); err != nil {
		t.Fatalf("reading the first 300 bytes: %v", err)
	}
	r.Close()
	for i := 0; i < 50; i++ {
		if got, err := body("http://" + addr + "/"); err != nil || got != "P" {
			t.Fatalf("request %d after the pipe closed: %q, %v; want P", i, got, err)
		}
	}
	if !alive(pid) {
		t.Fatal("the process died after its stdout closed")
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if ws := reap(t, pid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("exit = %v; want 0", ws)
	}
	if _, err := os.Stat(filepath.Join(dir, "aralez.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file after exit: %v; want removed", err)
	}
}

// TestQuitHandover runs Aralez's upgrade as its systemd example does:
// SIGQUIT to the running process, then the new binary with -u. The old
// process hands its listeners over upgrade_sock and drains; the new one
// serves on them, with no request lost in between. Without a process
// waiting and without upgrade_sock, SIGQUIT drains like SIGTERM rather
// than dumping goroutines with exit 2 (issue 12).
func TestQuitHandover(t *testing.T) {
	becomeSubreaper(t)
	backend, _, _ := slowBackend(t)
	api := freeAddr(t)
	sock := filepath.Join(t.TempDir(), "upgrade.sock")
	dir, addr := proxyDir(t, backend, fmt.Sprintf("upgrade_sock: %q\nconfig_address: %q\n", sock, api))
	old := startBinary(t, dir, nil)
	waitServing(t, addr, "S")

	var total, failures atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 2; i++ {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + addr + "/")
				total.Add(1)
				if err != nil {
					failures.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					lastErr.Store(resp.Status)
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // some load before the handover
	syscall.Kill(old, syscall.SIGQUIT)
	out, err := os.Create(filepath.Join(dir, "stderr-new.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(aralezBinary(t), "-u", "-c", filepath.Join(dir, "main.yaml"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	next := cmd.Process.Pid
	cmd.Process.Release()
	killAtCleanup(t, next)
	if ws := reap(t, old, 20*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("old process after SIGQUIT = %v; want exit 0; log:\n%s", ws, logOf(dir))
	}
	if !waitFor(10*time.Second, func() bool { return readPID(filepath.Join(dir, "aralez.pid")) == next }) {
		t.Fatalf("pid file names %d; want the new process %d; log:\n%s", readPID(filepath.Join(dir, "aralez.pid")), next, logOf(dir))
	}
	time.Sleep(100 * time.Millisecond) // some load after the handover
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 || total.Load() < 10 {
		t.Errorf("%d of %d requests failed across the handover (last: %v); want none", n, total.Load(), lastErr.Load())
	}
	if got, err := body("http://" + api + "/ready"); err != nil || got != "ready\n" {
		t.Errorf("new process's config API /ready = %q, %v; want ready", got, err)
	}
	log := logOf(dir)
	for _, want := range []string{"listening sockets handed over", "listening sockets received"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("upgrade_sock after the handover: %v; want removed", err)
	}
	syscall.Kill(next, syscall.SIGTERM)
	if ws := reap(t, next, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("new process after SIGTERM = %v; want 0", ws)
	}

	t.Run("no upgrade_sock", func(t *testing.T) {
		dir, addr := proxyDir(t, backend, "")
		pid := startBinary(t, dir, nil)
		waitServing(t, addr, "S")
		syscall.Kill(pid, syscall.SIGQUIT)
		if ws := reap(t, pid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("exit after SIGQUIT = %v; want 0; log:\n%s", ws, logOf(dir))
		}
		if _, err := os.Stat(filepath.Join(dir, "aralez.pid")); !os.IsNotExist(err) {
			t.Errorf("pid file after exit: %v; want removed", err)
		}
	})
	t.Run("-u without upgrade_sock", func(t *testing.T) {
		dir, _ := proxyDir(t, backend, "")
		out, err := exec.Command(aralezBinary(t), "-u", "-c", filepath.Join(dir, "main.yaml")).CombinedOutput()
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "needs upgrade_sock") {
			t.Errorf("aralez -u without upgrade_sock = %v %q; want exit 1 naming upgrade_sock", err, out)
		}
	})
}

// TestLogLevels checks log_level off and trace (more verbose than
// debug), and JSON lines with log_structured (issue 12).
func TestLogLevels(t *testing.T) {
	logAll := func(log *slog.Logger) {
		log.Log(context.Background(), levelTrace, "t-line")
		log.Debug("d-line")
		log.Info("i-line")
		log.Error("e-line")
	}
	for _, tt := range []struct {
		level, structured string
		want, not         []string
	}{
		{level: "off", not: []string{"t-line", "d-line", "i-line", "e-line"}},
		{level: "trace", want: []string{"level=TRACE msg=t-line", "d-line", "i-line", "e-line"}},
		{level: "debug", want: []string{"d-line", "i-line"}, not: []string{"t-line"}},
		{level: "info", want: []string{"i-line", "e-line"}, not: []string{"t-line", "d-line"}},
		{level: "error", want: []string{"e-line"}, not: []string{"i-line"}},
		{level: "trace", structured: "elasticsearch", want: []string{`"level":"TRACE","msg":"t-line"`, `"msg":"e-line"`}},
	} {
		var buf bytes.Buffer
		log, sink, err := newLogger(&config.Main{LogLevel: tt.level, LogStructured: tt.structured}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		logAll(log)
		sink.close()
		for _, w := range tt.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("log_level %s: %q lacks %q", tt.level, buf.String(), w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(buf.String(), n) {
				t.Errorf("log_level %s: %q has %q", tt.level, buf.String(), n)
			}
		}
		if tt.structured != "" {
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil || m["time"] == nil || m["msg"] == nil {
					t.Errorf("log_structured line %q: %v; want JSON with time and msg", line, err)
				}
			}
		}
	}
}

// TestLogRotation writes 3.5 MiB through a log_file of 1 MiB with 2
// files kept: the file rotates, and the configured number of rotated
// files stays, gzipped when asked (issue 12).
func TestLogRotation(t *testing.T) {
	t.Parallel()
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress ", compress), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "aralez.log")
			_, sink, err := newLogger(&config.Main{LogLevel: "info", LogFile: path, LogFileSizeMB: 1, LogFileKeep: 2, LogFileCompress: compress}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer sink.close()
			line := []byte(strings.Repeat("x", 1023) + "\n")
			for i := 0; i < 3584; i++ { // 3.5 MiB
				if _, err := sink.Write(line); err != nil {
					t.Fatal(err)
				}
			}
			suffix := ".log"
			if compress {
				suffix = ".log.gz"
			}
			var got []string
			if !waitFor(10*time.Second, func() bool {
				got, _ = filepath.Glob(filepath.Join(dir, "aralez-*"+suffix))
				all, _ := os.ReadDir(dir)
				return len(got) == 2 && len(all) == 3
			}) {
				all, _ := os.ReadDir(dir)
				t.Fatalf("rotated files %q (folder holds %d); want 2 %s files beside aralez.log", got, len(all), suffix)
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() > 1<<20 {
				t.Errorf("aralez.log = %v, %v; want at most 1 MiB", fi, err)
			}
		})
	}
}

// TestLogReopen renames log_file as an external logrotate does and sends
// SIGUSR1: later lines go to a new file at the path, no access-log line
// is lost, and every line (log_structured: json) parses as JSON (issue
// 12).
func TestLogReopen(t *testing.T) {
	becomeSubreaper(t)
	dir, addr := proxyDir(t, named(t, "L"), "access_log: all\nlog_structured: json\n")
	pid := startBinary(t, dir, nil)
	waitServing(t, addr, "L")
	path := filepath.Join(dir, "aralez.log")
	accessLines := func(files ...string) int {
		n := 0
		for _, f := range files {
			b, _ := os.ReadFile(f)
			n += strings.Count(string(b), `"path":"/n`)
		}
		return n
	}
	get := func(n int, tag string) {
		for i := 0; i < n; i++ {
			if got, err := body(fmt.Sprintf("http://%s/n%s%d", addr, tag, i)); err != nil || got != "L" {
				t.Fatalf("request: %q, %v", got, err)
			}
		}
	}
	get(10, "a")
	if !waitFor(10*time.Second, func() bool { return accessLines(path) == 10 }) {
		t.Fatalf("access lines before the rename = %d; want 10", accessLines(path))
	}
	fi0, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	get(10, "b") // still into the renamed file
	syscall.Kill(pid, syscall.SIGUSR1)
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(path); return err == nil }) {
		t.Fatal("no new log file after SIGUSR1")
	}
	// A log collector reading the file through its group keeps reading
	// the new one: same mode as the file the start created (0640).
	if fi, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != fi0.Mode().Perm() {
		t.Errorf("new log file mode = %v; want %v, as the first file", fi.Mode().Perm(), fi0.Mode().Perm())
	}
	get(10, "c")
	if !waitFor(10*time.Second, func() bool { return accessLines(path, rotated) == 30 }) {
		t.Errorf("access lines in both files = %d; want 30", accessLines(path, rotated))
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), `"path":"/nc`); n != 10 {
		t.Errorf("new file holds %d of the requests after SIGUSR1; want 10", n)
	}
	for _, f := range []string{rotated, path} {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["time"] == nil || m["level"] == nil {
				t.Errorf("%s: line %q: %v; want JSON with time and level", filepath.Base(f), sc.Text(), err)
			}
		}
		fh.Close()
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if ws := reap(t, pid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("exit = %v; want 0", ws)
	}
}

// TestBindRetry: after a handover, an address the old process did not
// pass (a Pingora-based Aralez passes only its proxy listeners) is bound
// as soon as the old process lets it go.
func TestBindRetry(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := held.Addr().String()
	bind := func() (net.Listener, error) { return net.Listen("tcp", addr) }
	if _, err := bindRetry(bind, 0); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("bindRetry(no wait) on a held address = %v; want EADDRINUSE", err)
	}
	time.AfterFunc(200*time.Millisecond, func() { held.Close() })
	ln, err := bindRetry(bind, 10*time.Second)
	if err != nil {
		t.Fatalf("bindRetry() once the address is released = %v; want a listener", err)
	}
	ln.Close()
}
