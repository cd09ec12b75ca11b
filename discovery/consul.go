package discovery

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/aralez-go/aralez/config"
)

// DefaultConsulInterval is Consul's default poll interval: the pause
// after a failed round before retrying, and the least time between two
// queries of a service whose index did not change (the poll fallback for
// a server that does not hold blocking queries).
const DefaultConsulInterval = 5 * time.Second

// DefaultConsulWait is how long Consul may hold a blocking query open
// when nothing changes (Consul's own default; its maximum is 10m).
const DefaultConsulWait = 5 * time.Minute

// ConsulOptions tunes a Consul source. The zero value is ready to use.
type ConsulOptions struct {
	// Interval is the retry pause after a failed round and the poll
	// fallback period. Zero means DefaultConsulInterval.
	Interval time.Duration
	// Wait is the blocking-query wait sent to Consul; a change is
	// reported as soon as Consul answers, so Wait only bounds how long an
	// unchanged query stays open. Zero means DefaultConsulWait.
	Wait time.Duration
	// Logger receives failures and recoveries. Nil means slog.Default().
	Logger *slog.Logger
}

// Consul discovers backends from Consul's health API, in one of two
// modes.
//
// With a consul.services list, for every entry it watches GET
// /v1/health/service/<upstream>?passing with blocking queries, and maps
// each passing instance to a server "address:port" of the entry's host
// and path, where address is the instance's Service.Address, else its
// Node.Address, and the weight is the instance's Weights.Passing
// (default 1). A service with no passing instance keeps its path with no
// servers, so that its host answers 503.
//
// Without one (tag mode, as Aralez's newest releases), it watches GET
// /v1/catalog/services and routes every service tagged
// ConsulServiceTag: each of its instances that carries the tag declares
// its host, path and policies in Aralez's aralez.* tags or in service
// meta (see parseConsulTags), and the passing ones among them are the
// servers. Tags are filtered here, not by a server-side filter
// expression. An instance with bad tags is skipped with a log line
// naming the service; the others keep serving. A service that loses the
// tag, or its last instance, loses its routes.
//
// Servers are sorted by address so that the same instances always give
// the same table. It emits complete tables: Merge of the file-defined
// table and the discovered hosts. The first table is emitted once every
// watched service has answered at least once; later ones only when the
// discovered set changed (by Digest).
//
// When Consul fails (unreachable, 5xx, ACL denied) the failure is logged
// once, nothing is emitted, and the last table keeps serving; the query
// is retried every Interval and a recovery is logged. With several
// servers a failed query moves on to the next one in order, and the
// source stays on the one that answers. The ACL token is sent as
// X-Consul-Token on every call and never logged. Settings the consul
// block leaves unset take the Consul client's environment variables
// (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, CONSUL_HTTP_SSL,
// …).
//
// A Consul works off the request path; its goroutines end when Run's
// context ends. Run may be called once at a time; SetBase at any time.
// A Consul must not be copied.
type Consul struct {
	base     baseTable
	services []config.ConsulService
	clients  []*api.Client
	addrs    []string
	interval time.Duration
	wait     time.Duration
	log      *slog.Logger
}

var _ Source = (*Consul)(nil)

// NewConsul returns a Consul source for c whose tables extend base (the
// file-defined table; nil means empty). A nil c, or one without
// services, means tag mode. Empty c.Servers means the Consul client's
// default: CONSUL_HTTP_ADDR, else 127.0.0.1:8500. A server is host:port
// (http) or an http, https or unix URL. It returns an error naming the
// server whose address is malformed; it does no network I/O. base and c
// must not be changed afterwards.
func NewConsul(base *config.Upstreams, c *config.Consul, o ConsulOptions) (*Consul, error) {
	if c == nil {
		c = &config.Consul{}
	}
	s := &Consul{
		services: c.Services,
		interval: cmp.Or(o.Interval, DefaultConsulInterval),
		wait:     cmp.Or(o.Wait, DefaultConsulWait),
		log:      o.Logger,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.base.init(base)
	servers := c.Servers
	if len(servers) == 0 {
		servers = []string{""}
	}
	for _, addr := range servers {
		cc := api.DefaultConfig()
		if addr != "" {
			cc.Address = addr
		}
		if c.Token != "" {
			cc.Token = c.Token
		}
		cl, err := api.NewClient(cc)
		if err != nil {
			return nil, fmt.Errorf("consul: server %q: %w", addr, err)
		}
		s.clients = append(s.clients, cl)
		s.addrs = append(s.addrs, cc.Address)
	}
	return s, nil
}

// Name returns "consul".
func (c *Consul) Name() string { return "consul" }

// SetBase replaces the file-defined table that discovered hosts are
// merged into (after the upstreams file was reloaded with the same
// consul block; a changed block needs a new Consul). Run then emits the
// merged table again even if no instance changed: at once when every
// service has answered, else with the first complete answer. up must
// not be changed afterwards. It never blocks and is safe for concurrent
// use with Run.
func (c *Consul) SetBase(up *config.Upstreams) { c.base.set(up) }

// consulResult is one successful answer for service i.
type consulResult struct {
	i       int
	servers []config.Server
}

// Run watches every mapped (or tagged) service until ctx is done, then
// returns nil. It never returns an error: an unreachable Consul is
// retried.
func (c *Consul) Run(ctx context.Context, out chan<- Update) error {
	if len(c.services) == 0 {
		return c.runTagged(ctx, out)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	results := make(chan consulResult)
	for i := range c.services {
		wg.Go(func() { c.watch(ctx, i, results) })
	}

	current := make([][]config.Server, len(c.services))
	seen := make([]bool, len(c.services))
	pending := len(c.services)
	em := emitter{source: c.Name(), base: &c.base, out: out}
	emit := func(force bool) bool { return em.send(ctx, c.hosts(current), force) }
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.base.wake:
			em.force = true
			if pending == 0 && !emit(true) {
				return nil
			}
		case r := <-results:
			current[r.i] = r.servers
			if !seen[r.i] {
				seen[r.i] = true
				pending--
			}
			if pending == 0 && !emit(false) {
				return nil
			}
		}
	}
}

