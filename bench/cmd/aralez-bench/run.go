package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aralez-go/aralez/bench/peers"
)

// target is a proxy (or the direct upstream) during a run.
type target struct {
	targetSpec
	p       *proc  // running process in the current config set; nil for direct
	down    string // why it is not up in this config set ("" = up)
	noTLS   string // ours: why the TLS listener is missing
	confDir string
	bin     string // ours: the binary (-aralez or -aralez-base)
}

// sample is one measured window.
type sample struct {
	Scenario int     `json:"scenario"`
	Case     string  `json:"case"`
	Target   string  `json:"target"`
	Kind     int     `json:"kind"`
	Round    int     `json:"round"`
	Kept     bool    `json:"kept"`
	Why      string  `json:"why,omitempty"` // why a window was repeated or failed
	Failed   string  `json:"failed,omitempty"`
	RPS      float64 `json:"rps"`
	Requests float64 `json:"requests"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p999_us"`
	Non2xx   float64 `json:"non2xx"`
	Errors   float64 `json:"errors"`
	ErrText  string  `json:"err_text,omitempty"`
	ProxyCPU float64 `json:"proxy_cpu_s"`
	UserCPU  float64 `json:"proxy_user_s"` // the user part of ProxyCPU
	SysCPU   float64 `json:"proxy_sys_s"`  // the system part of ProxyCPU
	// Established is the client connections a held window had open when
	// its warm-up began (held cases only).
	Established int     `json:"established,omitempty"`
	Elapsed     float64 `json:"elapsed_s"`
	HWMKiB      float64 `json:"hwm_kib"`
	BusyP       float64 `json:"busy_proxy_pct"`
	BusyL       float64 `json:"busy_load_pct"`
	OthersP     float64 `json:"others_proxy_pct"`
	OthersL     float64 `json:"others_load_pct"`
	SpeedP      float64 `json:"speed_proxy"`
	SpeedL      float64 `json:"speed_load"`
	UpConns     float64 `json:"up_new_conns"`
	Up1         float64 `json:"up1_reqs"`
	Up2         float64 `json:"up2_reqs"`
	Pinned      string  `json:"pinned"`
}

// suite is one run of the driver.
type suite struct {
	o         options
	ctx       context.Context
	start     time.Time
	targets   []*target
	cases     []tcase
	samples   []sample
	skips     map[int][]string // scenario -> loud skip lines
	notes     []string         // run-wide loud lines
	commands  map[string][]string
	versions  []string
	machine   []string
	probes    map[int]*probe
	bestSpd   float64
	retries   int
	jwtKey    string
	token     string
	shm       string
	ups       []*proc // upstream nginx instances and benchd
	raw       *os.File
	capHit    bool
	log       io.Writer
	goBench   []goBench
	goFailed  []string
	goCmd     string
	goErr     string
	profiles  []profileResult
	reloads   []*reloadResult      // scenario 7, aralez and its A/B base
	sysc      map[string]*sysCount // case|target -> syscalls window
	perfEvts  []string             // per-syscall tracepoints perf can count here
	nofile    uint64               // RLIMIT_NOFILE the driver passes on
	somaxconn int                  // net.core.somaxconn; 0 = unknown
}

func (s *suite) say(format string, args ...any) {
	fmt.Fprintf(s.log, time.Now().Format("15:04:05")+" "+format+"\n", args...)
}

// loud prints a line that must not be missed and keeps it for the report.
func (s *suite) loud(scen int, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	s.say("!!! %s", line)
	if scen == 0 {
		s.notes = append(s.notes, line)
		return
	}
	if !slices.Contains(s.skips[scen], line) {
		s.skips[scen] = append(s.skips[scen], line)
	}
}

func (s *suite) note(tag string, argv []string) {
	line := strings.Join(argv, " ")
	if !slices.Contains(s.commands[tag], line) {
		s.commands[tag] = append(s.commands[tag], line)
	}
}

func (s *suite) tasksetProxy(argv ...string) []string {
	return append([]string{"taskset", "-c", cpuList(s.o.proxyCPUs)}, argv...)
}

func (s *suite) tasksetLoad(argv ...string) []string {
	return append([]string{"taskset", "-c", cpuList(s.o.loadCPUs)}, argv...)
}

func cpuList(cpus []int) string {
	parts := make([]string, len(cpus))
	for i, c := range cpus {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, ",")
}

func (s *suite) bin(name string) string { return filepath.Join(s.o.root, "bench", "bin", name) }

func (s *suite) certs() (cert, key, combined string) {
	d := filepath.Join(s.o.root, "bench", "bin", "certs")
	return filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem"), filepath.Join(d, "combined.pem")
}

