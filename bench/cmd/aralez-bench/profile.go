package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profileResult is one CPU profile of aralez taken under load.
type profileResult struct {
	scen   int
	caseID string
	path   string // the .pprof file, relative to the out dir
	top    string // `go tool pprof -top` output, trimmed
	err    string
}

// profileWindow runs one extra, unmeasured window of case c against our
// proxy while fetching a CPU profile of the same length from its config
// API, and keeps the profile and its top functions for the report. The
// measured rounds are never profiled: profiling costs CPU.
func (s *suite) profileWindow(c tcase, t *target) {
	res := profileResult{scen: c.scen, caseID: c.id}
	defer func() {
		if res.err != "" {
			s.loud(c.scen, "PROFILE of %s in %q not taken: %s", t.name, c.id, res.err)
		}
		s.profiles = append(s.profiles, res)
	}()
	dir := filepath.Join(s.o.outDir, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.err = err.Error()
		return
	}
	secs := max(1, int(s.o.duration/time.Second))
	// The key goes in a header, not the URL, so no error message shows it.
	u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", adminAddr, secs)
	type fetched struct {
		body []byte
		err  error
	}
	got := make(chan fetched, 1)
	ctx, cancel := context.WithTimeout(s.ctx, s.o.duration+30*time.Second)
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+s.jwtKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- fetched{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("config API answered %d: %s", resp.StatusCode, oneLine(b))
		}
		got <- fetched{body: b, err: err}
	}()
	argv, err := s.loadArgv(c, t, s.o.duration, false)
	if err != nil {
		res.err = err.Error()
		return
	}
	s.note(t.name, append([]string{"profile:"}, argv...))
	_, _, _ = runTool(s.ctx, s.o.duration+30*time.Second, argv, nil)
	f := <-got
	if f.err != nil {
		res.err = f.err.Error() + " (the config API with /debug/pprof/ may not be wired into bin/aralez yet)"
		return
	}
	name := "aralez-s" + fmt.Sprint(c.scen) + "-" + strings.ReplaceAll(c.id, " ", "_") + ".pprof"
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, f.body, 0o644); err != nil {
		res.err = err.Error()
		return
	}
	res.path = relTo(s.o.outDir, path)
	out, err := exec.CommandContext(s.ctx, "go", "tool", "pprof", "-top", "-nodecount=15", s.o.aralezBin, path).CombinedOutput()
	if err != nil {
		res.top = "go tool pprof failed: " + oneLine(out)
	} else {
		res.top = strings.TrimSpace(string(out))
	}
	s.say("profile of %s in %q: %s", t.name, c.id, path)
}
