package discovery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/internal/kubetest"
)

// Builders of the Kubernetes objects the Ingress tests use.

func ingressClass(name, controller string, isDefault bool) *networkingv1.IngressClass {
	c := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressClassSpec{Controller: controller}}
	if isDefault {
		c.Annotations = map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}
	}
	return c
}

// service builds a Service; ports are "name=port".
func service(ns, name string, ports ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, p := range ports {
		n, num, _ := strings.Cut(p, "=")
		v, _ := strconv.Atoi(num)
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: n, Port: int32(v)})
	}
	return s
}

// ipath builds an Ingress path; port is a number or a port name.
func ipath(kind networkingv1.PathType, path, svc, port string) networkingv1.HTTPIngressPath {
	b := networkingv1.IngressServiceBackend{Name: svc}
	if n, err := strconv.Atoi(port); err == nil {
		b.Port.Number = int32(n)
	} else {
		b.Port.Name = port
	}
	return networkingv1.HTTPIngressPath{Path: path, PathType: &kind, Backend: networkingv1.IngressBackend{Service: &b}}
}

// ingress builds an Ingress of class (nil class when ""), created at
// minute age of a fixed day (older Ingresses win conflicts), with one
// rule per host.
func ingress(ns, name, class string, age int, rules map[string][]networkingv1.HTTPIngressPath) *networkingv1.Ingress {
	in := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name,
		CreationTimestamp: metav1.NewTime(time.Date(2030, 1, 1, 0, age, 0, 0, time.UTC)),
	}}
	if class != "" {
		in.Spec.IngressClassName = &class
	}
	hosts := make([]string, 0, len(rules))
	for h := range rules {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		in.Spec.Rules = append(in.Spec.Rules, networkingv1.IngressRule{Host: h,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: rules[h]}}})
	}
	return in
}

// siteIngress builds Ingress web/site of our class: site.example.com
// "/" to port http of Service web/site.
func siteIngress() *networkingv1.Ingress {
	return ingress("web", "site", "aralez", 1, map[string][]networkingv1.HTTPIngressPath{
		"site.example.com": {ipath(networkingv1.PathTypePrefix, "/", "site", "http")}})
}

func tlsSecret(ns, name string, cert, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	}
}

// collector keeps the latest table and certificate set a source emitted.
type collector struct {
	mu     sync.Mutex
	table  string
	up     *config.Upstreams
	tables int
	certs  []string // CNs of the latest certificate set
	certN  int
}

func collect(t *testing.T, out <-chan Update) *collector {
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case u := <-out:
				c.mu.Lock()
				if u.Certificates != nil {
					c.certs = c.certs[:0]
					for _, crt := range u.Certificates.List {
						c.certs = append(c.certs, crt.Leaf.Subject.CommonName)
					}
					c.certN++
				} else {
					c.table, c.up = describe(u.Upstreams), u.Upstreams
					c.tables++
				}
				c.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	return c
}

