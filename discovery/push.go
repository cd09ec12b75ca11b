package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/aralez-go/aralez/config"
)

// ErrPushStopped is returned by (*Push).Apply when the Push's Run has
// ended (the process is shutting down) before the update was taken.
var ErrPushStopped = errors.New("discovery: config push source stopped")

// ErrPushRunTwice is returned by a second call of (*Push).Run.
var ErrPushRunTwice = errors.New("discovery: push source already running")

// Push is the config API's source: the admin server calls Apply with a
// validated routing table, Run hands it to the reload loop as an Update
// whose Done channel carries the result back, and Apply returns it. The
// exchange is synchronous, so the API can answer 200 only after the new
// table is serving and 4xx/5xx when compiling it failed.
//
// The reload loop must send exactly one value on Update.Done for every
// update from this source: nil when applied or unchanged, else the
// error. Apply and Run are safe for concurrent use; pushes are handed
// over one at a time in arrival order. A Push must not be copied.
type Push struct {
	_ noCopy

	reqs    chan Update
	stop    chan struct{}
	running atomic.Bool
}

// NewPush returns a Push. It delivers nothing until Run is running.
func NewPush() *Push {
	return &Push{reqs: make(chan Update), stop: make(chan struct{})}
}

// Name returns "api".
func (p *Push) Name() string { return "api" }

// Run forwards pushed tables to out until ctx is done, then returns nil.
// After it returns, Apply fails with ErrPushStopped. Run may be called
// only once; a second call returns ErrPushRunTwice.
func (p *Push) Run(ctx context.Context, out chan<- Update) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrPushRunTwice
	}
	defer close(p.stop)
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-p.reqs:
			select {
			case out <- u:
			case <-ctx.Done():
				u.Done <- ErrPushStopped
				return nil
			}
		}
	}
}

// Apply sends up to the reload loop and waits for the result: nil once
// it is serving (or was identical to the running table), the reload
// loop's error when it was rejected, ErrPushStopped when Run has ended,
// or ctx's error (wrapped) when ctx ends first; in that last case the
// table may still be applied later. up must not be changed afterwards.
func (p *Push) Apply(ctx context.Context, up *config.Upstreams) error {
	if up == nil {
		return errors.New("discovery: nil routing table pushed")
	}
	done := make(chan error, 1)
	u := Update{Source: p.Name(), Upstreams: up, Done: done}
	select {
	case p.reqs <- u:
	case <-p.stop:
		return ErrPushStopped
	case <-ctx.Done():
		return fmt.Errorf("discovery: handing config to the reload loop: %w", ctx.Err())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("discovery: waiting for the reload loop: %w", ctx.Err())
	}
}

// noCopy makes go vet's copylocks check flag copies of a Push.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