// run is the whole driver after option parsing.
func run(ctx context.Context, o options) error {
	s := &suite{o: o, ctx: ctx, start: time.Now(), skips: map[int][]string{}, commands: map[string][]string{},
		probes: map[int]*probe{}, log: os.Stdout, sysc: map[string]*sysCount{}}
	if err := os.MkdirAll(filepath.Join(o.outDir, "logs"), 0o755); err != nil {
		return err
	}
	w, closeLog, err := logTo(os.Stdout, filepath.Join(o.outDir, "run.log"))
	if err != nil {
		return err
	}
	defer closeLog()
	s.log = w

	if err := s.preflight(); err != nil {
		return err
	}
	// Ten thousand connections need about twice as many descriptors in a
	// proxy (a client and an upstream connection each); the processes we
	// start inherit the limit.
	s.nofile = raiseNoFile(wantNoFile)
	s.resolveSyscalls()
	if err := pinSelf(o.loadCPUs); err != nil {
		return err
	}
	for _, spec := range allTargets {
		if slices.Contains(o.targets, spec.name) {
			t := &target{targetSpec: spec}
			switch spec.name {
			case "aralez":
				t.bin = o.aralezBin
			case baseName:
				t.bin = o.aralezBase
			}
			s.targets = append(s.targets, t)
		}
	}
	s.describeMachine()
	for _, l := range s.machine {
		s.say("%s", l)
	}
	for _, l := range s.versions {
		s.say("version: %s", l)
	}
	// A fresh key per run for the JWT scenario and the config API; it
	// protects nothing beyond this run's loopback listeners.
	key := []byte(hex.EncodeToString(randBytes(16)))
	s.jwtKey = string(key)
	s.token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "aralez-bench", "exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString(key)
	if err != nil {
		return fmt.Errorf("minting the JWT: %w", err)
	}
	s.cases = buildCases(o.scenarios, s.token, o.sweep)
	if s.shm, err = os.MkdirTemp("/dev/shm", "aralez-bench."); err != nil {
		if s.shm, err = os.MkdirTemp("", "aralez-bench."); err != nil {
			return err
		}
	}
	defer os.RemoveAll(s.shm)
	// nginx's workers (user nobody when started as root) keep the cache of
	// scenario 10 in here.
	if err := os.Chmod(s.shm, 0o755); err != nil {
		return err
	}
	if s.raw, err = os.Create(filepath.Join(o.outDir, "raw.jsonl")); err != nil {
		return err
	}
	defer s.raw.Close()

	s.say("plan: scenarios %v, %d round(s), warm-up %v, window %v, proxy CPUs %s, load CPUs %s, %d thread(s) per proxy, targets %s",
		o.scenarios, o.rounds, o.warmup, o.duration, cpuList(o.proxyCPUs), cpuList(o.loadCPUs), o.threads, strings.Join(o.targets, " "))
	if o.dryRun {
		for _, set := range configSets {
			if err := s.writeConfigs(set); err != nil {
				return err
			}
		}
		s.say("dry run: configs written to %s", filepath.Join(o.outDir, "conf"))
		return nil
	}

	for _, c := range []int{o.proxyCPUs[0], o.loadCPUs[0]} {
		s.probes[c] = startProbe(c, 100*time.Millisecond)
	}
	defer func() {
		for _, p := range s.probes {
			p.close()
		}
	}()
	if err := s.startUpstreams(); err != nil {
		return err
	}
	for _, set := range configSets {
		var cs []tcase
		for _, c := range s.cases {
			if c.set == set {
				cs = append(cs, c)
			}
		}
		if len(cs) == 0 {
			continue
		}
		if err := s.runSet(set, cs); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	loadWall := time.Since(s.start)
	for _, p := range s.ups {
		p.stop(3 * time.Second)
	}
	if o.goBench {
		s.runGoBench()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	report := s.report(loadWall)
	fmt.Fprintln(os.Stdout)
	fmt.Fprint(os.Stdout, report)
	if err := os.WriteFile(filepath.Join(o.outDir, "report.md"), []byte(report), 0o644); err != nil {
		return err
	}
	if o.results != "-" {
		if err := appendResults(o.results, report); err != nil {
			return err
		}
		s.say("report appended to %s", o.results)
	}
	return nil
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b
}

// preflight checks tools, files and ports before anything starts.
func (s *suite) preflight() error {
	var errs []error
	for _, c := range []string{"wrk", "h2load", "taskset", "nginx", "openssl"} {
		if _, err := exec.LookPath(c); err != nil {
			errs = append(errs, fmt.Errorf("%s is missing: run make bench-setup", c))
		}
	}
	cert, key, combined := s.certs()
	for _, f := range []string{s.bin("benchd"), cert, key, combined} {
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("%s is missing: run make bench-setup", f))
		}
	}
	ports := []string{up1Addr, up2Addr, up1Stats, up2Stats, helperAddr, helperGRPC}
	for _, spec := range allTargets {
		if spec.kind == kindDirect || !slices.Contains(s.o.targets, spec.name) {
			continue
		}
		if s.o.profile && spec.admin != "" {
			ports = append(ports, spec.admin)
		}
		for _, a := range []string{spec.http, spec.tls, spec.h2c} {
			if !slices.Contains(ports, a) {
				ports = append(ports, a)
			}
		}
	}
	for _, a := range ports {
		if err := portFree(a); err != nil {
			errs = append(errs, fmt.Errorf("refusing to start: %w", err))
		}
	}
	return errors.Join(errs...)
}

func firstLine(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "(not available: " + err.Error() + ")"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func (s *suite) describeMachine() {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	online, _ := parseProcStatFile()
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if v, ok := statusField(b, "MemTotal"); ok {
			if kb, err := parseKB(v); err == nil {
				mem = fmt.Sprintf(", %.0f GiB", kb/1024/1024)
			}
		}
	}
	osName := ""
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				osName = ", " + strings.Trim(v, `"`)
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	s.machine = []string{
		fmt.Sprintf("machine: %d CPUs (%s)%s, kernel %s%s", len(online), model, mem, firstLine("uname", "-r"), osName),
		fmt.Sprintf("load average at start: %s", strings.Join(strings.Fields(string(load))[:3], " ")),
	}
	s.versions = []string{
		"nginx    " + strings.TrimPrefix(firstLine("nginx", "-v"), "nginx version: "),
		"haproxy  " + firstLine("haproxy", "-v"),
		"caddy    " + firstLine("caddy", "version"),
		"wrk      " + firstLine("wrk", "-v"),
		"h2load   " + firstLine("h2load", "--version"),
		"openssl  " + firstLine("openssl", "version"),
		"go       " + firstLine("go", "version"),
	}
	for _, t := range s.targets {
		if t.kind != kindOurs {
			continue
		}
		label := fmt.Sprintf("%-8s ", t.name)
		if _, err := os.Stat(t.bin); err == nil {
			s.versions = append(s.versions, label+firstLine(t.bin, "-version"))
		} else {
			s.versions = append(s.versions, label+"(not built: "+t.bin+" missing)")
		}
	}
	somax := strings.TrimSpace(readFileString("/proc/sys/net/core/somaxconn"))
	s.somaxconn, _ = strconv.Atoi(somax)
	s.machine = append(s.machine, fmt.Sprintf("limits: open files %d (passed on to every process started), net.core.somaxconn %s", s.nofile, somax))
}

