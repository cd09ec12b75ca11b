package discovery

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/internal/consultest"
	"github.com/aralez-go/aralez/internal/syncbuf"
)

// logBuffer is a goroutine-safe log sink.
type logBuffer struct{ syncbuf.Buffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond every 10ms until it holds or ceiling passes.
func waitFor(t *testing.T, ceiling time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ceiling)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", ceiling, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recv returns the next update or fails after ceiling.
func recv(t *testing.T, out <-chan Update, ceiling time.Duration) Update {
	t.Helper()
	select {
	case u := <-out:
		return u
	case <-time.After(ceiling):
		t.Fatalf("no update within %v", ceiling)
		return Update{}
	}
}

// noUpdate fails if an update arrives within d.
func noUpdate(t *testing.T, out <-chan Update, d time.Duration) {
	t.Helper()
	select {
	case u := <-out:
		t.Fatalf("unexpected update: %s", describe(u.Upstreams))
	case <-time.After(d):
	}
}

// describe renders hosts as "host path=srv,srv; ..." for assertions; an
// exact path is written "=path".
func describe(up *config.Upstreams) string {
	if up == nil {
		return "<nil>"
	}
	var parts []string
	for _, h := range up.Hosts {
		for _, p := range h.Paths {
			var ss []string
			for _, s := range p.Servers {
				ss = append(ss, s.Address)
			}
			kind := ""
			if p.Match == config.MatchExact {
				kind = "="
			}
			parts = append(parts, h.Name+" "+kind+p.Prefix+"="+strings.Join(ss, ","))
		}
	}
	return strings.Join(parts, "; ")
}

// startRun runs src until the test ends and checks that Run returns nil
// promptly after cancellation.
func startRun(t *testing.T, src Source) <-chan Update {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Update)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s.Run() = %v; want nil", src.Name(), err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s.Run() did not return within 10s of cancellation", src.Name())
		}
	})
	return out
}

func consulBase() *config.Upstreams {
	return &config.Upstreams{
		Provider:       "consul",
		StickySessions: 60,
		Hosts: []config.Host{
			{Name: "static.example.com", Paths: []config.Path{{Prefix: "/", Servers: []config.Server{{Address: "127.0.0.1:9000", Weight: 1}}}}},
			{Name: "app.example.com", Paths: []config.Path{{Prefix: "/static", Servers: []config.Server{{Address: "127.0.0.1:9001", Weight: 1}}}}},
		},
	}
}

