// Package peers renders the configuration files of the proxies the bench
// suite compares (nginx, HAProxy, Caddy and our own aralez), and of the nginx
// reference upstreams, from one text/template each, kept beside this file.
//
// Every proxy config is equivalent by construction: the same upstreams in
// round robin with pooled keep-alive connections, one added request header
// (X-Proxy-From: NAME) and one added response header (X-Served-Via: NAME),
// no access log, Threads workers or threads, all listeners on the given
// loopback addresses. Rendering is pure (no files, no processes); Validate
// runs the peer's own config checker on a rendered file.
package peers

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"text/template"
	"time"
)

//go:embed *.tmpl
var files embed.FS

// Template names accepted by Render. The proxy templates take a Params, the
// upstream template an UpstreamParams.
const (
	Nginx           = "nginx.conf"
	HAProxy         = "haproxy.cfg"
	Caddy           = "Caddyfile"
	AralezMain      = "aralez-main.yaml"
	AralezUpstreams = "aralez-upstreams.yaml"
	// AralezConfD is a conf.d file of aralez: Hosts at its top level
	// (the spread reload of the many-routes scenario).
	AralezConfD   = "aralez-confd.yaml"
	UpstreamNginx = "upstream-nginx.conf"
)

// ProxyTemplates lists the templates that take a Params, peers first.
var ProxyTemplates = []string{Nginx, HAProxy, Caddy, AralezMain, AralezUpstreams, AralezConfD}

// ErrUnknownTemplate is returned by Render for a name it does not know.
var ErrUnknownTemplate = errors.New("peers: unknown template")

// Params describes one proxy under test. Addresses are host:port on
// 127.0.0.1; file paths are absolute.
type Params struct {
	// Name labels the proxy in its added headers ("nginx", "aralez", ...).
	Name string
	// Threads is the number of workers, threads or GOMAXPROCS; at least 1.
	Threads int
	// HTTPAddr is the plain HTTP/1.1 listener.
	HTTPAddr string
	// TLSAddr is the TLS listener (ALPN h2 and http/1.1).
	TLSAddr string
	// H2CAddr is the cleartext HTTP/2 (prior knowledge) listener. Caddy
	// serves it on a second plain site address that also speaks HTTP/1.1.
	H2CAddr string
	// Upstreams are the nginx reference upstreams behind "/".
	Upstreams []string
	// Helpers are benchd HTTP addresses behind "/upload" and "/ws".
	Helpers []string
	// GRPC are benchd gRPC (h2c) addresses behind "/bench.Echo/".
	GRPC []string
	// CertFile and KeyFile are PEM files; CombinedFile holds both (HAProxy).
	CertFile, KeyFile, CombinedFile string
	// Hosts, when set, restricts "/" to these Host values (the many-routes
	// scenario); other hosts get 404 where the peer can express it.
	Hosts []string
	// HostsFile lists Hosts one per line; HAProxy reads it (see HostsList).
	HostsFile string
	// RunDir holds pid and temporary files; LogDir the error logs.
	RunDir, LogDir string
	// RateLimit is requests per second per client for aralez; zero: none.
	RateLimit int
	// JWTKey is the HMAC key aralez verifies bearer tokens with; empty: none.
	JWTKey string
	// AdminAddr, when set, turns on aralez's config API there (it serves
	// /debug/pprof/ to holders of MasterKey); empty: off.
	AdminAddr, MasterKey string
	// MaxClients is the most client connections a scenario holds at once
	// (the connection sweep; HAProxy in the idle scenario). Zero keeps the
	// default sizing: nginx worker_connections 16384 and the kernel's
	// default listen backlog (511), HAProxy maxconn 4096. Otherwise nginx
	// gets backlog=65535 (the kernel caps it at net.core.somaxconn) and
	// NginxWorkerConnections, HAProxy HAProxyMaxConn.
	MaxClients int
	// FDLimit is the open-file limit the proxy inherits; zero: unknown.
	// HAProxy refuses to start when its maxconn needs more, so
	// HAProxyMaxConn stays within it.
	FDLimit int
	// CacheMB, when positive, turns on response caching for "/" with a
	// bound of CacheMB MiB: nginx proxy_cache (files in CacheDir, on tmpfs,
	// proxy_cache_valid 200, proxy_cache_lock on), HAProxy's in-memory
	// cache, aralez's cache_size_mb. Caddy has no built-in cache.
	CacheMB int
	// CacheDir is nginx's proxy_cache_path; required with CacheMB.
	CacheDir string
	// LogLevel is aralez's log_level; empty: warn. The many-routes
	// scenario sets info, for the reload log line and its stage times.
	LogLevel string
}

