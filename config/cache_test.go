package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// confDHost is a conf.d host entry for tests: name routed to server.
func confDHost(name, server string) string {
	return fmt.Sprintf("%s:\n  paths:\n    \"/\":\n      servers: [%q]\n", name, server)
}

// spread writes an upstreams.yaml without hosts and conf.d/NN.yaml files
// of two hosts each.
func spread(t *testing.T, files int) string {
	t.Helper()
	m := map[string]string{"upstreams.yaml": "provider: file\nupstreams: {}\n"}
	for i := range files {
		m[fmt.Sprintf("conf.d/%02d.yaml", i)] = confDHost(fmt.Sprintf("h%da.test", i), "10.0.0.1:80") + confDHost(fmt.Sprintf("h%db.test", i), "10.0.0.2:80")
	}
	return writeFiles(t, m)
}

// loaded returns a spread of files conf.d files, the path of its
// upstreams file and a Cache that has loaded it once.
func loaded(t *testing.T, files int) (dir, path string, c *Cache) {
	t.Helper()
	dir = spread(t, files)
	path = filepath.Join(dir, "upstreams.yaml")
	c = new(Cache)
	if _, err := c.LoadUpstreams(path); err != nil {
		t.Fatal(err)
	}
	return dir, path, c
}

// serverOf returns the first server of host name in u, or "".
func serverOf(u *Upstreams, name string) string {
	for _, h := range u.Hosts {
		if h.Name == name {
			return h.Paths[0].Servers[0].Address
		}
	}
	return ""
}