func TestConsulBlockingUpdates(t *testing.T) {
	t.Parallel()
	fc := consultest.NewServer(t)
	fc.Set("web", "127.0.0.2:8080", "127.0.0.1:8080")
	fc.Set("api", "@127.0.0.5:7000")

	var logs logBuffer
	cc := &config.Consul{
		Servers: []string{fc.URL()},
		Token:   "s3cr3t-token",
		Services: []config.ConsulService{
			{Proxy: "app.example.com", Path: "/", RealName: "web"},
			{Proxy: "app.example.com", Path: "/api", RealName: "api", Policy: config.Policy{RateLimit: 7}},
			{Proxy: "new.example.com", Path: "/", RealName: "missing"},
		},
	}
	// A long interval and wait: only blocking-query answers can deliver
	// changes within the ceiling below.
	c, err := NewConsul(consulBase(), cc, ConsulOptions{Interval: time.Minute, Wait: time.Minute, Logger: logs.logger()})
	if err != nil {
		t.Fatalf("NewConsul() error = %v", err)
	}
	out := startRun(t, c)

	u := recv(t, out, 5*time.Second)
	if u.Source != "consul" || u.Err != nil || u.Done != nil {
		t.Fatalf("first update = {Source:%q Err:%v Done:%v}; want consul, nil, nil", u.Source, u.Err, u.Done)
	}
	want := "static.example.com /=127.0.0.1:9000; app.example.com /static=127.0.0.1:9001; " +
		"app.example.com /=127.0.0.1:8080,127.0.0.2:8080; app.example.com /api=127.0.0.5:7000; new.example.com /="
	if got := describe(u.Upstreams); got != want {
		t.Fatalf("first table = %q; want %q", got, want)
	}
	if u.Upstreams.Provider != "consul" || u.Upstreams.StickySessions != 60 {
		t.Errorf("globals = %q/%d; want consul/60", u.Upstreams.Provider, u.Upstreams.StickySessions)
	}
	api := u.Upstreams.Hosts[1].Paths[2]
	if api.Policy.RateLimit != 7 || api.LoadBalance != config.DefaultLoadBalance {
		t.Errorf("api path = rate %d lb %q; want 7 %q", api.Policy.RateLimit, api.LoadBalance, config.DefaultLoadBalance)
	}

	// A change arrives through the held query, well before the poll.
	start := time.Now()
	fc.Set("web", "127.0.0.3:8080")
	u = recv(t, out, time.Second)
	want = "static.example.com /=127.0.0.1:9000; app.example.com /static=127.0.0.1:9001; " +
		"app.example.com /=127.0.0.3:8080; app.example.com /api=127.0.0.5:7000; new.example.com /="
	if got := describe(u.Upstreams); got != want {
		t.Fatalf("table after change = %q; want %q", got, want)
	}
	t.Logf("change delivered in %v", time.Since(start))

	// An index bump with the same instances emits nothing.
	fc.Set("api", "@127.0.0.5:7000")
	noUpdate(t, out, 200*time.Millisecond)

	fc.Set("missing", "[::1]:9100")
	u = recv(t, out, time.Second)
	if got, want := describe(u.Upstreams), "new.example.com /=[::1]:9100"; !strings.HasSuffix(got, want) {
		t.Fatalf("table = %q; want suffix %q", got, want)
	}

	// A reloaded file table is merged with the last discovered set.
	c.SetBase(&config.Upstreams{Provider: "consul", Hosts: []config.Host{host("app.example.com", "/=127.0.0.1:9100")}})
	want = "app.example.com /=127.0.0.1:9100; app.example.com /api=127.0.0.5:7000; new.example.com /=[::1]:9100"
	if got := describe(recv(t, out, time.Second).Upstreams); got != want {
		t.Fatalf("table after SetBase = %q; want %q", got, want)
	}

	counts := fc.Counts()
	if counts.Unknown != 0 {
		t.Errorf("requests to other endpoints = %d; want 0", counts.Unknown)
	}
	if counts.Passing == 0 {
		t.Errorf("no request asked for ?passing")
	}
	if len(counts.Tokens) != 1 || counts.Tokens["s3cr3t-token"] == 0 {
		t.Errorf("tokens seen = %v; want only s3cr3t-token", counts.Tokens)
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("log mentions the token: %s", logs.String())
	}
}

func TestConsulFailureKeepsTableAndRecovers(t *testing.T) {
	t.Parallel()
	fc := consultest.NewServer(t)
	fc.Set("web", "127.0.0.1:8080")

	var logs logBuffer
	cc := &config.Consul{
		Servers:  []string{fc.Addr()},
		Services: []config.ConsulService{{Proxy: "app.example.com", Path: "/", RealName: "web"}},
	}
	c, err := NewConsul(nil, cc, ConsulOptions{Interval: 50 * time.Millisecond, Wait: time.Minute, Logger: logs.logger()})
	if err != nil {
		t.Fatalf("NewConsul() error = %v", err)
	}
	out := startRun(t, c)
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), "app.example.com /=127.0.0.1:8080"; got != want {
		t.Fatalf("first table = %q; want %q", got, want)
	}

	fc.SetStatus(http.StatusInternalServerError)
	waitFor(t, 5*time.Second, "a failure log line", func() bool {
		return strings.Contains(logs.String(), "consul query failed")
	})
	noUpdate(t, out, 300*time.Millisecond)
	if n := strings.Count(logs.String(), "consul query failed"); n != 1 {
		t.Errorf("failure logged %d times; want once per outage", n)
	}

	fc.SetStatus(0)
	fc.Set("web", "127.0.0.1:8081")
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), "app.example.com /=127.0.0.1:8081"; got != want {
		t.Fatalf("table after recovery = %q; want %q", got, want)
	}
	waitFor(t, 5*time.Second, "a recovery log line", func() bool {
		return strings.Contains(logs.String(), "consul query recovered")
	})
}

