package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/admin"
	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/balancer/health"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/discovery"
	"github.com/aralez-go/aralez/metrics"
	"github.com/aralez-go/aralez/proxy"
	"github.com/aralez-go/aralez/proxy/cache"
	edgetls "github.com/aralez-go/aralez/tls"
	"github.com/aralez-go/aralez/tls/acme"
)

// server is the running process: listeners, engine, health checker and
// the single reload loop that owns config changes.
type server struct {
	log      *slog.Logger
	mainPath string

	cfg   *config.Config // the config serving now; only the reload loop touches it
	disco baseSource     // consul or kubernetes source; nil for provider file
	// baseHosts counts the hosts of the table last handed to disco.
	baseHosts int
	upNow     atomic.Pointer[config.Upstreams]
	digest    string
	gen       uint64

	// parsed keeps the parse results of the upstreams files, shared by
	// SIGHUP and the file watcher: a reload parses only what changed.
	parsed *config.Cache

	reg     *proxy.Registry
	engine  *proxy.Engine
	health  *health.HealthChecker
	metrics *metrics.Metrics
	cache   *cache.Cache // nil when cache_size_mb is 0
	access  *accesslog.Logger
	push    *discovery.Push
	admin   *admin.Server // nil without config_address and config_tls_address

	adminLn, adminTLSLn net.Listener

	front    *fasthttp.Server
	parked   atomic.Int64 // idle HTTP/1.1 connections parked by the listeners
	frontLn  net.Listener
	tlsLn    net.Listener   // nil without proxy_address_tls
	certs    *edgetls.Store // the TLS listener's certificate folder
	grade    edgetls.Grade
	files    *fasthttp.Server
	filesLn  net.Listener
	pidWrote bool
	proc     *process // nil in-process: no upgrade, no privilege drop

	store io.Closer // the shared rate-limit store; nil without one

	acme       *acme.Manager // nil without a TLS listener
	challenges challenges    // the pipeline's HTTP-01 answers, from acme
	// domainsRead are the domains.json files read at start, domainsWrite
	// the one /acme_order records names in.
	domainsRead  []string
	domainsWrite string

	// lockedJWT is the last list of jwt routes without a key logged
	// (keylessJWTRoutes).
	lockedJWT string
}

func newServer(cfg *config.Config, mainPath string, log *slog.Logger, accessOut io.Writer) (*server, error) {
	return newProcServer(cfg, mainPath, log, accessOut, nil, nil)
}

