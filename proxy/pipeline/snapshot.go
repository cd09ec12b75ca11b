package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/textproto"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/policy/auth"
)

// ErrNoRoute is the cause logged when a request matches no host and there
// is no DEFAULT host; the client gets 404.
var ErrNoRoute = errors.New("proxy: no route")

// ErrNoBackend is the cause logged when a route has no usable backend;
// the client gets 503.
var ErrNoBackend = errors.New("proxy: no backend")

// defaultHost is the upstreams.yaml key that catches hosts without an
// entry of their own (Aralez's name).
const defaultHost = "DEFAULT"

// Upstream is what a Resolver returns for one backend address: the
// connection pools the front ends use to reach it. The pipeline only
// stores it and hands it back to the Transport of each attempt.
type Upstream any

// ForwardAuthorizer asks an external service whether a request may pass
// (forward auth). policy/auth/forward's Client implements it. Check must
// honour ctx and is called at most once per request.
type ForwardAuthorizer interface {
	Check(ctx context.Context, r *auth.ForwardRequest) auth.ForwardResult
}

// Resolver supplies the state that outlives a snapshot: per-address
// backend state and connection pools, the sticky-cookie signer and the
// forward-auth clients. proxy.Registry implements it.
type Resolver interface {
	// Upstream returns the balancer state of addr (host:port) and its
	// connection pools for the route settings in o.
	Upstream(addr string, o PoolOptions) (*balancer.Backend, Upstream)
	// Sticky returns the sticky-cookie signer for the main config.
	Sticky(m config.Main) *balancer.Sticky
	// ForwardAuth returns a forward-auth client for url. Errors wrap
	// auth.ErrForwardURL.
	ForwardAuth(url string, o auth.ForwardOptions) (ForwardAuthorizer, error)
}

// PoolOptions are the route settings that need connection pools of
// their own for one backend address.
type PoolOptions struct {
	// TLSVerify verifies the backend's certificate (tls_verify).
	TLSVerify bool
	// ProxyProtocol is the PROXY protocol version (1 or 2) every
	// upstream connection opens with (send_proxy_protocol); 0 = none.
	// Such connections carry one client's requests only.
	ProxyProtocol uint8
}

// Snapshot is an immutable, compiled routing table: host maps, prefix
// tables sorted longest first, precomputed header bytes and balancer
// pools. It is built by Compile off the hot path and published by the
// proxy's Engine with one atomic store; requests load it once and use only
// that value. A Snapshot is safe for concurrent use and must not be
// modified.
type Snapshot struct {
	exact    map[string]*vhost
	wildcard map[string]*vhost // key: the part after "*."
	def      *vhost

	// Routes lists every route, in config order.
	Routes []*Route
	// Generation is the config generation this snapshot was built from,
	// set by the caller of Compile; it appears in logs and metrics.
	Generation uint64
	// Digest identifies the config bytes this snapshot was built from.
	Digest string
	// Sum is the config.Upstreams.Sum of the table compiled, set by
	// Compile and Recompile (which hash every host anyway).
	Sum config.Sum

	backends map[*balancer.Backend]Upstream
	checked  []balancer.Target

	reuse *reuseIndex // what a later Recompile may take from this snapshot
}

// reuseIndex records what a snapshot was compiled from, so that
// Recompile can take the routes of the hosts that did not change.
type reuseIndex struct {
	res     Resolver
	main    config.Main
	globals config.Sum
	hosts   map[config.Sum]*compiledHost // by config.Host.Sum
}

// compiledHost is one host's compiled routes, in config order, and its
// vhost, with their backends and health check targets. It is never
// changed once built, so that later snapshots share it whole.
type compiledHost struct {
	vh       *vhost
	routes   []*Route
	backends []hostBackend
	checked  []balancer.Target
}

// hostBackend is a backend of a host's routes and its connection pools.
type hostBackend struct {
	b *balancer.Backend
	u Upstream
}

type vhost struct {
	name   string
	routes []*Route // prefix routes, longest prefix first
	// exact maps the path of each exact route (config.MatchExact) to
	// it; nil when the host has none. Exact routes are tried first.
	exact map[string]*Route
}