// waitTable polls until the latest table is want.
func (c *collector) waitTable(t *testing.T, ceiling time.Duration, want string) *config.Upstreams {
	t.Helper()
	deadline := time.Now().Add(ceiling)
	for {
		c.mu.Lock()
		got, up, n := c.table, c.up, c.tables
		c.mu.Unlock()
		if got == want && n > 0 {
			return up
		}
		if time.Now().After(deadline) {
			t.Fatalf("table after %v = %q; want %q", ceiling, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCerts polls until the latest certificate set has the CNs want.
func (c *collector) waitCerts(t *testing.T, ceiling time.Duration, want ...string) {
	t.Helper()
	waitFor(t, ceiling, fmt.Sprintf("certificates %v", want), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.Equal(c.certs, want) && (c.certN > 0 || len(want) == 0)
	})
}

func (c *collector) counts() (tables, certs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tables, c.certN
}

// events returns "reason: message" of the Events recorded on Ingress
// ns/name.
func events(api *kubetest.Server, ns, name string) []string {
	var out []string
	for _, e := range kubetest.List[corev1.Event](api, "events") {
		if e.InvolvedObject.Kind == "Ingress" && e.InvolvedObject.Namespace == ns && e.InvolvedObject.Name == name {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

// waitEvent polls until Ingress ns/name has an Event containing want.
func waitEvent(t *testing.T, api *kubetest.Server, ns, name, want string) {
	t.Helper()
	waitFor(t, 10*time.Second, "an Event on "+ns+"/"+name+" containing "+want, func() bool {
		return slices.ContainsFunc(events(api, ns, name), func(e string) bool { return strings.Contains(e, want) })
	})
}

// testIngressOptions are sub-second timings for tests.
func testIngressOptions(logs *logBuffer, id, ip string) IngressOptions {
	return IngressOptions{
		Logger: logs.logger(), Identity: id, LeaseNamespace: "aralez", ExternalIP: ip,
		LeaseDuration: time.Second, RenewDeadline: 600 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
		StatusRetry: 100 * time.Millisecond, EventRetry: 50 * time.Millisecond, AuthRefresh: 200 * time.Millisecond,
	}
}

func newTestIngress(t *testing.T, api *kubetest.Server, base *config.Upstreams, token string, o IngressOptions) *Ingress {
	t.Helper()
	g, err := NewIngress(base, &config.Kubernetes{Servers: []string{api.URL()}, Tokenpath: tokenFile(t, token)}, o)
	if err != nil {
		t.Fatalf("NewIngress() error = %v", err)
	}
	return g
}

// TestIngressController drives the Ingress controller (issue 14) with
// real client-go informers and rest clients against the API emulator:
// class filtering, path kinds, EndpointSlice readiness, add, update and
// delete, conflicts with the file and between Ingresses, annotations
// good and bad, and the last Ingress deleted.
func TestIngressController(t *testing.T) {
	t.Parallel()
	api := kubetest.NewServer(t)
	api.Put(ingressClass("aralez", IngressControllerName, false))
	api.Put(ingressClass("custom", IngressControllerName, false)) // ours by controller
	api.Put(ingressClass("nginx", "k8s.io/ingress-nginx", false))
	api.Put(service("shop", "web", "http=80", "admin=9000"))
	api.Put(service("shop", "static", "=8080")) // one unnamed port
	api.Put(slice("shop", "web-1", "web", map[string]int32{"http": 8080, "admin": 9090}, "10.0.0.2", "10.0.0.1", "!10.0.0.9"))
	api.Put(slice("shop", "static-1", "static", map[string]int32{"": 80}, "10.0.1.1"))
	pfx, exact, impl := networkingv1.PathTypePrefix, networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific
	main := ingress("shop", "main", "aralez", 1, map[string][]networkingv1.HTTPIngressPath{
		"App.Example.com": {
			ipath(pfx, "/api/", "web", "http"),
			ipath(exact, "/api", "web", "admin"),
			ipath(impl, "/static/", "static", "8080"),
		},
	})
	main.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "static", Port: networkingv1.ServiceBackendPort{Number: 8080}}}
	api.Put(main)
	api.Put(ingress("shop", "by-controller", "custom", 2, map[string][]networkingv1.HTTPIngressPath{"c.example.com": {ipath(pfx, "/", "web", "80")}}))
	api.Put(ingress("shop", "other-class", "nginx", 3, map[string][]networkingv1.HTTPIngressPath{"n.example.com": {ipath(pfx, "/", "web", "80")}}))
	api.Put(ingress("shop", "no-class", "", 4, map[string][]networkingv1.HTTPIngressPath{"x.example.com": {ipath(pfx, "/", "web", "80")}}))

	var logs logBuffer
	file := &config.Upstreams{Provider: "kubernetes", Hosts: []config.Host{host("file.example.com", "/=127.0.0.1:9000")}}
	g := newTestIngress(t, api, file, "ing-t0ken", testIngressOptions(&logs, "replica-a", "192.0.2.10"))
	c := collect(t, startRun(t, g))

	base := "file.example.com /=127.0.0.1:9000; "
	app := "app.example.com /api=10.0.0.1:8080,10.0.0.2:8080; app.example.com =/api=10.0.0.1:9090,10.0.0.2:9090; app.example.com /static/=10.0.1.1:80; "
	deflt := "DEFAULT /=10.0.1.1:80; "
	byCtl := "c.example.com /=10.0.0.1:8080,10.0.0.2:8080"
	up := c.waitTable(t, 15*time.Second, base+deflt+app+byCtl)
	if p := up.Hosts[2].Paths[1]; p.Match != config.MatchExact || p.LoadBalance != config.DefaultLoadBalance {
		t.Errorf("exact path = %+v; want MatchExact, round_robin", p)
	}

	// EndpointSlice readiness: 10.0.0.1 turns unready, a new one joins.
	api.Put(slice("shop", "web-1", "web", map[string]int32{"http": 8080, "admin": 9090}, "10.0.0.2", "!10.0.0.1", "10.0.0.3"))
	app = "app.example.com /api=10.0.0.2:8080,10.0.0.3:8080; app.example.com =/api=10.0.0.2:9090,10.0.0.3:9090; app.example.com /static/=10.0.1.1:80; "
	byCtl = "c.example.com /=10.0.0.2:8080,10.0.0.3:8080"
	c.waitTable(t, 5*time.Second, base+deflt+app+byCtl)

	// Class filtering: moving an Ingress to our class serves it, away
	// from it drops it.
	other := ingress("shop", "other-class", "aralez", 3, map[string][]networkingv1.HTTPIngressPath{"n.example.com": {ipath(pfx, "/", "web", "80")}})
	api.Put(other)
	c.waitTable(t, 5*time.Second, base+deflt+app+byCtl+"; n.example.com /=10.0.0.2:8080,10.0.0.3:8080")
	other.Spec.IngressClassName = nil
	other.Annotations = map[string]string{"kubernetes.io/ingress.class": "nginx"}
	api.Put(other)
	c.waitTable(t, 5*time.Second, base+deflt+app+byCtl)
	// A default IngressClass of ours takes Ingresses without a class.
	api.Put(ingressClass("aralez", IngressControllerName, true))
	c.waitTable(t, 5*time.Second, base+deflt+app+byCtl+"; x.example.com /=10.0.0.2:8080,10.0.0.3:8080")
	api.Delete("ingresses", "shop", "no-class")
	c.waitTable(t, 5*time.Second, base+deflt+app+byCtl)

	// Conflicts: a newer Ingress loses to the older one, an Ingress
	// loses to the file; the losers get an Event, their other paths
	// serve.
	api.Put(ingress("shop", "newer", "aralez", 9, map[string][]networkingv1.HTTPIngressPath{
		"app.example.com":  {ipath(pfx, "/api", "static", "8080"), ipath(pfx, "/new", "static", "8080")},
		"file.example.com": {ipath(pfx, "/", "static", "8080"), ipath(exact, "/only", "static", "8080")},
	}))
	c.waitTable(t, 5*time.Second, "file.example.com /=127.0.0.1:9000; file.example.com =/only=10.0.1.1:80; "+deflt+app+
		"app.example.com /new=10.0.1.1:80; "+byCtl)
	waitEvent(t, api, "shop", "newer", "RouteConflict: host app.example.com path /api skipped: Ingress shop/main (older) routes it")
	waitEvent(t, api, "shop", "newer", "RouteConflict: host file.example.com path / skipped: the upstreams file routes it")

	// Annotations: good ones set the route's policy; a bad one skips
	// that Ingress alone, with an Event and a log line.
	main.Annotations = map[string]string{
		"aralez.rs/rate_limit": "50", "aralez.rs/x4xx_limit": "10", "aralez.rs/to_https": "true", "aralez.rs/load_balance": "least_conn",
		"aralez.rs/client_headers": `["X-Some-Client:Some Custom Header"]`, "aralez.rs/server_headers": `["X-Some-Server: one", "X-Other: two"]`,
	}
	api.Put(main)
	waitFor(t, 5*time.Second, "the annotations applied", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, h := range c.up.Hosts {
			if h.Name == "app.example.com" && h.Paths[0].Policy.RateLimit == 50 {
				p := h.Paths[0]
				return p.Policy.X4xxLimit == 10 && *p.Policy.ToHTTPS && p.LoadBalance == "least_conn" &&
					len(p.Policy.ClientHeaders) == 1 && len(p.Policy.ServerHeaders) == 2 && p.Policy.ServerHeaders[1].Value == "two"
			}
		}
		return false
	})
	bad := ingress("shop", "bad", "aralez", 10, map[string][]networkingv1.HTTPIngressPath{"bad.example.com": {ipath(pfx, "/", "web", "80")}})
	bad.Annotations = map[string]string{"aralez.rs/rate_limit": "lots", "aralez.rs/colour": "blue"}
	api.Put(bad)
	waitEvent(t, api, "shop", "bad", "BadAnnotation: Ingress skipped: annotation aralez.rs/colour: unknown annotation")
	waitEvent(t, api, "shop", "bad", `annotation aralez.rs/rate_limit: want a whole number of at least 1, got "lots"`)
	waitFor(t, time.Second, "a log line naming the bad Ingress", func() bool {
		return strings.Contains(logs.String(), "ingress=shop/bad") && strings.Contains(logs.String(), "reason=BadAnnotation")
	})
	if strings.Contains(c.table, "bad.example.com") {
		t.Errorf("table serves the Ingress with bad annotations: %q", c.table)
	}
	// A bad path is skipped alone.
	api.Put(ingress("shop", "badpath", "aralez", 11, map[string][]networkingv1.HTTPIngressPath{"p.example.com": {
		ipath(pfx, "/a/../b", "web", "80"), ipath(pfx, "/ok", "web", "80")}}))
	waitEvent(t, api, "shop", "badpath", `BadRule: host p.example.com path "/a/../b" skipped`)

	// The older Ingress deleted: the newer one takes its path over.
	api.Delete("ingresses", "shop", "main")
	waitFor(t, 5*time.Second, "the newer Ingress serving /api", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return strings.Contains(c.table, "app.example.com /api=10.0.1.1:80")
	})

	// The last Ingress deleted: only the file table is left.
	for _, n := range []string{"by-controller", "newer", "bad", "badpath", "other-class"} {
		api.Delete("ingresses", "shop", n)
	}
	c.waitTable(t, 5*time.Second, "file.example.com /=127.0.0.1:9000")

	// Every request was one the RBAC grants, with the token.
	checkPermissions(t, api)
	if auth := api.Authorizations(); len(auth) != 1 || auth["Bearer ing-t0ken"] == 0 {
		t.Errorf("Authorization headers = %v; want only the bearer token", auth)
	}
	if strings.Contains(logs.String(), "ing-t0ken") {
		t.Errorf("log mentions the token")
	}
}

// checkPermissions fails for a request the controller made that
// ingressPermissions (and so the RBAC of etc/kubernetes/) does not list.
func checkPermissions(t *testing.T, api *kubetest.Server) {
	t.Helper()
	for _, r := range api.Requests() {
		if !slices.Contains(ingressPermissions, permission{r.Group, r.Resource, r.Verb}) {
			t.Errorf("request %s %q %s is not in ingressPermissions", r.Verb, r.Group, r.Resource)
		}
	}
}

// TestIngressTLS covers spec.tls: a Secret added, rotated, broken (the
// last good certificate stays, with an Event) and removed.
func TestIngressTLS(t *testing.T) {
	t.Parallel()
	api := kubetest.NewServer(t)
	api.Put(service("web", "site", "http=80"))
	api.Put(slice("web", "site-1", "site", map[string]int32{"http": 80}, "10.0.0.1"))
	in := siteIngress()
	in.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"site.example.com"}, SecretName: "site-tls"}}
	api.Put(in)
	// An Opaque Secret of that name is not a TLS Secret: not watched.
	c1, k1 := genCert(t, "site-1", "site.example.com")
	api.Put(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "site-tls"}, Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{corev1.TLSCertKey: c1, corev1.TLSPrivateKeyKey: k1}})

	var logs logBuffer
	g := newTestIngress(t, api, nil, "tls-token", testIngressOptions(&logs, "replica-a", "192.0.2.10"))
	c := collect(t, startRun(t, g))
	c.waitTable(t, 15*time.Second, "site.example.com /=10.0.0.1:80")
	waitEvent(t, api, "web", "site", "BadTLSSecret: TLS Secret site-tls: not found, or not of type kubernetes.io/tls")

	api.Put(tlsSecret("web", "site-tls", c1, k1))
	c.waitCerts(t, 5*time.Second, "site-1")
	c2, k2 := genCert(t, "site-2", "site.example.com")
	api.Put(tlsSecret("web", "site-tls", c2, k2))
	c.waitCerts(t, 5*time.Second, "site-2")

	// Broken: a key that does not match. The last good one stays.
	_, certsBefore := c.counts()
	api.Put(tlsSecret("web", "site-tls", c2, k1))
	waitEvent(t, api, "web", "site", "the last good certificate keeps serving")
	waitFor(t, time.Second, "a log line for the broken Secret", func() bool {
		return strings.Contains(logs.String(), "reason=BadTLSSecret") && strings.Contains(logs.String(), "private key does not match")
	})
	if _, n := c.counts(); n != certsBefore {
		t.Errorf("certificate updates went from %d to %d on a broken Secret; want none", certsBefore, n)
	}
	c.waitCerts(t, time.Second, "site-2")

	// Fixed again, then removed from the Ingress: withdrawn.
	c3, k3 := genCert(t, "site-3", "site.example.com")
	api.Put(tlsSecret("web", "site-tls", c3, k3))
	c.waitCerts(t, 5*time.Second, "site-3")
	in.Spec.TLS = nil
	api.Put(in)
	c.waitCerts(t, 5*time.Second)
	checkPermissions(t, api)
}

