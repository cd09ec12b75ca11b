package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
)

// EnvJWTKey names the environment variable that overrides master_key.
const EnvJWTKey = "JWT_KEY"

// EnvDNSProvider names the environment variable that overrides
// acme_dns_provider, as in Aralez.
const EnvDNSProvider = "DNS_PROVIDER"

// Load reads main.yaml at mainPath, then the upstreams file it names
// (upstreams_conf, default DefaultUpstreamsConf) and conf.d/*.yaml beside
// that file. It applies defaults, validates, resolves relative paths
// (upstreams_conf, pid_file, file_server_folder, log_file, proxy_configs,
// config_tls_certificate, config_tls_key_file, ca_file, acme_ca_file) against
// main.yaml's folder and lets the JWT_KEY environment variable override
// master_key and DNS_PROVIDER override acme_dns_provider. On failure
// the error is an ErrorList holding every problem of every file; a bad main.yaml stops before the upstreams are read.
// Load does no network I/O and is safe to call from several goroutines.
func Load(mainPath string) (*Config, error) {
	return load(nil, mainPath, os.LookupEnv)
}

func load(c *Cache, mainPath string, lookupEnv func(string) (string, bool)) (*Config, error) {
	abs, err := filepath.Abs(mainPath)
	if err != nil {
		return nil, ErrorList{{Pos: Pos{File: mainPath}, Msg: "resolving path: " + err.Error()}}
	}
	data, err := os.ReadFile(mainPath)
	if err != nil {
		return nil, ErrorList{{Pos: Pos{File: mainPath}, Msg: "reading main config: " + err.Error()}}
	}
	// Errors in main.yaml do not stop the upstreams file from being
	// checked too, so that `aralez -t` reports both files at once; only a
	// main.yaml that does not parse at all (syntax) stops here.
	var all ErrorList
	m, mainErrs := parseMain(mainPath, data)
	if m == nil {
		return nil, mainErrs.err()
	}
	all = append(all, mainErrs...)
	m.ApplyDefaults()
	if len(mainErrs) == 0 {
		if err := m.Validate(); err != nil {
			var el ErrorList
			if !errors.As(err, &el) {
				return nil, err
			}
			all = append(all, el...)
		}
	}
	m.resolvePaths(filepath.Dir(abs))
	if v, ok := lookupEnv(EnvJWTKey); ok && v != "" {
		m.MasterKey = v
	}
	if msg := m.loadFleetEnv(lookupEnv); msg != "" {
		all = append(all, &FieldError{Pos: Pos{File: mainPath}, Path: "redis.password_env", Msg: msg})
	}
	if v, ok := lookupEnv(EnvDNSProvider); ok && v != "" {
		m.ACMEDNSProvider = v
	}
	if m.ConfigAPIEnabled && m.MasterKey == "" && (m.ConfigAddress != "" || m.ConfigTLSAddress != "") {
		// Aralez starts with this; so do we, safely: read-only.
		m.Warnings = append(m.Warnings, mainPath+": config_api_enabled: no master_key (nor "+EnvJWTKey+
			" environment variable): the config API is read-only; POST /conf and POST /jwt answer 403 until one is set")
	}
	u, err := loadUpstreams(c, m.UpstreamsConf)
	if err != nil {
		var el ErrorList
		if errors.As(err, &el) {
			all = append(all, el...)
		} else {
			all = append(all, &FieldError{Pos: Pos{File: m.UpstreamsConf}, Msg: err.Error()})
		}
	}
	if len(all) > 0 {
		return nil, all.err()
	}
	if m.CacheSizeMB == 0 && u.cacheRequested() {
		u.Warnings = append(u.Warnings, mainPath+": cache_size_mb is 0: \"cache: true\" in the upstreams has no effect")
	}
	return &Config{Main: *m, Upstreams: *u, MainPath: abs}, nil
}

