package discovery

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// The Kubernetes sources talk to the API server through client-go's
// rest client with a scheme of their own, holding only the API groups
// they read and write. client-go's generated typed clients would do the
// same requests, but they import kubernetes/scheme, which registers
// every API group of k8s.io/api (apps, batch, rbac, storage, …) and so
// links all of them into the proxy: about 10 MB of the executable,
// whose pages the kernel maps in around each one touched (issue 16,
// resident memory).

// kubeScheme knows the kinds the Kubernetes sources use:
// core/v1 (Services, Secrets, Events), discovery.k8s.io/v1
// (EndpointSlices), networking.k8s.io/v1 (Ingresses, IngressClasses)
// and coordination.k8s.io/v1 (Leases), plus the unversioned meta types
// (Status, the list and watch options) as client-go's scheme has them.
var kubeScheme = newKubeScheme()

// kubeCodecs and kubeParams encode bodies and query parameters with
// kubeScheme, as client-go's generated clients do with theirs.
var (
	kubeCodecs = serializer.NewCodecFactory(kubeScheme)
	kubeParams = runtime.NewParameterCodec(kubeScheme)
)

// kubeGroups registers the API groups of kubeScheme.
var kubeGroups = runtime.SchemeBuilder{corev1.AddToScheme, discoveryv1.AddToScheme, networkingv1.AddToScheme, coordinationv1.AddToScheme}

func newKubeScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	// The registrations are static: Must's panic would be a
	// programming error that every test finds.
	utilruntime.Must(kubeGroups.AddToScheme(s))
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s
}

// kubeClient holds one rest client per API group version the sources
// use; they share one HTTP client (connections, TLS, the bearer token
// file re-read as it rotates). It is safe for concurrent use.
type kubeClient struct {
	core, discovery, networking, coordination rest.Interface
}

// newKubeClient builds the clients for rc (rc is not changed).
func newKubeClient(rc *rest.Config) (*kubeClient, error) {
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, err
	}
	mk := func(apiPath string, gv schema.GroupVersion) (rest.Interface, error) {
		c := *rc
		c.APIPath, c.GroupVersion = apiPath, &gv
		c.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(kubeScheme, kubeCodecs).WithoutConversion()
		return rest.RESTClientForConfigAndClient(&c, hc)
	}
	k := &kubeClient{}
	for _, g := range []struct {
		c       *rest.Interface
		apiPath string
		gv      schema.GroupVersion
	}{
		{&k.core, "/api", corev1.SchemeGroupVersion},
		{&k.discovery, "/apis", discoveryv1.SchemeGroupVersion},
		{&k.networking, "/apis", networkingv1.SchemeGroupVersion},
		{&k.coordination, "/apis", coordinationv1.SchemeGroupVersion},
	} {
		if *g.c, err = mk(g.apiPath, g.gv); err != nil {
			return nil, fmt.Errorf("%s: %w", g.gv, err)
		}
	}
	return k, nil
}

// kubeObject is a pointer to an API object of kubeScheme.
type kubeObject interface {
	runtime.Object
	metav1.Object
}

// kubeResource is a typed client of one resource in one namespace ("":
// all namespaces, or a cluster-scoped resource): the calls of
// client-go's generated clients that the sources make, with the same
// requests (protobuf preferred, JSON accepted). T is the object's
// pointer type, L its list's. It is safe for concurrent use.
type kubeResource[T kubeObject, L runtime.Object] struct {
	c         rest.Interface
	resource  string
	namespace string
	newObj    func() T
	newList   func() L
}

// newResource returns the client of resource in namespace ns over c.
func newResource[T kubeObject, L runtime.Object](c rest.Interface, resource, ns string, newObj func() T, newList func() L) kubeResource[T, L] {
	return kubeResource[T, L]{c: c, resource: resource, namespace: ns, newObj: newObj, newList: newList}
}

// The resources the sources use.

func (k *kubeClient) endpointSlices(ns string) kubeResource[*discoveryv1.EndpointSlice, *discoveryv1.EndpointSliceList] {
	return newResource(k.discovery, "endpointslices", ns, func() *discoveryv1.EndpointSlice { return new(discoveryv1.EndpointSlice) },
		func() *discoveryv1.EndpointSliceList { return new(discoveryv1.EndpointSliceList) })
}

func (k *kubeClient) ingresses(ns string) kubeResource[*networkingv1.Ingress, *networkingv1.IngressList] {
	return newResource(k.networking, "ingresses", ns, func() *networkingv1.Ingress { return new(networkingv1.Ingress) },
		func() *networkingv1.IngressList { return new(networkingv1.IngressList) })
}