// readFileString returns the file's content, or "?" when it cannot be read.
func readFileString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return string(b)
}

// ---------------------------------------------------------------- configs

func (s *suite) params(t *target, set string) peers.Params {
	cert, key, combined := s.certs()
	p := peers.Params{
		Name: t.name, Threads: s.o.threads,
		HTTPAddr: t.http, TLSAddr: t.tls, H2CAddr: t.h2c,
		Upstreams: []string{up1Addr, up2Addr}, Helpers: []string{helperAddr}, GRPC: []string{helperGRPC},
		CertFile: cert, KeyFile: key, CombinedFile: combined,
		RunDir: filepath.Join(s.o.outDir, "run", set, t.name),
		LogDir: filepath.Join(s.o.outDir, "logs"),
	}
	if set == setHosts {
		for i := 1; i <= numHosts; i++ {
			p.Hosts = append(p.Hosts, hostName(i))
		}
		p.HostsFile = filepath.Join(s.o.outDir, "conf", set, "hosts.lst")
	}
	if set == setHosts && t.kind == kindOurs {
		p.LogLevel = "info" // the reload log line, with its stage times
	}
	if set == setFeatures && t.kind == kindOurs {
		p.RateLimit = 1000000
		p.JWTKey = s.jwtKey
	}
	if s.o.profile && t.kind == kindOurs {
		p.AdminAddr, p.MasterKey = t.admin, s.jwtKey
	}
	p.FDLimit = int(min(s.nofile, 1<<30))
	switch set {
	case setIdle:
		// Only HAProxy needs sizing for 10,000 idle connections; the
		// others keep the sizing of earlier runs, so their peak RSS stays
		// comparable.
		if t.name == "haproxy" {
			p.MaxClients = numIdle
		}
	case setSweep:
		p.MaxClients = slices.Max(s.o.sweep)
	case setCache:
		p.CacheMB = cacheMB
		p.CacheDir = filepath.Join(s.shm, "cache", t.name)
	}
	return p
}

// confFiles returns the files a target's config consists of, by template.
func confFiles(t *target) []string {
	switch t.name {
	case "nginx":
		return []string{peers.Nginx}
	case "haproxy":
		return []string{peers.HAProxy}
	case "caddy":
		return []string{peers.Caddy}
	}
	if t.kind == kindOurs {
		return []string{peers.AralezMain, peers.AralezUpstreams}
	}
	return nil
}

func confName(tmpl string) string {
	switch tmpl {
	case peers.AralezMain:
		return "main.yaml"
	case peers.AralezUpstreams:
		return "upstreams.yaml"
	}
	return tmpl
}

// writeConfigs renders and validates every target's config of set; a
// target whose config is invalid is marked down, loudly.
func (s *suite) writeConfigs(set string) error {
	dir := filepath.Join(s.o.outDir, "conf", set)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, t := range s.targets {
		t.down, t.noTLS = "", ""
		if t.kind == kindDirect {
			continue
		}
		p := s.params(t, set)
		if p.HostsFile != "" {
			if err := os.WriteFile(p.HostsFile, peers.HostsList(p.Hosts), 0o644); err != nil {
				return err
			}
		}
		dirs := []string{p.RunDir, filepath.Join(p.RunDir, "data")}
		if p.CacheDir != "" {
			// nginx makes the cache folder itself, owned by its workers' user.
			dirs = append(dirs, filepath.Dir(p.CacheDir))
		}
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		t.confDir = filepath.Join(dir, t.name)
		if err := os.MkdirAll(t.confDir, 0o755); err != nil {
			return err
		}
		if t.kind == kindOurs {
			if err := s.aralezCerts(t.confDir); err != nil {
				return err
			}
		} else if _, err := exec.LookPath(peerBinary(t.name)); err != nil {
			t.down = fmt.Sprintf("%s is not installed (run make bench-setup)", peerBinary(t.name))
			continue
		}
		for _, tm := range confFiles(t) {
			b, err := peers.Render(tm, p)
			if err != nil {
				return err
			}
			path := filepath.Join(t.confDir, confName(tm))
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return err
			}
			if err := peers.Validate(s.ctx, tm, path, p.RunDir, s.peerEnv(t, p)); err != nil {
				t.down = fmt.Sprintf("config rejected: %v", err)
			}
		}
	}
	return nil
}

// peerBinary is the command a peer runs as.
func peerBinary(name string) string { return name }

// aralezCerts puts the bench certificate where aralez looks for it:
// <proxy_configs>/certificates/NAME.crt and NAME.key.
func (s *suite) aralezCerts(dir string) error {
	cert, key, _ := s.certs()
	cd := filepath.Join(dir, "certificates")
	if err := os.MkdirAll(cd, 0o755); err != nil {
		return err
	}
	for src, dst := range map[string]string{cert: "bench.crt", key: "bench.key"} {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cd, dst), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *suite) peerEnv(t *target, p peers.Params) []string {
	env := os.Environ()
	if t.name == "caddy" || t.kind == kindOurs {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(s.o.threads), "HOME="+p.RunDir,
			"XDG_DATA_HOME="+filepath.Join(p.RunDir, "data"), "XDG_CONFIG_HOME="+filepath.Join(p.RunDir, "data"))
	}
	return env
}

// ---------------------------------------------------------------- processes

