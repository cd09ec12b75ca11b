package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
)

// defaultConf is the main.yaml read when no path is given.
const defaultConf = "etc/main.yaml"

// options are the command-line flags. Aralez's (Pingora's) spellings
// work with their meanings: -c/--conf, -t/--test, -d/--daemon,
// -u/--upgrade, -v/--version, and --nocapture (a test-harness flag of
// Pingora's, ignored). A single argument without a flag is the config
// path, as in `aralez -t /etc/aralez/main.yaml`.
type options struct {
	conf    string
	test    bool
	daemon  bool
	upgrade bool
	version bool
}

const usageText = `Usage: aralez [flags] [main.yaml]

  -c, --conf PATH   main.yaml to load (default etc/main.yaml); a single
                    argument without a flag is the same
  -t, --test        check the configuration as a start would: print every
                    error as file:line:col, the warnings and the routing
                    table; exit 0 when it would start, 1 otherwise
  -d, --daemon      run in the background (as daemon: true)
  -u, --upgrade     take the listening sockets over upgrade_sock from the
                    running process, which hands them over on SIGQUIT
  -v, --version     print the version and exit
  --nocapture       accepted and ignored (Pingora's)
  -h, --help        this text

Signals: HUP reloads the routing table, USR1 reopens log_file, USR2
upgrades the binary in place, QUIT hands the sockets to an "aralez -u"
(else drains like TERM), TERM and INT drain and stop.
`

// parseFlags parses args. code is -1 when the program goes on, else the
// exit code (after -v, -h or a usage error, written to stdout or stderr).
func parseFlags(args []string, stdout, stderr io.Writer) (o options, code int) {
	// Aralez prints its version when -v or --version is anywhere in the
	// arguments, whatever else is there.
	for _, a := range args {
		if a == "-v" || a == "--version" || a == "-version" {
			fmt.Fprintf(stdout, "aralez %s (%s)\n", version, runtime.Version())
			return o, 0
		}
	}
	fs := flag.NewFlagSet("aralez", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var nocapture bool
	for _, name := range []string{"c", "conf"} {
		fs.StringVar(&o.conf, name, "", "")
	}
	for _, b := range []struct {
		p     *bool
		names []string
	}{
		{&o.test, []string{"t", "test"}},
		{&o.daemon, []string{"d", "daemon"}},
		{&o.upgrade, []string{"u", "upgrade"}},
		{&o.version, []string{"v", "version"}},
		{&nocapture, []string{"nocapture"}},
	} {
		for _, n := range b.names {
			fs.BoolVar(b.p, n, false, "")
		}
	}
	usage := func(err error) (options, int) {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, usageText)
			return o, 0
		}
		fmt.Fprintf(stderr, "aralez: %v\n\n%s", err, usageText)
		return o, 2
	}
	// Flags and one path may come in any order: the flag package stops
	// at the first non-flag, so parse again after it.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return usage(err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(positional) > 1:
		return usage(fmt.Errorf("one config path expected, got %q", positional))
	case len(positional) == 1 && o.conf != "":
		return usage(fmt.Errorf("config path given twice: -c %q and %q", o.conf, positional[0]))
	case len(positional) == 1:
		o.conf = positional[0]
	case o.conf == "":
		o.conf = defaultConf
	}
	if o.version {
		fmt.Fprintf(stdout, "aralez %s (%s)\n", version, runtime.Version())
		return o, 0
	}
	return o, -1
}
