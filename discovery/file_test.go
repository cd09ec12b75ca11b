package discovery

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// hostDoc is an upstreams.yaml (or, with conf.d true, a conf.d file)
// holding the host name.
func hostDoc(name string, confd bool) string {
	h := name + ":\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:9\"]\n"
	if confd {
		return h
	}
	return "upstreams:\n  " + name + ":\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:9\"]\n"
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runFile starts a File source on path with a short debounce and returns
// its updates once the watch is in place (prime, called until an update
// arrives, must cause one); it stops with the test.
func runFile(t *testing.T, path string, prime func()) <-chan Update {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := NewFile(path, 20*time.Millisecond, slog.New(slog.DiscardHandler)).Run(ctx, out); err != nil {
			t.Errorf("File.Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		prime()
		select {
		case <-out:
			return out
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("File.Run: no update after writing the upstreams file")
		}
	}
}

// waitHosts waits for an update whose table holds exactly want (sorted).
func waitHosts(t *testing.T, out <-chan Update, what string, want ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var last []string
	for {
		select {
		case u := <-out:
			if u.Err != nil || u.Upstreams == nil {
				last = []string{"error: " + errString(u.Err)}
				continue
			}
			last = last[:0]
			for _, h := range u.Upstreams.Hosts {
				last = append(last, h.Name)
			}
			slices.Sort(last)
			if slices.Equal(last, want) {
				return
			}
		case <-deadline:
			t.Fatalf("%s: no update with hosts %q (last seen %q)", what, want, last)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "no table"
	}
	return err.Error()
}

// TestFileConfDRecreated: conf.d removed and created again (a deploy that
// replaces the folder) is watched again, so a file written into it later
// is applied; before, only the folder's own creation was seen.
func TestFileConfDRecreated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "upstreams.yaml")
	confd := filepath.Join(dir, "conf.d")
	write(t, path, hostDoc("a.test", false))
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(confd, "b.yaml"), hostDoc("b.test", true))
	out := runFile(t, path, func() { write(t, path, hostDoc("a.test", false)) })

	if err := os.RemoveAll(confd); err != nil {
		t.Fatal(err)
	}
	waitHosts(t, out, "conf.d removed", "a.test")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	waitHosts(t, out, "conf.d created again", "a.test")
	write(t, filepath.Join(confd, "c.yaml"), hostDoc("c.test", true))
	waitHosts(t, out, "a file written into the new conf.d", "a.test", "c.test")

	// Renamed away and another folder renamed in (an atomic swap).
	next := filepath.Join(dir, "conf.d.next")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(next, "d.yaml"), hostDoc("d.test", true))
	if err := os.Rename(confd, filepath.Join(dir, "conf.d.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, confd); err != nil {
		t.Fatal(err)
	}
	waitHosts(t, out, "conf.d swapped", "a.test", "d.test")
	write(t, filepath.Join(confd, "e.yaml"), hostDoc("e.test", true))
	waitHosts(t, out, "a file written into the swapped-in conf.d", "a.test", "d.test", "e.test")
}

// TestFileConfigMapSwap: a Kubernetes ConfigMap volume holds
// upstreams.yaml -> ..data/upstreams.yaml, and the kubelet applies an
// update by pointing the ..data symlink at a new folder (a rename), so no
// event names upstreams.yaml itself. The swap is applied.
func TestFileConfigMapSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, v := range []string{"..v1", "..v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "..v1", "upstreams.yaml"), hostDoc("one.test", false))
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "upstreams.yaml")
	if err := os.Symlink(filepath.Join("..data", "upstreams.yaml"), path); err != nil {
		t.Fatal(err)
	}
	// Creating and removing conf.d beside it is an event File follows.
	confd := filepath.Join(dir, "conf.d")
	out := runFile(t, path, func() {
		if err := os.Mkdir(confd, 0o755); err != nil {
			os.Remove(confd)
		}
	})
	os.Remove(confd)

	write(t, filepath.Join(dir, "..v2", "upstreams.yaml"), hostDoc("two.test", false))
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitHosts(t, out, "..data swapped", "two.test")
}
