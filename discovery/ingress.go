package discovery

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/aralez-go/aralez/config"
)

// DefaultIngressClass is the ingress class the controller serves when
// kubernetes.ingress_class is not set.
const DefaultIngressClass = "aralez"

// IngressControllerName is the spec.controller of an IngressClass whose
// Ingresses the controller serves, whatever the class is called (the
// name Aralez's chart uses).
const IngressControllerName = "aralez.proxy/ingress-controller"

// Defaults of IngressOptions.
const (
	// DefaultStatusService and DefaultStatusNamespace name the Service
	// whose load-balancer address is published in Ingress status when
	// ARALEZ_EXTERNAL_IP is not set (Aralez's defaults).
	DefaultStatusService   = "aralez-service"
	DefaultStatusNamespace = "aralez"
	// DefaultAuthRefresh is how often the Secrets named by
	// aralez.rs/auth_secret are read again (they are not watched: only
	// Secrets of type kubernetes.io/tls are).
	DefaultAuthRefresh = time.Minute
	// DefaultStatusRetry is the pause before writing Ingress status
	// again after a failed write.
	DefaultStatusRetry = 5 * time.Second
)

// ingressEventSource names the controller in the Events it records.
const ingressEventSource = "aralez-ingress-controller"

// Event reasons the controller records on Ingresses (type Warning).
const (
	ReasonBadAnnotation = "BadAnnotation" // the Ingress is skipped
	ReasonBadRule       = "BadRule"       // a rule or path is skipped
	ReasonRouteConflict = "RouteConflict" // a path is skipped: another owner wins
	ReasonBackend       = "BackendNotFound"
	ReasonTLSSecret     = "BadTLSSecret"
)

// IngressOptions tunes an Ingress controller. The zero value is ready to
// use: every zero field takes the default its doc names.
type IngressOptions struct {
	// CAFile, Insecure and Logger are as in KubernetesOptions.
	CAFile   string
	Insecure bool
	Logger   *slog.Logger

	// Identity names this replica in the Lease. Empty means $POD_NAME,
	// else the host name.
	Identity string
	// LeaseNamespace is where the Lease lives. Empty means
	// $POD_NAMESPACE, else the service account's namespace, else
	// "default".
	LeaseNamespace string
	// LeaseName names the Lease. Empty means "aralez-ingress-<class>".
	LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod time the election;
	// zero means DefaultLeaseDuration, DefaultRenewDeadline and
	// DefaultRetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration

	// ExternalIP is the address published in Ingress status (an IP, or
	// a host name). Empty means $ARALEZ_EXTERNAL_IP, else the
	// load-balancer addresses of the Service StatusService in
	// StatusNamespace.
	ExternalIP string
	// StatusService and StatusNamespace name that Service. Empty means
	// $ARALEZ_SERVICE_NAME and $ARALEZ_SERVICE_NAMESPACE, else
	// DefaultStatusService and DefaultStatusNamespace.
	StatusService, StatusNamespace string

	// AuthRefresh is how often auth Secrets are read again. Zero means
	// DefaultAuthRefresh.
	AuthRefresh time.Duration
	// StatusRetry is the pause before retrying a failed status write.
	// Zero means DefaultStatusRetry.
	StatusRetry time.Duration
	// EventRetry is how long the event recorder waits before retrying
	// a failed write. Zero means client-go's default (10s).
	EventRetry time.Duration
}