// TestIngressStatusLeader runs two controllers against one API server:
// only the Lease holder writes Ingress status and Events; when it stops,
// the other takes over.
func TestIngressStatusLeader(t *testing.T) {
	t.Parallel()
	api := kubetest.NewServer(t)
	api.Put(service("web", "site", "http=80"))
	api.Put(siteIngress())
	bad := ingress("web", "bad", "aralez", 2, map[string][]networkingv1.HTTPIngressPath{"b.example.com": {ipath(networkingv1.PathTypePrefix, "/", "site", "http")}})
	bad.Annotations = map[string]string{"aralez.rs/to_https": "perhaps"}
	api.Put(bad)

	var logsA, logsB logBuffer
	a := newTestIngress(t, api, nil, "token-a", testIngressOptions(&logsA, "replica-a", "192.0.2.1"))
	b := newTestIngress(t, api, nil, "token-b", testIngressOptions(&logsB, "replica-b", "192.0.2.2"))
	ctxA, stopA := context.WithCancel(context.Background())
	outA := make(chan Update)
	doneA := make(chan struct{}) // closed when a.Run returns
	go func() {
		defer close(doneA)
		if err := a.Run(ctxA, outA); err != nil {
			t.Errorf("replica a: Run() = %v; want nil", err)
		}
	}()
	t.Cleanup(func() { stopA(); <-doneA })
	ca := collect(t, outA)
	// b starts once a leads, so that the leader is known.
	statusIP := func() string {
		var in networkingv1.Ingress
		if !api.Get("ingresses", "web", "site", &in) || len(in.Status.LoadBalancer.Ingress) == 0 {
			return ""
		}
		return in.Status.LoadBalancer.Ingress[0].IP
	}
	waitFor(t, 15*time.Second, "replica a writing status", func() bool { return statusIP() == "192.0.2.1" })
	cb := collect(t, startRun(t, b))
	ca.waitTable(t, 5*time.Second, "site.example.com /=")
	cb.waitTable(t, 15*time.Second, "site.example.com /=")
	waitEvent(t, api, "web", "bad", "BadAnnotation")
	waitFor(t, 5*time.Second, "replica b logging the bad Ingress too", func() bool {
		return strings.Contains(logsB.String(), "ingress=web/bad")
	})
	// Several lease periods with both running: a keeps leading, b never
	// writes status or Events.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if ip := statusIP(); ip != "192.0.2.1" {
			t.Fatalf("status IP = %q while replica a leads; want 192.0.2.1", ip)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range api.Requests() {
		if r.Authorization == "Bearer token-b" && (r.Resource == "ingresses/status" || r.Resource == "events") {
			t.Errorf("replica b, not leading, made %s %s", r.Verb, r.Resource)
		}
	}
	if n := len(events(api, "web", "bad")); n != 1 {
		t.Errorf("Events on web/bad = %d; want 1 (from the leader only)", n)
	}

	// a stops (and frees the Lease): b takes over and writes its address.
	stopA()
	<-doneA
	waitFor(t, 10*time.Second, "replica b writing status", func() bool { return statusIP() == "192.0.2.2" })
	if !strings.Contains(logsB.String(), "kubernetes lease acquired") {
		t.Errorf("replica b did not log taking the lease")
	}
	checkPermissions(t, api)
}

