package discovery

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aralez-go/aralez/config"
)

// fakeAPI emulates the EndpointSlice list and watch endpoints of a
// Kubernetes API server, including watch-list streams
// (sendInitialEvents ending with an initial-events-end bookmark) and
// watches resumed from a resource version.
type fakeAPI struct {
	mu       sync.Mutex
	rv       int
	objs     map[string]*discoveryv1.EndpointSlice // by namespace/name
	history  []fakeEvent
	changed  chan struct{}
	status   int
	auth     map[string]int
	requests int
	lists    int // plain list requests
	streams  int // watch-list requests (sendInitialEvents)
	// noWatchList refuses watch-list requests with 422, as an API
	// server without the WatchList feature does.
	noWatchList bool
	quit        chan struct{}
	quitOnce    sync.Once
}

type fakeEvent struct {
	rv  int
	typ string
	obj *discoveryv1.EndpointSlice
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{
		rv:      100,
		objs:    map[string]*discoveryv1.EndpointSlice{},
		changed: make(chan struct{}),
		auth:    map[string]int{},
		quit:    make(chan struct{}),
	}
}

func (f *fakeAPI) stop() { f.quitOnce.Do(func() { close(f.quit) }) }

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

// put adds or replaces a slice and wakes watches.
func (f *fakeAPI) put(es *discoveryv1.EndpointSlice) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := es.Namespace + "/" + es.Name
	typ := "ADDED"
	if _, ok := f.objs[key]; ok {
		typ = "MODIFIED"
	}
	f.rv++
	c := es.DeepCopy()
	c.ResourceVersion = strconv.Itoa(f.rv)
	f.objs[key] = c
	f.history = append(f.history, fakeEvent{rv: f.rv, typ: typ, obj: c})
	f.wakeLocked()
}

// remove deletes a slice and wakes watches.
func (f *fakeAPI) remove(ns, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ns + "/" + name
	old, ok := f.objs[key]
	if !ok {
		return
	}
	delete(f.objs, key)
	f.rv++
	c := old.DeepCopy()
	c.ResourceVersion = strconv.Itoa(f.rv)
	f.history = append(f.history, fakeEvent{rv: f.rv, typ: "DELETED", obj: c})
	f.wakeLocked()
}

// setStatus makes every request fail with status (0 = normal) and ends
// open watches.
func (f *fakeAPI) setStatus(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = status
	f.wakeLocked()
}

func (f *fakeAPI) wakeLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeAPI) authCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copyCounts(f.auth)
}

