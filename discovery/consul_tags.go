package discovery

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/aralez-go/aralez/config"
)

// Consul tag discovery (no consul.services list): the keys of Aralez's
// tags, written "aralez.<key>=<value>" as service tags or as service
// meta keys "aralez_<key>" (Consul allows no dot in a meta key; the
// dotted form is read too).
const (
	// ConsulServiceTag marks a service (and each instance) for routing.
	ConsulServiceTag = "aralez.service=yes"

	tagPrefix  = "aralez."
	metaPrefix = "aralez_"
)

// consulTagged is the answer of one service's health watcher in tag mode.
type consulTagged struct {
	name    string
	gen     uint64
	entries []*api.ServiceEntry
}

// runTagged is Run in tag mode: a blocking query on the catalog's
// service list picks the services tagged ConsulServiceTag, and one
// blocking health query per such service (all instances, with their
// checks) gives the instances, their tags and meta and their health.
// Watchers start and stop as services gain and lose the tag.
func (c *Consul) runTagged(ctx context.Context, out chan<- Update) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	catalog := make(chan map[string][]string)
	wg.Go(func() {
		follow(ctx, c, "catalog", func(_ context.Context, cl *api.Client, q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
			return cl.Catalog().Services(q)
		}, func(m map[string][]string) bool {
			select {
			case catalog <- m:
				return true
			case <-ctx.Done():
				return false
			}
		})
	})

	type watcher struct {
		gen    uint64
		cancel context.CancelFunc
	}
	watchers := map[string]watcher{}
	answered := map[string][]*api.ServiceEntry{}
	results := make(chan consulTagged)
	var gen uint64
	catalogSeen := false
	logged := map[string]string{} // instance or service → last logged problem
	em := emitter{source: c.Name(), base: &c.base, out: out}
	emit := func(force bool) bool {
		if !catalogSeen || len(answered) < len(watchers) {
			em.force = em.force || force
			return true
		}
		return em.send(ctx, c.taggedHosts(answered, logged), force)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.base.wake:
			if !emit(true) {
				return nil
			}
		case m := <-catalog:
			catalogSeen = true
			for name, w := range watchers {
				if !slices.Contains(m[name], ConsulServiceTag) {
					w.cancel()
					delete(watchers, name)
					delete(answered, name)
				}
			}
			for name, tags := range m {
				if _, ok := watchers[name]; ok || !slices.Contains(tags, ConsulServiceTag) {
					continue
				}
				gen++
				wctx, wcancel := context.WithCancel(ctx)
				watchers[name] = watcher{gen: gen, cancel: wcancel}
				g := gen
				wg.Go(func() { c.watchTagged(wctx, name, g, results) })
			}
			if !emit(false) {
				return nil
			}
		case r := <-results:
			if w, ok := watchers[r.name]; !ok || w.gen != r.gen {
				continue // a stopped watcher's last answer
			}
			answered[r.name] = r.entries
			if !emit(false) {
				return nil
			}
		}
	}
}

// watchTagged runs the blocking health query (every instance, with its
// checks) of a tagged service until ctx is done.
func (c *Consul) watchTagged(ctx context.Context, name string, gen uint64, results chan<- consulTagged) {
	follow(ctx, c, name, func(_ context.Context, cl *api.Client, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
		return cl.Health().Service(name, "", false, q)
	}, func(entries []*api.ServiceEntry) bool {
		select {
		case results <- consulTagged{name: name, gen: gen, entries: entries}:
			return true
		case <-ctx.Done():
			return false
		}
	})
}

// taggedRoute is one route of tag mode while it is built.
type taggedRoute struct {
	service string
	host    string
	path    config.Path
}