// TestIngressEventRepeated: a problem that is fixed and comes back is
// recorded on the Event it had (count 2, by a strategic merge patch), not
// as a second Event; the requests are the ones the RBAC grants.
func TestIngressEventRepeated(t *testing.T) {
	t.Parallel()
	api := kubetest.NewServer(t)
	api.Put(service("web", "site", "http=80"))
	in := siteIngress()
	in.Annotations = map[string]string{"aralez.rs/to_https": "perhaps"}
	api.Put(in)
	var logs logBuffer
	g := newTestIngress(t, api, nil, "t", testIngressOptions(&logs, "replica-a", ""))
	c := collect(t, startRun(t, g))
	waitEvent(t, api, "web", "site", "BadAnnotation")

	in.Annotations = nil // fixed
	api.Put(in)
	c.waitTable(t, 5*time.Second, "site.example.com /=")
	in.Annotations = map[string]string{"aralez.rs/to_https": "perhaps"} // broken again
	api.Put(in)
	var evs []corev1.Event
	waitFor(t, 10*time.Second, "the Event on web/site counted twice", func() bool {
		evs = kubetest.List[corev1.Event](api, "events")
		return len(evs) == 1 && evs[0].Count == 2
	})
	e := evs[0]
	if e.InvolvedObject.Kind != "Ingress" || e.InvolvedObject.APIVersion != "networking.k8s.io/v1" || e.InvolvedObject.Name != "site" ||
		e.Namespace != "web" || e.Type != corev1.EventTypeWarning || e.Source.Component != ingressEventSource {
		t.Errorf("Event = %+v; want a Warning from %s on Ingress web/site (networking.k8s.io/v1)", e, ingressEventSource)
	}
	patches := 0
	for _, r := range api.Requests() {
		if r.Resource == "events" && r.Verb == "patch" && r.Namespace == "web" && r.Status == 200 {
			patches++
		}
	}
	if patches != 1 {
		t.Errorf("Event patches = %d; want 1", patches)
	}
	checkPermissions(t, api)
}

