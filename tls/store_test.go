package tls

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sniDir writes the pairs used by the SNI tests and returns the folder.
func sniDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writePair(t, dir, "00-default", certSpec{cn: "default", dns: []string{"default.test"}})
	writePair(t, dir, "exact", certSpec{cn: "exact", dns: []string{"exact.example.com", "Mixed.Example.com"}})
	writePair(t, dir, "wild", certSpec{cn: "wild", dns: []string{"*.example.com"}})
	writePair(t, dir, "cn-only", certSpec{cn: "CN.Example.Org"})
	return dir
}

var sniCases = []struct {
	name, sni, want string
}{
	{"exact", "exact.example.com", "exact"},
	{"exact upper-case SNI", "EXACT.Example.COM", "exact"},
	{"exact upper-case SAN", "mixed.example.com", "exact"},
	{"exact trailing dot", "exact.example.com.", "exact"},
	{"wildcard one label", "x.example.com", "wild"},
	{"wildcard upper-case", "X.EXAMPLE.com", "wild"},
	{"wildcard two labels", "a.b.example.com", "default"},
	{"wildcard apex", "example.com", "default"},
	{"cn fallback", "cn.example.org", "CN.Example.Org"},
	{"no match", "other.test", "default"},
	{"no SNI", "", "default"},
	{"default by SAN", "default.test", "default"},
}

func TestGetCertificate(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, sniDir(t))
	for _, tc := range sniCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni})
			if err != nil {
				t.Fatalf("GetCertificate(%q) error: %v", tc.sni, err)
			}
			if got := c.Leaf.Subject.CommonName; got != tc.want {
				t.Errorf("GetCertificate(%q) = %q; want %q", tc.sni, got, tc.want)
			}
		})
	}
}

func TestSNIHandshake(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, sniDir(t))
	addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))
	for _, tc := range sniCases {
		if strings.HasSuffix(tc.sni, ".") {
			continue // crypto/tls clients strip the dot themselves
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := servedCN(addr, tc.sni)
			if err != nil {
				t.Fatalf("handshake with SNI %q: %v", tc.sni, err)
			}
			if got != tc.want {
				t.Errorf("served CN for SNI %q = %q; want %q", tc.sni, got, tc.want)
			}
		})
	}
}

func TestNamesAndPairs(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, sniDir(t))
	wantNames := []string{"*.example.com", "cn.example.org", "default.test", "exact.example.com", "mixed.example.com"}
	if got := s.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() = %q; want %q", got, wantNames)
	}
	wantPairs := []string{"00-default", "cn-only", "exact", "wild"}
	if got := s.Pairs(); !slices.Equal(got, wantPairs) {
		t.Errorf("Pairs() = %q; want %q", got, wantPairs)
	}
}

func TestServerConfigALPN(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, sniDir(t))
	tests := []struct {
		name   string
		server []string
		client []string
		want   string
	}{
		{"default prefers h2", nil, []string{"http/1.1", "h2"}, "h2"},
		{"default http/1.1", nil, []string{"http/1.1"}, "http/1.1"},
		{"custom", []string{"http/1.1"}, []string{"h2", "http/1.1"}, "http/1.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := s.ServerConfig(GradeMedium, tc.server)
			if len(tc.server) == 0 && !slices.Equal(cfg.NextProtos, []string{"h2", "http/1.1"}) {
				t.Errorf("ServerConfig(medium, nil).NextProtos = %q; want [h2 http/1.1]", cfg.NextProtos)
			}
			addr := serveTLS(t, cfg)
			c, err := dial(addr, "exact.example.com", &tls.Config{InsecureSkipVerify: true, NextProtos: tc.client})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("NegotiatedProtocol = %q; want %q", got, tc.want)
			}
		})
	}
}

// TestReloadBadPairs checks that each kind of broken pair is skipped and
// logged, that the good set keeps serving, and that a pair that loaded
// before keeps its previous certificate.
func TestReloadBadPairs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string
	}{
		{
			name: "crt without key",
			setup: func(t *testing.T, dir string) {
				c, _ := genPair(t, certSpec{cn: "x", dns: []string{"x.test"}})
				writeFile(t, dir, "x.crt", c)
			},
			wantErr: "missing x.key",
		},
		{
			name: "key without crt",
			setup: func(t *testing.T, dir string) {
				_, k := genPair(t, certSpec{cn: "x", dns: []string{"x.test"}})
				writeFile(t, dir, "x.key", k)
			},
			wantErr: "missing x.crt",
		},
		{
			name: "garbage crt",
			setup: func(t *testing.T, dir string) {
				_, k := genPair(t, certSpec{cn: "x", dns: []string{"x.test"}})
				writeFile(t, dir, "x.key", k)
				writeFile(t, dir, "x.crt", []byte("-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n"))
			},
			wantErr: "x",
		},
		{
			name: "key does not match",
			setup: func(t *testing.T, dir string) {
				c, _ := genPair(t, certSpec{cn: "x", dns: []string{"x.test"}})
				_, k := genPair(t, certSpec{cn: "y", dns: []string{"x.test"}})
				writeFile(t, dir, "x.key", k)
				writeFile(t, dir, "x.crt", c)
			},
			wantErr: "private key does not match public key",
		},
		{
			name: "empty files",
			setup: func(t *testing.T, dir string) {
				writeFile(t, dir, "x.key", nil)
				writeFile(t, dir, "x.crt", nil)
			},
			wantErr: "x.crt is empty",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
			s, logs := newTestStore(t, dir)
			tc.setup(t, dir)
			err := s.Reload()
			if err == nil || !hasAll(err.Error(), `pair "x"`, tc.wantErr) {
				t.Fatalf("Reload() = %v; want an error naming pair \"x\" and %q", err, tc.wantErr)
			}
			if !hasAll(logs.String(), "skipping certificate pair", "pair=x") {
				t.Errorf("log = %q; want the skipped pair logged", logs.String())
			}
			if got := s.Pairs(); !slices.Equal(got, []string{"a"}) {
				t.Errorf("Pairs() = %q; want [a]", got)
			}
			c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.test"})
			if err != nil || c.Leaf.Subject.CommonName != "a" {
				t.Errorf("GetCertificate(x.test) = %v, %v; want the default a", c, err)
			}
		})
	}
}

