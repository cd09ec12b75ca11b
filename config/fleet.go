package config

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults and bounds of the keys for running several instances.
const (
	// DefaultRateLimitSync is how often an instance exchanges its
	// rate-limit counts with the shared store (rate_limit_sync).
	DefaultRateLimitSync = 100 * time.Millisecond
	// MaxRateLimitSync bounds rate_limit_sync: the limits count per
	// second, so a slower exchange would let a fleet overshoot by more
	// than a whole window.
	MaxRateLimitSync = time.Second
	// DefaultRateLimitFleetSize is rate_limit_fleet_size when absent: a
	// limit is not divided.
	DefaultRateLimitFleetSize = 1
	// DefaultRedisKeyPrefix starts every key the rate-limit store writes.
	DefaultRedisKeyPrefix = "aralez:"
)

// Redis is the Redis (or Valkey) server a fleet shares its rate-limit
// counts through: main.yaml's rate_limit_store URL or its redis block.
type Redis struct {
	// Address is the server's host:port.
	Address string
	// Username is the ACL user (Redis 6+); empty means the default user.
	Username string
	// Password authenticates. Load reads it from the environment variable
	// named by PasswordEnv; a rate_limit_store URL may carry it too. Never
	// logged.
	Password string
	// PasswordEnv names the environment variable holding the password
	// (key password_env).
	PasswordEnv string
	// DB is the database number. Default 0.
	DB int
	// TLS connects over TLS (a rediss:// URL), verifying the server
	// against the system roots plus ca_file.
	TLS bool
	// KeyPrefix starts every key. Default DefaultRedisKeyPrefix.
	KeyPrefix string
}

// proxyProtocolVersions are the values of a path's send_proxy_protocol.
var proxyProtocolVersions = []string{"v1", "v2"}

// sendProxyConsistent reports a server address that one path reaches
// with send_proxy_protocol and another without it (or with the other
// version): a backend port either expects the PROXY header or not, and
// its health checks and protocol detection must speak the same way.
func (e *errs) sendProxyConsistent(u *Upstreams) {
	type use struct {
		version      string
		host, prefix string // where it was first seen; the YAML path is built on error only
	}
	first := make(map[string]use)
	pathOf := func(host, prefix string) string { return joinPath(joinPath("upstreams", host), "paths."+prefix) }
	for hi := range u.Hosts { // by index: every reload runs this over every host
		h := &u.Hosts[hi]
		for pi := range h.Paths {
			p := &h.Paths[pi]
			for i, s := range p.Servers {
				f, ok := first[s.Address]
				if !ok {
					first[s.Address] = use{p.SendProxyProtocol, h.Name, p.Prefix}
					continue
				}
				if f.version != p.SendProxyProtocol {
					e.add(s.Pos, indexPath(joinPath(pathOf(h.Name, p.Prefix), "servers"), i),
						"server %q is used with send_proxy_protocol %q here and %q at %s; a backend either expects the PROXY header or not",
						s.Address, p.SendProxyProtocol, f.version, pathOf(f.host, f.prefix))
				}
			}
		}
	}
}

// fleetKeys adds the main.yaml keys for running several instances behind
// one address: PROXY protocol on the listeners and the shared rate-limit
// store.
func fleetKeys(keys map[string]mainHandler) {
	keys["proxy_protocol"] = func(p *mainParser, e entry) {
		if b, ok := p.boolean(e.val, e.path); ok {
			p.m.ProxyProtocol = b
		}
	}
	keys["proxy_protocol_from"] = func(p *mainParser, e entry) {
		p.m.ProxyProtocolFrom = p.prefixes(e.val, e.path)
	}
	keys["rate_limit_store"] = func(p *mainParser, e entry) {
		s, ok := p.str(e.val, e.path)
		if !ok {
			return
		}
		r, msg := parseRedisURL(s)
		if msg != "" {
			p.errorf(e.val, e.path, "%s", msg)
			return
		}
		p.m.RateLimitStore = r
	}
	keys["redis"] = (*mainParser).redisBlock
	keys["rate_limit_sync"] = func(p *mainParser, e entry) {
		if d, ok := p.duration(e.val, e.path); ok {
			if d > MaxRateLimitSync {
				p.errorf(e.val, e.path, "must be at most %v, got %v", MaxRateLimitSync, d)
			}
			p.m.RateLimitSync = d
		}
	}
	keys["rate_limit_fleet_size"] = func(p *mainParser, e entry) {
		if n, ok := p.integer(e.val, e.path, 1, math.MaxInt32); ok {
			p.m.RateLimitFleetSize = int(n)
		}
	}
}

