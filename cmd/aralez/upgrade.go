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
// Pingora's upgrade_sock is not used: the sockets pass by inheritance.

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/aralez-go/aralez/config"
)

// notifyUpgradeSignal routes SIGUSR2 to c.
func notifyUpgradeSignal(c chan<- os.Signal) { signal.Notify(c, syscall.SIGUSR2) }

// listen returns a TCP listener on addr with keep-alive config ka on
// accepted connections. In the standalone binary the listener comes from
// the previous process when it had one on the same address string (after
// an upgrade), else it is bound now and registered for the next upgrade.
// A nil process binds with net.ListenConfig.
func (p *process) listen(addr string, ka net.KeepAliveConfig) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: ka}
	if p == nil {
		return lc.Listen(context.Background(), "tcp", addr)
	}
	ln, err := p.upg.Fds.Listener("tcp", addr)
	if err != nil {
		return nil, err
	}
	if ln != nil {
		return withKeepAlive(ln, ka), nil
	}
	return p.upg.Fds.ListenWithCallback("tcp", addr, func(network, addr string) (net.Listener, error) {
		return lc.Listen(context.Background(), network, addr)
	})
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
	if m.UpgradeSock != "" {
		log.Info("upgrade_sock is accepted and unused: SIGUSR2 upgrades in place, passing the listening sockets to the new process", "upgrade_sock", m.UpgradeSock)
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
				log.Info("upgrade: the new process is ready; draining and exiting")
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

// ready completes an upgrade: the inherited sockets not used by this
// config are closed and the previous process is told to drain.
func (p *process) ready(log *slog.Logger) {
	if err := p.upg.Ready(); err != nil {
		log.Error("upgrade: cannot signal readiness to the previous process", "err", err)
	}
}

// stop ends upgrades at exit. It is a no-op for a nil process.
func (p *process) stop() {
	if p == nil {
		return
	}
	signal.Stop(p.usr2)
	p.upg.Stop()
}
