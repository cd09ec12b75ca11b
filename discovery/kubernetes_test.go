package discovery

import (
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/internal/kubetest"
)

// endpoint is a test endpoint: "10.0.0.1" is ready, "!10.0.0.1" is not.
func slice(ns, name, service string, ports map[string]int32, endpoints ...string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		TypeMeta:    metav1.TypeMeta{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1"},
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p := ports[n]
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: &n, Port: &p})
	}
	for _, e := range endpoints {
		ready := !strings.HasPrefix(e, "!")
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{strings.TrimPrefix(e, "!")},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return es
}

func tokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKubernetesWatchesEndpointSlices(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		noWatchList bool
	}{
		{"watch-list stream", false},
		{"list then watch", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testKubernetesWatches(t, tt.noWatchList)
		})
	}
}

func testKubernetesWatches(t *testing.T, noWatchList bool) {
	fa := kubetest.NewServer(t)
	if noWatchList {
		fa.NoWatchList()
	}
	fa.Put(slice("default", "web-a", "web", map[string]int32{"http": 8080}, "10.0.0.2", "10.0.0.1", "!10.0.0.9"))
	fa.Put(slice("shop", "api-a", "api", map[string]int32{"metrics": 9090, "http": 8081}, "10.1.0.1"))
	fa.Put(slice("other", "web-x", "web", map[string]int32{"http": 1}, "10.9.9.9")) // another namespace

	var logs logBuffer
	kc := &config.Kubernetes{
		Servers:   []string{fa.URL()},
		Tokenpath: tokenFile(t, "k8s-t0ken"),
		Services: []config.KubernetesService{
			{Hostname: "app.example.com", Path: "/", Upstream: "web"},
			{Hostname: "app.example.com", Path: "/api", Upstream: "shop/api:http"},
			{Hostname: "db.example.com", Path: "/", Upstream: "shop/absent"},
		},
	}
	k, err := NewKubernetes(consulBase(), kc, KubernetesOptions{Logger: logs.logger()})
	if err != nil {
		t.Fatalf("NewKubernetes() error = %v", err)
	}
	out := startRun(t, k)

	u := recv(t, out, 15*time.Second)
	if u.Source != "kubernetes" || u.Err != nil {
		t.Fatalf("first update = {Source:%q Err:%v}; want kubernetes, nil", u.Source, u.Err)
	}
	base := "static.example.com /=127.0.0.1:9000; app.example.com /static=127.0.0.1:9001; "
	if got, want := describe(u.Upstreams), base+"app.example.com /=10.0.0.1:8080,10.0.0.2:8080; app.example.com /api=10.1.0.1:8081; db.example.com /="; got != want {
		t.Fatalf("first table = %q; want %q", got, want)
	}

	// A second slice of the same service adds endpoints.
	fa.Put(slice("default", "web-b", "web", map[string]int32{"http": 8080}, "10.0.0.3"))
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), base+"app.example.com /=10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080; app.example.com /api=10.1.0.1:8081; db.example.com /="; got != want {
		t.Fatalf("table after add = %q; want %q", got, want)
	}

	// An endpoint turning unready and a deleted slice remove servers.
	fa.Put(slice("default", "web-a", "web", map[string]int32{"http": 8080}, "!10.0.0.2", "10.0.0.1"))
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), base+"app.example.com /=10.0.0.1:8080,10.0.0.3:8080; app.example.com /api=10.1.0.1:8081; db.example.com /="; got != want {
		t.Fatalf("table after unready = %q; want %q", got, want)
	}
	fa.Delete("endpointslices", "shop", "api-a")
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), base+"app.example.com /=10.0.0.1:8080,10.0.0.3:8080; app.example.com /api=; db.example.com /="; got != want {
		t.Fatalf("table after delete = %q; want %q", got, want)
	}

	// A change in another namespace emits nothing.
	fa.Put(slice("other", "web-x", "web", map[string]int32{"http": 1}, "10.9.9.8"))
	noUpdate(t, out, 200*time.Millisecond)

	// A reloaded file table is merged with the last discovered set.
	k.SetBase(&config.Upstreams{Hosts: []config.Host{host("db.example.com", "/=127.0.0.1:5432")}})
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), "db.example.com /=127.0.0.1:5432; app.example.com /=10.0.0.1:8080,10.0.0.3:8080; app.example.com /api="; got != want {
		t.Fatalf("table after SetBase = %q; want %q", got, want)
	}

	lists, streams := 0, 0
	for _, r := range fa.Requests() {
		switch {
		case r.Verb == "list":
			lists++
		case r.WatchList:
			streams++
		}
	}
	if (noWatchList && lists == 0) || (!noWatchList && streams == 0) {
		t.Errorf("list requests %d, watch-list streams %d; want the %s path used", lists, streams, map[bool]string{true: "list", false: "watch-list"}[noWatchList])
	}
	if auth := fa.Authorizations(); len(auth) != 1 || auth["Bearer k8s-t0ken"] == 0 {
		t.Errorf("Authorization headers = %v; want only the bearer token", auth)
	}
	if strings.Contains(logs.String(), "k8s-t0ken") {
		t.Errorf("log mentions the token: %s", logs.String())
	}
}