// rewrite replaces path's content by rename, as editors do.
func rewrite(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestCacheParsesOnlyChangedFiles: a second load parses nothing, an
// edit of one conf.d file parses that file only, and every table is
// the one a load without cache gives (issue 16).
func TestCacheParsesOnlyChangedFiles(t *testing.T) {
	t.Parallel()
	dir := spread(t, 5)
	path := filepath.Join(dir, "upstreams.yaml")
	var c Cache
	check := func(step string, wantParsed int) *Upstreams {
		t.Helper()
		u, err := c.LoadUpstreams(path)
		if err != nil {
			t.Fatalf("%s: LoadUpstreams error: %v", step, err)
		}
		fresh, err := LoadUpstreams(path)
		if err != nil {
			t.Fatal(err)
		}
		if u.Stats.Files != 6 || u.Stats.Parsed != wantParsed {
			t.Errorf("%s: Stats = %+v; want 6 files, %d parsed", step, u.Stats, wantParsed)
		}
		if u.Sum() != fresh.Sum() || !slices.Equal(u.Files, fresh.Files) || !slices.Equal(u.Warnings, fresh.Warnings) {
			t.Errorf("%s: cached table differs from an uncached load:\n%+v\n%+v", step, u, fresh)
		}
		return u
	}
	check("first load", 6)
	check("unchanged", 0)
	rewrite(t, filepath.Join(dir, "conf.d/03.yaml"), confDHost("h3a.test", "10.9.9.9:80")+confDHost("h3b.test", "10.0.0.2:80"))
	u := check("one file edited", 1)
	if got := serverOf(u, "h3a.test"); got != "10.9.9.9:80" {
		t.Errorf("edited host's server = %q; want 10.9.9.9:80", got)
	}
	if got := u.Hosts[6].Pos; got.File != filepath.Join(dir, "conf.d/03.yaml") || got.Line != 1 || got.Col != 1 {
		t.Errorf("h3a.test Pos = %v; want conf.d/03.yaml:1:1", got)
	}
	if u.Stats.Parse <= 0 || u.Stats.Merge <= 0 {
		t.Errorf("Stats = %+v; want Parse and Merge durations", u.Stats)
	}
}

// TestCacheKeyedByContent: a file rewritten with content of the same
// size and its old modification time is parsed again.
func TestCacheKeyedByContent(t *testing.T) {
	t.Parallel()
	dir, path, c := loaded(t, 2)
	f := filepath.Join(dir, "conf.d/01.yaml")
	st, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(f)
	edited := strings.Replace(string(old), "10.0.0.1:80", "10.0.0.7:80", 1)
	if len(edited) != len(old) || edited == string(old) {
		t.Fatal("the edit must keep the size")
	}
	if err := os.WriteFile(f, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	u, err := c.LoadUpstreams(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := serverOf(u, "h1a.test"); got != "10.0.0.7:80" || u.Stats.Parsed != 1 {
		t.Errorf("after a same-size edit with the old mtime: server %q, %d parsed; want 10.0.0.7:80, 1", got, u.Stats.Parsed)
	}
}

// TestCacheBadFile: a broken conf.d file fails the load with its
// file:line:col, the same from the cache on the next load, and the
// fixed file loads.
func TestCacheBadFile(t *testing.T) {
	t.Parallel()
	dir, path, c := loaded(t, 3)
	bad := filepath.Join(dir, "conf.d/02.yaml")
	rewrite(t, bad, confDHost("h2a.test", "10.0.0.1:80")+"h2b.test:\n  paths:\n    \"/\":\n      servers: [\"10.0.0.2\"]\n")
	want := bad + `:8:17: h2b.test.paths./.servers[0]: invalid address "10.0.0.2": missing port; want host:port`
	for _, step := range []string{"parsed", "cached"} {
		u, err := c.LoadUpstreams(path)
		var el ErrorList
		if u != nil || !errors.As(err, &el) || len(el) != 1 || el[0].Error() != want {
			t.Fatalf("%s: LoadUpstreams = %v, %v; want the error %s", step, u, err, want)
		}
	}
	rewrite(t, bad, confDHost("h2a.test", "10.0.0.1:80")+confDHost("h2b.test", "10.0.0.3:80"))
	u, err := c.LoadUpstreams(path)
	if err != nil || serverOf(u, "h2b.test") != "10.0.0.3:80" || u.Stats.Parsed != 1 {
		t.Fatalf("fixed: LoadUpstreams = %+v, %v; want h2b.test on 10.0.0.3:80, 1 file parsed", u, err)
	}
	// A host moved into another file is a duplicate until it leaves
	// the first one: the error names both places, cached or not.
	rewrite(t, filepath.Join(dir, "conf.d/00.yaml"), confDHost("h0a.test", "10.0.0.1:80")+confDHost("h2b.test", "10.0.0.1:80"))
	for _, step := range []string{"parsed", "cached"} {
		_, err = c.LoadUpstreams(path)
		if want := bad + `:5:1: h2b.test: host "h2b.test" is already defined at ` + filepath.Join(dir, "conf.d/00.yaml") + ":5:1"; err == nil || err.Error() != want {
			t.Errorf("%s duplicate: error %v; want %s", step, err, want)
		}
	}
}

// TestCacheDeletedFile: the hosts of a deleted conf.d file are gone
// from the next table, and the cache forgets the file.
func TestCacheDeletedFile(t *testing.T) {
	t.Parallel()
	dir, path, c := loaded(t, 3)
	if err := os.Remove(filepath.Join(dir, "conf.d/01.yaml")); err != nil {
		t.Fatal(err)
	}
	u, err := c.LoadUpstreams(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"h0a.test", "h0b.test", "h2a.test", "h2b.test"}
	if got := hostNames(u); !slices.Equal(got, want) || u.Stats.Files != 3 || u.Stats.Parsed != 0 {
		t.Errorf("after deleting conf.d/01.yaml: hosts %v, Stats %+v; want %v, 3 files, 0 parsed", got, u.Stats, want)
	}
	c.mu.Lock()
	_, kept := c.files[filepath.Join(dir, "conf.d/01.yaml")]
	n := len(c.files)
	c.mu.Unlock()
	if kept || n != 3 {
		t.Errorf("cache holds %d files (deleted one kept: %v); want 3", n, kept)
	}
}

// TestCacheLoad: Load through a cache reads main.yaml and parses an
// unchanged upstreams table no more.
func TestCacheLoad(t *testing.T) {
	t.Parallel()
	dir := spread(t, 2)
	if err := os.WriteFile(filepath.Join(dir, "main.yaml"), []byte("proxy_address_http: 127.0.0.1:8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var c Cache
	for i, want := range []int{3, 0} {
		cfg, err := c.Load(filepath.Join(dir, "main.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Upstreams.Stats.Parsed; got != want || len(cfg.Upstreams.Hosts) != 4 {
			t.Errorf("load %d: %d files parsed, %d hosts; want %d, 4", i+1, got, len(cfg.Upstreams.Hosts), want)
		}
	}
}

// TestCacheConcurrent loads through one cache from several goroutines
// while a file changes (run with -race): every table is whole, the old
// content or the new.
func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	dir := spread(t, 4)
	path := filepath.Join(dir, "upstreams.yaml")
	f := filepath.Join(dir, "conf.d/02.yaml")
	var c Cache
	var wg sync.WaitGroup
	deadline := time.Now().Add(300 * time.Millisecond)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				u, err := c.LoadUpstreams(path)
				if err != nil {
					t.Error(err)
					return
				}
				if s := serverOf(u, "h2a.test"); len(u.Hosts) != 8 || s != "10.0.0.1:80" && s != "10.0.0.5:80" {
					t.Errorf("table of %d hosts, h2a.test on %q", len(u.Hosts), s)
					return
				}
			}
		}()
	}
	for i := 0; time.Now().Before(deadline); i++ {
		rewrite(t, f, confDHost("h2a.test", []string{"10.0.0.1:80", "10.0.0.5:80"}[i%2])+confDHost("h2b.test", "10.0.0.2:80"))
	}
	wg.Wait()
}

// TestCacheSharesParseUnderWay: a load that finds the same file with the
// same content being parsed by another load waits and takes that parse's
// result (the watcher and SIGHUP loading one edit together); a load of
// other content does not wait; a parse that panics leaves its waiter to
// parse for itself.
func TestCacheSharesParseUnderWay(t *testing.T) {
	t.Parallel()
	var c Cache
	waiting := make(chan struct{}, 4)
	c.waitHook = func() { waiting <- struct{}{} }
	release := make(chan struct{})
	var mu sync.Mutex
	parsed := map[string]int{}
	parse := func(block bool) func(string, []byte) *fileParse {
		return func(name string, data []byte) *fileParse {
			mu.Lock()
			parsed[string(data)]++
			mu.Unlock()
			if block {
				<-release
			}
			return &fileParse{warns: []string{string(data)}}
		}
	}
	type result struct {
		fp    *fileParse
		fresh bool
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() { fp, fresh := c.parse("a.yaml", []byte("v1"), parse(true)); first <- result{fp, fresh} }()
	// The first load is parsing once it has counted its parse.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := parsed["v1"]
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first parse did not start")
		}
	}
	go func() { fp, fresh := c.parse("a.yaml", []byte("v1"), parse(false)); second <- result{fp, fresh} }()
	select {
	case <-waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the second load of the same content did not wait for the first")
	}
	// Other content under the same name does not wait.
	if fp, fresh := c.parse("a.yaml", []byte("v2"), parse(false)); !fresh || fp.warns[0] != "v2" {
		t.Errorf("parse(v2) during the parse of v1 = %v, fresh %v; want its own parse", fp.warns, fresh)
	}
	close(release)
	r1, r2 := <-first, <-second
	if !r1.fresh || r2.fresh || r1.fp != r2.fp || r1.fp.warns[0] != "v1" || string(r1.fp.data) != "v1" {
		t.Errorf("the two loads of v1 got %p (fresh %v) and %p (fresh %v); want one parse shared, the first fresh", r1.fp, r1.fresh, r2.fp, r2.fresh)
	}
	if parsed["v1"] != 1 || parsed["v2"] != 1 {
		t.Errorf("parses: %v; want v1 and v2 once each", parsed)
	}

	// A parse that panics: its waiter parses for itself.
	release = make(chan struct{})
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		c.parse("b.yaml", []byte("p"), func(string, []byte) *fileParse { <-release; panic("boom") })
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		n := len(c.parsing)
		c.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the panicking parse did not start")
		}
	}
	go func() { fp, fresh := c.parse("b.yaml", []byte("p"), parse(false)); second <- result{fp, fresh} }()
	<-waiting
	close(release)
	if p := <-panicked; p != "boom" {
		t.Errorf("the panicking parse recovered %v; want boom", p)
	}
	if r := <-second; !r.fresh || r.fp == nil || r.fp.warns[0] != "p" {
		t.Errorf("the waiter of a panicked parse got %+v; want its own parse of p", r)
	}
}
