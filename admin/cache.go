package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/aralez-go/aralez/proxy/cache"
)

// CachePurger is the response cache as the config API sees it;
// *cache.Cache implements it.
type CachePurger interface {
	// Invalidate removes the responses stored under one primary key and
	// returns how many it removed.
	Invalidate(key []byte) int
	// Purge removes the responses of host under a path prefix, both
	// schemes, and returns how many it removed.
	Purge(host, prefix string) int
}

var _ CachePurger = (*cache.Cache)(nil)

// handleCachePurge serves POST /cache/purge: by exact URL
// (?url=http://host/path?query) or by host and path prefix
// (?host=H[&prefix=/p], default prefix "/"). It needs the master key.
func (s *Server) handleCachePurge(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	if s.o.Cache == nil {
		plain(w, http.StatusNotFound, "no response cache: cache_size_mb is 0")
		return
	}
	q := r.URL.Query()
	var n int
	switch raw, host := q.Get("url"), q.Get("host"); {
	case raw != "" && host != "":
		plain(w, http.StatusBadRequest, "give url or host, not both")
		return
	case raw != "":
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			plain(w, http.StatusBadRequest, "url must be an absolute http:// or https:// URL")
			return
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		key := cache.AppendKey(nil, u.Scheme == "https", []byte(cacheHost(u.Host)), []byte(path), []byte(u.RawQuery))
		n = s.o.Cache.Invalidate(key)
	case host != "":
		prefix := q.Get("prefix")
		if prefix == "" {
			prefix = "/"
		}
		if prefix[0] != '/' {
			plain(w, http.StatusBadRequest, "prefix must start with /")
			return
		}
		n = s.o.Cache.Purge(cacheHost(host), prefix)
	default:
		plain(w, http.StatusBadRequest, "give url=URL, or host=HOST with an optional prefix=/path")
		return
	}
	s.log.Info("cache purged", "remote", r.RemoteAddr, "url", q.Get("url"), "host", q.Get("host"), "prefix", q.Get("prefix"), "responses", n)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"purged": n})
}

// cacheHost normalizes a host as the proxy does before keying the cache:
// lower case, without a trailing dot, an IPv6 address in brackets, and
// the port kept when one is given (a request whose Host names a port is
// stored apart; without one, Purge also covers every port).
func cacheHost(h string) string {
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			name, port = h[:i+1], h[i+1:]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.Count(h, ":") == 1 {
		name, port = h[:i], h[i:]
	}
	return strings.TrimSuffix(strings.ToLower(name), ".") + port
}
