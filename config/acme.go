package config

import (
	"errors"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ACME challenge types (RFC 8555 §8.3, §8.4; RFC 8737), as acme_challenges
// lists them.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	ChallengeDNS01     = "dns-01"
)

// ACME directory shorthands accepted by acme_directory.
const (
	// ACMEProduction is Let's Encrypt's production directory (Aralez's CA).
	ACMEProduction = "production"
	// ACMEStaging is Let's Encrypt's staging directory: real validations,
	// untrusted certificates, generous rate limits.
	ACMEStaging = "staging"
)

// ACME storage backends accepted by acme_storage.
const (
	// ACMEStorageFile keeps account keys, certificates and locks under
	// <proxy_configs>/acme on the local disk (the default).
	ACMEStorageFile = "file"
	// ACMEStorageConsul keeps them in Consul's KV store, shared by every
	// proxy of a fleet; private keys then live in Consul.
	ACMEStorageConsul = "consul"
)

// Defaults of the acme_* keys.
const (
	// DefaultACMEDirectory is acme_directory when absent.
	DefaultACMEDirectory = ACMEProduction
	// DefaultACMEStorage is acme_storage when absent.
	DefaultACMEStorage = ACMEStorageFile
	// DefaultACMEConsulPrefix is the Consul KV prefix of acme_storage:
	// consul when acme_consul_prefix is absent.
	DefaultACMEConsulPrefix = "aralez/acme"
)

var (
	acmeChallenges = []string{ChallengeHTTP01, ChallengeTLSALPN01, ChallengeDNS01}
	acmeStorages   = []string{ACMEStorageFile, ACMEStorageConsul}
)

// ACME is the automatic-certificate part of main.yaml (the acme_* keys).
// The zero value obtains nothing by itself; names ordered through the
// config API (/acme_order) or listed in domains.json are still managed
// with the defaults.
type ACME struct {
	// Auto gives every exact host of the routing table a certificate
	// (acme_auto). DEFAULT, wildcard hosts and IP addresses are skipped.
	Auto bool
	// Domains are names that get a certificate whether or not they are
	// routed (acme_domains), lower-case. "*.example.com" needs DNS-01.
	Domains []string
	// Directory is the CA's ACME directory (acme_directory): "production"
	// (Let's Encrypt, the default), "staging", or a URL (https, or http
	// for a CA on a loopback or private address).
	Directory string
	// Email is the account's contact address (acme_email). Empty means
	// an account without contact.
	Email string
	// EABKeyID and EABHMACKey bind the account to an existing account at
	// the CA (external account binding, RFC 8555 §7.3.4; ZeroSSL needs
	// it): acme_eab_key_id and acme_eab_hmac_key (base64url). Both or
	// neither. The HMAC key is never logged.
	EABKeyID, EABHMACKey string
	// Challenges are the challenge types tried (acme_challenges). Empty
	// means http-01, plus tls-alpn-01 when proxy_address_tls is set;
	// dns-01 is used for wildcard names (and for every name when it is
	// the only type listed) once a DNS provider is configured.
	Challenges []string
	// CAFile is a PEM bundle of roots trusted for the directory's HTTPS
	// besides the system roots (acme_ca_file), for a private CA.
	CAFile string
	// Storage is where account keys, certificates and locks live
	// (acme_storage): "file" (default, <proxy_configs>/acme) or "consul"
	// (shared by a fleet; see ConsulAddress).
	Storage string
	// ConsulAddress is the Consul agent (acme_consul_address, host:port
	// or URL). Empty means the consul/api default (CONSUL_HTTP_ADDR,
	// else 127.0.0.1:8500).
	ConsulAddress string
	// ConsulPrefix is the KV prefix (acme_consul_prefix). Default
	// DefaultACMEConsulPrefix.
	ConsulPrefix string
	// ConsulToken is the ACL token (acme_consul_token). Empty means
	// CONSUL_HTTP_TOKEN. Never logged.
	ConsulToken string
}

// HasChallenge reports whether challenge type c is enabled, applying
// the default (http-01, plus tls-alpn-01 when tls is true) to an empty
// list.
func (a *ACME) HasChallenge(c string, tls bool) bool {
	if len(a.Challenges) == 0 {
		return c == ChallengeHTTP01 || c == ChallengeTLSALPN01 && tls
	}
	return slices.Contains(a.Challenges, c)
}

func (a ACME) clone() ACME {
	a.Domains = slices.Clone(a.Domains)
	a.Challenges = slices.Clone(a.Challenges)
	return a
}