// hosts builds the discovered hosts from the current server lists.
func (c *Consul) hosts(current [][]config.Server) []config.Host {
	names := make([]string, len(c.services))
	paths := make([]config.Path, len(c.services))
	for i, s := range c.services {
		names[i] = s.Proxy
		paths[i] = servicePath(s.Path, s.Policy, s.RedirectTo, current[i], s.Pos)
	}
	return serviceHosts(names, paths)
}

// watch runs the blocking health query of service i until ctx is done.
func (c *Consul) watch(ctx context.Context, i int, results chan<- consulResult) {
	name := c.services[i].RealName
	follow(ctx, c, name, func(ctx context.Context, cl *api.Client, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
		return cl.Health().Service(name, "", true, q)
	}, func(entries []*api.ServiceEntry) bool {
		select {
		case results <- consulResult{i: i, servers: consulServers(entries)}:
			return true
		case <-ctx.Done():
			return false
		}
	})
}

// consulQuery is one blocking query of a Consul API: q carries the
// index, the wait and the context.
type consulQuery[T any] func(ctx context.Context, cl *api.Client, q *api.QueryOptions) (T, *api.QueryMeta, error)

// follow runs the blocking-query loop of query until ctx is done,
// handing every answer to deliver, which reports whether ctx is still
// live. A failed query moves on to the next server in order; when every
// server failed, the failure is logged once (naming what, never the
// token) and retried every Interval while the last answer keeps
// serving. A panic in the loop is logged and ends it.
func follow[T any](ctx context.Context, c *Consul, what string, query consulQuery[T], deliver func(T) bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("consul watcher panicked", "service", what, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	server := 0
	var index uint64
	failing := ""
	for ctx.Err() == nil {
		start := time.Now()
		v, meta, err := runQuery(ctx, c, server, index, query)
		if err != nil {
			// Try the remaining servers in order before giving up on
			// this round.
			for n := 1; n < len(c.clients) && err != nil && ctx.Err() == nil; n++ {
				server = (server + 1) % len(c.clients)
				index = 0
				v, meta, err = runQuery(ctx, c, server, index, query)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if msg := err.Error(); msg != failing {
				failing = msg
				c.log.Warn("consul query failed; keeping the last table", "service", what, "server", c.addrs[server], "err", err, "retry_seconds", c.interval.Seconds())
			}
			index = 0
			if !sleepCtx(ctx, c.interval) {
				return
			}
			continue
		}
		if failing != "" {
			failing = ""
			c.log.Info("consul query recovered", "service", what, "server", c.addrs[server])
		}
		prev := index
		index = nextIndex(prev, meta.LastIndex)
		if !deliver(v) {
			return
		}
		// Pace the loop: a server that does not hold the query (or an
		// index that did not move) is polled every interval; a change is
		// followed at once by the next blocking query, but not more
		// often than every Interval/10, at most 100ms (a flapping
		// service then costs at most ten queries a second).
		gap := min(c.interval/10, 100*time.Millisecond)
		if index == prev {
			gap = c.interval
		}
		if !sleepCtx(ctx, gap-time.Since(start)) {
			return
		}
	}
}

// runQuery runs one blocking query against server s of c.
func runQuery[T any](ctx context.Context, c *Consul, s int, index uint64, query consulQuery[T]) (T, *api.QueryMeta, error) {
	// Bound the request: Consul may add up to wait/16 of jitter.
	qctx, cancel := context.WithTimeout(ctx, c.wait+c.wait/8+c.interval)
	defer cancel()
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: c.wait}).WithContext(qctx)
	return query(qctx, c.clients[s], q)
}

// nextIndex applies Consul's rules for blocking-query indexes: an index
// that went backwards resets the wait, and the index is at least 1.
func nextIndex(prev, got uint64) uint64 {
	if got < prev {
		return 0
	}
	return max(got, 1)
}

// consulServers maps passing instances to servers sorted by address.
func consulServers(entries []*api.ServiceEntry) []config.Server {
	out := make([]config.Server, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Service.Port <= 0 {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		if host == "" {
			continue
		}
		addr := net.JoinHostPort(host, strconv.Itoa(e.Service.Port))
		w := e.Service.Weights.Passing
		if w <= 0 {
			w = config.DefaultWeight
		}
		out = append(out, config.Server{Address: addr, Weight: w})
	}
	slices.SortFunc(out, func(a, b config.Server) int { return cmp.Compare(a.Address, b.Address) })
	return slices.CompactFunc(out, func(a, b config.Server) bool { return a.Address == b.Address })
}

// sleepCtx waits d (nothing when d <= 0) and reports whether ctx is
// still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
