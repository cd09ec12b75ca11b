package config

import (
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Keys allowed at each level of upstreams.yaml, for suggestions.
var (
	globalKeys = []string{
		"provider", "sticky_sessions", "to_https", "rate_limit", "x4xx_limit",
		"server_headers", "client_headers", "authorization", "allow", "deny",
		"tls_verify", "consul", "kubernetes", "upstreams", "globals", "headers",
		"cache", "cache_bypass",
	}
	hostKeys = []string{"rate_limit", "x4xx_limit", "allow", "deny", "paths"}
	pathKeys = []string{
		"servers", "to_https", "client_headers", "server_headers", "rate_limit",
		"x4xx_limit", "healthcheck", "redirect_to", "authorization",
		"load_balance", "allow", "deny", "tls_verify", "forward_credentials",
		"auth_response_headers", "headers", "ssl", "cache", "cache_bypass",
		"cache_ttl", "send_proxy_protocol", "max_request_body_bytes",
	}
	serviceKeys = []string{
		"hostname", "upstream", "path", "to_https", "rate_limit", "x4xx_limit",
		"client_headers", "server_headers", "headers", "redirect_to",
		"authorization", "proxy", "real",
	}
	consulKeys     = []string{"servers", "services", "token"}
	kubernetesKeys = []string{"servers", "services", "tokenpath", "ingress_class"}
)

// upParser holds the state of one upstreams walk.
type upParser struct {
	*walker
	u *Upstreams
}

// ParseUpstreams parses one upstreams.yaml document (without conf.d).
// name is used as the file in errors and warnings, e.g. "<api>" for a
// document pushed to the config API. It applies defaults and validates.
// A document without hosts is valid and gets a "no routes" warning. The
// error, if any, is an ErrorList with every problem found. It is safe for
// concurrent use; parsing time is linear in len(data).
func ParseUpstreams(name string, data []byte) (*Upstreams, error) {
	u, errs := parseUpstreams(name, data)
	if len(errs) > 0 {
		return nil, errs.err()
	}
	return finishUpstreams(u)
}

// LoadUpstreams reads the upstreams file at path and then every
// conf.d/*.yaml beside it, in file-name order, and merges their hosts.
// A conf.d file holds hosts at its top level (Aralez's split-file
// format); global keys are not allowed there. A host defined in two
// files is an error that names both. The error, if any, is an ErrorList
// with every problem of every file. It is safe for concurrent use.
// (*Cache).LoadUpstreams does the same, parsing only the files whose
// content changed.
func LoadUpstreams(path string) (*Upstreams, error) {
	return loadUpstreams(nil, path)
}

func loadUpstreams(c *Cache, path string) (*Upstreams, error) {
	start := time.Now()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ErrorList{{Pos: Pos{File: path}, Msg: "reading upstreams file: " + err.Error()}}
	}
	return parseWithConfD(c, start, path, data, path)
}

// ParseUpstreamsConfD parses data, named name in errors (e.g. "<api>"
// for a pushed document), as if it were the content of the upstreams
// file at path: conf.d/*.yaml beside path is merged in as LoadUpstreams
// does, so a table pushed to the config API keeps the hosts of conf.d.
// A host defined both in data and in a conf.d file is an error. The
// error, if any, is an ErrorList. It is safe for concurrent use.
func ParseUpstreamsConfD(name string, data []byte, path string) (*Upstreams, error) {
	return parseWithConfD(nil, time.Now(), name, data, path)
}

