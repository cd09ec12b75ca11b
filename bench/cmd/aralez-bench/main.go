// Command aralez-bench is the driver behind `make bench`: it measures our
// proxy (bin/aralez) against nginx, HAProxy and Caddy, and against the
// reference upstreams directly, with wrk, h2load and benchd, on one machine,
// fairly, and appends the tables to bench/RESULTS.md. See bench/README.md.
//
//	go run ./bench/cmd/aralez-bench [flags]
//	QUICK=1 go run ./bench/cmd/aralez-bench          # 1 round, scenarios 1 and 4
//	SCENARIOS=1,4 go run ./bench/cmd/aralez-bench
//
// Every flag has an environment variable of the same name in upper case
// with '-' replaced by '_' (flags win). Every process it starts runs in its
// own process group and is stopped (SIGTERM, then SIGKILL after 3 s) on
// exit, on error and on Ctrl-C. It refuses to start when one of its ports
// is taken, and sends traffic only to 127.0.0.1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the driver's settings.
type options struct {
	quick       bool
	scenarios   []int
	rounds      int
	warmup      time.Duration
	duration    time.Duration
	proxyCPUs   []int
	loadCPUs    []int
	threads     int
	targets     []string
	goBench     bool
	goBenchTime string
	noiseMax    float64 // % of the CPU set used by processes not ours
	speedMin    float64 // % of the best probe speed
	maxRetries  int
	spreadWarn  float64 // % spread of per-round ratios that earns a "?"
	maxTotal    time.Duration
	results     string
	note        string
	outDir      string
	aralezBin   string
	aralezBase  string // base binary of a same-run A/B; "" = none
	long        bool   // LONG=1: 2 s warm-up, 8 s windows
	syscalls    string // "off", "perf" or "strace" (after resolving "auto")
	sweep       []int  // connection counts of scenario 11
	root        string
	tlsCipher   string
	dryRun      bool
	profile     bool
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("aralez-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", envOr("QUICK", "") == "1" || envOr("QUICK", "") == "true", "one round of scenarios 1 and 4, no Go benchmarks (env QUICK=1)")
	long := fs.Bool("long", envOr("LONG", "") == "1" || envOr("LONG", "") == "true", "windows for decisions: 2 s warm-up, 8 s measured, time cap 60m, unless set otherwise (env LONG=1)")
	base := fs.String("aralez-base", envOr("ARALEZ_BASE", ""), "A/B: a second aralez binary (e.g. bin/aralez-base from make bench-base) measured beside -aralez in the same run (env ARALEZ_BASE)")
	sysc := fs.String("syscalls", envOr("SYSCALLS", "0"), "syscalls per request in one extra window per case and proxy: 1 (perf if usable, else strace), perf, strace or 0 (env SYSCALLS)")
	sweep := fs.String("sweep", envOr("SWEEP", ""), "connection counts of scenario 11 (default 50,256,1000,10000) (env SWEEP)")
	scen := fs.String("scenarios", envOr("SCENARIOS", ""), "scenarios to run, e.g. 1,4 or 1-3 (default all; QUICK: 1,4)")
	rounds := fs.Int("rounds", 0, "rounds over all targets; medians over them (default 3; QUICK: 1) (env ROUNDS)")
	warm := fs.Float64("warmup", -1, "seconds of discarded load before each window (default 1; LONG: 2) (env WARMUP)")
	dur := fs.Int("duration", 0, "seconds of each measured window (default 2; LONG: 8) (env DURATION)")
	pcpus := fs.String("proxy-cpus", envOr("PROXY_CPUS", "0"), "CPUs the proxy under test is pinned to (env PROXY_CPUS)")
	lcpus := fs.String("load-cpus", envOr("LOAD_CPUS", ""), "CPUs for load generators, upstreams and the driver (default: all others) (env LOAD_CPUS)")
	threads := fs.Int("threads", mustInt(envOr("THREADS", "0")), "workers/threads/GOMAXPROCS per proxy (default: number of proxy CPUs) (env THREADS)")
	targets := fs.String("targets", envOr("TARGETS", "direct,nginx,haproxy,caddy,aralez"), "targets to measure (env TARGETS)")
	gob := fs.String("gobench", envOr("GOBENCH", ""), "run go test -bench over ./... and report it: 1 or 0 (default 1; QUICK: 0) (env GOBENCH)")
	gobt := fs.String("gobench-time", envOr("GOBENCH_TIME", "300ms"), "-benchtime for the Go benchmarks (env GOBENCH_TIME)")
	noise := fs.Float64("noise-max", mustFloat(envOr("NOISE_MAX", "10")), "% of a CPU set others may use before a window is repeated (env NOISE_MAX)")
	speed := fs.Float64("speed-min", mustFloat(envOr("SPEED_MIN", "85")), "% of the best CPU speed below which a window is repeated (env SPEED_MIN)")
	retries := fs.Int("max-retries", mustInt(envOr("MAX_RETRIES", "4")), "repeats allowed per run for noisy or slow windows (env MAX_RETRIES)")
	warn := fs.Float64("spread-warn", mustFloat(envOr("SPREAD_WARN", "20")), "% spread of per-round ratios that marks them with ? (env SPREAD_WARN)")
	maxTotal := fs.Duration("max-total", 0, "hard cap on the load part; later windows are skipped, loudly (default 13m; LONG: 60m) (env MAX_TOTAL)")
	results := fs.String("results", envOr("RESULTS", ""), "file the report is appended to (default bench/RESULTS.md; \"-\": none) (env RESULTS)")
	note := fs.String("note", envOr("NOTE", ""), "a sentence added to the report, e.g. about machine noise (env NOTE)")
	out := fs.String("out", envOr("OUT", ""), "directory for configs, logs and raw data (default bench/out/<time>) (env OUT)")
	bin := fs.String("aralez", envOr("ARALEZ", ""), "our binary (default bin/aralez at the repo root) (env ARALEZ)")
	cipher := fs.String("tls13-cipher", envOr("TLS13_CIPHER", "TLS_AES_128_GCM_SHA256"), "the one TLS 1.3 suite h2load offers (env TLS13_CIPHER)")
	dry := fs.Bool("dry-run", false, "render and validate configs, print the plan, run nothing")
	prof := fs.Bool("profile", envOr("PROFILE", "") == "1", "after the rounds, take a CPU profile of aralez in one extra window per case, through its config API (env PROFILE=1)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.quick = *quick
	var err error
	if *scen == "" && o.quick {
		*scen = "1,4"
	}
	if o.scenarios, err = parseScenarios(*scen); err != nil {
		return o, err
	}
	slices.Sort(o.scenarios)
	o.rounds = *rounds
	if o.rounds == 0 {
		o.rounds = mustInt(envOr("ROUNDS", "3"))
		if o.quick && os.Getenv("ROUNDS") == "" {
			o.rounds = 1
		}
	}
	o.long = *long
	defWarm, defDur, defTotal := "1", "2", "13m"
	if o.long {
		defWarm, defDur, defTotal = "2", "8", "60m"
	}
	if *warm < 0 {
		*warm = mustFloat(envOr("WARMUP", defWarm))
	}
	if *dur == 0 {
		*dur = mustInt(envOr("DURATION", defDur))
	}
	if *maxTotal == 0 {
		*maxTotal = mustDur(envOr("MAX_TOTAL", defTotal))
	}
	if o.rounds < 1 || *dur < 1 || *warm < 0 {
		return o, errors.New("rounds and duration must be at least 1, warmup at least 0")
	}
	o.warmup = time.Duration(*warm * float64(time.Second))
	o.duration = time.Duration(*dur) * time.Second
	if o.sweep, err = parseSweep(*sweep); err != nil {
		return o, err
	}
	switch strings.ToLower(*sysc) {
	case "", "0", "off", "false", "no":
		o.syscalls = "off"
	case "1", "auto", "true", "yes":
		o.syscalls = "auto"
	case "perf", "strace":
		o.syscalls = strings.ToLower(*sysc)
	default:
		return o, fmt.Errorf("syscalls %q: want 1, perf, strace or 0", *sysc)
	}
	if o.proxyCPUs, err = parseCPUList(*pcpus); err != nil {
		return o, err
	}
	online, err := parseProcStatFile()
	if err != nil {
		return o, err
	}
	if *lcpus == "" {
		for c := range online {
			if !slices.Contains(o.proxyCPUs, c) {
				o.loadCPUs = append(o.loadCPUs, c)
			}
		}
		slices.Sort(o.loadCPUs)
	} else if o.loadCPUs, err = parseCPUList(*lcpus); err != nil {
		return o, err
	}
	for _, c := range append(slices.Clone(o.proxyCPUs), o.loadCPUs...) {
		if _, ok := online[c]; !ok {
			return o, fmt.Errorf("no CPU %d on this machine", c)
		}
	}
	for _, c := range o.proxyCPUs {
		if slices.Contains(o.loadCPUs, c) {
			return o, fmt.Errorf("CPU %d is both a proxy and a load CPU", c)
		}
	}
	if len(o.loadCPUs) == 0 {
		return o, errors.New("no CPU left for the load side: set -proxy-cpus/-load-cpus")
	}
	o.threads = *threads
	if o.threads <= 0 {
		o.threads = len(o.proxyCPUs)
	}
	for _, t := range strings.Split(*targets, ",") {
		t = strings.TrimSpace(t)
		if t == "" || slices.Contains(o.targets, t) {
			continue
		}
		if !slices.ContainsFunc(allTargets, func(s targetSpec) bool { return s.name == t }) {
			return o, fmt.Errorf("unknown target %q (direct, nginx, haproxy, caddy, aralez, %s)", t, baseName)
		}
		o.targets = append(o.targets, t)
	}
	o.aralezBase = *base
	switch {
	case o.aralezBase != "" && !slices.Contains(o.targets, baseName):
		// -aralez-base alone adds the base binary to the targets.
		o.targets = append(o.targets, baseName)
	case o.aralezBase == "" && slices.Contains(o.targets, baseName):
		return o, fmt.Errorf("target %s needs -aralez-base BIN (or ARALEZ_BASE; make bench-base builds bin/aralez-base)", baseName)
	}
	switch *gob {
	case "":
		o.goBench = !o.quick
	case "1", "true", "yes":
		o.goBench = true
	case "0", "false", "no":
	default:
		return o, fmt.Errorf("gobench %q: want 1 or 0", *gob)
	}
	o.goBenchTime = *gobt
	o.noiseMax, o.speedMin, o.maxRetries, o.spreadWarn = *noise, *speed, *retries, *warn
	o.maxTotal = *maxTotal
	o.note = *note
	o.tlsCipher = *cipher
	o.dryRun = *dry
	o.profile = *prof
	if o.root, err = findRoot(); err != nil {
		return o, err
	}
	o.results = *results
	if o.results == "" {
		o.results = filepath.Join(o.root, "bench", "RESULTS.md")
	}
	o.outDir = *out
	if o.outDir == "" {
		o.outDir = filepath.Join(o.root, "bench", "out", time.Now().UTC().Format("20060102T150405Z"))
	}
	o.aralezBin = *bin
	if o.aralezBin == "" {
		o.aralezBin = filepath.Join(o.root, "bin", "aralez")
	}
	if o.aralezBase != "" {
		if o.aralezBase, err = filepath.Abs(o.aralezBase); err != nil {
			return o, err
		}
	}
	return o, nil
}

func mustInt(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aralez-bench: %q is not a whole number\n", s)
		os.Exit(2)
	}
	return n
}

