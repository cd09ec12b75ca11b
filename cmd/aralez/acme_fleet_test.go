package main

import (
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/consultest"
	"github.com/aralez-go/aralez/internal/pebbletest"
)

// roundRobin is a loopback TCP balancer: each accepted connection is
// relayed to the next of backends, or the one after when that one does
// not accept (not started yet), as a load balancer in front of a fleet
// does. It stops when the test ends.
func roundRobin(t *testing.T, backends []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var next atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			first := int(next.Add(1) - 1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				var u net.Conn
				for i := range backends {
					if u, err = net.DialTimeout("tcp", backends[(first+i)%len(backends)], 5*time.Second); err == nil {
						break
					}
				}
				if u == nil {
					return
				}
				defer u.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_ = u.SetDeadline(time.Now().Add(30 * time.Second))
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, u)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// TestACMEFleet runs three proxy processes that share their ACME storage
// in Consul (the Consul test server, through the real consul/api client)
// behind one loopback address: the CA issues one certificate for the
// name, not three, whichever process it validates through, and all three
// serve it (issue 13).
func TestACMEFleet(t *testing.T) {
	pebbletest.Need(t)
	consul := consultest.NewServer(t)
	const n = 3
	httpAddrs, tlsAddrs := make([]string, n), make([]string, n)
	for i := range n {
		httpAddrs[i], tlsAddrs[i] = freeAddr(t), freeAddr(t)
	}
	front := roundRobin(t, httpAddrs)
	_, fp, _ := net.SplitHostPort(front)
	port, _ := strconv.Atoi(fp)
	peb := pebbletest.Start(t, pebbletest.Options{HTTPPort: port})
	up := named(t, "A")
	dirs := make([]string, n)
	for i := range n {
		dir, err := os.MkdirTemp("", "aralez-fleet-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		dirs[i] = dir
		writeFile(t, filepath.Join(dir, "main.yaml"), fmt.Sprintf(`proxy_address_http: %q
proxy_address_tls: %q
log_file: aralez.log
acme_domains: [fleet.test]
acme_challenges: [http-01]
acme_directory: %s
acme_ca_file: %s
acme_storage: consul
acme_consul_address: %s
acme_consul_prefix: fleet/acme
`, httpAddrs[i], tlsAddrs[i], peb.Directory, peb.CAFile, consul.Addr()))
		writeFile(t, filepath.Join(dir, "upstreams.yaml"), upstreamsYAML(up, ""))
		startBinary(t, dir, nil)
	}
	defer func() {
		if t.Failed() {
			for i, d := range dirs {
				t.Logf("instance %d log:\n%s", i, logOf(d))
			}
		}
	}()
	var roots *x509.CertPool
	for i, addr := range tlsAddrs {
		if !waitFor(60*time.Second, func() bool {
			if roots == nil {
				roots = peb.Roots()
			}
			_, err := tlsServes(addr, "fleet.test", roots)
			return err == nil
		}) {
			t.Fatalf("instance %d does not serve a verified certificate for fleet.test within 60s", i)
		}
	}
	if got := peb.Issued(); got != 1 {
		t.Errorf("pebble issued %d certificates for a fleet of %d; want 1", got, n)
	}
	var serial string
	for i, addr := range tlsAddrs {
		leaf, err := tlsServes(addr, "fleet.test", roots)
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		if i == 0 {
			serial = leaf.SerialNumber.String()
		} else if s := leaf.SerialNumber.String(); s != serial {
			t.Errorf("instance %d serves serial %s; instance 0 serves %s", i, s, serial)
		}
	}
	if c := consul.Counts(); c.Sessions == 0 || c.KVWrites == 0 {
		t.Errorf("Consul saw %d sessions and %d KV writes; want the shared storage and its locks used", c.Sessions, c.KVWrites)
	}
}