// Ingress is the Kubernetes Ingress controller: the discovery source of
// provider kubernetes when the kubernetes block maps no services. It
// serves the networking.k8s.io/v1 Ingresses of its class and emits
// their routes merged with the file-defined table, and their TLS
// certificates.
//
// # Which Ingresses
//
// An Ingress is served when spec.ingressClassName is the class
// (kubernetes.ingress_class, default DefaultIngressClass) or names an
// IngressClass whose spec.controller is IngressControllerName; without a
// class, when its kubernetes.io/ingress.class annotation is the class,
// or an IngressClass of ours is marked as the cluster's default.
//
// # Routes
//
// Each rule's host (none: DEFAULT) and path becomes a route; a
// defaultBackend becomes DEFAULT "/". pathType Exact becomes an exact
// route (config.MatchExact), which beats every prefix of its host;
// Prefix matches element-wise and ignores a trailing "/" (it becomes our
// prefix rule without the trailing "/"); ImplementationSpecific is our
// prefix rule as written. The servers of a route are the ready
// endpoints of the EndpointSlices of its Service, at the port of the
// Service port the backend names (by number or name). A route whose
// Service or port is missing has no servers (503), and an Event says
// why.
//
// Conflicts: the file table wins over every Ingress (same host and
// path, any kind), and an older Ingress (creationTimestamp, then
// namespace/name) over a newer one (same host, path and kind); the
// loser's path is skipped with an Event, its other paths serve. An
// Ingress with a bad aralez.rs/ annotation (see parseAnnotations) is
// skipped whole, and a bad host or path alone; each with an Event and a
// log line, while the others keep serving.
//
// # TLS
//
// spec.tls Secrets (watched: only Secrets of type kubernetes.io/tls)
// are parsed and handed to the TLS store in Update.Certificates; the
// store serves each for the names its certificate carries. A Secret
// that is missing or does not parse gets an Event and a log line; one
// that parsed before keeps its last good certificate.
//
// # Status, Events and leader election
//
// Replicas elect a leader through a coordination.k8s.io/v1 Lease (see
// leaseElector); only the leader writes status.loadBalancer of the
// Ingresses it serves (IngressOptions.ExternalIP, else the status
// Service's load-balancer addresses) and records Events, so N replicas
// write once. Every replica serves every route and logs every problem.
//
// # Failures
//
// When the API server fails, the informers keep their last state and
// nothing is emitted: the last table keeps serving; client-go retries
// and each distinct failure and the recovery are logged once. Removing
// the last Ingress removes its routes (the empty-table guard of the
// reload loop applies to the file only).
//
// An Ingress works off the request path; its goroutines end when Run's
// context ends. Run may be called once at a time; SetBase at any time.
// An Ingress must not be copied.
type Ingress struct {
	base  baseTable
	class string
	o     IngressOptions
	log   *slog.Logger

	client *kubeClient

	health watchHealth

	// Owned by Run's goroutine.
	certs   map[string]secretCert // last good certificate per Secret
	auth    map[string]authEntry  // auth Secrets read by GET
	logged  map[string]bool       // problems already logged
	evented map[string]bool       // problems already recorded as Events
}

var _ Source = (*Ingress)(nil)

// secretCert is the last good certificate of a TLS Secret.
type secretCert struct {
	version string
	cert    *tls.Certificate
}

// authEntry is an auth Secret as last read.
type authEntry struct {
	data []byte
	err  error
	read time.Time
}