func TestReloadKeepsPreviousOnBrokenUpdate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
	writePair(t, dir, "x", certSpec{cn: "x1", dns: []string{"x.test"}})
	s, logs := newTestStore(t, dir)
	served := func() string {
		c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.test"})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := served(); got != "x1" {
		t.Fatalf("served(x.test) = %q; want x1", got)
	}

	// A new certificate arrives before its key: keep x1.
	c2, k2 := genPair(t, certSpec{cn: "x2", dns: []string{"x.test"}})
	writeFile(t, dir, "x.crt", c2)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Fatalf("Reload() with new crt and old key = %v; want a key mismatch error", err)
	}
	if !strings.Contains(logs.String(), "kept") {
		t.Errorf("log = %q; want it to say the previous certificate was kept", logs.String())
	}
	if got := served(); got != "x1" {
		t.Errorf("served(x.test) after broken update = %q; want x1", got)
	}

	// The key completes the pair.
	writeFile(t, dir, "x.key", k2)
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload() after completing the pair: %v", err)
	}
	if got := served(); got != "x2" {
		t.Errorf("served(x.test) after completing the pair = %q; want x2", got)
	}

	// The key file disappears while the certificate stays: still x2.
	if err := os.Remove(filepath.Join(dir, "x.key")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Errorf("Reload() with x.key missing = nil; want an error")
	}
	if got := served(); got != "x2" {
		t.Errorf("served(x.test) with x.key missing = %q; want x2", got)
	}

	// Both files gone: the pair is dropped.
	if err := os.Remove(filepath.Join(dir, "x.crt")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload() after removing x: %v", err)
	}
	if got := served(); got != "a" {
		t.Errorf("served(x.test) after removal = %q; want the default a", got)
	}
}

func TestReloadSkipsUnchangedPairs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
	s, _ := newTestStore(t, dir)
	before, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	after, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	if before != after {
		t.Errorf("Reload() of an unchanged pair parsed it again (%p != %p)", before, after)
	}
}

func TestEmptyOrMissingFolder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		create bool
	}{{"missing", false}, {"empty", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "certificates")
			if tc.create {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			s, logs := newTestStore(t, dir)
			if !strings.Contains(logs.String(), "NO TLS CERTIFICATES LOADED") {
				t.Errorf("log = %q; want a loud warning", logs.String())
			}
			if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); !errors.Is(err, ErrNoCertificate) {
				t.Errorf("GetCertificate() error = %v; want ErrNoCertificate", err)
			}
			addr := serveTLS(t, s.ServerConfig(GradeMedium, nil))
			if _, err := servedCN(addr, "a.test"); err == nil {
				t.Fatalf("handshake with an empty store succeeded; want it refused")
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			writePair(t, dir, "a", certSpec{cn: "a", dns: []string{"a.test"}})
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			if got, err := servedCN(addr, "a.test"); err != nil || got != "a" {
				t.Errorf("servedCN(a.test) = %q, %v; want a", got, err)
			}
		})
	}
}

func TestNewStoreErrors(t *testing.T) {
	t.Parallel()
	if _, err := NewStore("", nil); err == nil {
		t.Errorf("NewStore(\"\") = nil error; want one")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(file, nil); err == nil {
		t.Errorf("NewStore(a regular file) = nil error; want one")
	}
}

func TestServedNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sans []string
		cn   string
		want []string
	}{
		{"sans win over cn", []string{"A.test", "b.test."}, "c.test", []string{"a.test", "b.test"}},
		{"cn fallback", nil, "C.Test", []string{"c.test"}},
		{"dedup", []string{"a.test", "A.TEST"}, "", []string{"a.test"}},
		{"nothing", nil, "", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := servedNames(tc.sans, tc.cn); !slices.Equal(got, tc.want) {
				t.Errorf("servedNames(%q, %q) = %q; want %q", tc.sans, tc.cn, got, tc.want)
			}
		})
	}
}