// TestIngressOutage: the API server failing keeps the last table, and
// changes made after it recovers are picked up.
func TestIngressOutage(t *testing.T) {
	t.Parallel()
	api := kubetest.NewServer(t)
	api.Put(service("web", "site", "http=80"))
	api.Put(slice("web", "site-1", "site", map[string]int32{"http": 80}, "10.0.0.1"))
	api.Put(siteIngress())
	var logs logBuffer
	g := newTestIngress(t, api, nil, "t", testIngressOptions(&logs, "replica-a", "192.0.2.10"))
	c := collect(t, startRun(t, g))
	c.waitTable(t, 15*time.Second, "site.example.com /=10.0.0.1:80")

	tables, _ := c.counts()
	api.SetStatus(503)
	waitFor(t, 15*time.Second, "a failure log line", func() bool { return strings.Contains(logs.String(), "kubernetes watch failed") })
	if n, _ := c.counts(); n != tables {
		t.Errorf("tables emitted during the outage = %d; want none", n-tables)
	}
	api.SetStatus(0)
	api.Put(slice("web", "site-1", "site", map[string]int32{"http": 80}, "10.0.0.1", "10.0.0.2"))
	c.waitTable(t, 30*time.Second, "site.example.com /=10.0.0.1:80,10.0.0.2:80")
	waitFor(t, 5*time.Second, "a recovery log line", func() bool { return strings.Contains(logs.String(), "kubernetes watch recovered") })
}

