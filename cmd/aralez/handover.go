package main

// Aralez's (Pingora's) upgrade: the new binary is started with -u and
// waits on the Unix socket upgrade_sock; the running process, sent
// SIGQUIT, connects to it, passes every listening socket in one message
// and drains. The message is Pingora's: the listener addresses joined by
// spaces as the payload, and the sockets as SCM_RIGHTS in the same order,
// so a Pingora-based Aralez and this binary can hand over to each other.
// The SIGUSR2 upgrade (upgrade.go) is the other way, in place.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

const (
	// handoverAcceptWait bounds how long `aralez -u` waits for the
	// running process to connect (it is sent SIGQUIT before or after).
	handoverAcceptWait = 30 * time.Second
	// handoverConnectWait bounds how long a process sent SIGQUIT tries
	// to reach upgrade_sock before it drains without handing over:
	// Aralez's systemd example sends SIGQUIT first and starts the new
	// binary next, and Pingora tries for 5 s.
	handoverConnectWait = 5 * time.Second
	// handoverBindWait bounds how long `aralez -u` retries binding an
	// address it was not handed (a Pingora-based Aralez hands over only
	// its proxy listeners) while the old process releases it.
	handoverBindWait = 10 * time.Second
	// handoverMaxFds and handoverMaxPayload are Pingora's limits.
	handoverMaxFds     = 32
	handoverMaxPayload = 2048
)

// receiveListeners binds upgrade_sock at path, waits up to wait for one
// connection from the running process and returns the listening
// sockets it passes, by address. The socket file is mode 0600, owned by
// owner when it is not nil (the account the old process runs as after a
// privilege drop); a peer that is neither root, this process's user nor
// owner is refused.
func receiveListeners(path string, owner *account, wait time.Duration) (map[string]*os.File, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		os.Remove(path) // a stale socket of an earlier upgrade
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	defer ln.Close() // removes the file
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, err
	}
	allowed := []int{0, os.Getuid()}
	if owner != nil {
		if err := os.Chown(path, owner.uid, owner.gid); err != nil {
			return nil, fmt.Errorf("handing %s to uid %d: %w", path, owner.uid, err)
		}
		allowed = append(allowed, owner.uid)
	}
	if err := ln.SetDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	c, err := ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("no process connected within %v (send the running process SIGQUIT): %w", wait, err)
	}
	defer c.Close()
	uid, err := peerUID(c)
	if err != nil {
		return nil, fmt.Errorf("checking the peer: %w", err)
	}
	if !slices.Contains(allowed, uid) {
		return nil, fmt.Errorf("refusing sockets from uid %d: not root, this user or runuser", uid)
	}
	buf := make([]byte, handoverMaxPayload)
	oob := make([]byte, syscall.CmsgSpace(handoverMaxFds*4))
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("reading the sockets: %w", err)
	}
	var fds []int
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if rights, rerr := syscall.ParseUnixRights(&m); rerr == nil {
			fds = append(fds, rights...)
		}
	}
	for _, fd := range fds {
		syscall.CloseOnExec(fd)
	}
	closeAll := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	keys := strings.Fields(string(buf[:n]))
	switch {
	case err != nil:
		closeAll()
		return nil, fmt.Errorf("reading the sockets: %w", err)
	case flags&syscall.MSG_CTRUNC != 0:
		closeAll()
		return nil, errors.New("reading the sockets: more than 32 sent")
	case len(keys) != len(fds):
		closeAll()
		return nil, fmt.Errorf("got %d addresses and %d sockets", len(keys), len(fds))
	}
	out := make(map[string]*os.File, len(keys))
	for i, k := range keys {
		out[k] = os.NewFile(uintptr(fds[i]), "upgrade_sock:"+k)
	}
	return out, nil
}

// peerUID returns the user id of the process at the other end of c.
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// sendListeners connects to the process waiting on upgrade_sock at path,
// retrying until wait has passed or ctx is done, and passes it every
// listener in lns (by address) in one message. The sockets stay open
// here too: the caller drains and closes them.
func sendListeners(ctx context.Context, path string, lns map[string]*net.TCPListener, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var c *net.UnixConn
	for {
		var err error
		if c, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no process waits on %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer c.Close()
	keys := make([]string, 0, len(lns))
	for k := range lns {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fds := make([]int, 0, len(keys))
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	for _, k := range keys {
		// A plain dup(2): (*os.File).Fd would switch the shared socket
		// to blocking mode under this process's poller.
		raw, err := lns[k].SyscallConn()
		if err != nil {
			return fmt.Errorf("listener %s: %w", k, err)
		}
		var dupErr error
		if err := raw.Control(func(fd uintptr) {
			var d int
			if d, dupErr = syscall.Dup(int(fd)); dupErr == nil {
				syscall.CloseOnExec(d)
				fds = append(fds, d)
			}
		}); err != nil || dupErr != nil {
			return fmt.Errorf("listener %s: %w", k, errors.Join(err, dupErr))
		}
	}
	payload := strings.Join(keys, " ")
	if len(payload) > handoverMaxPayload || len(fds) > handoverMaxFds {
		return fmt.Errorf("%d listeners exceed the message limits", len(fds))
	}
	if err := c.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, _, err := c.WriteMsgUnix([]byte(payload), syscall.UnixRights(fds...), nil); err != nil {
		return fmt.Errorf("sending the sockets: %w", err)
	}
	return nil
}

// bindRetry binds with bind, retrying while the address is in use until
// wait has passed: after a handover, the old process may still hold an
// address it did not pass.
func bindRetry(bind func() (net.Listener, error), wait time.Duration) (net.Listener, error) {
	deadline := time.Now().Add(wait)
	for {
		ln, err := bind()
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
