package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestAralezExamples loads this project's mirrors of the example files
// published with Aralez (its repository's etc/, README and documentation;
// config/testdata/aralez/*/, each naming the file it mirrors) and checks
// the warnings that tell what is read differently (issue 12).
func TestAralezExamples(t *testing.T) {
	t.Setenv(EnvJWTKey, "")
	t.Setenv(EnvDNSProvider, "")
	tests := []struct {
		dir       string
		main      string
		hosts     int
		warnings  []string // substrings, in Main.Warnings and Upstreams.Warnings together
		tlsGrade  string
		accessLog string
	}{
		{dir: "repo-etc", hosts: 4, tlsGrade: "high", accessLog: "error",
			warnings: []string{"config API is read-only"}},
		{dir: "readme", hosts: 3, tlsGrade: "medium", accessLog: "all",
			warnings: []string{"config API is read-only", "site.readme.test: host entry at the top level", "DEFAULT: host entry at the top level", "bench.yaml:8:7", "deprecated key: use server_headers"}},
		{dir: "docs-config", hosts: 4, tlsGrade: "unsafe", accessLog: "all",
			warnings: []string{"config API is read-only", "docs.config.test: host entry at the top level"}},
		{dir: "docs-auth", hosts: 2, tlsGrade: "medium", accessLog: "off",
			warnings: []string{"sticky_sessions: deprecated boolean form"}},
		{dir: "docs-autossl", hosts: 2, tlsGrade: "medium", accessLog: "off",
			warnings: []string{"your.ssl.test: host entry at the top level", "lego.ssl.test: host entry at the top level"}},
		{dir: "docs-kubernetes", hosts: 0, tlsGrade: "high", accessLog: "off",
			warnings: []string{"deprecated key: use client_headers"}},
		{dir: "docs-stresstest", hosts: 3, tlsGrade: "medium", accessLog: "off",
			warnings: []string{`unknown proxy_tls_grade "a+"`, "sticky_sessions: deprecated boolean form"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", "aralez", tt.dir, "main.yaml"))
			if err != nil {
				t.Fatalf("Load() error = %v; want the example to load", err)
			}
			if len(c.Upstreams.Hosts) != tt.hosts || c.Main.ProxyTLSGrade != tt.tlsGrade || c.Main.AccessLog != tt.accessLog {
				t.Errorf("Load() = %d hosts, grade %q, access_log %q; want %d, %q, %q",
					len(c.Upstreams.Hosts), c.Main.ProxyTLSGrade, c.Main.AccessLog, tt.hosts, tt.tlsGrade, tt.accessLog)
			}
			all := strings.Join(append(append([]string{}, c.Main.Warnings...), c.Upstreams.Warnings...), "\n")
			for _, w := range tt.warnings {
				if !strings.Contains(all, w) {
					t.Errorf("warnings lack %q:\n%s", w, all)
				}
			}
		})
	}
	t.Run("docs-config providers", func(t *testing.T) {
		u, err := LoadUpstreams(filepath.Join("testdata", "aralez", "docs-config", "providers.yaml"))
		if err != nil {
			t.Fatalf("LoadUpstreams() error = %v", err)
		}
		if u.Provider != "kubernetes" || u.Consul == nil || len(u.Consul.Services) != 2 || u.Kubernetes == nil || len(u.Kubernetes.Services) != 4 {
			t.Errorf("LoadUpstreams() = %+v; want kubernetes with 2 consul and 4 kubernetes services", u)
		}
	})
	t.Run("docs-config log_file", func(t *testing.T) {
		c, err := Load(filepath.Join("testdata", "aralez", "docs-config", "main.yaml"))
		var el ErrorList
		if errors.As(err, &el) || c == nil {
			t.Fatal(err)
		}
		m := &c.Main
		if m.LogFile != "/var/log/aralez-docs.log" || m.LogFileSizeMB != 10 || m.LogFileKeep != 3 || !m.LogFileCompress {
			t.Errorf("log_file = %q, %d MiB, keep %d, compress %v; want /var/log/aralez-docs.log, 10, 3, true",
				m.LogFile, m.LogFileSizeMB, m.LogFileKeep, m.LogFileCompress)
		}
	})
}