// taggedHosts builds the discovered hosts of tag mode. Each instance
// tagged ConsulServiceTag declares its route by its own tags and meta
// (so old and new instances of a rolling update each keep theirs); the
// route of a host and path takes its settings from its instance with
// the lowest ID and its servers from its passing instances. An instance
// with bad tags is skipped; a route claimed by two services goes to the
// first by name. Problems are logged once each (logged remembers them).
func (c *Consul) taggedHosts(answered map[string][]*api.ServiceEntry, logged map[string]string) []config.Host {
	var routes []*taggedRoute
	byKey := map[string]*taggedRoute{}
	seen := map[string]bool{}
	report := func(key, msg string, attrs ...any) {
		seen[key] = true
		if logged[key] == msg {
			return
		}
		logged[key] = msg
		c.log.Warn(msg, attrs...)
	}
	for _, name := range slices.Sorted(maps.Keys(answered)) {
		entries := slices.Clone(answered[name])
		entries = slices.DeleteFunc(entries, func(e *api.ServiceEntry) bool { return e == nil || e.Service == nil })
		slices.SortFunc(entries, func(a, b *api.ServiceEntry) int { return cmp.Compare(a.Service.ID, b.Service.ID) })
		for _, e := range entries {
			host, path, tagged, err := parseConsulTags(e.Service.Tags, e.Service.Meta)
			if !tagged {
				continue
			}
			if err != nil {
				report(name+"/"+e.Service.ID, "consul service skipped: bad aralez tags",
					"service", name, "instance", e.Service.ID, "err", err)
				continue
			}
			key := host + " " + path.Prefix
			r := byKey[key]
			switch {
			case r == nil:
				r = &taggedRoute{service: name, host: host, path: path}
				byKey[key] = r
				routes = append(routes, r)
			case r.service != name:
				report(name+" "+key, "consul service skipped: its host and path are routed to another service",
					"service", name, "host", host, "path", path.Prefix, "routed_to", r.service)
				continue
			}
			if e.Checks.AggregatedStatus() != api.HealthPassing {
				continue
			}
			if s, ok := consulServer(e); ok {
				r.path.Servers = append(r.path.Servers, s)
			}
		}
	}
	for key := range logged {
		if !seen[key] {
			delete(logged, key) // fixed: log it again if it comes back
		}
	}
	names := make([]string, len(routes))
	paths := make([]config.Path, len(routes))
	for i, r := range routes {
		slices.SortFunc(r.path.Servers, func(a, b config.Server) int { return cmp.Compare(a.Address, b.Address) })
		r.path.Servers = slices.CompactFunc(r.path.Servers, func(a, b config.Server) bool { return a.Address == b.Address })
		if r.path.Servers == nil {
			r.path.Servers = []config.Server{}
		}
		names[i], paths[i] = r.host, r.path
	}
	return serviceHosts(names, paths)
}

// consulServer maps one instance to a server, as consulServers does.
func consulServer(e *api.ServiceEntry) (config.Server, bool) {
	if e.Service.Port <= 0 {
		return config.Server{}, false
	}
	host := e.Service.Address
	if host == "" && e.Node != nil {
		host = e.Node.Address
	}
	if host == "" {
		return config.Server{}, false
	}
	w := e.Service.Weights.Passing
	if w <= 0 {
		w = config.DefaultWeight
	}
	return config.Server{Address: net.JoinHostPort(host, strconv.Itoa(e.Service.Port)), Weight: w}, true
}