func TestKubernetesFailureKeepsTableAndRecovers(t *testing.T) {
	t.Parallel()
	fa := kubetest.NewServer(t)
	fa.Put(slice("default", "web-a", "web", map[string]int32{"http": 8080}, "10.0.0.1"))

	var logs logBuffer
	kc := &config.Kubernetes{
		Servers:   []string{fa.URL()},
		Tokenpath: tokenFile(t, "tok"),
		Services:  []config.KubernetesService{{Hostname: "app.example.com", Path: "/", Upstream: "default/web"}},
	}
	k, err := NewKubernetes(nil, kc, KubernetesOptions{Logger: logs.logger()})
	if err != nil {
		t.Fatalf("NewKubernetes() error = %v", err)
	}
	out := startRun(t, k)
	if got, want := describe(recv(t, out, 15*time.Second).Upstreams), "app.example.com /=10.0.0.1:8080"; got != want {
		t.Fatalf("first table = %q; want %q", got, want)
	}

	fa.SetStatus(http.StatusInternalServerError)
	waitFor(t, 15*time.Second, "a failure log line", func() bool {
		return strings.Contains(logs.String(), "kubernetes watch failed")
	})
	noUpdate(t, out, 200*time.Millisecond)

	fa.SetStatus(0)
	fa.Put(slice("default", "web-a", "web", map[string]int32{"http": 8080}, "10.0.0.1", "10.0.0.5"))
	if got, want := describe(recv(t, out, 20*time.Second).Upstreams), "app.example.com /=10.0.0.1:8080,10.0.0.5:8080"; got != want {
		t.Fatalf("table after recovery = %q; want %q", got, want)
	}
	waitFor(t, 5*time.Second, "a recovery log line", func() bool {
		return strings.Contains(logs.String(), "kubernetes watch recovered")
	})
}

