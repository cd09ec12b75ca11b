package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestACMEKeys checks the acme_* keys of main.yaml (issue 13).
func TestACMEKeys(t *testing.T) {
	t.Parallel()
	src := `proxy_address_tls: 127.0.0.1:6194
acme_auto: true
acme_domains: [Example.COM., "*.example.com", www.example.com, example.com]
acme_directory: https://ca.internal:14000/dir
acme_email: ops@example.com
acme_eab_key_id: kid-1
acme_eab_hmac_key: c2VjcmV0
acme_challenges: [TLS-ALPN-01, http-01, dns-01, http-01]
acme_ca_file: ca.pem
acme_storage: consul
acme_consul_address: 127.0.0.1:8500
acme_consul_prefix: /fleet/acme/
acme_consul_token: tok
`
	m, err := ParseMain("m.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseMain() error: %v", err)
	}
	want := ACME{
		Auto:       true,
		Domains:    []string{"example.com", "*.example.com", "www.example.com"},
		Directory:  "https://ca.internal:14000/dir",
		Email:      "ops@example.com",
		EABKeyID:   "kid-1",
		EABHMACKey: "c2VjcmV0",
		Challenges: []string{"tls-alpn-01", "http-01", "dns-01"},
		CAFile:     "ca.pem",
		Storage:    "consul", ConsulAddress: "127.0.0.1:8500", ConsulPrefix: "fleet/acme", ConsulToken: "tok",
	}
	if !reflect.DeepEqual(m.ACME, want) {
		t.Errorf("ParseMain().ACME =\n%+v\nwant\n%+v", m.ACME, want)
	}
	c := m.ACME.clone()
	c.Domains[0] = "changed"
	if m.ACME.Domains[0] != "example.com" {
		t.Errorf("clone shares Domains with the original")
	}

	d, err := ParseMain("m.yaml", []byte("acme_storage: consul\n"))
	if err != nil {
		t.Fatalf("ParseMain(consul) error: %v", err)
	}
	if d.ACME.ConsulPrefix != DefaultACMEConsulPrefix || d.ACME.Directory != ACMEProduction {
		t.Errorf("defaults = %q, %q; want %q, %q", d.ACME.ConsulPrefix, d.ACME.Directory, DefaultACMEConsulPrefix, ACMEProduction)
	}
}

// TestACMEHasChallenge checks the default challenge set.
func TestACMEHasChallenge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		list []string
		c    string
		tls  bool
		want bool
	}{
		{"default http", nil, ChallengeHTTP01, false, true},
		{"default alpn without tls", nil, ChallengeTLSALPN01, false, false},
		{"default alpn with tls", nil, ChallengeTLSALPN01, true, true},
		{"default dns", nil, ChallengeDNS01, true, false},
		{"listed dns", []string{ChallengeDNS01}, ChallengeDNS01, false, true},
		{"not listed http", []string{ChallengeDNS01}, ChallengeHTTP01, true, false},
	} {
		a := ACME{Challenges: tc.list}
		if got := a.HasChallenge(tc.c, tc.tls); got != tc.want {
			t.Errorf("%s: HasChallenge(%q, %v) = %v; want %v", tc.name, tc.c, tc.tls, got, tc.want)
		}
	}
}

// TestACMEKeyErrors checks that bad acme_* values are reported with
// their position.
func TestACMEKeyErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, src, want string }{
		{"ip", "acme_domains: [10.0.0.1]\n", "m.yaml:1:16: acme_domains[0]: invalid name \"10.0.0.1\": certificates are obtained for domain names, not IP addresses"},
		{"single label", "acme_domains: [intranet]\n", "want a fully qualified domain name"},
		{"inner star", "acme_domains: [\"a.*.example.com\"]\n", "character '*' not allowed"},
		{"bad char", "acme_domains: [\"a b.example.com\"]\n", "character ' ' not allowed"},
		{"not a list", "acme_domains: example.com\n", "acme_domains: want a list"},
		{"directory", "acme_directory: letsencrypt\n", "acme_directory: want \"production\", \"staging\" or the directory URL"},
		{"directory scheme", "acme_directory: ftp://ca/dir\n", "want \"production\""},
		{"challenge", "acme_challenges: [http-02]\n", "acme_challenges[0]: unknown ACME challenge \"http-02\"; want http-01, tls-alpn-01, dns-01 (did you mean \"http-01\"?)"},
		{"empty challenges", "acme_challenges: []\n", "acme_challenges: empty list"},
		{"alpn without tls", "acme_challenges: [tls-alpn-01]\n", "tls-alpn-01 needs proxy_address_tls"},
		{"eab half", "acme_eab_key_id: k\n", "m.yaml:1:1: acme_eab_key_id: acme_eab_key_id and acme_eab_hmac_key go together"},
		{"storage", "acme_storage: redis\n", "unknown acme_storage \"redis\"; want file, consul"},
		{"consul key without consul", "acme_consul_prefix: x\n", "acme_consul_prefix needs acme_storage: consul"},
		{"empty prefix", "acme_storage: consul\nacme_consul_prefix: /\n", "acme_consul_prefix: empty KV prefix"},
		{"auto type", "acme_auto: yes\n", "acme_auto: want true or false"},
		{"typo", "acme_domain: [a.example.com]\n", "did you mean \"acme_domains\"?"},
	} {
		_, err := ParseMain("m.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ParseMain(%q) error = %v; want %q", tc.name, tc.src, err, tc.want)
		}
	}
}

// TestNormaliseACMEName checks the names /acme_order and domains.json
// accept.
func TestNormaliseACMEName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, err string }{
		{"WWW.Example.com.", "www.example.com", ""},
		{"*.Example.com", "*.example.com", ""},
		{"example", "", "fully qualified"},
		{"../etc/passwd", "", "empty label"}, {"a/b.example.com", "", "not allowed"},
		{"", "", "empty host name"},
	} {
		got, err := NormaliseACMEName(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("NormaliseACMEName(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}
