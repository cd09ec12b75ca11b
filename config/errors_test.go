package config

import (
	"errors"
	"strings"
	"testing"
)

// up wraps a path body in a minimal upstreams document. The body's first
// line is line 5, indented to the path level (8 spaces).
func up(body string) string {
	return "upstreams:\n  a.example.com:\n    paths:\n      \"/\":\n" + indent(body, "        ")
}

func indent(s, pfx string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pfx + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestParseErrors checks every error path: the position and a message
// substring of the first error.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	const srv = "servers: [\"10.0.0.1:80\"]\n"
	tests := []struct {
		name string
		main bool // parse as main.yaml, else upstreams.yaml
		src  string
		pos  string // "line:col"
		msg  string
	}{
		// YAML itself.
		{name: "syntax with column", src: "client_headers: [\"a: b\"\n", pos: "1:17", msg: "YAML syntax"},
		{name: "syntax", src: "provider: file\n  x: 1\n", pos: "2:4", msg: "YAML syntax: mapping values are not allowed"},
		{name: "duplicate key", src: "rate_limit: 1\nrate_limit: 2\n", pos: "2:1", msg: `duplicate key "rate_limit" (first at line 1)`},
		{name: "unknown alias", src: "rate_limit: *nope\n", pos: "1:13", msg: "alias *nope refers to no anchor"},
		{name: "tag", src: "rate_limit: !!int 12\n", pos: "1:13", msg: "YAML tag !!int is not supported"},
		{name: "two documents", src: "provider: file\n---\nprovider: file\n", pos: "2:1", msg: "one YAML document"},
		{name: "nesting too deep", src: "a: " + strings.Repeat("[", 20000), pos: "1:1", msg: "exceeded max depth"},
		{name: "top level list", src: "- a\n", pos: "1:1", msg: "want a mapping, got a list"},

		// Unknown keys.
		{name: "unknown global key", src: "provder: file\n", pos: "1:1", msg: `unknown key "provder"; did you mean "provider"?`},
		{name: "unknown path key", src: up(srv + "servres: []\n"), pos: "6:9", msg: `unknown key "servres"; did you mean "servers"?`},
		{name: "unknown host key", src: "upstreams:\n  a.example.com:\n    rate_limt: 1\n    paths:\n      \"/\":\n        " + srv, pos: "3:5", msg: `did you mean "rate_limit"?`},
		{name: "unknown auth key", src: up(srv + "authorization: {type: basic, data: \"a:b\", extra: 1}\n"), pos: "6:51", msg: `unknown key "extra"`},

		// Types, without coercion.
		{name: "float for int", src: "rate_limit: 1.5\n", pos: "1:13", msg: "want an integer, got a number (1.5)"},
		{name: "quoted int", src: "rate_limit: \"10\"\n", pos: "1:13", msg: `got the string "10"; remove the quotes`},
		{name: "quoted bool", src: "to_https: \"true\"\n", pos: "1:11", msg: `want true or false, got "true"`},
		{name: "yes is not a bool", src: "to_https: yes\n", pos: "1:11", msg: `want true or false, got "yes"`},
		{name: "int for string", src: up("servers: [8080]\n"), pos: "5:19", msg: `want a string, got an integer (8080); quote it: "8080"`},
		{name: "string for list", src: up("servers: \"10.0.0.1:80\"\n"), pos: "5:18", msg: "want a list"},
		{name: "mapping for bool", src: up(srv + "healthcheck: {a: 1}\n"), pos: "6:22", msg: "want true or false, got a mapping"},

		// Hosts.
		{name: "duplicate host after normalising", src: "upstreams:\n  A.example.com:\n    paths: {\"/\": {servers: [\"10.0.0.1:80\"]}}\n  a.example.com.:\n    paths: {\"/\": {servers: [\"10.0.0.1:80\"]}}\n", pos: "4:3", msg: `host "a.example.com" defined twice (first at line 2)`},
		{name: "wildcard in the middle", src: "upstreams:\n  a.*.com:\n    paths: {\"/\": {" + strings.TrimSuffix(srv, "\n") + "}}\n", pos: "2:3", msg: "a wildcard is \"*.\" followed by a name"},
		{name: "wildcard glued", src: "upstreams:\n  \"*a.com\":\n    paths: {\"/\": {" + strings.TrimSuffix(srv, "\n") + "}}\n", pos: "2:3", msg: "wildcard"},
		{name: "host with port", src: "upstreams:\n  a.com:80:\n    paths: {\"/\": {" + strings.TrimSuffix(srv, "\n") + "}}\n", pos: "2:3", msg: "a host key has no port"},
		{name: "bad host name", src: "upstreams:\n  a..com:\n    paths: {\"/\": {" + strings.TrimSuffix(srv, "\n") + "}}\n", pos: "2:3", msg: "empty label"},
		{name: "host without paths", src: "upstreams:\n  a.example.com:\n    rate_limit: 5\n", pos: "2:3", msg: "host has no paths"},
		{name: "host null", src: "upstreams:\n  a.example.com:\n", pos: "2:3", msg: "host has no paths"},

		// Paths.
		{name: "path without slash", src: "upstreams:\n  a.example.com:\n    paths:\n      api:\n        " + srv, pos: "4:7", msg: `path "api" must start with "/"`},
		{name: "path with space", src: "upstreams:\n  a.example.com:\n    paths:\n      \"/a b\":\n        " + srv, pos: "4:7", msg: "no spaces"},
		{name: "no servers", src: up("servers: []\n"), pos: "4:7", msg: "no servers: give at least one server or redirect_to"},
		{name: "no servers key", src: up("to_https: true\n"), pos: "4:7", msg: "no servers"},
		{name: "bad redirect", src: up("redirect_to: \"example.com/x\"\n"), pos: "5:22", msg: "want an http:// or https:// URL"},
		{name: "unknown load_balance", src: up(srv + "load_balance: fastest\n"), pos: "6:23", msg: `unknown load_balance "fastest"; want round_robin, least_conn, random`},
		{name: "load_balance typo", src: up(srv + "load_balance: least_con\n"), pos: "6:23", msg: `did you mean "least_conn"?`},
		{name: "auth_response_headers token", src: up(srv + "auth_response_headers: [\"Remote User\"]\n"), pos: "6:33", msg: `header name "Remote User" is not a valid token`},

		// Cache.
		{name: "cache not a bool", src: "cache: on\n", pos: "1:8", msg: `want true or false, got "on"`},
		{name: "cache_bypass bad header", src: up(srv + "cache_bypass: [\"X Debug\"]\n"), pos: "6:24", msg: `"X Debug" is neither a header name nor "cookie:NAME"`},
		{name: "cache_bypass bad cookie", src: "cache_bypass: [\"cookie:a b\"]\n", pos: "1:16", msg: `cookie name "a b" is not a valid token`},
		{name: "cache_ttl zero", src: up(srv + "cache_ttl: 0\n"), pos: "6:20", msg: "must be a positive integer, got 0"},
		{name: "cache_ttl at host level", src: "upstreams:\n  a.example.com:\n    cache_ttl: 5\n    paths:\n      \"/\":\n        " + srv, pos: "3:5", msg: `unknown key "cache_ttl"`},
		{name: "path max_request_body_bytes negative", src: up(srv + "max_request_body_bytes: -1\n"), pos: "6:33", msg: "at least 0"},
		{main: true, name: "cache_size_mb negative", src: "cache_size_mb: -1\n", pos: "1:16", msg: "at least 0"},
		{main: true, name: "cache_ttl duration", src: "cache_ttl: 60s\n", pos: "1:12", msg: "want an integer"},
		{main: true, name: "cache_status_header token", src: "cache_status_header: \"X Cache\"\n", pos: "1:22", msg: `header name "X Cache" is not a valid token`},

		// Servers.
		{name: "server without port", src: up("servers: [\"10.0.0.1\"]\n"), pos: "5:19", msg: "missing port"},
		// The whole value is quoted, not only its first word.
		{name: "server with spaces", src: up("servers: [\"not an addr\"]\n"), pos: "5:19", msg: `server "not an addr": invalid address "not": missing port`},
		{name: "server option quotes the value", src: up("servers: [\"10.0.0.1:80  weight=x\"]\n"), pos: "5:19", msg: `server "10.0.0.1:80  weight=x": invalid weight "x"`},
		{name: "server port zero", src: up("servers: [\"10.0.0.1:0\"]\n"), pos: "5:19", msg: "port 0 is out of range 1-65535"},
		{name: "server port too big", src: up("servers: [\"10.0.0.1:65536\"]\n"), pos: "5:19", msg: "out of range"},
		{name: "server port name", src: up("servers: [\"10.0.0.1:http\"]\n"), pos: "5:19", msg: `port "http" is not a number`},
		{name: "server with a scheme", src: up("servers: [\"http://10.0.0.1:80\"]\n"), pos: "5:19",
			msg: `invalid address "http://10.0.0.1:80": want host:port, without a scheme (upstream TLS and HTTP/2 are detected)`},
		{main: true, name: "listener with a scheme", src: "config_address: \"http://127.0.0.1:3000\"\n", pos: "1:17",
			msg: `invalid address "http://127.0.0.1:3000": want host:port, without a scheme`},
		{name: "server ipv6 unbracketed", src: up("servers: [\"::1:8080\"]\n"), pos: "5:19", msg: "an IPv6 address must be in brackets, as [::1]:8080"},
		{name: "server ipv4 bracketed", src: up("servers: [\"[10.0.0.1]:80\"]\n"), pos: "5:19", msg: "only IPv6 addresses go in brackets"},
		{name: "server bad host", src: up("servers: [\"bad!host:80\"]\n"), pos: "5:19", msg: `character '!' not allowed`},
		{name: "second server bad", src: up("servers:\n  - \"10.0.0.1:80\"\n  - \"10.0.0.2:x\"\n"), pos: "7:13", msg: "servers[1]"},
		{name: "weight zero", src: up("servers: [\"10.0.0.1:80 weight=0\"]\n"), pos: "5:19", msg: `invalid weight "0"`},
		{name: "unknown server option", src: up("servers: [\"10.0.0.1:80 fast\"]\n"), pos: "5:19", msg: `unknown server option "fast"`},

		// Headers.
		{name: "header without colon", src: "server_headers: [\"X-Foo bar\"]\n", pos: "1:18", msg: `has no colon; want "Name: Value"`},
		{name: "header bad name", src: "client_headers: [\"X Foo: bar\"]\n", pos: "1:18", msg: `header name "X Foo" is not a valid token`},
		{name: "header empty name", src: "client_headers: [\": bar\"]\n", pos: "1:18", msg: `header name "" is not a valid token`},
		{name: "header CR", src: "client_headers: [\"X-Foo: a\\rb\"]\n", pos: "1:18", msg: "contains CR, LF or NUL"},
		{name: "header LF", src: up(srv + "server_headers: [\"X-Foo: a\\nSet-Cookie: x\"]\n"), pos: "6:26", msg: "contains CR, LF or NUL"},
		{name: "header NUL", src: "client_headers: [\"X-Foo: a\\0b\"]\n", pos: "1:18", msg: "contains CR, LF or NUL"},

		// Limits.
		{name: "rate_limit zero", src: "rate_limit: 0\n", pos: "1:13", msg: "must be a positive integer, got 0"},
		{name: "rate_limit negative", src: up(srv + "rate_limit: -5\n"), pos: "6:21", msg: "must be a positive integer, got -5"},
		{name: "x4xx_limit zero", src: "x4xx_limit: 0\n", pos: "1:13", msg: "must be a positive integer, got 0"},
		{name: "sticky negative", src: "sticky_sessions: -1\n", pos: "1:18", msg: "must be at least 0"},

		// Auth.
		{name: "unknown auth type", src: "authorization: {type: digest, data: x}\n", pos: "1:23", msg: `unknown authorization type "digest"; want basic, apikey, jwt, forward`},
		{name: "auth without type", src: "authorization: {data: x}\n", pos: "1:1", msg: "authorization needs a type"},
		{name: "forward not url", src: "authorization: {type: forward, data: \"ftp://auth\"}\n", pos: "1:38", msg: "want an http:// or https:// URL"},
		{name: "forward two urls", src: "authorization: {type: forward, data: [\"http://a\", \"http://b\"]}\n", pos: "1:38", msg: "one http:// or https:// URL"},
		{name: "basic without colon", src: "authorization: {type: basic, data: [\"admin\"]}\n", pos: "1:36", msg: `is not "user:password"`},
		{name: "basic without data", src: "authorization: {type: basic}\n", pos: "1:1", msg: "basic auth needs data"},
		{name: "basic user twice", src: "authorization: {type: basic, data: [\"a:1\", \"b:2\", \"a:3\"]}\n", pos: "1:36", msg: `basic auth user "a" given twice`},
		{name: "apikey int", src: "authorization: {type: apikey, data: 1234}\n", pos: "1:37", msg: "quote it"},

		// CIDRs.
		{name: "bad cidr", src: "allow: [\"10.0.0.0/33\"]\n", pos: "1:9", msg: `invalid CIDR "10.0.0.0/33"`},
		{name: "bad ip", src: up(srv + "deny: [\"nope\"]\n"), pos: "6:16", msg: `invalid CIDR or IP address "nope"`},

		// Enums and blocks.
		{name: "unknown provider", src: "provider: etcd\n", pos: "1:11", msg: `unknown provider "etcd"; want file, consul, kubernetes`},
		{name: "consul unknown key", src: "consul:\n  servers: [\"http://c:8500\"]\n  tokn: x\n", pos: "3:3", msg: `did you mean "token"?`},
		{name: "consul bad server", src: "consul:\n  servers: [\"c\"]\n", pos: "2:13", msg: "missing port"},
		{name: "service without hostname", src: "kubernetes:\n  services:\n    - upstream: svc\n", pos: "3:7", msg: "service needs hostname"},
		{name: "service bad path", src: "kubernetes:\n  services:\n    - {hostname: a, upstream: b, path: x}\n", pos: "3:40", msg: `must start with "/"`},
		{name: "bad ingress class", src: "kubernetes:\n  ingress_class: Edge_1\n", pos: "2:18", msg: `ingress_class "Edge_1" is not a Kubernetes object name`},
		{name: "globals bad auth", src: "globals:\n  authorization: [\"digest\", \"x\"]\n", pos: "2:18", msg: "unknown authorization type"},

		// main.yaml.
		{main: true, name: "main syntax", src: "threads: [\n", pos: "1:10", msg: "YAML syntax"},
		{main: true, name: "main unknown key", src: "thread: 4\n", pos: "1:1", msg: `unknown key "thread"; did you mean "threads"?`},
		{main: true, name: "main float", src: "threads: 1.5\n", pos: "1:10", msg: "want an integer"},
		{main: true, name: "main yes", src: "daemon: yes\n", pos: "1:9", msg: `want true or false, got "yes"`},
		{main: true, name: "main duplicate", src: "threads: 1\nthreads: 2\n", pos: "2:1", msg: "duplicate key"},
		{main: true, name: "hc_method lower case", src: "hc_method: get\n", pos: "1:12", msg: `did you mean "GET"?`},
		{main: true, name: "hc_method unknown", src: "hc_method: PUT\n", pos: "1:12", msg: "want HEAD, GET, POST"},
		{main: true, name: "log_level", src: "log_level: verbose\n", pos: "1:12", msg: "unknown log_level"},
		{main: true, name: "access_log", src: "access_log: some\n", pos: "1:13", msg: "want all, error, off"},
		{main: true, name: "duration int", src: "read_timeout: 10\n", pos: "1:15", msg: `want a duration with a unit such as "10s"`},
		{main: true, name: "duration zero", src: "read_timeout: \"0s\"\n", pos: "1:15", msg: "greater than zero"},
		{main: true, name: "duration negative", src: "drain_timeout: -1s\n", pos: "1:16", msg: "greater than zero"},
		{main: true, name: "idle_release_timeout negative", src: "idle_release_timeout: -1s\n", pos: "1:23", msg: "idle_release_timeout: duration must be greater than zero"},
		{main: true, name: "duration garbage", src: "idle_timeout: ten\n", pos: "1:15", msg: `invalid duration "ten"`},
		{main: true, name: "listen without port", src: "proxy_address_http: \"0.0.0.0\"\n", pos: "1:21", msg: "missing port"},
		{main: true, name: "listen ipv6 unbracketed", src: "proxy_address_tls: \"::1:443\"\n", pos: "1:20", msg: "brackets"},
		{main: true, name: "listen port range", src: "config_address: \"127.0.0.1:99999\"\n", pos: "1:17", msg: "out of range"},
		{main: true, name: "trusted proxy", src: "trusted_proxies: [\"10.0.0.0/8\", \"300.1.1.1\"]\n", pos: "1:33", msg: `trusted_proxies[1]: invalid CIDR or IP address "300.1.1.1"`},
		{main: true, name: "tls api without cert", src: "config_tls_address: \"127.0.0.1:3001\"\n", pos: "1:1", msg: "needs config_tls_certificate and config_tls_key_file"},
		{main: true, name: "file server without folder", src: "file_server_address: \"127.0.0.1:3002\"\n", pos: "1:1", msg: "needs file_server_folder"},
		{main: true, name: "hc_interval zero", src: "hc_interval: 0\n", pos: "1:14", msg: "must be a positive integer, got 0"},
		{main: true, name: "max_header_bytes zero", src: "max_header_bytes: 0\n", pos: "1:19", msg: "positive integer"},
		{main: true, name: "h2_max_concurrent_streams zero", src: "h2_max_concurrent_streams: 0\n", pos: "1:28", msg: "h2_max_concurrent_streams"},
		{main: true, name: "h2_stream_window_bytes below the protocol's", src: "h2_stream_window_bytes: 65534\n", pos: "1:25", msg: "h2_stream_window_bytes"},
		{main: true, name: "h2_connection_window_bytes over 2^31-1", src: "h2_connection_window_bytes: 2147483648\n", pos: "1:29", msg: "h2_connection_window_bytes"},
		{main: true, name: "max_request_body_bytes negative", src: "max_request_body_bytes: -1\n", pos: "1:25", msg: "must be at least 0"},
		{main: true, name: "health timeout above interval", src: "health_check_interval: 1s\nhealth_check_timeout: 2s\n", pos: "2:23", msg: "exceeds the health check interval"},
		{main: true, name: "log_file fields", src: "log_file: \"/tmp/x.log, big\"\n", pos: "1:11", msg: "field 2 of log_file must be a positive integer"},
		{main: true, name: "string list for string", src: "pid_file: [a]\n", pos: "1:11", msg: "want a string, got a list"},
		{main: true, name: "listener twice", src: "proxy_address_http: \"127.0.0.1:8080\"\nconfig_address: \"127.0.0.1:8080\"\n", pos: "2:17",
			msg: `config_address "127.0.0.1:8080" is the address of proxy_address_http "127.0.0.1:8080"; each listener needs its own`},
		{main: true, name: "listener on the default", src: "config_address: \"127.0.0.1:6193\"\n", pos: "1:17",
			msg: `is the address of proxy_address_http "0.0.0.0:6193" (the default)`},
		{main: true, name: "listener under a wildcard", src: "proxy_address_http: \":8080\"\nfile_server_folder: /srv\nfile_server_address: \"[::1]:8080\"\n", pos: "3:22",
			msg: `file_server_address "[::1]:8080" is the address of proxy_address_http ":8080"`},
		{main: true, name: "keep-alive probes over the kernel's", src: "tcp_keepalive_count: 128\n", pos: "1:22", msg: "must be at most 127, got 128"},
		{main: true, name: "keep-alive idle over the kernel's", src: "tcp_keepalive_idle: 32768\n", pos: "1:21", msg: "must be at most 32767, got 32768"},
		{main: true, name: "keep-alive interval over the kernel's", src: "tcp_keepalive_interval: 40000\n", pos: "1:25", msg: "must be at most 32767"},
		{main: true, name: "grace period zero", src: "grace_period_seconds: 0\n", pos: "1:23", msg: "positive integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tt.main {
				_, err = ParseMain("t.yaml", []byte(tt.src))
			} else {
				_, err = ParseUpstreams("t.yaml", []byte(tt.src))
			}
			var el ErrorList
			if !errors.As(err, &el) || len(el) == 0 {
				t.Fatalf("parse(%q) error = %v; want an ErrorList", tt.src, err)
			}
			got := el[0].Error()
			if want := "t.yaml:" + tt.pos + ": "; !strings.HasPrefix(got, want) || !strings.Contains(got, tt.msg) {
				t.Errorf("parse(%q) first error = %q; want prefix %q and %q (all: %v)", tt.src, got, want, tt.msg, err)
			}
		})
	}
}
