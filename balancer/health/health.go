package health

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/aralez-go/aralez/balancer"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Health check defaults.
const (
	// DefaultHealthInterval is the time between the starts of two rounds.
	DefaultHealthInterval = 2 * time.Second
	// DefaultHealthRise is how many consecutive passing rounds bring a
	// down backend up.
	DefaultHealthRise = 2
	// DefaultHealthFall is how many consecutive failing rounds take an
	// up backend down.
	DefaultHealthFall = 2
	// DefaultHealthWorkers is how many probes run at once.
	DefaultHealthWorkers = 64
	// DefaultHealthMethod is the probe method.
	DefaultHealthMethod = http.MethodHead
)

// orphanTTL is how long a backend that left the target list while down
// keeps being probed. If it comes up in that time it is dropped then;
// otherwise it is marked up (no one checks it any more) and dropped.
const orphanTTL = 5 * time.Minute

// Target is one thing to probe; see balancer.Target.
type Target = balancer.Target

// HealthOptions configures a HealthChecker. The zero value gives the
// defaults.
type HealthOptions struct {
	// Interval is the time between the starts of two rounds. Zero means
	// DefaultHealthInterval. A round that runs longer delays the next.
	Interval time.Duration
	// Timeout bounds one probe, including connecting, detection and TLS.
	// Zero, or a value not below Interval, means 80% of Interval.
	Timeout time.Duration
	// Rise and Fall are how many consecutive passing or failing rounds
	// flip a backend up or down. Zero means DefaultHealthRise and
	// DefaultHealthFall.
	Rise, Fall int
	// Method is HEAD, GET or POST (without a body). Empty or anything
	// else means DefaultHealthMethod.
	Method string
	// Workers bounds how many backends are probed at once. Zero means
	// DefaultHealthWorkers.
	Workers int
	// Logger gets one line per state change. Nil means no logging.
	Logger *slog.Logger
	// TLSVerify makes probes over TLS fail when the certificate chain
	// does not verify against RootCAs for the target's host. Default
	// false: any certificate is accepted, as in Aralez.
	TLSVerify bool
	// RootCAs are the roots for TLSVerify; nil means the system roots.
	RootCAs *x509.CertPool
}

// hcState is the checker's record of one backend.
type hcState struct {
	b *balancer.Backend
	// targets are deduplicated and sorted. SetTargets replaces the
	// slice, never its elements, so a round may keep reading a copy of
	// the old header.
	targets []Target
	// orphanSince is when the backend left the target list while down
	// (unix nanos); 0 for a listed backend.
	orphanSince int64
	// ok and fail count consecutive passing and failing rounds.
	// Guarded by the round mutex, as plain400 is.
	ok, fail int
	// plain400 is set when detection confirmed that a clear-text
	// HTTP/1 backend answers probes with 400.
	plain400 bool
}

// HealthChecker probes backends in rounds and sets their health state
// (Backend.SetUp) and detected protocol (Backend.SetProto). A backend
// passes a round when one of its targets answers with any HTTP status
// below 500; Aralez counted 100 to 498 as healthy, and the difference
// (499) is a status servers do not send. A backend is down after Fall
// consecutive failed rounds and up again after Rise passing ones. Each
// flip is logged once, with the reason.
//
// A HealthChecker is safe for concurrent use and must not be copied.
type HealthChecker struct {
	_ noCopy

	o   HealthOptions
	log *slog.Logger

	// roundMu serialises rounds (Run and CheckNow); it guards the ok
	// and fail counts of every hcState.
	roundMu sync.Mutex

	mu     sync.Mutex // guards states and hcState.targets, orphanSince
	states map[*balancer.Backend]*hcState

	orphanTTL time.Duration // orphanTTL, shorter in tests
}

