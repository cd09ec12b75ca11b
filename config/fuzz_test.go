package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fuzzSeeds are past crashes and interesting inputs for both fuzzers.
var fuzzSeeds = []string{
	"",
	"---\n",
	"a: &a [*a]\n",
	"<<: *x\n",
	"<<: [1, 2]\n",
	"upstreams: {h: {paths: {\"/\": {<<: {servers: [\"a:1\"]}}}}}\n",
	"? [a, b]\n: 1\n",
	"upstreams:\n  \"*.\":\n    paths: {}\n",
	"authorization: {type: forward, data: []}\n",
	"client_headers: [\":\"]\n",
	"threads: 0x7fffffffffffffff\n",
	"threads: 18446744073709551615\n",
	"log_file: \",,,,\"\n",
	"trusted_proxies: [\"fe80::1%eth0\"]\n",
	"!!map {a: 1}\n",
	"%YAML 1.2\n---\na: 1\n",
	"a: |\n  x\n",
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("../etc/*.yaml")
	more, _ := filepath.Glob("testdata/aralez/*/*.y*ml")
	files = append(files, more...)
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// checkResult asserts the contract of a parse: an error is a non-empty
// ErrorList, and a success passes Validate.
func checkResult(t *testing.T, err error, validate func() error) {
	if err != nil {
		var el ErrorList
		if !errors.As(err, &el) || len(el) == 0 {
			t.Fatalf("error %T %v; want a non-empty ErrorList", err, err)
		}
		return
	}
	if err := validate(); err != nil {
		t.Fatalf("parsed value fails Validate: %v", err)
	}
}

func FuzzParseUpstreams(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseUpstreams("fuzz.yaml", data)
		checkResult(t, err, func() error { return u.Validate() })
		if err == nil {
			if c := u.Clone(); !reflect.DeepEqual(c, *u) {
				t.Fatalf("Clone() differs from the original")
			}
		}
	})
}

func FuzzParseMain(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMain("fuzz.yaml", data)
		checkResult(t, err, func() error { return m.Validate() })
	})
}
