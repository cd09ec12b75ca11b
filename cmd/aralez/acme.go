package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/aralez-go/aralez/admin"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/tls/acme"
	"github.com/aralez-go/aralez/tls/acme/dnsprovider"
)

// domainsFile is Aralez's list of names ordered through /acme_order, a
// JSON array of strings, under <folder>/autoconfigs/.
const domainsFile = "domains.json"

// domainsPaths returns where domains.json is read: Aralez reads it beside
// the upstreams file and writes it under proxy_configs; both are read,
// and the second (written) one is last.
func domainsPaths(m *config.Main, base string) (read []string, write string) {
	write = filepath.Join(base, "autoconfigs", domainsFile)
	read = []string{filepath.Join(filepath.Dir(m.UpstreamsConf), "autoconfigs", domainsFile)}
	if read[0] != write {
		read = append(read, write)
	}
	return read, write
}

// readDomains reads the names of every domains.json in paths; a missing
// file is empty, a malformed file or name is logged and skipped.
func (s *server) readDomains(paths []string) []string {
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var names []string
		if err == nil {
			err = json.Unmarshal(b, &names)
		}
		if err != nil {
			s.log.Error("acme: domains.json skipped", "path", p, "err", err)
			continue
		}
		for _, n := range names {
			name, err := config.NormaliseACMEName(n)
			if err != nil {
				s.log.Error("acme: domains.json name skipped", "path", p, "name", n, "err", err)
				continue
			}
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// addDomain records name in the domains.json at path (atomically).
func addDomain(path, name string) error {
	var names []string
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &names)
	}
	if slices.Contains(names, name) {
		return nil
	}
	names = append(names, name)
	b, err := json.MarshalIndent(names, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// autoNames returns the routing table's hosts that can get a certificate
// (acme_auto): exact domain names, not DEFAULT, wildcards or addresses.
func autoNames(up *config.Upstreams) []string {
	var out []string
	for _, h := range up.Hosts {
		if strings.HasPrefix(h.Name, "*.") {
			continue
		}
		if n, err := config.NormaliseACMEName(h.Name); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// acmeAPI is the config API's view of the manager: a successful
// /acme_order is also recorded in domains.json, as Aralez does.
type acmeAPI struct {
	*acme.Manager
	s       *server
	domains string
}

func (a acmeAPI) Order(ctx context.Context, name string) (bool, error) {
	fresh, err := a.Manager.Order(ctx, name)
	if err == nil {
		if werr := addDomain(a.domains, name); werr != nil {
			a.s.log.Error("acme: recording the name in domains.json", "path", a.domains, "name", name, "err", werr)
		}
	}
	return fresh, err
}

// certificateStatus converts the manager's status for /status.
func certificateStatus(m *acme.Manager) func() []admin.CertificateStatus {
	return func() []admin.CertificateStatus {
		st := m.Status()
		out := make([]admin.CertificateStatus, len(st))
		for i, c := range st {
			out[i] = admin.CertificateStatus{
				Name: c.Name, NotAfter: c.NotAfter, Challenge: c.Challenge,
				LastError: c.LastError, LastErrorAt: c.LastErrorAt,
				Renewals: c.Renewals, Failures: c.Failures,
			}
		}
		return out
	}
}

// directoryURL maps acme_directory to a URL.
func directoryURL(d string) string {
	switch d {
	case "", config.ACMEProduction:
		return acme.ProductionDirectory
	case config.ACMEStaging:
		return acme.StagingDirectory
	}
	return d
}

// newACME builds the certificate manager for the TLS listener's store:
// HTTP-01 on the cleartext listener (the pipeline asks HTTPChallenge
// before routing), TLS-ALPN-01 on the TLS listener, DNS-01 through the
// provider.
func (s *server) newACME(m *config.Main, base string) (*acme.Manager, error) {
	a := &m.ACME
	o := acme.Options{
		Store:     s.certs,
		Directory: directoryURL(a.Directory),
		Email:     a.Email,
		EABKeyID:  a.EABKeyID, EABHMACKey: a.EABHMACKey,
		ExportDir: s.certs.Dir(),
		Logger:    s.log,
		OnResult: func(_ string, renewal bool, err error) {
			s.metrics.ACMEOrder(renewal, err == nil)
		},
	}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("acme_ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme_ca_file %q holds no PEM certificate", a.CAFile)
		}
		o.TrustedRoots = pool
	}
	if a.HasChallenge(config.ChallengeTLSALPN01, true) {
		o.TLSAddr = s.tlsLn.Addr().String()
	}
	if a.HasChallenge(config.ChallengeHTTP01, true) {
		o.HTTPAddr = s.frontLn.Addr().String()
	}
	if m.ACMEDNSProvider != "" {
		p, err := dnsProvider(m.ACMEDNSProvider)
		if err != nil {
			return nil, err
		}
		o.DNS = p
		o.DNSOnly = len(a.Challenges) == 1 && a.Challenges[0] == config.ChallengeDNS01
	}
	switch a.Storage {
	case config.ACMEStorageConsul:
		st, err := acme.NewConsulStorage(acme.ConsulOptions{Address: a.ConsulAddress, Prefix: a.ConsulPrefix, Token: a.ConsulToken})
		if err != nil {
			return nil, fmt.Errorf("acme_storage consul: %w", err)
		}
		o.Storage = st
		s.log.Warn("acme: private keys are kept in Consul's KV store (acme_storage: consul)", "prefix", a.ConsulPrefix)
	default:
		o.StorageDir = filepath.Join(base, "acme")
	}
	return acme.New(o)
}

// acmeNames is every name to manage at start: acme_domains, the routed
// hosts with acme_auto, and domains.json.
func (s *server) acmeNames(cfg *config.Config) []string {
	a := &cfg.Main.ACME
	names := slices.Clone(a.Domains)
	if a.Auto {
		names = append(names, autoNames(&cfg.Upstreams)...)
	}
	names = append(names, s.readDomains(s.domainsRead)...)
	slices.Sort(names)
	return slices.Compact(names)
}

// acmeWithoutTLS is the warning of a start, and of aralez -t, when
// main.yaml asks for certificates without a TLS listener to serve them.
const acmeWithoutTLS = "acme_auto and acme_domains need proxy_address_tls; no certificates are obtained"

// setupACME builds the certificate manager when there is a TLS listener
// to serve its certificates; its names are managed once serve starts.
func (s *server) setupACME(m *config.Main) error {
	base := m.ProxyConfigs
	if base == "" {
		base = filepath.Dir(s.mainPath)
	}
	s.domainsRead, s.domainsWrite = domainsPaths(m, base)
	if s.certs == nil {
		if m.ACME.Auto || len(m.ACME.Domains) > 0 {
			s.log.Warn("acme: " + acmeWithoutTLS)
		}
		return nil
	}
	s.metrics.SetCertificateExpiry(s.certs.Expiry)
	mgr, err := s.newACME(m, base)
	if err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	s.acme = mgr
	s.challenges.m.Store(mgr)
	// The listeners are bound: a CA's validation connection waits in the
	// accept queue until they serve. Managing the names before then also
	// lets this instance answer, from the shared storage, challenges that
	// another instance of a fleet started.
	if err := mgr.Manage(s.acmeNames(s.cfg)); err != nil {
		s.log.Error("acme: some names get no certificate", "err", err)
	}
	return nil
}

// challenges hands the pipeline's HTTP-01 lookups to the ACME manager
// once it exists (the engine is built before the listeners the manager
// needs); until then, and without one, every token goes on to routing.
type challenges struct{ m atomic.Pointer[acme.Manager] }

// HTTPChallenge implements pipeline.HTTPChallenger.
func (c *challenges) HTTPChallenge(host, token []byte) ([]byte, bool) {
	if m := c.m.Load(); m != nil {
		return m.HTTPChallenge(host, token)
	}
	return nil, false
}

// acmeAdmin is the config API's ACME endpoint backend, nil without a
// manager.
func (s *server) acmeAdmin() admin.ACME {
	if s.acme == nil {
		return nil
	}
	return acmeAPI{Manager: s.acme, s: s, domains: s.domainsWrite}
}

// certificates is the /status?certificates source, nil without a
// manager.
func (s *server) certificates() func() []admin.CertificateStatus {
	if s.acme == nil {
		return nil
	}
	return certificateStatus(s.acme)
}

// dnsProvider returns the DNS-01 provider acme_dns_provider (or
// DNS_PROVIDER) names, with its credentials from the environment.
func dnsProvider(name string) (acme.DNSProvider, error) {
	switch strings.ToLower(name) {
	case "cloudflare":
		return dnsprovider.CloudflareFromEnv()
	case "route53":
		return dnsprovider.Route53FromEnv(context.Background())
	}
	return nil, fmt.Errorf("acme_dns_provider %q: want cloudflare or route53", name)
}
