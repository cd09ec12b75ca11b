package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// upstreamsKey finds a top-level key only upstreams.yaml has.
var upstreamsKey = regexp.MustCompile(`(?m)^(upstreams|provider):`)

// TestREADMEExamples runs aralez -t on every YAML example of README.md,
// as a user copying one would: a main.yaml example beside an empty
// routing table, an upstreams.yaml example beside a minimal main.yaml.
// Kubernetes objects are left to discovery's manifest tests.
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 5 {
		t.Fatalf("README.md: %d yaml examples; want at least 5", len(blocks))
	}
	for i, m := range blocks {
		doc := m[1]
		if strings.Contains(doc, "apiVersion:") {
			continue
		}
		first, _, _ := strings.Cut(doc, "\n")
		t.Run(first, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			main, up := "proxy_address_http: \"127.0.0.1:1\"\n", "upstreams: {}\n"
			if upstreamsKey.MatchString(doc) {
				up = doc
			} else {
				main = doc
			}
			writeFile(t, filepath.Join(dir, "main.yaml"), main)
			writeFile(t, filepath.Join(dir, "upstreams.yaml"), up)
			var out, errb bytes.Buffer
			if code := run([]string{"-t", filepath.Join(dir, "main.yaml")}, &out, &errb); code != 0 {
				t.Errorf("README example %d: aralez -t = %d; want 0\n%s\n%s", i, code, doc, errb.String())
			}
		})
	}
}