// startUpstreams starts the two nginx reference upstreams and benchd,
// pinned to the load CPUs, and checks their bodies.
func (s *suite) startUpstreams() error {
	dir := filepath.Join(s.o.outDir, "conf", "upstreams")
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	for name, size := range map[string]int{"4k.bin": 4096, "64k.bin": 65536} {
		if err := os.WriteFile(filepath.Join(data, name), bytes.Repeat([]byte("b"), size), 0o644); err != nil {
			return err
		}
	}
	for i, addr := range []string{up1Addr, up2Addr} {
		name := fmt.Sprintf("upstream%d", i+1)
		body := fmt.Sprintf(`{"ok":true,"upstream":"up%d","pad":"%s"}`, i+1, strings.Repeat("x", 63))
		up := peers.UpstreamParams{Name: name, Addr: addr, StatsAddr: []string{up1Stats, up2Stats}[i], Body100: body,
			DataDir: data, RunDir: filepath.Join(s.o.outDir, "run", name), LogDir: filepath.Join(s.o.outDir, "logs")}
		if err := os.MkdirAll(up.RunDir, 0o755); err != nil {
			return err
		}
		b, err := peers.Render(peers.UpstreamNginx, up)
		if err != nil {
			return err
		}
		conf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			return err
		}
		argv := s.tasksetLoad("nginx", "-p", up.RunDir, "-c", conf, "-e", filepath.Join(up.LogDir, name+".err"))
		if err := s.startUp(name, argv, addr, up.StatsAddr); err != nil {
			return err
		}
	}
	argv := s.tasksetLoad(s.bin("benchd"), "serve", "-http", helperAddr, "-grpc", helperGRPC, "-name", "benchd")
	if err := s.startUp("benchd", argv, helperAddr, helperGRPC); err != nil {
		return err
	}
	resp, err := http.Get("http://" + up1Addr + "/")
	if err != nil {
		return fmt.Errorf("upstream check: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.say("upstreams: nginx x2 (%s, %s; %d-byte body on /) and benchd (%s, gRPC %s) on CPUs %s",
		up1Addr, up2Addr, len(body), helperAddr, helperGRPC, cpuList(s.o.loadCPUs))
	return nil
}

func (s *suite) startUp(name string, argv []string, addrs ...string) error {
	s.note("upstreams", append([]string{"start:"}, argv...))
	p, err := startProc(name, argv, nil, filepath.Join(s.o.outDir, "logs", name+".log"))
	if err != nil {
		return err
	}
	s.ups = append(s.ups, p)
	for _, a := range addrs {
		if err := waitListen(s.ctx, p, a, 10*time.Second); err != nil {
			return fmt.Errorf("%s: %w (see %s)", name, err, filepath.Join(s.o.outDir, "logs"))
		}
	}
	return nil
}

// startTarget starts a proxy of the current set pinned to the proxy CPUs.
func (s *suite) startTarget(t *target, set string) {
	if t.kind == kindDirect || t.down != "" {
		return
	}
	p := s.params(t, set)
	var argv []string
	env := s.peerEnv(t, p)
	switch t.name {
	case "nginx":
		argv = s.tasksetProxy("nginx", "-p", p.RunDir, "-c", filepath.Join(t.confDir, peers.Nginx), "-e", filepath.Join(p.LogDir, "nginx.err"))
	case "haproxy":
		argv = s.tasksetProxy("haproxy", "-db", "-f", filepath.Join(t.confDir, peers.HAProxy))
	case "caddy":
		argv = s.tasksetProxy("caddy", "run", "--config", filepath.Join(t.confDir, peers.Caddy), "--adapter", "caddyfile")
	}
	if t.kind == kindOurs {
		if _, err := os.Stat(t.bin); err != nil {
			hint := "make build"
			if t.name == baseName {
				hint = "make bench-base REV=..."
			}
			t.down = fmt.Sprintf("%s not found (%s); every %s row is skipped", t.bin, hint, t.name)
			return
		}
		main := filepath.Join(t.confDir, "main.yaml")
		out, _, err := runTool(s.ctx, 20*time.Second, []string{t.bin, "-t", "-c", main}, env)
		if err != nil {
			t.down = fmt.Sprintf("`%s -t -c main.yaml` rejected the generated config: %v: %s", filepath.Base(t.bin), err, oneLine(out))
			return
		}
		argv = s.tasksetProxy(t.bin, "-c", main)
	}
	startLine := append([]string{"start:"}, argv...)
	if t.name == "caddy" || t.kind == kindOurs {
		startLine = append([]string{"start:", "env", "GOMAXPROCS=" + strconv.Itoa(s.o.threads)}, argv...)
	}
	s.note(t.name, startLine)
	proc, err := startProc(t.name, argv, env, filepath.Join(s.o.outDir, "logs", t.name+"."+set+".log"))
	if err != nil {
		t.down = err.Error()
		return
	}
	t.p = proc
	if err := waitListen(s.ctx, proc, t.http, 15*time.Second); err != nil {
		t.down = fmt.Sprintf("HTTP listener did not come up: %v (log: %s)", err, filepath.Join("logs", t.name+"."+set+".log"))
		proc.stop(3 * time.Second)
		t.p = nil
		return
	}
	for _, a := range []string{t.tls, t.h2c} {
		if a == t.http {
			continue
		}
		if err := waitListen(s.ctx, proc, a, 5*time.Second); err != nil {
			if t.kind == kindOurs && a == t.tls {
				t.noTLS = fmt.Sprintf("TLS listener %s did not come up", a)
				continue
			}
			t.down = fmt.Sprintf("listener %s did not come up: %v", a, err)
			proc.stop(3 * time.Second)
			t.p = nil
			return
		}
	}
	s.say("%s up (pid %d, pinned to CPUs %s, %d thread(s))", t.name, proc.pid(), cpuList(s.o.proxyCPUs), s.o.threads)
}

func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func (s *suite) stopTargets() {
	for _, t := range s.targets {
		if t.p != nil {
			t.p.stop(3 * time.Second)
			t.p = nil
		}
	}
}

// ---------------------------------------------------------------- the run

