package discovery

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Leader election defaults, client-go's (tools/leaderelection).
const (
	// DefaultLeaseDuration is how long a Lease holder is leader without
	// renewing, as seen by the others.
	DefaultLeaseDuration = 15 * time.Second
	// DefaultRenewDeadline is how long the leader keeps acting as one
	// after its last successful renewal.
	DefaultRenewDeadline = 10 * time.Second
	// DefaultRetryPeriod is the pause between two attempts to acquire
	// or renew the Lease.
	DefaultRetryPeriod = 2 * time.Second
)

// leaseElector elects one leader among the replicas of the Ingress
// controller through a coordination.k8s.io/v1 Lease, with the rules of
// client-go's leaderelection package: a replica takes a Lease that does
// not exist, is free, or whose record (holder, renew time, version) has
// not changed for a lease duration on the replica's own clock (so clock
// skew between replicas does not matter); the holder renews every retry
// period and stops leading when it could not renew for the renew
// deadline; updates carry the resourceVersion, so two replicas cannot
// both win. On shutdown the leader frees the Lease so that another
// takes over at once.
//
// It is written here rather than taken from client-go because importing
// client-go's leaderelection pulls in every API group's typed client,
// informer and apply configuration (230 packages; about 190 CPU seconds
// of cold -race compilation, measured for issue 14), for a loop of a few
// dozen lines over the Lease client.
type leaseElector struct {
	leases                 kubeResource[*coordinationv1.Lease, *coordinationv1.LeaseList]
	name, id               string
	duration, renew, retry time.Duration
	log                    *slog.Logger
	notify                 func() // called when leading changes

	leading atomic.Bool

	// observed is the last Lease record seen and observedAt when it was
	// first seen; only run's goroutine uses them.
	observed   leaseRecord
	observedAt time.Time
}

// leaseRecord is what identifies one renewal of a Lease.
type leaseRecord struct {
	holder, version string
	renew           time.Time
}

// Leading reports whether this replica leads now. It is safe for
// concurrent use.
func (e *leaseElector) Leading() bool { return e.leading.Load() }

// run campaigns and renews until ctx is done, then frees the Lease if
// it holds it.
func (e *leaseElector) run(ctx context.Context) {
	var renewed time.Time
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.release()
			return
		case <-t.C:
		}
		held, err := e.tryAcquireOrRenew(ctx)
		now := time.Now()
		switch {
		case held:
			renewed = now
			e.set(true)
		case err == nil, now.Sub(renewed) > e.renew:
			// Another replica holds it, or renewing failed for longer
			// than the renew deadline.
			e.set(false)
		}
		if err != nil && ctx.Err() == nil {
			e.log.Debug("kubernetes lease: acquiring or renewing failed", "lease", e.name, "err", err)
		}
		t.Reset(e.retry)
	}
}

// set records whether this replica leads and logs a change.
func (e *leaseElector) set(leading bool) {
	if e.leading.Swap(leading) == leading {
		return
	}
	if leading {
		e.log.Info("kubernetes lease acquired: this replica writes Ingress status and events", "lease", e.name, "identity", e.id)
	} else {
		e.log.Info("kubernetes lease lost: another replica writes Ingress status and events", "lease", e.name, "identity", e.id)
	}
	e.notify()
}

// tryAcquireOrRenew makes one attempt; held reports whether this
// replica holds the Lease afterwards. err is set when the API server
// could not be asked or refused the write.
func (e *leaseElector) tryAcquireOrRenew(ctx context.Context) (held bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, e.retry+e.renew)
	defer cancel()
	now := metav1.NewMicroTime(time.Now())
	secs := int32((e.duration + time.Second - 1) / time.Second)
	l, err := e.leases.Get(ctx, e.name)
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: e.name},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: &e.id, LeaseDurationSeconds: &secs,
				AcquireTime: &now, RenewTime: &now,
			},
		}
		_, err = e.leases.Create(ctx, l)
		return err == nil, err
	}
	if err != nil {
		return false, err
	}
	rec := leaseRecord{version: l.ResourceVersion}
	if l.Spec.HolderIdentity != nil {
		rec.holder = *l.Spec.HolderIdentity
	}
	if l.Spec.RenewTime != nil {
		rec.renew = l.Spec.RenewTime.Time
	}
	if rec != e.observed {
		e.observed, e.observedAt = rec, time.Now()
	}
	if rec.holder != "" && rec.holder != e.id && time.Since(e.observedAt) < e.duration {
		return false, nil
	}
	l = l.DeepCopy()
	if rec.holder != e.id {
		l.Spec.AcquireTime = &now
		n := int32(1)
		if l.Spec.LeaseTransitions != nil {
			n = *l.Spec.LeaseTransitions + 1
		}
		l.Spec.LeaseTransitions = &n
	}
	l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &e.id, &now, &secs
	_, err = e.leases.Update(ctx, l)
	return err == nil, err
}

// release frees the Lease when this replica leads: the next replica
// then takes it at its next attempt instead of after a lease duration.
func (e *leaseElector) release() {
	if !e.leading.Load() {
		return
	}
	defer e.set(false)
	ctx, cancel := context.WithTimeout(context.Background(), e.retry+time.Second)
	defer cancel()
	l, err := e.leases.Get(ctx, e.name)
	if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != e.id {
		return
	}
	l = l.DeepCopy()
	empty, one := "", int32(1)
	now := metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &empty, &one, &now
	if _, err := e.leases.Update(ctx, l); err != nil {
		e.log.Debug("kubernetes lease: release failed", "lease", e.name, "err", err)
	}
}