// newProcServer is newServer for the standalone binary: listeners come
// from proc (inherited over an upgrade) and proc writes the pid file
// once the server is ready. parsed is the parse cache cfg was loaded
// through (nil: a new one).
func newProcServer(cfg *config.Config, mainPath string, log *slog.Logger, accessOut io.Writer, proc *process, parsed *config.Cache) (*server, error) {
	m := &cfg.Main
	if parsed == nil {
		parsed = new(config.Cache)
	}
	s := &server{log: log, mainPath: mainPath, cfg: cfg, parsed: parsed, metrics: metrics.New(), push: discovery.NewPush(), proc: proc}
	var err error
	if s.access, err = accesslog.New(accessOut, accesslog.Options{Mode: m.AccessLog, JSON: m.LogStructured != ""}); err != nil {
		return nil, fmt.Errorf("access_log: %w", err)
	}
	s.metrics.SetLoggingErrors(s.access.Dropped)
	s.reg = proxy.NewRegistry(proxy.UpstreamOptions{
		KeepalivePoolSize: m.UpstreamKeepalivePoolSize,
		MaxConns:          m.UpstreamMaxConns,
		WaitTimeout:       m.UpstreamWaitTimeout,
		ConnectTimeout:    m.UpstreamConnectTimeout,
		Timeout:           m.UpstreamTimeout,
		IdleTimeout:       m.UpstreamIdleTimeout,
		MaxHeaderBytes:    m.MaxHeaderBytes,
		TLSCAFile:         m.TLSCAFile,
		Metrics:           s.metrics,
	})
	tlsPort := 0
	if m.ProxyAddressTLS != "" {
		if _, p, err := net.SplitHostPort(m.ProxyAddressTLS); err == nil {
			tlsPort, _ = strconv.Atoi(p)
		}
	}
	lim, store, err := limiterOptions(m, log)
	if err != nil {
		return nil, err
	}
	s.store = store
	if m.CacheSizeMB > 0 {
		s.cache, err = cache.New(cache.Options{
			MaxBytes:       int64(m.CacheSizeMB) << 20,
			MaxObjectBytes: m.CacheMaxObjectBytes,
			DefaultTTL:     time.Duration(m.CacheTTL) * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("cache_size_mb: %w", err)
		}
		s.metrics.SetCacheStats(func() metrics.CacheStats {
			st := s.cache.Stats()
			return metrics.CacheStats{SizeBytes: st.SizeBytes, Items: st.Items, EvictedBytes: st.EvictedBytes, EvictedItems: st.EvictedItems}
		})
	}
	s.engine = proxy.NewEngine(s.reg, proxy.Options{
		LimiterOptions:      lim,
		Challenges:          &s.challenges,
		Logger:              log,
		TLSPort:             tlsPort,
		BodyBufferBytes:     m.BodyBufferBytes,
		MaxRequestBodyBytes: m.MaxRequestBodyBytes,
		MaxURIBytes:         m.MaxURIBytes,
		TrustedProxies:      m.TrustedProxies,
		Metrics:             s.metrics,
		AccessLog:           s.access,
		Cache:               s.cache,
		CacheStatusHeader:   m.CacheStatusHeader,
	})
	s.health = health.NewHealthChecker(health.HealthOptions{
		Interval: healthInterval(m),
		Timeout:  m.HealthCheckTimeout,
		Rise:     m.HealthCheckRise,
		Fall:     m.HealthCheckFall,
		Method:   m.HCMethod,
		Logger:   log,
	})
	if store != nil {
		s.metrics.SetRateLimitStore(storeStats(s.engine.Pipeline().LimiterStats))
	}
	s.metrics.SetUpstreamHealth(func(emit func(addr string, up bool)) {
		s.reg.Backends().Range(func(b *balancer.Backend) bool {
			emit(b.Addr(), b.Up())
			return true
		})
	})
	logUnsupported(log, cfg)
	if s.disco, err = newDiscovery(cfg, log); err != nil {
		return nil, fmt.Errorf("provider %s: %w", cfg.Upstreams.Provider, err)
	}
	s.baseHosts = len(cfg.Upstreams.Hosts)
	if err := s.apply(cfg, "start"); err != nil {
		return nil, err
	}
	s.front = proxy.NewFastServer(s.engine, proxy.ServerOptions{
		ReadHeaderTimeout: m.ReadHeaderTimeout,
		ReadTimeout:       m.ReadTimeout,
		WriteTimeout:      m.WriteTimeout,
		IdleTimeout:       m.IdleTimeout,
		MaxHeaderBytes:    m.MaxHeaderBytes,
	})
	// Parked idle connections (proxy.ListenOptions.IdleReleaseTimeout)
	// are open too, but no longer the HTTP/1.1 server's.
	s.metrics.SetSessions(func() int64 { return int64(s.front.GetOpenConnectionsCount()) + s.parked.Load() })
	if m.FileServerFolder != "" && m.FileServerAddress != "" {
		if s.filesLn, err = s.listen(m.FileServerAddress); err != nil {
			return nil, fmt.Errorf("file server listener: %w", err)
		}
		fsrv := &fasthttp.FS{Root: m.FileServerFolder, IndexNames: []string{"index.html"}, Compress: false, AcceptByteRange: true}
		s.files = &fasthttp.Server{Handler: fsrv.NewRequestHandler(), Name: "aralez", Logger: discardLogger{}, ReadTimeout: m.ReadTimeout, WriteTimeout: m.WriteTimeout, IdleTimeout: m.IdleTimeout}
	}
	if s.frontLn, err = s.listen(m.ProxyAddressHTTP); err != nil {
		if s.filesLn != nil {
			s.filesLn.Close()
		}
		return nil, fmt.Errorf("proxy_address_http listener: %w", err)
	}
	if m.ProxyAddressTLS != "" {
		if err := s.listenTLS(m); err != nil {
			s.frontLn.Close()
			if s.filesLn != nil {
				s.filesLn.Close()
			}
			return nil, err
		}
	}
	if err := s.setupACME(m); err != nil {
		for _, ln := range []net.Listener{s.frontLn, s.tlsLn, s.filesLn} {
			if ln != nil {
				ln.Close()
			}
		}
		return nil, err
	}
	if err := s.listenAdmin(m); err != nil {
		if s.acme != nil {
			s.acme.Stop()
		}
		for _, ln := range []net.Listener{s.frontLn, s.tlsLn, s.filesLn} {
			if ln != nil {
				ln.Close()
			}
		}
		return nil, err
	}
	if m.PIDFile != "" && proc == nil {
		if err := os.WriteFile(m.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			log.Warn("cannot write pid_file", "path", m.PIDFile, "err", err)
		} else {
			s.pidWrote = true
		}
	}
	return s, nil
}

func healthInterval(m *config.Main) time.Duration {
	if m.HealthCheckInterval > 0 {
		return m.HealthCheckInterval
	}
	return time.Duration(m.HCInterval) * time.Second
}

// errEmptyReload refuses a reload from the upstreams file that would
// remove every route (a file truncated or saved half-way): an empty file
// table is accepted only at start. Discovery sources and the config API
// may empty the table: deleting the last Ingress or tagged service must
// remove its routes (issue 14).
var errEmptyReload = errors.New("refusing to apply a routing table without hosts on reload; remove the file's last host with a restart")

// fromFile reports whether a reload reason is the upstreams file (the
// watcher or SIGHUP), the only source the empty-table guard applies to.
func fromFile(reason string) bool { return reason == "file" || reason == "sighup" }

// setBase hands the file-defined or pushed table up to the discovery
// source, which sends the merged table; the file's empty-table guard
// holds here too.
func (s *server) setBase(up *config.Upstreams, reason string) error {
	if fromFile(reason) && len(up.Hosts) == 0 && s.baseHosts > 0 {
		s.metrics.Reload(false)
		return errEmptyReload
	}
	s.baseHosts = len(up.Hosts)
	s.disco.SetBase(up)
	return nil
}

// apply compiles cfg and swaps it in. On error nothing changes. A table
// whose content digest (discovery.Digest) equals the running one is
// skipped: an editor touching the file, or the watcher seeing a file the
// config API has just saved and applied. The compile comes first: it
// hashes every host to take the routes of unchanged ones from the
// running snapshot, and the digest is the table's sum of those hashes
// (proxy.Recompile; issue 16), so an unchanged table costs no more than
// hashing it.
//
// The "config applied" line gives the time of each stage: parse and
// merge (config.LoadStats; zero for tables not read from files),
// compile (with the digest) and swap (the swap and what follows it:
// health targets, metrics, ACME names).
func (s *server) apply(cfg *config.Config, reason string) error {
	start := time.Now()
	if fromFile(reason) && len(cfg.Upstreams.Hosts) == 0 && len(s.cfg.Upstreams.Hosts) > 0 {
		s.metrics.Reload(false)
		return errEmptyReload
	}
	snap, err := proxy.Recompile(s.engine.Snapshot(), cfg, s.reg)
	if err != nil {
		s.metrics.Reload(false)
		return err
	}
	compiled := time.Now()
	digest := discovery.DigestSum(snap.Sum)
	if s.gen != 0 && digest == s.digest {
		s.log.Info("config unchanged; reload skipped", "reason", reason, "digest", digest)
		return nil
	}
	locked := keylessJWTRoutes(cfg)
	s.gen++
	snap.Generation, snap.Digest = s.gen, digest
	up := cfg.Upstreams
	s.upNow.Store(&up)
	s.engine.Swap(snap)
	s.health.SetTargets(snap.HealthTargets())
	if reason == "start" {
		// Before the listeners serve: the first requests and the first
		// health checks already speak each backend's protocol.
		detectBackends(s.log, snap)
	} else {
		go detectBackends(s.log, snap)
	}
	s.cfg, s.digest = cfg, digest
	s.sweepLater()
	s.metrics.Reload(true)
	s.metrics.SetGeneration(s.gen)
	if s.acme != nil && cfg.Main.ACME.Auto {
		if err := s.acme.Manage(autoNames(&cfg.Upstreams)); err != nil {
			s.log.Error("acme: some routed hosts get no certificate", "err", err)
		}
	}
	s.metrics.RetainUpstreams(snap.Backends())
	for _, w := range cfg.Upstreams.Warnings {
		s.log.Warn("config warning", "warning", w)
	}
	// Said once, and again only when the set of such routes changes.
	if l := strings.Join(locked, ", "); l != s.lockedJWT {
		s.lockedJWT = l
		if l != "" {
			s.log.Warn(keylessJWTWarning(locked))
		}
	}
	st := cfg.Upstreams.Stats
	s.log.Info("config applied", "reason", reason, "generation", s.gen, "digest", digest,
		"duration_seconds", (st.Parse + st.Merge + time.Since(start)).Seconds(),
		"parse_seconds", st.Parse.Seconds(), "merge_seconds", st.Merge.Seconds(),
		"compile_seconds", compiled.Sub(start).Seconds(), "swap_seconds", time.Since(compiled).Seconds(),
		"files", st.Files, "files_parsed", st.Parsed,
		"hosts", len(cfg.Upstreams.Hosts), "routes", len(snap.Routes))
	return nil
}

// serve runs until ctx is done: listeners, health checks and the reload
// loop; then it drains within the drain timeout.
func (s *server) serve(ctx context.Context, hup <-chan os.Signal) error {
	m := &s.cfg.Main
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	// The listeners stop when ctx is done or the loop below ends.
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	lo := proxy.ListenOptions{HandshakeTimeout: m.ReadHeaderTimeout, IdleTimeout: m.IdleTimeout, DrainTimeout: m.DrainTimeout, MaxHeaderBytes: m.MaxHeaderBytes, Logger: s.log,
		IdleReleaseTimeout: m.IdleReleaseTimeout, Parked: &s.parked,
		MaxConcurrentStreams: uint32(m.H2MaxConcurrentStreams), StreamWindowBytes: m.H2StreamWindowBytes, ConnectionWindowBytes: m.H2ConnectionWindowBytes}
	if m.ProxyProtocol {
		lo.ProxyProtocolFrom = m.ProxyProtocolFrom
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := proxy.Serve(lctx, s.frontLn, s.front, s.engine, lo); err != nil {
			errc <- fmt.Errorf("proxy listener: %w", err)
		}
	}()
	if s.tlsLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := proxy.ServeTLS(lctx, s.tlsLn, s.certs, s.grade, s.front, s.engine, lo); err != nil {
				errc <- fmt.Errorf("proxy TLS listener: %w", err)
			}
		}()
		go func() {
			if err := s.certs.Watch(lctx); err != nil && lctx.Err() == nil {
				s.log.Warn("certificate folder watch unavailable; restart to pick up new certificates", "dir", s.certs.Dir(), "err", err)
			}
		}()
	}
	if s.files != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.files.Serve(s.filesLn); err != nil {
				errc <- fmt.Errorf("file server: %w", err)
			}
		}()
	}
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	go s.health.Run(hctx)
	go s.engine.Run(hctx)
	if _, set := os.LookupEnv("GOMEMLIMIT"); s.cache != nil && !set {
		// The cache's churn would otherwise cost up to twice its size
		// (proxy/cache.GovernMemory); the operator's GOMEMLIMIT wins.
		go cache.GovernMemory(hctx, s.cache, cache.DefaultMemoryInterval)
	}
	s.serveAdmin(&wg, errc)

	updates := make(chan discovery.Update, 1)
	if s.disco != nil {
		go func() {
			if err := s.disco.Run(hctx, updates); err != nil {
				s.log.Error("discovery stopped; the last table keeps serving", "provider", s.disco.Name(), "err", err)
			}
		}()
	}
	src := discovery.NewFile(m.UpstreamsConf, 0, s.log)
	src.SetCache(s.parsed)
	go func() {
		if err := src.Run(hctx, updates); err != nil {
			s.log.Warn("config file watch unavailable; SIGHUP still reloads", "err", err)
		}
	}()
	go func() {
		if err := s.push.Run(hctx, updates); err != nil {
			s.log.Warn("config API push source stopped", "err", err)
		}
	}()
	if s.admin != nil {
		s.admin.SetReady(true)
	}
	s.ready()
	s.log.Info("aralez started", "version", version, "http", s.frontLn.Addr().String(), "tls", m.ProxyAddressTLS,
		"config_api", m.ConfigAddress, "file_server", m.FileServerAddress, "pid", os.Getpid(), "gomaxprocs", runtimeProcs())

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case u := <-updates:
			s.onUpdate(u)
		case <-hup:
			s.onHUP()
		}
	}
	lcancel()
	s.shutdown()
	wg.Wait()
	if n := s.reg.CloseTunnels(); n > 0 {
		s.log.Info("closed websocket tunnels at shutdown", "tunnels", n)
	}
	return runErr
}