// haproxyFDsPerConn and haproxyFDsExtra are HAProxy's descriptor needs:
// it asks for 2×maxconn plus a few for listeners and pollers (2.6 asked
// for 22064 at maxconn 11024) and exits when the limit is lower.
const (
	haproxyFDsPerConn = 2
	haproxyFDsExtra   = 64
)

// HAProxyMaxConn is the maxconn HAProxy gets: the larger of 4096 and
// MaxClients+1024, lowered to what FDLimit allows.
func (p Params) HAProxyMaxConn() int {
	n := max(4096, p.MaxClients+1024)
	if p.FDLimit > 0 {
		n = min(n, (p.FDLimit-haproxyFDsExtra)/haproxyFDsPerConn)
	}
	return n
}

// NginxWorkerConnections is nginx's worker_connections: the larger of
// 16384 and 2×MaxClients+1024 (a client and an upstream connection per
// request in flight).
func (p Params) NginxWorkerConnections() int { return max(16384, 2*p.MaxClients+1024) }

// UpstreamParams describes one nginx reference upstream.
type UpstreamParams struct {
	Name      string // label in file names
	Addr      string // listener for the fixed bodies
	StatsAddr string // stub_status listener (connection and request counts)
	Body100   string // the 100-byte JSON body of "/"
	DataDir   string // holds 4k.bin and 64k.bin
	RunDir    string
	LogDir    string
}

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"port": func(addr string) string {
		_, p, _ := net.SplitHostPort(addr)
		return p
	},
	"host": func(addr string) string {
		h, _, _ := net.SplitHostPort(addr)
		return h
	},
	"join": func(addrs []string) string {
		q := make([]string, len(addrs))
		for i, a := range addrs {
			q[i] = fmt.Sprintf("%q", a)
		}
		return strings.Join(q, ", ")
	},
}).Option("missingkey=error").ParseFS(files, "*.tmpl"))

// Render returns the named template (one of the constants above) executed
// with data. It returns ErrUnknownTemplate for an unknown name, and an error
// when data lacks a field the template uses or when a Params is incomplete.
func Render(name string, data any) ([]byte, error) {
	t := tmpl.Lookup(name + ".tmpl")
	if t == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownTemplate, name)
	}
	if p, ok := data.(Params); ok {
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("rendering %s: %w", name, err)
		}
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", name, err)
	}
	return b.Bytes(), nil
}

func (p Params) check() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("empty Name"))
	}
	if p.Threads < 1 {
		errs = append(errs, fmt.Errorf("Threads %d: want at least 1", p.Threads))
	}
	for _, a := range []string{p.HTTPAddr, p.TLSAddr, p.H2CAddr} {
		if err := loopback(a); err != nil {
			errs = append(errs, err)
		}
	}
	for _, list := range [][]string{p.Upstreams, p.Helpers, p.GRPC} {
		if len(list) == 0 {
			errs = append(errs, errors.New("empty upstream list"))
		}
		for _, a := range list {
			if err := loopback(a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if p.CacheMB > 0 && p.CacheDir == "" {
		errs = append(errs, errors.New("CacheMB without CacheDir"))
	}
	if p.MaxClients < 0 || p.CacheMB < 0 {
		errs = append(errs, fmt.Errorf("MaxClients %d, CacheMB %d: want at least 0", p.MaxClients, p.CacheMB))
	}
	return errors.Join(errs...)
}

func loopback(addr string) error {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not a loopback IP", addr)
	}
	return nil
}

// HostsList returns hosts one per line, the format of Params.HostsFile.
func HostsList(hosts []string) []byte {
	return []byte(strings.Join(hosts, "\n") + "\n")
}

// ValidateCommand returns the command line that checks a rendered config
// file with the peer's own binary, or nil when the template has no checker
// (ours is checked by starting it). runDir is the peer's RunDir.
func ValidateCommand(name, confPath, runDir string) []string {
	switch name {
	case Nginx, UpstreamNginx:
		return []string{"nginx", "-t", "-q", "-p", runDir, "-c", confPath, "-e", "/dev/stderr"}
	case HAProxy:
		return []string{"haproxy", "-c", "-q", "-f", confPath}
	case Caddy:
		return []string{"caddy", "validate", "--config", confPath, "--adapter", "caddyfile"}
	}
	return nil
}

// Validate runs ValidateCommand with a 30-second limit and returns its
// combined output in the error when the check fails. It returns
// exec.ErrNotFound (wrapped) when the peer binary is not installed.
func Validate(ctx context.Context, name, confPath, runDir string, env []string) error {
	argv := ValidateCommand(name, confPath, runDir)
	if argv == nil {
		return nil
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return fmt.Errorf("validating %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("validating %s (%s): %w: %s", name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
