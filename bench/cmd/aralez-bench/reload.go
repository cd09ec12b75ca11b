package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aralez-go/aralez/bench/peers"
)

// The two reloads of the many-routes scenario, both under load.
const (
	// reloadFile rewrites the one upstreams file of 10,000 hosts with a
	// host added.
	reloadFile = "whole file"
	// reloadSpread edits one host of 10,000 spread over spreadFiles
	// conf.d files.
	reloadSpread = "conf.d spread"
)

// spreadFiles is how many conf.d files the spread reload puts the hosts
// in; spreadEdited is the file it edits (its first host).
const (
	spreadFiles  = 100
	spreadEdited = 42
)

// reloadResult is one reload of a 10,000-host config under load.
type reloadResult struct {
	target  string
	kind    string        // reloadFile or reloadSpread
	applied time.Duration // from the file rename to the first answer of the new table; 0 = never
	stages  reloadStages
	// ran and waited are the proxy's time on its CPU and waiting on a
	// run queue for it (others' processes) from the change to the
	// answer: a large wait means a busy machine, not a slow reload.
	ran, waited time.Duration
	// tries is how many windows were run for this reload (noise); the
	// one kept is the quietest. requests, non2xx and errors count every
	// window's.
	tries    int
	requests float64 // requests wrk completed during the load windows
	non2xx   float64
	errors   float64
	err      string
}

// maxReloadTries bounds the windows of one reload: a window in which
// the proxy waited for its CPU (others' processes) for more than
// NOISE_MAX % of the time to apply is repeated with a new change, as a
// noisy throughput window is, and the quietest window is kept.
const maxReloadTries = 3

// noise is the proxy's wait for its CPU in % of the time to apply.
func (r *reloadResult) noise() float64 {
	if r.applied <= 0 {
		return 0
	}
	return 100 * float64(r.waited) / float64(r.applied)
}

// reloadStages is aralez's "config applied" log line of a reload: the
// time of the whole reload and of each stage (issue 16). Builds before
// issue 16 log the total only, and it leaves out their parse.
type reloadStages struct {
	logged bool // the line was found
	split  bool // it has the stage times

	total, parse, merge, compile, swap time.Duration
	files, parsed                      int
}

// nonParse is the reload's time besides reading and parsing the files:
// merge, compile (with the digest) and swap.
func (st reloadStages) nonParse() time.Duration { return st.merge + st.compile + st.swap }

// reloadUnderLoad measures the reloads of aralez's 10,000-host config
// while wrk keeps sending requests spread over the hosts: the whole
// upstreams file rewritten with one host added, then, with the same
// hosts moved to conf.d files, one host edited in one of them. Each
// change is written by rename and followed by SIGHUP; any failed or
// non-2xx request during its window counts against it.
func (s *suite) reloadUnderLoad(c tcase, t *target) {
	record := func(res *reloadResult) bool {
		res.target = t.name
		s.reloads = append(s.reloads, res)
		if res.err != "" {
			s.loud(c.scen, "RELOAD (%s) of %s not measured: %s", res.kind, t.name, res.err)
			return false
		}
		s.say("reload (%s) of %s: applied after %v (logged %v, %v without the parse; the proxy ran %v and waited %v for its CPU); %0.f requests, %.0f non-2xx, %.0f errors during the window",
			res.kind, t.name, res.applied.Round(time.Millisecond), res.stages.total.Round(time.Millisecond),
			res.stages.nonParse().Round(time.Millisecond), res.ran.Round(time.Millisecond), res.waited.Round(time.Millisecond),
			res.requests, res.non2xx, res.errors)
		return true
	}
	if t.p == nil || !t.p.alive() {
		record(&reloadResult{kind: reloadFile, err: "the proxy is not running"})
		return
	}
	p := s.params(t, setHosts)
	// Each try adds another host: host 10,001, then 10,002 in its place...
	added := func(try int) string { return hostName(numHosts + 1 + try) }
	file, tries := s.reloadTries(c, t, reloadFile, func(try int) error {
		q := p
		q.Hosts = append(slices.Clone(p.Hosts), added(try))
		b, err := peers.Render(peers.AralezUpstreams, q)
		if err != nil {
			return err
		}
		return replaceFile(filepath.Join(t.confDir, "upstreams.yaml"), b)
	}, func(ctx context.Context, t0 time.Time, try int) time.Duration {
		return pollHost(ctx, t.http, added(try), "", t0, 10*time.Second)
	})
	if !record(file) {
		return
	}
	if err := s.spreadHosts(t, p, added(tries-1)); err != nil {
		record(&reloadResult{kind: reloadSpread, err: err.Error()})
		return
	}
	edited := p.Hosts[spreadEdited*numHosts/spreadFiles]
	// Each try edits the host again: X-Served-Via NAME-edited, -edited2...
	via := func(try int) string {
		if try == 0 {
			return t.name + "-edited"
		}
		return t.name + "-edited" + strconv.Itoa(try+1)
	}
	spread, _ := s.reloadTries(c, t, reloadSpread, func(try int) error {
		b, err := spreadFile(p, spreadEdited, via(try))
		if err != nil {
			return err
		}
		return replaceFile(filepath.Join(t.confDir, "conf.d", fmt.Sprintf("%03d.yaml", spreadEdited)), b)
	}, func(ctx context.Context, t0 time.Time, try int) time.Duration {
		return pollHost(ctx, t.http, edited, via(try), t0, 10*time.Second)
	})
	record(spread)
}