func mustFloat(s string) float64 {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aralez-bench: %q is not a number\n", s)
		os.Exit(2)
	}
	return n
}

func mustDur(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aralez-bench: %q is not a duration: %v\n", s, err)
		os.Exit(2)
	}
	return d
}

func parseProcStatFile() (map[int]cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseProcStat(b)
}

// findRoot returns the repository root: the nearest folder upwards from the
// working directory whose go.mod declares our module.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/aralez-go/aralez\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the aralez repository (no go.mod of github.com/aralez-go/aralez above the working directory)")
		}
		dir = parent
	}
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "aralez-bench:", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// A second signal, or a panic, must still stop what we started.
	go func() {
		<-ctx.Done()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		select {
		case <-sig:
			fmt.Fprintln(os.Stderr, "aralez-bench: second signal - stopping everything now")
			stopAll()
			os.Exit(130)
		case <-time.After(time.Minute):
		}
	}()
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				stopAll()
				panic(r)
			}
		}()
		defer stopAll()
		err = run(ctx, o)
	}()
	interrupted := ctx.Err() != nil
	cancel()
	switch {
	case err != nil && interrupted:
		fmt.Fprintln(os.Stderr, "aralez-bench: interrupted; every process it started has been stopped")
		code = 130
	case err != nil:
		fmt.Fprintln(os.Stderr, "aralez-bench:", err)
		code = 1
	}
	os.Exit(code)
}