// parseWithConfD parses the upstreams file's content data, named name,
// and the conf.d files beside path, through c (nil: no cache), and
// merges them; start is when reading began, for Stats.
func parseWithConfD(c *Cache, start time.Time, name string, data []byte, path string) (*Upstreams, error) {
	var all ErrorList
	var st LoadStats
	files := make(map[string]*fileParse)
	read := func(name string, data []byte, parse func(string, []byte) *fileParse) *fileParse {
		fp, fresh := c.parse(name, data, parse)
		files[name] = fp
		st.Files++
		if fresh {
			st.Parsed++
		}
		all = append(all, fp.errs...)
		return fp
	}
	top := read(name, data, parseTopFile)
	dir := filepath.Join(filepath.Dir(path), "conf.d")
	names, err := confFiles(dir)
	if err != nil {
		all = append(all, &FieldError{Pos: Pos{File: dir}, Msg: "reading conf.d: " + err.Error()})
	}
	confd := make([]*fileParse, 0, len(names))
	var buf []byte // one buffer for every file: most are unchanged, their bytes only compared
	for _, f := range names {
		buf, err = readFileInto(f, buf[:0])
		if err != nil {
			all = append(all, &FieldError{Pos: Pos{File: f}, Msg: "reading conf.d file: " + err.Error()})
			continue
		}
		confd = append(confd, read(f, buf, parseConfDFile))
	}
	c.keep(files)
	merged := time.Now()
	st.Parse = merged.Sub(start)

	// The table is new; the hosts' content is shared with the cache.
	u := &Upstreams{}
	if top.up != nil {
		*u = *top.up
	}
	n := len(u.Hosts)
	for _, fp := range confd {
		n += len(fp.hosts)
	}
	u.Hosts = append(make([]Host, 0, n), u.Hosts...)
	u.Files = append(make([]string, 0, 1+len(confd)), name)
	u.Warnings = append([]string(nil), u.Warnings...)
	seen := make(map[string]Pos, n)
	for i := range u.Hosts {
		seen[u.Hosts[i].Name] = u.Hosts[i].Pos
	}
	for i, fp := range confd {
		u.Files = append(u.Files, names[i])
		u.Warnings = append(u.Warnings, fp.warns...)
		for _, h := range fp.hosts {
			if first, dup := seen[h.Name]; dup {
				all = append(all, &FieldError{Pos: h.Pos, Path: h.Name, Msg: "host " + strconv.Quote(h.Name) + " is already defined at " + first.String()})
				continue
			}
			seen[h.Name] = h.Pos
			u.Hosts = append(u.Hosts, h)
		}
	}
	if len(all) > 0 {
		return nil, all.err()
	}
	// Each file's hosts were checked when it was parsed; what is left
	// are the settings outside hosts and the rules between hosts.
	if len(u.Hosts) == 0 && (u.Provider == "" || u.Provider == "file") {
		u.Warnings = append(u.Warnings, name+": no routes: no hosts under upstreams; every request gets 404")
	}
	u.ApplyDefaults()
	var e errs
	e.globals(u)
	e.sendProxyConsistent(u)
	if err := e.l.err(); err != nil {
		return nil, err
	}
	st.Merge = time.Since(merged)
	u.Stats = st
	return u, nil
}