// TestIngressAuthSecret: aralez.rs/auth_type with a Secret read by GET
// (Opaque Secrets are not watched); a missing Secret skips the Ingress
// rather than serving it without authentication.
func TestIngressAuthSecret(t *testing.T) {
	t.Parallel()
	api := kubetest.NewServer(t)
	api.Put(service("web", "site", "http=80"))
	in := siteIngress()
	in.Annotations = map[string]string{"aralez.rs/auth_type": "basic", "aralez.rs/auth_secret": "site-users"}
	api.Put(in)
	var logs logBuffer
	g := newTestIngress(t, api, nil, "t", testIngressOptions(&logs, "replica-a", ""))
	c := collect(t, startRun(t, g))
	c.waitTable(t, 15*time.Second, "")
	waitEvent(t, api, "web", "site", "annotation aralez.rs/auth_secret: reading Secret site-users")

	api.Put(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "site-users"},
		Data: map[string][]byte{AuthSecretKey: []byte("alice:s3cret\n\nbob:hunter2\n")}})
	up := c.waitTable(t, 5*time.Second, "site.example.com /=")
	a := up.Hosts[0].Paths[0].Policy.Authorization
	if a == nil || a.Type != "basic" || !slices.Equal(a.Data, []string{"alice:s3cret", "bob:hunter2"}) {
		t.Errorf("authorization = %+v; want basic alice and bob", a)
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("log mentions a password")
	}
	checkPermissions(t, api)
}

