package balancer

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultFailThreshold is how many consecutive passive failures
// (ReportFailure without a ReportSuccess in between) eject a backend.
const DefaultFailThreshold = 3

// DefaultCooldown is how long a passively ejected backend stays out of
// rotation when no active check ends the ejection earlier.
const DefaultCooldown = 10 * time.Second

// Proto is the upstream protocol of a backend as found by Detect: a set
// of flags. The zero value, ProtoUnknown, means not detected yet; the
// proxy then uses plain HTTP/1.1. Detect returns one of ProtoHTTP1,
// ProtoH2C, ProtoTLS|ProtoHTTP1 and ProtoTLS|ProtoH2.
type Proto uint32

// Proto flags.
const (
	// ProtoUnknown means the protocol has not been detected.
	ProtoUnknown Proto = 0
	// ProtoHTTP1 means the backend speaks HTTP/1.1 (over TLS when
	// ProtoTLS is also set).
	ProtoHTTP1 Proto = 1 << 0
	// ProtoTLS means the backend completed a TLS handshake.
	ProtoTLS Proto = 1 << 1
	// ProtoH2 means the backend negotiated "h2" by ALPN (RFC 7540
	// section 3.3); it is always combined with ProtoTLS.
	ProtoH2 Proto = 1 << 2
	// ProtoH2C means the backend answered the HTTP/2 connection preface
	// in clear text with a SETTINGS frame (prior knowledge, RFC 7540
	// section 3.4).
	ProtoH2C Proto = 1 << 3
)

// Has reports whether every flag of f is set in p.
func (p Proto) Has(f Proto) bool { return f != 0 && p&f == f }

// Scheme is "https" when p has ProtoTLS and "http" otherwise.
func (p Proto) Scheme() string {
	if p&ProtoTLS != 0 {
		return "https"
	}
	return "http"
}

// String returns a short name: "unknown", "http1", "h2c", "tls+http1",
// "tls+h2", or the flags joined by "+" for other combinations.
func (p Proto) String() string {
	switch p {
	case ProtoUnknown:
		return "unknown"
	case ProtoHTTP1:
		return "http1"
	case ProtoH2C:
		return "h2c"
	case ProtoTLS | ProtoHTTP1:
		return "tls+http1"
	case ProtoTLS | ProtoH2:
		return "tls+h2"
	}
	var parts []string
	for _, f := range [...]struct {
		f Proto
		s string
	}{{ProtoTLS, "tls"}, {ProtoHTTP1, "http1"}, {ProtoH2, "h2"}, {ProtoH2C, "h2c"}} {
		if p&f.f != 0 {
			parts = append(parts, f.s)
		}
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, "+")
}

// noCopy makes go vet's copylocks check report copies of the types that
// embed it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// pad keeps the fields written on every request (in-flight count) off
// the cache line that every pick reads (health and ejection).
type pad [64]byte

// Backend is the state of one upstream address (host:port), shared by
// every route and every config generation that names the address, so
// that counters and health survive reloads. Get Backends from a Set (or
// NewBackend); a Backend must not be copied. All methods are safe for
// concurrent use and lock-free.
type Backend struct {
	_ noCopy

	addr string

	// Read on every pick.
	down         atomic.Bool  // set by the health checker
	ejectedUntil atomic.Int64 // unix nanos; 0 = not ejected
	proto        atomic.Uint32

	_ pad

	// Written on every request.
	inFlight atomic.Int64
	requests atomic.Uint64

	_ pad

	failures    atomic.Uint32 // consecutive passive failures
	proxyHeader atomic.Uint32 // PROXY protocol version it expects; 0 = none
	ejections   atomic.Uint64
	lastCheck   atomic.Int64 // unix nanos of the last finished active probe
	lastError   atomic.Pointer[string]
}

// NewBackend returns the state for addr (host:port), up, not ejected,
// with an unknown protocol. Prefer Set.Get, which shares one Backend per
// address.
func NewBackend(addr string) *Backend {
	return &Backend{addr: addr}
}

// Addr returns the address (host:port) the Backend was created with.
func (b *Backend) Addr() string { return b.addr }

