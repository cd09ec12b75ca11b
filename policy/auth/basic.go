package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// ErrBasicEntry is returned by NewBasic for an entry that is not
// "user:password" or "user:<bcrypt hash>", or for a repeated user.
var ErrBasicEntry = errors.New("auth: invalid basic entry")

// maxBasicLen bounds the base64 credential Check decodes (after "Basic ").
const maxBasicLen = 4096

// Basic checks HTTP Basic credentials (RFC 7617) against a fixed list of
// users. Verified header values are kept in a bounded cache (DefaultCacheSize
// entries) keyed by a seeded hash of the value, so a hit costs one hash and
// one constant-time comparison and allocates nothing. Failed checks are
// limited per client address (DefaultFailureBurst, then one per
// DefaultFailureInterval); past that, uncached credentials are refused with
// Throttled without running bcrypt. A check reserves its failure before it
// verifies, so a client cannot start more bcrypt runs at once than the
// burst. Safe for concurrent use; must not be
// copied.
type Basic struct {
	_     noCopy
	users map[string]basicUser
	cache *cache
	fails *throttle

	// dummy is a bcrypt hash of a random password at the highest cost in
	// the list, compared against for unknown users so that their checks
	// take as long as those of known ones. Created on first use.
	dummyOnce sync.Once
	dummyCost int
	dummy     []byte
}

type basicUser struct {
	hash  []byte   // bcrypt hash, or nil
	plain [32]byte // SHA-256 of the plain password when hash is nil
}

// NewBasic returns a Basic for entries, each "user:password" (plain text,
// compared in constant time) or "user:$2y$..." (a bcrypt hash as written by
// htpasswd -B; "$2a$" and "$2b$" work too). The user name may not be empty
// or contain ':'; the password may contain ':'. Entries that are malformed,
// have an invalid hash, or repeat a user make it return an error wrapping
// ErrBasicEntry that names the entry index and user but never the
// password.
func NewBasic(entries []string) (*Basic, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no users", ErrBasicEntry)
	}
	b := &Basic{
		users: make(map[string]basicUser, len(entries)),
		cache: newCache(DefaultCacheSize),
		fails: newThrottle(DefaultFailureBurst, DefaultFailureInterval, maxThrottled),
	}
	for i, e := range entries {
		user, secret, ok := strings.Cut(e, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%w: entry %d: want \"user:password\"", ErrBasicEntry, i)
		}
		if _, dup := b.users[user]; dup {
			return nil, fmt.Errorf("%w: entry %d: user %q repeated", ErrBasicEntry, i, user)
		}
		var u basicUser
		if isBcrypt(secret) {
			cost, err := bcrypt.Cost([]byte(secret))
			if err != nil {
				return nil, fmt.Errorf("%w: entry %d: user %q: bcrypt hash: %w", ErrBasicEntry, i, user, err)
			}
			u.hash = []byte(secret)
			b.dummyCost = max(b.dummyCost, cost)
		} else {
			u.plain = sha256.Sum256([]byte(secret))
		}
		b.users[user] = u
	}
	return b, nil
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2y$") || strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$")
}

// Check checks an Authorization header value at nowNanos (Unix time in
// nanoseconds) for a request from client. It returns Missing for an empty
// value, OK for valid credentials, Throttled when client failed too often
// and the credentials are not cached, and Invalid otherwise (another
// scheme, bad base64, no ':', unknown user, wrong password). The scheme
// name is matched case-insensitively. authorization is not retained.
func (b *Basic) Check(authorization []byte, client netip.Addr, nowNanos int64) Result {
	if len(authorization) == 0 {
		return Missing
	}
	cred, ok := cutScheme(authorization, "basic")
	if !ok || len(cred) == 0 || len(cred) > maxBasicLen {
		return Invalid
	}
	if b.cache.get(cred, nowNanos) {
		return OK
	}
	tok := b.fails.take(client, nowNanos)
	if tok == nil {
		return Throttled
	}
	if !b.verify(cred) {
		return Invalid // the token stays spent
	}
	b.fails.refund(tok)
	b.cache.put(cred, 0, nowNanos)
	return OK
}

// verify decodes and checks one credential. It runs bcrypt for bcrypt
// users, and for unknown users when any user has a bcrypt hash.
func (b *Basic) verify(cred []byte) bool {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(cred)))
	n, err := base64.StdEncoding.Decode(raw, cred)
	if err != nil {
		return false
	}
	user, pass, ok := bytes.Cut(raw[:n], []byte{':'})
	if !ok {
		return false
	}
	u, known := b.users[string(user)]
	switch {
	case !known:
		b.burnDummy(pass)
		return false
	case u.hash != nil:
		return bcrypt.CompareHashAndPassword(u.hash, pass) == nil
	default:
		sum := sha256.Sum256(pass)
		return subtle.ConstantTimeCompare(sum[:], u.plain[:]) == 1
	}
}

// burnDummy spends the time of one bcrypt check, so that an unknown user
// cannot be told from a wrong password by timing.
func (b *Basic) burnDummy(pass []byte) {
	if b.dummyCost == 0 {
		return
	}
	b.dummyOnce.Do(func() {
		b.dummy, _ = bcrypt.GenerateFromPassword([]byte("aralez unknown user"), b.dummyCost)
	})
	_ = bcrypt.CompareHashAndPassword(b.dummy, pass)
}

// cutScheme returns the credentials after "<scheme> " in an Authorization
// value (RFC 9110 section 11.4: the scheme is case-insensitive, and one or
// more spaces follow it), with surrounding spaces trimmed.
func cutScheme(authorization []byte, scheme string) ([]byte, bool) {
	if len(authorization) <= len(scheme) || authorization[len(scheme)] != ' ' ||
		!bytes.EqualFold(authorization[:len(scheme)], []byte(scheme)) {
		return nil, false
	}
	return trimSpace(authorization[len(scheme)+1:]), true
}

// trimSpace trims spaces and tabs (HTTP whitespace) from both ends of b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// noCopy makes go vet report copies of the types that embed it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
