package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/discovery"
	"github.com/aralez-go/aralez/metrics"
)

const (
	testKey = "s3cret-master-key"
	docA    = "upstreams:\n  a.test:\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:9001\"]\n"
	docB    = "upstreams:\n  b.test:\n    paths:\n      \"/\":\n        to_https: true\n        servers: [\"127.0.0.1:9002\", \"127.0.0.1:9003 weight=2\"]\n      \"/api\":\n        servers: [\"127.0.0.1:9004\"]\n"
	docBad  = "upstreams:\n  bad.test:\n    paths:\n      \"/\":\n        servers: [\"not an address\"]\n        bogus_key: 1\n"
	// docReject is valid but the fake reload loop refuses to compile it.
	docReject = "upstreams:\n  reject.test:\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:9005\"]\n"
)

var discard = slog.New(slog.DiscardHandler)

// reloadLoop stands in for cmd's single reload goroutine: it applies
// updates from the push and file sources, skipping a table whose digest
// equals the running one, and answers Done.
type reloadLoop struct {
	mu          sync.Mutex // guards the fields below
	digest      string
	applies     int
	fileUpdates int
	last        *config.Upstreams
}

func (l *reloadLoop) run(ctx context.Context, in <-chan discovery.Update) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-in:
			err := u.Err
			if err == nil {
				err = l.apply(u.Upstreams)
			}
			l.mu.Lock()
			if u.Source == "file" {
				l.fileUpdates++
			}
			l.mu.Unlock()
			if u.Done != nil {
				u.Done <- err
			}
		}
	}
}

func (l *reloadLoop) apply(up *config.Upstreams) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := discovery.Digest(up)
	if d == l.digest {
		return nil
	}
	for _, h := range up.Hosts {
		if h.Name == "reject.test" {
			return errors.New(`compiling route "reject.test/": simulated failure`)
		}
	}
	l.digest, l.last = d, up
	l.applies++
	return nil
}

func (l *reloadLoop) counts() (applies, fileUpdates int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applies, l.fileUpdates
}

type fixedStatus StatusView

func (f fixedStatus) Status() StatusView { return StatusView(f) }

type env struct {
	url    string
	srv    *Server
	loop   *reloadLoop
	path   string
	client *http.Client
}

type envOpts struct {
	disabled bool
	noKey    bool
	noPath   bool
	watch    bool
	maxBody  int64
}

// start runs a Server on 127.0.0.1 with a Push feeding a fake reload
// loop, and with eo.watch a real file watcher on upstreams.yaml.
func start(t *testing.T, eo envOpts) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	path := filepath.Join(dir, "upstreams.yaml")
	if err := os.WriteFile(path, []byte(docA), 0o640); err != nil {
		t.Fatal(err)
	}
	loop := &reloadLoop{}
	initial, err := config.LoadUpstreams(path)
	if err != nil {
		t.Fatal(err)
	}
	loop.digest, loop.last = discovery.Digest(initial), initial

	updates := make(chan discovery.Update)
	push := discovery.NewPush()
	var wg sync.WaitGroup
	wg.Go(func() { push.Run(ctx, updates) })
	wg.Go(func() { loop.run(ctx, updates) })
	if eo.watch {
		f := discovery.NewFile(path, 20*time.Millisecond, discard)
		wg.Go(func() { f.Run(ctx, updates) })
	}

	m := metrics.New()
	m.Observe([]byte("GET"), metrics.ProtoHTTP11, 200, -1, 0.01)
	o := Options{
		MasterKey:        testKey,
		ConfigAPIEnabled: !eo.disabled,
		UpstreamsConf:    path,
		Push:             push,
		Status:           fixedStatus(sampleStatus()),
		Metrics:          m.Handler(),
		Logger:           discard,
		MaxBodyBytes:     eo.maxBody,
		ApplyTimeout:     10 * time.Second,
	}
	if eo.noKey {
		o.MasterKey = ""
	}
	if eo.noPath {
		o.UpstreamsConf = ""
	}
	s := NewServer(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := s.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown() = %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve() = %v; want nil after Shutdown", err)
		}
		cancel()
		wg.Wait()
	})
	return &env{url: "http://" + ln.Addr().String(), srv: s, loop: loop, path: path,
		client: &http.Client{Timeout: 20 * time.Second}}
}