// NewIngress returns the Ingress controller for k (nil: in-cluster, no
// other settings) whose tables extend base (the file-defined table; nil
// means empty). The API server and token are as for NewKubernetes. It
// does no network I/O; it returns rest.ErrNotInCluster (wrapped)
// without servers outside a cluster, or an error when the token file
// cannot be read. base and k must not be changed afterwards.
func NewIngress(base *config.Upstreams, k *config.Kubernetes, o IngressOptions) (*Ingress, error) {
	if k == nil {
		k = &config.Kubernetes{}
	}
	g := &Ingress{
		class: cmp.Or(k.IngressClass, DefaultIngressClass),
		o:     o,
		log:   o.Logger,
		certs: map[string]secretCert{}, auth: map[string]authEntry{},
		logged: map[string]bool{}, evented: map[string]bool{},
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	g.health.log = g.log
	g.base.init(base)
	g.o.Identity = cmp.Or(o.Identity, os.Getenv("POD_NAME"))
	if g.o.Identity == "" {
		g.o.Identity, _ = os.Hostname()
	}
	g.o.LeaseNamespace = cmp.Or(o.LeaseNamespace, os.Getenv("POD_NAMESPACE"), serviceAccountNamespace(), "default")
	g.o.LeaseName = cmp.Or(o.LeaseName, "aralez-ingress-"+g.class)
	g.o.LeaseDuration = cmp.Or(o.LeaseDuration, DefaultLeaseDuration)
	g.o.RenewDeadline = cmp.Or(o.RenewDeadline, DefaultRenewDeadline)
	g.o.RetryPeriod = cmp.Or(o.RetryPeriod, DefaultRetryPeriod)
	g.o.ExternalIP = cmp.Or(o.ExternalIP, strings.TrimSpace(os.Getenv("ARALEZ_EXTERNAL_IP")))
	g.o.StatusService = cmp.Or(o.StatusService, os.Getenv("ARALEZ_SERVICE_NAME"), DefaultStatusService)
	g.o.StatusNamespace = cmp.Or(o.StatusNamespace, os.Getenv("ARALEZ_SERVICE_NAMESPACE"), DefaultStatusNamespace)
	g.o.AuthRefresh = cmp.Or(o.AuthRefresh, DefaultAuthRefresh)
	g.o.StatusRetry = cmp.Or(o.StatusRetry, DefaultStatusRetry)
	rc, err := restConfig(k, KubernetesOptions{CAFile: o.CAFile, Insecure: o.Insecure})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	rc.UserAgent = "aralez"
	if g.client, err = newKubeClient(rc); err != nil {
		return nil, fmt.Errorf("kubernetes: creating client: %w", err)
	}
	return g, nil
}

// serviceAccountNamespace reads the pod's namespace from its service
// account, "" outside a cluster.
func serviceAccountNamespace() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Name returns "kubernetes".
func (g *Ingress) Name() string { return "kubernetes" }

// SetBase replaces the file-defined table that Ingress routes are merged
// into; Run then emits the merged table again. up must not be changed
// afterwards. It never blocks and is safe for concurrent use with Run.
func (g *Ingress) SetBase(up *config.Upstreams) { g.base.set(up) }

// ingressInformers are the controller's informers, over every namespace.
type ingressInformers struct {
	ing, class, svc, eps, sec cache.SharedIndexInformer
}

// byService indexes EndpointSlices by "namespace/service".
const byService = "service"

// informers builds the informers; every event signals changed.
func (g *Ingress) informers(changed func()) ingressInformers {
	mk := func(what string, obj runtime.Object, list listFunc, watchFn watchFunc, idx cache.Indexers) cache.SharedIndexInformer {
		return g.health.informer(what, obj, list, watchFn, idx, changed)
	}
	ings, classes := g.client.ingresses(metav1.NamespaceAll), g.client.ingressClasses()
	svcs, slices, secs := g.client.services(metav1.NamespaceAll), g.client.endpointSlices(metav1.NamespaceAll), g.client.secrets(metav1.NamespaceAll)
	tlsOnly := func(o metav1.ListOptions) metav1.ListOptions {
		o.FieldSelector = "type=" + string(corev1.SecretTypeTLS)
		return o
	}
	return ingressInformers{
		ing: mk("ingresses", &networkingv1.Ingress{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return ings.List(ctx, o) },
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return ings.Watch(ctx, o) }, nil),
		class: mk("ingressclasses", &networkingv1.IngressClass{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return classes.List(ctx, o) },
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return classes.Watch(ctx, o) }, nil),
		svc: mk("services", &corev1.Service{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return svcs.List(ctx, o) },
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return svcs.Watch(ctx, o) }, nil),
		eps: mk("endpointslices", &discoveryv1.EndpointSlice{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return slices.List(ctx, o) },
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return slices.Watch(ctx, o) },
			cache.Indexers{byService: func(obj any) ([]string, error) {
				es, ok := obj.(*discoveryv1.EndpointSlice)
				if !ok {
					return nil, nil
				}
				return []string{es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]}, nil
			}}),
		sec: mk("secrets", &corev1.Secret{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return secs.List(ctx, tlsOnly(o))
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return secs.Watch(ctx, tlsOnly(o))
			}, nil),
	}
}

func (i ingressInformers) all() []cache.SharedIndexInformer {
	return []cache.SharedIndexInformer{i.ing, i.class, i.svc, i.eps, i.sec}
}

