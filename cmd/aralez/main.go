// Command aralez is the edge reverse proxy: it loads main.yaml and
// upstreams.yaml, binds the listeners and serves until SIGTERM/SIGINT,
// reloading the routing table on file change and SIGHUP.
//
// Usage:
//
//	aralez -c etc/main.yaml      run
//	aralez -t -c etc/main.yaml   validate both files, print the routing table, exit 0 or 1
//	aralez -version              print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/proxy"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	os.Exit(runProcess(os.Args[1:], os.Stdout, os.Stderr, true))
}

// run is main without process management (daemon, privilege drop,
// binary upgrade): the entry point of the in-process tests.
func run(args []string, stdout, stderr io.Writer) int {
	return runProcess(args, stdout, stderr, false)
}

// runProcess is the program; standalone enables process management
// (process.go, upgrade.go), which only the binary itself may do.
func runProcess(args []string, stdout, stderr io.Writer, standalone bool) int {
	fs := flag.NewFlagSet("aralez", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "etc/main.yaml", "path of main.yaml")
	test := fs.Bool("t", false, "validate the configuration, print the routing table and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "aralez %s (%s)\n", version, runtime.Version())
		return 0
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		printConfigError(stderr, err)
		return 1
	}
	if *test {
		// Compile as a reload would (no sockets, no goroutines), so -t
		// also reports what only the routing compiler checks.
		if _, err := proxy.Compile(cfg, proxy.NewRegistry(proxy.UpstreamOptions{})); err != nil {
			fmt.Fprintf(stderr, "%v\nconfiguration invalid\n", err)
			return 1
		}
		printRoutes(stdout, cfg)
		fmt.Fprintf(stdout, "configuration %s is valid\n", *cfgPath)
		return 0
	}
	if os.Getenv("GOMAXPROCS") == "" && cfg.Main.Threads > 0 {
		runtime.GOMAXPROCS(cfg.Main.Threads)
	}
	var proc *process // nil in-process
	if standalone {
		var code int
		if proc, code = newProcess(&cfg.Main, stdout, stderr); proc == nil {
			return code
		}
		defer proc.stop()
		stderr = proc.stderr
	}
	log, logFile, closeLog, err := newLogger(&cfg.Main, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "aralez: %v\n", err)
		return 1
	}
	defer closeLog()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, endUpgrades := proc.watch(ctx, &cfg.Main, log)
	defer endUpgrades()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The access log goes to log_file when one is set, else to stdout.
	var accessOut io.Writer = stdout
	if logFile != nil {
		accessOut = logFile
	}
	srv, err := newProcServer(cfg, *cfgPath, log, accessOut, proc)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	if err := proc.dropPrivileges(&cfg.Main); err != nil {
		log.Error("privilege drop failed; refusing to run", "err", err)
		return 1
	}
	if err := srv.serve(ctx, hup); err != nil {
		log.Error("stopped with error", "err", err)
		return 1
	}
	return 0
}

func printConfigError(w io.Writer, err error) {
	var el config.ErrorList
	if errors.As(err, &el) {
		for _, fe := range el {
			fmt.Fprintln(w, fe.Error())
		}
		fmt.Fprintf(w, "configuration invalid: %d error(s)\n", len(el))
		return
	}
	fmt.Fprintf(w, "configuration invalid: %v\n", err)
}

// printRoutes writes the routing table like `nginx -T` does its config:
// one line per host and path with servers and policies.
func printRoutes(w io.Writer, cfg *config.Config) {
	up := &cfg.Upstreams
	fmt.Fprintf(w, "listener http %s", cfg.Main.ProxyAddressHTTP)
	if cfg.Main.ProxyAddressTLS != "" {
		fmt.Fprintf(w, ", tls %s", cfg.Main.ProxyAddressTLS)
	}
	fmt.Fprintf(w, "; upstreams %s; provider %s\n", cfg.Main.UpstreamsConf, up.Provider)
	if len(up.Hosts) == 0 {
		fmt.Fprintln(w, "no routes")
	}
	for _, h := range up.Hosts {
		for _, p := range h.Paths {
			fmt.Fprintf(w, "%s %s", h.Name, p.Prefix)
			if p.RedirectTo != "" {
				fmt.Fprintf(w, " -> redirect %s", p.RedirectTo)
			}
			if len(p.Servers) > 0 {
				fmt.Fprint(w, " ->")
				for _, s := range p.Servers {
					fmt.Fprintf(w, " %s", s.Address)
					if s.Weight > 1 {
						fmt.Fprintf(w, " weight=%d", s.Weight)
					}
					if s.Backup {
						fmt.Fprint(w, " backup")
					}
				}
				fmt.Fprintf(w, " [%s]", p.LoadBalance)
			}
			pol := effective(up, &h, &p)
			if len(pol) > 0 {
				fmt.Fprintf(w, " %v", pol)
			}
			fmt.Fprintln(w)
		}
	}
}

// effective lists the policies that apply to a path, innermost first.
func effective(up *config.Upstreams, h *config.Host, p *config.Path) []string {
	var out []string
	toHTTPS := firstBool(p.Policy.ToHTTPS, h.Policy.ToHTTPS, up.Policy.ToHTTPS)
	if toHTTPS {
		out = append(out, "to_https")
	}
	if rl := firstInt(p.Policy.RateLimit, h.Policy.RateLimit, up.Policy.RateLimit); rl > 0 {
		out = append(out, "rate_limit="+strconv.Itoa(rl))
	}
	if rl := firstInt(p.Policy.X4xxLimit, h.Policy.X4xxLimit, up.Policy.X4xxLimit); rl > 0 {
		out = append(out, "x4xx_limit="+strconv.Itoa(rl))
	}
	for _, a := range []*config.Auth{p.Policy.Authorization, h.Policy.Authorization, up.Policy.Authorization} {
		if a != nil {
			out = append(out, "auth="+a.Type)
			break
		}
	}
	if p.HealthCheck != nil && !*p.HealthCheck {
		out = append(out, "healthcheck=false")
	}
	if up.StickySessions > 0 {
		out = append(out, "sticky="+strconv.Itoa(up.StickySessions)+"s")
	}
	return out
}

func firstBool(vs ...*bool) bool {
	for _, v := range vs {
		if v != nil {
			return *v
		}
	}
	return false
}

func firstInt(vs ...int) int {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}

// newLogger returns the process logger, the opened log_file (nil for
// stderr) and a function that closes it.
func newLogger(m *config.Main, stderr io.Writer) (*slog.Logger, io.Writer, func(), error) {
	var level slog.Level
	switch m.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	w, closeFn := stderr, func() {}
	var file io.Writer
	if m.LogFile != "" {
		f, err := os.OpenFile(m.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("opening log_file: %w", err)
		}
		w, file, closeFn = f, f, func() { f.Close() }
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), file, closeFn, nil
}
