package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// example is a copy of one of config/testdata/aralez/ (this project's
// mirrors of Aralez's published example files) made runnable here:
// listener addresses are free loopback ports, absolute paths point into
// the copy's folder, runuser and rungroup are dropped, and every
// host:port in the upstreams files is the test backend.
type example struct {
	dir                        string
	http, api, tls, files, pid string
}

var (
	reIPPort = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d+\b`)
	reKey    = regexp.MustCompile(`(?m)^(#?)([a-z_]+):[ \t]*(.*?)[ \t]*(#.*)?$`)
)

func copyExample(t *testing.T, name, backend string) *example {
	t.Helper()
	src := filepath.Join("..", "..", "config", "testdata", "aralez", name)
	dir, err := os.MkdirTemp("", "aralez-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ex := &example{dir: dir, http: freeAddr(t), api: freeAddr(t), tls: freeAddr(t), files: freeAddr(t), pid: filepath.Join(dir, "aralez.pid")}
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if rel == "main.yaml" {
			b = ex.rewriteMain(b)
		} else {
			b = reIPPort.ReplaceAll(b, []byte(backend))
		}
		out := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// rewriteMain relocates main.yaml as copyExample describes and shortens
// the drain.
func (ex *example) rewriteMain(b []byte) []byte {
	out := reKey.ReplaceAllFunc(b, func(line []byte) []byte {
		m := reKey.FindSubmatch(line)
		if len(m[1]) > 0 {
			return line // commented out
		}
		key, val := string(m[2]), string(m[3])
		set := func(v string) []byte { return []byte(fmt.Sprintf("%s: %q", key, v)) }
		switch key {
		case "proxy_address_http":
			return set(ex.http)
		case "proxy_address_tls":
			return set(ex.tls)
		case "config_address":
			return set(ex.api)
		case "file_server_address":
			return set(ex.files)
		case "file_server_folder":
			return set(filepath.Join(ex.dir, "public"))
		case "pid_file":
			return set(ex.pid)
		case "log_file", "error_log":
			// Keep Aralez's ", size_mb, keep, compress" fields.
			_, rest, _ := strings.Cut(val, ",")
			if rest != "" {
				rest = "," + rest
			}
			return set(filepath.Join(ex.dir, "aralez.log") + rest)
		case "upgrade_sock":
			return set(filepath.Join(ex.dir, "upgrade.sock"))
		case "proxy_configs", "proxy_certificates":
			return set(ex.dir)
		case "runuser", "rungroup":
			return nil
		}
		return line
	})
	return append(out, "drain_timeout: 2s\n"...)
}

// probe is one request to an example and the status it must get.
type probe struct {
	host, path string
	hdr        []string // name, value pairs
	code       int
	location   string // wanted Location prefix for redirects
}

var noRedirects = &http.Client{Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (p probe) do(addr string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+addr+p.path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = p.host
	for i := 0; i+1 < len(p.hdr); i += 2 {
		req.Header.Set(p.hdr[i], p.hdr[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

func basic(user, pass string) []string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return []string{"Authorization", r.Header.Get("Authorization")}
}

// exampleBackend answers 200 to everything (the health checks, the
// forward-auth check and proxied requests).
func exampleBackend(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "backend "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// runExample checks ex with -t (exit 0), starts the real binary on it,
// runs the probes and stops it with SIGTERM (exit 0).
func runExample(t *testing.T, ex *example, probes []probe, env ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"-t", filepath.Join(ex.dir, "main.yaml")}, &out, &errb); code != 0 {
		t.Fatalf("aralez -t = %d; want 0:\n%s%s", code, out.String(), errb.String())
	}
	pid := startBinary(t, ex.dir, nil, env...)
	first := probes[0]
	if !waitFor(15*time.Second, func() bool { code, _, err := first.do(ex.http); return err == nil && code == first.code }) {
		code, _, err := first.do(ex.http)
		t.Fatalf("GET %s%s = %d, %v; want %d; log:\n%s", first.host, first.path, code, err, first.code, logOf(ex.dir))
	}
	for _, p := range probes {
		code, loc, err := p.do(ex.http)
		if err != nil || code != p.code || !strings.HasPrefix(loc, p.location) {
			t.Errorf("GET %s%s %q = %d %q, %v; want %d %q", p.host, p.path, p.hdr, code, loc, err, p.code, p.location)
		}
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		if ws := reap(t, pid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("exit after SIGTERM = %v; want 0; log:\n%s", ws, logOf(ex.dir))
		}
	})
}

// TestAralezExamples loads each mirror of Aralez's published examples
// with -t and serves it with the real binary: every one starts, and its
// routes answer as documented (issue 12).
func TestAralezExamples(t *testing.T) {
	becomeSubreaper(t)
	backend := exampleBackend(t)
	tests := []struct {
		name   string
		probes []probe
	}{
		{name: "repo-etc", probes: []probe{
			{host: "unknown.test", path: "/", code: 200},
			{host: "www.shop.test", path: "/", code: 401},
			{host: "www.shop.test", path: "/", hdr: basic("shopper", "s3cret"), code: 200},
			{host: "www.shop.test", path: "/health", code: 301, location: "https://www.shop.test"},
			{host: "www.shop.test", path: "/private", code: 200},
			{host: "shop.test", path: "/x", code: 301, location: "https://www.shop.test:8443/x"},
			// jwt without data and without master_key: 401 to everyone.
			{host: "api.shop.test", path: "/", code: 401},
			{host: "api.shop.test", path: "/", hdr: []string{"Authorization", "Bearer a.b.c"}, code: 401},
			{host: "api.shop.test", path: "/limited", code: 200},
		}},
		{name: "readme", probes: []probe{
			{host: "site.readme.test", path: "/", code: 200},
			{host: "site.readme.test", path: "/members", code: 301, location: "https://site.readme.test"},
			{host: "bench.readme.test", path: "/deep/a/b/c/d", code: 200},
			{host: "other.test", path: "/", code: 200},
		}},
		{name: "docs-config", probes: []probe{
			{host: "docs.config.test", path: "/", code: 200},
			{host: "one.split.test", path: "/", code: 401},
			{host: "one.split.test", path: "/", hdr: basic("ops", "0ps-pass"), code: 200},
			{host: "two.split.test", path: "/", code: 301, location: "https://one.split.test:6294/"},
		}},
		{name: "docs-auth", probes: []probe{
			{host: "web.auth.test", path: "/", hdr: basic("global", "gl0bal"), code: 200},
			{host: "web.auth.test", path: "/", code: 401},
			// A path's own authorization wins here (README, Differences).
			{host: "www.auth.test", path: "/", hdr: basic("local", "l0cal"), code: 200},
			{host: "www.auth.test", path: "/", hdr: basic("global", "gl0bal"), code: 401},
		}},
		{name: "docs-autossl", probes: []probe{
			{host: "your.ssl.test", path: "/", code: 200},
			{host: "lego.ssl.test", path: "/.well-known/acme-challenge/t0ken", code: 200},
		}},
		{name: "docs-stresstest", probes: []probe{
			{host: "a.stress.test", path: "/", code: 200},
			{host: "c.stress.test", path: "/x", code: 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runExample(t, copyExample(t, tt.name, backend), tt.probes)
		})
	}
	t.Run("docs-kubernetes", func(t *testing.T) {
		ex := copyExample(t, "docs-kubernetes", backend)
		// In a cluster the service account's token and the API come from
		// the pod; here, a token file and an API address that refuses.
		token := filepath.Join(ex.dir, "token")
		writeFile(t, token, "t0ken\n")
		up := filepath.Join(ex.dir, "upstreams.yml")
		b, _ := os.ReadFile(up)
		b = bytes.Replace(b, []byte(`  tokenpath: "/var/run/secrets/kubernetes.io/serviceaccount/token"`),
			[]byte(fmt.Sprintf("  tokenpath: %q\n  servers: [%q]", token, freeAddr(t))), 1)
		writeFile(t, up, string(b))
		// It starts and serves; no service can be read from the API, so
		// no route exists yet: 404.
		runExample(t, ex, []probe{{host: "web-svc", path: "/", code: 404}})
	})
}

// TestAralezJWT issues a token with Aralez's /jwt body and uses it on a
// jwt route of Aralez's example, which verifies with the master key
// (here JWT_KEY); without a key the config API is read-only (issue 12).
func TestAralezJWT(t *testing.T) {
	becomeSubreaper(t)
	backend := exampleBackend(t)
	post := func(ex *example, body string) (int, map[string]string) {
		resp, err := httpClient.Post("http://"+ex.api+"/jwt", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	t.Run("without a key", func(t *testing.T) {
		ex := copyExample(t, "repo-etc", backend)
		runExample(t, ex, []probe{{host: "unknown.test", path: "/", code: 200}}, "JWT_KEY=")
		if code, m := post(ex, `{"master_key":"","owner":"ops","exp":5}`); code != 403 || !strings.Contains(m["error"], "set master_key") {
			t.Errorf("POST /jwt without a key = %d %v; want 403 saying what to set", code, m)
		}
		resp, err := httpClient.Post("http://"+ex.api+"/conf?key=x", "application/yaml", strings.NewReader("provider: file\n"))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(msg), "read-only") {
			t.Errorf("POST /conf without a key = %d %q; want 403 read-only", resp.StatusCode, msg)
		}
		if resp, err := httpClient.Get("http://" + ex.api + "/status"); err != nil || resp.StatusCode != 200 {
			t.Errorf("GET /status = %v, %v; want 200", resp, err)
		} else {
			resp.Body.Close()
		}
		if b, _ := os.ReadFile(filepath.Join(ex.dir, "aralez.log")); strings.Count(string(b), "answer 401 to every request") != 1 {
			t.Errorf("log names the keyless jwt route %d times; want once:\n%s", strings.Count(string(b), "answer 401"), b)
		}
	})
	t.Run("with JWT_KEY", func(t *testing.T) {
		const key = "k3y-for-aralez-tokens"
		ex := copyExample(t, "repo-etc", backend)
		runExample(t, ex, []probe{{host: "unknown.test", path: "/", code: 200}}, "JWT_KEY="+key)
		code, m := post(ex, `{"master_key":"`+key+`","owner":"ops","exp":5,"random":"x7"}`)
		if code != 201 || m["token"] == "" {
			t.Fatalf("POST /jwt with Aralez's body = %d %v; want 201 and a token", code, m)
		}
		for _, p := range []probe{
			{host: "api.shop.test", path: "/", hdr: []string{"Authorization", "Bearer " + m["token"]}, code: 200},
			{host: "api.shop.test", path: "/?araleztoken=" + m["token"], code: 200},
			{host: "api.shop.test", path: "/", code: 401},
			{host: "api.shop.test", path: "/", hdr: []string{"Authorization", "Bearer " + m["token"] + "x"}, code: 401},
		} {
			if code, _, err := p.do(ex.http); err != nil || code != p.code {
				t.Errorf("GET %s%s %q = %d, %v; want %d", p.host, p.path, p.hdr, code, err, p.code)
			}
		}
	})
}
