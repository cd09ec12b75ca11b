package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// establishLimit bounds how long a held window waits for its connections.
// With a listen backlog below the connection count, the kernel drops the
// SYNs that do not fit and the client retries them after 1, 3, 7 ... s.
const establishLimit = 60 * time.Second

// wantNoFile is the open-file limit the driver asks for (and passes on to
// every process it starts): 10,000 connections through a proxy take about
// 20,000 descriptors in that proxy.
const wantNoFile = 1 << 18

// heldResult is one held run of wrk.
type heldResult struct {
	a, b        snapshot // read right before and right after the window
	out         []byte   // wrk's output (its totals span the whole run)
	established int      // client connections established when the warm-up began
	short       string   // why the warm-up began before every connection was up
	err         error
}

// runHeld runs one wrk for case c against t that spans the warm-up and the
// window, so that connecting is not measured: it waits until all c.conns
// connections are established and accepted (the target's accept queue is
// empty), runs the warm-up, snapshots a, calls during (nil: sleep for the
// window), snapshots b, and stops wrk with SIGINT (wrk then prints its
// totals). Requests of the window are counted at the upstreams by the
// caller. wrk's output is kept at logPath.
func (s *suite) runHeld(c tcase, t *target, ps pidSets, logPath string, during func(time.Duration)) (h heldResult) {
	total := establishLimit + s.o.warmup + s.o.duration + 15*time.Second
	argv, err := s.loadArgv(c, t, total, true)
	if err != nil {
		h.err = err
		return h
	}
	s.note(t.name, append([]string{"held (stopped with SIGINT after the window):"}, argv...))
	os.Remove(logPath)
	p, err := startProc("wrk", argv, nil, logPath)
	if err != nil {
		h.err = err
		return h
	}
	defer p.stop(3 * time.Second)
	t0 := time.Now()
	h.established, err = waitEstablished(s.ctx, p, c.addr(t), c.conns, establishLimit)
	s.say("%s %q: %d connections established and accepted after %.1f s", t.name, c.id, h.established, time.Since(t0).Seconds())
	if err != nil {
		if !p.alive() || s.ctx.Err() != nil {
			out, _ := os.ReadFile(logPath)
			h.out, h.err = out, err
			return h
		}
		h.short = err.Error()
	}
	if !sleepCtx(s.ctx, s.o.warmup) {
		h.err = s.ctx.Err()
		return h
	}
	ps.tool = []int{p.pid()}
	h.a = s.snap(ps, true)
	if during != nil {
		during(s.o.duration)
	} else {
		sleepCtx(s.ctx, s.o.duration)
	}
	h.b = s.snap(ps, false)
	_ = syscall.Kill(p.pid(), syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		h.err = errors.New("wrk did not stop within 15 s of SIGINT")
	}
	h.out, _ = os.ReadFile(logPath)
	if h.err == nil && p.err != nil {
		h.err = fmt.Errorf("wrk: %w", p.err)
	}
	return h
}

// sleepCtx sleeps for d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// waitEstablished polls until process p has want TCP connections to addr
// in state ESTABLISHED and the listener on addr has nothing left in its
// accept queue, and returns how many it had. It fails when p exits, ctx
// ends or limit passes.
func waitEstablished(ctx context.Context, p *proc, addr string, want int, limit time.Duration) (int, error) {
	server, err := netip.ParseAddrPort(addr)
	if err != nil {
		return 0, fmt.Errorf("waiting for connections: %w", err)
	}
	n, queued := 0, 0
	for deadline := time.Now().Add(limit); ; {
		if !p.alive() {
			return n, fmt.Errorf("the load generator exited while connecting (%d of %d connections up)", n, want)
		}
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return 0, fmt.Errorf("waiting for connections: %w", err)
		}
		socks, err := parseProcNetTCP(b)
		if err != nil {
			return 0, fmt.Errorf("waiting for connections: %w", err)
		}
		n, queued = countEstablished(socks, socketInodes(p.pid()), server)
		if n >= want && queued == 0 {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("only %d of %d connections established (%d waiting in the accept queue) after %v", n, want, queued, limit)
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return n, ctx.Err()
		}
	}
}

// TCP states of /proc/net/tcp (include/net/tcp_states.h).
const (
	tcpEstablished = 0x01
	tcpListen      = 0x0A
)