// runSet starts the proxies for a config set, checks each case on each
// target once, then runs rounds x cases x targets in rotating order.
func (s *suite) runSet(set string, cs []tcase) error {
	if err := s.writeConfigs(set); err != nil {
		return err
	}
	for _, t := range s.targets {
		s.startTarget(t, set)
	}
	defer s.stopTargets()
	for _, t := range s.targets {
		if t.down != "" {
			for _, c := range cs {
				s.loud(c.scen, "SKIPPED %s in %q: %s", t.name, c.id, t.down)
			}
		}
	}
	// Sanity: one request per case and target through the real protocol.
	ok := map[string]bool{}
	for _, c := range cs {
		if w := fdWarning(c, s.nofile); w != "" {
			s.loud(c.scen, "%s", w)
		}
		if c.held && s.somaxconn > 0 && c.conns > s.somaxconn {
			s.loud(c.scen, "net.core.somaxconn is %d, below the %d connections of %q: connects that do not fit a listener's accept queue are retried by the kernel after 1 s, 3 s, ...; the warm-up waits for all of them (on a dedicated machine: sysctl -w net.core.somaxconn=65535)",
				s.somaxconn, c.conns, c.id)
		}
		for _, t := range s.targets {
			if reason := s.applicable(c, t); reason != "" {
				if t.kind != kindDirect {
					s.loud(c.scen, "SKIPPED %s in %q: %s", t.name, c.id, reason)
				}
				continue
			}
			if err := s.sanity(c, t); err != nil {
				msg := fmt.Sprintf("SKIPPED %s in %q: sanity request failed: %v", t.name, c.id, err)
				if t.kind == kindOurs && c.feature != "" {
					msg = fmt.Sprintf("SKIPPED %s in %q: %s does not work in bin/aralez yet (sanity request: %v)", t.name, c.id, c.feature, err)
				}
				s.loud(c.scen, "%s", msg)
				continue
			}
			ok[c.id+"|"+t.name] = true
		}
	}
	for r := 1; r <= s.o.rounds; r++ {
		for _, c := range cs {
			if c.once && r > 1 {
				continue
			}
			var ts []*target
			for _, t := range s.targets {
				if ok[c.id+"|"+t.name] {
					ts = append(ts, t)
				}
			}
			if len(ts) == 0 {
				continue
			}
			for _, t := range roundOrder(ts, r) {
				if s.ctx.Err() != nil {
					return nil
				}
				if time.Since(s.start) > s.o.maxTotal {
					if !s.capHit {
						s.loud(0, "TIME CAP: the load part reached -max-total %v; the remaining windows were skipped", s.o.maxTotal)
						s.capHit = true
					}
					return nil
				}
				s.measure(c, t, r)
			}
		}
	}
	if set == setHosts && s.ctx.Err() == nil {
		for _, t := range s.targets {
			for _, c := range cs {
				// The reloads of each aralez binary (the one under test
				// and its A/B base).
				if t.kind == kindOurs && ok[c.id+"|"+t.name] {
					s.reloadUnderLoad(c, t)
				}
			}
		}
	}
	if s.o.syscalls != "off" {
		for _, c := range cs {
			for _, t := range s.targets {
				if t.kind != kindDirect && c.tool != "idle" && ok[c.id+"|"+t.name] && s.ctx.Err() == nil {
					s.syscallWindow(c, t)
				}
			}
		}
	}
	if s.o.profile {
		for _, t := range s.targets {
			if t.kind != kindOurs {
				continue
			}
			for _, c := range cs {
				if ok[c.id+"|"+t.name] && s.ctx.Err() == nil {
					s.profileWindow(c, t)
				}
			}
		}
	}
	return nil
}

// roundOrder returns the targets of one case in the order they run in
// round r (1-based). Round r starts r-1 targets later, so nobody always
// goes first. The base binary of an A/B is kept out of the rotation and
// runs right next to aralez, after it in odd rounds and before it in even
// ones, so the two windows that are compared are always adjacent and
// neither always has the other's after-effects.
func roundOrder(ts []*target, r int) []*target {
	var base *target
	rest := make([]*target, 0, len(ts))
	for _, t := range ts {
		if t.name == baseName {
			base = t
			continue
		}
		rest = append(rest, t)
	}
	if len(rest) > 0 {
		k := (r - 1) % len(rest)
		rest = append(rest[k:], rest[:k]...)
	}
	if base == nil {
		return rest
	}
	i := slices.IndexFunc(rest, func(t *target) bool { return t.name == "aralez" })
	switch {
	case i < 0:
		return append(rest, base)
	case r%2 == 1:
		i++
	}
	return slices.Insert(rest, i, base)
}

// applicable returns why case c cannot run on target t ("" = it can).
func (s *suite) applicable(c tcase, t *target) string {
	if need := c.conns + fdsSpare; s.nofile > 0 && uint64(need) > s.nofile {
		return fmt.Sprintf("%d connections need more than %d open files and the limit is %d (raise the hard limit: ulimit -Hn, or run as root with CAP_SYS_RESOURCE)", c.conns, need, s.nofile)
	}
	if t.kind == kindDirect {
		if c.direct == "" {
			return "no direct row"
		}
		return ""
	}
	if t.down != "" {
		return t.down
	}
	if t.name == "haproxy" && c.conns > s.params(t, c.set).HAProxyMaxConn() {
		return fmt.Sprintf("its maxconn is %d: HAProxy needs two descriptors per connection and the open-file limit is %d, so it cannot hold %d connections (raise the hard limit: ulimit -Hn, or run as root with CAP_SYS_RESOURCE)",
			s.params(t, c.set).HAProxyMaxConn(), s.nofile, c.conns)
	}
	if c.cache && t.name == "caddy" {
		return "Caddy has no built-in response cache (it needs a plugin), so it has no cache-hit row"
	}
	if c.scheme == "https" && t.noTLS != "" {
		return fmt.Sprintf("%s: %s does not work in bin/aralez yet", t.noTLS, c.feature)
	}
	return ""
}

// addr returns the address case c uses on target t.
func (c tcase) addr(t *target) string {
	if t.kind == kindDirect {
		return c.direct
	}
	switch c.scheme {
	case "https":
		return t.tls
	case "h2c":
		return t.h2c
	}
	return t.http
}

func (c tcase) url(t *target) string {
	scheme := "http"
	if c.scheme == "https" {
		scheme = "https"
	}
	return scheme + "://" + c.addr(t) + c.path
}

