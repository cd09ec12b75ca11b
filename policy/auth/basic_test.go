package auth

import (
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// t0 is an arbitrary Unix time in nanoseconds.
const t0 = int64(1_800_000_000) * int64(time.Second)

var client = netip.MustParseAddr("192.0.2.10")

func basicHeader(userPass string) []byte {
	return []byte("Basic " + base64.StdEncoding.EncodeToString([]byte(userPass)))
}

// bcryptEntry returns "user:<hash>" with the hash at bcrypt.MinCost and its
// version prefix replaced by prefix ("$2a$", "$2b$" or "$2y$").
func bcryptEntry(t testing.TB, user, pass, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + prefix + string(h[4:])
}

func TestNewBasicErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []string
		want    string // substring of the error
	}{
		{"no users", nil, "no users"},
		{"no colon", []string{"alice"}, "entry 0"},
		{"empty user", []string{":secret"}, "entry 0"},
		{"repeated user", []string{"alice:a", "bob:b", "alice:c"}, `entry 2: user "alice" repeated`},
		{"bad bcrypt hash", []string{"alice:$2y$10$tooshort"}, `entry 0: user "alice": bcrypt hash`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewBasic(tt.entries)
			if err == nil || !errors.Is(err, ErrBasicEntry) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewBasic(%q) = %v; want ErrBasicEntry containing %q", tt.entries, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "tooshort") {
				t.Fatalf("NewBasic error %q reveals the password", err)
			}
		})
	}
}

