package consultest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
)

// The KV store and sessions, as far as consul/api's KV methods and its
// Lock (sessions, acquire, release, blocking reads) use them. Sessions
// never expire by TTL here: a test ends a session with Destroy or
// DestroySession.

// kvRoutes registers the KV and session endpoints.
func (s *Server) kvRoutes() {
	s.mux.HandleFunc("GET /v1/kv/{key...}", s.kvGet)
	s.mux.HandleFunc("PUT /v1/kv/{key...}", s.kvPut)
	s.mux.HandleFunc("DELETE /v1/kv/{key...}", s.kvDelete)
	s.mux.HandleFunc("PUT /v1/session/create", s.sessionCreate)
	s.mux.HandleFunc("PUT /v1/session/renew/{id}", s.sessionRenew)
	s.mux.HandleFunc("PUT /v1/session/destroy/{id}", s.sessionDestroy)
	s.mux.HandleFunc("GET /v1/session/info/{id}", s.sessionInfo)
}

// notFound makes blocking answer 404 (with the index), as Consul does
// for a missing key.
type notFound struct{}

// KV returns a copy of the value at key and whether it exists.
func (s *Server) KV(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.kv[key]
	if !ok {
		return nil, false
	}
	return slices.Clone(p.Value), true
}

// KVKeys returns the sorted keys under prefix.
func (s *Server) KVKeys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keysLocked(prefix, "")
}

// keysLocked lists keys under prefix; with a separator, keys below the
// next separator fold into one "dir/" entry. s.mu must be held.
func (s *Server) keysLocked(prefix, sep string) []string {
	var out []string
	for k := range s.kv {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		if sep != "" {
			if i := strings.Index(rest, sep); i >= 0 {
				k = prefix + rest[:i+len(sep)]
			}
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Server) kvGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	_, recurse := q["recurse"]
	_, keys := q["keys"]
	s.blocking(w, r, func() any {
		switch {
		case keys:
			if ks := s.keysLocked(key, q.Get("separator")); len(ks) > 0 {
				return ks
			}
			return notFound{}
		case recurse:
			var out []*api.KVPair
			for _, k := range s.keysLocked(key, "") {
				p := *s.kv[k]
				out = append(out, &p)
			}
			if len(out) == 0 {
				return notFound{}
			}
			return out
		}
		p, ok := s.kv[key]
		if !ok {
			return notFound{}
		}
		c := *p
		return []*api.KVPair{&c}
	})
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	flags, _ := strconv.ParseUint(q.Get("flags"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.KVWrites++
	cur, exists := s.kv[key]
	ok := true
	switch {
	case q.Has("cas"):
		idx, _ := strconv.ParseUint(q.Get("cas"), 10, 64)
		ok = idx == 0 && !exists || exists && cur.ModifyIndex == idx
	case q.Has("acquire"):
		id := q.Get("acquire")
		if _, live := s.sessions[id]; !live || exists && cur.Session != "" && cur.Session != id {
			ok = false
		}
	case q.Has("release"):
		ok = exists && cur.Session == q.Get("release")
	}
	if ok {
		s.index++
		p := &api.KVPair{Key: key, Value: body, Flags: flags, CreateIndex: s.index, ModifyIndex: s.index}
		if exists {
			p.CreateIndex, p.LockIndex, p.Session = cur.CreateIndex, cur.LockIndex, cur.Session
		}
		switch {
		case q.Has("acquire"):
			if p.Session != q.Get("acquire") {
				p.LockIndex++
			}
			p.Session = q.Get("acquire")
		case q.Has("release"):
			p.Session = ""
		}
		s.kv[key] = p
		s.index-- // bumpLocked moves it on again
		s.bumpLocked()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ok)
}

func (s *Server) kvDelete(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := true
	switch {
	case q.Has("recurse"):
		for _, k := range s.keysLocked(key, "") {
			delete(s.kv, k)
		}
	case q.Has("cas"):
		idx, _ := strconv.ParseUint(q.Get("cas"), 10, 64)
		if p, exists := s.kv[key]; exists && p.ModifyIndex == idx {
			delete(s.kv, key)
		} else {
			ok = false
		}
	default:
		delete(s.kv, key)
	}
	s.bumpLocked()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ok)
}

func (s *Server) sessionCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name, TTL, Behavior string
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	s.mu.Lock()
	s.sessions[id] = &api.SessionEntry{ID: id, Name: req.Name, TTL: req.TTL, Behavior: req.Behavior}
	s.counts.Sessions++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"ID": id})
}

func (s *Server) sessionRenew(w http.ResponseWriter, r *http.Request) {
	s.sessionAnswer(w, r.PathValue("id"))
}

func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	s.sessionAnswer(w, r.PathValue("id"))
}

func (s *Server) sessionAnswer(w http.ResponseWriter, id string) {
	s.mu.Lock()
	se, ok := s.sessions[id]
	var c api.SessionEntry
	if ok {
		c = *se
	}
	idx := s.index
	s.mu.Unlock()
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	if !ok {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode([]*api.SessionEntry{&c})
}

func (s *Server) sessionDestroy(w http.ResponseWriter, r *http.Request) {
	s.DestroySession(r.PathValue("id"))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(true)
}

// DestroySession ends session id, as its TTL running out would: the
// locks it holds are released (Consul's default behavior) and held
// queries wake.
func (s *Server) DestroySession(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
	for _, p := range s.kv {
		if p.Session == id {
			p.Session = ""
		}
	}
	s.bumpLocked()
}

// Sessions returns the IDs of the live sessions.
func (s *Server) Sessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.sessions {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
