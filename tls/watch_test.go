package tls

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startWatch runs s.Watch until the test ends and checks it returns nil.
// It returns once the watch is set up (Watch's first reload is logged),
// so that later changes are seen through events.
func startWatch(t *testing.T, s *Store, logs *logBuffer) {
	t.Helper()
	defer waitFor(t, "Watch to start", func() bool { return strings.Contains(logs.String(), "certificates reloaded") })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch() = %v; want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Watch() did not return within 10s of cancel")
		}
	})
}

// refused returns a condition that a handshake with addr for sni fails.
func refused(addr, sni string) func() bool {
	return func() bool {
		_, err := servedCN(addr, sni)
		return err != nil
	}
}

func TestWatchAddChangeRemove(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
	s, logs := newTestStore(t, dir)
	s.Debounce = DefaultDebounce // measure with the production setting
	startWatch(t, s, logs)
	addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))

	connA, err := dial(addr, "a.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer connA.Close()
	echo(t, connA, "before")

	// within checks the 1 s promise of the package doc; the ceiling of
	// waitFor is 10 s so that a slow machine reports a number, not a hang.
	within := func(step string, d time.Duration) {
		t.Helper()
		t.Logf("%s took effect after %v", step, d.Round(time.Millisecond))
		if d > time.Second {
			t.Errorf("%s took effect after %v; want within 1s", step, d)
		}
	}

	writePair(t, dir, "b", certSpec{cn: "b1", dns: []string{"b.test"}})
	within("add", waitFor(t, "b.test to serve b1", cnIs(addr, "b.test", "b1")))

	connB, err := dial(addr, "b.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer connB.Close()
	echo(t, connB, "b1 conn")

	writePair(t, dir, "b", certSpec{cn: "b2", dns: []string{"b.test"}})
	within("change", waitFor(t, "b.test to serve b2", cnIs(addr, "b.test", "b2")))
	echo(t, connB, "after change")

	for _, ext := range []string{CertExt, KeyExt} {
		if err := os.Remove(filepath.Join(dir, "b"+ext)); err != nil {
			t.Fatal(err)
		}
	}
	within("remove", waitFor(t, "b.test to fall back to a", cnIs(addr, "b.test", "a")))

	// Established connections survive every swap.
	echo(t, connA, "after all")
	echo(t, connB, "after remove")
	if got := connB.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "b1" {
		t.Errorf("established connection's certificate = %q; want b1", got)
	}
}

func TestWatchBrokenPairs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
	writePair(t, dir, "y", certSpec{cn: "y1", dns: []string{"y.test"}})
	s, logs := newTestStore(t, dir)
	startWatch(t, s, logs)
	addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))

	// Half-written: the .crt lands first (plain write, not atomic).
	c, k := genPair(t, certSpec{cn: "x", dns: []string{"x.test"}})
	if err := os.WriteFile(filepath.Join(dir, "x.crt"), c, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the half-written pair to be logged", func() bool {
		return hasAll(logs.String(), "skipping certificate pair", "pair=x", "missing x.key")
	})
	if got, err := servedCN(addr, "x.test"); err != nil || got != "a" {
		t.Errorf("servedCN(x.test) with half-written pair = %q, %v; want the default a", got, err)
	}
	// The next event (the key) completes it.
	if err := os.WriteFile(filepath.Join(dir, "x.key"), k, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "x.test to serve x", cnIs(addr, "x.test", "x"))

	// A garbage update of y keeps the previous y serving.
	writeFile(t, dir, "y.crt", []byte("garbage"))
	waitFor(t, "the garbage pair to be logged", func() bool {
		return hasAll(logs.String(), "pair=y", "kept")
	})
	if got, err := servedCN(addr, "y.test"); err != nil || got != "y1" {
		t.Errorf("servedCN(y.test) after garbage update = %q, %v; want y1", got, err)
	}

	// A key that does not match is skipped too.
	_, other := genPair(t, certSpec{cn: "z"})
	zc, _ := genPair(t, certSpec{cn: "z", dns: []string{"z.test"}})
	writeFile(t, dir, "z.key", other)
	writeFile(t, dir, "z.crt", zc)
	waitFor(t, "the mismatched pair to be logged", func() bool {
		return hasAll(logs.String(), "pair=z", "private key does not match")
	})
	if got, err := servedCN(addr, "z.test"); err != nil || got != "a" {
		t.Errorf("servedCN(z.test) with mismatched key = %q, %v; want the default a", got, err)
	}
	if got, err := servedCN(addr, "x.test"); err != nil || got != "x" {
		t.Errorf("servedCN(x.test) = %q, %v; want x still served", got, err)
	}
}

