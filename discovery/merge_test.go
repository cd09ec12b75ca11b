package discovery

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aralez-go/aralez/config"
)

// host builds a host whose paths are "prefix=server" pairs; a prefix
// written "=/x" is an exact path.
func host(name string, paths ...string) config.Host {
	h := config.Host{Name: name}
	for _, p := range paths {
		m := config.MatchPrefix
		if rest, ok := strings.CutPrefix(p, "="); ok {
			p, m = rest, config.MatchExact
		}
		prefix, srv, _ := strings.Cut(p, "=")
		path := config.Path{Prefix: prefix, Match: m}
		if srv != "" {
			path.Servers = []config.Server{{Address: srv, Weight: 1}}
		}
		h.Paths = append(h.Paths, path)
	}
	return h
}

func TestMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		file       []config.Host
		discovered []config.Host
		want       string
	}{
		{
			name: "nothing discovered",
			file: []config.Host{host("a.example.com", "/=127.0.0.1:1")},
			want: "a.example.com /=127.0.0.1:1",
		},
		{
			name:       "new host appended after file hosts",
			file:       []config.Host{host("a.example.com", "/=127.0.0.1:1")},
			discovered: []config.Host{host("b.example.com", "/=127.0.0.1:2")},
			want:       "a.example.com /=127.0.0.1:1; b.example.com /=127.0.0.1:2",
		},
		{
			name:       "shared host gets the union of paths",
			file:       []config.Host{host("a.example.com", "/static=127.0.0.1:1")},
			discovered: []config.Host{host("a.example.com", "/=127.0.0.1:2", "/api=127.0.0.1:3")},
			want:       "a.example.com /static=127.0.0.1:1; a.example.com /=127.0.0.1:2; a.example.com /api=127.0.0.1:3",
		},
		{
			name:       "file path wins on conflict",
			file:       []config.Host{host("a.example.com", "/=127.0.0.1:1")},
			discovered: []config.Host{host("a.example.com", "/=127.0.0.1:2", "/api=127.0.0.1:3")},
			want:       "a.example.com /=127.0.0.1:1; a.example.com /api=127.0.0.1:3",
		},
		{
			name: "first discovered entry wins and later ones join the host",
			discovered: []config.Host{
				host("b.example.com", "/=127.0.0.1:2"),
				host("c.example.com", "/=127.0.0.1:4"),
				host("b.example.com", "/=127.0.0.1:9", "/x=127.0.0.1:3"),
			},
			want: "b.example.com /=127.0.0.1:2; b.example.com /x=127.0.0.1:3; c.example.com /=127.0.0.1:4",
		},
		{
			// Issue 14: the file wins over Ingress even for an exact path.
			name:       "file prefix wins over a discovered exact path",
			file:       []config.Host{host("a.example.com", "/api=127.0.0.1:1")},
			discovered: []config.Host{host("a.example.com", "=/api=127.0.0.1:2", "=/x=127.0.0.1:3")},
			want:       "a.example.com /api=127.0.0.1:1; a.example.com =/x=127.0.0.1:3",
		},
		{
			name: "discovered exact and prefix of one path coexist",
			discovered: []config.Host{
				host("b.example.com", "/api=127.0.0.1:2", "=/api=127.0.0.1:3"),
				host("b.example.com", "=/api=127.0.0.1:8", "/api=127.0.0.1:9"),
			},
			want: "b.example.com /api=127.0.0.1:2; b.example.com =/api=127.0.0.1:3",
		},
		{
			name:       "discovered path without servers is kept",
			discovered: []config.Host{host("b.example.com", "/")},
			want:       "b.example.com /=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := &config.Upstreams{Provider: "consul", StickySessions: 5, Hosts: tt.file}
			before := describe(file)
			got := Merge(file, tt.discovered)
			if s := describe(got); s != tt.want {
				t.Errorf("Merge() = %q; want %q", s, tt.want)
			}
			if got.Provider != "consul" || got.StickySessions != 5 {
				t.Errorf("Merge() globals = %q/%d; want consul/5", got.Provider, got.StickySessions)
			}
			if s := describe(file); s != before {
				t.Errorf("Merge() changed its input: %q; was %q", s, before)
			}
		})
	}
}

func TestMergeDoesNotWriteIntoFileArrays(t *testing.T) {
	t.Parallel()
	// Spare capacity in the file's Paths must not be written to.
	paths := make([]config.Path, 1, 4)
	paths[0] = config.Path{Prefix: "/static"}
	file := &config.Upstreams{Hosts: []config.Host{{Name: "a.example.com", Paths: paths}}}
	Merge(file, []config.Host{host("a.example.com", "/=127.0.0.1:2")})
	if spare := paths[:2][1]; spare.Prefix != "" {
		t.Errorf("Merge() wrote %q into the file's spare capacity", spare.Prefix)
	}
	if got := Merge(nil, nil); got == nil || len(got.Hosts) != 0 {
		t.Errorf("Merge(nil, nil) = %v; want an empty table", got)
	}
}

func ExampleMerge() {
	file := &config.Upstreams{Hosts: []config.Host{{
		Name:  "app.example.com",
		Paths: []config.Path{{Prefix: "/", Servers: []config.Server{{Address: "127.0.0.1:8000", Weight: 1}}}},
	}}}
	discovered := []config.Host{
		{Name: "app.example.com", Paths: []config.Path{
			{Prefix: "/", Servers: []config.Server{{Address: "10.0.0.1:80", Weight: 1}}},    // the file wins
			{Prefix: "/api", Servers: []config.Server{{Address: "10.0.0.2:80", Weight: 1}}}, // added
		}},
		{Name: "new.example.com", Paths: []config.Path{{Prefix: "/", Servers: []config.Server{{Address: "10.0.0.3:80", Weight: 1}}}}},
	}
	for _, h := range Merge(file, discovered).Hosts {
		for _, p := range h.Paths {
			fmt.Println(h.Name, p.Prefix, p.Servers[0].Address)
		}
	}
	// Output:
	// app.example.com / 127.0.0.1:8000
	// app.example.com /api 10.0.0.2:80
	// new.example.com / 10.0.0.3:80
}