// sanity sends one request of case c to target t and checks the status and
// that the proxy added its response header; with c.deny it also checks that
// the request that must be refused is refused.
func (s *suite) sanity(c tcase, t *target) error {
	if err := s.sanityOne(c, t, nil); err != nil {
		return err
	}
	if c.deny == nil || t.kind == kindDirect || (c.deny.oursOnly && t.kind != kindOurs) {
		return nil
	}
	err := s.sanityOne(c, t, c.deny)
	if err == nil {
		return errors.New(c.deny.what)
	}
	if !errors.Is(err, errNot200) {
		return fmt.Errorf("request that must be refused: %w", err)
	}
	return nil
}

var errNot200 = errors.New("status is not 200")

func (s *suite) sanityOne(c tcase, t *target, deny *denyCheck) error {
	switch c.tool {
	case "grpc":
		out, _, err := runTool(s.ctx, 15*time.Second, []string{s.bin("benchd"), "grpc-load", "-addr", c.addr(t), "-c", "1", "-conns", "1", "-d", "200ms"}, nil)
		if err != nil {
			return fmt.Errorf("%w: %s", err, oneLine(out))
		}
		r, err := parseBenchd(out)
		if err != nil {
			return fmt.Errorf("gRPC echo: %w", err)
		}
		if r.Requests == 0 || r.Errors > 0 {
			return fmt.Errorf("gRPC echo: %d calls, %d errors (%s)", int(r.Requests), int(r.Errors), r.ErrText)
		}
		return nil
	case "ws":
		out, _, err := runTool(s.ctx, 15*time.Second, []string{s.bin("benchd"), "ws-load", "-url", "ws://" + c.addr(t) + c.path, "-c", "1", "-d", "200ms"}, nil)
		if err != nil {
			return fmt.Errorf("%w: %s", err, oneLine(out))
		}
		r, err := parseBenchd(out)
		if err != nil {
			return fmt.Errorf("WebSocket echo: %w", err)
		}
		if r.Requests == 0 || r.Errors > 0 {
			return fmt.Errorf("WebSocket echo: %d messages, %d errors (%s)", int(r.Requests), int(r.Errors), r.ErrText)
		}
		return nil
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // our own self-signed cert on 127.0.0.1
	var protos http.Protocols
	wantMajor := 1
	switch {
	case c.tool == "h2load" && c.scheme == "https":
		protos.SetHTTP2(true)
		wantMajor = 2
	case c.tool == "h2load":
		protos.SetUnencryptedHTTP2(true)
		wantMajor = 2
	default:
		protos.SetHTTP1(true)
	}
	tr.Protocols = &protos
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(strings.Repeat("u", 4096))
	}
	req, err := http.NewRequestWithContext(s.ctx, method, c.url(t), body)
	if err != nil {
		return err
	}
	if c.host != "" {
		req.Host = c.host
	}
	if deny != nil && deny.host != "" {
		req.Host = deny.host
	}
	for _, h := range c.headers {
		k, v, _ := strings.Cut(h, ":")
		if strings.EqualFold(k, "Connection") {
			req.Close = true
			continue
		}
		if deny != nil && deny.dropAuth && strings.EqualFold(k, "Authorization") {
			continue
		}
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if deny != nil {
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w (%d)", errNot200, resp.StatusCode)
		}
		return nil
	}
	var problems []string
	if resp.StatusCode != http.StatusOK {
		problems = append(problems, fmt.Sprintf("status %d", resp.StatusCode))
	}
	if resp.ProtoMajor != wantMajor {
		problems = append(problems, fmt.Sprintf("protocol %s; want HTTP/%d", resp.Proto, wantMajor))
	}
	if t.kind != kindDirect && !slices.Contains(resp.Header.Values("X-Served-Via"), t.name) {
		problems = append(problems, fmt.Sprintf("X-Served-Via %q; want %q", resp.Header.Get("X-Served-Via"), t.name))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, ", "))
	}
	return nil
}