func TestWatchFolderAppears(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// sub is the certificate folder below the test's temp dir; a
		// deeper path has a missing parent too, so only polling finds it.
		sub string
		// staged creates the folder complete, then renames it into place.
		staged bool
	}{
		{"missing folder", "certificates", false},
		{"missing parent", "configs/certificates", false},
		{"renamed into place", "certificates", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := filepath.Join(root, tc.sub)
			s, logs := newTestStore(t, dir)
			startWatch(t, s, logs)
			addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))
			if !strings.Contains(logs.String(), "NO TLS CERTIFICATES LOADED") {
				t.Errorf("log = %q; want a loud warning", logs.String())
			}
			if _, err := servedCN(addr, "a.test"); err == nil {
				t.Fatalf("handshake succeeded with no certificates; want refused")
			}
			if tc.staged {
				stage := filepath.Join(root, "staging")
				if err := os.Mkdir(stage, 0o700); err != nil {
					t.Fatal(err)
				}
				writePair(t, stage, "a", certSpec{cn: "a", dns: []string{"a.test"}})
				if err := os.Rename(stage, dir); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
			}
			waitFor(t, "a.test to be served", cnIs(addr, "a.test", "a"))
		})
	}
}

func TestWatchFolderRecreated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// remove is the path deleted, relative to the test's temp dir: the
		// certificate folder itself, or its parent too.
		remove string
	}{
		{"folder", "configs/certificates"},
		{"parent", "configs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := filepath.Join(root, "configs", "certificates")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
			s, logs := newTestStore(t, dir)
			startWatch(t, s, logs)
			addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))
			if got, err := servedCN(addr, "a.test"); err != nil || got != "a" {
				t.Fatalf("servedCN(a.test) = %q, %v; want a", got, err)
			}
			if err := os.RemoveAll(filepath.Join(root, tc.remove)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "handshakes to be refused after the folder is removed", refused(addr, "a.test"))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			writePair(t, dir, "b", certSpec{cn: "b", dns: []string{"b.test"}})
			waitFor(t, "b.test to be served from the new folder", cnIs(addr, "b.test", "b"))
			// The new folder is watched, not the deleted one.
			writePair(t, dir, "c", certSpec{cn: "c", dns: []string{"c.test"}})
			waitFor(t, "c.test to be served", cnIs(addr, "c.test", "c"))
		})
	}
}

// TestWatchSteadyEvents checks that a folder that never goes quiet still
// reloads: the debounce is capped.
func TestWatchSteadyEvents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
	s, logs := newTestStore(t, dir)
	// A long quiet period that the stream below never leaves: only the
	// cap (ten periods, 1.5 s) lets a reload through.
	s.Debounce = 150 * time.Millisecond
	startWatch(t, s, logs)
	addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))

	aCrt, err := os.ReadFile(filepath.Join(dir, "a.crt"))
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite a.crt every 2 ms, well inside the debounce.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				// Same bytes: Write events, and a reload that races a
				// write keeps the previous a.
				_ = os.WriteFile(filepath.Join(dir, "a.crt"), aCrt, 0o600)
			}
		}
	}()
	defer func() { close(stop); <-done }()

	writePair(t, dir, "b", certSpec{cn: "b", dns: []string{"b.test"}})
	waitFor(t, "b.test to be served despite the event stream", cnIs(addr, "b.test", "b"))
}

// TestWatchKubernetesSecret mimics how the kubelet updates a Secret
// volume: the NAME.crt links point through ..data, which is swapped with
// a rename; no .crt or .key entry of the folder changes.
func TestWatchKubernetesSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	version := func(name, cn string) {
		t.Helper()
		vdir := filepath.Join(dir, name)
		if err := os.Mkdir(vdir, 0o700); err != nil {
			t.Fatal(err)
		}
		writePair(t, vdir, "site", certSpec{cn: cn, dns: []string{"site.test"}})
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, k8sDataLink)); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "v1")
	for _, ext := range []string{CertExt, KeyExt} {
		if err := os.Symlink(filepath.Join(k8sDataLink, "site"+ext), filepath.Join(dir, "site"+ext)); err != nil {
			t.Fatal(err)
		}
	}
	s, logs := newTestStore(t, dir)
	startWatch(t, s, logs)
	addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))
	if got, err := servedCN(addr, "site.test"); err != nil || got != "v1" {
		t.Fatalf("servedCN(site.test) = %q, %v; want v1", got, err)
	}
	version("..v2", "v2")
	waitFor(t, "site.test to serve v2", cnIs(addr, "site.test", "v2"))
}

func TestRelevantFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base string
		want bool
	}{
		{"a.crt", true},
		{"a.key", true},
		{"..data", true},
		{".a.crt.swp", false},
		{".tmp-a.crt", false},
		{"a.crt~", false},
		{"readme.txt", false},
		{"..data_tmp", false},
	}
	for _, tc := range tests {
		if got := relevantFile(tc.base); got != tc.want {
			t.Errorf("relevantFile(%q) = %v; want %v", tc.base, got, tc.want)
		}
	}
}