// onUpdate applies a routing table from a discovery source and answers
// the source's Done channel (the config API waits on it).
func (s *server) onUpdate(u discovery.Update) {
	if u.Certificates != nil {
		s.setCertificates(u)
		return
	}
	err := u.Err
	if err == nil && s.disco != nil && u.Source != s.disco.Name() {
		// In consul/kubernetes mode the file and the config API define
		// only the non-discovered part; the source merges and sends the
		// whole table.
		err = s.setBase(u.Upstreams, u.Source)
		if err != nil {
			s.log.Error("config rejected; old config keeps serving", "source", u.Source, "err", err)
		}
		if u.Done != nil {
			u.Done <- err
		}
		return
	}
	if err != nil {
		s.metrics.Reload(false)
		s.log.Error("config rejected; old config keeps serving", "source", u.Source, "errors", err.Error())
	} else {
		if err = s.apply(withTable(s.cfg, u.Upstreams), u.Source); err != nil {
			s.log.Error("config rejected; old config keeps serving", "source", u.Source, "err", err)
		} else if u.Source == "api" {
			s.log.Info("pushed config applied; it holds until the next file change or SIGHUP (last writer wins)")
		}
	}
	if u.Done != nil {
		u.Done <- err
	}
}

// setCertificates hands a discovery source's certificates (Ingress TLS
// Secrets) to the TLS listener's store, where they are served beside
// the folder's under the source's name.
func (s *server) setCertificates(u discovery.Update) {
	n := len(u.Certificates.List)
	if s.certs == nil {
		if n > 0 {
			s.log.Warn("certificates from discovery not served: no proxy_address_tls", "source", u.Source, "certificates", n)
		}
		return
	}
	s.certs.SetCertificates(u.Source, u.Certificates.List)
	s.log.Info("certificates from discovery applied", "source", u.Source, "certificates", n)
}