func matches(es *discoveryv1.EndpointSlice, ns, selector string) bool {
	if es.Namespace != ns {
		return false
	}
	k, v, ok := strings.Cut(selector, "=")
	return !ok || es.Labels[k] == v
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/apis/discovery.k8s.io/v1/namespaces/")
	ns, res, _ := strings.Cut(rest, "/")
	f.mu.Lock()
	f.requests++
	f.auth[r.Header.Get("Authorization")]++
	st := f.status
	f.mu.Unlock()
	if !ok || res != "endpointslices" {
		http.NotFound(w, r)
		return
	}
	if st != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		_ = json.NewEncoder(w).Encode(metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusFailure, Code: int32(st), Message: "emulated failure",
		})
		return
	}
	q := r.URL.Query()
	selector := q.Get("labelSelector")
	if f.noWatchList && q.Get("sendInitialEvents") == "true" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
			Reason: metav1.StatusReasonInvalid, Message: "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
		})
		return
	}
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		f.watch(w, r, ns, selector)
		return
	}
	f.mu.Lock()
	f.lists++
	list := discoveryv1.EndpointSliceList{
		TypeMeta: metav1.TypeMeta{Kind: "EndpointSliceList", APIVersion: "discovery.k8s.io/v1"},
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.Itoa(f.rv)},
		Items:    []discoveryv1.EndpointSlice{},
	}
	for _, es := range f.objs {
		if matches(es, ns, selector) {
			list.Items = append(list.Items, *es)
		}
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

func (f *fakeAPI) watch(w http.ResponseWriter, r *http.Request, ns, selector string) {
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(typ string, obj *discoveryv1.EndpointSlice) {
		_ = enc.Encode(map[string]any{"type": typ, "object": obj})
		if fl != nil {
			fl.Flush()
		}
	}

	f.mu.Lock()
	sent, _ := strconv.Atoi(q.Get("resourceVersion"))
	var initial []*discoveryv1.EndpointSlice
	if q.Get("sendInitialEvents") == "true" {
		f.streams++
		for _, es := range f.objs {
			if matches(es, ns, selector) {
				initial = append(initial, es)
			}
		}
		sent = f.rv
	}
	f.mu.Unlock()
	if q.Get("sendInitialEvents") == "true" {
		for _, es := range initial {
			send("ADDED", es)
		}
		send("BOOKMARK", &discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1"},
			ObjectMeta: metav1.ObjectMeta{
				ResourceVersion: strconv.Itoa(sent),
				Annotations:     map[string]string{metav1.InitialEventsAnnotationKey: "true"},
			},
		})
	}

	timeout := time.Minute
	if s, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		f.mu.Lock()
		var evs []fakeEvent
		for _, ev := range f.history {
			if ev.rv > sent && matches(ev.obj, ns, selector) {
				evs = append(evs, ev)
			}
		}
		st, ch := f.status, f.changed
		if n := len(f.history); n > 0 {
			sent = max(sent, f.history[n-1].rv)
		}
		f.mu.Unlock()
		for _, ev := range evs {
			send(ev.typ, ev.obj)
		}
		if st != 0 {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-r.Context().Done():
			return
		case <-f.quit:
			return
		}
	}
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
	fa := newFakeAPI()
	fa.noWatchList = noWatchList
	fa.put(slice("default", "web-a", "web", map[string]int32{"http": 8080}, "10.0.0.2", "10.0.0.1", "!10.0.0.9"))
	fa.put(slice("shop", "api-a", "api", map[string]int32{"metrics": 9090, "http": 8081}, "10.1.0.1"))
	fa.put(slice("other", "web-x", "web", map[string]int32{"http": 1}, "10.9.9.9")) // another namespace
	srv := httptest.NewServer(fa)
	t.Cleanup(srv.Close)
	t.Cleanup(fa.stop)

	var logs logBuffer
	kc := &config.Kubernetes{
		Servers:   []string{srv.URL},
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
	fa.put(slice("default", "web-b", "web", map[string]int32{"http": 8080}, "10.0.0.3"))
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), base+"app.example.com /=10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080; app.example.com /api=10.1.0.1:8081; db.example.com /="; got != want {
		t.Fatalf("table after add = %q; want %q", got, want)
	}

	// An endpoint turning unready and a deleted slice remove servers.
	fa.put(slice("default", "web-a", "web", map[string]int32{"http": 8080}, "!10.0.0.2", "10.0.0.1"))
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), base+"app.example.com /=10.0.0.1:8080,10.0.0.3:8080; app.example.com /api=10.1.0.1:8081; db.example.com /="; got != want {
		t.Fatalf("table after unready = %q; want %q", got, want)
	}
	fa.remove("shop", "api-a")
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), base+"app.example.com /=10.0.0.1:8080,10.0.0.3:8080; app.example.com /api=; db.example.com /="; got != want {
		t.Fatalf("table after delete = %q; want %q", got, want)
	}

	// A change in another namespace emits nothing.
	fa.put(slice("other", "web-x", "web", map[string]int32{"http": 1}, "10.9.9.8"))
	noUpdate(t, out, 200*time.Millisecond)

	// A reloaded file table is merged with the last discovered set.
	k.SetBase(&config.Upstreams{Hosts: []config.Host{host("db.example.com", "/=127.0.0.1:5432")}})
	if got, want := describe(recv(t, out, 5*time.Second).Upstreams), "db.example.com /=127.0.0.1:5432; app.example.com /=10.0.0.1:8080,10.0.0.3:8080; app.example.com /api="; got != want {
		t.Fatalf("table after SetBase = %q; want %q", got, want)
	}

	fa.mu.Lock()
	lists, streams := fa.lists, fa.streams
	fa.mu.Unlock()
	if (noWatchList && lists == 0) || (!noWatchList && streams == 0) {
		t.Errorf("list requests %d, watch-list streams %d; want the %s path used", lists, streams, map[bool]string{true: "list", false: "watch-list"}[noWatchList])
	}
	if auth := fa.authCounts(); len(auth) != 1 || auth["Bearer k8s-t0ken"] == 0 {
		t.Errorf("Authorization headers = %v; want only the bearer token", auth)
	}
	if strings.Contains(logs.String(), "k8s-t0ken") {
		t.Errorf("log mentions the token: %s", logs.String())
	}
}

func TestKubernetesFailureKeepsTableAndRecovers(t *testing.T) {
	t.Parallel()
	fa := newFakeAPI()
	fa.put(slice("default", "web-a", "web", map[string]int32{"http": 8080}, "10.0.0.1"))
	srv := httptest.NewServer(fa)
	t.Cleanup(srv.Close)
	t.Cleanup(fa.stop)

	var logs logBuffer
	kc := &config.Kubernetes{
		Servers:   []string{srv.URL},
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

	fa.setStatus(http.StatusInternalServerError)
	waitFor(t, 15*time.Second, "a failure log line", func() bool {
		return strings.Contains(logs.String(), "kubernetes watch failed")
	})
	noUpdate(t, out, 200*time.Millisecond)

	fa.setStatus(0)
	fa.put(slice("default", "web-a", "web", map[string]int32{"http": 8080}, "10.0.0.1", "10.0.0.5"))
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
	fa := newFakeAPI()
	fa.put(slice("default", "web-a", "web", map[string]int32{"https": 8443}, "10.0.0.1"))
	srv := httptest.NewTLSServer(fa)
	t.Cleanup(srv.Close)
	t.Cleanup(fa.stop)
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
	if auth := fa.authCounts(); auth["Bearer tls-token"] == 0 {
		t.Errorf("Authorization headers = %v; want the bearer token", auth)
	}
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