func (k *kubeClient) ingressClasses() kubeResource[*networkingv1.IngressClass, *networkingv1.IngressClassList] {
	return newResource(k.networking, "ingressclasses", "", func() *networkingv1.IngressClass { return new(networkingv1.IngressClass) },
		func() *networkingv1.IngressClassList { return new(networkingv1.IngressClassList) })
}

func (k *kubeClient) services(ns string) kubeResource[*corev1.Service, *corev1.ServiceList] {
	return newResource(k.core, "services", ns, func() *corev1.Service { return new(corev1.Service) },
		func() *corev1.ServiceList { return new(corev1.ServiceList) })
}

func (k *kubeClient) secrets(ns string) kubeResource[*corev1.Secret, *corev1.SecretList] {
	return newResource(k.core, "secrets", ns, func() *corev1.Secret { return new(corev1.Secret) },
		func() *corev1.SecretList { return new(corev1.SecretList) })
}

func (k *kubeClient) events(ns string) kubeResource[*corev1.Event, *corev1.EventList] {
	return newResource(k.core, "events", ns, func() *corev1.Event { return new(corev1.Event) },
		func() *corev1.EventList { return new(corev1.EventList) })
}

func (k *kubeClient) leases(ns string) kubeResource[*coordinationv1.Lease, *coordinationv1.LeaseList] {
	return newResource(k.coordination, "leases", ns, func() *coordinationv1.Lease { return new(coordinationv1.Lease) },
		func() *coordinationv1.LeaseList { return new(coordinationv1.LeaseList) })
}

// on aims req at the resource (and at the object called name, when
// given), preferring protobuf as client-go's generated clients do.
func (r kubeResource[T, L]) on(req *rest.Request, name string) *rest.Request {
	req = req.UseProtobufAsDefault().NamespaceIfScoped(r.namespace, r.namespace != "").Resource(r.resource)
	if name != "" {
		req = req.Name(name)
	}
	return req
}

// optsTimeout is the client-side timeout of a list or watch: the
// server-side one it asks for, none when unset.
func optsTimeout(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}

// List lists the resource's objects that match opts' selectors.
func (r kubeResource[T, L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	out := r.newList()
	err := r.on(r.c.Get(), "").VersionedParams(&opts, kubeParams).Timeout(optsTimeout(opts)).Do(ctx).Into(out)
	return out, err
}

// Watch watches the resource's objects that match opts' selectors.
func (r kubeResource[T, L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return r.on(r.c.Get(), "").VersionedParams(&opts, kubeParams).Timeout(optsTimeout(opts)).Watch(ctx)
}

// Get reads the object called name.
func (r kubeResource[T, L]) Get(ctx context.Context, name string) (T, error) {
	out := r.newObj()
	err := r.on(r.c.Get(), name).VersionedParams(&metav1.GetOptions{}, kubeParams).Do(ctx).Into(out)
	return out, err
}

// Create creates obj and returns the server's copy.
func (r kubeResource[T, L]) Create(ctx context.Context, obj T) (T, error) {
	out := r.newObj()
	err := r.on(r.c.Post(), "").VersionedParams(&metav1.CreateOptions{}, kubeParams).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Update replaces obj (its resourceVersion guards against a concurrent
// change) and returns the server's copy.
func (r kubeResource[T, L]) Update(ctx context.Context, obj T) (T, error) {
	return r.update(ctx, obj, "")
}

// UpdateStatus replaces obj's status subresource.
func (r kubeResource[T, L]) UpdateStatus(ctx context.Context, obj T) (T, error) {
	return r.update(ctx, obj, "status")
}

func (r kubeResource[T, L]) update(ctx context.Context, obj T, subresource string) (T, error) {
	out := r.newObj()
	req := r.on(r.c.Put(), obj.GetName())
	if subresource != "" {
		req = req.SubResource(subresource)
	}
	err := req.VersionedParams(&metav1.UpdateOptions{}, kubeParams).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Patch applies a patch of type pt to the object called name and
// returns the server's copy.
func (r kubeResource[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte) (T, error) {
	out := r.newObj()
	err := r.on(r.c.Patch(pt), name).VersionedParams(&metav1.PatchOptions{}, kubeParams).Body(data).Do(ctx).Into(out)
	return out, err
}

// eventSink writes the event recorder's Events, each in its own
// namespace, as client-go's EventSinkImpl does; its requests end with
// ctx.
type eventSink struct {
	ctx context.Context
	c   *kubeClient
}

var _ record.EventSink = eventSink{}

func (s eventSink) Create(e *corev1.Event) (*corev1.Event, error) {
	return s.c.events(e.Namespace).Create(s.ctx, e)
}

func (s eventSink) Update(e *corev1.Event) (*corev1.Event, error) {
	return s.c.events(e.Namespace).Update(s.ctx, e)
}

func (s eventSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	return s.c.events(e.Namespace).Patch(s.ctx, e.Name, types.StrategicMergePatchType, data)
}
