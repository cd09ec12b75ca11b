package main

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseProcNetTCP(t *testing.T) {
	t.Parallel()
	socks, err := parseProcNetTCP(testdata(t, "proc-net-tcp.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 7 {
		t.Fatalf("parseProcNetTCP: %d sockets; want 7", len(socks))
	}
	want := tcpSock{local: netip.MustParseAddrPort("127.0.0.1:18084"), remote: netip.MustParseAddrPort("0.0.0.0:0"),
		state: tcpListen, rxQueue: 3, inode: 1001}
	if socks[0] != want {
		t.Errorf("parseProcNetTCP[0] = %+v; want %+v", socks[0], want)
	}
	if got := socks[1].remote; got != netip.MustParseAddrPort("127.0.0.1:18084") {
		t.Errorf("parseProcNetTCP[1].remote = %v; want 127.0.0.1:18084", got)
	}
	if _, err := parseProcNetTCP([]byte("   0: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n")); err == nil {
		t.Errorf("parseProcNetTCP(bad port) = nil error; want one")
	}
	if _, err := parseHexAddr("7F:1"); err == nil {
		t.Errorf("parseHexAddr(short) = nil error; want one")
	}
}

func TestCountEstablished(t *testing.T) {
	t.Parallel()
	socks, err := parseProcNetTCP(testdata(t, "proc-net-tcp.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		mine        map[uint64]bool
		server      string
		est, queued int
	}{
		// 2001 and 2002 are ours and established to 18084; 2003 goes
		// elsewhere; the TIME_WAIT line and the server side never count.
		{"ours", map[uint64]bool{2001: true, 2002: true, 2003: true, 3001: true}, "127.0.0.1:18084", 2, 3},
		{"not ours", map[uint64]bool{9: true}, "127.0.0.1:18084", 0, 3},
		// A listener on 0.0.0.0 serves 127.0.0.1 too.
		{"wildcard listener", map[uint64]bool{2003: true}, "127.0.0.1:19002", 0, 2},
		{"other port", map[uint64]bool{2003: true}, "127.0.0.1:19001", 1, 0},
	}
	// Every socket listed twice, as /proc/net/tcp can list one when other
	// sockets change between two reads, gives the same counts.
	twice := append(append([]tcpSock(nil), socks...), socks...)
	if est, q := countEstablished(twice, tests[0].mine, netip.MustParseAddrPort(tests[0].server)); est != tests[0].est || q != tests[0].queued {
		t.Errorf("sockets listed twice: countEstablished = %d, %d; want %d, %d", est, q, tests[0].est, tests[0].queued)
	}
	for _, tt := range tests {
		est, q := countEstablished(socks, tt.mine, netip.MustParseAddrPort(tt.server))
		if est != tt.est || q != tt.queued {
			t.Errorf("%s: countEstablished = %d, %d; want %d, %d", tt.name, est, q, tt.est, tt.queued)
		}
	}
}

// TestCountEstablishedLive opens real loopback connections from this
// process and checks that the accept queue and our established sockets are
// seen through /proc, before and after the listener accepts them.
func TestCountEstablishedLive(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := netip.MustParseAddrPort(ln.Addr().String())
	const n = 3
	for range n {
		c, err := net.Dial("tcp4", server.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	read := func() (int, int) {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		socks, err := parseProcNetTCP(b)
		if err != nil {
			t.Fatal(err)
		}
		// This process holds both ends; only the client ends point at
		// the server address.
		return countEstablished(socks, socketInodes(os.Getpid()), server)
	}
	if est, q := read(); est != n || q != n {
		t.Errorf("before accepting: countEstablished = %d, %d; want %d, %d", est, q, n, n)
	}
	for range n {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if est, q := read(); est != n || q != 0 {
		t.Errorf("after accepting: countEstablished = %d, %d; want %d, 0", est, q, n)
	}
}

// TestRaiseNoFile checks that the limit the driver sets is what a child
// process gets (the Go runtime would otherwise restore the old soft limit
// in children).
func TestRaiseNoFile(t *testing.T) {
	t.Parallel()
	got := raiseNoFile(1024)
	if got < 1024 {
		t.Fatalf("raiseNoFile(1024) = %d; want at least 1024", got)
	}
	out, err := exec.Command("sh", "-c", "ulimit -n").Output()
	if err != nil {
		t.Skipf("no sh: %v", err)
	}
	if child := strings.TrimSpace(string(out)); child != strconv.FormatUint(got, 10) && child != "unlimited" {
		t.Errorf("a child's open-file limit = %s; want %d", child, got)
	}
}

func TestFDWarning(t *testing.T) {
	t.Parallel()
	c := tcase{id: "h1 sweep c10000", conns: 10000, tool: "wrk"}
	if w := fdWarning(c, 20000); !strings.Contains(w, "20000 may be short") || !strings.Contains(w, "21024") {
		t.Errorf("fdWarning(10000 conns, 20000) = %q; want a warning naming 21024", w)
	}
	if w := fdWarning(c, 1<<18); w != "" {
		t.Errorf("fdWarning(10000 conns, 262144) = %q; want none", w)
	}
	c.tool = "idle"
	if w := fdWarning(c, 20000); w != "" {
		t.Errorf("fdWarning(idle) = %q; want none (idle connections open no upstream connection)", w)
	}
}

func TestSleepCtx(t *testing.T) {
	t.Parallel()
	if !sleepCtx(t.Context(), time.Millisecond) {
		t.Errorf("sleepCtx(1ms) = false; want true")
	}
}