// loadArgv returns the load generator command of case c against t.
func (s *suite) loadArgv(c tcase, t *target, d time.Duration, measured bool) ([]string, error) {
	nl := len(s.o.loadCPUs)
	threads := min(nl, c.conns)
	secs := strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
	switch c.tool {
	case "wrk":
		script := filepath.Join(s.o.outDir, "conf", "wrk-"+strings.ReplaceAll(c.id, " ", "_")+".lua")
		if err := os.WriteFile(script, []byte(c.script+wrkReportScript), 0o644); err != nil {
			return nil, err
		}
		argv := s.tasksetLoad("wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(c.conns), "-d"+secs+"s", "--timeout", "5s", "-s", script)
		if measured {
			argv = append(argv, "--latency")
		}
		for _, h := range c.headers {
			argv = append(argv, "-H", h)
		}
		return append(argv, c.url(t)), nil
	case "h2load":
		argv := s.tasksetLoad("h2load", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(c.conns), "-m"+strconv.Itoa(c.streams), "-D"+secs)
		if c.scheme == "https" {
			argv = append(argv, "--tls13-ciphers="+s.o.tlsCipher)
		}
		if measured {
			argv = append(argv, "--log-file="+filepath.Join(s.shm, "h2.log"))
		}
		return append(argv, c.url(t)), nil
	case "grpc":
		return s.tasksetLoad("env", "GOMAXPROCS="+strconv.Itoa(nl), s.bin("benchd"), "grpc-load", "-addr", c.addr(t),
			"-c", strconv.Itoa(c.conns), "-conns", "5", "-d", d.String()), nil
	case "ws":
		return s.tasksetLoad("env", "GOMAXPROCS="+strconv.Itoa(nl), s.bin("benchd"), "ws-load", "-url", "ws://"+c.addr(t)+c.path,
			"-c", strconv.Itoa(c.conns), "-d", d.String()), nil
	case "idle":
		return s.tasksetLoad("env", "GOMAXPROCS="+strconv.Itoa(nl), s.bin("benchd"), "idle", "-addr", c.addr(t),
			"-n", strconv.Itoa(c.conns), "-hold", d.String(), "-path", c.path), nil
	}
	return nil, fmt.Errorf("unknown tool %q", c.tool)
}

// snapshot is the state read right before and right after a window.
type snapshot struct {
	at      time.Time
	cpus    map[int]cpuTimes
	proxy   float64 // ticks of the target's processes
	proxyU  float64 // the user part of proxy
	proxyS  float64 // the system part of proxy
	tool    float64 // ticks of a load generator that outlives the window (held)
	idle    float64 // ticks of the other proxies (idle, but ours)
	load    float64 // ticks of upstreams and benchd
	self    float64 // driver CPU seconds
	ksoftP  float64
	ksoftL  float64
	upConns [2]float64
	upReqs  [2]float64
}

// pidSets are the processes a window's accounting reads. tool is a load
// generator that runs across the window's edges (held cases); others are
// counted from their exit status.
type pidSets struct{ proxy, idle, load, ksoftP, ksoftL, tool []int }

func (s *suite) pidSets(t *target) pidSets {
	var ps pidSets
	for _, o := range s.targets {
		if o.p == nil {
			continue
		}
		if o == t {
			ps.proxy = treePids(o.p.pid())
		} else {
			ps.idle = append(ps.idle, treePids(o.p.pid())...)
		}
	}
	for _, u := range s.ups {
		ps.load = append(ps.load, treePids(u.pid())...)
	}
	ps.ksoftP = ksoftirqdPids(s.o.proxyCPUs)
	ps.ksoftL = ksoftirqdPids(s.o.loadCPUs)
	return ps
}

func (s *suite) snap(ps pidSets, pre bool) snapshot {
	var sn snapshot
	if pre {
		sn.upConns, sn.upReqs = upCounters()
	}
	b, _ := os.ReadFile("/proc/stat")
	sn.cpus, _ = parseProcStat(b)
	sn.at = time.Now()
	sn.proxyU, sn.proxyS = pidsUserSys(ps.proxy)
	sn.proxy = sn.proxyU + sn.proxyS
	sn.tool = pidsTicks(ps.tool)
	sn.idle = pidsTicks(ps.idle)
	sn.load = pidsTicks(ps.load)
	sn.self = selfCPU()
	sn.ksoftP = pidsTicks(ps.ksoftP)
	sn.ksoftL = pidsTicks(ps.ksoftL)
	if !pre {
		sn.upConns, sn.upReqs = upCounters()
	}
	return sn
}

// upCounters reads accepted connections and requests from both upstreams'
// stub_status pages.
func upCounters() (conns, reqs [2]float64) {
	cl := http.Client{Timeout: 2 * time.Second}
	for i, a := range []string{up1Stats, up2Stats} {
		resp, err := cl.Get("http://" + a + "/")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lines := strings.Split(string(b), "\n")
		if len(lines) < 3 {
			continue
		}
		f := strings.Fields(lines[2])
		if len(f) == 3 {
			conns[i], _ = strconv.ParseFloat(f[0], 64)
			reqs[i], _ = strconv.ParseFloat(f[2], 64)
		}
	}
	return conns, reqs
}

func sumBusy(a, b map[int]cpuTimes, cpus []int) (busy, total float64) {
	for _, c := range cpus {
		busy += b[c].Busy - a[c].Busy
		total += b[c].Total - a[c].Total
	}
	return busy, total
}

// maxRepeatsPerWindow bounds the repeats of one window, so that a long
// noisy stretch does not spend the whole run's budget on one cell.
const maxRepeatsPerWindow = 2

// measure runs one window (with warm-up), repeating it while it was noisy
// and the retry budget allows, and records every attempt.
func (s *suite) measure(c tcase, t *target, round int) {
	for attempt := 1; ; attempt++ {
		sm, retry := s.window(c, t, round, attempt <= maxRepeatsPerWindow)
		sm.Kept = !retry
		s.samples = append(s.samples, sm)
		if b, err := json.Marshal(sm); err == nil {
			s.raw.Write(append(b, '\n'))
		}
		status := "ok"
		switch {
		case sm.Failed != "":
			status = "FAILED: " + sm.Failed
		case retry:
			status = "repeating: " + sm.Why
		case sm.Why != "":
			status = "kept, flagged: " + sm.Why
		}
		s.say("s%d %-22s r%d %-11s %9.0f req/s  p99 %7.2f ms  cpu %5.2f s  %s", c.scen, c.id, round, t.name, sm.RPS, sm.P99us/1000, sm.ProxyCPU, status)
		if sm.Non2xx > 0 || sm.Errors > 0 {
			detail := ""
			if sm.ErrText != "" {
				detail = " (" + sm.ErrText + ")"
			}
			s.loud(c.scen, "%s in %q round %d: %.0f non-2xx responses and %.0f errors%s", t.name, c.id, round, sm.Non2xx, sm.Errors, detail)
		}
		if !retry {
			return
		}
	}
}

// window runs warm-up and one measured window; retry says whether it should
// be repeated because of noise.
func (s *suite) window(c tcase, t *target, round int, mayRetry bool) (sm sample, retry bool) {
	sm = sample{Scenario: c.scen, Case: c.id, Target: t.name, Kind: t.kind, Round: round, Pinned: "-"}
	if t.p != nil && !t.p.alive() {
		sm.Failed = "the proxy process exited (see its log)"
		return sm, false
	}
	ps := s.pidSets(t)
	resetHWM(ps.proxy)
	logName := fmt.Sprintf("s%d.%s.%s.r%d.txt", c.scen, strings.ReplaceAll(c.id, " ", "_"), t.name, round)
	var (
		a, b    snapshot
		out     []byte
		toolCPU float64
		runErr  error
		why     []string
	)
	if c.held {
		h := s.runHeld(c, t, ps, filepath.Join(s.o.outDir, "logs", logName), nil)
		a, b, out, runErr = h.a, h.b, h.out, h.err
		sm.Established = h.established
		if h.short != "" {
			why = append(why, h.short)
		}
	} else {
		// Holding idle connections needs no warm-up; opening them twice
		// would only blur the peak RSS.
		if s.o.warmup > 0 && c.tool != "idle" {
			argv, err := s.loadArgv(c, t, s.o.warmup, false)
			if err != nil {
				sm.Failed = err.Error()
				return sm, false
			}
			s.note(t.name, append([]string{"warm-up:"}, argv...))
			_, _, _ = runTool(s.ctx, s.o.warmup+30*time.Second, argv, nil)
		}
		argv, err := s.loadArgv(c, t, s.o.duration, true)
		if err != nil {
			sm.Failed = err.Error()
			return sm, false
		}
		s.note(t.name, append([]string{"measure:"}, argv...))
		os.Remove(filepath.Join(s.shm, "h2.log"))
		a = s.snap(ps, true)
		out, toolCPU, runErr = runTool(s.ctx, s.o.duration+30*time.Second, argv, nil)
		b = s.snap(ps, false)
		_ = os.WriteFile(filepath.Join(s.o.outDir, "logs", logName), out, 0o644)
	}
	if s.ctx.Err() != nil {
		sm.Failed = "interrupted"
		return sm, false
	}

	r, err := s.parseLoad(c, out)
	if err == nil && runErr != nil {
		err = runErr
	}
	if err != nil {
		sm.Failed = fmt.Sprintf("%v (output in logs/%s)", err, logName)
		return sm, false
	}
	sm.RPS, sm.Requests, sm.P50us, sm.P99us, sm.P999us = r.RPS, r.Requests, r.P50us, r.P99us, r.P999us
	sm.Non2xx, sm.Errors, sm.ErrText = r.Non2xx, r.Errors, r.ErrText
	sm.Elapsed = b.at.Sub(a.at).Seconds()
	if t.kind != kindDirect {
		sm.ProxyCPU = (b.proxy - a.proxy) / clkTck
		sm.UserCPU = (b.proxyU - a.proxyU) / clkTck
		sm.SysCPU = (b.proxyS - a.proxyS) / clkTck
		sm.HWMKiB = pidsHWM(ps.proxy)
		sm.Pinned = pidsAffinity(ps.proxy)
	}
	busyP, totP := sumBusy(a.cpus, b.cpus, s.o.proxyCPUs)
	busyL, totL := sumBusy(a.cpus, b.cpus, s.o.loadCPUs)
	if totP > 0 {
		sm.BusyP = 100 * busyP / totP
		ours := (b.proxy - a.proxy) + (b.idle - a.idle) + (b.ksoftP - a.ksoftP)
		sm.OthersP = max(0, 100*(busyP-ours)/totP)
	}
	if totL > 0 {
		sm.BusyL = 100 * busyL / totL
		ours := (b.load - a.load) + (b.ksoftL - a.ksoftL) + (b.tool - a.tool) + (toolCPU+b.self-a.self)*clkTck
		sm.OthersL = max(0, 100*(busyL-ours)/totL)
	}
	sm.SpeedP = s.probes[s.o.proxyCPUs[0]].speed(a.at, b.at)
	sm.SpeedL = s.probes[s.o.loadCPUs[0]].speed(a.at, b.at)
	s.bestSpd = max(s.bestSpd, sm.SpeedP, sm.SpeedL)
	// Each stub_status read is itself one connection and one request on
	// that upstream; the one after the window falls inside it.
	sm.UpConns = max(0, (b.upConns[0]-a.upConns[0]-1)+(b.upConns[1]-a.upConns[1]-1))
	sm.Up1, sm.Up2 = max(0, b.upReqs[0]-a.upReqs[0]-1), max(0, b.upReqs[1]-a.upReqs[1]-1)
	if c.held {
		// wrk's own counts span its whole run (connecting, warm-up and
		// window); the window's requests are what reached the upstreams
		// inside it, one per answered request for a proxy without a cache.
		sm.Requests = sm.Up1 + sm.Up2
		sm.RPS = 0
		if sm.Elapsed > 0 {
			sm.RPS = sm.Requests / sm.Elapsed
		}
	}

	// Noise: other people's processes on a CPU we use, or a CPU that ran
	// slower than SPEED_MIN % of the best speed seen in this run.
	if t.kind != kindDirect && sm.OthersP > s.o.noiseMax {
		why = append(why, fmt.Sprintf("others used %.0f%% of the proxy CPUs", sm.OthersP))
	}
	if sm.OthersL > s.o.noiseMax {
		why = append(why, fmt.Sprintf("others used %.0f%% of the load CPUs", sm.OthersL))
	}
	if s.bestSpd > 0 {
		if t.kind != kindDirect && sm.SpeedP > 0 && 100*sm.SpeedP/s.bestSpd < s.o.speedMin {
			why = append(why, fmt.Sprintf("proxy CPU at %.0f%% speed", 100*sm.SpeedP/s.bestSpd))
		}
		if sm.SpeedL > 0 && 100*sm.SpeedL/s.bestSpd < s.o.speedMin {
			why = append(why, fmt.Sprintf("load CPU at %.0f%% speed", 100*sm.SpeedL/s.bestSpd))
		}
	}
	sm.Why = strings.Join(why, "; ")
	if len(why) > 0 && mayRetry && s.retries < s.o.maxRetries {
		s.retries++
		return sm, true
	}
	if sm.Requests == 0 {
		// Never report a zero as a measurement: say what happened.
		sm.Failed = fmt.Sprintf("no request completed in the window (output in logs/%s)", logName)
		if sm.Why != "" {
			sm.Failed += "; the machine was busy: " + sm.Why
		}
	}
	return sm, false
}

// parseLoad reads the output of case c's load generator; for h2load it
// also reads the per-request log of the last measured run.
func (s *suite) parseLoad(c tcase, out []byte) (loadResult, error) {
	switch c.tool {
	case "wrk":
		return parseWrk(out)
	case "h2load":
		r, err := parseH2load(out)
		if err != nil {
			return r, err
		}
		lb, err := os.ReadFile(filepath.Join(s.shm, "h2.log"))
		if err == nil {
			r.P50us, r.P99us, r.P999us, err = parseH2loadLog(lb)
		}
		return r, err
	}
	return parseBenchd(out)
}
