package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// profileResult is one CPU profile of an aralez binary taken under load.
type profileResult struct {
	scen     int
	caseID   string
	target   string
	path     string  // the .pprof file, relative to the out dir
	top      string  // `go tool pprof -top` output, trimmed
	requests float64 // requests answered while the profile was taken
	total    float64 // CPU seconds sampled
	funcs    []pprofFunc
	err      string
}

// pprofFunc is one line of `go tool pprof -top -unit=ms`.
type pprofFunc struct {
	name      string
	flat, cum float64 // seconds
}

// profileTopN is how many functions of each profile the side-by-side table
// takes (the union over the profiles compared).
const profileTopN = 12

// profileWindow runs one extra, unmeasured window of case c against our
// proxy t while fetching a CPU profile of the same length from its config
// API, and keeps the profile, its top functions and the requests answered
// meanwhile for the report. The measured rounds are never profiled:
// profiling costs CPU.
func (s *suite) profileWindow(c tcase, t *target) {
	res := profileResult{scen: c.scen, caseID: c.id, target: t.name}
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
	u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.admin, secs)
	ctx, cancel := context.WithTimeout(s.ctx, s.o.duration+30*time.Second)
	defer cancel()
	fetch := func() ([]byte, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+s.jwtKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("config API answered %d: %s", resp.StatusCode, oneLine(b))
		}
		return b, err
	}
	var body []byte
	var ferr error
	base := "profile." + strings.ReplaceAll(c.id, " ", "_") + "." + t.name + ".txt"
	if c.held {
		// Profile only once every connection is up: the same span as a
		// measured window, with requests counted at the upstreams.
		h := s.runHeld(c, t, s.pidSets(t), filepath.Join(s.o.outDir, "logs", base), func(time.Duration) {
			body, ferr = fetch()
		})
		if ferr == nil && body == nil {
			ferr = h.err
			if ferr == nil {
				ferr = errors.New("the load did not start")
			}
		}
		res.requests = max(0, h.b.upReqs[0]-h.a.upReqs[0]-1) + max(0, h.b.upReqs[1]-h.a.upReqs[1]-1)
	} else {
		type fetched struct {
			body []byte
			err  error
		}
		got := make(chan fetched, 1)
		go func() {
			b, err := fetch()
			got <- fetched{b, err}
		}()
		argv, err := s.loadArgv(c, t, s.o.duration, false)
		if err != nil {
			cancel()
			<-got
			res.err = err.Error()
			return
		}
		s.note(t.name, append([]string{"profile:"}, argv...))
		os.Remove(filepath.Join(s.shm, "h2.log"))
		out, _, _ := runTool(s.ctx, s.o.duration+30*time.Second, argv, nil)
		_ = os.WriteFile(filepath.Join(s.o.outDir, "logs", base), out, 0o644)
		if r, err := s.parseLoad(c, out); err == nil {
			res.requests = r.Requests
		}
		f := <-got
		body, ferr = f.body, f.err
	}
	if ferr != nil {
		res.err = ferr.Error() + " (the config API with /debug/pprof/ may not be wired into this binary)"
		return
	}
	name := t.name + "-s" + fmt.Sprint(c.scen) + "-" + strings.ReplaceAll(c.id, " ", "_") + ".pprof"
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		res.err = err.Error()
		return
	}
	res.path = relTo(s.o.outDir, path)
	out, err := exec.CommandContext(s.ctx, "go", "tool", "pprof", "-top", "-unit=ms", "-nodecount=25", t.bin, path).CombinedOutput()
	if err != nil {
		res.top = "go tool pprof failed: " + oneLine(out)
	} else {
		res.top = strings.TrimSpace(string(out))
		res.total, res.funcs = parsePprofTop(out)
	}
	s.say("profile of %s in %q: %s", t.name, c.id, path)
}

var pprofTotal = regexp.MustCompile(`Total samples = ([0-9.]+[a-zµ]+)`)

// parsePprofTop reads `go tool pprof -top -unit=ms` output and returns the
// sampled CPU seconds and the listed functions in order.
func parsePprofTop(out []byte) (total float64, funcs []pprofFunc) {
	if m := pprofTotal.FindSubmatch(out); m != nil {
		if d, err := time.ParseDuration(string(m[1])); err == nil {
			total = d.Seconds()
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") {
			continue
		}
		flat, err1 := time.ParseDuration(f[0])
		cum, err2 := time.ParseDuration(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		funcs = append(funcs, pprofFunc{name: strings.Join(f[5:], " "), flat: flat.Seconds(), cum: cum.Seconds()})
	}
	return total, funcs
}

// renderProfiles writes, for the profiles of one scenario, a table with
// one column per profile (target and case, e.g. aralez at 50 and at 256
// connections) and one row per function among the top profileTopN of any
// of them: flat CPU µs per request answered during the profile, so a cost
// that grows with the connection count shows as a row. The raw top lists
// follow, folded.
func renderProfiles(w *bytes.Buffer, ps []profileResult) {
	var ok []profileResult
	for _, p := range ps {
		if p.err == "" {
			ok = append(ok, p)
		}
	}
	if len(ok) == 0 {
		return
	}
	if len(ok) > 1 {
		var names []string
		for _, p := range ok {
			for _, f := range p.funcs[:min(profileTopN, len(p.funcs))] {
				if !slices.Contains(names, f.name) {
					names = append(names, f.name)
				}
			}
		}
		fmt.Fprintln(w, "CPU profiles side by side: flat CPU µs per request answered during each profile (extra unmeasured windows; `-` = not in that profile's top 25).")
		fmt.Fprintln(w)
		fmt.Fprint(w, "| function |")
		for _, p := range ok {
			fmt.Fprintf(w, " %s %s |", p.target, p.caseID)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "|---|"+strings.Repeat("---:|", len(ok)))
		fmt.Fprint(w, "| **all samples** |")
		for _, p := range ok {
			fmt.Fprintf(w, " **%s** |", perReq(p.total, p.requests))
		}
		fmt.Fprintln(w)
		fmt.Fprint(w, "| requests during the profile |")
		for _, p := range ok {
			fmt.Fprintf(w, " %.0f |", p.requests)
		}
		fmt.Fprintln(w)
		for _, n := range names {
			fmt.Fprintf(w, "| `%s` |", strings.ReplaceAll(n, "|", "/"))
			for _, p := range ok {
				i := slices.IndexFunc(p.funcs, func(f pprofFunc) bool { return f.name == n })
				if i < 0 {
					fmt.Fprint(w, " - |")
					continue
				}
				fmt.Fprintf(w, " %s |", perReq(p.funcs[i].flat, p.requests))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	for _, p := range ok {
		fmt.Fprintf(w, "<details><summary>CPU profile of %s, scenario %d %q (extra unmeasured window, %.0f requests): $OUT/%s</summary>\n\n```\n%s\n```\n\n</details>\n\n",
			p.target, p.scen, p.caseID, p.requests, p.path, p.top)
	}
}

// perReq formats seconds per request as microseconds, "-" without requests.
func perReq(sec, requests float64) string {
	if requests <= 0 {
		return "-"
	}
	return strconv.FormatFloat(sec/requests*1e6, 'f', 2, 64)
}