// NewHealthChecker returns a checker with no targets. It starts no
// goroutine; call Run.
func NewHealthChecker(o HealthOptions) *HealthChecker {
	if o.Interval <= 0 {
		o.Interval = DefaultHealthInterval
	}
	if o.Timeout <= 0 || o.Timeout >= o.Interval {
		o.Timeout = o.Interval * 4 / 5
	}
	if o.Rise <= 0 {
		o.Rise = DefaultHealthRise
	}
	if o.Fall <= 0 {
		o.Fall = DefaultHealthFall
	}
	if o.Workers <= 0 {
		o.Workers = DefaultHealthWorkers
	}
	switch m := strings.ToUpper(o.Method); m {
	case http.MethodHead, http.MethodGet, http.MethodPost:
		o.Method = m
	default:
		o.Method = DefaultHealthMethod
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HealthChecker{o: o, log: log, states: make(map[*balancer.Backend]*hcState), orphanTTL: orphanTTL}
}

// normalize fills in the defaults of a target.
func normalize(t Target) Target {
	if t.Host == "" || t.Host == "DEFAULT" || strings.HasPrefix(t.Host, "*") {
		t.Host = t.Backend.Addr()
	}
	if t.Path == "" {
		t.Path = "/"
	} else if t.Path[0] != '/' {
		t.Path = "/" + t.Path
	}
	return t
}

// SetTargets replaces the set of targets. Duplicates (same backend,
// Host and Path after defaults; the scheme follows the backend) are
// probed once. Backends that stay keep their counts and state; new ones
// start from their current Backend state. A backend that leaves the list
// while down keeps being probed until it comes up, or for five minutes
// after which it is marked up, so that it is not left down forever with
// no one checking it.
func (h *HealthChecker) SetTargets(ts []Target) {
	// Counted first, so that each backend's list is allocated once at
	// its size: a reload of 10,000 hosts hands in 10,000 targets per
	// backend (issue 16).
	n := make(map[*balancer.Backend]int)
	for _, t := range ts {
		if t.Backend != nil {
			n[t.Backend]++
		}
	}
	byB := make(map[*balancer.Backend][]Target, len(n))
	for _, t := range ts {
		if t.Backend == nil {
			continue
		}
		l, ok := byB[t.Backend]
		if !ok {
			l = make([]Target, 0, n[t.Backend])
		}
		byB[t.Backend] = append(l, normalize(t))
	}
	for b, l := range byB {
		slices.SortFunc(l, func(x, y Target) int {
			return cmp.Or(cmp.Compare(x.Host, y.Host), cmp.Compare(x.Path, y.Path))
		})
		byB[b] = slices.CompactFunc(l, func(x, y Target) bool { return x.Host == y.Host && x.Path == y.Path })
	}
	now := time.Now().UnixNano()

	h.mu.Lock()
	defer h.mu.Unlock()
	for b, st := range h.states {
		if l, ok := byB[b]; ok {
			st.targets = l
			st.orphanSince = 0
			delete(byB, b)
			continue
		}
		if b.Up() {
			delete(h.states, b)
		} else if st.orphanSince == 0 {
			st.orphanSince = now
		}
	}
	for b, l := range byB {
		h.states[b] = &hcState{b: b, targets: l}
	}
}

// Targets returns the targets now probed, including those of down
// backends kept after leaving the list, sorted by address, Host and
// Path.
func (h *HealthChecker) Targets() []Target {
	h.mu.Lock()
	var out []Target
	for _, st := range h.states {
		out = append(out, st.targets...)
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(x, y Target) int {
		return cmp.Or(cmp.Compare(x.Backend.Addr(), y.Backend.Addr()),
			cmp.Compare(x.Host, y.Host), cmp.Compare(x.Path, y.Path))
	})
	return out
}

// Run probes every target once per Interval, starting at once, until ctx
// is done. Probes cut short by ctx do not count.
func (h *HealthChecker) Run(ctx context.Context) {
	t := time.NewTicker(h.o.Interval)
	defer t.Stop()
	for {
		h.safeRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// safeRound runs CheckNow and logs a panic instead of crashing the
// process: a health checker bug must not take the proxy down.
func (h *HealthChecker) safeRound(ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("health check round panicked", "panic", fmt.Sprint(v))
		}
	}()
	h.CheckNow(ctx)
}

// CheckNow runs one round: it probes every target, Workers at a time,
// applies the results and returns. It waits for a round in progress to
// end first. Use it at startup, before serving, and in tests.
func (h *HealthChecker) CheckNow(ctx context.Context) {
	h.roundMu.Lock()
	defer h.roundMu.Unlock()

	type job struct {
		st      *hcState
		targets []Target
	}
	h.mu.Lock()
	jobs := make([]job, 0, len(h.states))
	for _, st := range h.states {
		jobs = append(jobs, job{st, st.targets})
	}
	h.mu.Unlock()
	if len(jobs) == 0 {
		return
	}

	results := make([]result, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(h.o.Workers, len(jobs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || cut(ctx) {
					return
				}
				results[i] = h.checkBackend(ctx, jobs[i].st, jobs[i].targets)
			}
		})
	}
	wg.Wait()
	if cut(ctx) {
		return
	}

	now := time.Now().UnixNano()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, j := range jobs {
		if h.states[j.st.b] != j.st {
			continue // removed during the round
		}
		h.apply(j.st, results[i], now)
	}
}