// reloadTries runs reloadWindow for one reload until a window is quiet
// (the proxy waited for its CPU at most NOISE_MAX % of the time to
// apply) or maxReloadTries windows ran; change and poll get the try's
// number, from 0, and must make a change the previous try did not. It
// returns the quietest window, with the failures of all, and the number
// of windows run. A window that fails ends the tries.
func (s *suite) reloadTries(c tcase, t *target, kind string, change func(try int) error, poll func(ctx context.Context, t0 time.Time, try int) time.Duration) (*reloadResult, int) {
	var best *reloadResult
	var requests, non2xx, errs float64
	tries := 0
	for try := range maxReloadTries {
		if s.ctx.Err() != nil {
			break
		}
		res := s.reloadWindow(c, t, kind, func() error { return change(try) },
			func(ctx context.Context, t0 time.Time) time.Duration { return poll(ctx, t0, try) })
		tries++
		requests, non2xx, errs = requests+res.requests, non2xx+res.non2xx, errs+res.errors
		if res.err != "" {
			best = res
			break
		}
		if best == nil || res.noise() < best.noise() {
			best = res
		}
		if res.noise() <= s.o.noiseMax {
			break
		}
		next := "repeated"
		if try+1 == maxReloadTries {
			next = "the quietest window is kept"
		}
		s.say("reload (%s) of %s, window %d: applied after %v, but the proxy waited %v for its CPU (%.0f%%); %s",
			kind, t.name, try+1, res.applied.Round(time.Millisecond), res.waited.Round(time.Millisecond), res.noise(), next)
	}
	if best == nil {
		return &reloadResult{kind: kind, err: "interrupted"}, tries
	}
	best.tries, best.requests, best.non2xx, best.errors = tries, requests, non2xx, errs
	return best, tries
}

// reloadWindow runs wrk over the hosts; a third of the way in it makes
// the change, sends SIGHUP and polls until the change is served. The
// stage times come from the log line of that reload.
func (s *suite) reloadWindow(c tcase, t *target, kind string, change func() error, poll func(context.Context, time.Time) time.Duration) *reloadResult {
	res := &reloadResult{kind: kind}
	d := max(3*time.Second, s.o.duration)
	argv, err := s.loadArgv(c, t, d, true)
	if err != nil {
		res.err = err.Error()
		return res
	}
	s.note(t.name, append([]string{"reload load (" + kind + "):"}, argv...))
	logPath := filepath.Join(s.o.outDir, "logs", t.name+"."+setHosts+".log")
	logFrom := fileSize(logPath)
	type out struct {
		b   []byte
		err error
	}
	done := make(chan out, 1)
	go func() {
		b, _, err := runTool(s.ctx, d+30*time.Second, argv, nil)
		done <- out{b, err}
	}()
	// Let wrk get going, then change the file and signal.
	select {
	case <-time.After(d / 3):
	case <-s.ctx.Done():
	}
	pids := treePids(t.p.pid())
	run0, wait0 := pidsSched(pids)
	t0 := time.Now()
	if err := change(); err != nil {
		res.err = err.Error()
	} else {
		_ = syscall.Kill(t.p.pid(), syscall.SIGHUP)
		res.applied = poll(s.ctx, t0)
		run1, wait1 := pidsSched(pids)
		res.ran, res.waited = run1-run0, wait1-wait0
	}
	o := <-done
	r, perr := parseWrk(o.b)
	if perr != nil && res.err == "" {
		res.err = fmt.Sprintf("load during the reload: %v", perr)
	}
	res.requests, res.non2xx, res.errors = r.Requests, r.Non2xx, r.Errors
	if res.err == "" && res.applied == 0 {
		res.err = "the change was not served within 10 s of the rewrite"
	}
	if res.err == "" {
		res.stages = appliedLine(readFrom(logPath, logFrom))
	}
	return res
}