// tcpSock is one line of /proc/net/tcp.
type tcpSock struct {
	local, remote netip.AddrPort
	state         int
	rxQueue       int // for a listener: connections waiting to be accepted
	inode         uint64
}

// parseProcNetTCP reads /proc/net/tcp (IPv4; addresses are printed as the
// kernel's 32-bit words in host byte order, little-endian here, ports in
// big-endian hex).
func parseProcNetTCP(b []byte) ([]tcpSock, error) {
	var out []tcpSock
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] == "sl" {
			continue
		}
		var sk tcpSock
		var err error
		if sk.local, err = parseHexAddr(f[1]); err != nil {
			return nil, fmt.Errorf("/proc/net/tcp line %q: %w", sc.Text(), err)
		}
		if sk.remote, err = parseHexAddr(f[2]); err != nil {
			return nil, fmt.Errorf("/proc/net/tcp line %q: %w", sc.Text(), err)
		}
		st, err1 := strconv.ParseInt(f[3], 16, 32)
		_, rx, _ := strings.Cut(f[4], ":")
		q, err2 := strconv.ParseInt(rx, 16, 64)
		ino, err3 := strconv.ParseUint(f[9], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("/proc/net/tcp line %q: %w", sc.Text(), err)
		}
		sk.state, sk.rxQueue, sk.inode = int(st), int(q), ino
		out = append(out, sk)
	}
	return out, sc.Err()
}

// parseHexAddr parses "0100007F:4E21" (127.0.0.1:20001).
func parseHexAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok || len(h) != 8 {
		return netip.AddrPort{}, fmt.Errorf("address %q: want 8 hex digits, a colon and a port", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", s, err)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", s, err)
	}
	ip := netip.AddrFrom4([4]byte{raw[3], raw[2], raw[1], raw[0]})
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// countEstablished returns how many of the sockets whose inode is in mine
// are ESTABLISHED to server, and how many connections wait in the accept
// queue of server's listener. A socket listed twice counts once: the
// kernel walks its socket table afresh for each read of /proc/net/tcp, so
// a socket can appear in two reads while other sockets open and close.
func countEstablished(socks []tcpSock, mine map[uint64]bool, server netip.AddrPort) (established, queued int) {
	seen := make(map[uint64]bool, len(socks))
	for _, sk := range socks {
		if sk.inode != 0 {
			if seen[sk.inode] {
				continue
			}
			seen[sk.inode] = true
		}
		switch {
		case sk.state == tcpEstablished && sk.remote == server && mine[sk.inode]:
			established++
		case sk.state == tcpListen && sk.local.Port() == server.Port() &&
			(sk.local.Addr() == server.Addr() || sk.local.Addr().IsUnspecified()):
			queued += sk.rxQueue
		}
	}
	return established, queued
}

// socketInodes returns the inodes of the sockets process pid has open.
func socketInodes(pid int) map[uint64]bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	out := make(map[uint64]bool, len(ents))
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if v, ok := strings.CutPrefix(l, "socket:["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(v, "]"), 10, 64); err == nil {
				out[n] = true
			}
		}
	}
	return out
}

// raiseNoFile raises the driver's open-file limit to want, soft and hard
// (root with CAP_SYS_RESOURCE may), or else the soft limit to the hard
// one, and returns the soft limit now in force; 0 when it cannot be read.
// It always calls syscall.Setrlimit: the Go runtime raises its own soft
// limit at start but gives children the original one unless the program
// sets the limit itself.
func raiseNoFile(want uint64) uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur >= want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0
		}
		return l.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, l.Max)}); err == nil {
		return want
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: l.Max, Max: l.Max}); err == nil {
		return l.Max
	}
	return l.Cur
}

// fdsSpare is the descriptors a process needs besides its client
// connections (listeners, logs, upstream pool at rest).
const fdsSpare = 1024

// fdWarning says when the open-file limit nofile may be short for case c
// through a proxy, which holds a client and an upstream connection per
// request in flight; "" when it is not.
func fdWarning(c tcase, nofile uint64) string {
	if c.tool == "idle" || nofile == 0 || uint64(2*c.conns+fdsSpare) <= nofile {
		return ""
	}
	return fmt.Sprintf("the open-file limit %d may be short for %q: a proxy holds a client and an upstream connection per request in flight (up to %d descriptors); errors in its rows may be the limit's, not the proxy's", nofile, c.id, 2*c.conns+fdsSpare)
}