// onHUP re-reads main.yaml and the upstreams; keys that need a restart
// are logged as pending.
func (s *server) onHUP() {
	cfg, err := s.parsed.Load(s.mainPath)
	if err != nil {
		s.log.Error("SIGHUP: config rejected; old config keeps serving", "errors", err.Error())
		return
	}
	old := &s.cfg.Main
	for _, k := range restartKeys(old, &cfg.Main) {
		s.log.Warn("SIGHUP: main.yaml key changed; takes effect after restart", "key", k)
	}
	up := &cfg.Upstreams
	if cfg.Main.UpstreamsConf != old.UpstreamsConf {
		// upstreams_conf itself waits for a restart: keep reading the
		// file that is watched now.
		if up, err = s.parsed.LoadUpstreams(old.UpstreamsConf); err != nil {
			s.log.Error("SIGHUP: config rejected; old config keeps serving", "errors", err.Error())
			return
		}
	}
	if s.disco != nil {
		if err := s.setBase(up, "sighup"); err != nil { // the source sends the merged table
			s.log.Error("SIGHUP: config rejected; old config keeps serving", "err", err)
		}
		return
	}
	// Keep the running process settings; take the new routing table.
	if err := s.apply(withTable(s.cfg, up), "sighup"); err != nil {
		s.metrics.Reload(false)
		s.log.Error("SIGHUP: config rejected; old config keeps serving", "err", err)
	}
}

