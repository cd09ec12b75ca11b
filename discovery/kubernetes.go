package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/aralez-go/aralez/config"
)

// DefaultServiceAccountToken is the service account token read when
// kubernetes.tokenpath is empty.
const DefaultServiceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// DefaultServiceAccountCA is the CA bundle used to verify an API server
// given in kubernetes.servers when KubernetesOptions.CAFile is empty and
// the file exists.
const DefaultServiceAccountCA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

// DefaultNamespace is the namespace of a kubernetes.services upstream
// written without one.
const DefaultNamespace = "default"

// ErrNoServices is returned by NewKubernetes when the kubernetes block
// is missing or maps no services: such a block means the Ingress
// controller (NewIngress) instead.
var ErrNoServices = errors.New("discovery: provider maps no services")

// ErrBadKubernetesService is returned (wrapped, naming the entry) by
// NewKubernetes for an upstream that is not "[namespace/]name[:port]".
var ErrBadKubernetesService = errors.New("discovery: bad kubernetes service name")

// KubernetesOptions tunes a Kubernetes source. The zero value is ready to
// use.
type KubernetesOptions struct {
	// CAFile is a PEM bundle that verifies the API server given in
	// kubernetes.servers. Empty means DefaultServiceAccountCA when that
	// file exists, else the system roots. Unused in-cluster (the
	// in-cluster config always uses the service account CA).
	CAFile string
	// Insecure skips verifying the certificate of the API server given in
	// kubernetes.servers. Default false; it is never set implicitly, and
	// it has no effect in-cluster. For test clusters only.
	Insecure bool
	// Logger receives watch failures and recoveries. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Kubernetes discovers backends from EndpointSlices
// (discovery.k8s.io/v1). For every kubernetes.services entry, whose
// upstream is "[namespace/]name[:port]" (namespace default
// DefaultNamespace), it runs an informer on the EndpointSlices labelled
// kubernetes.io/service-name=name in namespace, and maps every ready
// endpoint (conditions.ready true or unset) to a server "address:port"
// of the entry's host and path. The port is the slice's port named or
// numbered port, else its first port. Servers are sorted by address.
//
// It emits complete tables like Consul: Merge of the file-defined table
// and the discovered hosts, first once every informer has synced, then
// whenever the discovered set changes (by Digest). A service with no
// ready endpoint keeps its path with no servers (503).
//
// When the API server fails, the informers keep their last state, so
// nothing is emitted and the last table keeps serving; client-go retries
// with backoff (up to 30s apart). Each distinct failure is logged once,
// and the first event after a failure logs a recovery.
//
// The client config is the in-cluster config when kubernetes.servers is
// empty; otherwise the first server (a URL, or host:port meaning https)
// with the bearer token read from kubernetes.tokenpath (default
// DefaultServiceAccountToken, re-read as it rotates) and the CA of
// KubernetesOptions.CAFile or DefaultServiceAccountCA. Further servers
// are not used. client-go's own log lines go to klog (stderr unless the
// process redirects klog).
//
// A Kubernetes works off the request path; its informers stop when Run's
// context ends. Run may be called once at a time; SetBase at any time.
// A Kubernetes must not be copied.
type Kubernetes struct {
	base     baseTable
	services []config.KubernetesService
	targets  []k8sTarget
	client   *kubeClient
	log      *slog.Logger
	health   watchHealth
}

var _ Source = (*Kubernetes)(nil)

// k8sTarget is a parsed kubernetes.services upstream.
type k8sTarget struct {
	namespace, name, port string
}

// NewKubernetes returns a Kubernetes source for k whose tables extend
// base (the file-defined table; nil means empty). It returns
// ErrNoServices when k is nil or maps no service, ErrBadKubernetesService for a malformed upstream,
// rest.ErrNotInCluster (wrapped) without servers outside a cluster, and
// an error when the token file cannot be read. base and k must not be
// changed afterwards.
func NewKubernetes(base *config.Upstreams, k *config.Kubernetes, o KubernetesOptions) (*Kubernetes, error) {
	if k == nil || len(k.Services) == 0 {
		return nil, fmt.Errorf("kubernetes: %w", ErrNoServices)
	}
	s := &Kubernetes{services: k.Services, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.health.log = s.log
	s.base.init(base)
	for i, svc := range k.Services {
		t, err := parseK8sTarget(svc.Upstream)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: services[%d]: %w", i, err)
		}
		s.targets = append(s.targets, t)
	}
	rc, err := restConfig(k, o)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	rc.UserAgent = "aralez"
	s.client, err = newKubeClient(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: creating client: %w", err)
	}
	return s, nil
}

// restConfig builds the client config described on Kubernetes.
func restConfig(k *config.Kubernetes, o KubernetesOptions) (*rest.Config, error) {
	if len(k.Servers) == 0 {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return rc, nil
	}
	host := k.Servers[0]
	if !strings.Contains(host, "://") {
		// rest would pick plain http for a bare host:port without TLS
		// settings, and send the token in the clear.
		host = "https://" + host
	}
	tokenFile := cmp.Or(k.Tokenpath, DefaultServiceAccountToken)
	if _, err := os.ReadFile(tokenFile); err != nil {
		return nil, fmt.Errorf("reading token: %w", err)
	}
	rc := &rest.Config{Host: host, BearerTokenFile: tokenFile}
	switch {
	case o.Insecure:
		rc.TLSClientConfig.Insecure = true
	case o.CAFile != "":
		rc.TLSClientConfig.CAFile = o.CAFile
	default:
		if _, err := os.Stat(DefaultServiceAccountCA); err == nil {
			rc.TLSClientConfig.CAFile = DefaultServiceAccountCA
		}
	}
	return rc, nil
}

// parseK8sTarget reads "[namespace/]name[:port]".
func parseK8sTarget(s string) (k8sTarget, error) {
	t := k8sTarget{namespace: DefaultNamespace}
	rest := s
	if ns, n, ok := strings.Cut(rest, "/"); ok {
		t.namespace, rest = ns, n
	}
	if n, p, ok := strings.Cut(rest, ":"); ok {
		rest, t.port = n, p
		if p == "" {
			return t, fmt.Errorf("%w %q: empty port", ErrBadKubernetesService, s)
		}
	}
	t.name = rest
	if t.namespace == "" || t.name == "" || strings.ContainsAny(t.name, "/:") {
		return t, fmt.Errorf("%w %q: want [namespace/]name[:port]", ErrBadKubernetesService, s)
	}
	return t, nil
}

// Name returns "kubernetes".
func (k *Kubernetes) Name() string { return "kubernetes" }

// SetBase replaces the file-defined table that discovered hosts are
// merged into (after the upstreams file was reloaded with the same
// kubernetes block; a changed block needs a new Kubernetes). Run then
// emits the merged table again even if no endpoint changed: at once when
// the informers have synced, else with the first table. up must not be
// changed afterwards. It never blocks and is safe for concurrent use
// with Run.
func (k *Kubernetes) SetBase(up *config.Upstreams) { k.base.set(up) }

// Run runs one informer per mapped service until ctx is done, then
// returns nil. It never returns an error: an unreachable API server is
// retried.
func (k *Kubernetes) Run(ctx context.Context, out chan<- Update) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	changed := make(chan struct{}, 1)
	informers := make([]cache.SharedIndexInformer, len(k.targets))
	for i := range k.targets {
		inf := k.informer(i, changed)
		informers[i] = inf
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					k.log.Error("kubernetes informer panicked", "service", k.services[i].Upstream, "panic", r, "stack", string(debug.Stack()))
				}
			}()
			inf.RunWithContext(ctx)
		})
	}
	synced := make([]cache.InformerSynced, len(informers))
	for i, inf := range informers {
		synced[i] = inf.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}

	em := emitter{source: k.Name(), base: &k.base, out: out}
	force := false
	for {
		if !em.send(ctx, k.hosts(informers), force) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			force = false
		case <-k.base.wake:
			force = true
		}
	}
}