// cacheRequested reports whether some level of u sets cache: true.
func (u *Upstreams) cacheRequested() bool {
	if c := u.Policy.Cache; c != nil && *c {
		return true
	}
	for i := range u.Hosts { // by index: every reload runs this over every host
		for j := range u.Hosts[i].Paths {
			if c := u.Hosts[i].Paths[j].Policy.Cache; c != nil && *c {
				return true
			}
		}
	}
	return false
}

// resolvePaths makes the file paths of m absolute against dir.
func (m *Main) resolvePaths(dir string) {
	for _, p := range []*string{
		&m.UpstreamsConf, &m.PIDFile, &m.FileServerFolder, &m.LogFile,
		&m.ProxyConfigs, &m.ConfigTLSCertificate, &m.ConfigTLSKeyFile, &m.TLSCAFile,
		&m.ACME.CAFile,
	} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Clone returns a deep copy of c: no slice, map or pointer is shared, so
// the copy may be changed (for example to merge discovered backends)
// without affecting c. A nil c gives nil.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	n := *c
	n.Main = c.Main.clone()
	n.Upstreams = c.Upstreams.Clone()
	return &n
}

func (m Main) clone() Main {
	m.TrustedProxies = slices.Clone(m.TrustedProxies)
	m.ProxyProtocolFrom = slices.Clone(m.ProxyProtocolFrom)
	if m.RateLimitStore != nil {
		r := *m.RateLimitStore
		m.RateLimitStore = &r
	}
	m.Ignored = slices.Clone(m.Ignored)
	m.Deprecated = slices.Clone(m.Deprecated)
	m.ACME = m.ACME.clone()
	m.Warnings = slices.Clone(m.Warnings)
	return m
}

// Clone returns a deep copy of u.
func (u Upstreams) Clone() Upstreams {
	u.Policy = u.Policy.clone()
	if u.Consul != nil {
		c := *u.Consul
		c.Servers = slices.Clone(c.Servers)
		c.Services = slices.Clone(c.Services)
		for i := range c.Services {
			c.Services[i].Policy = c.Services[i].Policy.clone()
		}
		u.Consul = &c
	}
	if u.Kubernetes != nil {
		k := *u.Kubernetes
		k.Servers = slices.Clone(k.Servers)
		k.Services = slices.Clone(k.Services)
		for i := range k.Services {
			k.Services[i].Policy = k.Services[i].Policy.clone()
		}
		u.Kubernetes = &k
	}
	u.Hosts = slices.Clone(u.Hosts)
	for i := range u.Hosts {
		h := &u.Hosts[i]
		h.Policy = h.Policy.clone()
		h.Paths = slices.Clone(h.Paths)
		for j := range h.Paths {
			p := &h.Paths[j]
			p.Policy = p.Policy.clone()
			p.Servers = slices.Clone(p.Servers)
			p.AuthResponseHeaders = slices.Clone(p.AuthResponseHeaders)
			if p.HealthCheck != nil {
				b := *p.HealthCheck
				p.HealthCheck = &b
			}
			if p.MaxRequestBodyBytes != nil {
				n := *p.MaxRequestBodyBytes
				p.MaxRequestBodyBytes = &n
			}
		}
	}
	u.Files = slices.Clone(u.Files)
	u.Warnings = slices.Clone(u.Warnings)
	return u
}

func (p Policy) clone() Policy {
	if p.ToHTTPS != nil {
		b := *p.ToHTTPS
		p.ToHTTPS = &b
	}
	if p.TLSVerify != nil {
		b := *p.TLSVerify
		p.TLSVerify = &b
	}
	if p.Cache != nil {
		b := *p.Cache
		p.Cache = &b
	}
	p.CacheBypass = slices.Clone(p.CacheBypass)
	if p.Authorization != nil {
		a := *p.Authorization
		a.Data = slices.Clone(a.Data)
		p.Authorization = &a
	}
	p.ServerHeaders = slices.Clone(p.ServerHeaders)
	p.ClientHeaders = slices.Clone(p.ClientHeaders)
	p.Allow = slices.Clone(p.Allow)
	p.Deny = slices.Clone(p.Deny)
	return p
}
