package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hostGet returns the body and status of GET / with Host host.
func hostGet(addr, host string) (string, int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return "", 0, err
	}
	req.Host = host
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// runInProcess runs the proxy in this process on the config mainPath
// until the test ends (SIGTERM, as a supervisor would send it) and
// returns what it has logged so far.
func runInProcess(t *testing.T, mainPath string) (logs func() string) {
	t.Helper()
	var buf bytes.Buffer
	var mu sync.Mutex
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-c", mainPath}, io.Discard, lockedWriter{&buf, &mu})
	}()
	t.Cleanup(func() {
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("no exit after SIGTERM")
		}
	})
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

// TestConfDReload edits a table spread over conf.d files while it
// serves (issue 16): an edit of one file is applied and parses that file
// only, a broken file is rejected with its file:line:col while the old
// table keeps serving, and the hosts of a deleted file are gone.
func TestConfDReload(t *testing.T) {
	a, b := named(t, "A"), named(t, "B")
	dir := t.TempDir()
	addr := freeAddr(t)
	writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(
		"proxy_address_http: %q\nupstreams_conf: upstreams.yaml\nlog_level: info\nhealth_check_interval: 200ms\ndrain_timeout: 1s\n", addr))
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), "provider: file\nupstreams: {}\n")
	if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	hostYAML := func(host, server string) string {
		return fmt.Sprintf("%s:\n  paths:\n    \"/\":\n      servers: [%q]\n", host, server)
	}
	file := func(name string) string { return filepath.Join(dir, "conf.d", name) }
	for i := range 4 {
		writeFile(t, file(fmt.Sprintf("%d.yaml", i)), hostYAML(fmt.Sprintf("h%d.test", i), a))
	}

	logs := runInProcess(t, filepath.Join(dir, "main.yaml"))
	logged := func(sub ...string) bool {
		for _, l := range strings.Split(logs(), "\n") {
			found := true
			for _, s := range sub {
				found = found && strings.Contains(l, s)
			}
			if found {
				return true
			}
		}
		return false
	}
	serves := func(host, want string, status int) func() bool {
		return func() bool {
			got, code, err := hostGet(addr, host)
			return err == nil && code == status && (want == "" || got == want)
		}
	}
	if !waitFor(10*time.Second, serves("h3.test", "A", 200)) {
		t.Fatal("proxy did not come up")
	}

	writeFile(t, file("2.yaml"), hostYAML("h2.test", b))
	if !waitFor(10*time.Second, serves("h2.test", "B", 200)) {
		t.Fatal("the edit of conf.d/2.yaml was not applied")
	}
	if !waitFor(5*time.Second, func() bool { return logged(`msg="config applied" reason=file`, "files=5 files_parsed=1 ") }) {
		t.Errorf("no reload that parsed 1 file of 5; log:\n%s", logs())
	}

	writeFile(t, file("1.yaml"), "h1.test:\n  paths:\n    \"/\":\n      servers: [\"no-port\"]\n")
	if !waitFor(10*time.Second, func() bool { return logged("config rejected", file("1.yaml")+":4:17") }) {
		t.Fatalf("the broken conf.d/1.yaml was not rejected with its file:line:col; log:\n%s", logs())
	}
	for _, h := range [][2]string{{"h1.test", "A"}, {"h2.test", "B"}} {
		if got, code, err := hostGet(addr, h[0]); err != nil || code != 200 || got != h[1] {
			t.Errorf("after a rejected file %s answers %d %q, %v; want the old table's %s", h[0], code, got, err, h[1])
		}
	}

	writeFile(t, file("1.yaml"), hostYAML("h1.test", b))
	if err := os.Remove(file("3.yaml")); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return serves("h3.test", "", 404)() && serves("h1.test", "B", 200)() }) {
		t.Fatal("after deleting conf.d/3.yaml (and fixing 1.yaml) h3.test still routes, or h1.test does not")
	}
	for _, h := range [][2]string{{"h0.test", "A"}, {"h2.test", "B"}} {
		if got, code, err := hostGet(addr, h[0]); err != nil || code != 200 || got != h[1] {
			t.Errorf("%s answers %d %q, %v; want %s", h[0], code, got, err, h[1])
		}
	}
}
