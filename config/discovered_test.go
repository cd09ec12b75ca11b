package config

import (
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Header
		err  string
	}{
		{in: "X-A: b", want: Header{"X-A", "b"}},
		{in: " X-A :b:c ", want: Header{"X-A", "b:c"}},
		{in: "X-A", err: "has no colon"},
		{in: "X A: b", err: `header name "X A" is not a valid token`},
		{in: "X-A: b\r\nX-B: c", err: "contains CR, LF or NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseHeader(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("ParseHeader(%q) error = %v; want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseHeader(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormaliseHost(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want, err string }{
		{in: "App.Example.COM.", want: "app.example.com"},
		{in: "*.example.com", want: "*.example.com"},
		{in: "DEFAULT", want: "DEFAULT"},
		{in: "[::1]", want: "[::1]"},
		{in: "a.example.com:80", err: "has no port"},
		{in: "a.*.example.com", err: "wildcard"},
		{in: "", err: "empty host name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := NormaliseHost(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("NormaliseHost(%q) error = %v; want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("NormaliseHost(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}
