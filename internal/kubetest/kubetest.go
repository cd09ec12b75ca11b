// Package kubetest is an in-process emulator of the parts of a
// Kubernetes API server that aralez uses, for tests: Debian ships no
// kube-apiserver, so tests run real client-go informers and rest
// clients against a Server on 127.0.0.1.
//
// It serves, for the resources it knows (Services, Secrets, Events,
// EndpointSlices, Ingresses with their status subresource,
// IngressClasses and Leases), in every namespace or in one: list (with
// equality label and field selectors on labels, metadata.name,
// metadata.namespace and a Secret's type), watch (resumed from a
// resourceVersion, or a watch-list stream with sendInitialEvents ending
// in an initial-events-end bookmark), get, create, update (with
// resourceVersion conflicts), update of the status subresource, patch
// (JSON merge and strategic merge) and delete. Bodies may be JSON or
// protobuf (client-go's typed clients and the discovery package's
// clients send protobuf); answers are JSON.
// Objects are kept as JSON;
// every change bumps one resourceVersion counter and is kept in a
// history that watches replay.
//
// Tests change objects with Put and Delete, read them with Get, inject
// an outage with SetStatus, refuse a server without the WatchList
// feature with NoWatchList, and read what clients did with Requests.
//
// It is test-only code: nothing outside _test.go files may import it.
package kubetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// scheme knows the API groups of the emulated resources; codecs
// decodes their protobuf bodies. (client-go's kubernetes/scheme would
// do, but it registers every API group of k8s.io/api, which the tests
// would then compile for nothing.)
var (
	scheme = newScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	groups := runtime.SchemeBuilder{corev1.AddToScheme, discoveryv1.AddToScheme, networkingv1.AddToScheme, coordinationv1.AddToScheme}
	utilruntime.Must(groups.AddToScheme(s))
	return s
}

// Resource describes one emulated resource.
type Resource struct {
	// Group is the API group ("" for core), Version its version.
	Group, Version string
	// Name is the plural resource name ("ingresses"), Kind the kind.
	Name, Kind string
	// Namespaced is false for cluster-scoped resources.
	Namespaced bool
}

// Resources lists the emulated resources by name.
var Resources = map[string]Resource{
	"services":       {"", "v1", "services", "Service", true},
	"secrets":        {"", "v1", "secrets", "Secret", true},
	"events":         {"", "v1", "events", "Event", true},
	"endpointslices": {"discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true},
	"ingresses":      {"networking.k8s.io", "v1", "ingresses", "Ingress", true},
	"ingressclasses": {"networking.k8s.io", "v1", "ingressclasses", "IngressClass", false},
	"leases":         {"coordination.k8s.io", "v1", "leases", "Lease", true},
}

// Request is one request a client made, in RBAC's terms.
type Request struct {
	// Verb is get, list, watch, create, update, patch or delete.
	Verb string
	// Group is the API group ("" for core); Resource the resource,
	// followed by "/status" for the status subresource.
	Group, Resource string
	// Namespace is empty for a request across namespaces.
	Namespace string
	// WatchList is set on a watch that asked for a watch-list stream
	// (sendInitialEvents).
	WatchList bool
	// Authorization is the request's Authorization header.
	Authorization string
	// Status is the status code answered.
	Status int
}

// Server is a Kubernetes API server emulator listening on 127.0.0.1.
// Its methods are safe for concurrent use. A Server must not be copied.
type Server struct {
	srv *httptest.Server

	mu sync.Mutex // guards everything below
	rv int
	// objs maps resource → "namespace/name" → the object's JSON.
	objs    map[string]map[string]map[string]any
	history []event
	changed chan struct{} // closed and replaced on every change
	status  int
	// noWatchList refuses watch-list requests with 422, as a server
	// without the WatchList feature does.
	noWatchList bool
	requests    []Request
	auth        map[string]int
	quit        chan struct{}
	closed      bool
}

type event struct {
	rv       int
	typ      string
	resource string
	obj      map[string]any
}

// NewServer starts a Server on a free loopback port and closes it when
// the test ends.
func NewServer(tb testing.TB) *Server { return newServer(tb, httptest.NewServer) }

// NewTLSServer is NewServer over HTTPS with httptest's certificate
// (Server().Certificate() returns it).
func NewTLSServer(tb testing.TB) *Server { return newServer(tb, httptest.NewTLSServer) }

func newServer(tb testing.TB, start func(http.Handler) *httptest.Server) *Server {
	tb.Helper()
	s := &Server{
		rv:      100,
		objs:    map[string]map[string]map[string]any{},
		changed: make(chan struct{}),
		auth:    map[string]int{},
		quit:    make(chan struct{}),
	}
	s.srv = start(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// URL returns the Server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Addr returns the Server's "127.0.0.1:port".
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Server returns the underlying httptest server (for its certificate).
func (s *Server) Server() *httptest.Server { return s.srv }

// Close ends open watches, drops client connections and stops the
// Server. It may be called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// NoWatchList makes the Server refuse watch-list streams with 422, so
// that clients fall back to list then watch.
func (s *Server) NoWatchList() {
	s.mu.Lock()
	s.noWatchList = true
	s.mu.Unlock()
}

// SetStatus makes every request fail with status (0: answer normally)
// and ends open watches, as an API server outage does.
func (s *Server) SetStatus(status int) {
	s.mu.Lock()
	s.status = status
	s.wakeLocked()
	s.mu.Unlock()
}

// Requests returns a copy of the requests made so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Authorizations counts requests by their Authorization header.
func (s *Server) Authorizations() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.auth))
	for k, v := range s.auth {
		out[k] = v
	}
	return out
}

