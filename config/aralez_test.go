package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAralezMainKeys checks the main.yaml keys and values of newer Aralez
// releases, and the values Aralez accepts that this proxy replaces with a
// safe one and a warning instead of refusing to start (issue 12).
func TestAralezMainKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		src        string
		check      func(m *Main) bool
		warning    string // substring of the only warning; "" = none
		deprecated string // substring of the only deprecation note; "" = none
	}{
		{name: "tls grade a+ falls back to medium", src: "proxy_tls_grade: a+\n",
			check: func(m *Main) bool { return m.ProxyTLSGrade == "medium" }, warning: `1:18: proxy_tls_grade: unknown proxy_tls_grade "a+"; want high, medium, unsafe; using "medium"`},
		{name: "tls grade any case", src: "proxy_tls_grade: High\n",
			check: func(m *Main) bool { return m.ProxyTLSGrade == "high" }},
		{name: "log_structured backend", src: "log_structured: elasticsearch\n",
			check:   func(m *Main) bool { return m.LogStructured == "elasticsearch" },
			warning: "shipping them to elasticsearch is left to a log collector"},
		{name: "log_structured first word", src: "log_structured: \"JSON extra words\"\n",
			check: func(m *Main) bool { return m.LogStructured == "json" }},
		{name: "log_structured true", src: "log_structured: true\n",
			check: func(m *Main) bool { return m.LogStructured == "json" }},
		{name: "log_structured false", src: "log_structured: false\n",
			check: func(m *Main) bool { return m.LogStructured == "" }},
		{name: "log_structured empty", src: "log_structured: \"\"\n",
			check: func(m *Main) bool { return m.LogStructured == "" }},
		{name: "misspelling of 0.92", src: "log_structired: json\n",
			check: func(m *Main) bool { return m.LogStructured == "json" }, deprecated: "read as log_structured"},
		{name: "acme_dns_provider", src: "acme_dns_provider: cloudflare\n",
			check: func(m *Main) bool { return m.ACMEDNSProvider == "cloudflare" }},
		{name: "access_log error", src: "access_log: error\n",
			check: func(m *Main) bool { return m.AccessLog == "error" }},
		{name: "log_level off", src: "log_level: \"off\"\n",
			check: func(m *Main) bool { return m.LogLevel == "off" }},
		{name: "log_level trace", src: "log_level: trace\n",
			check: func(m *Main) bool { return m.LogLevel == "trace" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMain("t.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("ParseMain(%q) error = %v; want nil", tt.src, err)
			}
			if !tt.check(m) {
				t.Errorf("ParseMain(%q) = %+v; want the checked value", tt.src, m)
			}
			notes := func(what string, got []string, want string) {
				if want == "" && len(got) > 0 || want != "" && (len(got) != 1 || !strings.Contains(got[0], want)) {
					t.Errorf("ParseMain(%q) %s = %q; want one with %q", tt.src, what, got, want)
				}
			}
			notes("Warnings", m.Warnings, tt.warning)
			notes("Deprecated", m.Deprecated, tt.deprecated)
		})
	}
	if _, err := ParseMain("t.yaml", []byte("log_structured: [a]\n")); err == nil || !strings.Contains(err.Error(), "want a string, got a list") {
		t.Errorf("ParseMain(log_structured: [a]) error = %v; want a type error", err)
	}
}

// TestDNSProviderEnvironment checks that DNS_PROVIDER overrides
// acme_dns_provider, as JWT_KEY overrides master_key.
func TestDNSProviderEnvironment(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.yaml":      "acme_dns_provider: route53\n",
		"upstreams.yaml": "",
	})
	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := load(nil, filepath.Join(dir, "main.yaml"), lookup)
	if err != nil || c.Main.ACMEDNSProvider != "route53" {
		t.Fatalf("load() = %+v, %v; want acme_dns_provider route53", c, err)
	}
	env[EnvDNSProvider] = "cloudflare"
	if c, err = load(nil, filepath.Join(dir, "main.yaml"), lookup); err != nil || c.Main.ACMEDNSProvider != "cloudflare" {
		t.Errorf("load() with DNS_PROVIDER = %+v, %v; want cloudflare", c, err)
	}
}

// TestTopLevelHosts checks that host entries written at the top level of
// upstreams.yaml, as Aralez's README shows them, are read as hosts with
// one warning each, and that a host given both ways is an error.
func TestTopLevelHosts(t *testing.T) {
	t.Parallel()
	src := "provider: file\nupstreams:\n  a.test:\n    paths: {\"/\": {servers: [\"127.0.0.1:1\"]}}\n" +
		"b.test:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:2\"]\nDEFAULT:\n  paths: {\"/\": {servers: [\"127.0.0.1:3\"]}}\n"
	u, err := ParseUpstreams("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseUpstreams() error = %v", err)
	}
	var names []string
	for _, h := range u.Hosts {
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != "a.test b.test DEFAULT" {
		t.Errorf("hosts = %q; want a.test b.test DEFAULT", got)
	}
	if len(u.Warnings) != 2 || !strings.HasPrefix(u.Warnings[0], "t.yaml:5:1: b.test: host entry at the top level") {
		t.Errorf("Warnings = %q; want two, the first at 5:1 naming b.test", u.Warnings)
	}
	_, err = ParseUpstreams("t.yaml", []byte(src+"a.test:\n  paths: {\"/\": {servers: [\"127.0.0.1:4\"]}}\n"))
	if err == nil || !strings.Contains(err.Error(), `t.yaml:11:1: a.test: host "a.test" defined twice (first at line 3)`) {
		t.Errorf("ParseUpstreams(host twice) error = %v; want the duplicate at 11:1", err)
	}
}
