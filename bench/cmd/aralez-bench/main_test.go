package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		check   func(o options) string
		wantErr string
	}{
		{"defaults", nil, func(o options) string {
			if o.warmup != time.Second || o.duration != 2*time.Second || o.maxTotal != 13*time.Minute || o.long {
				return "want 1 s warm-up, 2 s window, 13m cap"
			}
			if !slices.Equal(o.scenarios, defaultScenarios) || !slices.Equal(o.sweep, defaultSweep) || o.syscalls != "off" {
				return "want the default scenarios and sweep, syscalls off"
			}
			return ""
		}, ""},
		{"long", []string{"-long"}, func(o options) string {
			if o.warmup != 2*time.Second || o.duration != 8*time.Second || o.maxTotal != time.Hour || !o.long {
				return "want 2 s warm-up, 8 s window, 60m cap"
			}
			return ""
		}, ""},
		{"long with an explicit window", []string{"-long", "-duration", "5", "-warmup", "0.5"}, func(o options) string {
			if o.warmup != 500*time.Millisecond || o.duration != 5*time.Second {
				return "want the flags to win over LONG"
			}
			return ""
		}, ""},
		{"A/B", []string{"-aralez-base", "bin/aralez-base", "-targets", "nginx,aralez"}, func(o options) string {
			if !slices.Equal(o.targets, []string{"nginx", "aralez", baseName}) || !filepath.IsAbs(o.aralezBase) ||
				!strings.HasSuffix(o.aralezBase, "bin/aralez-base") {
				return "want aralez-base added to the targets, with an absolute path"
			}
			return ""
		}, ""},
		{"base target without a binary", []string{"-targets", "aralez,aralez-base"}, nil, "needs -aralez-base"},
		{"sweep and aliases", []string{"-scenarios", "1,sweep,cache", "-sweep", "1000,50,50"}, func(o options) string {
			if !slices.Equal(o.scenarios, []int{1, 10, 11}) || !slices.Equal(o.sweep, []int{50, 1000}) {
				return "want scenarios 1, 10, 11 and sweep 50, 1000"
			}
			return ""
		}, ""},
		{"bad sweep", []string{"-sweep", "50,x"}, nil, `"x" is not a positive whole number`},
		{"syscalls", []string{"-syscalls", "strace"}, func(o options) string {
			if o.syscalls != "strace" {
				return "want strace"
			}
			return ""
		}, ""},
		{"syscalls auto", []string{"-syscalls", "1"}, func(o options) string {
			if o.syscalls != "auto" {
				return "want auto"
			}
			return ""
		}, ""},
		{"bad syscalls", []string{"-syscalls", "dtrace"}, nil, "want 1, perf, strace or 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseOptions(append([]string{"-proxy-cpus", "0", "-load-cpus", "1"}, tt.args...))
			if err != nil && strings.Contains(err.Error(), "no CPU 1") {
				t.Skip("needs two CPUs")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseOptions(%q) error = %v; want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseOptions(%q) error: %v", tt.args, err)
			}
			if msg := tt.check(o); msg != "" {
				t.Errorf("parseOptions(%q) = %+v: %s", tt.args, o, msg)
			}
		})
	}
}