func TestConsulClosedServerRecovers(t *testing.T) {
	t.Parallel()
	fc := consultest.NewServer(t)
	fc.Set("web", "127.0.0.1:8080")
	addr := fc.Addr()

	var logs logBuffer
	cc := &config.Consul{
		Servers:  []string{"http://" + addr},
		Services: []config.ConsulService{{Proxy: "app.example.com", Path: "/", RealName: "web"}},
	}
	c, err := NewConsul(nil, cc, ConsulOptions{Interval: 50 * time.Millisecond, Wait: time.Minute, Logger: logs.logger()})
	if err != nil {
		t.Fatalf("NewConsul() error = %v", err)
	}
	out := startRun(t, c)
	recv(t, out, 5*time.Second)

	// Close the server with the query held open.
	fc.Close()
	waitFor(t, 5*time.Second, "a failure log line", func() bool {
		return strings.Contains(logs.String(), "consul query failed")
	})
	noUpdate(t, out, 200*time.Millisecond)

	// Come back on the same address with new instances.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	fc2 := consultest.NewServerOn(t, ln)
	fc2.Set("web", "127.0.0.1:8082")
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), "app.example.com /=127.0.0.1:8082"; got != want {
		t.Fatalf("table after restart = %q; want %q", got, want)
	}
}

func TestConsulTriesServersInOrder(t *testing.T) {
	t.Parallel()
	// A port with nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	fc := consultest.NewServer(t)
	fc.Set("web", "127.0.0.1:8080")

	cc := &config.Consul{
		Servers:  []string{dead, fc.Addr()},
		Services: []config.ConsulService{{Proxy: "app.example.com", Path: "/", RealName: "web"}},
	}
	var logs logBuffer
	c, err := NewConsul(nil, cc, ConsulOptions{Interval: time.Minute, Wait: time.Minute, Logger: logs.logger()})
	if err != nil {
		t.Fatalf("NewConsul() error = %v", err)
	}
	out := startRun(t, c)
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), "app.example.com /=127.0.0.1:8080"; got != want {
		t.Fatalf("table = %q; want %q", got, want)
	}
	if strings.Contains(logs.String(), "consul query failed") {
		t.Errorf("a working second server still logged a failure: %s", logs.String())
	}
	// Stays on the second server: the change arrives via the held query.
	fc.Set("web", "127.0.0.1:8089")
	if got, want := describe(recv(t, out, time.Second).Upstreams), "app.example.com /=127.0.0.1:8089"; got != want {
		t.Fatalf("table = %q; want %q", got, want)
	}
}

func TestConsulPollFallback(t *testing.T) {
	t.Parallel()
	// A server that ignores ?index and answers at once, always index 0:
	// the source must poll every Interval, not spin.
	var mu sync.Mutex
	hits := 0
	addr := "127.0.0.1:8080"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		a := addr
		mu.Unlock()
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		_ = json.NewEncoder(w).Encode([]*api.ServiceEntry{{Node: &api.Node{Address: "10.0.0.1"}, Service: &api.AgentService{Address: host, Port: p}}})
	}))
	t.Cleanup(srv.Close)

	cc := &config.Consul{
		Servers:  []string{srv.URL},
		Services: []config.ConsulService{{Proxy: "app.example.com", Path: "/", RealName: "web"}},
	}
	interval := 100 * time.Millisecond
	c, err := NewConsul(nil, cc, ConsulOptions{Interval: interval, Wait: time.Minute})
	if err != nil {
		t.Fatalf("NewConsul() error = %v", err)
	}
	out := startRun(t, c)
	recv(t, out, 5*time.Second)
	mu.Lock()
	addr = "127.0.0.1:8081"
	mu.Unlock()
	start := time.Now()
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), "app.example.com /=127.0.0.1:8081"; got != want {
		t.Fatalf("table = %q; want %q", got, want)
	}
	elapsed := time.Since(start)
	mu.Lock()
	n := hits
	mu.Unlock()
	// One query per interval since the start, give or take scheduling.
	if limit := int(elapsed/interval) + 5; n > limit {
		t.Errorf("queries = %d in %v; want <= %d (polling, not spinning)", n, elapsed, limit)
	}
}