// Route is one compiled path entry of a host. Its fields are read-only.
//
// A Route may belong to several snapshots: Recompile shares the routes
// of unchanged hosts with the snapshot it takes them from.
type Route struct {
	// Key is the route's stable identity: FNV-1a 64 of Host, a NUL byte
	// and Prefix ("=" and Prefix for an exact route). It is the same in
	// every process and across reloads that keep the route; sticky
	// cookies and cluster-wide limits name routes by it.
	Key uint64
	// Host is the host key as configured ("DEFAULT", "*.example.com", …).
	Host string
	// Prefix is the configured path prefix, or the path of an exact
	// route.
	Prefix string
	// Exact is set for an exact route (config.MatchExact): it matches
	// only the path Prefix.
	Exact bool
	// Name is Host followed by Prefix ("=" between them for an exact
	// route), for logs and metrics.
	Name string

	prefix     []byte
	dirPrefix  bool // configured with a trailing "/": matches only below it
	pool       *balancer.Pool
	redirectTo []byte
	toHTTPS    bool
	maxBody    int64 // max_request_body_bytes of the path, when maxBodySet
	maxBodySet bool

	serverHeaders []Field  // request side, set or added (Field.add)
	clientHeaders []Field  // response side
	protected     [][]byte // names whose "_" spellings are dropped (plan)

	upstreams map[*balancer.Backend]Upstream

	policy routePolicy
	cache  *routeCache // nil: not cached
}

// Pool returns the route's balancer pool (nil for a redirect-only route).
func (r *Route) Pool() *balancer.Pool { return r.pool }

// Upstream returns the connection pools of backend b for this route (nil
// when b is not a member).
func (r *Route) Upstream(b *balancer.Backend) Upstream { return r.upstreams[b] }

// matches reports whether the normalized path p is inside the route's
// prefix on a segment boundary: "/api" matches "/api" and "/api/x", not
// "/apix"; "/api/" matches only "/api/…".
func (r *Route) matches(p []byte) bool {
	n := len(r.prefix)
	if len(p) < n || string(p[:n]) != string(r.prefix) {
		return false
	}
	return r.dirPrefix || len(p) == n || p[n] == '/' || n == 1
}

// proxyVersion maps send_proxy_protocol to its version number.
func proxyVersion(s string) uint8 {
	switch s {
	case "v1":
		return 1
	case "v2":
		return 2
	}
	return 0
}

// RouteKey returns the stable identity of the route host+prefix (see
// Route.Key); an exact route's prefix is written "=" followed by its
// path.
func RouteKey(host, prefix string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(host))
	h.Write([]byte{0})
	h.Write([]byte(prefix))
	return h.Sum64()
}

// Compile builds a Snapshot from a validated config, taking per-backend
// state (counters, health, connection pools) from res so that it survives
// reloads. It starts no goroutines and binds no sockets; on error nothing
// is changed and the returned error names the host and path.
func Compile(cfg *config.Config, res Resolver) (*Snapshot, error) {
	return Recompile(nil, cfg, res)
}

// Recompile is Compile that takes from prev, a snapshot compiled before
// with the same res, the compiled routes of every host whose content
// (config.Host.Sum) is unchanged, when nothing they inherit changed
// either: the same main config and the same settings outside the hosts
// (config.Upstreams.GlobalSum). A reload that edits one host of 10,000
// thus compiles one host (issue 16). Taken routes are shared with prev,
// balancer pools included, so round-robin positions carry over; prev
// itself is not changed and may keep serving. A nil prev compiles every
// host.
func Recompile(prev *Snapshot, cfg *config.Config, res Resolver) (*Snapshot, error) {
	up := &cfg.Upstreams
	global := up.GlobalSum()
	var old map[config.Sum]*compiledHost
	nRoutes, nChecked := len(up.Hosts), 0
	if p := prev.reusable(); p != nil && p.res == res && p.globals == global && reflect.DeepEqual(p.main, cfg.Main) {
		old = p.hosts
		// Room for a table like prev's and a few more.
		nRoutes = max(nRoutes, len(prev.Routes)+len(prev.Routes)/16)
		nChecked = len(prev.checked) + len(prev.checked)/16
	}
	s := &Snapshot{
		exact:    make(map[string]*vhost, len(up.Hosts)),
		wildcard: make(map[string]*vhost),
		backends: make(map[*balancer.Backend]Upstream),
		Routes:   make([]*Route, 0, nRoutes),
		checked:  make([]balancer.Target, 0, nChecked),
		reuse: &reuseIndex{
			res: res, main: cfg.Main, globals: global,
			hosts: make(map[config.Sum]*compiledHost, len(up.Hosts)),
		},
	}
	sums := up.HostSums()
	for i := range up.Hosts {
		h := &up.Hosts[i]
		ch := old[sums[i]]
		if ch == nil {
			var err error
			if ch, err = s.compileHost(cfg, res, h); err != nil {
				return nil, err
			}
		} else {
			s.take(ch)
		}
		s.reuse.hosts[sums[i]] = ch
		switch {
		case h.Name == defaultHost:
			s.def = ch.vh
		case strings.HasPrefix(h.Name, "*."):
			s.wildcard[h.Name[2:]] = ch.vh
		default:
			s.exact[h.Name] = ch.vh
		}
	}
	s.Sum = config.SumOf(global, sums)
	return s, nil
}

