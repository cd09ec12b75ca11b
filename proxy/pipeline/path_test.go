package pipeline

import (
	"testing"
)

func TestAppendNormalizedPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		bad            bool
	}{
		{name: "root", in: "/", want: "/"},
		{name: "plain", in: "/api/users", want: "/api/users"},
		{name: "trailing slash kept", in: "/api/", want: "/api/"},
		{name: "duplicate slashes", in: "//api///x", want: "/api/x"},
		{name: "dot", in: "/a/./b", want: "/a/b"},
		{name: "dotdot", in: "/a/b/../c", want: "/a/c"},
		{name: "dotdot above root", in: "/../../etc/passwd", want: "/etc/passwd"},
		{name: "trailing dot", in: "/a/.", want: "/a/"},
		{name: "trailing dotdot", in: "/a/b/..", want: "/a/"},
		{name: "escape public to admin", in: "/public/../admin", want: "/admin"},
		{name: "encoded unreserved decoded", in: "/%61dmin", want: "/admin"},
		{name: "encoded dot segments", in: "/public/%2e%2E/admin", want: "/admin"},
		{name: "encoded slash kept", in: "/a%2fb", want: "/a%2Fb"},
		{name: "encoded backslash kept", in: "/a%5cb", want: "/a%5Cb"},
		{name: "reserved kept upper-cased", in: "/a%3fb%20c", want: "/a%3Fb%20c"},
		{name: "tilde decoded", in: "/%7Euser", want: "/~user"},
		{name: "dotdot not a segment", in: "/a/..b/c", want: "/a/..b/c"},
		{name: "bad escape", in: "/a%zz", bad: true},
		{name: "truncated escape", in: "/a%4", bad: true},
		{name: "no leading slash", in: "a/b", bad: true},
		{name: "empty", in: "", bad: true},
		{name: "control byte", in: "/a\x01b", bad: true},
		// Issue 11: encoded control bytes are refused like raw ones.
		{name: "encoded NUL", in: "/admin%00/x", bad: true},
		{name: "encoded unit separator", in: "/a%1fb", bad: true},
		{name: "encoded DEL", in: "/a%7Fb", bad: true},
		{name: "encoded space kept", in: "/a%20b", want: "/a%20b"},
		{name: "parameters kept", in: "/admin;v=1/x", want: "/admin;v=1/x"},
		{name: "space", in: "/a b", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := AppendNormalizedPath(nil, []byte(tt.in))
			if tt.bad {
				if err == nil {
					t.Fatalf("AppendNormalizedPath(%q) = %q; want error", tt.in, got)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("AppendNormalizedPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			// Normalization is idempotent: the forwarded path routes the same.
			again, err := AppendNormalizedPath(nil, got)
			if err != nil || string(again) != string(got) {
				t.Fatalf("AppendNormalizedPath(%q) = %q, %v; not idempotent", got, again, err)
			}
		})
	}
}

// TestAppendRoutingPath: a segment's ";parameters" are not routed on
// (issue 11).
func TestAppendRoutingPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		bad            bool
	}{
		{name: "none", in: "/admin/x", want: "/admin/x"},
		{name: "root", in: "/", want: "/"},
		{name: "mid segment", in: "/admin;v=1/x", want: "/admin/x"},
		{name: "last segment", in: "/admin;x", want: "/admin"},
		{name: "jsessionid", in: "/admin;jsessionid=1/x", want: "/admin/x"},
		{name: "every segment", in: "/a;1/b;2/c;3", want: "/a/b/c"},
		{name: "empty name merged", in: "/a/;x/b", want: "/a/b"},
		{name: "empty name last", in: "/a/;x", want: "/a/"},
		{name: "only parameters", in: "/;x", want: "/"},
		{name: "trailing slash kept", in: "/a;x/", want: "/a/"},
		{name: "dotdot with parameters", in: "/x/..;/admin", bad: true},
		{name: "dot with parameters", in: "/.;x/admin", bad: true},
		{name: "dotdot name kept", in: "/x/..a;b", want: "/x/..a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := AppendRoutingPath([]byte("keep"), []byte(tt.in))
			if tt.bad {
				if ok || string(got) != "keep" {
					t.Fatalf("AppendRoutingPath(%q) = %q, %v; want failure, dst unchanged", tt.in, got, ok)
				}
				return
			}
			if !ok || string(got) != "keep"+tt.want {
				t.Fatalf("AppendRoutingPath(%q) = %q, %v; want %q", tt.in, got[4:], ok, tt.want)
			}
		})
	}
}

func TestAppendNormalizedHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		bad            bool
	}{
		{name: "plain", in: "example.com", want: "example.com"},
		{name: "port stripped", in: "example.com:8080", want: "example.com"},
		{name: "case folded", in: "ExAmple.COM", want: "example.com"},
		{name: "trailing dot", in: "example.com.", want: "example.com"},
		{name: "trailing dot and port", in: "example.com.:80", want: "example.com"},
		{name: "ipv4", in: "127.0.0.1:6193", want: "127.0.0.1"},
		{name: "ipv6 with port", in: "[::1]:8080", want: "[::1]"},
		{name: "ipv6 no port", in: "[2001:DB8::1]", want: "[2001:db8::1]"},
		{name: "bad port", in: "example.com:80x", bad: true},
		{name: "unclosed ipv6", in: "[::1", bad: true},
		{name: "slash", in: "exa/mple.com", bad: true},
		{name: "empty", in: "", bad: true},
		{name: "only port", in: ":80", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := AppendNormalizedHost(nil, []byte(tt.in))
			if tt.bad {
				if ok {
					t.Fatalf("AppendNormalizedHost(%q) = %q; want failure", tt.in, got)
				}
				return
			}
			if !ok || string(got) != tt.want {
				t.Fatalf("AppendNormalizedHost(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
			}
		})
	}
}

// TestHostPort checks the port part the cache key keeps from a Host
// that AppendNormalizedHost accepted.
func TestHostPort(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"example.com": "", "example.com:8080": ":8080", "example.com.:80": ":80", "example.com:": ":",
		"[::1]": "", "[::1]:8080": ":8080", "[2001:db8::1]:1": ":1", "": "",
	} {
		if got := hostPort([]byte(in)); string(got) != want {
			t.Errorf("hostPort(%q) = %q; want %q", in, got, want)
		}
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/x", "//a//b/", "/a%2Fb", "/%zz", "/./.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := AppendNormalizedPath(nil, []byte(in))
		if err != nil {
			return
		}
		if len(got) == 0 || got[0] != '/' {
			t.Fatalf("AppendNormalizedPath(%q) = %q; want leading slash", in, got)
		}
		again, err := AppendNormalizedPath(nil, got)
		if err != nil || string(again) != string(got) {
			t.Fatalf("AppendNormalizedPath(%q) = %q then %q, %v; not idempotent", in, got, again, err)
		}
	})
}