// informer builds the EndpointSlice informer of service i; every event
// signals changed (coalesced: a buffered channel of one).
func (k *Kubernetes) informer(i int, changed chan<- struct{}) cache.SharedIndexInformer {
	t := k.targets[i]
	selector := discoveryv1.LabelServiceName + "=" + t.name
	slices := k.client.endpointSlices(t.namespace)
	return k.health.informer(k.services[i].Upstream, &discoveryv1.EndpointSlice{},
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.LabelSelector = selector
			return slices.List(ctx, opts)
		},
		func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.LabelSelector = selector
			return slices.Watch(ctx, opts)
		}, nil, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
}

// listFunc and watchFunc are an informer's list and watch calls.
type (
	listFunc  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watchFunc func(context.Context, metav1.ListOptions) (watch.Interface, error)
)

// informer builds an informer over list and watch whose failures and
// recoveries w logs under what; every event calls changed.
func (w *watchHealth) informer(what string, obj runtime.Object, list listFunc, watchFn watchFunc, idx cache.Indexers, changed func()) cache.SharedIndexInformer {
	if idx == nil {
		idx = cache.Indexers{}
	}
	// A list or watch the API server answered ends a failure.
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := list(ctx, o)
			if err == nil {
				w.ok(what)
			}
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			wi, err := watchFn(ctx, o)
			if err == nil {
				w.ok(what)
			}
			return wi, err
		},
	}
	inf := cache.NewSharedIndexInformer(lw, obj, 0, idx)
	// Errors from AddEventHandler and SetWatchErrorHandler only report
	// an informer that already started; this one has not.
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	})
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		w.failed(what, err)
	})
	return inf
}