func TestParseK8sTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    k8sTarget
		wantErr bool
	}{
		{in: "web", want: k8sTarget{namespace: "default", name: "web"}},
		{in: "shop/web", want: k8sTarget{namespace: "shop", name: "web"}},
		{in: "shop/web:http", want: k8sTarget{namespace: "shop", name: "web", port: "http"}},
		{in: "web:8080", want: k8sTarget{namespace: "default", name: "web", port: "8080"}},
		{in: "", wantErr: true},
		{in: "/web", wantErr: true},
		{in: "shop/", wantErr: true},
		{in: "a/b/c", wantErr: true},
		{in: "web:", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseK8sTarget(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadKubernetesService) {
					t.Errorf("parseK8sTarget(%q) error = %v; want ErrBadKubernetesService", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseK8sTarget(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSliceServers(t *testing.T) {
	t.Parallel()
	v6 := slice("default", "v6", "web", map[string]int32{"http": 443}, "fd00::1")
	unset := slice("default", "u", "web", map[string]int32{"http": 80}, "10.0.0.7")
	unset.Endpoints[0].Conditions.Ready = nil
	noPort := slice("default", "np", "web", nil, "10.0.0.8")
	tests := []struct {
		name string
		eps  []*discoveryv1.EndpointSlice
		port string
		want []string
	}{
		{"first port", []*discoveryv1.EndpointSlice{slice("d", "a", "web", map[string]int32{"a": 1, "b": 2}, "10.0.0.1")}, "", []string{"10.0.0.1:1"}},
		{"port by name", []*discoveryv1.EndpointSlice{slice("d", "a", "web", map[string]int32{"a": 1, "b": 2}, "10.0.0.1")}, "b", []string{"10.0.0.1:2"}},
		{"port by number", []*discoveryv1.EndpointSlice{slice("d", "a", "web", map[string]int32{"a": 1, "b": 2}, "10.0.0.1")}, "2", []string{"10.0.0.1:2"}},
		{"no matching port", []*discoveryv1.EndpointSlice{slice("d", "a", "web", map[string]int32{"a": 1}, "10.0.0.1")}, "zz", []string{}},
		{"unready skipped", []*discoveryv1.EndpointSlice{slice("d", "a", "web", map[string]int32{"a": 1}, "!10.0.0.1", "10.0.0.2")}, "", []string{"10.0.0.2:1"}},
		{"unset ready counts as ready", []*discoveryv1.EndpointSlice{unset}, "", []string{"10.0.0.7:80"}},
		{"ipv6 bracketed", []*discoveryv1.EndpointSlice{v6}, "", []string{"[fd00::1]:443"}},
		{"slice without ports skipped", []*discoveryv1.EndpointSlice{noPort}, "", []string{}},
		{"sorted and deduplicated across slices", []*discoveryv1.EndpointSlice{
			slice("d", "a", "web", map[string]int32{"a": 1}, "10.0.0.3", "10.0.0.1"),
			slice("d", "b", "web", map[string]int32{"a": 1}, "10.0.0.1", "10.0.0.2"),
		}, "", []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := []string{}
			for _, s := range sliceServers(tt.eps, tt.port) {
				if s.Weight != config.DefaultWeight {
					t.Errorf("weight = %d; want %d", s.Weight, config.DefaultWeight)
				}
				got = append(got, s.Address)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("sliceServers(%q) = %v; want %v", tt.port, got, tt.want)
			}
		})
	}
}

func TestNewKubernetesErrors(t *testing.T) {
	t.Parallel()
	tok := tokenFile(t, "x")
	svc := []config.KubernetesService{{Hostname: "a.example.com", Path: "/", Upstream: "web"}}
	tests := []struct {
		name string
		k    *config.Kubernetes
		want error
		sub  string
	}{
		{"nil block", nil, ErrNoServices, ""},
		{"no services", &config.Kubernetes{Servers: []string{"127.0.0.1:6443"}, Tokenpath: tok}, ErrNoServices, ""},
		{"bad upstream", &config.Kubernetes{Servers: []string{"127.0.0.1:6443"}, Tokenpath: tok, Services: []config.KubernetesService{{Hostname: "a.example.com", Upstream: "a/b/c"}}}, ErrBadKubernetesService, "services[0]"},
		{"missing token", &config.Kubernetes{Servers: []string{"127.0.0.1:6443"}, Tokenpath: filepath.Join(t.TempDir(), "none"), Services: svc}, os.ErrNotExist, "reading token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewKubernetes(nil, tt.k, KubernetesOptions{})
			if !errors.Is(err, tt.want) {
				t.Errorf("NewKubernetes() error = %v; want %v", err, tt.want)
			}
			if tt.sub != "" && (err == nil || !strings.Contains(err.Error(), tt.sub)) {
				t.Errorf("NewKubernetes() error = %v; want it to contain %q", err, tt.sub)
			}
		})
	}
}

func TestRestConfigDefaultsToHTTPS(t *testing.T) {
	t.Parallel()
	kc := &config.Kubernetes{Servers: []string{"127.0.0.1:6443"}, Tokenpath: tokenFile(t, "x")}
	rc, err := restConfig(kc, KubernetesOptions{})
	if err != nil {
		t.Fatalf("restConfig() error = %v", err)
	}
	if rc.Host != "https://127.0.0.1:6443" || rc.Insecure {
		t.Errorf("restConfig() = host %q insecure %v; want https://127.0.0.1:6443, false", rc.Host, rc.Insecure)
	}
	rc, _ = restConfig(kc, KubernetesOptions{Insecure: true})
	if !rc.Insecure {
		t.Errorf("restConfig(Insecure) insecure = false; want true")
	}
}

func TestKubernetesTLSWithCAFile(t *testing.T) {
	t.Parallel()
	fa := kubetest.NewTLSServer(t)
	fa.Put(slice("default", "web-a", "web", map[string]int32{"https": 8443}, "10.0.0.1"))
	srv := fa.Server()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := &config.Kubernetes{
		// host:port means https.
		Servers:   []string{srv.Listener.Addr().String()},
		Tokenpath: tokenFile(t, "tls-token"),
		Services:  []config.KubernetesService{{Hostname: "app.example.com", Path: "/", Upstream: "web"}},
	}
	k, err := NewKubernetes(nil, kc, KubernetesOptions{CAFile: ca})
	if err != nil {
		t.Fatalf("NewKubernetes() error = %v", err)
	}
	out := startRun(t, k)
	if got, want := describe(recv(t, out, 15*time.Second).Upstreams), "app.example.com /=10.0.0.1:8443"; got != want {
		t.Fatalf("table = %q; want %q", got, want)
	}
	if auth := fa.Authorizations(); auth["Bearer tls-token"] == 0 {
		t.Errorf("Authorization headers = %v; want the bearer token", auth)
	}
}
