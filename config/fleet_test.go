package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestFleetKeys checks the main.yaml keys for running several instances:
// PROXY protocol on the listeners and the shared rate-limit store, with
// their defaults, both forms of the store and the errors (issue 17).
func TestFleetKeys(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		src  string
		want func(m *Main) bool
		err  string // "line:col: path: message" substring; "" = valid
	}{
		{name: "defaults", src: "threads: 1\n", want: func(m *Main) bool {
			return !m.ProxyProtocol && m.ProxyProtocolFrom == nil && m.RateLimitStore == nil &&
				m.RateLimitSync == 100*time.Millisecond && m.RateLimitFleetSize == 1
		}},
		{name: "proxy protocol", src: "proxy_protocol: true\nproxy_protocol_from: [\"10.0.0.0/8\", \"2001:db8::1\"]\n", want: func(m *Main) bool {
			return m.ProxyProtocol && reflect.DeepEqual(m.ProxyProtocolFrom, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::1/128")})
		}},
		{name: "store url", src: "rate_limit_store: redis://10.0.0.5:6379/2\nrate_limit_sync: 50ms\nrate_limit_fleet_size: 3\n", want: func(m *Main) bool {
			return reflect.DeepEqual(m.RateLimitStore, &Redis{Address: "10.0.0.5:6379", DB: 2, KeyPrefix: "aralez:"}) &&
				m.RateLimitSync == 50*time.Millisecond && m.RateLimitFleetSize == 3
		}},
		{name: "store url tls and credentials", src: "rate_limit_store: rediss://fleet:s3cret@redis.internal:6380\n", want: func(m *Main) bool {
			return reflect.DeepEqual(m.RateLimitStore, &Redis{Address: "redis.internal:6380", Username: "fleet", Password: "s3cret", TLS: true, KeyPrefix: "aralez:"})
		}},
		{name: "store block", src: "redis:\n  address: \"[::1]:6379\"\n  username: fleet\n  password_env: REDIS_PW\n  db: 1\n  tls: true\n  key_prefix: \"edge:\"\n", want: func(m *Main) bool {
			return reflect.DeepEqual(m.RateLimitStore, &Redis{Address: "[::1]:6379", Username: "fleet", PasswordEnv: "REDIS_PW", DB: 1, TLS: true, KeyPrefix: "edge:"})
		}},

		{name: "proxy protocol without sources", src: "proxy_protocol: true\n", err: "1:1: proxy_protocol: proxy_protocol needs proxy_protocol_from"},
		{name: "sources without proxy protocol", src: "proxy_protocol_from: [\"10.0.0.1\"]\n", err: "1:1: proxy_protocol_from: proxy_protocol_from needs proxy_protocol: true"},
		{name: "bad source", src: "proxy_protocol: true\nproxy_protocol_from: [\"10.0.0.0/33\"]\n", err: "2:23: proxy_protocol_from[0]:"},
		{name: "bad scheme", src: "rate_limit_store: http://10.0.0.5:6379\n", err: "1:19: rate_limit_store: want redis://host:port[/db]"},
		{name: "password redacted", src: "rate_limit_store: redis://u:pw@10.0.0.5:6379/x\n", err: "redis://u:xxxxx@10.0.0.5:6379/x"},
		{name: "missing port", src: "rate_limit_store: redis://10.0.0.5\n", err: "1:19: rate_limit_store: invalid address \"10.0.0.5\": missing port"},
		{name: "url options", src: "rate_limit_store: redis://10.0.0.5:6379?dial_timeout=1s\n", err: "use the redis block"},
		{name: "both forms", src: "rate_limit_store: redis://10.0.0.5:6379\nredis:\n  address: 10.0.0.5:6379\n", err: "2:1: redis: set rate_limit_store or the redis block, not both"},
		{name: "block without address", src: "redis:\n  db: 1\n", err: "1:1: redis: the redis block needs address"},
		{name: "block unknown key", src: "redis:\n  adress: 10.0.0.5:6379\n", err: `2:3: redis.adress: unknown key "adress"; did you mean "address"?`},
		{name: "block password in file", src: "redis:\n  address: 10.0.0.5:6379\n  password: x\n", err: `3:3: redis.password: unknown key "password"`},
		{name: "sync too slow", src: "rate_limit_sync: 2s\n", err: "1:18: rate_limit_sync: must be at most 1s, got 2s"},
		{name: "sync without unit", src: "rate_limit_sync: 100\n", err: "1:18: rate_limit_sync: want a duration with a unit"},
		{name: "fleet size zero", src: "rate_limit_fleet_size: 0\n", err: "1:24: rate_limit_fleet_size:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMain("m.yaml", []byte(tt.src))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), "m.yaml:"+tt.err) && !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseMain(%q) error = %v; want %q", tt.src, err, tt.err)
				}
				if strings.Contains(err.Error(), "pw@") {
					t.Errorf("ParseMain(%q) error = %v; leaks the password", tt.src, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMain(%q) error = %v", tt.src, err)
			}
			if !tt.want(m) {
				t.Errorf("ParseMain(%q) = %+v (store %+v)", tt.src, *m, m.RateLimitStore)
			}
		})
	}
}