// watchHealth logs informer list/watch failures once per distinct error
// and the first answer after a failure. It is safe for concurrent use.
type watchHealth struct {
	log     *slog.Logger
	mu      sync.Mutex        // guards failing
	failing map[string]string // watch → the last logged failure
}

// failed logs a list/watch failure of the watch named what, once per
// distinct error. A watch the server closed normally or an expired
// resource version is routine (the reflector lists again) and logged at
// debug.
func (w *watchHealth) failed(what string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		w.log.Debug("kubernetes watch restarted", "watch", what, "err", err)
		return
	}
	msg := err.Error()
	w.mu.Lock()
	if w.failing == nil {
		w.failing = map[string]string{}
	}
	first := w.failing[what] != msg
	w.failing[what] = msg
	w.mu.Unlock()
	if first {
		w.log.Warn("kubernetes watch failed; keeping the last table", "watch", what, "err", err)
	}
}

// ok logs the first answer to the watch named what after a failure.
func (w *watchHealth) ok(what string) {
	w.mu.Lock()
	_, was := w.failing[what]
	delete(w.failing, what)
	w.mu.Unlock()
	if was {
		w.log.Info("kubernetes watch recovered", "watch", what)
	}
}

// hosts builds the discovered hosts from the informers' stores.
func (k *Kubernetes) hosts(informers []cache.SharedIndexInformer) []config.Host {
	names := make([]string, len(k.services))
	paths := make([]config.Path, len(k.services))
	for i, s := range k.services {
		var eps []*discoveryv1.EndpointSlice
		for _, obj := range informers[i].GetStore().List() {
			if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
				eps = append(eps, es)
			}
		}
		names[i] = s.Hostname
		paths[i] = servicePath(s.Path, s.Policy, s.RedirectTo, sliceServers(eps, k.targets[i].port), s.Pos)
	}
	return serviceHosts(names, paths)
}

// sliceServers maps the ready endpoints of eps to servers sorted by
// address. port selects the slice port by name or number; empty means
// the slice's first port. A slice without a matching port is skipped.
func sliceServers(eps []*discoveryv1.EndpointSlice, port string) []config.Server {
	return readyServers(eps, func(ports []discoveryv1.EndpointPort) (int32, bool) { return slicePort(ports, port) })
}

// readyServers maps the ready endpoints (conditions.ready true or
// unset) of eps to servers at the port pick chooses from each slice's
// ports, sorted by address and deduplicated. A slice pick finds no port
// in is skipped.
func readyServers(eps []*discoveryv1.EndpointSlice, pick func([]discoveryv1.EndpointPort) (int32, bool)) []config.Server {
	out := []config.Server{}
	for _, es := range eps {
		p, ok := pick(es.Ports)
		if !ok {
			continue
		}
		ps := strconv.Itoa(int(p))
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				if a == "" {
					continue
				}
				out = append(out, config.Server{Address: net.JoinHostPort(a, ps), Weight: config.DefaultWeight})
			}
		}
	}
	slices.SortFunc(out, func(a, b config.Server) int { return cmp.Compare(a.Address, b.Address) })
	return slices.CompactFunc(out, func(a, b config.Server) bool { return a.Address == b.Address })
}

// slicePort picks the port named or numbered want, else the first
// port with a number.
func slicePort(ports []discoveryv1.EndpointPort, want string) (int32, bool) {
	for _, p := range ports {
		if p.Port == nil || *p.Port <= 0 {
			continue
		}
		if want == "" || (p.Name != nil && *p.Name == want) || strconv.Itoa(int(*p.Port)) == want {
			return *p.Port, true
		}
	}
	return 0, false
}