// readFileInto appends the content of the file at path to buf.
func readFileInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		buf = slices.Grow(buf, int(st.Size())+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// parseTopFile parses the upstreams file: its table with defaults
// applied, the hosts checked.
func parseTopFile(name string, data []byte) *fileParse {
	u, errs := parseUpstreams(name, data)
	fp := &fileParse{up: u, errs: errs}
	if u != nil && len(errs) == 0 {
		u.ApplyDefaults()
		fp.errs = checkHosts(u.Hosts)
	}
	return fp
}

// parseConfDFile parses a conf.d file: hosts at the top level, with
// defaults applied and checked.
func parseConfDFile(name string, data []byte) *fileParse {
	p := &upParser{walker: newWalker(name), u: &Upstreams{}}
	p.hostsFile(data)
	fp := &fileParse{hosts: p.u.Hosts, warns: p.warns, errs: p.errs}
	if len(p.errs) == 0 {
		p.u.ApplyDefaults()
		fp.errs = checkHosts(p.u.Hosts)
	}
	return fp
}

// checkHosts runs Validate's checks of each host on its own.
func checkHosts(hosts []Host) ErrorList {
	var e errs
	seen := make(map[string]Pos, len(hosts))
	for i := range hosts {
		e.host(&hosts[i], seen)
	}
	return e.l
}

// confFiles lists dir/*.yaml in name order; a missing dir is empty.
func confFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// finishUpstreams adds the empty-table warning, applies defaults and
// validates.
func finishUpstreams(u *Upstreams) (*Upstreams, error) {
	if len(u.Hosts) == 0 && (u.Provider == "" || u.Provider == "file") {
		file := "<upstreams>"
		if len(u.Files) > 0 {
			file = u.Files[0]
		}
		u.Warnings = append(u.Warnings, file+": no routes: no hosts under upstreams; every request gets 404")
	}
	u.ApplyDefaults()
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return u, nil
}

func parseUpstreams(name string, data []byte) (*Upstreams, ErrorList) {
	p := &upParser{walker: newWalker(name), u: &Upstreams{Files: []string{name}}}
	body := p.parse(data)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	es, _ := p.entries(body, "")
	var topHosts []entry
	for _, e := range es {
		if p.isNull(e.val) {
			continue
		}
		if p.policyKey(&p.u.Policy, e) {
			continue
		}
		switch e.key {
		case "provider":
			if s, ok := p.str(e.val, e.path); ok {
				if !slices.Contains(providers, s) {
					p.errorf(e.val, e.path, "%s", enumMsg("provider", s, providers...))
				} else {
					p.u.Provider = s
				}
			}
		case "sticky_sessions":
			p.stickySessions(e)
		case "upstreams":
			p.hosts(e.val, e.path)
		case "consul":
			p.consul(e)
		case "kubernetes":
			p.kubernetes(e)
		case "globals":
			p.globals(e)
		case "headers":
			p.warnf(e.keyN, e.path, "deprecated key: use client_headers (headers were set on responses)")
			p.u.Policy.ClientHeaders = append(p.u.Policy.ClientHeaders, p.headers(e.val, e.path)...)
		default:
			if m := p.resolve(e.val, e.path); m != nil && m.Kind == yaml.MappingNode && hasKey(m, "paths") {
				// Aralez's README and documentation show hosts at the
				// top level; Aralez itself silently ignores them. Serve
				// them as documented, and say where they belong.
				p.warnf(e.keyN, e.path, "host entry at the top level, read as upstreams.%s; move it under \"upstreams:\" (Aralez ignores it there)", e.key)
				topHosts = append(topHosts, e)
				continue
			}
			p.unknownKey(e, globalKeys)
		}
	}
	seen := make(map[string]Pos, len(p.u.Hosts))
	for _, h := range p.u.Hosts {
		seen[h.Name] = h.Pos
	}
	for _, e := range topHosts {
		p.hostEntry(e, seen)
	}
	p.u.Warnings = append(p.u.Warnings, p.warns...)
	return p.u, p.errs
}

// hasKey reports whether the mapping m has the key k (no alias lookup).
func hasKey(m *yaml.Node, k string) bool {
	for i := 0; i < len(m.Content); i += 2 {
		if isScalar(m.Content[i], tagStr) && m.Content[i].Value == k {
			return true
		}
	}
	return false
}

// hostsFile parses a conf.d file: hosts at the top level.
func (p *upParser) hostsFile(data []byte) {
	body := p.parse(data)
	if len(p.errs) > 0 {
		return
	}
	if body != nil && body.Kind == yaml.MappingNode {
		for i := 0; i < len(body.Content); i += 2 {
			if k := body.Content[i]; isScalar(k, tagStr) && slices.Contains(globalKeys, k.Value) {
				p.errorf(k, k.Value, "global key %q is not allowed in a conf.d file; conf.d files hold hosts only", k.Value)
				return
			}
		}
	}
	p.hosts(body, "")
}

// policyKey handles the keys shared by the global, host and path levels.
// It reports whether e was one of them.
func (p *upParser) policyKey(pol *Policy, e entry) bool {
	switch e.key {
	case "to_https":
		if b, ok := p.boolean(e.val, e.path); ok {
			pol.ToHTTPS = &b
		}
	case "tls_verify":
		if b, ok := p.boolean(e.val, e.path); ok {
			pol.TLSVerify = &b
		}
	case "rate_limit":
		if n, ok := p.integer(e.val, e.path, 1, math.MaxInt32); ok {
			pol.RateLimit = int(n)
		}
	case "x4xx_limit":
		if n, ok := p.integer(e.val, e.path, 1, math.MaxInt32); ok {
			pol.X4xxLimit = int(n)
		}
	case "server_headers":
		pol.ServerHeaders = append(pol.ServerHeaders, p.headers(e.val, e.path)...)
	case "client_headers":
		pol.ClientHeaders = append(pol.ClientHeaders, p.headers(e.val, e.path)...)
	case "authorization":
		pol.Authorization = p.auth(e)
	case "allow":
		pol.Allow = p.prefixes(e.val, e.path)
	case "deny":
		pol.Deny = p.prefixes(e.val, e.path)
	case "cache":
		if b, ok := p.boolean(e.val, e.path); ok {
			pol.Cache = &b
		}
	case "cache_bypass":
		items, _ := p.list(e.val, e.path)
		pol.CacheBypass = []string{}
		for i, it := range items {
			ip := indexPath(e.path, i)
			s, ok := p.str(it, ip)
			if !ok {
				continue
			}
			if msg := checkCacheBypass(s); msg != "" {
				p.errorf(it, ip, "%s", msg)
				continue
			}
			pol.CacheBypass = append(pol.CacheBypass, s)
		}
	default:
		return false
	}
	return true
}

// stickySessions reads seconds; the older boolean form is accepted with a
// warning.
func (p *upParser) stickySessions(e entry) {
	if b := p.resolve(e.val, e.path); isScalar(b, tagBool) {
		if strings.EqualFold(b.Value, "true") {
			p.u.StickySessions = DefaultStickySessions
			p.warnf(e.val, e.path, "deprecated boolean form: write the cookie lifetime in seconds; true is read as %d", DefaultStickySessions)
		} else {
			p.warnf(e.val, e.path, "deprecated boolean form: write 0 to disable sticky sessions")
		}
		return
	}
	if n, ok := p.integer(e.val, e.path, 0, math.MaxInt32); ok {
		p.u.StickySessions = int(n)
	}
}

// globals reads the deprecated "globals" block of older Aralez releases:
// headers (set on responses) and authorization ([type, data...]).
func (p *upParser) globals(e entry) {
	p.warnf(e.keyN, e.path, "deprecated key: move globals.headers to client_headers and globals.authorization to authorization {type, data}")
	es, _ := p.entries(p.resolve(e.val, e.path), e.path)
	for _, g := range es {
		if p.isNull(g.val) {
			continue
		}
		switch g.key {
		case "headers":
			p.u.Policy.ClientHeaders = append(p.u.Policy.ClientHeaders, p.headers(g.val, g.path)...)
		case "authorization":
			list, ok := p.strList(g.val, g.path)
			if !ok {
				continue
			}
			if len(list) == 0 {
				p.errorf(g.val, g.path, "want [type, data...]")
				continue
			}
			a := &Auth{Type: list[0], Data: list[1:], Pos: p.pos(g.keyN)}
			if msg := checkAuth(a); msg != "" {
				p.errorf(g.val, g.path, "%s", msg)
				continue
			}
			p.u.Policy.Authorization = a
		default:
			p.unknownKey(g, []string{"headers", "authorization"})
		}
	}
}

// hosts reads the mapping HOST → host entry.
func (p *upParser) hosts(v *yaml.Node, path string) {
	es, _ := p.entries(p.resolve(v, path), path)
	seen := make(map[string]Pos)
	for _, e := range es {
		p.hostEntry(e, seen)
	}
}

// hostEntry reads one HOST key and its entry; seen holds the hosts read
// so far, for duplicates.
func (p *upParser) hostEntry(e entry, seen map[string]Pos) {
	name, msg := normaliseHost(e.key)
	if msg != "" {
		p.errorf(e.keyN, e.path, "%s", msg)
		return
	}
	pos := p.pos(e.keyN)
	if first, dup := seen[name]; dup {
		p.errorf(e.keyN, e.path, "host %q defined twice (first at line %d)", name, first.Line)
		return
	}
	seen[name] = pos
	h := Host{Name: name, Pos: pos}
	p.host(&h, e)
	p.u.Hosts = append(p.u.Hosts, h)
}

func (p *upParser) host(h *Host, he entry) {
	n := p.resolve(he.val, he.path)
	if p.isNull(he.val) {
		p.errorf(he.keyN, he.path, "host has no paths")
		return
	}
	es, ok := p.entries(n, he.path)
	if !ok {
		return
	}
	hasPaths := false
	for _, e := range es {
		if p.isNull(e.val) {
			continue
		}
		switch e.key {
		case "rate_limit", "x4xx_limit", "allow", "deny":
			p.policyKey(&h.Policy, e)
		case "paths":
			hasPaths = true
			p.paths(h, e)
		default:
			p.unknownKey(e, hostKeys)
		}
	}
	if !hasPaths {
		p.errorf(he.keyN, he.path, "host has no paths")
	}
}

func (p *upParser) paths(h *Host, pe entry) {
	es, ok := p.entries(p.resolve(pe.val, pe.path), pe.path)
	if !ok {
		return
	}
	if len(es) == 0 {
		p.errorf(pe.keyN, pe.path, "host has no paths")
	}
	for _, e := range es {
		if msg := checkPathPrefix(e.key); msg != "" {
			p.errorf(e.keyN, e.path, "%s", msg)
			continue
		}
		path := Path{Prefix: e.key, Pos: p.pos(e.keyN)}
		p.path(&path, e)
		h.Paths = append(h.Paths, path)
	}
}

func (p *upParser) path(pt *Path, pe entry) {
	es, ok := p.entries(p.resolve(pe.val, pe.path), pe.path)
	if !ok {
		return
	}
	// A target is servers or redirect_to; a bad one was reported already.
	hasTarget := false
	for _, e := range es {
		if p.isNull(e.val) {
			continue
		}
		if p.policyKey(&pt.Policy, e) {
			continue
		}
		switch e.key {
		case "servers":
			n := len(p.errs)
			pt.Servers = p.servers(e)
			hasTarget = hasTarget || len(pt.Servers) > 0 || len(p.errs) > n
		case "healthcheck":
			if b, ok := p.boolean(e.val, e.path); ok {
				pt.HealthCheck = &b
			}
		case "redirect_to":
			hasTarget = true
			if s, ok := p.str(e.val, e.path); ok {
				if msg := checkHTTPURL(s); msg != "" {
					p.errorf(e.val, e.path, "%s", msg)
				} else {
					pt.RedirectTo = s
				}
			}
		case "load_balance":
			if s, ok := p.str(e.val, e.path); ok {
				if !slices.Contains(loadBalances, s) {
					p.errorf(e.val, e.path, "%s", enumMsg("load_balance", s, loadBalances...))
				} else {
					pt.LoadBalance = s
				}
			}
		case "forward_credentials":
			if b, ok := p.boolean(e.val, e.path); ok {
				pt.ForwardCredentials = b
			}
		case "cache_ttl":
			if n, ok := p.integer(e.val, e.path, 1, math.MaxInt32); ok {
				pt.CacheTTL = int(n)
			}
		case "send_proxy_protocol":
			if s, ok := p.str(e.val, e.path); ok {
				if !slices.Contains(proxyProtocolVersions, s) {
					p.errorf(e.val, e.path, "%s", enumMsg("send_proxy_protocol", s, proxyProtocolVersions...))
				} else {
					pt.SendProxyProtocol = s
				}
			}
		case "max_request_body_bytes":
			if n, ok := p.integer(e.val, e.path, 0, math.MaxInt64); ok {
				pt.MaxRequestBodyBytes = &n
			}
		case "auth_response_headers":
			items, _ := p.list(e.val, e.path)
			pt.AuthResponseHeaders = []string{}
			for i, it := range items {
				ip := indexPath(e.path, i)
				s, ok := p.str(it, ip)
				if !ok {
					continue
				}
				if !isToken(s) {
					p.errorf(it, ip, "header name %q is not a valid token", s)
					continue
				}
				pt.AuthResponseHeaders = append(pt.AuthResponseHeaders, s)
			}
		case "headers":
			// Issue 2 defines a path's legacy `headers` as server_headers.
			p.warnf(e.keyN, e.path, "deprecated key: use server_headers")
			pt.Policy.ServerHeaders = append(pt.Policy.ServerHeaders, p.headers(e.val, e.path)...)
		case "ssl":
			if _, ok := p.boolean(e.val, e.path); ok {
				p.warnf(e.keyN, e.path, "deprecated key, ignored: upstream TLS is detected automatically")
			}
		default:
			p.unknownKey(e, pathKeys)
		}
	}
	if !hasTarget {
		p.errorf(pe.keyN, pe.path, "no servers: give at least one server or redirect_to")
	}
}

func (p *upParser) servers(e entry) []Server {
	items, _ := p.list(e.val, e.path)
	out := make([]Server, 0, len(items))
	seen := make(map[string]int)
	for i, it := range items {
		ip := indexPath(e.path, i)
		s, ok := p.str(it, ip)
		if !ok {
			continue
		}
		srv, msg := parseServer(s)
		if msg != "" {
			p.errorf(it, ip, "%s", msg)
			continue
		}
		srv.Pos = p.pos(it)
		if j, dup := seen[srv.Address]; dup {
			p.warnf(it, ip, "server %s is also servers[%d]; use weight=N to give it more traffic", srv.Address, j)
		}
		seen[srv.Address] = i
		out = append(out, srv)
	}
	return out
}

// headers reads a list of "Name: Value" strings.
func (p *upParser) headers(v *yaml.Node, path string) []Header {
	items, _ := p.list(v, path)
	var out []Header
	for i, it := range items {
		ip := indexPath(path, i)
		s, ok := p.str(it, ip)
		if !ok {
			continue
		}
		h, msg := parseHeader(s)
		if msg != "" {
			p.errorf(it, ip, "%s", msg)
			continue
		}
		out = append(out, h)
	}
	return out
}

// auth reads {type, data}; data is a string or a list of strings.
func (p *upParser) auth(e entry) *Auth {
	es, ok := p.entries(p.resolve(e.val, e.path), e.path)
	if !ok {
		return nil
	}
	a := &Auth{Pos: p.pos(e.keyN)}
	var typeN, dataN *yaml.Node
	good := true
	for _, f := range es {
		if p.isNull(f.val) {
			continue
		}
		switch f.key {
		case "type":
			typeN = f.val
			s, ok := p.str(f.val, f.path)
			good = good && ok
			a.Type = s
		case "data":
			dataN = f.val
			if l := p.resolve(f.val, f.path); l != nil && l.Kind == yaml.SequenceNode {
				l, ok := p.strList(f.val, f.path)
				good = good && ok
				a.Data = l
			} else {
				s, ok := p.str(f.val, f.path)
				good = good && ok
				a.Data = []string{s}
			}
		default:
			p.unknownKey(f, []string{"type", "data"})
			good = false
		}
	}
	if !good {
		return nil
	}
	if typeN == nil {
		p.errorf(e.keyN, e.path, "authorization needs a type: %s", strings.Join(authTypes, ", "))
		return nil
	}
	if !slices.Contains(authTypes, a.Type) {
		p.errorf(typeN, joinPath(e.path, "type"), "%s", enumMsg("authorization type", a.Type, authTypes...))
		return nil
	}
	if msg := checkAuth(a); msg != "" {
		if dataN != nil {
			p.errorf(dataN, joinPath(e.path, "data"), "%s", msg)
		} else {
			p.errorf(e.keyN, e.path, "%s", msg)
		}
		return nil
	}
	return a
}

func (p *upParser) consul(e entry) {
	es, ok := p.entries(p.resolve(e.val, e.path), e.path)
	if !ok {
		return
	}
	c := &Consul{}
	for _, f := range es {
		if p.isNull(f.val) {
			continue
		}
		switch f.key {
		case "servers":
			c.Servers = p.endpoints(f)
		case "token":
			c.Token, _ = p.str(f.val, f.path)
		case "services":
			items, _ := p.list(f.val, f.path)
			for i, it := range items {
				s := p.service(it, indexPath(f.path, i))
				c.Services = append(c.Services, ConsulService{
					Proxy: s.host, Path: s.path, RealName: s.upstream,
					Policy: s.policy, RedirectTo: s.redirect, Pos: s.pos,
				})
			}
		default:
			p.unknownKey(f, consulKeys)
		}
	}
	p.u.Consul = c
}

func (p *upParser) kubernetes(e entry) {
	es, ok := p.entries(p.resolve(e.val, e.path), e.path)
	if !ok {
		return
	}
	k := &Kubernetes{}
	for _, f := range es {
		if p.isNull(f.val) {
			continue
		}
		switch f.key {
		case "servers":
			k.Servers = p.endpoints(f)
		case "tokenpath":
			k.Tokenpath, _ = p.str(f.val, f.path)
		case "ingress_class":
			if v, ok := p.str(f.val, f.path); ok {
				if !isObjectName(v) {
					p.errorf(f.val, f.path, "ingress_class %q is not a Kubernetes object name (lower-case letters, digits, '-' and '.', at most 253)", v)
				}
				k.IngressClass = v
			}
		case "services":
			items, _ := p.list(f.val, f.path)
			for i, it := range items {
				s := p.service(it, indexPath(f.path, i))
				k.Services = append(k.Services, KubernetesService{
					Hostname: s.host, Path: s.path, Upstream: s.upstream,
					Policy: s.policy, RedirectTo: s.redirect, Pos: s.pos,
				})
			}
		default:
			p.unknownKey(f, kubernetesKeys)
		}
	}
	p.u.Kubernetes = k
}

// endpoints reads a list of host:port or http(s) URLs.
func (p *upParser) endpoints(e entry) []string {
	items, _ := p.list(e.val, e.path)
	var out []string
	for i, it := range items {
		ip := indexPath(e.path, i)
		s, ok := p.str(it, ip)
		if !ok {
			continue
		}
		msg := ""
		if strings.Contains(s, "://") {
			msg = checkHTTPURL(s)
		} else {
			msg = checkHostPort(s, false)
		}
		if msg != "" {
			p.errorf(it, ip, "%s", msg)
			continue
		}
		out = append(out, s)
	}
	return out
}

// svc is a Consul or Kubernetes service entry.
type svc struct {
	host, path, upstream, redirect string
	policy                         Policy
	pos                            Pos
}

func (p *upParser) service(v *yaml.Node, path string) svc {
	s := svc{pos: p.pos(v)}
	n := p.resolve(v, path)
	es, ok := p.entries(n, path)
	if !ok {
		return s
	}
	for _, e := range es {
		if p.isNull(e.val) {
			continue
		}
		if p.policyKey(&s.policy, e) {
			switch e.key {
			case "allow", "deny", "tls_verify", "cache", "cache_bypass":
				p.unknownKey(e, serviceKeys)
			}
			continue
		}
		switch e.key {
		case "hostname", "proxy":
			if h, ok := p.str(e.val, e.path); ok {
				name, msg := normaliseHost(h)
				if msg != "" {
					p.errorf(e.val, e.path, "%s", msg)
				}
				s.host = name
			}
		case "upstream", "real":
			s.upstream, _ = p.str(e.val, e.path)
		case "path":
			if v, ok := p.str(e.val, e.path); ok {
				if msg := checkPathPrefix(v); msg != "" {
					p.errorf(e.val, e.path, "%s", msg)
				}
				s.path = v
			}
		case "redirect_to":
			if v, ok := p.str(e.val, e.path); ok {
				if msg := checkHTTPURL(v); msg != "" {
					p.errorf(e.val, e.path, "%s", msg)
				}
				s.redirect = v
			}
		case "headers":
			p.warnf(e.keyN, e.path, "deprecated key: use client_headers (headers were set on responses)")
			s.policy.ClientHeaders = append(s.policy.ClientHeaders, p.headers(e.val, e.path)...)
		default:
			p.unknownKey(e, serviceKeys)
		}
	}
	if s.host == "" {
		p.errorf(v, path, "service needs hostname")
	}
	if s.upstream == "" {
		p.errorf(v, path, "service needs upstream (the service name)")
	}
	return s
}
