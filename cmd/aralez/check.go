package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/proxy"
)

// checkConfig is `aralez -t`: it runs what a start runs before binding
// (config.Load was done by the caller, then the routing compiler and the
// file checks of preflight), prints the errors and warnings to stderr and
// the routing table to stdout, and returns the exit code: 0 when a start
// would get past the configuration, 1 otherwise.
func checkConfig(cfg *config.Config, path string, stdout, stderr io.Writer) int {
	errs, warns := preflight(cfg)
	if routes := keylessJWTRoutes(cfg); len(routes) > 0 {
		warns = append(warns, keylessJWTWarning(routes))
	}
	// Compile as a reload would (no sockets, no goroutines), so -t also
	// reports what only the routing compiler checks.
	if _, err := proxy.Compile(cfg, proxy.NewRegistry(proxy.UpstreamOptions{})); err != nil {
		errs = append(errs, err.Error())
	}
	// Build the discovery source as a start does (no network I/O), so
	// that -t and a start agree for every provider shape (issue 14).
	if _, err := newDiscovery(cfg, slog.New(slog.DiscardHandler)); err != nil {
		errs = append(errs, fmt.Sprintf("provider %s: %v", cfg.Upstreams.Provider, err))
	}
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "configuration invalid: %d error(s)\n", len(errs))
		return 1
	}
	printRoutes(stdout, cfg)
	fmt.Fprintf(stdout, "configuration %s is valid\n", path)
	return 0
}

// preflight checks what config.Load does not and a start would trip
// over: files that cannot be read (errors), and a TLS listener whose
// certificate folder is missing or empty (a warning, unless ACME or
// Kubernetes Ingress TLS may fill it), an unwritable pid_file folder and
// ACME without a TLS listener (warnings: the start warns too). It returns
// every message,
// plus the warnings Load collected.
func preflight(cfg *config.Config) (errs, warns []string) {
	m := &cfg.Main
	warns = append(warns, m.Deprecated...)
	warns = append(warns, m.Warnings...)
	warns = append(warns, cfg.Upstreams.Warnings...)
	readable := func(key, path string, dir bool) {
		if path == "" {
			return
		}
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s: %s: %v", key, path, unwrapPath(err)))
		case dir && !fi.IsDir():
			errs = append(errs, fmt.Sprintf("%s: %s: not a folder", key, path))
		case !dir && fi.IsDir():
			errs = append(errs, fmt.Sprintf("%s: %s: is a folder; want a file", key, path))
		default:
			mode := uint32(unix.R_OK)
			if dir {
				mode |= unix.X_OK
			}
			if err := unix.Access(path, mode); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s: cannot be read: %v", key, path, err))
			}
		}
	}
	if m.ConfigTLSAddress != "" {
		n := len(errs)
		readable("config_tls_certificate", m.ConfigTLSCertificate, false)
		readable("config_tls_key_file", m.ConfigTLSKeyFile, false)
		if len(errs) == n {
			if err := configTLSPair(m); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	readable("ca_file", m.TLSCAFile, false)
	readable("file_server_folder", m.FileServerFolder, true)
	if k := cfg.Upstreams.Kubernetes; cfg.Upstreams.Provider == "kubernetes" && k != nil {
		readable("kubernetes.tokenpath", k.Tokenpath, false)
	}
	if m.LogFile != "" {
		if err := writable(m.LogFile); err != nil {
			errs = append(errs, fmt.Sprintf("log_file: %s: %v", m.LogFile, err))
		}
	}
	if m.PIDFile != "" {
		if err := writable(m.PIDFile); err != nil {
			warns = append(warns, fmt.Sprintf("pid_file: %s: %v; the process will run without one", m.PIDFile, err))
		}
	}
	if m.ProxyAddressTLS == "" && (m.ACME.Auto || len(m.ACME.Domains) > 0) {
		warns = append(warns, acmeWithoutTLS)
	}
	if m.ProxyAddressTLS != "" {
		dir := certDir(cfg)
		acme := m.ACME.Auto || len(m.ACME.Domains) > 0 || cfg.Upstreams.Provider == "kubernetes"
		ents, err := os.ReadDir(dir)
		switch {
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, fmt.Sprintf("proxy_address_tls: certificate folder %s: %v", dir, unwrapPath(err)))
		case acme:
			// ACME or Ingress TLS fills the folder: an empty one is fine.
		case err != nil:
			warns = append(warns, fmt.Sprintf("proxy_address_tls: certificate folder %s does not exist; TLS handshakes fail until NAME.crt and NAME.key pairs are there", dir))
		case !hasCertPair(ents):
			warns = append(warns, fmt.Sprintf("proxy_address_tls: certificate folder %s holds no NAME.crt and NAME.key pair; TLS handshakes fail until one is there", dir))
		}
	}
	return errs, warns
}