// do sends a request and returns the status and body.
func (e *env) do(t *testing.T, method, target string, body io.Reader, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+target, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// noLength hides a reader's length so the client sends it chunked.
type noLength struct{ io.Reader }

func TestConfStatusCodes(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("# padding\n", 200) + docA // about 2 KiB
	tests := []struct {
		name     string
		eo       envOpts
		target   string
		body     io.Reader
		hdr      []string
		code     int
		contains []string
		applied  bool
	}{
		{name: "applied", target: "/conf?key=" + testKey, body: strings.NewReader(docB), code: 200,
			contains: []string{"config applied: 1 hosts, 2 paths"}, applied: true},
		{name: "bearer key", target: "/conf", body: strings.NewReader(docB), hdr: []string{"Authorization", "Bearer " + testKey},
			code: 200, applied: true},
		{name: "disabled", eo: envOpts{disabled: true}, target: "/conf?key=" + testKey, body: strings.NewReader(docB),
			code: 403, contains: []string{"config_api_enabled"}},
		{name: "no master key configured", eo: envOpts{noKey: true}, target: "/conf?key=" + testKey,
			body: strings.NewReader(docB), code: 403, contains: []string{"read-only", "set master_key in main.yaml (or the JWT_KEY environment variable)"}},
		{name: "missing key", target: "/conf", body: strings.NewReader(docB), code: 401},
		{name: "empty key", target: "/conf?key=", body: strings.NewReader(docB), code: 401},
		{name: "wrong key", target: "/conf?key=nope", body: strings.NewReader(docB), code: 403, contains: []string{"wrong master key"}},
		{name: "wrong bearer", target: "/conf", body: strings.NewReader(docB), hdr: []string{"Authorization", "Bearer " + testKey + "x"}, code: 403},
		{name: "key prefix is wrong", target: "/conf?key=" + testKey[:5], body: strings.NewReader(docB), code: 403},
		{name: "too large", eo: envOpts{maxBody: 1024}, target: "/conf?key=" + testKey, body: strings.NewReader(big), code: 413},
		{name: "too large chunked", eo: envOpts{maxBody: 1024}, target: "/conf?key=" + testKey,
			body: noLength{strings.NewReader(big)}, code: 413},
		{name: "at the limit", eo: envOpts{maxBody: int64(len(docB))}, target: "/conf?key=" + testKey,
			body: strings.NewReader(docB), code: 200, applied: true},
		{name: "invalid yaml", target: "/conf?key=" + testKey, body: strings.NewReader(docBad), code: 400,
			contains: []string{"<api>:5:", "<api>:6:", "bogus_key"}},
		{name: "syntax error", target: "/conf?key=" + testKey, body: strings.NewReader("upstreams: [\n  : :"), code: 400,
			contains: []string{"<api>:"}},
		{name: "compile rejected", target: "/conf?key=" + testKey, body: strings.NewReader(docReject), code: 400,
			contains: []string{"config rejected", "simulated failure"}},
		{name: "save without path", eo: envOpts{noPath: true}, target: "/conf?key=" + testKey + "&save=true",
			body: strings.NewReader(docB), code: 400, contains: []string{"upstreams_conf"}},
		{name: "wrong method", target: "/conf?key=" + testKey, code: 405},
		// An empty push (a script posting a missing or empty file) would
		// empty the routing table, and with save the upstreams file.
		{name: "empty body", target: "/conf?key=" + testKey + "&save", body: strings.NewReader(""), code: 400,
			contains: []string{"empty body", "upstreams: {}"}},
		{name: "blank and comments only", target: "/conf?key=" + testKey + "&save", body: strings.NewReader("\n# nothing\n---\n  \n"),
			code: 400, contains: []string{"empty body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tt.eo)
			method := "POST"
			if tt.body == nil {
				method = "GET"
			}
			code, body := e.do(t, method, tt.target, tt.body, tt.hdr...)
			if code != tt.code {
				t.Fatalf("%s %s = %d %q; want %d", method, tt.target, code, body, tt.code)
			}
			for _, c := range tt.contains {
				if !strings.Contains(body, c) {
					t.Errorf("body = %q; want it to contain %q", body, c)
				}
			}
			applies, _ := e.loop.counts()
			if want := map[bool]int{true: 1, false: 0}[tt.applied]; applies != want {
				t.Errorf("applies = %d; want %d", applies, want)
			}
			if tt.applied {
				e.loop.mu.Lock()
				host := e.loop.last.Hosts[0].Name
				e.loop.mu.Unlock()
				if host != "b.test" {
					t.Errorf("serving host = %q; want b.test", host)
				}
			}
			// No case here saves: the file is never touched.
			if b, _ := os.ReadFile(e.path); string(b) != docA {
				t.Errorf("upstreams file changed to %q; want untouched", b)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".upstreams.yaml.*.tmp"))
	return m
}

func TestConfSaveAppliesOnce(t *testing.T) {
	t.Parallel()
	e := start(t, envOpts{watch: true})
	fi0, _ := os.Stat(e.path)

	code, body := e.do(t, "POST", "/conf?key="+testKey+"&save=true", strings.NewReader(docB))
	if code != 200 || !strings.Contains(body, "saved to "+e.path) {
		t.Fatalf("POST /conf save = %d %q; want 200 saved", code, body)
	}
	if b, _ := os.ReadFile(e.path); string(b) != docB {
		t.Fatalf("file after save = %q; want the pushed body", b)
	}
	if fi, _ := os.Stat(e.path); fi.Mode().Perm() != fi0.Mode().Perm() {
		t.Errorf("file mode = %v; want %v kept", fi.Mode().Perm(), fi0.Mode().Perm())
	}
	if left := tempFiles(t, filepath.Dir(e.path)); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// The file watcher reports the saved file; the reload loop must find
	// it unchanged.
	waitFor(t, "the file watcher's update", func() bool { _, f := e.loop.counts(); return f >= 1 })
	if applies, _ := e.loop.counts(); applies != 1 {
		t.Fatalf("applies after save and watcher = %d; want 1", applies)
	}

	// Saving the same document again changes nothing. The count is taken
	// before the push: the watcher may report the write before the
	// response arrives.
	_, f1 := e.loop.counts()
	if code, body := e.do(t, "POST", "/conf?key="+testKey+"&save=true", strings.NewReader(docB)); code != 200 {
		t.Fatalf("second save = %d %q; want 200", code, body)
	}
	waitFor(t, "the watcher's second update", func() bool { _, f := e.loop.counts(); return f > f1 })
	if applies, _ := e.loop.counts(); applies != 1 {
		t.Errorf("applies after identical save = %d; want 1", applies)
	}

	// A save the reload loop rejects restores the previous file.
	_, f2 := e.loop.counts()
	code, body = e.do(t, "POST", "/conf?key="+testKey+"&save=true", strings.NewReader(docReject))
	if code != 400 || !strings.Contains(body, "simulated failure") {
		t.Fatalf("rejected save = %d %q; want 400", code, body)
	}
	if b, _ := os.ReadFile(e.path); string(b) != docB {
		t.Errorf("file after rejected save = %q; want previous content restored", b)
	}
	waitFor(t, "the watcher's update after the rollback", func() bool { _, f := e.loop.counts(); return f > f2 })
	if applies, _ := e.loop.counts(); applies != 1 {
		t.Errorf("applies after rejected save = %d; want 1", applies)
	}
	if left := tempFiles(t, filepath.Dir(e.path)); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestConfInvalidSaveLeavesFile(t *testing.T) {
	t.Parallel()
	e := start(t, envOpts{})
	code, _ := e.do(t, "POST", "/conf?key="+testKey+"&save=true", strings.NewReader(docBad))
	if code != 400 {
		t.Fatalf("invalid save = %d; want 400", code)
	}
	if b, _ := os.ReadFile(e.path); string(b) != docA {
		t.Errorf("file after invalid save = %q; want untouched", b)
	}
	if applies, _ := e.loop.counts(); applies != 0 {
		t.Errorf("applies = %d; want 0", applies)
	}
}

func TestWriteFileAtomicNewFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new.yaml")
	if err := writeFileAtomic(path, []byte("x: 1\n")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("new file = %v, %v; want mode 0644", fi, err)
	}
	if err := writeFileAtomic(filepath.Join(t.TempDir(), "missing", "x.yaml"), nil); err == nil {
		t.Errorf("writeFileAtomic(missing folder) = nil; want error")
	}
}

func TestJWT(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		eo   envOpts
		body string
		code int
	}{
		{name: "issued", body: `{"master_key":"` + testKey + `","owner":"ci","valid":10}`, code: 201},
		{name: "wrong key", body: `{"master_key":"nope","owner":"ci","valid":10}`, code: 403},
		{name: "no master key", eo: envOpts{noKey: true}, body: `{"master_key":"","owner":"ci","valid":10}`, code: 403},
		{name: "aralez exp", body: `{"master_key":"` + testKey + `","owner":"ci","exp":10,"random":"r4nd"}`, code: 201},
		{name: "valid and exp", body: `{"master_key":"` + testKey + `","owner":"ci","valid":10,"exp":10}`, code: 400},
		{name: "no validity", body: `{"master_key":"` + testKey + `","owner":"ci"}`, code: 400},
		{name: "negative validity", body: `{"master_key":"` + testKey + `","owner":"ci","exp":-5}`, code: 400},
		// Issue 11: today's 2^31 minutes overflowed time.Duration into an
		// already expired token.
		{name: "valid overflows", body: `{"master_key":"` + testKey + `","owner":"ci","valid":2147483648}`, code: 400},
		{name: "exp overflows", body: `{"master_key":"` + testKey + `","owner":"ci","exp":9223372036854775807}`, code: 400},
		{name: "one minute over the limit", body: `{"master_key":"` + testKey + `","owner":"ci","valid":` + strconv.FormatInt(MaxTokenMinutes+1, 10) + `}`, code: 400},
		{name: "longest validity", body: `{"master_key":"` + testKey + `","owner":"ci","valid":` + strconv.FormatInt(MaxTokenMinutes, 10) + `}`, code: 201},
		{name: "malformed", body: `{"master_key":`, code: 400},
		{name: "wrong type", body: `{"master_key":"` + testKey + `","valid":"ten"}`, code: 400},
		{name: "trailing data", body: `{"master_key":"` + testKey + `","valid":1} {}`, code: 400},
		{name: "zero validity", body: `{"master_key":"` + testKey + `","owner":"ci","valid":0}`, code: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tt.eo)
			before := time.Now().Unix()
			code, body := e.do(t, "POST", "/jwt", strings.NewReader(tt.body), "Content-Type", "application/json")
			if code != tt.code {
				t.Fatalf("POST /jwt = %d %q; want %d", code, body, tt.code)
			}
			var resp map[string]string
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			if code != 201 {
				if resp["error"] == "" {
					t.Errorf("error body = %q; want an error message", body)
				}
				if tt.eo.noKey && !strings.Contains(resp["error"], "set master_key") {
					t.Errorf("403 message = %q; want it to say what to set", resp["error"])
				}
				return
			}
			var req jwtRequest
			if err := json.Unmarshal([]byte(tt.body), &req); err != nil {
				t.Fatal(err)
			}
			minutes, _ := req.minutes()
			claims := jwt.MapClaims{}
			tok, err := jwt.ParseWithClaims(resp["token"], claims, func(*jwt.Token) (any, error) { return []byte(testKey), nil },
				jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
			if err != nil || !tok.Valid {
				t.Fatalf("token %q does not verify: %v", resp["token"], err)
			}
			exp, _ := claims.GetExpirationTime()
			if d := exp.Unix() - before - minutes*60; d < -1 || d > 2 {
				t.Errorf("exp - now = %ds; want %d", exp.Unix()-before, minutes*60)
			}
			if want := req.Random; claims["random"] != nil || want != "" {
				if claims["random"] != want {
					t.Errorf("random = %v; want %q", claims["random"], want)
				}
			}
			if claims["owner"] != "ci" {
				t.Errorf("owner = %v; want ci", claims["owner"])
			}
			if _, err := jwt.Parse(resp["token"], func(*jwt.Token) (any, error) { return []byte("other"), nil }); err == nil {
				t.Errorf("token verifies with another key")
			}
		})
	}
}

func sampleStatus() StatusView {
	return StatusView{
		Generation: 4,
		Digest:     "0123456789abcdef",
		Hosts: []HostStatus{{
			Name: "app.test",
			Paths: []PathStatus{
				{Prefix: "/", LoadBalance: "round_robin", HealthCheck: true, RateLimit: 50, Backends: []BackendStatus{
					{Addr: "127.0.0.1:8000", Weight: 1, Up: true, Proto: "http1", InFlight: 2, Requests: 10},
					{Addr: "[::1]:8443", Weight: 2, Up: true, Ejected: true, Proto: "tls+h2", TLS: true, HTTP2: true, Requests: 5,
						Failures: 3, LastCheck: time.Date(2026, 11, 29, 17, 0, 0, 0, time.UTC), LastError: "connection refused"},
				}},
				{Prefix: "/old", RedirectTo: "https://new.test", ToHTTPS: true, Backends: nil},
			},
		}},
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	e := start(t, envOpts{disabled: true}) // the status API stays up when /conf is off

	for _, q := range []string{"", "?live"} {
		code, body := e.do(t, "GET", "/status"+q, nil)
		if code != 200 {
			t.Fatalf("GET /status%s = %d", q, code)
		}
		var live map[string]map[string]struct {
			Backends []map[string]any `json:"backends"`
		}
		if err := json.Unmarshal([]byte(body), &live); err != nil {
			t.Fatalf("GET /status%s: %v: %s", q, err, body)
		}
		bs := live["app.test"]["/"].Backends
		if len(bs) != 2 {
			t.Fatalf("live backends = %v; want 2", bs)
		}
		want0 := map[string]any{"address": "127.0.0.1", "port": 8000.0, "alive": true}
		want1 := map[string]any{"address": "::1", "port": 8443.0, "alive": false}
		for i, w := range []map[string]any{want0, want1} {
			if len(bs[i]) != len(w) {
				t.Errorf("live backend %d = %v; want %v", i, bs[i], w)
			}
			for k, v := range w {
				if bs[i][k] != v {
					t.Errorf("live backend %d %s = %v; want %v", i, k, bs[i][k], v)
				}
			}
		}
		if got := live["app.test"]["/old"].Backends; got == nil || len(got) != 0 {
			t.Errorf("redirect path backends = %#v; want []", got)
		}
	}

	req, _ := http.NewRequest("GET", e.url+"/status?all", nil)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if g := resp.Header.Get("X-Config-Generation"); g != "4" {
		t.Errorf("X-Config-Generation = %q; want 4", g)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	var all map[string]map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	root := all["app.test"]["/"]
	checks := map[string]any{"requests": 15.0, "in_flight": 2.0, "rate_limit": 50.0, "healthcheck": true,
		"load_balance": "round_robin", "to_https": false}
	for k, v := range checks {
		if root[k] != v {
			t.Errorf("all / %s = %v; want %v", k, root[k], v)
		}
	}
	b1 := root["backends"].([]any)[1].(map[string]any)
	for k, v := range map[string]any{"address": "::1", "port": 8443.0, "weight": 2.0, "alive": false, "up": true,
		"ejected": true, "is_ssl": true, "is_http2": true, "proto": "tls+h2", "failures": 3.0,
		"last_check": "2026-11-29T17:00:00Z", "last_error": "connection refused"} {
		if b1[k] != v {
			t.Errorf("all backend 1 %s = %v; want %v", k, b1[k], v)
		}
	}
	b0 := root["backends"].([]any)[0].(map[string]any)
	if b0["last_check"] != nil {
		t.Errorf("never-probed last_check = %v; want null", b0["last_check"])
	}
	old := all["app.test"]["/old"]
	if old["redirect_to"] != "https://new.test" || old["rate_limit"] != nil || old["to_https"] != true {
		t.Errorf("all /old = %v; want redirect_to, rate_limit null, to_https", old)
	}
}

func TestStatusUnavailable(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{Logger: discard})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	for path, want := range map[string]int{"/status": 503, "/metrics": 404, "/conf": 405, "/nope": 404} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d; want %d", path, resp.StatusCode, want)
		}
	}
}

