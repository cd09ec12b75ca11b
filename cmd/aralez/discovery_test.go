package main

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aralez-go/aralez/internal/consultest"
	"github.com/aralez-go/aralez/internal/kubetest"
)

// TestProviderShapes checks that -t and a start agree for every shape
// of provider block (issue 14): when -t says valid, the binary starts
// and serves, discovery-only files with an empty table that fills as
// services and Ingresses appear; when -t says invalid, the start fails
// too.
func TestProviderShapes(t *testing.T) {
	becomeSubreaper(t)
	backend := named(t, "B")
	bhost, bport, _ := net.SplitHostPort(backend)
	port, _ := strconv.Atoi(bport)
	consul := consultest.NewServer(t)
	consul.Set("web", backend)
	api := kubetest.NewServer(t)
	api.Put(webSlice("default", bhost, port))
	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, "t0ken\n")

	type shape struct {
		name      string
		upstreams string
		valid     bool
		before    int    // status of GET web.test/ at start
		appear    func() // makes web.test routed
		disappear func() // removes the last discovered route again
	}
	tests := []shape{
		{name: "file", upstreams: fmt.Sprintf("upstreams:\n  web.test:\n    paths:\n      \"/\":\n        servers: [%q]\n", backend), valid: true, before: 200},
		{name: "file without hosts", upstreams: "provider: file\n", valid: true, before: 404},
		{name: "consul services", valid: true, before: 200, upstreams: fmt.Sprintf(
			"provider: consul\nconsul:\n  servers: [%q]\n  services:\n    - {hostname: web.test, upstream: web}\n", consul.URL())},
		{name: "consul servers and token only", valid: true, before: 404, upstreams: fmt.Sprintf(
			"provider: consul\nconsul:\n  servers: [%q]\n  token: t0k\n", consul.URL()),
			appear: func() {
				consul.SetInstances("tagged", consultest.Instance{Address: bhost, Port: port,
					Tags: []string{"aralez.service=yes", "aralez.host=web.test"}})
			},
			disappear: func() { consul.SetInstances("tagged") }},
		{name: "kubernetes services", valid: true, before: 200, upstreams: fmt.Sprintf(
			"provider: kubernetes\nkubernetes:\n  servers: [%q]\n  tokenpath: %q\n  services:\n    - {hostname: web.test, upstream: web}\n", api.URL(), token)},
		{name: "kubernetes servers and tokenpath only", valid: true, before: 404, upstreams: fmt.Sprintf(
			"provider: kubernetes\nkubernetes:\n  servers: [%q]\n  tokenpath: %q\n", api.URL(), token),
			appear: func() {
				api.Put(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
					Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
				class, prefix := "aralez", networkingv1.PathTypePrefix
				api.Put(&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
					Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{Host: "web.test",
						IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
							Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
								Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}}}}}}}}}}})
			},
			disappear: func() { api.Delete("ingresses", "default", "web") }},
		{name: "kubernetes without a token file", valid: false, upstreams: fmt.Sprintf(
			"provider: kubernetes\nkubernetes:\n  servers: [%q]\n  tokenpath: %q\n", api.URL(), token+".missing")},
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		// Outside a cluster, in-cluster settings are missing: both fail.
		tests = append(tests, shape{name: "kubernetes in-cluster outside a cluster", upstreams: "provider: kubernetes\n", valid: false})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, addr := proxyDir(t, backend, "")
			writeFile(t, filepath.Join(dir, "upstreams.yaml"), tt.upstreams)
			var out, errb bytes.Buffer
			code := run([]string{"-t", "-c", filepath.Join(dir, "main.yaml")}, &out, &errb)
			if (code == 0) != tt.valid {
				t.Fatalf("aralez -t = %d; want valid %v:\n%s%s", code, tt.valid, out.String(), errb.String())
			}
			pid := startBinary(t, dir, nil)
			if !tt.valid {
				if ws := reap(t, pid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 1 {
					t.Errorf("start after an invalid -t = %v; want exit 1; log:\n%s", ws, logOf(dir))
				}
				return
			}
			get := func() int {
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				req.Host = "web.test"
				resp, err := httpClient.Do(req)
				if err != nil {
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if !waitFor(15*time.Second, func() bool { return get() == tt.before }) {
				t.Fatalf("GET web.test/ = %d; want %d; log:\n%s", get(), tt.before, logOf(dir))
			}
			if tt.appear != nil {
				if !strings.Contains(out.String(), "no routes yet") {
					t.Errorf("aralez -t output lacks \"no routes yet\":\n%s", out.String())
				}
				tt.appear()
				if !waitFor(15*time.Second, func() bool { return get() == 200 }) {
					t.Fatalf("GET web.test/ = %d after the service appeared; want 200; log:\n%s", get(), logOf(dir))
				}
				// The last discovered route goes: the table empties (the
				// empty-table guard is the file's alone).
				tt.disappear()
				if !waitFor(15*time.Second, func() bool { return get() == 404 }) {
					t.Fatalf("GET web.test/ = %d after the last route went; want 404; log:\n%s", get(), logOf(dir))
				}
			}
			syscall.Kill(pid, syscall.SIGTERM)
			if ws := reap(t, pid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("exit after SIGTERM = %v; want 0; log:\n%s", ws, logOf(dir))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// webSlice is the EndpointSlice of Service ns/web: one ready endpoint,
// host:port, on the port named http.
func webSlice(ns, host string, port int) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(port))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}}},
	}
}