// parseRedisURL reads redis://[[user]:password@]host:port[/db] or
// rediss://… (TLS). It returns a message instead of the value on error.
func parseRedisURL(s string) (*Redis, string) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "redis" && u.Scheme != "rediss" || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Sprintf("want redis://host:port[/db] or rediss://host:port[/db], got %q", redactURL(s))
	}
	if len(u.Query()) > 0 || u.Fragment != "" {
		return nil, fmt.Sprintf("options after ? or # are not supported in %q; use the redis block", redactURL(s))
	}
	r := &Redis{Address: u.Host, TLS: u.Scheme == "rediss"}
	if msg := checkHostPort(r.Address, false); msg != "" {
		return nil, msg
	}
	if u.User != nil {
		r.Username = u.User.Username()
		r.Password, _ = u.User.Password()
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return nil, fmt.Sprintf("the database in %q must be a number >= 0, got %q", redactURL(s), db)
		}
		r.DB = n
	}
	return r, ""
}

// redactURL hides the password of a URL in messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return redact(s)
}

// redisBlock reads the redis block: address, username, password_env, db,
// tls, key_prefix.
func (p *mainParser) redisBlock(e entry) {
	es, ok := p.entries(e.val, e.path)
	if !ok {
		return
	}
	r := &Redis{}
	names := []string{"address", "db", "key_prefix", "password_env", "tls", "username"}
	for _, f := range es {
		switch f.key {
		case "address":
			if s, ok := p.str(f.val, f.path); ok {
				if msg := checkHostPort(s, false); msg != "" {
					p.errorf(f.val, f.path, "%s", msg)
				}
				r.Address = s
			}
		case "username":
			r.Username, _ = p.str(f.val, f.path)
		case "password_env":
			r.PasswordEnv, _ = p.str(f.val, f.path)
		case "db":
			if n, ok := p.integer(f.val, f.path, 0, math.MaxInt32); ok {
				r.DB = int(n)
			}
		case "tls":
			r.TLS, _ = p.boolean(f.val, f.path)
		case "key_prefix":
			r.KeyPrefix, _ = p.str(f.val, f.path)
		default:
			p.unknownKey(f, names)
		}
	}
	if r.Address == "" {
		p.errorf(e.keyN, e.path, "the redis block needs address (host:port)")
	}
	p.m.RateLimitStore = r
}

// fleetCrossChecks reports the rules between the fleet keys.
func (p *mainParser) fleetCrossChecks() {
	m := p.m
	if e, ok := p.seen["proxy_protocol"]; ok && m.ProxyProtocol && len(m.ProxyProtocolFrom) == 0 {
		p.errorf(e.keyN, e.path, "proxy_protocol needs proxy_protocol_from: the load balancers' CIDRs (0.0.0.0/0 and ::/0 to require the header from every peer)")
	}
	if e, ok := p.seen["proxy_protocol_from"]; ok && !m.ProxyProtocol && len(m.ProxyProtocolFrom) > 0 {
		p.errorf(e.keyN, e.path, "proxy_protocol_from needs proxy_protocol: true")
	}
	_, url := p.seen["rate_limit_store"]
	if e, ok := p.seen["redis"]; ok && url {
		p.errorf(e.keyN, e.path, "set rate_limit_store or the redis block, not both")
	}
}

// applyFleetDefaults sets the defaults of the fleet keys.
func (m *Main) applyFleetDefaults() {
	setDur(&m.RateLimitSync, DefaultRateLimitSync)
	setInt(&m.RateLimitFleetSize, DefaultRateLimitFleetSize)
	if m.RateLimitStore != nil && m.RateLimitStore.KeyPrefix == "" {
		m.RateLimitStore.KeyPrefix = DefaultRedisKeyPrefix
	}
}

// validateFleet checks the fleet keys of a Main built in code.
func (m *Main) validateFleet(e *errs) {
	if m.ProxyProtocol && len(m.ProxyProtocolFrom) == 0 {
		e.add(Pos{}, "proxy_protocol", "proxy_protocol needs proxy_protocol_from")
	}
	for i, p := range m.ProxyProtocolFrom {
		if !p.IsValid() {
			e.add(Pos{}, indexPath("proxy_protocol_from", i), "invalid CIDR")
		}
	}
	if m.RateLimitSync <= 0 || m.RateLimitSync > MaxRateLimitSync {
		e.add(Pos{}, "rate_limit_sync", "must be greater than zero and at most %v, got %v", MaxRateLimitSync, m.RateLimitSync)
	}
	if m.RateLimitFleetSize < 1 {
		e.add(Pos{}, "rate_limit_fleet_size", "must be a positive integer, got %d", m.RateLimitFleetSize)
	}
	if r := m.RateLimitStore; r != nil {
		if msg := checkHostPort(r.Address, false); msg != "" {
			e.add(Pos{}, "redis.address", "%s", msg)
		}
		if r.DB < 0 {
			e.add(Pos{}, "redis.db", "must not be negative, got %d", r.DB)
		}
	}
}

// loadFleetEnv reads the Redis password from the environment variable
// that password_env names; it reports a problem when that variable is
// unset.
func (m *Main) loadFleetEnv(lookupEnv func(string) (string, bool)) string {
	r := m.RateLimitStore
	if r == nil || r.PasswordEnv == "" {
		return ""
	}
	v, ok := lookupEnv(r.PasswordEnv)
	if !ok {
		return fmt.Sprintf("the environment variable %s named by password_env is not set", r.PasswordEnv)
	}
	r.Password = v
	return ""
}