// Run runs the informers, the leader election and the event recorder
// until ctx is done, then returns nil. It never returns an error: an
// unreachable API server is retried.
func (g *Ingress) Run(ctx context.Context, out chan<- Update) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	infs := g.informers(notify)
	var synced []cache.InformerSynced
	for _, inf := range infs.all() {
		synced = append(synced, inf.HasSynced)
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					g.log.Error("kubernetes informer panicked", "panic", r, "stack", string(debug.Stack()))
				}
			}()
			inf.RunWithContext(ctx)
		})
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}

	opts := []record.BroadcasterOption{record.WithContext(ctx)}
	if g.o.EventRetry > 0 {
		opts = append(opts, record.WithSleepDuration(g.o.EventRetry))
	}
	bc := record.NewBroadcaster(opts...)
	bc.StartRecordingToSink(eventSink{ctx: ctx, c: g.client})
	defer bc.Shutdown()
	rec := bc.NewRecorder(kubeScheme, corev1.EventSource{Component: ingressEventSource})

	el := &leaseElector{
		leases: g.client.leases(g.o.LeaseNamespace), name: g.o.LeaseName, id: g.o.Identity,
		duration: g.o.LeaseDuration, renew: g.o.RenewDeadline, retry: g.o.RetryPeriod,
		log: g.log, notify: notify,
	}
	wg.Go(func() { el.run(ctx) })

	em := emitter{source: g.Name(), base: &g.base, out: out}
	lastCerts := ""
	leading := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b := g.build(ctx, infs)
		if !em.send(ctx, b.hosts, false) {
			return nil
		}
		if d := certDigest(b.certs); d != lastCerts {
			lastCerts = d
			select {
			case out <- Update{Source: g.Name(), Certificates: &Certificates{List: b.certs}}:
			case <-ctx.Done():
				return nil
			}
		}
		if now := el.Leading(); now != leading {
			leading = now
			clear(g.evented) // a new leader records the current problems
		}
		g.report(b.problems, rec, leading)
		next := time.Duration(0)
		if leading && !g.writeStatus(ctx, infs, b.served) {
			next = g.o.StatusRetry
		}
		if b.authSecrets && (next == 0 || g.o.AuthRefresh < next) {
			next = g.o.AuthRefresh
		}
		if next > 0 {
			timer.Reset(next)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-g.base.wake:
			em.force = true
		case <-timer.C:
		}
		timer.Stop()
	}
}

// problem is one thing wrong with an Ingress, for an Event and a log
// line.
type problem struct {
	ing     *networkingv1.Ingress
	reason  string
	message string
}

// ingressBuild is the result of one pass over the informers' state.
type ingressBuild struct {
	hosts       []config.Host
	certs       []*tls.Certificate
	problems    []problem
	served      []*networkingv1.Ingress // Ingresses whose status we own
	authSecrets bool                    // an auth Secret is in use
}