// Put creates or replaces obj (a typed object of an emulated kind) and wakes watches. The stored
// copy gets a new resourceVersion and, when new, a uid and a
// creationTimestamp unless obj has them.
func (s *Server) Put(obj runtime.Object) {
	res, m := toMap(obj)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putLocked(res, m)
}

// Delete removes the object of resource ("ingresses") namespace/name
// and wakes watches. It reports whether the object existed.
func (s *Server) Delete(resource, namespace, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := namespace + "/" + name
	old, ok := s.objs[resource][key]
	if !ok {
		return false
	}
	delete(s.objs[resource], key)
	s.rv++
	c := clone(old)
	meta(c)["resourceVersion"] = strconv.Itoa(s.rv)
	s.history = append(s.history, event{rv: s.rv, typ: "DELETED", resource: resource, obj: c})
	s.wakeLocked()
	return true
}

// Get decodes the stored object of resource namespace/name into into
// and reports whether it exists.
func (s *Server) Get(resource, namespace, name string, into any) bool {
	s.mu.Lock()
	m, ok := s.objs[resource][namespace+"/"+name]
	var b []byte
	if ok {
		b, _ = json.Marshal(m)
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	if err := json.Unmarshal(b, into); err != nil {
		panic("kubetest: decoding a stored object: " + err.Error())
	}
	return true
}

// List decodes every stored object of resource, in namespace/name
// order.
func List[T any](s *Server, resource string) []T {
	s.mu.Lock()
	keys := make([]string, 0, len(s.objs[resource]))
	for k := range s.objs[resource] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	raw := make([][]byte, len(keys))
	for i, k := range keys {
		raw[i], _ = json.Marshal(s.objs[resource][k])
	}
	s.mu.Unlock()
	out := make([]T, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			panic("kubetest: decoding a stored object: " + err.Error())
		}
	}
	return out
}

// toMap encodes a typed object into its JSON map with kind and
// apiVersion set, and returns its resource name.
func toMap(obj runtime.Object) (string, map[string]any) {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		panic(fmt.Sprintf("kubetest: unknown kind %T: %v", obj, err))
	}
	gvk := gvks[0]
	res := ""
	for name, r := range Resources {
		if r.Kind == gvk.Kind && r.Group == gvk.Group {
			res = name
		}
	}
	if res == "" {
		panic("kubetest: kind not emulated: " + gvk.String())
	}
	b, err := json.Marshal(obj)
	if err != nil {
		panic("kubetest: encoding: " + err.Error())
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["kind"], m["apiVersion"] = gvk.Kind, gvk.GroupVersion().String()
	return res, m
}