// withTable returns a copy of cfg's process settings with the routing
// table up. Only Main is cloned: a deep copy of the old table, thrown
// away at once, would cost more than the rest of a one-host reload of a
// large table (issue 16).
func withTable(cfg *config.Config, up *config.Upstreams) *config.Config {
	next := (&config.Config{Main: cfg.Main, MainPath: cfg.MainPath}).Clone()
	next.Upstreams = *up
	return next
}

// restartKeys names the main.yaml keys whose value changed: SIGHUP
// applies only the routing table, so every main.yaml change needs a
// restart. Keys are derived from the field names (ProxyAddressHTTP is
// proxy_address_http); values are never logged.
func restartKeys(a, b *config.Main) []string {
	var out []string
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	t := va.Type()
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Name
		if name == "Ignored" || name == "Deprecated" || name == "Warnings" {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, snakeCase(name))
		}
	}
	return out
}

// snakeCase turns a Go field name into its YAML key: runs of capitals
// are one word ("HCInterval" is hc_interval, "MaxURIBytes" max_uri_bytes)
// and a digit ends one ("H2StreamWindowBytes" is h2_stream_window_bytes).
func snakeCase(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		upper := c >= 'A' && c <= 'Z'
		if upper && i > 0 {
			prevLower := name[i-1] >= 'a' && name[i-1] <= 'z' || name[i-1] >= '0' && name[i-1] <= '9'
			nextLower := i+1 < len(name) && name[i+1] >= 'a' && name[i+1] <= 'z'
			if prevLower || nextLower && name[i-1] >= 'A' && name[i-1] <= 'Z' {
				b.WriteByte('_')
			}
		}
		if upper {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (s *server) shutdown() {
	drain := s.cfg.Main.DrainTimeout
	s.log.Info("shutting down", "drain_timeout_seconds", drain.Seconds())
	// The listeners themselves were closed when the serve context ended;
	// the upgrader's duplicates go now, so that a new connection is
	// refused during the drain rather than reset at exit.
	s.proc.closeListeners()
	if s.admin != nil {
		s.admin.SetDraining(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range []*fasthttp.Server{s.front, s.files} {
		if srv == nil {
			continue
		}
		wg.Add(1)
		go func(srv *fasthttp.Server) {
			defer wg.Done()
			if err := srv.ShutdownWithContext(ctx); err != nil {
				s.log.Warn("drain timeout reached; closing remaining connections", "err", err)
			}
		}(srv)
	}
	wg.Wait()
	if s.admin != nil {
		_ = s.admin.Shutdown(ctx)
	}
	_ = s.access.Shutdown(ctx)
	if s.cache != nil {
		s.cache.Close() // after the listeners: no request uses it any more
	}
	if s.acme != nil {
		s.acme.Stop()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.pidWrote {
		removePIDFile(s.cfg.Main.PIDFile)
	}
	s.log.Info("stopped")
}

// logUnsupported logs once, at start, the Pingora keys this build
// accepts and ignores, and deprecated keys.
func logUnsupported(log *slog.Logger, cfg *config.Config) {
	for _, k := range cfg.Main.Ignored {
		log.Info("main.yaml key accepted and ignored", "key", k)
	}
	for _, d := range cfg.Main.Deprecated {
		log.Warn("deprecated key", "msg", d)
	}
	for _, w := range cfg.Main.Warnings {
		log.Warn("config warning", "warning", w)
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// listenTLS opens the proxy_address_tls listener with certificates from
// <proxy_configs>/certificates (proxy_configs defaults to main.yaml's
// folder). An empty or missing folder is not fatal: NewStore warns, and
// handshakes are refused until a pair appears.
func (s *server) listenTLS(m *config.Main) error {
	grade, err := edgetls.ParseGrade(m.ProxyTLSGrade)
	if err != nil {
		return fmt.Errorf("proxy_tls_grade: %w", err)
	}
	base := m.ProxyConfigs
	if base == "" {
		base = filepath.Dir(s.mainPath)
	}
	if s.certs, err = edgetls.NewStore(filepath.Join(base, "certificates"), s.log); err != nil {
		return fmt.Errorf("proxy_address_tls certificates: %w", err)
	}
	s.grade = grade
	if s.tlsLn, err = s.listen(m.ProxyAddressTLS); err != nil {
		return fmt.Errorf("proxy_address_tls listener: %w", err)
	}
	return nil
}

// discardLogger drops fasthttp's per-connection error lines (protocol
// probes and scanners would flood the log).
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// listenAdmin binds the config API listeners (config_address and
// config_tls_address) when either is set.
func (s *server) listenAdmin(m *config.Main) error {
	if m.ConfigAddress == "" && m.ConfigTLSAddress == "" {
		return nil
	}
	ao := admin.Options{
		MasterKey:        m.MasterKey,
		ConfigAPIEnabled: m.ConfigAPIEnabled,
		UpstreamsConf:    m.UpstreamsConf,
		Push:             s.push,
		Status:           admin.SnapshotStatus{Snapshot: s.engine.Snapshot, Upstreams: s.upNow.Load, Certificates: s.certificates()},
		ACME:             s.acmeAdmin(),
		Metrics:          s.metrics.Handler(),
		Logger:           s.log,
	}
	if s.cache != nil { // a nil *cache.Cache would be a non-nil CachePurger
		ao.Cache = s.cache
	}
	s.admin = admin.NewServer(ao)
	var err error
	if m.ConfigAddress != "" {
		if s.adminLn, err = s.listen(m.ConfigAddress); err != nil {
			return fmt.Errorf("config_address listener: %w", err)
		}
	}
	if m.ConfigTLSAddress != "" {
		if err := configTLSPair(m); err != nil {
			if s.adminLn != nil {
				s.adminLn.Close()
			}
			return err
		}
		if s.adminTLSLn, err = s.listen(m.ConfigTLSAddress); err != nil {
			if s.adminLn != nil {
				s.adminLn.Close()
			}
			return fmt.Errorf("config_tls_address listener: %w", err)
		}
	}
	return nil
}

// serveAdmin runs the config API listeners; their errors end the process
// like the proxy listeners' do.
func (s *server) serveAdmin(wg *sync.WaitGroup, errc chan<- error) {
	if s.admin == nil {
		return
	}
	serve := func(what string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("%s: %w", what, err)
			}
		}()
	}
	m := &s.cfg.Main
	if s.adminLn != nil {
		serve("config API", func() error { return s.admin.Serve(s.adminLn) })
	}
	if s.adminTLSLn != nil {
		serve("config API (TLS)", func() error {
			return s.admin.ServeTLS(s.adminTLSLn, m.ConfigTLSCertificate, m.ConfigTLSKeyFile)
		})
	}
}

// notifyReady tells systemd the service is up (sd_notify READY=1) when
// NOTIFY_SOCKET is set; it is a no-op otherwise.
func notifyReady(log *slog.Logger) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	if sock[0] == '@' {
		sock = "\x00" + sock[1:] // abstract socket namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		log.Warn("sd_notify failed", "err", err)
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()))); err != nil {
		log.Warn("sd_notify failed", "err", err)
	}
}

// detectWorkers bounds how many backends detectBackends probes at once.
const detectWorkers = 64

// detectBackends runs upstream protocol detection (TLS, h2, h2c) once for
// every backend of snap whose protocol is not known yet, health-checked
// or not, detectWorkers at a time, each within
// health.DefaultDetectTimeout, and stores what it finds: a TLS handshake
// or an HTTP/2 SETTINGS frame for every backend; clear-text HTTP/1.1
// only for a backend that no health check probes, as a health check
// stores it once a probe gets an answer (a TLS-only backend that was
// slow to answer must not be fixed to clear text, issue 11). The health
// checker detects again when a known protocol stops working. It ends by
// itself.
func detectBackends(log *slog.Logger, snap *proxy.Snapshot) {
	checked := make(map[string]bool)
	for _, t := range snap.HealthTargets() {
		checked[t.Backend.Addr()] = true
	}
	jobs := make(chan *balancer.Backend)
	var wg sync.WaitGroup
	for range detectWorkers {
		wg.Go(func() {
			for b := range jobs {
				host, _, _ := net.SplitHostPort(b.Addr())
				p, err := health.DetectBackend(context.Background(), b, host, 0)
				switch {
				case err != nil:
					log.Debug("protocol detection failed; HTTP/1.1 assumed", "backend", b.Addr(), "err", err)
				case p == balancer.ProtoHTTP1 && checked[b.Addr()]:
					// Left to the health check's probe.
				case b.Proto() == balancer.ProtoUnknown:
					b.SetProto(p)
					log.Info("backend protocol detected", "backend", b.Addr(), "proto", p.String())
				}
			}
		})
	}
	for _, b := range snap.BackendStates() {
		if b.Proto() == balancer.ProtoUnknown {
			jobs <- b
		}
	}
	close(jobs)
	wg.Wait()
}

// baseSource is a discovery source that merges its findings into a
// file-defined table (discovery.Consul, discovery.Kubernetes).
type baseSource interface {
	discovery.Source
	SetBase(up *config.Upstreams)
}

// newDiscovery returns the source for provider consul or kubernetes
// (the Ingress controller when the kubernetes block maps no services),
// or nil for provider file. It does no network I/O, so -t runs it too.
func newDiscovery(cfg *config.Config, log *slog.Logger) (baseSource, error) {
	up := &cfg.Upstreams
	switch up.Provider {
	case "consul":
		return discovery.NewConsul(up, up.Consul, discovery.ConsulOptions{Logger: log})
	case "kubernetes":
		if up.Kubernetes == nil || len(up.Kubernetes.Services) == 0 {
			return discovery.NewIngress(up, up.Kubernetes, discovery.IngressOptions{Logger: log})
		}
		return discovery.NewKubernetes(up, up.Kubernetes, discovery.KubernetesOptions{Logger: log})
	}
	return nil, nil
}

// sweepLater forgets, after the drain timeout, the backends that the
// snapshot serving then no longer uses: their idle connections are
// closed and their state dropped (requests still in flight on an older
// snapshot have had the drain timeout to finish).
func (s *server) sweepLater() {
	time.AfterFunc(s.cfg.Main.DrainTimeout, func() {
		keep := make(map[string]bool)
		for _, a := range s.engine.Snapshot().Backends() {
			keep[a] = true
		}
		if n := s.reg.Sweep(func(addr string) bool { return keep[addr] }); n > 0 {
			s.log.Info("unused backends swept", "backends", n)
		}
	})
}