// addACMEKeys registers the acme_* keys of main.yaml.
func addACMEKeys(keys map[string]mainHandler) {
	str := func(f func(*ACME) *string) mainHandler {
		return func(p *mainParser, e entry) {
			if s, ok := p.str(e.val, e.path); ok {
				*f(&p.m.ACME) = s
			}
		}
	}
	keys["acme_auto"] = func(p *mainParser, e entry) {
		if b, ok := p.boolean(e.val, e.path); ok {
			p.m.ACME.Auto = b
		}
	}
	keys["acme_domains"] = (*mainParser).acmeDomains
	keys["acme_directory"] = func(p *mainParser, e entry) {
		s, ok := p.str(e.val, e.path)
		if !ok {
			return
		}
		if msg := checkACMEDirectory(s); msg != "" {
			p.errorf(e.val, e.path, "%s", msg)
			return
		}
		p.m.ACME.Directory = s
	}
	keys["acme_email"] = str(func(a *ACME) *string { return &a.Email })
	keys["acme_eab_key_id"] = str(func(a *ACME) *string { return &a.EABKeyID })
	keys["acme_eab_hmac_key"] = str(func(a *ACME) *string { return &a.EABHMACKey })
	keys["acme_challenges"] = func(p *mainParser, e entry) {
		items, ok := p.list(e.val, e.path)
		if !ok {
			return
		}
		for i, it := range items {
			ip := indexPath(e.path, i)
			s, ok := p.str(it, ip)
			if !ok {
				continue
			}
			s = strings.ToLower(s)
			if !slices.Contains(acmeChallenges, s) {
				p.errorf(it, ip, "%s", enumMsg("ACME challenge", s, acmeChallenges...))
				continue
			}
			if !slices.Contains(p.m.ACME.Challenges, s) {
				p.m.ACME.Challenges = append(p.m.ACME.Challenges, s)
			}
		}
		if len(items) == 0 {
			p.errorf(e.val, e.path, "empty list: leave the key out for the default (http-01, plus tls-alpn-01 with proxy_address_tls)")
		}
	}
	keys["acme_ca_file"] = str(func(a *ACME) *string { return &a.CAFile })
	keys["acme_storage"] = func(p *mainParser, e entry) {
		s, ok := p.str(e.val, e.path)
		if !ok {
			return
		}
		if !slices.Contains(acmeStorages, s) {
			p.errorf(e.val, e.path, "%s", enumMsg("acme_storage", s, acmeStorages...))
			return
		}
		p.m.ACME.Storage = s
	}
	keys["acme_consul_address"] = str(func(a *ACME) *string { return &a.ConsulAddress })
	keys["acme_consul_prefix"] = func(p *mainParser, e entry) {
		s, ok := p.str(e.val, e.path)
		if !ok {
			return
		}
		s = strings.Trim(s, "/")
		if s == "" {
			p.errorf(e.val, e.path, "empty KV prefix")
			return
		}
		p.m.ACME.ConsulPrefix = s
	}
	keys["acme_consul_token"] = str(func(a *ACME) *string { return &a.ConsulToken })
}

// acmeDomains reads acme_domains: host names, lower-cased, a leading
// "*." allowed, duplicates removed.
func (p *mainParser) acmeDomains(e entry) {
	items, ok := p.list(e.val, e.path)
	if !ok {
		return
	}
	for i, it := range items {
		ip := indexPath(e.path, i)
		s, ok := p.str(it, ip)
		if !ok {
			continue
		}
		name, msg := normaliseACMEName(s)
		if msg != "" {
			p.errorf(it, ip, "%s", msg)
			continue
		}
		if !slices.Contains(p.m.ACME.Domains, name) {
			p.m.ACME.Domains = append(p.m.ACME.Domains, name)
		}
	}
}

// normaliseACMEName checks a name to obtain a certificate for and returns
// it lower-case without a trailing dot. IP addresses, "localhost" and
// names without a dot are refused: public CAs do not issue for them.
func normaliseACMEName(s string) (string, string) {
	name := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	base := strings.TrimPrefix(name, "*.")
	if msg := checkDNSName(base); msg != "" {
		return "", msg
	}
	if strings.Contains(base, "*") {
		return "", "invalid name " + strconv.Quote(s) + ": '*' is allowed only as the whole first label"
	}
	if _, err := netip.ParseAddr(base); err == nil {
		return "", "invalid name " + strconv.Quote(s) + ": certificates are obtained for domain names, not IP addresses"
	}
	if !strings.Contains(base, ".") || base == "localhost" {
		return "", "invalid name " + strconv.Quote(s) + ": want a fully qualified domain name"
	}
	return name, ""
}

// NormaliseACMEName checks a name to obtain a certificate for (an
// /acme_order domain, a domains.json entry) and returns it lower-case
// without a trailing dot; a leading "*." is kept. The error names the
// problem.
func NormaliseACMEName(s string) (string, error) {
	name, msg := normaliseACMEName(s)
	if msg != "" {
		return "", errors.New(msg)
	}
	return name, nil
}

// checkACMEDirectory checks an acme_directory value.
func checkACMEDirectory(s string) string {
	if s == ACMEProduction || s == ACMEStaging {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "want \"production\", \"staging\" or the directory URL (https://…), got " + strconv.Quote(s)
	}
	return ""
}

// acmeCrossChecks reports acme_* rules that involve other keys.
func (p *mainParser) acmeCrossChecks() {
	a := &p.m.ACME
	if e, ok := p.seen["acme_challenges"]; ok && slices.Contains(a.Challenges, ChallengeTLSALPN01) && p.m.ProxyAddressTLS == "" {
		p.errorf(e.val, e.path, "tls-alpn-01 needs proxy_address_tls (the TLS listener answers it)")
	}
	_, id := p.seen["acme_eab_key_id"]
	_, mac := p.seen["acme_eab_hmac_key"]
	if id != mac {
		e := p.seen["acme_eab_key_id"]
		if mac {
			e = p.seen["acme_eab_hmac_key"]
		}
		p.errorf(e.keyN, e.path, "acme_eab_key_id and acme_eab_hmac_key go together")
	}
	for _, k := range []string{"acme_consul_address", "acme_consul_prefix", "acme_consul_token"} {
		if e, ok := p.seen[k]; ok && a.Storage != ACMEStorageConsul {
			p.errorf(e.keyN, e.path, "%s needs acme_storage: consul", k)
		}
	}
}