// Up reports the active health state: true until the health checker has
// seen Fall consecutive failed probes, and again after Rise passing ones.
func (b *Backend) Up() bool { return !b.down.Load() }

// SetUp sets the active health state. The HealthChecker calls it; other
// callers would fight with the checker.
func (b *Backend) SetUp(up bool) { b.down.Store(!up) }

// Available reports whether the backend may get new requests at
// nowNanos (unix nanoseconds; 0 means read the clock when an ejection
// must be checked): it is Up and not passively ejected.
func (b *Backend) Available(nowNanos int64) bool {
	return !b.down.Load() && !b.ejected(nowNanos)
}

// Ejected reports whether the backend is passively ejected at nowNanos
// (unix nanoseconds; 0 means now).
func (b *Backend) Ejected(nowNanos int64) bool { return b.ejected(nowNanos) }

func (b *Backend) ejected(now int64) bool {
	u := b.ejectedUntil.Load()
	if u == 0 {
		return false
	}
	if now == 0 {
		now = time.Now().UnixNano()
	}
	if u > now {
		return true
	}
	// Expired: clear it so that later calls skip the clock read. A
	// concurrent new ejection wins the CompareAndSwap race.
	b.ejectedUntil.CompareAndSwap(u, 0)
	return false
}

// Acquire counts a request sent to the backend: it increments the
// in-flight count (read by least_conn) and the request total. Every
// Acquire must be paired with one Release.
func (b *Backend) Acquire() {
	b.inFlight.Add(1)
	b.requests.Add(1)
}

// Release ends a request started with Acquire.
func (b *Backend) Release() { b.inFlight.Add(-1) }

// InFlight returns the number of requests between Acquire and Release.
func (b *Backend) InFlight() int64 { return b.inFlight.Load() }

// Requests returns the number of Acquire calls since the Backend was
// created.
func (b *Backend) Requests() uint64 { return b.requests.Load() }

// ReportFailure records a failed exchange at nowNanos (unix
// nanoseconds): a connect error, a reset before the response, or a
// timeout. Responses, whatever their status, are not failures. After
// DefaultFailThreshold consecutive failures the backend is ejected for
// DefaultCooldown and the count restarts; while ejected, a passing active
// check ends the ejection and a failing one extends it (see the package
// doc). ReportFailure reports whether this call ejected the backend, so
// that the caller can log it once.
func (b *Backend) ReportFailure(nowNanos int64) bool {
	if b.failures.Add(1) < DefaultFailThreshold {
		return false
	}
	b.failures.Store(0)
	until := nowNanos + int64(DefaultCooldown)
	if until <= 0 { // overflow with an absurd nowNanos
		until = math.MaxInt64
	}
	b.ejectedUntil.Store(until)
	b.ejections.Add(1)
	return true
}

// ReportSuccess records a completed exchange and resets the consecutive
// failure count. It only writes when the count is non-zero, so the
// common call costs one atomic load.
func (b *Backend) ReportSuccess() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
}

// RecordCheck records the outcome of one active health probe finished
// at nowNanos: errMsg is empty for a pass, else the probe's error. A pass
// ends a passive ejection (an active probe got an answer); a failure
// keeps one going for another DefaultCooldown. It does not change Up:
// the health checker's rise and fall counts do.
func (b *Backend) RecordCheck(nowNanos int64, errMsg string) {
	if errMsg == "" {
		b.lastError.Store(nil)
		if b.ejectedUntil.Load() != 0 {
			b.ejectedUntil.Store(0)
		}
		return
	}
	b.lastError.Store(&errMsg)
	if u := b.ejectedUntil.Load(); u > nowNanos && u < nowNanos+int64(DefaultCooldown) {
		b.ejectedUntil.CompareAndSwap(u, nowNanos+int64(DefaultCooldown))
	}
}

// SetLastCheck records when the last active probe of b finished.
func (b *Backend) SetLastCheck(t time.Time) { b.lastCheck.Store(t.UnixNano()) }

// Proto returns the detected upstream protocol (ProtoUnknown until the
// health checker or a SetProto call sets it).
func (b *Backend) Proto() Proto { return Proto(b.proto.Load()) }

