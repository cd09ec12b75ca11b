package admin

import (
	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/proxy"
)

// SnapshotStatus is a ready-made StatusSource over the proxy's serving
// snapshot: hosts and paths come from the snapshot's routes (in route
// order), backends from each route's pool with their live state
// (balancer.Backend.Status), and the per-path policy from the routing
// table the snapshot was compiled from. It only reads; it is safe for
// concurrent use when its functions are.
type SnapshotStatus struct {
	// Snapshot returns the snapshot serving now, e.g.
	// (*proxy.Engine).Snapshot. Required.
	Snapshot func() *proxy.Snapshot
	// Upstreams returns the routing table of that snapshot, for the
	// effective to_https, rate_limit, healthcheck and redirect_to of
	// each path. nil (or a nil result) leaves them at their defaults
	// (healthcheck true, the rest zero).
	Upstreams func() *config.Upstreams
	// Certificates returns the ACME-managed names for
	// /status?certificates. nil means none.
	Certificates func() []CertificateStatus
}

var _ StatusSource = SnapshotStatus{}

// Status builds the view; a nil snapshot gives an empty one.
func (s SnapshotStatus) Status() StatusView {
	snap := s.Snapshot()
	var certs []CertificateStatus
	if s.Certificates != nil {
		certs = s.Certificates()
	}
	if snap == nil {
		return StatusView{Certificates: certs}
	}
	var up *config.Upstreams
	if s.Upstreams != nil {
		up = s.Upstreams()
	}
	v := StatusView{Generation: snap.Generation, Digest: snap.Digest, Certificates: certs}
	hostIdx := make(map[string]int)
	for _, r := range snap.Routes {
		if r == nil {
			continue
		}
		i, ok := hostIdx[r.Host]
		if !ok {
			i = len(v.Hosts)
			hostIdx[r.Host] = i
			v.Hosts = append(v.Hosts, HostStatus{Name: r.Host})
		}
		ps := pathPolicy(up, r.Host, r.Prefix, r.Exact)
		ps.Backends = []BackendStatus{}
		if pool := r.Pool(); pool != nil {
			ps.LoadBalance = pool.Kind().String()
			for _, m := range pool.Members() {
				ps.Backends = append(ps.Backends, backendStatus(m))
			}
		}
		v.Hosts[i].Paths = append(v.Hosts[i].Paths, ps)
	}
	return v
}

func backendStatus(m balancer.Member) BackendStatus {
	st := m.Backend.Status()
	return BackendStatus{
		Addr:      st.Addr,
		Weight:    m.Weight,
		Backup:    m.Backup,
		Up:        st.Up,
		Ejected:   st.Ejected,
		Proto:     st.Proto.String(),
		TLS:       st.Proto.Has(balancer.ProtoTLS),
		HTTP2:     st.Proto&(balancer.ProtoH2|balancer.ProtoH2C) != 0,
		InFlight:  st.InFlight,
		Requests:  st.Requests,
		Failures:  st.Failures,
		LastCheck: st.LastCheck,
		LastError: st.LastError,
	}
}

// pathPolicy returns the effective policy of host's path prefix (an
// exact path when exact is set) in up: the path's setting, else the
// host's, else the global one.
func pathPolicy(up *config.Upstreams, host, prefix string, exact bool) PathStatus {
	ps := PathStatus{Prefix: prefix, HealthCheck: true}
	if exact {
		ps.Prefix = "=" + prefix
	}
	if up == nil {
		return ps
	}
	for hi := range up.Hosts {
		h := &up.Hosts[hi]
		if h.Name != host {
			continue
		}
		for pi := range h.Paths {
			p := &h.Paths[pi]
			if p.Prefix != prefix || (p.Match == config.MatchExact) != exact {
				continue
			}
			levels := [3]*config.Policy{&p.Policy, &h.Policy, &up.Policy}
			for _, l := range levels {
				if l.ToHTTPS != nil {
					ps.ToHTTPS = *l.ToHTTPS
					break
				}
			}
			for _, l := range levels {
				if l.RateLimit > 0 {
					ps.RateLimit = l.RateLimit
					break
				}
			}
			ps.HealthCheck = p.HealthCheck == nil || *p.HealthCheck
			ps.RedirectTo = p.RedirectTo
			ps.LoadBalance = p.LoadBalance
			return ps
		}
	}
	return ps
}
