package discovery

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/aralez-go/aralez/config"
)

// manifests decodes every object of etc/kubernetes/*.yaml with a
// scheme of the API groups the manifests use (core, apps, rbac and
// networking v1: a manifest of another group needs its group added
// here); an unknown kind or field fails the test.
func manifests(t *testing.T) []runtime.Object {
	t.Helper()
	scheme := runtime.NewScheme()
	b := runtime.NewSchemeBuilder(corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, networkingv1.AddToScheme)
	if err := b.AddToScheme(scheme); err != nil {
		t.Fatalf("building the scheme: %v", err)
	}
	files, err := filepath.Glob("../etc/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("Glob(../etc/kubernetes/*.yaml) = %v, %v; want files", files, err)
	}
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	var out []runtime.Object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := dec.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: document %d: %v", filepath.Base(f), i+1, err)
			}
			out = append(out, obj)
		}
	}
	return out
}

func only[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestManifests checks the deployment files of etc/kubernetes (issue
// 14): kinds and required fields, a Deployment that runs as non-root
// with no capabilities on a read-only root file system, configuration
// that loads, and RBAC that grants every request the controller makes
// (ingressPermissions, which the Ingress tests check against the API
// emulator) and nothing more.
func TestManifests(t *testing.T) {
	t.Parallel()
	objs := manifests(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetObjectKind().GroupVersionKind().Kind]++
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Deployment", "IngressClass", "Service"} {
		if kinds[k] != 1 {
			t.Errorf("%d objects of kind %s; want 1", kinds[k], k)
		}
	}

	sa := only[*corev1.ServiceAccount](objs)[0]
	dep := only[*appsv1.Deployment](objs)[0]
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Name || dep.Namespace != sa.Namespace {
		t.Errorf("Deployment runs as %s/%s; want the ServiceAccount %s/%s", dep.Namespace, pod.ServiceAccountName, sa.Namespace, sa.Name)
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext = %+v; want runAsNonRoot and a non-zero runAsUser", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("containers = %d; want 1", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	sc := ctr.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext = %+v; want a read-only root, no privilege escalation, every capability dropped", sc)
	}
	if sel := dep.Spec.Selector.MatchLabels; len(sel) == 0 || !subset(sel, dep.Spec.Template.Labels) {
		t.Errorf("Deployment selector %v does not select its pods %v", sel, dep.Spec.Template.Labels)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		env[e.Name] = e
	}
	for name, path := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"} {
		if e := env[name]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
			t.Errorf("env %s = %+v; want the downward API's %s", name, e, path)
		}
	}

	svc := only[*corev1.Service](objs)[0]
	if env["ARALEZ_SERVICE_NAME"].Value != svc.Name || env["ARALEZ_SERVICE_NAMESPACE"].Value != svc.Namespace {
		t.Errorf("ARALEZ_SERVICE_NAME/NAMESPACE = %q/%q; want the Service %s/%s",
			env["ARALEZ_SERVICE_NAME"].Value, env["ARALEZ_SERVICE_NAMESPACE"].Value, svc.Namespace, svc.Name)
	}
	if !subset(svc.Spec.Selector, dep.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	ports := map[string]bool{}
	for _, p := range ctr.Ports {
		ports[p.Name] = true
	}
	for _, p := range svc.Spec.Ports {
		if !ports[p.TargetPort.StrVal] {
			t.Errorf("Service port %s targets %q, which the container does not name", p.Name, p.TargetPort.String())
		}
	}

	ic := only[*networkingv1.IngressClass](objs)[0]
	if ic.Name != DefaultIngressClass || ic.Spec.Controller != IngressControllerName {
		t.Errorf("IngressClass %s controller %s; want %s controller %s", ic.Name, ic.Spec.Controller, DefaultIngressClass, IngressControllerName)
	}

	checkManifestConfig(t, only[*corev1.ConfigMap](objs)[0], dep)
	checkRBAC(t, objs, sa, dep.Namespace)
}

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkManifestConfig loads the ConfigMap's main.yaml and upstreams.yaml
// as aralez does, from the folder the Deployment mounts them in.
func checkManifestConfig(t *testing.T, cm *corev1.ConfigMap, dep *appsv1.Deployment) {
	t.Helper()
	mounted := false
	for _, v := range dep.Spec.Template.Spec.Volumes {
		mounted = mounted || (v.ConfigMap != nil && v.ConfigMap.Name == cm.Name)
	}
	if !mounted {
		t.Errorf("the Deployment does not mount ConfigMap %s", cm.Name)
	}
	dir := t.TempDir()
	for name, data := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatalf("loading the ConfigMap's main.yaml: %v", err)
	}
	if cfg.Upstreams.Provider != "kubernetes" || len(cfg.Upstreams.Hosts) != 0 ||
		(cfg.Upstreams.Kubernetes != nil && len(cfg.Upstreams.Kubernetes.Services) != 0) {
		t.Errorf("upstreams = provider %q, %d hosts, kubernetes %+v; want the Ingress controller alone",
			cfg.Upstreams.Provider, len(cfg.Upstreams.Hosts), cfg.Upstreams.Kubernetes)
	}
	if !slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "/etc/aralez/main.yaml") {
		t.Errorf("container args %v do not name /etc/aralez/main.yaml", dep.Spec.Template.Spec.Containers[0].Args)
	}
}

// checkRBAC checks that the roles bound to the controller's
// ServiceAccount grant every ingressPermissions entry (leases in the
// controller's namespace, the rest cluster-wide) and nothing else.
func checkRBAC(t *testing.T, objs []runtime.Object, sa *corev1.ServiceAccount, ns string) {
	t.Helper()
	boundTo := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == sa.Name && s.Namespace == sa.Namespace
		})
	}
	var cluster, local []rbacv1.PolicyRule // granted everywhere, in ns
	for _, b := range only[*rbacv1.ClusterRoleBinding](objs) {
		for _, r := range only[*rbacv1.ClusterRole](objs) {
			if boundTo(b.Subjects) && b.RoleRef.Kind == "ClusterRole" && b.RoleRef.Name == r.Name {
				cluster = append(cluster, r.Rules...)
			}
		}
	}
	for _, b := range only[*rbacv1.RoleBinding](objs) {
		for _, r := range only[*rbacv1.Role](objs) {
			if boundTo(b.Subjects) && b.Namespace == ns && r.Namespace == ns && b.RoleRef.Kind == "Role" && b.RoleRef.Name == r.Name {
				local = append(local, r.Rules...)
			}
		}
	}
	grants := func(rules []rbacv1.PolicyRule, p permission) bool {
		return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.APIGroups, p.group) && slices.Contains(r.Resources, p.resource) && slices.Contains(r.Verbs, p.verb)
		})
	}
	for _, p := range ingressPermissions {
		rules := cluster
		if p.resource == "leases" {
			rules = local // the Lease lives in the controller's namespace
		}
		if !grants(rules, p) {
			t.Errorf("RBAC does not grant %s on %q %s", p.verb, p.group, p.resource)
		}
	}
	// Least privilege: every grant is one the controller uses, or get
	// on a resource it lists (as the list has it).
	for _, r := range append(cluster, local...) {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					p := permission{g, res, v}
					if strings.Contains(g+res+v, "*") || (!slices.Contains(ingressPermissions, p) &&
						!(v == "get" && slices.Contains(ingressPermissions, permission{g, res, "list"}))) {
						t.Errorf("RBAC grants %s on %q %s, which the controller does not use", v, g, res)
					}
				}
			}
		}
	}
	if grants(cluster, permission{"coordination.k8s.io", "leases", "update"}) {
		t.Errorf("leases are granted cluster-wide; want a Role in %s", ns)
	}
}