func TestLiveReadyMetrics(t *testing.T) {
	t.Parallel()
	e := start(t, envOpts{disabled: true})
	steps := []struct {
		name     string
		ready    bool
		draining bool
		code     int
		body     string
	}{
		{name: "starting", code: 503, body: "not ready\n"},
		{name: "ready", ready: true, code: 200, body: "ready\n"},
		{name: "draining", ready: true, draining: true, code: 503, body: "draining\n"},
	}
	for _, st := range steps {
		e.srv.SetReady(st.ready)
		e.srv.SetDraining(st.draining)
		if code, body := e.do(t, "GET", "/ready", nil); code != st.code || body != st.body {
			t.Errorf("%s: GET /ready = %d %q; want %d %q", st.name, code, body, st.code, st.body)
		}
		if code, _ := e.do(t, "GET", "/live", nil); code != 200 {
			t.Errorf("%s: GET /live = %d; want 200", st.name, code)
		}
	}
	code, body := e.do(t, "GET", "/metrics", nil)
	if code != 200 || !strings.Contains(body, "aralez_requests_total 1") {
		t.Errorf("GET /metrics = %d, want 200 with aralez_requests_total 1:\n%.400s", code, body)
	}
}

func TestPprofNeedsKey(t *testing.T) {
	t.Parallel()
	e := start(t, envOpts{disabled: true})
	tests := []struct {
		name   string
		target string
		hdr    []string
		code   int
	}{
		{"no key", "/debug/pprof/", nil, 401},
		{"wrong key", "/debug/pprof/?key=x", nil, 403},
		{"index", "/debug/pprof/?key=" + testKey, nil, 200},
		{"heap with bearer", "/debug/pprof/heap?debug=1", []string{"Authorization", "bearer " + testKey}, 200},
		{"cmdline", "/debug/pprof/cmdline?key=" + testKey, nil, 200},
		{"cmdline without key", "/debug/pprof/cmdline", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if code, body := e.do(t, "GET", tt.target, nil, tt.hdr...); code != tt.code {
				t.Errorf("GET %s = %d %.100q; want %d", tt.target, code, body, tt.code)
			}
		})
	}
}