// reusable returns what Recompile may take from s, or nil.
func (s *Snapshot) reusable() *reuseIndex {
	if s == nil {
		return nil
	}
	return s.reuse
}

// compileHost compiles the routes of h into s.
func (s *Snapshot) compileHost(cfg *config.Config, res Resolver, h *config.Host) (*compiledHost, error) {
	routes, checked := len(s.Routes), len(s.checked)
	vh := &vhost{name: h.Name}
	for pi := range h.Paths {
		p := &h.Paths[pi]
		r, err := s.compileRoute(cfg, res, h, p)
		if err != nil {
			return nil, fmt.Errorf("compiling route %q %q: %w", h.Name, p.Prefix, err)
		}
		if r.Exact {
			if vh.exact == nil {
				vh.exact = make(map[string]*Route)
			}
			vh.exact[r.Prefix] = r
			continue
		}
		vh.routes = append(vh.routes, r)
	}
	slices.SortStableFunc(vh.routes, func(a, b *Route) int { return len(b.prefix) - len(a.prefix) })
	// Copies: slices of s's would keep all of them alive for as long as
	// later snapshots take this host.
	ch := &compiledHost{vh: vh, routes: slices.Clone(s.Routes[routes:]), checked: slices.Clone(s.checked[checked:])}
	for _, r := range ch.routes {
		for b, u := range r.upstreams {
			if !slices.ContainsFunc(ch.backends, func(x hostBackend) bool { return x.b == b }) {
				ch.backends = append(ch.backends, hostBackend{b, u})
			}
		}
	}
	return ch, nil
}

// take adds a host compiled for an earlier snapshot to s: its routes,
// backends and health check targets (its vhost is placed by the caller).
func (s *Snapshot) take(ch *compiledHost) {
	s.Routes = append(s.Routes, ch.routes...)
	for _, hb := range ch.backends {
		s.backends[hb.b] = hb.u
	}
	s.checked = append(s.checked, ch.checked...)
}

func (s *Snapshot) compileRoute(cfg *config.Config, res Resolver, h *config.Host, p *config.Path) (*Route, error) {
	up := &cfg.Upstreams
	// Requests are normalized before routing (doc.go), so a prefix that
	// normalization would change can never match; its policies would
	// protect nothing.
	if norm, err := AppendNormalizedPath(nil, []byte(p.Prefix)); err != nil || string(norm) != p.Prefix {
		return nil, fmt.Errorf("%s: path %q can never match: request paths are normalized (want %q)", p.Pos, p.Prefix, norm)
	}
	if strings.IndexByte(p.Prefix, ';') >= 0 {
		return nil, fmt.Errorf("%s: path %q can never match: routes match paths without their segments' ;parameters", p.Pos, p.Prefix)
	}
	exact := p.Match == config.MatchExact
	if !exact && p.Match != config.MatchPrefix {
		return nil, fmt.Errorf("%s: unknown path match %q", p.Pos, p.Match)
	}
	key, name := p.Prefix, h.Name+p.Prefix
	if exact {
		key, name = "="+p.Prefix, h.Name+"="+p.Prefix
	}
	r := &Route{
		Key:        RouteKey(h.Name, key),
		Host:       h.Name,
		Prefix:     p.Prefix,
		Exact:      exact,
		Name:       name,
		prefix:     []byte(strings.TrimSuffix(p.Prefix, "/")),
		dirPrefix:  len(p.Prefix) > 1 && strings.HasSuffix(p.Prefix, "/"),
		redirectTo: []byte(strings.TrimRight(p.RedirectTo, "/")),
	}
	if p.MaxRequestBodyBytes != nil {
		r.maxBody, r.maxBodySet = *p.MaxRequestBodyBytes, true
	}
	if len(r.prefix) == 0 {
		r.prefix = []byte("/")
	} else if r.dirPrefix {
		r.prefix = []byte(p.Prefix)
	}
	if p.Policy.ToHTTPS != nil {
		r.toHTTPS = *p.Policy.ToHTTPS
	} else if h.Policy.ToHTTPS != nil {
		r.toHTTPS = *h.Policy.ToHTTPS
	} else if up.Policy.ToHTTPS != nil {
		r.toHTTPS = *up.Policy.ToHTTPS
	}
	r.serverHeaders = mergeHeaders(up.Policy.ServerHeaders, h.Policy.ServerHeaders, p.Policy.ServerHeaders)
	r.clientHeaders = mergeHeaders(up.Policy.ClientHeaders, h.Policy.ClientHeaders, p.Policy.ClientHeaders)

	if len(p.Servers) > 0 {
		kind, err := balancer.ParseKind(p.LoadBalance)
		if err != nil {
			return nil, err
		}
		members := make([]balancer.Member, 0, len(p.Servers))
		r.upstreams = make(map[*balancer.Backend]Upstream, len(p.Servers))
		// tls_verify: the path's value, else the global one (read per
		// reload; the Resolver keeps one pool per address and setting).
		verify := false
		if v := p.Policy.TLSVerify; v != nil {
			verify = *v
		} else if v := up.Policy.TLSVerify; v != nil {
			verify = *v
		}
		for _, sv := range p.Servers {
			if _, _, err := net.SplitHostPort(sv.Address); err != nil {
				return nil, fmt.Errorf("server %q: %w", sv.Address, err)
			}
			b, u := res.Upstream(sv.Address, PoolOptions{TLSVerify: verify, ProxyProtocol: proxyVersion(p.SendProxyProtocol)})
			s.backends[b] = u
			r.upstreams[b] = u
			w := sv.Weight
			if w <= 0 {
				w = 1
			}
			members = append(members, balancer.Member{Backend: b, Weight: w, Backup: sv.Backup})
			if p.HealthCheck == nil || *p.HealthCheck {
				host := h.Name
				if host == defaultHost || strings.HasPrefix(host, "*.") {
					host = sv.Address
				}
				s.checked = append(s.checked, balancer.Target{Backend: b, Host: host, Path: p.Prefix})
			}
		}
		ignoreHealth := p.HealthCheck != nil && !*p.HealthCheck
		r.pool = balancer.NewPool(members, kind, ignoreHealth)
	}
	pol, err := compilePolicy(cfg, h, p, r, res)
	if err != nil {
		return nil, err
	}
	r.policy = pol
	r.cache = compileCache(cfg, p, r, res)
	r.protected = protectedNames(r)
	s.Routes = append(s.Routes, r)
	return r, nil
}