// putLocked stores m as the current object and records the change.
func (s *Server) putLocked(res string, m map[string]any) map[string]any {
	md := meta(m)
	key := str(md["namespace"]) + "/" + str(md["name"])
	if s.objs[res] == nil {
		s.objs[res] = map[string]map[string]any{}
	}
	typ := "MODIFIED"
	if old, ok := s.objs[res][key]; ok {
		om := meta(old)
		md["uid"], md["creationTimestamp"] = om["uid"], om["creationTimestamp"]
	} else {
		typ = "ADDED"
		if str(md["uid"]) == "" {
			md["uid"] = fmt.Sprintf("uid-%s-%d", res, s.rv+1)
		}
		if md["creationTimestamp"] == nil {
			md["creationTimestamp"] = time.Now().UTC().Format(time.RFC3339)
		}
	}
	s.rv++
	md["resourceVersion"] = strconv.Itoa(s.rv)
	r := Resources[res]
	m["kind"], m["apiVersion"] = r.Kind, schema.GroupVersion{Group: r.Group, Version: r.Version}.String()
	s.objs[res][key] = m
	s.history = append(s.history, event{rv: s.rv, typ: typ, resource: res, obj: clone(m)})
	s.wakeLocked()
	return m
}

func (s *Server) wakeLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// route is a parsed request path.
type route struct {
	res                   Resource
	resName               string
	namespace, name, subr string
}

// parsePath reads /api/v1/... and /apis/group/version/... paths.
func parsePath(p string) (route, bool) {
	var rt route
	parts := strings.Split(strings.Trim(p, "/"), "/")
	var group string
	switch {
	case len(parts) >= 3 && parts[0] == "api" && parts[1] == "v1":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return rt, false
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		rt.namespace, parts = parts[1], parts[2:]
	}
	if len(parts) == 0 {
		return rt, false
	}
	rt.resName = parts[0]
	r, ok := Resources[parts[0]]
	if !ok || r.Group != group {
		return rt, false
	}
	rt.res = r
	if len(parts) >= 2 {
		rt.name = parts[1]
	}
	if len(parts) >= 3 {
		rt.subr = parts[2]
	}
	return rt, len(parts) <= 3
}

// verb names the request in RBAC's terms.
func verb(r *http.Request, rt route) string {
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet:
		switch {
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			return "watch"
		case rt.name == "":
			return "list"
		}
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(r.Method)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rt, ok := parsePath(r.URL.Path)
	v := verb(r, rt)
	res := rt.resName
	if rt.subr != "" {
		res += "/" + rt.subr
	}
	s.mu.Lock()
	s.auth[r.Header.Get("Authorization")]++
	st, noWL := s.status, s.noWatchList
	s.mu.Unlock()
	code := http.StatusOK
	// A request is recorded when answered; a watch, which stays open,
	// when it starts.
	record := func() {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Verb: v, Group: rt.res.Group, Resource: res, Namespace: rt.namespace, Status: code,
			WatchList: v == "watch" && r.URL.Query().Get("sendInitialEvents") == "true", Authorization: r.Header.Get("Authorization")})
		s.mu.Unlock()
	}
	defer func() {
		if v != "watch" || code != http.StatusOK {
			record()
		}
	}()
	switch {
	case !ok:
		code = writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Resource: r.URL.Path}, ""))
		return
	case st != 0:
		code = writeStatus(w, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: int32(st), Message: "emulated failure"}})
		return
	}
	gr := schema.GroupResource{Group: rt.res.Group, Resource: rt.resName}
	var err error
	switch v {
	case "watch":
		if noWL && r.URL.Query().Get("sendInitialEvents") == "true" {
			err = apierrors.NewInvalid(schema.GroupKind{Group: rt.res.Group, Kind: rt.res.Kind}, "", nil)
			break
		}
		record()
		s.watch(w, r, rt)
		return
	case "list":
		err = s.list(w, r, rt)
	case "get":
		err = s.get(w, rt, gr)
	case "create":
		err = s.create(w, r, rt, gr)
	case "update":
		err = s.update(w, r, rt, gr)
	case "patch":
		err = s.patch(w, r, rt, gr)
	case "delete":
		if !s.Delete(rt.resName, rt.namespace, rt.name) {
			err = apierrors.NewNotFound(gr, rt.name)
			break
		}
		writeJSON(w, http.StatusOK, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess})
	default:
		err = apierrors.NewMethodNotSupported(gr, r.Method)
	}
	if err != nil {
		code = writeStatus(w, err)
	}
}