// parseConsulTags reads the route an instance declares in its tags and
// meta (Aralez's keys, see ConsulServiceTag): tagged reports whether it
// carries ConsulServiceTag at all. Keys:
//
//	aralez.host           host name (required)
//	aralez.path           path prefix (default "/")
//	aralez.rate           rate_limit, requests per second
//	aralez.4xx_rate       x4xx_limit, 4xx responses per second
//	aralez.to_https       to_https, true or false
//	aralez.auth           authorization "type data", e.g. "basic user:pass"
//	aralez.redirect       redirect_to, an http(s) URL
//	aralez.client_header  one "Name: Value" response header (repeatable)
//	aralez.server_header  one "Name: Value" upstream request header (repeatable)
//	aralez.client_headers base64 of a JSON array of "Name: Value" strings
//	aralez.server_headers the same for upstream request headers
//
// A single-valued key given twice with different values, a bad value or
// a missing host is an error; unknown aralez.* keys are ignored, as
// Aralez does.
func parseConsulTags(tags []string, meta map[string]string) (host string, p config.Path, tagged bool, err error) {
	var kv [][2]string
	for _, t := range tags {
		if t == ConsulServiceTag {
			tagged = true
			continue
		}
		if k, v, ok := strings.Cut(t, "="); ok && strings.HasPrefix(k, tagPrefix) {
			kv = append(kv, [2]string{k[len(tagPrefix):], v})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		key, ok := strings.CutPrefix(k, metaPrefix)
		if !ok {
			key, ok = strings.CutPrefix(k, tagPrefix)
		}
		if !ok {
			continue
		}
		if key == "service" {
			tagged = tagged || meta[k] == "yes"
			continue
		}
		kv = append(kv, [2]string{key, meta[k]})
	}
	if !tagged {
		return "", p, false, nil
	}
	single := map[string]string{}
	var errs []error
	p = config.Path{Prefix: config.DefaultPath, LoadBalance: config.DefaultLoadBalance}
	for _, e := range kv {
		key, val := e[0], e[1]
		switch key {
		case "client_header", "server_header":
			h, err := config.ParseHeader(val)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s%s: %w", tagPrefix, key, err))
				continue
			}
			if key == "client_header" {
				p.Policy.ClientHeaders = append(p.Policy.ClientHeaders, h)
			} else {
				p.Policy.ServerHeaders = append(p.Policy.ServerHeaders, h)
			}
			continue
		case "client_headers", "server_headers":
			hs, err := base64Headers(val)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s%s: %w", tagPrefix, key, err))
				continue
			}
			if key == "client_headers" {
				p.Policy.ClientHeaders = append(p.Policy.ClientHeaders, hs...)
			} else {
				p.Policy.ServerHeaders = append(p.Policy.ServerHeaders, hs...)
			}
			continue
		case "host", "path", "rate", "4xx_rate", "to_https", "auth", "redirect":
		default:
			continue
		}
		if prev, dup := single[key]; dup {
			if prev != val {
				errs = append(errs, fmt.Errorf("%s%s given twice: %q and %q", tagPrefix, key, prev, val))
			}
			continue
		}
		single[key] = val
		if err := setConsulKey(&host, &p, key, val); err != nil {
			errs = append(errs, fmt.Errorf("%s%s=%q: %w", tagPrefix, key, val, err))
		}
	}
	if _, ok := single["host"]; !ok {
		errs = append(errs, errors.New("no aralez.host tag"))
	}
	if len(errs) == 0 {
		errs = append(errs, checkRoute(host, p))
	}
	return host, p, true, errors.Join(errs...)
}

// setConsulKey applies one single-valued tag key.
func setConsulKey(host *string, p *config.Path, key, val string) error {
	switch key {
	case "host":
		h, err := config.NormaliseHost(val)
		*host = h
		return err
	case "path":
		p.Prefix = val
	case "rate", "4xx_rate":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			return errors.New("want a whole number of at least 1")
		}
		if key == "rate" {
			p.Policy.RateLimit = n
		} else {
			p.Policy.X4xxLimit = n
		}
	case "to_https":
		b, err := strconv.ParseBool(val)
		if err != nil {
			return errors.New("want true or false")
		}
		p.Policy.ToHTTPS = &b
	case "auth":
		typ, data, _ := strings.Cut(strings.TrimSpace(val), " ")
		a := &config.Auth{Type: typ}
		if data = strings.TrimSpace(data); data != "" {
			a.Data = []string{data}
		}
		p.Policy.Authorization = a
	case "redirect":
		p.RedirectTo = val
	}
	return nil
}

// base64Headers decodes the base64 of a JSON array of "Name: Value"
// strings (Aralez's aralez.client_headers form).
func base64Headers(val string) ([]config.Header, error) {
	raw, err := base64.StdEncoding.DecodeString(val)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(val); err != nil {
			return nil, errors.New("not base64")
		}
	}
	return jsonHeaders(string(raw))
}