// TestFleetPasswordFromEnvironment checks that Load reads the Redis
// password from the variable password_env names, and refuses an unset
// one (issue 17).
func TestFleetPasswordFromEnvironment(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"main.yaml":      "redis:\n  address: 127.0.0.1:6379\n  password_env: ARALEZ_TEST_REDIS_PW\n",
		"upstreams.yaml": "upstreams: {}\n",
	})
	env := map[string]string{"ARALEZ_TEST_REDIS_PW": "from-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := load(nil, filepath.Join(dir, "main.yaml"), lookup)
	if err != nil || c.Main.RateLimitStore.Password != "from-env" {
		t.Fatalf("load() = %+v, %v; want the password from the environment", c, err)
	}
	d := c.Clone()
	d.Main.RateLimitStore.Password = "changed"
	if c.Main.RateLimitStore.Password != "from-env" {
		t.Error("Clone shares the redis block")
	}
	delete(env, "ARALEZ_TEST_REDIS_PW")
	if _, err := load(nil, filepath.Join(dir, "main.yaml"), lookup); err == nil || !strings.Contains(err.Error(), "redis.password_env: the environment variable ARALEZ_TEST_REDIS_PW named by password_env is not set") {
		t.Errorf("load() without the variable error = %v; want the password_env error", err)
	}
}

// TestFleetValidateBuiltInCode checks the fleet rules on a Main built in
// code.
func TestFleetValidateBuiltInCode(t *testing.T) {
	t.Parallel()
	m := Main{ProxyAddressHTTP: ":1", ProxyProtocol: true, RateLimitSync: 2 * time.Second,
		RateLimitStore: &Redis{Address: "nohost", DB: -1}}
	m.ApplyDefaults()
	err := m.Validate()
	for _, want := range []string{
		"proxy_protocol: proxy_protocol needs proxy_protocol_from",
		"rate_limit_sync: must be greater than zero and at most 1s, got 2s",
		`redis.address: invalid address "nohost": missing port`,
		"redis.db: must not be negative, got -1",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want an error containing %q", err, want)
		}
	}
}

// TestSendProxyProtocol checks the path key send_proxy_protocol: v1 and
// v2 are read, anything else is an error, and a server address reached
// with two settings is an error at the second (issue 17).
func TestSendProxyProtocol(t *testing.T) {
	t.Parallel()
	up := func(paths string) string { return "upstreams:\n  a.test:\n    paths:\n" + paths }
	u, err := ParseUpstreams("u.yaml", []byte(up(`      "/":
        servers: ["10.0.0.1:80"]
        send_proxy_protocol: v2
      "/v1":
        servers: ["10.0.0.2:80"]
        send_proxy_protocol: v1
      "/same":
        servers: ["10.0.0.1:80"]
        send_proxy_protocol: v2
`)))
	if err != nil {
		t.Fatalf("ParseUpstreams: %v", err)
	}
	got := map[string]string{}
	for _, p := range u.Hosts[0].Paths {
		got[p.Prefix] = p.SendProxyProtocol
	}
	if got["/"] != "v2" || got["/v1"] != "v1" || got["/same"] != "v2" {
		t.Errorf("send_proxy_protocol = %v; want / v2, /v1 v1, /same v2", got)
	}
	for _, tt := range []struct{ name, src, want string }{
		{"bad value", up("      \"/\":\n        servers: [\"10.0.0.1:80\"]\n        send_proxy_protocol: v3\n"),
			`u.yaml:6:30: upstreams.a.test.paths./.send_proxy_protocol: unknown send_proxy_protocol "v3"`},
		{"two settings", up("      \"/\":\n        servers: [\"10.0.0.1:80\"]\n        send_proxy_protocol: v2\n      \"/x\":\n        servers: [\"10.0.0.1:80\"]\n"),
			`u.yaml:8:19: upstreams.a.test.paths./x.servers[0]: server "10.0.0.1:80" is used with send_proxy_protocol "" here and "v2" at upstreams.a.test.paths./`},
	} {
		if _, err := ParseUpstreams("u.yaml", []byte(tt.src)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ParseUpstreams error = %v; want %q", tt.name, err, tt.want)
		}
	}
}