// matches applies the request's namespace and selectors to an object.
func matches(m map[string]any, namespace string, labelSel, fieldSel map[string]string) bool {
	md := meta(m)
	if namespace != "" && str(md["namespace"]) != namespace {
		return false
	}
	labels, _ := md["labels"].(map[string]any)
	for k, v := range labelSel {
		if str(labels[k]) != v {
			return false
		}
	}
	for k, v := range fieldSel {
		var got string
		switch k {
		case "metadata.name":
			got = str(md["name"])
		case "metadata.namespace":
			got = str(md["namespace"])
		case "type":
			got = str(m["type"])
		default:
			return false
		}
		if got != v {
			return false
		}
	}
	return true
}

// selector parses an equality selector "a=b,c==d".
func selector(s string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		out[strings.TrimSpace(k)] = strings.TrimPrefix(strings.TrimSpace(v), "=")
	}
	return out
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	ls, fs := selector(q.Get("labelSelector")), selector(q.Get("fieldSelector"))
	s.mu.Lock()
	items := []map[string]any{}
	keys := make([]string, 0, len(s.objs[rt.resName]))
	for k := range s.objs[rt.resName] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if m := s.objs[rt.resName][k]; matches(m, rt.namespace, ls, fs) {
			items = append(items, m)
		}
	}
	list := map[string]any{
		"kind":       rt.res.Kind + "List",
		"apiVersion": schema.GroupVersion{Group: rt.res.Group, Version: rt.res.Version}.String(),
		"metadata":   map[string]any{"resourceVersion": strconv.Itoa(s.rv)},
		"items":      items,
	}
	b, err := json.Marshal(list)
	s.mu.Unlock()
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	ls, fs := selector(q.Get("labelSelector")), selector(q.Get("fieldSelector"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(typ string, obj any) {
		_ = enc.Encode(map[string]any{"type": typ, "object": obj})
		if fl != nil {
			fl.Flush()
		}
	}
	s.mu.Lock()
	sent, _ := strconv.Atoi(q.Get("resourceVersion"))
	var initial []any
	stream := q.Get("sendInitialEvents") == "true"
	if stream {
		keys := make([]string, 0, len(s.objs[rt.resName]))
		for k := range s.objs[rt.resName] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if m := s.objs[rt.resName][k]; matches(m, rt.namespace, ls, fs) {
				b, _ := json.Marshal(m)
				initial = append(initial, json.RawMessage(b))
			}
		}
		sent = s.rv
	}
	s.mu.Unlock()
	if stream {
		for _, o := range initial {
			send("ADDED", o)
		}
		send("BOOKMARK", map[string]any{
			"kind": rt.res.Kind, "apiVersion": schema.GroupVersion{Group: rt.res.Group, Version: rt.res.Version}.String(),
			"metadata": map[string]any{
				"resourceVersion": strconv.Itoa(sent),
				"annotations":     map[string]any{metav1.InitialEventsAnnotationKey: "true"},
			},
		})
	}
	timeout := time.Minute
	if n, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && n > 0 {
		timeout = time.Duration(n) * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var evs []event
		for _, ev := range s.history {
			if ev.rv > sent && ev.resource == rt.resName && matches(ev.obj, rt.namespace, ls, fs) {
				evs = append(evs, event{typ: ev.typ, obj: ev.obj})
			}
		}
		if n := len(s.history); n > 0 {
			sent = max(sent, s.history[n-1].rv)
		}
		st, ch := s.status, s.changed
		raw := make([][]byte, len(evs))
		for i, ev := range evs {
			raw[i], _ = json.Marshal(ev.obj)
		}
		s.mu.Unlock()
		for i, ev := range evs {
			send(ev.typ, json.RawMessage(raw[i]))
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
		case <-s.quit:
			return
		}
	}
}