// genCert returns a self-signed certificate for name with CN cn and
// its key, PEM-encoded.
func genCert(t *testing.T, cn, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func TestIngressPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind   networkingv1.PathType
		path   string
		prefix string
		match  config.PathMatch
	}{
		{networkingv1.PathTypePrefix, "/foo/", "/foo", config.MatchPrefix},
		{networkingv1.PathTypePrefix, "/foo", "/foo", config.MatchPrefix},
		{networkingv1.PathTypePrefix, "/", "/", config.MatchPrefix},
		{networkingv1.PathTypePrefix, "", "/", config.MatchPrefix},
		{networkingv1.PathTypeExact, "/foo/", "/foo/", config.MatchExact},
		{networkingv1.PathTypeImplementationSpecific, "/foo/", "/foo/", config.MatchPrefix},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind)+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			p, err := ingressPath(ipath(tt.kind, tt.path, "s", "80"), routeTemplate{loadBalance: config.DefaultLoadBalance})
			if err != nil || p.Prefix != tt.prefix || p.Match != tt.match {
				t.Errorf("ingressPath(%s %q) = %q %q, %v; want %q %q", tt.kind, tt.path, p.Prefix, p.Match, err, tt.prefix, tt.match)
			}
		})
	}
	if _, err := ingressPath(ipath("Regex", "/x", "s", "80"), routeTemplate{}); err == nil {
		t.Errorf("ingressPath(Regex) error = nil; want unknown pathType")
	}
}