// cut reports whether ctx is done or past its deadline. A connection's
// deadline (set from the context's) can fire before the context's own
// timer has run, so ctx.Err alone may still be nil for a probe that the
// context cut short.
func cut(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// result is the outcome of one backend's probes in a round.
type result struct {
	ok     bool
	status int
	proto  balancer.Proto // proven by the probe; ProtoUnknown if not
	target Target
	err    error
}

// apply updates the backend and the counts with r. Called with h.mu and
// h.roundMu held.
func (h *HealthChecker) apply(st *hcState, r result, now int64) {
	b := st.b
	if r.proto != balancer.ProtoUnknown {
		if old := b.Proto(); old != r.proto {
			b.SetProto(r.proto)
			h.log.Info("backend protocol detected", "backend", b.Addr(), "proto", r.proto.String(), "previous", old.String())
		}
	}
	if r.ok {
		st.ok++
		st.fail = 0
		b.RecordCheck(now, "")
	} else {
		st.fail++
		st.ok = 0
		b.RecordCheck(now, r.err.Error())
	}
	switch up := b.Up(); {
	case up && st.fail >= h.o.Fall:
		b.SetUp(false)
		h.log.Warn("backend down", "backend", b.Addr(), "host", r.target.Host, "path", r.target.Path,
			"reason", r.err.Error(), "failed_checks", st.fail)
	case !up && st.ok >= h.o.Rise:
		b.SetUp(true)
		h.log.Info("backend up", "backend", b.Addr(), "host", r.target.Host, "path", r.target.Path,
			"status", r.status, "passed_checks", st.ok)
	}
	if st.orphanSince != 0 {
		switch {
		case b.Up():
			delete(h.states, b)
		case now-st.orphanSince > int64(h.orphanTTL):
			b.SetUp(true)
			delete(h.states, b)
			h.log.Info("backend no longer checked, marked up", "backend", b.Addr())
		}
	}
}

// checkBackend probes b's targets in order until one passes. It stops
// early when b cannot be dialed or times out.
func (h *HealthChecker) checkBackend(ctx context.Context, st *hcState, ts []Target) (r result) {
	b := st.b
	defer func() {
		if v := recover(); v != nil {
			r = result{err: fmt.Errorf("panic in health probe: %v", v)}
			if len(ts) > 0 {
				r.target = ts[0]
			}
		}
		b.SetLastCheck(time.Now())
	}()
	for _, t := range ts {
		status, proto, err := h.probe(ctx, st, t)
		r = result{status: status, target: t, err: err}
		// Keep the protocol only when the probe proved it: an answer,
		// or a TLS handshake whose certificate was then rejected. A
		// silent backend falls through detection to ProtoHTTP1, which
		// proves nothing.
		if err == nil || errors.Is(err, errVerify) {
			r.proto = proto
		}
		if err == nil && status >= 500 {
			r.err = fmt.Errorf("status %d", status)
		}
		if r.err == nil {
			r.ok = true
			return r
		}
		// The other targets would fail the same way when the backend
		// cannot be dialed or does not answer in time; stopping here
		// keeps a hung backend from holding a worker for a Timeout per
		// target.
		if isDialError(err) || errors.Is(err, os.ErrDeadlineExceeded) ||
			errors.Is(err, context.DeadlineExceeded) || cut(ctx) {
			return r
		}
	}
	if len(ts) == 0 {
		r.err = errors.New("no targets")
	}
	return r
}

// probe sends one request for t and returns the status and the protocol
// it used. It speaks the protocol already known for b; over TLS the
// handshake's ALPN re-detects h2 on every probe. Protocol detection
// (detectProto) runs first, as a step of its own, on first use and
// whenever the known protocol looks wrong: an error after connecting (a
// TLS backend that turned plain, an h2c one that dropped HTTP/2), or a
// 400 from a clear-text HTTP/1 probe, which is what TLS servers answer
// to clear text (a backend that turned TLS), unless detection already
// confirmed that this clear-text backend answers 400. The probe then
// speaks the detected protocol. Detection and the probe each get
// Timeout.
func (h *HealthChecker) probe(ctx context.Context, st *hcState, t Target) (int, balancer.Proto, error) {
	b := st.b
	sni := serverNameOf(t.Host)
	if known := b.Proto(); known != balancer.ProtoUnknown {
		pctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
		status, p, err := h.probeWith(pctx, b, t, sni, known)
		cutShort := pctx.Err() != nil
		cancel()
		if err == nil && status != http.StatusBadRequest {
			st.plain400 = false
		}
		switch {
		case err == nil && (status != http.StatusBadRequest || p != balancer.ProtoHTTP1 || st.plain400):
			return status, p, nil
		case err != nil && (isDialError(err) || cutShort || ctx.Err() != nil || errors.Is(err, errVerify)):
			return status, p, err
		}
		// Detect again.
	}
	p, err := h.detectProto(ctx, b, sni)
	if err != nil {
		return 0, balancer.ProtoUnknown, err
	}
	pctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	status, p, err := h.probeWith(pctx, b, t, sni, p)
	// A clear-text backend that answers 400 after a fresh detection
	// means it: do not detect again each round while it keeps doing so.
	st.plain400 = err == nil && status == http.StatusBadRequest && p == balancer.ProtoHTTP1
	return status, p, err
}

// detectProto detects b's protocol (Detect) within Timeout, before any
// probe, and stores what the detection proves on b at once: TLS (with
// h2 or HTTP/1.1 by ALPN) after a TLS handshake, h2c after a SETTINGS
// frame. So the proxy and every probe reach b over that protocol
// whether or not the probes then pass: a TLS-only backend is never
// probed, or proxied to, in clear text because a probe failed (issue
// 11). Clear-text HTTP/1.1 is the answer when neither worked; it is
// stored only once a probe has an answer (apply). A backend that
// stayed silent until the deadline gives an error: a probe would only
// wait out a second Timeout.
func (h *HealthChecker) detectProto(ctx context.Context, b *balancer.Backend, sni string) (balancer.Proto, error) {
	dctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	p, err := detect(dctx, b.Addr(), sni, localHeader(b.ProxyHeader()), h.o.Timeout)
	switch {
	case err != nil:
		return balancer.ProtoUnknown, err
	case p == balancer.ProtoHTTP1 && cut(dctx):
		return balancer.ProtoUnknown, fmt.Errorf("detecting protocol: no answer: %w", context.DeadlineExceeded)
	case p != balancer.ProtoHTTP1:
		if old := b.Proto(); old != p {
			b.SetProto(p)
			h.log.Info("backend protocol detected", "backend", b.Addr(), "proto", p.String(), "previous", old.String())
		}
	}
	return p, nil
}

func isDialError(err error) bool {
	_, ok := errors.AsType[*dialError](err)
	return ok
}

func (h *HealthChecker) probeWith(ctx context.Context, b *balancer.Backend, t Target, sni string, known balancer.Proto) (int, balancer.Proto, error) {
	pc, p, err := dialProto(ctx, b.Addr(), sni, localHeader(b.ProxyHeader()), known)
	if err != nil {
		return 0, p, err
	}
	defer pc.Close()
	if h.o.TLSVerify && p&balancer.ProtoTLS != 0 {
		if err := verifyPeer(pc.conn, sni, b.Addr(), h.o.RootCAs); err != nil {
			return 0, p, err
		}
	}
	status, err := probeOn(pc, p, h.request(t, p))
	return status, p, err
}

func (h *HealthChecker) request(t Target, p balancer.Proto) probeRequest {
	return probeRequest{method: h.o.Method, scheme: p.Scheme(), host: t.Host, path: t.Path}
}

// noCopy makes `go vet` report copies of the types that embed it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