// build computes the routes, certificates, problems and served
// Ingresses from the informers' stores.
func (g *Ingress) build(ctx context.Context, infs ingressInformers) ingressBuild {
	var b ingressBuild
	classes := map[string]*networkingv1.IngressClass{}
	for _, o := range infs.class.GetStore().List() {
		if c, ok := o.(*networkingv1.IngressClass); ok {
			classes[c.Name] = c
		}
	}
	var ings []*networkingv1.Ingress
	for _, o := range infs.ing.GetStore().List() {
		if ing, ok := o.(*networkingv1.Ingress); ok && g.ours(ing, classes) {
			ings = append(ings, ing)
		}
	}
	// Oldest first: an older Ingress wins a conflict.
	slices.SortFunc(ings, func(a, c *networkingv1.Ingress) int {
		if d := a.CreationTimestamp.Compare(c.CreationTimestamp.Time); d != 0 {
			return d
		}
		return cmp.Or(cmp.Compare(a.Namespace, c.Namespace), cmp.Compare(a.Name, c.Name))
	})
	file := fileRoutes(g.base.p.Load())
	owner := map[string]*networkingv1.Ingress{} // route key → owning Ingress
	var names []string
	var paths []config.Path
	certSeen := map[string]bool{}
	for _, ing := range ings {
		bad := func(reason, format string, args ...any) {
			b.problems = append(b.problems, problem{ing: ing, reason: reason, message: fmt.Sprintf(format, args...)})
		}
		tmpl, err := parseAnnotations(ing.Annotations)
		if err == nil && tmpl.authSecret != "" {
			b.authSecrets = true
			err = g.authCredentials(ctx, ing.Namespace, &tmpl)
		}
		if err != nil {
			bad(ReasonBadAnnotation, "Ingress skipped: %v", err)
			continue
		}
		b.served = append(b.served, ing)
		add := func(host string, hp networkingv1.HTTPIngressPath) {
			p, err := ingressPath(hp, tmpl)
			if err == nil {
				err = checkRoute(host, p)
			}
			if err != nil {
				bad(ReasonBadRule, "host %s path %q skipped: %v", host, hp.Path, err)
				return
			}
			key := routeKey(host, p)
			switch prev := owner[key]; {
			case file[host+" "+p.Prefix]:
				bad(ReasonRouteConflict, "host %s path %s skipped: the upstreams file routes it, and the file wins", host, p.Prefix)
				return
			case prev != nil:
				bad(ReasonRouteConflict, "host %s path %s skipped: Ingress %s/%s (older) routes it", host, p.Prefix, prev.Namespace, prev.Name)
				return
			}
			owner[key] = ing
			if hp.Backend.Service == nil {
				bad(ReasonBadRule, "host %s path %s: only Service backends are supported; it answers 503", host, p.Prefix)
			} else {
				servers, msg := g.backendServers(infs, ing.Namespace, hp.Backend.Service)
				if msg != "" {
					bad(ReasonBackend, "host %s path %s: %s; it answers 503", host, p.Prefix, msg)
				}
				p.Servers = servers
			}
			names, paths = append(names, host), append(paths, p)
		}
		if db := ing.Spec.DefaultBackend; db != nil {
			root := networkingv1.PathTypeImplementationSpecific
			add("DEFAULT", networkingv1.HTTPIngressPath{Path: "/", PathType: &root, Backend: *db})
		}
		for _, rule := range ing.Spec.Rules {
			host := "DEFAULT"
			if rule.Host != "" {
				h, err := config.NormaliseHost(rule.Host)
				if err == nil && h == "DEFAULT" {
					err = errors.New("DEFAULT is not a host name")
				}
				if err != nil {
					bad(ReasonBadRule, "rule for host %q skipped: %v", rule.Host, err)
					continue
				}
				host = h
			}
			if rule.HTTP == nil {
				continue
			}
			for _, hp := range rule.HTTP.Paths {
				add(host, hp)
			}
		}
		for _, t := range ing.Spec.TLS {
			if t.SecretName == "" || certSeen[ing.Namespace+"/"+t.SecretName] {
				continue
			}
			certSeen[ing.Namespace+"/"+t.SecretName] = true
			cert, msg := g.secretCert(infs, ing.Namespace, t.SecretName)
			if msg != "" {
				bad(ReasonTLSSecret, "TLS Secret %s: %s", t.SecretName, msg)
			}
			if cert != nil {
				b.certs = append(b.certs, cert)
			}
		}
	}
	for key := range g.certs {
		if !certSeen[key] {
			delete(g.certs, key) // no served Ingress names it any more
		}
	}
	b.hosts = serviceHosts(names, paths)
	return b
}

// ours reports whether the controller serves ing (see Ingress).
func (g *Ingress) ours(ing *networkingv1.Ingress, classes map[string]*networkingv1.IngressClass) bool {
	if n := ing.Spec.IngressClassName; n != nil {
		c := classes[*n]
		return *n == g.class || (c != nil && c.Spec.Controller == IngressControllerName)
	}
	if a, ok := ing.Annotations["kubernetes.io/ingress.class"]; ok {
		return a == g.class
	}
	for _, c := range classes {
		if (c.Name == g.class || c.Spec.Controller == IngressControllerName) && c.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true" {
			return true
		}
	}
	return false
}

// fileRoutes returns the "host prefix" set of the file-defined table.
func fileRoutes(up *config.Upstreams) map[string]bool {
	out := map[string]bool{}
	if up == nil {
		return out
	}
	for _, h := range up.Hosts {
		for _, p := range h.Paths {
			out[h.Name+" "+p.Prefix] = true
		}
	}
	return out
}

// routeKey identifies a route among Ingresses: host, prefix and kind.
func routeKey(host string, p config.Path) string {
	return host + " " + string(p.Match) + " " + p.Prefix
}

// ingressPath maps an Ingress path to a path entry (without servers):
// see Ingress for the pathType rules.
func ingressPath(hp networkingv1.HTTPIngressPath, t routeTemplate) (config.Path, error) {
	p := config.Path{Prefix: hp.Path, Policy: t.policy, LoadBalance: t.loadBalance}
	if p.Prefix == "" {
		p.Prefix = "/"
	}
	kind := networkingv1.PathTypeImplementationSpecific
	if hp.PathType != nil {
		kind = *hp.PathType
	}
	switch kind {
	case networkingv1.PathTypeExact:
		p.Match = config.MatchExact
	case networkingv1.PathTypePrefix:
		if trimmed := strings.TrimRight(p.Prefix, "/"); trimmed != "" {
			p.Prefix = trimmed
		}
	case networkingv1.PathTypeImplementationSpecific:
	default:
		return p, fmt.Errorf("unknown pathType %q", kind)
	}
	return p, nil
}