func TestParseAnnotations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ann  map[string]string
		want string // pathString of the template's policy on "/"
		err  string
	}{
		{name: "none", want: "/"},
		{name: "others' annotations ignored", ann: map[string]string{"nginx.ingress.kubernetes.io/ssl-redirect": "true"}, want: "/"},
		{name: "aralez's four", ann: map[string]string{
			"aralez.rs/rate_limit": "50", "aralez.rs/x4xx_limit": "10",
			"aralez.rs/client_headers": `["X-A:1", "X-B: 2"]`, "aralez.rs/server_headers": `["X-C:3"]`,
		}, want: "/ rate=50 4xx=10 client=[{X-A 1} {X-B 2}] server=[{X-C 3}]"},
		{name: "to_https and forward auth", ann: map[string]string{
			"aralez.rs/to_https": "true", "aralez.rs/auth_type": "forward", "aralez.rs/auth_url": "http://auth.example.com/check",
		}, want: "/ to_https=true auth=forward[http://auth.example.com/check]"},
		{name: "bad number", ann: map[string]string{"aralez.rs/x4xx_limit": "0"}, err: `aralez.rs/x4xx_limit: want a whole number of at least 1, got "0"`},
		{name: "bad headers", ann: map[string]string{"aralez.rs/client_headers": `X-A:1`}, err: "want a JSON array"},
		{name: "bad header", ann: map[string]string{"aralez.rs/server_headers": `["X A:1"]`}, err: "not a valid token"},
		{name: "bad bool", ann: map[string]string{"aralez.rs/tls_verify": "yes please"}, err: "want true or false"},
		{name: "unknown", ann: map[string]string{"aralez.rs/rate-limit": "5"}, err: "aralez.rs/rate-limit: unknown annotation"},
		{name: "secret without type", ann: map[string]string{"aralez.rs/auth_secret": "s"}, err: "aralez.rs/auth_type: missing"},
		{name: "basic without secret", ann: map[string]string{"aralez.rs/auth_type": "basic"}, err: "aralez.rs/auth_secret: missing"},
		{name: "forward without url", ann: map[string]string{"aralez.rs/auth_type": "forward"}, err: "aralez.rs/auth_url: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmpl, err := parseAnnotations(tt.ann)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("parseAnnotations() error = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseAnnotations() error = %v", err)
			}
			if got := pathString(config.Path{Prefix: "/", Policy: tmpl.policy}); got != tt.want {
				t.Errorf("parseAnnotations() = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestIngressClassFilter(t *testing.T) {
	t.Parallel()
	classes := map[string]*networkingv1.IngressClass{
		"edge":   ingressClass("edge", IngressControllerName, false),
		"nginx":  ingressClass("nginx", "k8s.io/ingress-nginx", true),
		"aralez": ingressClass("aralez", "someone/else", false),
	}
	withDefault := map[string]*networkingv1.IngressClass{"mine": ingressClass("mine", IngressControllerName, true)}
	mk := func(class, annotation string) *networkingv1.Ingress {
		in := ingress("d", "i", class, 0, nil)
		if annotation != "" {
			in.Annotations = map[string]string{"kubernetes.io/ingress.class": annotation}
		}
		return in
	}
	g := &Ingress{class: "aralez"}
	tests := []struct {
		name    string
		in      *networkingv1.Ingress
		classes map[string]*networkingv1.IngressClass
		want    bool
	}{
		{"our class name", mk("aralez", ""), classes, true},
		{"a class with our controller", mk("edge", ""), classes, true},
		{"another controller's class", mk("nginx", ""), classes, false},
		{"an unknown class", mk("gone", ""), classes, false},
		{"no class, another default", mk("", ""), classes, false},
		{"no class, our default", mk("", ""), withDefault, true},
		{"legacy annotation ours", mk("", "aralez"), classes, true},
		{"legacy annotation theirs beats our default", mk("", "nginx"), withDefault, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := g.ours(tt.in, tt.classes); got != tt.want {
				t.Errorf("ours() = %v; want %v", got, tt.want)
			}
		})
	}
}