// TestIngressTLSServed: the certificate of an Ingress's TLS Secret is
// served by the TLS listener for its host, and a rotated Secret's new
// certificate replaces it (issue 14).
func TestIngressTLSServed(t *testing.T) {
	becomeSubreaper(t)
	backend := named(t, "T")
	bhost, bport, _ := net.SplitHostPort(backend)
	port, _ := strconv.Atoi(bport)
	api := kubetest.NewServer(t)
	api.Put(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
	api.Put(webSlice("shop", bhost, port))
	secret := func(host string) *corev1.Secret {
		dir := t.TempDir()
		writeCert(t, dir, host)
		crt, _ := os.ReadFile(filepath.Join(dir, host+".crt"))
		key, _ := os.ReadFile(filepath.Join(dir, host+".key"))
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	}
	first := secret("tls.test")
	api.Put(first)
	class, prefix := "aralez", networkingv1.PathTypePrefix
	api.Put(&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: networkingv1.IngressSpec{IngressClassName: &class,
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"tls.test"}, SecretName: "web-tls"}},
			Rules: []networkingv1.IngressRule{{Host: "tls.test", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}})
	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, "t0ken\n")

	tlsAddr := freeAddr(t)
	dir, _ := proxyDir(t, backend, fmt.Sprintf("proxy_address_tls: %q\n", tlsAddr))
	writeFile(t, filepath.Join(dir, "upstreams.yaml"), fmt.Sprintf(
		"provider: kubernetes\nkubernetes:\n  servers: [%q]\n  tokenpath: %q\n", api.URL(), token))
	pid := startBinary(t, dir, nil)
	served := func() string {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, &tls.Config{ServerName: "tls.test", InsecureSkipVerify: true})
		if err != nil {
			return ""
		}
		defer c.Close()
		return string(c.ConnectionState().PeerCertificates[0].Raw)
	}
	der := func(s *corev1.Secret) string {
		b, _ := pem.Decode(s.Data[corev1.TLSCertKey])
		return string(b.Bytes)
	}
	if !waitFor(15*time.Second, func() bool { return served() == der(first) }) {
		t.Fatalf("the TLS listener does not serve the Ingress Secret's certificate; log:\n%s", logOf(dir))
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest("GET", "https://"+tlsAddr+"/", nil)
	req.Host = "tls.test"
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET https://tls.test/ = %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	second := secret("tls.test")
	api.Put(second)
	if !waitFor(15*time.Second, func() bool { return served() == der(second) }) {
		t.Fatalf("the TLS listener does not serve the rotated certificate; log:\n%s", logOf(dir))
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if ws := reap(t, pid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("exit after SIGTERM = %v; want 0; log:\n%s", ws, logOf(dir))
	}
}