// backendServers returns the ready endpoints of a Service backend, or
// why there are none.
func (g *Ingress) backendServers(infs ingressInformers, ns string, b *networkingv1.IngressServiceBackend) ([]config.Server, string) {
	servers := []config.Server{}
	o, ok, _ := infs.svc.GetStore().GetByKey(ns + "/" + b.Name)
	svc, _ := o.(*corev1.Service)
	if !ok || svc == nil {
		return servers, "Service " + ns + "/" + b.Name + " not found"
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (b.Port.Name != "" && p.Name == b.Port.Name) || (b.Port.Name == "" && p.Port == b.Port.Number) {
			sp = p
			break
		}
	}
	if sp == nil {
		port := b.Port.Name
		if port == "" {
			port = strconv.Itoa(int(b.Port.Number))
		}
		return servers, "Service " + ns + "/" + b.Name + " has no port " + port
	}
	objs, _ := infs.eps.GetIndexer().ByIndex(byService, ns+"/"+b.Name)
	eps := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok {
			eps = append(eps, es)
		}
	}
	// A slice's port carries the Service port's name ("" when unnamed)
	// and the target port's number.
	return readyServers(eps, func(ports []discoveryv1.EndpointPort) (int32, bool) {
		for _, ep := range ports {
			if ep.Port != nil && *ep.Port > 0 && ptrValue(ep.Name) == sp.Name {
				return *ep.Port, true
			}
		}
		return 0, false
	}), ""
}

// ptrValue returns *p, or "" for nil.
func ptrValue(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// secretCert returns the certificate of TLS Secret ns/name, or its last
// good one with why the current one is not used.
func (g *Ingress) secretCert(infs ingressInformers, ns, name string) (*tls.Certificate, string) {
	key := ns + "/" + name
	prev := g.certs[key]
	o, ok, _ := infs.sec.GetStore().GetByKey(key)
	sec, _ := o.(*corev1.Secret)
	if !ok || sec == nil {
		// The informer keeps its state through an outage: not found
		// means deleted (or never created).
		delete(g.certs, key)
		return nil, "not found, or not of type " + string(corev1.SecretTypeTLS)
	}
	if prev.cert != nil && prev.version == sec.ResourceVersion {
		return prev.cert, ""
	}
	cert, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		msg := "does not hold a usable " + corev1.TLSCertKey + " and " + corev1.TLSPrivateKeyKey + ": " + err.Error()
		if prev.cert != nil {
			msg += "; the last good certificate keeps serving"
		}
		return prev.cert, msg
	}
	g.certs[key] = secretCert{version: sec.ResourceVersion, cert: &cert}
	return &cert, ""
}