func TestBasicCheck(t *testing.T) {
	t.Parallel()
	b, err := NewBasic([]string{
		"alice:wonderland",
		"colon:pa:ss:word",
		bcryptEntry(t, "bob", "builder", "$2y$"),
		bcryptEntry(t, "carol", "c4r0l", "$2a$"),
		bcryptEntry(t, "dave", "d4ve", "$2b$"),
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header []byte
		want   Result
	}{
		{"plain", basicHeader("alice:wonderland"), OK},
		{"plain, password with colons", basicHeader("colon:pa:ss:word"), OK},
		{"bcrypt $2y$", basicHeader("bob:builder"), OK},
		{"bcrypt $2a$", basicHeader("carol:c4r0l"), OK},
		{"bcrypt $2b$", basicHeader("dave:d4ve"), OK},
		{"lower-case scheme", []byte("basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))), OK},
		{"extra spaces", []byte("Basic   " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland")) + " "), OK},
		{"missing", nil, Missing},
		{"empty", []byte{}, Missing},
		{"wrong plain password", basicHeader("alice:wonderlan"), Invalid},
		{"plain password prefix", basicHeader("alice:wonderlandx"), Invalid},
		{"wrong bcrypt password", basicHeader("bob:builders"), Invalid},
		{"unknown user", basicHeader("mallory:wonderland"), Invalid},
		{"user case matters", basicHeader("Alice:wonderland"), Invalid},
		{"empty password", basicHeader("alice:"), Invalid},
		{"no colon", basicHeader("alicewonderland"), Invalid},
		{"bad base64", []byte("Basic !!!!"), Invalid},
		{"scheme only", []byte("Basic"), Invalid},
		{"scheme and space only", []byte("Basic "), Invalid},
		{"other scheme", []byte("Bearer " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))), Invalid},
		{"scheme without space", []byte("Basicxx"), Invalid},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A fresh address per case: failures must not throttle others.
			c := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
			if got := b.Check(tt.header, c, t0); got != tt.want {
				t.Errorf("Check(%q) = %v; want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestBasicCacheHit(t *testing.T) {
	t.Parallel()
	b, err := NewBasic([]string{bcryptEntry(t, "bob", "builder", "$2y$")})
	if err != nil {
		t.Fatal(err)
	}
	h := basicHeader("bob:builder")
	if got := b.Check(h, client, t0); got != OK {
		t.Fatalf("Check = %v; want ok", got)
	}
	if b.cache.len() != 1 {
		t.Fatalf("cache holds %d entries after one success; want 1", b.cache.len())
	}
	// Break the stored hash: only a cache hit can still say OK now.
	b.users["bob"] = basicUser{hash: []byte("$2y$04$invalidinvalidinvalidinvalidinvalidinvalidinvalidinv")}
	if got := b.Check(h, client, t0); got != OK {
		t.Fatalf("second Check = %v; want ok from the cache", got)
	}
	if got := b.Check(basicHeader("bob:wrong"), client, t0); got != Invalid {
		t.Fatalf("Check(wrong password) = %v; want invalid: failures must not be cached", got)
	}
}

func TestBasicThrottle(t *testing.T) {
	t.Parallel()
	b, err := NewBasic([]string{"alice:wonderland", bcryptEntry(t, "bob", "builder", "$2y$")})
	if err != nil {
		t.Fatal(err)
	}
	good, cached := basicHeader("bob:builder"), basicHeader("alice:wonderland")
	if got := b.Check(cached, client, t0); got != OK {
		t.Fatalf("Check(alice) = %v; want ok", got)
	}
	for i := range DefaultFailureBurst {
		if got := b.Check(basicHeader("bob:guess"), client, t0); got != Invalid {
			t.Fatalf("failure %d: Check = %v; want invalid", i+1, got)
		}
	}
	if got := b.Check(basicHeader("bob:guess"), client, t0); got != Throttled {
		t.Fatalf("Check after %d failures = %v; want throttled", DefaultFailureBurst, got)
	}
	if got := b.Check(good, client, t0); got != Throttled {
		t.Fatalf("Check(right, uncached password) while throttled = %v; want throttled (no bcrypt run)", got)
	}
	if got := b.Check(cached, client, t0); got != OK {
		t.Fatalf("Check(cached credentials) while throttled = %v; want ok", got)
	}
	if got := b.Check(basicHeader("bob:guess"), client, t0); got != Throttled {
		t.Fatalf("Check = %v; want throttled", got)
	}
	other := netip.MustParseAddr("192.0.2.11")
	if got := b.Check(good, other, t0); got != OK {
		t.Fatalf("Check from another client = %v; want ok", got)
	}
	// IPv4-mapped is the same client.
	if got := b.Check(basicHeader("bob:guess"), netip.MustParseAddr("::ffff:192.0.2.10"), t0); got != Throttled {
		t.Fatalf("Check from the IPv4-mapped address = %v; want throttled", got)
	}
	// One failure is earned back per DefaultFailureInterval.
	later := t0 + int64(DefaultFailureInterval)
	if got := b.Check(good, client, later); got != OK {
		t.Fatalf("Check(right password) one interval later = %v; want ok", got)
	}
}

func TestBasicThrottleIPv6Slash64(t *testing.T) {
	t.Parallel()
	b, err := NewBasic([]string{"alice:wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range DefaultFailureBurst {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
		b.Check(basicHeader("alice:guess"), a, t0)
	}
	sameNet := netip.MustParseAddr("2001:db8::ffff")
	if got := b.Check(basicHeader("alice:wonderland"), sameNet, t0); got != Throttled {
		t.Fatalf("Check from the same /64 = %v; want throttled", got)
	}
	if got := b.Check(basicHeader("alice:wonderland"), netip.MustParseAddr("2001:db8:0:1::1"), t0); got != OK {
		t.Fatalf("Check from another /64 = %v; want ok", got)
	}
}

func TestThrottleOverflow(t *testing.T) {
	t.Parallel()
	const interval = int64(time.Second)
	th := newThrottle(1, time.Second, 2)
	a, b, c, d := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"),
		netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")
	for _, x := range []netip.Addr{a, b} {
		if th.take(x, t0) == nil {
			t.Fatalf("take(%v) first time = nil; want a token", x)
		}
		if th.take(x, t0) != nil {
			t.Fatalf("take(%v) second time with burst 1 = token; want nil", x)
		}
	}
	// The table is full: c goes to the shared overflow bucket, and so does d.
	if th.take(c, t0) == nil {
		t.Fatalf("take(c) = nil; want the overflow token")
	}
	if th.n.Load() != 2 {
		t.Fatalf("tracked clients = %d; want 2 (the cap)", th.n.Load())
	}
	if th.take(d, t0) != nil {
		t.Fatalf("take(d) after c spent the overflow bucket = token; want nil")
	}
	// Once a and b recovered, a new client prunes them and is tracked alone.
	later := t0 + 2*interval
	if th.take(d, later) == nil || th.take(d, later) != nil {
		t.Fatalf("take(d) twice after recovery: want a token, then nil")
	}
	if th.n.Load() != 1 {
		t.Fatalf("tracked clients after prune = %d; want 1", th.n.Load())
	}
	if th.take(a, later) == nil {
		t.Fatalf("take(a) after recovery = nil; want a token")
	}
}

func TestThrottleRefund(t *testing.T) {
	t.Parallel()
	th := newThrottle(2, time.Second, 16)
	for i := range 10 {
		tok := th.take(client, t0)
		if tok == nil {
			t.Fatalf("take %d with refunds = nil; want a token", i)
		}
		th.refund(tok)
	}
}

// TestBasicConcurrentGuessesBounded sends many wrong passwords at once
// from one client: no more than DefaultFailureBurst of them may be
// verified, the others are Throttled.
func TestBasicConcurrentGuessesBounded(t *testing.T) {
	t.Parallel()
	b, err := NewBasic([]string{bcryptEntry(t, "bob", "builder", "$2y$")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[Result]int{}
	for range 40 {
		wg.Go(func() {
			r := b.Check(basicHeader("bob:guess"), client, t0)
			mu.Lock()
			counts[r]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[Invalid] != DefaultFailureBurst || counts[Throttled] != 40-DefaultFailureBurst {
		t.Fatalf("results = %v; want %d invalid, %d throttled", counts, DefaultFailureBurst, 40-DefaultFailureBurst)
	}
}

func TestBasicConcurrent(t *testing.T) {
	t.Parallel()
	b, err := NewBasic([]string{"alice:wonderland", bcryptEntry(t, "bob", "builder", "$2y$")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c := netip.AddrFrom4([4]byte{10, 9, 0, byte(i)})
			for range 50 {
				if got := b.Check(basicHeader("bob:builder"), c, t0); got != OK {
					t.Errorf("Check(bob) = %v; want ok", got)
					return
				}
				if got := b.Check(basicHeader("alice:wonderland"), c, t0); got != OK {
					t.Errorf("Check(alice) = %v; want ok", got)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.cache.len() != 2 {
		t.Fatalf("cache holds %d entries; want 2", b.cache.len())
	}
}

func TestCacheBound(t *testing.T) {
	t.Parallel()
	c := newCache(16)
	for i := range 100 {
		c.put([]byte{byte(i), 'x'}, 0, t0)
		if c.len() > 16 || c.m.Size() > 16 {
			t.Fatalf("after %d puts: len %d, map size %d; want at most 16", i+1, c.len(), c.m.Size())
		}
		if !c.get([]byte{byte(i), 'x'}, t0) {
			t.Fatalf("get(just put %d) = false; want true", i)
		}
	}
	// Expired entries are dropped on read and go first on eviction.
	c.put([]byte("short"), t0+10, t0)
	if c.get([]byte("short"), t0+11) {
		t.Fatalf("get(expired) = true; want false")
	}
	if c.get([]byte("shor"), t0) || c.get([]byte("shortt"), t0) {
		t.Fatalf("get(prefix or extension of a key) = true; want false")
	}
}