// TestPushKeepsConfD pushes tables next to a conf.d folder: without save
// the hosts of conf.d stay (issue 11: they vanished until the next file
// reload), Aralez's bare ?save saves (issue 12), and a pushed host that
// conf.d defines too is refused.
func TestPushKeepsConfD(t *testing.T) {
	t.Parallel()
	e := start(t, envOpts{})
	confd := filepath.Join(filepath.Dir(e.path), "conf.d")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confd, "c.yaml"), []byte("c.test:\n  paths: {\"/\": {servers: [\"127.0.0.1:9009\"]}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := func() string {
		e.loop.mu.Lock()
		defer e.loop.mu.Unlock()
		var names []string
		for _, h := range e.loop.last.Hosts {
			names = append(names, h.Name)
		}
		return strings.Join(names, " ")
	}
	if code, body := e.do(t, "POST", "/conf?key="+testKey, strings.NewReader(docB)); code != 200 {
		t.Fatalf("POST /conf = %d %q; want 200", code, body)
	}
	if got := hosts(); got != "b.test c.test" {
		t.Errorf("hosts after a push without save = %q; want b.test c.test", got)
	}
	if b, _ := os.ReadFile(e.path); string(b) != docA {
		t.Errorf("file after a push without save = %q; want it untouched", b)
	}
	for _, q := range []string{"&save", "&save=false"} {
		code, body := e.do(t, "POST", "/conf?key="+testKey+q, strings.NewReader(docA))
		b, _ := os.ReadFile(e.path)
		if wantSaved := q == "&save"; code != 200 || strings.Contains(body, "saved to") != wantSaved {
			t.Errorf("POST /conf%s = %d %q; want 200, saved %v", q, code, body, wantSaved)
		}
		if string(b) != docA {
			t.Errorf("file after POST /conf%s = %q; want docA", q, b)
		}
		if got := hosts(); got != "a.test c.test" {
			t.Errorf("hosts after POST /conf%s = %q; want a.test c.test", q, got)
		}
	}
	dup := "upstreams:\n  c.test:\n    paths: {\"/\": {servers: [\"127.0.0.1:9010\"]}}\n"
	if code, body := e.do(t, "POST", "/conf?key="+testKey, strings.NewReader(dup)); code != 400 || !strings.Contains(body, "c.yaml:1:1") {
		t.Errorf("POST /conf of a conf.d host = %d %q; want 400 naming c.yaml:1:1", code, body)
	}
}
