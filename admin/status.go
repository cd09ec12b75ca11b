package admin

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"
)

// StatusSource is the read-only view behind GET /status. The process
// implements it from the serving snapshot and its backends' state; it
// must be safe to call from any goroutine and return a value the caller
// may keep.
type StatusSource interface {
	// Status returns a point-in-time copy of the routing state.
	Status() StatusView
}

// StatusView is the routing state /status reports: the config
// generation and every host with its paths and backends.
type StatusView struct {
	// Generation is the config generation serving now; it is sent as
	// the X-Config-Generation header.
	Generation uint64
	// Digest identifies the routing table serving now; it is sent as the
	// X-Config-Digest header.
	Digest string
	// Hosts are the configured hosts ("DEFAULT" and wildcards included).
	Hosts []HostStatus
	// Certificates are the ACME-managed names, for /status?certificates.
	Certificates []CertificateStatus
}

// HostStatus is one host of a StatusView.
type HostStatus struct {
	// Name is the host key as configured.
	Name string
	// Paths are the host's path entries.
	Paths []PathStatus
}

// PathStatus is one path entry of a host, with its effective policy.
type PathStatus struct {
	// Prefix is the configured path prefix; an exact path (a Kubernetes
	// Ingress path of type Exact) is written "=" followed by the path.
	Prefix string
	// LoadBalance is the policy name ("round_robin", "least_conn", …).
	LoadBalance string
	// RedirectTo is the redirect target; empty when the path proxies.
	RedirectTo string
	// ToHTTPS is true when plain-HTTP requests are redirected to https.
	ToHTTPS bool
	// RateLimit is requests per second per client; 0 means none.
	RateLimit int
	// HealthCheck is false when the path's servers are exempt from
	// active checks.
	HealthCheck bool
	// Backends are the configured servers with their live state.
	Backends []BackendStatus
}

// BackendStatus is one backend's configuration and live state.
type BackendStatus struct {
	// Addr is host:port as configured.
	Addr string
	// Weight is the configured round-robin weight.
	Weight int
	// Backup is true for a backup server.
	Backup bool
	// Up is the active health state.
	Up bool
	// Ejected is true while passively ejected after failures.
	Ejected bool
	// Proto is the detected protocol ("unknown", "http1", "h2c",
	// "tls+http1", "tls+h2").
	Proto string
	// TLS is true when the backend speaks TLS.
	TLS bool
	// HTTP2 is true when the backend speaks HTTP/2 (h2 or h2c).
	HTTP2 bool
	// InFlight is the number of requests in progress.
	InFlight int64
	// Requests is the number of requests sent since the backend was
	// first configured.
	Requests uint64
	// Failures is the current count of consecutive passive failures.
	Failures uint32
	// LastCheck is when the last active probe finished; zero if never.
	LastCheck time.Time
	// LastError is the last failed probe's error; empty after a success.
	LastError string
}

// liveBackend is one backend in /status?live: Aralez's shape.
type liveBackend struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
	Alive   bool   `json:"alive"`
}

// fullBackend is one backend in /status?all.
type fullBackend struct {
	Address   string     `json:"address"`
	Port      int        `json:"port"`
	Weight    int        `json:"weight"`
	Backup    bool       `json:"backup"`
	Alive     bool       `json:"alive"`
	Up        bool       `json:"up"`
	Ejected   bool       `json:"ejected"`
	IsSSL     bool       `json:"is_ssl"`
	IsHTTP2   bool       `json:"is_http2"`
	Proto     string     `json:"proto"`
	InFlight  int64      `json:"in_flight"`
	Requests  uint64     `json:"requests"`
	Failures  uint32     `json:"failures"`
	LastCheck *time.Time `json:"last_check"`
	LastError string     `json:"last_error,omitempty"`
}

type livePath struct {
	Backends []liveBackend `json:"backends"`
}

type fullPath struct {
	Backends    []fullBackend `json:"backends"`
	Requests    uint64        `json:"requests"`
	InFlight    int64         `json:"in_flight"`
	LoadBalance string        `json:"load_balance,omitempty"`
	ToHTTPS     bool          `json:"to_https"`
	RateLimit   *int          `json:"rate_limit"`
	HealthCheck bool          `json:"healthcheck"`
	RedirectTo  string        `json:"redirect_to,omitempty"`
}