func TestConsulServers(t *testing.T) {
	t.Parallel()
	entry := func(node, svc string, port, weight int) *api.ServiceEntry {
		return &api.ServiceEntry{Node: &api.Node{Address: node}, Service: &api.AgentService{Address: svc, Port: port, Weights: api.AgentWeights{Passing: weight}}}
	}
	tests := []struct {
		name    string
		entries []*api.ServiceEntry
		want    []config.Server
	}{
		{"empty", nil, []config.Server{}},
		{"service address wins", []*api.ServiceEntry{entry("10.0.0.1", "10.0.1.1", 80, 1)}, []config.Server{{Address: "10.0.1.1:80", Weight: 1}}},
		{"node address fallback", []*api.ServiceEntry{entry("10.0.0.1", "", 80, 0)}, []config.Server{{Address: "10.0.0.1:80", Weight: 1}}},
		{"ipv6 bracketed", []*api.ServiceEntry{entry("", "fd00::1", 8443, 3)}, []config.Server{{Address: "[fd00::1]:8443", Weight: 3}}},
		{"sorted and deduplicated", []*api.ServiceEntry{
			entry("", "10.0.0.3", 80, 1), entry("", "10.0.0.1", 80, 1), entry("", "10.0.0.3", 80, 1),
		}, []config.Server{{Address: "10.0.0.1:80", Weight: 1}, {Address: "10.0.0.3:80", Weight: 1}}},
		{"no port or address skipped", []*api.ServiceEntry{
			entry("", "10.0.0.1", 0, 1), entry("", "", 80, 1), {Node: nil, Service: nil}, nil,
		}, []config.Server{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := consulServers(tt.entries); !slices.Equal(got, tt.want) {
				t.Errorf("consulServers() = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestNewConsul(t *testing.T) {
	t.Parallel()
	svc := []config.ConsulService{{Proxy: "a.example.com", Path: "/", RealName: "a"}}
	tests := []struct {
		name string
		c    *config.Consul
		sub  string // "" = no error
	}{
		// Issue 14: a block without services (or none) is tag mode.
		{"nil block", nil, ""},
		{"no services", &config.Consul{Servers: []string{"127.0.0.1:8500"}}, ""},
		{"services", &config.Consul{Services: svc}, ""},
		{"bad scheme", &config.Consul{Servers: []string{"ftp://127.0.0.1:8500"}, Services: svc}, `server "ftp://127.0.0.1:8500"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewConsul(nil, tt.c, ConsulOptions{})
			if tt.sub == "" {
				if err != nil {
					t.Errorf("NewConsul() error = %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.sub) {
				t.Errorf("NewConsul() error = %v; want it to contain %q", err, tt.sub)
			}
		})
	}
}

func TestNextIndex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		prev, got uint64
		want      uint64
	}{
		{"forward", 5, 9, 9},
		{"same", 5, 5, 5},
		{"backwards resets", 9, 5, 0},
		{"zero from start", 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := nextIndex(tt.prev, tt.got); got != tt.want {
				t.Errorf("nextIndex(%d, %d) = %d; want %d", tt.prev, tt.got, got, tt.want)
			}
		})
	}
}