// certDigest identifies a set of certificates ("" for none).
func certDigest(certs []*tls.Certificate) string {
	if len(certs) == 0 {
		return ""
	}
	h := sha256.New()
	for _, c := range certs {
		for _, der := range c.Certificate {
			h.Write(der)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// authCredentials fills t's authorization data from its auth Secret,
// read by GET at most every AuthRefresh (the last answer is kept while
// the API server fails).
func (g *Ingress) authCredentials(ctx context.Context, ns string, t *routeTemplate) error {
	key := ns + "/" + t.authSecret
	e, ok := g.auth[key]
	if !ok || time.Since(e.read) >= g.o.AuthRefresh {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sec, err := g.client.secrets(ns).Get(rctx, t.authSecret)
		cancel()
		switch {
		case err == nil:
			e = authEntry{data: sec.Data[AuthSecretKey], read: time.Now()}
			if len(e.data) == 0 {
				e.err = fmt.Errorf("Secret %s has no %q key", t.authSecret, AuthSecretKey)
			}
		case apierrors.IsNotFound(err) || !ok:
			e = authEntry{err: fmt.Errorf("reading Secret %s: %w", t.authSecret, err), read: time.Now()}
		default:
			e.read = time.Now() // keep the last answer; retry later
		}
		g.auth[key] = e
	}
	if e.err != nil {
		return fmt.Errorf("annotation %s%s: %w", AnnotationPrefix, annAuthSecret, e.err)
	}
	t.policy.Authorization.Data = authData(t.policy.Authorization.Type, e.data)
	return nil
}

// report logs each new problem once and, when leading, records it as a
// Warning Event on its Ingress once.
func (g *Ingress) report(problems []problem, rec record.EventRecorder, leading bool) {
	seen := map[string]bool{}
	for _, p := range problems {
		key := string(p.ing.UID) + " " + p.reason + " " + p.message
		seen[key] = true
		if !g.logged[key] {
			g.logged[key] = true
			g.log.Warn("kubernetes ingress: "+p.message, "ingress", p.ing.Namespace+"/"+p.ing.Name, "reason", p.reason)
		}
		if leading && !g.evented[key] {
			g.evented[key] = true
			rec.Event(p.ing, corev1.EventTypeWarning, p.reason, p.message)
		}
	}
	for key := range g.logged {
		if !seen[key] {
			delete(g.logged, key) // fixed: report it again if it comes back
			delete(g.evented, key)
		}
	}
}

// statusAddresses returns the addresses to publish in Ingress status.
func (g *Ingress) statusAddresses(infs ingressInformers) []networkingv1.IngressLoadBalancerIngress {
	if a := g.o.ExternalIP; a != "" {
		if _, err := netip.ParseAddr(a); err == nil {
			return []networkingv1.IngressLoadBalancerIngress{{IP: a}}
		}
		return []networkingv1.IngressLoadBalancerIngress{{Hostname: a}}
	}
	o, ok, _ := infs.svc.GetStore().GetByKey(g.o.StatusNamespace + "/" + g.o.StatusService)
	svc, _ := o.(*corev1.Service)
	if !ok || svc == nil {
		return nil
	}
	var out []networkingv1.IngressLoadBalancerIngress
	for _, lb := range svc.Status.LoadBalancer.Ingress {
		out = append(out, networkingv1.IngressLoadBalancerIngress{IP: lb.IP, Hostname: lb.Hostname})
	}
	return out
}

// writeStatus sets status.loadBalancer of every served Ingress to our
// addresses where it differs, and reports whether every write
// succeeded (or there was nothing to write).
func (g *Ingress) writeStatus(ctx context.Context, infs ingressInformers, served []*networkingv1.Ingress) bool {
	addrs := g.statusAddresses(infs)
	if len(addrs) == 0 {
		return true
	}
	ok := true
	for _, ing := range served {
		if slices.EqualFunc(ing.Status.LoadBalancer.Ingress, addrs, func(a, b networkingv1.IngressLoadBalancerIngress) bool {
			return a.IP == b.IP && a.Hostname == b.Hostname
		}) {
			continue
		}
		n := ing.DeepCopy()
		n.Status.LoadBalancer.Ingress = addrs
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := g.client.ingresses(ing.Namespace).UpdateStatus(wctx, n)
		cancel()
		if err != nil {
			ok = false
			if ctx.Err() == nil {
				g.log.Warn("kubernetes ingress: writing status failed; retrying", "ingress", ing.Namespace+"/"+ing.Name, "err", err,
					"retry_seconds", g.o.StatusRetry.Seconds())
			}
		}
	}
	return ok
}

// permission is one API request kind the Ingress controller makes, in
// RBAC's terms.
type permission struct {
	group, resource, verb string
}

// ingressPermissions lists every request kind the Ingress controller
// makes; the RBAC of etc/kubernetes/ grants exactly these (a test checks
// both sides: the controller makes no other request against the API
// emulator, and the manifests grant each).
var ingressPermissions = []permission{
	{"networking.k8s.io", "ingresses", "list"}, {"networking.k8s.io", "ingresses", "watch"},
	{"networking.k8s.io", "ingresses/status", "update"},
	{"networking.k8s.io", "ingressclasses", "list"}, {"networking.k8s.io", "ingressclasses", "watch"},
	{"", "services", "list"}, {"", "services", "watch"},
	{"discovery.k8s.io", "endpointslices", "list"}, {"discovery.k8s.io", "endpointslices", "watch"},
	{"", "secrets", "list"}, {"", "secrets", "watch"}, {"", "secrets", "get"},
	{"", "events", "create"}, {"", "events", "patch"},
	{"coordination.k8s.io", "leases", "get"}, {"coordination.k8s.io", "leases", "create"}, {"coordination.k8s.io", "leases", "update"},
}