func splitAddr(addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// liveJSON builds the /status?live document:
//
//	{"host": {"/path": {"backends": [{"address": "127.0.0.1", "port": 8000, "alive": true}]}}}
//
// alive is Up and not Ejected.
func liveJSON(v StatusView) map[string]map[string]livePath {
	out := make(map[string]map[string]livePath, len(v.Hosts))
	for _, h := range v.Hosts {
		paths := make(map[string]livePath, len(h.Paths))
		for _, p := range h.Paths {
			lp := livePath{Backends: make([]liveBackend, 0, len(p.Backends))}
			for _, b := range p.Backends {
				a, port := splitAddr(b.Addr)
				lp.Backends = append(lp.Backends, liveBackend{Address: a, Port: port, Alive: b.Up && !b.Ejected})
			}
			paths[p.Prefix] = lp
		}
		out[h.Name] = paths
	}
	return out
}

// allJSON builds the /status?all document: the same host → path map,
// each path with its policy, request and in-flight totals, and each
// backend with its configuration and live state:
//
//	{"host": {"/path": {
//	    "backends": [{"address": "127.0.0.1", "port": 8000, "weight": 1, "backup": false,
//	                  "alive": true, "up": true, "ejected": false, "is_ssl": false,
//	                  "is_http2": false, "proto": "http1", "in_flight": 0, "requests": 12,
//	                  "failures": 0, "last_check": "2026-11-29T17:31:49Z", "last_error": "…"}],
//	    "requests": 12, "in_flight": 0, "load_balance": "round_robin",
//	    "to_https": false, "rate_limit": null, "healthcheck": true,
//	    "redirect_to": "https://…"}}}
//
// rate_limit is null when none applies; last_check is null before the
// first probe; last_error and redirect_to are left out when empty.
func allJSON(v StatusView) map[string]map[string]fullPath {
	out := make(map[string]map[string]fullPath, len(v.Hosts))
	for _, h := range v.Hosts {
		paths := make(map[string]fullPath, len(h.Paths))
		for _, p := range h.Paths {
			fp := fullPath{
				Backends:    make([]fullBackend, 0, len(p.Backends)),
				LoadBalance: p.LoadBalance,
				ToHTTPS:     p.ToHTTPS,
				HealthCheck: p.HealthCheck,
				RedirectTo:  p.RedirectTo,
			}
			if p.RateLimit > 0 {
				rl := p.RateLimit
				fp.RateLimit = &rl
			}
			for _, b := range p.Backends {
				a, port := splitAddr(b.Addr)
				fb := fullBackend{
					Address: a, Port: port, Weight: b.Weight, Backup: b.Backup,
					Alive: b.Up && !b.Ejected, Up: b.Up, Ejected: b.Ejected,
					IsSSL: b.TLS, IsHTTP2: b.HTTP2, Proto: b.Proto,
					InFlight: b.InFlight, Requests: b.Requests, Failures: b.Failures,
					LastError: b.LastError,
				}
				if !b.LastCheck.IsZero() {
					t := b.LastCheck.UTC()
					fb.LastCheck = &t
				}
				fp.Requests += b.Requests
				fp.InFlight += b.InFlight
				fp.Backends = append(fp.Backends, fb)
			}
			paths[p.Prefix] = fp
		}
		out[h.Name] = paths
	}
	return out
}

// handleStatus answers GET /status: ?all gives allJSON, anything else
// (?live or nothing) liveJSON.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if s.o.Status == nil {
		http.Error(w, "status not available yet", http.StatusServiceUnavailable)
		return
	}
	v := s.o.Status.Status()
	w.Header().Set("X-Config-Generation", strconv.FormatUint(v.Generation, 10))
	if v.Digest != "" {
		w.Header().Set("X-Config-Digest", v.Digest)
	}
	if _, certs := r.URL.Query()["certificates"]; certs {
		s.handleCertificates(w, v)
		return
	}
	var doc any
	if _, all := r.URL.Query()["all"]; all {
		doc = allJSON(v)
	} else {
		doc = liveJSON(v)
	}
	writeJSON(w, http.StatusOK, doc)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
