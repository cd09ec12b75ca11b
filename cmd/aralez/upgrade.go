package main

// Zero-downtime binary upgrade, the tableflip model: SIGUSR2 makes the
// running process start the binary again (same path, same arguments, so
// a new file installed at that path is what runs), handing it every
// listening socket. The new process loads its config, binds nothing it
// inherited, serves, and says it is ready; then the old process stops
// accepting, answers its in-flight requests with "Connection: close",
// closes idle keep-alive connections, drains within drain_timeout and
// exits 0. Both processes accept on the same sockets in between, so no
// connection is refused. If the new process fails (bad config, crash, no
// ready within tableflip's one-minute timeout), the old one keeps serving
// and logs why.
//
// Aralez's own procedure (-u and SIGQUIT over upgrade_sock) is in
// handover.go.

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aralez-go/aralez/config"
)

// notifyUpgradeSignal routes SIGUSR2 to c.
func notifyUpgradeSignal(c chan<- os.Signal) { signal.Notify(c, syscall.SIGUSR2) }

// listen returns a TCP listener on addr with keep-alive config ka on
// accepted connections. In the standalone binary the listener comes from
// the previous process when it had one on the same address string (after
// an upgrade), else it is bound now and registered for the next upgrade.
// A nil process binds with net.ListenConfig.
//
// For `aralez -u` the listener is the one handed over upgrade_sock for
// that address; an address not handed over is bound, retrying while the
// old process still holds it. Either way it is registered for the next
// SIGUSR2 upgrade and for a SIGQUIT handover.
func (p *process) listen(addr string, ka net.KeepAliveConfig) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: ka}
	if p == nil {
		return lc.Listen(context.Background(), "tcp", addr)
	}
	ln, err := p.upg.Fds.Listener("tcp", addr)
	if err != nil {
		return nil, err
	}
	if ln == nil {
		ln, err = p.handedOver(addr)
		if err != nil {
			return nil, err
		}
	}
	if ln != nil {
		p.keep(addr, ln)
		return withKeepAlive(ln, ka), nil
	}
	wait := time.Duration(0)
	if p.upgrade {
		wait = handoverBindWait
	}
	ln, err = p.upg.Fds.ListenWithCallback("tcp", addr, func(network, addr string) (net.Listener, error) {
		return bindRetry(func() (net.Listener, error) { return lc.Listen(context.Background(), network, addr) }, wait)
	})
	if err != nil {
		return nil, err
	}
	p.keep(addr, ln)
	return ln, nil
}

// handedOver returns the listener handed over upgrade_sock for addr,
// registered with the upgrader, or nil.
func (p *process) handedOver(addr string) (net.Listener, error) {
	p.mu.Lock()
	f := p.received[addr]
	delete(p.received, addr)
	p.mu.Unlock()
	if f == nil {
		return nil, nil
	}
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("socket handed over for %s: %w", addr, err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("socket handed over for %s is not a TCP listener", addr)
	}
	if err := p.upg.Fds.AddListener("tcp", addr, tl); err != nil {
		ln.Close()
		return nil, err
	}
	return tl, nil
}

// keep records a TCP listener for a SIGQUIT handover.
func (p *process) keep(addr string, ln net.Listener) {
	if tl, ok := ln.(*net.TCPListener); ok {
		p.mu.Lock()
		p.lns[addr] = tl
		p.mu.Unlock()
	}
}

// watch runs the upgrade trigger until ctx is done: each SIGUSR2 starts
// an upgrade. The returned context is done when ctx is, or when a new
// process has taken over; the caller then shuts down as for SIGTERM.
// Call the returned function to release the context. For a nil process
// it only derives a context.
func (p *process) watch(ctx context.Context, m *config.Main, log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if p == nil {
		return ctx, cancel
	}
	if p.upg.HasParent() {
		go func() {
			if err := p.upg.WaitForParent(ctx); err != nil && ctx.Err() == nil {
				log.Warn("upgrade: the previous process ended badly", "err", err)
			} else if err == nil {
				log.Info("upgrade: the previous process has exited")
			}
		}()
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.upg.Exit():
				if ctx.Err() == nil { // not the upgrader's own stop at shutdown
					log.Info("upgrade: the new process is ready; draining and exiting")
				}
				cancel()
				return
			case <-p.quit:
				p.handOver(ctx, m, log)
				cancel()
				return
			case <-p.usr2:
				log.Info("upgrade requested (SIGUSR2): starting the new binary", "pid", os.Getpid())
				// Upgrade blocks until the new process is ready or has
				// failed; a SIGUSR2 meanwhile waits in the channel.
				if err := p.upg.Upgrade(); err != nil {
					log.Error("upgrade failed; this process keeps serving", "err", err)
				}
			}
		}
	}()
	return ctx, cancel
}

// handOver answers SIGQUIT: with upgrade_sock set, it passes every
// listener to the process waiting there (`aralez -u`), trying for
// handoverConnectWait; the caller then drains as for SIGTERM, whether
// or not a process took the sockets.
func (p *process) handOver(ctx context.Context, m *config.Main, log *slog.Logger) {
	if m.UpgradeSock == "" {
		log.Info("SIGQUIT: no upgrade_sock to hand the listeners over; draining and exiting")
		return
	}
	p.mu.Lock()
	lns := maps.Clone(p.lns)
	p.mu.Unlock()
	log.Info("SIGQUIT: handing the listening sockets over upgrade_sock", "upgrade_sock", m.UpgradeSock, "listeners", len(lns))
	if err := sendListeners(ctx, m.UpgradeSock, lns, handoverConnectWait); err != nil {
		log.Warn("SIGQUIT: the sockets were not handed over; draining and exiting", "err", err)
		return
	}
	log.Info("SIGQUIT: listening sockets handed over; draining and exiting")
}

// ready completes an upgrade: the inherited sockets not used by this
// config are closed and the previous process is told to drain. Sockets
// handed over upgrade_sock that no listener took are closed too.
func (p *process) ready(log *slog.Logger) {
	if err := p.upg.Ready(); err != nil {
		log.Error("upgrade: cannot signal readiness to the previous process", "err", err)
	}
	p.mu.Lock()
	for addr, f := range p.received {
		log.Warn("upgrade (-u): a socket handed over is not used by this config; closed", "address", addr)
		f.Close()
	}
	p.received = nil
	p.mu.Unlock()
}

// closeListeners closes, at the start of a shutdown, the duplicates of
// the listening sockets that the upgrader keeps for the next upgrade,
// so that the kernel refuses new connections during the drain instead
// of queueing them for a reset at exit (issue 11). It is a no-op for a
// nil process.
func (p *process) closeListeners() {
	if p != nil {
		p.upg.Stop()
	}
}

// stop ends upgrades at exit. It is a no-op for a nil process.
func (p *process) stop() {
	if p == nil {
		return
	}
	signal.Stop(p.usr2)
	signal.Stop(p.quit)
	p.upg.Stop()
}