// spreadHosts moves t's hosts from its upstreams file to spreadFiles
// conf.d files, with no load running, and waits until the proxy serves
// the moved table (added, the host the whole-file reload added, is
// gone).
func (s *suite) spreadHosts(t *target, p peers.Params, added string) error {
	dir := filepath.Join(t.confDir, "conf.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range spreadFiles {
		b, err := spreadFile(p, i, "")
		if err != nil {
			return err
		}
		if err := replaceFile(filepath.Join(dir, fmt.Sprintf("%03d.yaml", i)), b); err != nil {
			return err
		}
	}
	if err := replaceFile(filepath.Join(t.confDir, "upstreams.yaml"),
		[]byte("# Aralez upstreams for the bench run; generated by aralez-bench. The hosts are in conf.d/.\nprovider: file\nupstreams: {}\n")); err != nil {
		return err
	}
	s.note(t.name, []string{"reload (" + reloadSpread + "): the hosts moved to", strconv.Itoa(spreadFiles), "files conf.d/NNN.yaml, then SIGHUP"})
	logPath := filepath.Join(s.o.outDir, "logs", t.name+"."+setHosts+".log")
	logFrom := fileSize(logPath)
	t0 := time.Now()
	_ = syscall.Kill(t.p.pid(), syscall.SIGHUP)
	if pollHost(s.ctx, t.http, p.Hosts[len(p.Hosts)-1], "", t0, 60*time.Second) == 0 ||
		pollStatus(s.ctx, t.http, added, http.StatusNotFound, 60*time.Second) != nil {
		return fmt.Errorf("the table moved to conf.d/ was not served within 60 s")
	}
	// The file watcher loads the same files after its debounce; its
	// outcome (applied, skipped or rejected, logged with source or
	// reason "file") must come before the measured window.
	for ; time.Since(t0) < 60*time.Second && s.ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(logPath); err == nil && int64(len(b)) >= logFrom &&
			(bytes.Contains(b[logFrom:], []byte(" reason=file")) || bytes.Contains(b[logFrom:], []byte(" source=file"))) {
			break
		}
	}
	return nil
}

// spreadFile renders conf.d file i of the spread: its share of p's
// hosts; with via set, its first host says via in X-Served-Via and
// X-Proxy-From (the edit).
func spreadFile(p peers.Params, i int, via string) ([]byte, error) {
	per := len(p.Hosts) / spreadFiles
	hosts := p.Hosts[i*per : (i+1)*per]
	q := p
	q.Hosts = hosts
	if via == "" {
		return peers.Render(peers.AralezConfD, q)
	}
	q.Hosts = hosts[1:]
	rest, err := peers.Render(peers.AralezConfD, q)
	if err != nil {
		return nil, err
	}
	q.Hosts, q.Name = hosts[:1], via
	first, err := peers.Render(peers.AralezConfD, q)
	return append(first, rest...), err
}

// replaceFile writes b to path by rename, as editors do.
func replaceFile(path string, b []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pollHost requests "/" with Host host every 2 ms until it answers 200
// (with via set: and X-Served-Via via) and returns the time since t0,
// or 0 after limit.
func pollHost(ctx context.Context, addr, host, via string, t0 time.Time, limit time.Duration) time.Duration {
	cl := &http.Client{Timeout: time.Second}
	for time.Since(t0) < limit && ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		req.Host = host
		if resp, err := cl.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && (via == "" || resp.Header.Get("X-Served-Via") == via) {
				return time.Since(t0)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0
}

// pollStatus requests "/" with Host host every 10 ms until it answers
// status, for at most limit.
func pollStatus(ctx context.Context, addr, host string, status int, limit time.Duration) error {
	cl := &http.Client{Timeout: time.Second}
	var last string
	for t0 := time.Now(); time.Since(t0) < limit && ctx.Err() == nil; time.Sleep(10 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		req.Host = host
		resp, err := cl.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == status {
			return nil
		}
		last = resp.Status
	}
	return fmt.Errorf("%s answers %s; want %d", host, last, status)
}

// fileSize returns the size of the file at path, or 0.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns the file at path from offset on, waiting up to 2 s for
// a "config applied" line to appear there (the proxy logs it right after
// the swap the poll saw).
func readFrom(path string, offset int64) []byte {
	var b []byte
	for t0 := time.Now(); time.Since(t0) < 2*time.Second; time.Sleep(20 * time.Millisecond) {
		all, err := os.ReadFile(path)
		if err != nil || int64(len(all)) < offset {
			return nil
		}
		if b = all[offset:]; bytes.Contains(b, []byte(`msg="config applied"`)) {
			break
		}
	}
	return b
}

// appliedLine returns the stage times of the first "config applied" line
// of a log in slog's text format.
func appliedLine(log []byte) reloadStages {
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		kv := logFields(sc.Text())
		if kv["msg"] != "config applied" {
			continue
		}
		sec := func(k string) time.Duration {
			f, _ := strconv.ParseFloat(kv[k], 64)
			return time.Duration(f * float64(time.Second))
		}
		n := func(k string) int { v, _ := strconv.Atoi(kv[k]); return v }
		_, split := kv["parse_seconds"]
		return reloadStages{logged: true, split: split,
			total: sec("duration_seconds"), parse: sec("parse_seconds"), merge: sec("merge_seconds"),
			compile: sec("compile_seconds"), swap: sec("swap_seconds"), files: n("files"), parsed: n("files_parsed")}
	}
	return reloadStages{}
}

// logFields splits a slog text line into its key=value pairs; quoted
// values are unquoted.
func logFields(line string) map[string]string {
	kv := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		k, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		v := rest
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		kv[k] = v
		line = rest
	}
	return kv
}
