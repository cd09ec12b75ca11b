// Package consultest is an in-process emulator of the parts of Consul's
// HTTP API that aralez uses, for tests: Debian ships no Consul agent, so
// tests run the real github.com/hashicorp/consul/api client against a
// Server on 127.0.0.1.
//
// Endpoints: GET /v1/health/service/{name} (every instance with its
// node, service, tags, meta and one check; ?passing keeps the passing
// ones) and GET /v1/catalog/services (service names and the union of
// their instances' tags). Tests register instances with Set or
// SetInstances and flip checks with SetCheck.
//
// It also serves the KV store with sessions (create, renew, destroy,
// info; KV acquire, release and cas) that consul/api's KV methods and
// its Lock use, for ACME storage shared by a fleet.
//
// It emulates Consul's blocking queries: every change bumps one global
// index (real Consul keeps one per table; a shared one only wakes more
// queries, which answer with unchanged data), and a request whose
// ?index equals the current one is held until a change, its ?wait (or
// 5 minutes) elapses, the client goes away, or the Server is closed.
// Unknown paths answer 404 and are counted in Counts.Unknown.
//
// It is test-only code: nothing outside _test.go files may import it.
package consultest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Server is a Consul HTTP API emulator listening on 127.0.0.1. Its
// methods are safe for concurrent use. A Server must not be copied.
type Server struct {
	srv *httptest.Server
	mux *http.ServeMux

	mu sync.Mutex // guards everything below
	// index is the blocking-query index; it only grows.
	index uint64
	// services holds each service's instances; a service without
	// instances is absent.
	services map[string][]Instance
	// kv is the KV store; sessions the live sessions by ID.
	kv       map[string]*api.KVPair
	sessions map[string]*api.SessionEntry
	// status, when non-zero, is the status every answer fails with.
	status  int
	changed chan struct{} // closed and replaced on every change
	counts  Counts
	quit    chan struct{} // closed by Close: ends held queries
	closed  bool
}

// Counts is what a Server has seen since it started.
type Counts struct {
	// Requests is the number of requests on any path.
	Requests int
	// Passing is the number of requests that carried ?passing.
	Passing int
	// Unknown is the number of requests for an endpoint the Server does
	// not emulate.
	Unknown int
	// KVWrites is the number of KV PUT requests (values, acquire,
	// release), Sessions the number of sessions created.
	KVWrites, Sessions int
	// Tokens counts requests by their X-Consul-Token header ("" when
	// absent).
	Tokens map[string]int
}

// NewServer starts a Server on a free loopback port and closes it when
// the test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("consultest: listening: %v", err)
	}
	return NewServerOn(tb, ln)
}

// NewServerOn starts a Server on ln (for a test that brings a Consul
// back on the address of one it closed) and closes it when the test
// ends. The Server owns ln from then on.
func NewServerOn(tb testing.TB, ln net.Listener) *Server {
	tb.Helper()
	s := &Server{
		mux:      http.NewServeMux(),
		index:    10,
		services: map[string][]Instance{},
		kv:       map[string]*api.KVPair{},
		sessions: map[string]*api.SessionEntry{},
		changed:  make(chan struct{}),
		counts:   Counts{Tokens: map[string]int{}},
		quit:     make(chan struct{}),
	}
	s.mux.HandleFunc("GET /v1/health/service/{name}", s.health)
	s.mux.HandleFunc("GET /v1/catalog/services", s.catalogServices)
	s.kvRoutes()
	s.mux.HandleFunc("/", s.unknown)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	tb.Cleanup(s.Close)
	return s
}

// URL returns the Server's base URL, "http://127.0.0.1:port".
func (s *Server) URL() string { return s.srv.URL }

// Addr returns the Server's "127.0.0.1:port".
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Close ends held queries, drops client connections and stops the
// Server. It may be called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Set replaces the instances of service name with passing, untagged
// ones and wakes held queries. An instance is "address:port", or
// "@address:port" for one registered without a service address (its
// node's address is then address). Instance i runs on node "node<i>"
// and has the ID name<i>.
func (s *Server) Set(name string, instances ...string) {
	ins := make([]Instance, 0, len(instances))
	for _, in := range instances {
		host, port, _ := net.SplitHostPort(in)
		p, _ := strconv.Atoi(port)
		i := Instance{Address: host, Port: p}
		if node, ok := strings.CutPrefix(host, "@"); ok {
			i.Address, i.NodeAddress = "", node
		}
		ins = append(ins, i)
	}
	s.SetInstances(name, ins...)
}

// SetStatus makes every answer fail with status (0: answer normally)
// and wakes held queries.
func (s *Server) SetStatus(status int) {
	s.mu.Lock()
	s.status = status
	s.bumpLocked()
	s.mu.Unlock()
}

// Counts returns a copy of what the Server has seen.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	c.Tokens = make(map[string]int, len(s.counts.Tokens))
	for k, v := range s.counts.Tokens {
		c.Tokens[k] = v
	}
	return c
}

// bumpLocked records a change: the index moves on and held queries
// wake. s.mu must be held.
func (s *Server) bumpLocked() {
	s.index++
	close(s.changed)
	s.changed = make(chan struct{})
}

// serve counts the request, answers with the emulated failure if one is
// set, and dispatches it.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Requests++
	s.counts.Tokens[r.Header.Get("X-Consul-Token")]++
	if _, ok := r.URL.Query()["passing"]; ok {
		s.counts.Passing++
	}
	st := s.status
	s.mu.Unlock()
	if st != 0 {
		http.Error(w, "emulated failure", st)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) unknown(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Unknown++
	s.mu.Unlock()
	http.NotFound(w, r)
}

// blocking answers r as a Consul blocking query: it waits until the
// index passes the request's ?index (or ?wait elapses), then writes
// X-Consul-Index and the JSON of answer, which runs with s.mu held and
// must return values it does not share with later changes. It
// answers with the emulated failure when one is set meanwhile, and
// writes nothing when the client goes away or the Server closes.
func (s *Server) blocking(w http.ResponseWriter, r *http.Request, answer func() any) {
	idx, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil || wait <= 0 {
		wait = 5 * time.Minute
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if s.status != 0 {
			st := s.status
			s.mu.Unlock()
			http.Error(w, "emulated failure", st)
			return
		}
		if s.index > idx {
			v := answer()
			cur := s.index
			s.mu.Unlock()
			w.Header().Set("X-Consul-Index", strconv.FormatUint(cur, 10))
			if _, nf := v.(notFound); nf {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(v)
			return
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			// Unchanged: answer with the same index.
			idx = 0
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		}
	}
}
