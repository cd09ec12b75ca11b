package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aralez-go/aralez/bench/peers"
)

// reloadResult is one reload of aralez's 10,000-host config under load.
type reloadResult struct {
	applied  time.Duration // from the file rename to the first 200 for the new host; 0 = never
	requests float64       // requests wrk completed during the load window
	non2xx   float64
	errors   float64
	err      string
}

// reloadUnderLoad measures how long aralez takes to apply a rewritten
// 10,000-host upstreams file (one host added, written by rename, then
// SIGHUP), while wrk keeps sending requests spread over the old hosts;
// any failed or non-2xx request during the window counts against it.
func (s *suite) reloadUnderLoad(c tcase, t *target) {
	res := reloadResult{}
	defer func() {
		s.reload = &res
		if res.err != "" {
			s.loud(c.scen, "RELOAD of %s not measured: %s", t.name, res.err)
		}
	}()
	if t.p == nil || !t.p.alive() {
		res.err = "the proxy is not running"
		return
	}
	p := s.params(t, setHosts)
	newHost := hostName(numHosts + 1)
	p.Hosts = append(p.Hosts, newHost)
	b, err := peers.Render(peers.AralezUpstreams, p)
	if err != nil {
		res.err = err.Error()
		return
	}
	dst := filepath.Join(t.confDir, "upstreams.yaml")
	tmp := filepath.Join(t.confDir, ".upstreams.yaml.new")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		res.err = err.Error()
		return
	}
	d := max(3*time.Second, s.o.duration)
	argv, err := s.loadArgv(c, t, d, true)
	if err != nil {
		res.err = err.Error()
		return
	}
	s.note(t.name, append([]string{"reload load:"}, argv...))
	type out struct {
		b   []byte
		err error
	}
	done := make(chan out, 1)
	go func() {
		b, _, err := runTool(s.ctx, d+30*time.Second, argv, nil)
		done <- out{b, err}
	}()
	// Let wrk get going, then swap the file and signal.
	select {
	case <-time.After(d / 3):
	case <-s.ctx.Done():
	}
	t0 := time.Now()
	if err := os.Rename(tmp, dst); err != nil {
		res.err = err.Error()
	} else {
		_ = syscall.Kill(t.p.pid(), syscall.SIGHUP)
		res.applied = pollHost(s.ctx, t.http, newHost, t0, 10*time.Second)
	}
	o := <-done
	r, perr := parseWrk(o.b)
	if perr != nil {
		res.err = fmt.Sprintf("load during the reload: %v", perr)
		return
	}
	res.requests, res.non2xx, res.errors = r.Requests, r.Non2xx, r.Errors
	if res.err == "" && res.applied == 0 {
		res.err = fmt.Sprintf("the new host %s was not routed within 10 s of the rewrite", newHost)
	}
	s.say("reload of %s: applied after %v; %0.f requests, %.0f non-2xx, %.0f errors during the window",
		t.name, res.applied.Round(time.Millisecond), res.requests, res.non2xx, res.errors)
}

// pollHost requests "/" with Host host every 2 ms until it answers 200 and
// returns the time since t0, or 0 after limit.
func pollHost(ctx context.Context, addr, host string, t0 time.Time, limit time.Duration) time.Duration {
	cl := &http.Client{Timeout: time.Second}
	for time.Since(t0) < limit && ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		req.Host = host
		if resp, err := cl.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(t0)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0
}
