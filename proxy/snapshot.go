package proxy

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
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

// Snapshot is an immutable, compiled routing table: host maps, prefix
// tables sorted longest first, precomputed header bytes and balancer
// pools. It is built by Compile off the hot path and published with
// (*Engine).Swap; requests load it once and use only that value. A
// Snapshot is safe for concurrent use and must not be modified.
type Snapshot struct {
	exact    map[string]*vhost
	wildcard map[string]*vhost // key: the part after "*."
	def      *vhost

	// Routes lists every route by ID (Routes[r.ID] == r).
	Routes []*Route
	// Generation is the config generation this snapshot was built from,
	// set by the caller of Compile; it appears in logs and metrics.
	Generation uint64
	// Digest identifies the config bytes this snapshot was built from.
	Digest string

	upstreams map[*balancer.Backend]*upstream
	checked   []balancer.Target
}

type vhost struct {
	name   string
	routes []*Route // longest prefix first
	root   *Route   // the "/" route, if any
}

// Route is one compiled path entry of a host. Its fields are read-only.
type Route struct {
	// ID is the route's index in Snapshot.Routes; sticky cookies carry it.
	ID uint32
	// Host is the host key as configured ("DEFAULT", "*.example.com", …).
	Host string
	// Prefix is the configured path prefix.
	Prefix string

	prefix     []byte
	dirPrefix  bool // configured with a trailing "/": matches only below it
	pool       *balancer.Pool
	redirectTo []byte
	toHTTPS    bool

	serverHeaders []headerOp
	clientHeaders []headerOp

	// upstreams maps each pool member to its connection pools for this
	// route (routes differ in tls_verify, so one address may have two).
	upstreams map[*balancer.Backend]*upstream

	policy routePolicy
}

// headerOp sets (first occurrence of a name in a merged list) or adds
// (later occurrences) one header.
type headerOp struct {
	name, value []byte
	add         bool
}

// Pool returns the route's balancer pool (nil for a redirect-only route).
func (r *Route) Pool() *balancer.Pool { return r.pool }

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

// Compile builds a Snapshot from a validated config, taking per-backend
// state (counters, health, connection pools) from reg so that it survives
// reloads. It starts no goroutines and binds no sockets; on error nothing
// is changed and the returned error names the host and path.
func Compile(cfg *config.Config, reg *Registry) (*Snapshot, error) {
	up := &cfg.Upstreams
	s := &Snapshot{
		exact:     make(map[string]*vhost, len(up.Hosts)),
		wildcard:  make(map[string]*vhost),
		upstreams: make(map[*balancer.Backend]*upstream),
	}
	for hi := range up.Hosts {
		h := &up.Hosts[hi]
		vh := &vhost{name: h.Name}
		for pi := range h.Paths {
			p := &h.Paths[pi]
			r, err := s.compileRoute(cfg, reg, h, p)
			if err != nil {
				return nil, fmt.Errorf("compiling route %q %q: %w", h.Name, p.Prefix, err)
			}
			vh.routes = append(vh.routes, r)
			if p.Prefix == "/" {
				vh.root = r
			}
		}
		sort.SliceStable(vh.routes, func(i, j int) bool {
			return len(vh.routes[i].prefix) > len(vh.routes[j].prefix)
		})
		switch {
		case h.Name == defaultHost:
			s.def = vh
		case strings.HasPrefix(h.Name, "*."):
			s.wildcard[h.Name[2:]] = vh
		default:
			s.exact[h.Name] = vh
		}
	}
	return s, nil
}

func (s *Snapshot) compileRoute(cfg *config.Config, reg *Registry, h *config.Host, p *config.Path) (*Route, error) {
	up := &cfg.Upstreams
	// Requests are normalized before routing (doc.go), so a prefix that
	// normalization would change can never match; its policies would
	// protect nothing.
	if norm, err := AppendNormalizedPath(nil, []byte(p.Prefix)); err != nil || string(norm) != p.Prefix {
		return nil, fmt.Errorf("%s: path %q can never match: request paths are normalized (want %q)", p.Pos, p.Prefix, norm)
	}
	r := &Route{
		ID:         uint32(len(s.Routes)),
		Host:       h.Name,
		Prefix:     p.Prefix,
		prefix:     []byte(strings.TrimSuffix(p.Prefix, "/")),
		dirPrefix:  len(p.Prefix) > 1 && strings.HasSuffix(p.Prefix, "/"),
		redirectTo: []byte(strings.TrimRight(p.RedirectTo, "/")),
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
		r.upstreams = make(map[*balancer.Backend]*upstream, len(p.Servers))
		// tls_verify: the path's value, else the global one (read per
		// reload; the Registry keeps one pool per address and setting).
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
			u := reg.get(sv.Address, verify)
			s.upstreams[u.backend] = u
			r.upstreams[u.backend] = u
			w := sv.Weight
			if w <= 0 {
				w = 1
			}
			members = append(members, balancer.Member{Backend: u.backend, Weight: w, Backup: sv.Backup})
			checked := p.HealthCheck == nil || *p.HealthCheck
			if checked {
				host := h.Name
				if host == defaultHost || strings.HasPrefix(host, "*.") {
					host = sv.Address
				}
				s.checked = append(s.checked, balancer.Target{Backend: u.backend, Host: host, Path: p.Prefix})
			}
		}
		ignoreHealth := p.HealthCheck != nil && !*p.HealthCheck
		r.pool = balancer.NewPool(members, kind, ignoreHealth)
	}
	pol, err := compilePolicy(cfg, h, p, r, PolicyOptions{MasterKey: cfg.Main.MasterKey, Sticky: reg.sticky(cfg.Main)})
	if err != nil {
		return nil, err
	}
	r.policy = pol
	s.Routes = append(s.Routes, r)
	return r, nil
}

// mergeHeaders merges header lists from the outer level to the inner one:
// an inner list's name replaces every same-named header of the outer
// lists; inside one list the first occurrence of a name sets and later
// ones add.
func mergeHeaders(levels ...[]config.Header) []headerOp {
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
	ops := make([]headerOp, 0, len(out))
	for i, h := range out {
		add := false
		for _, prev := range out[:i] {
			if strings.EqualFold(prev.Name, h.Name) {
				add = true
				break
			}
		}
		ops = append(ops, headerOp{name: []byte(h.Name), value: []byte(h.Value), add: add})
	}
	return ops
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

// Match returns the route for a normalized host and path, or nil. It
// allocates nothing.
func (s *Snapshot) Match(host, path []byte) *Route {
	vh := s.lookupHost(host)
	if vh == nil {
		return nil
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

// Backends returns the addresses of every backend the snapshot uses.
func (s *Snapshot) Backends() []string {
	out := make([]string, 0, len(s.upstreams))
	for b := range s.upstreams {
		out = append(out, b.Addr())
	}
	sort.Strings(out)
	return out
}

// BackendStates returns the balancer state of every backend the snapshot
// uses, in no particular order.
func (s *Snapshot) BackendStates() []*balancer.Backend {
	out := make([]*balancer.Backend, 0, len(s.upstreams))
	for b := range s.upstreams {
		out = append(out, b)
	}
	return out
}