func (s *Server) get(w http.ResponseWriter, rt route, gr schema.GroupResource) error {
	s.mu.Lock()
	m, ok := s.objs[rt.resName][rt.namespace+"/"+rt.name]
	var b []byte
	if ok {
		b, _ = json.Marshal(m)
	}
	s.mu.Unlock()
	if !ok {
		return apierrors.NewNotFound(gr, rt.name)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

// body reads the request's JSON object and checks its name and
// namespace against the path.
func body(r *http.Request, rt route, gr schema.GroupResource) (map[string]any, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, apierrors.NewBadRequest("reading the body: " + err.Error())
	}
	if strings.Contains(r.Header.Get("Content-Type"), "protobuf") {
		// client-go's typed clients send protobuf: decode it, as an API
		// server does, and keep the JSON form.
		obj, _, err := codecs.UniversalDeserializer().Decode(raw, nil, nil)
		if err != nil {
			return nil, apierrors.NewBadRequest("decoding the protobuf body: " + err.Error())
		}
		if raw, err = json.Marshal(obj); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, apierrors.NewBadRequest("decoding the body: " + fmt.Sprint(err))
	}
	md := meta(m)
	if rt.res.Namespaced {
		if ns := str(md["namespace"]); ns != "" && ns != rt.namespace {
			return nil, apierrors.NewBadRequest("namespace of the body does not match the path")
		}
		md["namespace"] = rt.namespace
	}
	if str(md["name"]) == "" && str(md["generateName"]) != "" {
		md["name"] = str(md["generateName"]) + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if str(md["name"]) == "" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: gr.Group, Kind: rt.res.Kind}, "", nil)
	}
	return m, nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, rt route, gr schema.GroupResource) error {
	m, err := body(r, rt, gr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objs[rt.resName][rt.namespace+"/"+str(meta(m)["name"])]; ok {
		return apierrors.NewAlreadyExists(gr, str(meta(m)["name"]))
	}
	delete(meta(m), "resourceVersion")
	out := s.putLocked(rt.resName, m)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, rt route, gr schema.GroupResource) error {
	m, err := body(r, rt, gr)
	if err != nil {
		return err
	}
	if str(meta(m)["name"]) != rt.name {
		return apierrors.NewBadRequest("name of the body does not match the path")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.objs[rt.resName][rt.namespace+"/"+rt.name]
	if !ok {
		return apierrors.NewNotFound(gr, rt.name)
	}
	if rv := str(meta(m)["resourceVersion"]); rv != "" && rv != str(meta(old)["resourceVersion"]) {
		return apierrors.NewConflict(gr, rt.name, fmt.Errorf("the object has been modified; resourceVersion %s is not %s", rv, str(meta(old)["resourceVersion"])))
	}
	switch rt.subr {
	case "status":
		// Only the status changes through the subresource.
		n := clone(old)
		n["status"] = m["status"]
		m = n
	case "":
		if st, ok := old["status"]; ok && rt.resName == "ingresses" {
			m["status"] = st // the main resource does not change the status
		}
	default:
		return apierrors.NewNotFound(gr, rt.name+"/"+rt.subr)
	}
	out := s.putLocked(rt.resName, m)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, rt route, gr schema.GroupResource) error {
	var patch json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&patch); err != nil {
		return apierrors.NewBadRequest("decoding the patch: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.objs[rt.resName][rt.namespace+"/"+rt.name]
	if !ok {
		return apierrors.NewNotFound(gr, rt.name)
	}
	orig, _ := json.Marshal(old)
	var merged []byte
	var err error
	switch types.PatchType(r.Header.Get("Content-Type")) {
	case types.MergePatchType:
		merged, err = jsonpatch.MergePatch(orig, patch)
	case types.StrategicMergePatchType:
		var typed runtime.Object
		typed, err = scheme.New(schema.GroupVersionKind{Group: rt.res.Group, Version: rt.res.Version, Kind: rt.res.Kind})
		if err == nil {
			merged, err = strategicpatch.StrategicMergePatch(orig, patch, typed)
		}
	default:
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType, Message: "unsupported patch type " + r.Header.Get("Content-Type")}}
	}
	if err != nil {
		return apierrors.NewBadRequest("applying the patch: " + err.Error())
	}
	var m map[string]any
	_ = json.Unmarshal(merged, &m)
	if rt.subr == "status" {
		n := clone(old)
		n["status"] = m["status"]
		m = n
	}
	out := s.putLocked(rt.resName, m)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeStatus answers with err's API status and returns its code.
func writeStatus(w http.ResponseWriter, err error) int {
	st := metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: err.Error()}
	if as, ok := err.(apierrors.APIStatus); ok {
		st = as.Status()
	}
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(st.Code), st)
	return int(st.Code)
}

// meta returns m's metadata map, creating it when absent.
func meta(m map[string]any) map[string]any {
	md, ok := m["metadata"].(map[string]any)
	if !ok {
		md = map[string]any{}
		m["metadata"] = md
	}
	return md
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// clone deep-copies a JSON map.
func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	return c
}
