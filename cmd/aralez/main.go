// Command aralez is the edge reverse proxy: it loads main.yaml and
// upstreams.yaml, binds the listeners and serves until SIGTERM/SIGINT,
// reloading the routing table on file change and SIGHUP.
//
// Usage (flags.go has them all, with Aralez's spellings):
//
//	aralez -c etc/main.yaml      run (also: aralez etc/main.yaml)
//	aralez -t -c etc/main.yaml   validate both files, print the routing table, exit 0 or 1
//	aralez -v                    print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"github.com/aralez-go/aralez/config"
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
	o, code := parseFlags(args, stdout, stderr)
	if code >= 0 {
		return code
	}
	parsed := new(config.Cache) // later reloads parse only what changed
	cfg, err := parsed.Load(o.conf)
	if err != nil {
		printConfigError(stderr, err)
		return 1
	}
	if o.test {
		return checkConfig(cfg, o.conf, stdout, stderr)
	}
	if o.daemon {
		cfg.Main.Daemon = true
	}
	if os.Getenv("GOMAXPROCS") == "" && cfg.Main.Threads > 0 {
		runtime.GOMAXPROCS(cfg.Main.Threads)
	}
	// A closed stdout or stderr (aralez | head) must not end the process
	// with SIGPIPE: writes to it fail instead, and the logs that use it
	// count the loss (issue 11).
	signal.Ignore(syscall.SIGPIPE)
	var proc *process // nil in-process
	if standalone {
		var code int
		if proc, code = newProcess(&cfg.Main, o.upgrade, stdout, stderr); proc == nil {
			return code
		}
		defer proc.stop()
		stderr = proc.stderr
	}
	log, sink, err := newLogger(&cfg.Main, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "aralez: %v\n", err)
		return 1
	}
	defer sink.close()
	// fatal logs an error that ends the process; with log_level off, or
	// a log_file the person or daemon parent starting it does not watch,
	// it also reaches stderr.
	fatal := func(msg string, err error) int {
		log.Error(msg, "err", err)
		if cfg.Main.LogLevel == "off" || cfg.Main.LogFile != "" {
			fmt.Fprintf(stderr, "aralez: %s: %v\n", msg, err)
		}
		return 1
	}
	if err := proc.receive(&cfg.Main, log); err != nil {
		return fatal("upgrade (-u): taking the listening sockets over upgrade_sock failed", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, endUpgrades := proc.watch(ctx, &cfg.Main, log)
	defer endUpgrades()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go reopenLogs(ctx, usr1, sink, log)

	srv, err := newProcServer(cfg, o.conf, log, sink.access(stdout), proc, parsed)
	if err != nil {
		return fatal("start failed", err)
	}
	if err := proc.dropPrivileges(&cfg.Main); err != nil {
		return fatal("privilege drop failed; refusing to run", err)
	}
	if err := srv.serve(ctx, hup); err != nil {
		return fatal("stopped with error", err)
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
		if up.Provider == "consul" || up.Provider == "kubernetes" {
			fmt.Fprintf(w, "no routes yet: provider %s adds them as it discovers services\n", up.Provider)
		} else {
			fmt.Fprintln(w, "no routes")
		}
	}
	for _, h := range up.Hosts {
		for _, p := range h.Paths {
			exact := ""
			if p.Match == config.MatchExact {
				exact = "= "
			}
			fmt.Fprintf(w, "%s %s%s", h.Name, exact, p.Prefix)
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
