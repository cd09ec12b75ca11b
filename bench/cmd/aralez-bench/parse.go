package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// loadResult is what one measured window of a load generator reports.
type loadResult struct {
	Requests float64 // completed requests (or messages) in the window
	Seconds  float64 // length of the window as the tool measured it
	RPS      float64 // requests per second as the tool reports it
	P50us    float64 // latency percentiles in microseconds
	P99us    float64
	P999us   float64
	Non2xx   float64 // responses with a status outside 2xx (wrk: >= 400 or 3xx)
	Errors   float64 // socket errors, timeouts, failed or errored requests
	ErrText  string  // first error text, when the tool gives one
}

// wrkReportScript is the wrk Lua script every wrk run loads (with the
// scenario's own script prepended when there is one); its done() prints
// one machine-readable line, including p99.9, which wrk's text lacks.
const wrkReportScript = `
done = function(summary, latency, requests)
  io.write(string.format("BENCH_WRK requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

var errNoReport = errors.New("no report in the load generator output")

// parseWrk reads wrk output made with wrkReportScript. Non-2xx counts
// wrk's "Non-2xx or 3xx responses" line; Errors adds connect, read, write
// and timeout errors.
func parseWrk(out []byte) (loadResult, error) {
	var r loadResult
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "BENCH_WRK "):
			kv := map[string]float64{}
			for _, f := range strings.Fields(line)[1:] {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					continue
				}
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return r, fmt.Errorf("wrk report field %q: %w", f, err)
				}
				kv[k] = x
			}
			r.Requests = kv["requests"]
			r.Seconds = kv["duration_us"] / 1e6
			r.P50us, r.P99us, r.P999us = kv["p50_us"], kv["p99_us"], kv["p999_us"]
			r.Errors = kv["connect"] + kv["read"] + kv["write"] + kv["timeout"]
			if r.Errors > 0 {
				r.ErrText = fmt.Sprintf("wrk: connect %.0f, read %.0f, write %.0f, timeout %.0f", kv["connect"], kv["read"], kv["write"], kv["timeout"])
			}
			found = true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 64)
			if err != nil {
				return r, fmt.Errorf("wrk non-2xx line %q: %w", line, err)
			}
			r.Non2xx = n
		case strings.HasPrefix(line, "Requests/sec:"):
			n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err == nil {
				r.RPS = n
			}
		case strings.HasPrefix(line, "unable to connect"), strings.Contains(line, "Connection refused"):
			if r.ErrText == "" || strings.HasPrefix(r.ErrText, "wrk: ") {
				r.ErrText = line
			}
		}
	}
	if !found {
		if r.ErrText != "" {
			return r, fmt.Errorf("%w: %s", errNoReport, r.ErrText)
		}
		return r, errNoReport
	}
	if r.RPS == 0 && r.Seconds > 0 {
		r.RPS = r.Requests / r.Seconds
	}
	return r, nil
}

var (
	h2Finished = regexp.MustCompile(`^finished in ([0-9.]+)s, ([0-9.]+) req/s`)
	h2Requests = regexp.MustCompile(`^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Status   = regexp.MustCompile(`^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// parseH2load reads h2load's text output. h2load has no percentiles; they
// come from its per-request log (see parseH2loadLog). A run in which no
// request was done is an error: h2load exits 0 even when it could not
// connect.
func parseH2load(out []byte) (loadResult, error) {
	var r loadResult
	var gotFin, gotReq bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := h2Finished.FindStringSubmatch(line); m != nil {
			r.Seconds, _ = strconv.ParseFloat(m[1], 64)
			r.RPS, _ = strconv.ParseFloat(m[2], 64)
			gotFin = true
		} else if m := h2Requests.FindStringSubmatch(line); m != nil {
			n := make([]float64, 8)
			for i := 1; i < len(m); i++ {
				n[i], _ = strconv.ParseFloat(m[i], 64)
			}
			r.Requests = n[4] // succeeded
			r.Errors = n[5] + n[6] + n[7]
			gotReq = true
		} else if m := h2Status.FindStringSubmatch(line); m != nil {
			x3, _ := strconv.ParseFloat(m[2], 64)
			x4, _ := strconv.ParseFloat(m[3], 64)
			x5, _ := strconv.ParseFloat(m[4], 64)
			r.Non2xx = x3 + x4 + x5
		}
	}
	if !gotFin || !gotReq {
		return r, errNoReport
	}
	if r.Requests == 0 {
		return r, errors.New("h2load completed no request (nothing listening, or the protocol was refused)")
	}
	return r, nil
}

// parseH2loadLog reads h2load's --log-file (start time in µs, status,
// duration in µs, tab separated) and returns the 50th, 99th and 99.9th
// percentile of the durations in microseconds.
func parseH2loadLog(log []byte) (p50, p99, p999 float64, err error) {
	var d []float64
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			continue
		}
		x, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("h2load log line %q: %w", sc.Text(), err)
		}
		d = append(d, x)
	}
	if len(d) == 0 {
		return 0, 0, 0, errors.New("h2load log has no request")
	}
	slices.Sort(d)
	return percentile(d, 50), percentile(d, 99), percentile(d, 99.9), nil
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

// parseBenchd reads the JSON object benchd grpc-load and ws-load print.
func parseBenchd(out []byte) (loadResult, error) {
	var v struct {
		Requests float64 `json:"requests"`
		Errors   float64 `json:"errors"`
		Seconds  float64 `json:"seconds"`
		RPS      float64 `json:"rps"`
		P50us    float64 `json:"p50_us"`
		P99us    float64 `json:"p99_us"`
		P999us   float64 `json:"p999_us"`
		FirstErr string  `json:"first_error"`
	}
	i := bytes.LastIndexByte(bytes.TrimSpace(out), '\n')
	line := bytes.TrimSpace(out)[i+1:]
	if err := json.Unmarshal(line, &v); err != nil {
		return loadResult{}, fmt.Errorf("%w: %s", errNoReport, bytes.TrimSpace(out))
	}
	return loadResult{Requests: v.Requests, Seconds: v.Seconds, RPS: v.RPS,
		P50us: v.P50us, P99us: v.P99us, P999us: v.P999us, Errors: v.Errors, ErrText: v.FirstErr}, nil
}

// goBench is one line of `go test -bench` output.
type goBench struct {
	Pkg         string
	Name        string
	NsPerOp     float64
	BytesPerOp  float64 // -1 when not reported
	AllocsPerOp float64 // -1 when not reported
}

// parseGoBench reads `go test -run ^$ -bench . -benchmem ./...` output and
// returns the benchmark lines and the packages that failed.
func parseGoBench(out []byte) (bs []goBench, failed []string) {
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "pkg: ") && len(f) == 2:
			pkg = f[1]
		case strings.HasPrefix(line, "FAIL\t") || (len(f) >= 2 && f[0] == "FAIL" && strings.Contains(f[1], "/")):
			failed = append(failed, strings.Join(f[1:], " "))
		case strings.HasPrefix(line, "Benchmark") && len(f) >= 4 && f[3] == "ns/op":
			b := goBench{Pkg: pkg, Name: f[0], BytesPerOp: -1, AllocsPerOp: -1}
			b.NsPerOp, _ = strconv.ParseFloat(f[2], 64)
			for i := 4; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				switch f[i+1] {
				case "B/op":
					b.BytesPerOp = v
				case "allocs/op":
					b.AllocsPerOp = v
				}
			}
			bs = append(bs, b)
		}
	}
	return bs, failed
}