// configTLSPair loads the config API's certificate and key as its TLS
// listener will, so that a start (and aralez -t) refuses a broken pair
// before any listener serves rather than stopping afterwards.
func configTLSPair(m *config.Main) error {
	if m.ConfigTLSAddress == "" {
		return nil
	}
	if _, err := tls.LoadX509KeyPair(m.ConfigTLSCertificate, m.ConfigTLSKeyFile); err != nil {
		return fmt.Errorf("config_tls_certificate %s and config_tls_key_file %s: %w", m.ConfigTLSCertificate, m.ConfigTLSKeyFile, err)
	}
	return nil
}

// certDir is the TLS listener's certificate folder:
// <proxy_configs>/certificates, proxy_configs defaulting to main.yaml's
// folder.
func certDir(cfg *config.Config) string {
	base := cfg.Main.ProxyConfigs
	if base == "" {
		base = filepath.Dir(cfg.MainPath)
	}
	return filepath.Join(base, "certificates")
}

// hasCertPair reports whether ents holds a NAME.crt with its NAME.key.
func hasCertPair(ents []os.DirEntry) bool {
	names := make(map[string]bool, len(ents))
	for _, e := range ents {
		names[e.Name()] = true
	}
	for n := range names {
		if base, ok := strings.CutSuffix(n, ".crt"); ok && names[base+".key"] {
			return true
		}
	}
	return false
}

// writable reports whether path can be written: the file when it exists,
// else its folder.
func writable(path string) error {
	if _, err := os.Stat(path); err == nil {
		return unix.Access(path, unix.W_OK)
	}
	dir := filepath.Dir(path)
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("folder %s: %w", dir, err)
	}
	return nil
}

// unwrapPath drops the path an *fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// keylessJWTRoutes returns the "host path" of every route whose jwt
// authorization has neither data nor a master key to verify with: such a
// route answers 401 to every request, as Aralez's does (auth.JWT with an
// empty key accepts no token), instead of refusing the whole file. A
// redirect_to route is not one: it redirects before authorization runs.
func keylessJWTRoutes(cfg *config.Config) []string {
	if cfg.Main.MasterKey != "" {
		return nil
	}
	keyless := func(a *config.Auth) bool {
		return a != nil && a.Type == "jwt" && (len(a.Data) == 0 || a.Data[0] == "")
	}
	up := &cfg.Upstreams
	var routes []string
	for i := range up.Hosts { // by index: a reload runs this over every host
		h := &up.Hosts[i]
		for j := range h.Paths {
			p := &h.Paths[j]
			if p.RedirectTo != "" {
				continue
			}
			for _, a := range []*config.Auth{p.Policy.Authorization, h.Policy.Authorization, up.Policy.Authorization} {
				if a != nil {
					if keyless(a) {
						routes = append(routes, h.Name+" "+p.Prefix)
					}
					break
				}
			}
		}
	}
	return routes
}

// keylessJWTWarning is the one warning about the routes of
// keylessJWTRoutes.
func keylessJWTWarning(routes []string) string {
	return fmt.Sprintf("jwt authorization without a key (no data and no master_key or JWT_KEY): %d route(s) answer 401 to every request: %s",
		len(routes), strings.Join(routes, ", "))
}