// mergeHeaders merges header lists from the outer level to the inner one:
// an inner list's name replaces every same-named header of the outer
// lists; inside one list the first occurrence of a name sets and later
// ones add.
func mergeHeaders(levels ...[]config.Header) []Field {
	var out []config.Header
	for _, l := range levels {
		if len(l) == 0 {
			continue
		}
		kept := out[:0:0]
		for _, o := range out {
			replaced := false
			for _, n := range l {
				if strings.EqualFold(o.Name, n.Name) {
					replaced = true
					break
				}
			}
			if !replaced {
				kept = append(kept, o)
			}
		}
		out = append(kept, l...)
	}
	ops := make([]Field, 0, len(out))
	for i, h := range out {
		add := false
		for _, prev := range out[:i] {
			if strings.EqualFold(prev.Name, h.Name) {
				add = true
				break
			}
		}
		f := field(h.Name, h.Value)
		f.add = add
		ops = append(ops, f)
	}
	return ops
}

// field returns a Field with its canonical key and, for a non-empty
// value, its Values precomputed.
func field(name, value string) Field {
	f := Field{Name: []byte(name), Value: []byte(value), Key: textproto.CanonicalMIMEHeaderKey(name)}
	if value != "" {
		f.Values = []string{value}
	}
	return f
}

// lookupHost finds the vhost for a normalized host: exact, then a
// one-label wildcard, then DEFAULT. It allocates nothing.
func (s *Snapshot) lookupHost(host []byte) *vhost {
	if len(host) > 0 {
		if vh, ok := s.exact[string(host)]; ok {
			return vh
		}
		for i, c := range host {
			if c == '.' {
				if vh, ok := s.wildcard[string(host[i+1:])]; ok {
					return vh
				}
				break
			}
		}
	}
	return s.def
}

// Match returns the route for a normalized host and path, or nil: an
// exact route for the path, else the longest prefix route that holds it.
// It allocates nothing.
func (s *Snapshot) Match(host, path []byte) *Route {
	vh := s.lookupHost(host)
	if vh == nil {
		return nil
	}
	if r, ok := vh.exact[string(path)]; ok {
		return r
	}
	for _, r := range vh.routes {
		if r.matches(path) {
			return r
		}
	}
	return nil
}

// HealthTargets returns the active health check targets of the snapshot:
// one per (backend, route host, route path) of every checked path entry.
func (s *Snapshot) HealthTargets() []balancer.Target { return s.checked }

// Backends returns the addresses of every backend the snapshot uses,
// sorted.
func (s *Snapshot) Backends() []string {
	out := make([]string, 0, len(s.backends))
	for b := range s.backends {
		out = append(out, b.Addr())
	}
	sort.Strings(out)
	return out
}

// BackendStates returns the balancer state of every backend the snapshot
// uses, in no particular order.
func (s *Snapshot) BackendStates() []*balancer.Backend {
	out := make([]*balancer.Backend, 0, len(s.backends))
	for b := range s.backends {
		out = append(out, b)
	}
	return out
}