// SetProto records the detected upstream protocol.
func (b *Backend) SetProto(p Proto) { b.proto.Store(uint32(p)) }

// ProxyHeader returns the PROXY protocol version (1 or 2) the backend
// expects at the start of every connection (a route's
// send_proxy_protocol), or 0 for none. Health probes and protocol
// detection then open with a LOCAL (v2) or UNKNOWN (v1) header.
func (b *Backend) ProxyHeader() uint8 { return uint8(b.proxyHeader.Load()) }

// SetProxyHeader records the PROXY protocol version b expects (0, 1 or
// 2); compiling a routing table sets it.
func (b *Backend) SetProxyHeader(v uint8) { b.proxyHeader.Store(uint32(v)) }

// BackendStatus is a point-in-time copy of a Backend's state for the
// status API and `aralez -t`.
type BackendStatus struct {
	// Addr is host:port.
	Addr string
	// Up is the active health state.
	Up bool
	// Ejected is true while the backend is passively ejected.
	Ejected bool
	// Proto is the detected upstream protocol.
	Proto Proto
	// InFlight is the number of requests in progress.
	InFlight int64
	// Requests is the number of requests sent since the Backend was
	// created.
	Requests uint64
	// Failures is the current count of consecutive passive failures.
	Failures uint32
	// Ejections is how many times the backend was passively ejected.
	Ejections uint64
	// LastCheck is when the last active probe finished; zero if never.
	LastCheck time.Time
	// LastError is the error of the last failed active probe; empty
	// after a passing one.
	LastError string
}

// Status returns a copy of the backend's state. The fields are read one
// by one, so they may come from slightly different instants.
func (b *Backend) Status() BackendStatus {
	st := BackendStatus{
		Addr:      b.addr,
		Up:        b.Up(),
		Ejected:   b.ejected(time.Now().UnixNano()),
		Proto:     b.Proto(),
		InFlight:  b.inFlight.Load(),
		Requests:  b.requests.Load(),
		Failures:  b.failures.Load(),
		Ejections: b.ejections.Load(),
	}
	if n := b.lastCheck.Load(); n != 0 {
		st.LastCheck = time.Unix(0, n)
	}
	if e := b.lastError.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// LastCheck returns when the last active probe of b finished; the zero
// time if it never was probed.
func (b *Backend) LastCheck() time.Time {
	if n := b.lastCheck.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Set holds Backends by address so that their state survives config
// reloads: every generation asks the Set for its addresses and gets the
// same Backend for the same address. The zero value is not usable; use
// NewSet. A Set is safe for concurrent use; it takes a mutex, so call it
// when compiling a config, never per request. A Set must not be copied.
type Set struct {
	_ noCopy

	mu sync.Mutex // guards m
	m  map[string]*Backend
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{m: make(map[string]*Backend)}
}

// Get returns the Backend for addr (host:port), creating it (up, not
// ejected, protocol unknown) on first use.
func (s *Set) Get(addr string) *Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m[addr]
	if b == nil {
		b = NewBackend(addr)
		s.m[addr] = b
	}
	return b
}

// Lookup returns the Backend for addr, or nil, without creating one.
func (s *Set) Lookup(addr string) *Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[addr]
}

// Len returns the number of Backends in the Set.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Sweep removes the Backends whose address keep rejects and returns how
// many it removed. Call it after the previous generation has drained:
// a removed Backend keeps working for pools that still hold it, but a
// later Get of its address starts from fresh state. keep is called with
// the Set's mutex held and must not call back into the Set.
func (s *Set) Sweep(keep func(addr string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for addr := range s.m {
		if !keep(addr) {
			delete(s.m, addr)
			n++
		}
	}
	return n
}

// Range calls fn for each Backend in address order until fn returns
// false. It iterates over a copy taken under the mutex, so fn may call
// the Set.
func (s *Set) Range(fn func(*Backend) bool) {
	s.mu.Lock()
	bs := make([]*Backend, 0, len(s.m))
	for _, b := range s.m {
		bs = append(bs, b)
	}
	s.mu.Unlock()
	sort.Slice(bs, func(i, j int) bool { return bs[i].addr < bs[j].addr })
	for _, b := range bs {
		if !fn(b) {
			return
		}
	}
}
