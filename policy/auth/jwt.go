package auth

import (
	"bytes"
	"math"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// DefaultJWTLeeway is the clock skew allowed on exp and nbf when
	// JWTOptions.Leeway is zero.
	DefaultJWTLeeway = 5 * time.Second

	// MaxTokenLen is the longest token Check parses; longer ones are
	// Invalid.
	MaxTokenLen = 8192
)

// JWTOptions configures a JWT. The zero value is usable.
type JWTOptions struct {
	// Leeway is the clock skew allowed when checking exp and nbf. Zero
	// means DefaultJWTLeeway; negative means none.
	Leeway time.Duration

	// CacheSize is the number of verified tokens kept. Zero or negative
	// means DefaultCacheSize.
	CacheSize int
}

// JWT checks JSON Web Tokens signed with HMAC-SHA256 (alg HS256) under one
// key. Every other alg, including "none", HS384, HS512 and the RS/ES/PS
// families, is rejected before any key is used, so a public-key or
// algorithm confusion cannot turn the HMAC key into a verifier for them.
// The exp claim is required; exp and nbf are checked with the leeway; iat,
// iss, aud and sub are not checked.
//
// Valid tokens are cached until exp (plus the leeway) in a bounded cache
// keyed by a seeded hash of the token, holding a copy of it; a hit costs a
// hash and a constant-time comparison and allocates nothing. The cache
// belongs to this JWT, so a token verified under one key never opens a JWT
// with another key. Safe for concurrent use; must not be copied.
type JWT struct {
	_      noCopy
	key    []byte
	leeway time.Duration
	cache  *cache
}

// NewJWT returns a JWT verifying with a copy of key. An empty key accepts
// nothing.
func NewJWT(key []byte, o JWTOptions) *JWT {
	switch {
	case o.Leeway == 0:
		o.Leeway = DefaultJWTLeeway
	case o.Leeway < 0:
		o.Leeway = 0
	}
	return &JWT{
		key:    bytes.Clone(key),
		leeway: o.Leeway,
		cache:  newCache(o.CacheSize),
	}
}

// Check verifies token (the compact serialisation, without "Bearer ") at
// nowNanos, Unix time in nanoseconds. It returns Missing for an empty
// token, OK for a valid one, and Invalid for anything else: malformed,
// another alg, a bad signature, no exp, expired, or not yet valid. token
// is not retained.
func (j *JWT) Check(token []byte, nowNanos int64) Result {
	if len(token) == 0 {
		return Missing
	}
	if len(token) > MaxTokenLen || len(j.key) == 0 {
		return Invalid
	}
	if j.cache.get(token, nowNanos) {
		return OK
	}
	now := time.Unix(0, nowNanos)
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(j.leeway),
		jwt.WithStrictDecoding(), // one spelling per token: no padding bits set
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var claims jwt.RegisteredClaims
	_, err := p.ParseWithClaims(string(token), &claims, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, jwt.ErrTokenSignatureInvalid
		}
		return j.key, nil
	})
	if err != nil || claims.ExpiresAt == nil {
		return Invalid
	}
	exp := int64(math.MaxInt64) // exp beyond 2262 does not fit in nanoseconds
	if limit := time.Unix(0, math.MaxInt64-int64(j.leeway)); claims.ExpiresAt.Before(limit) {
		exp = claims.ExpiresAt.UnixNano() + int64(j.leeway)
	}
	j.cache.put(token, exp, nowNanos)
	return OK
}

// BearerToken returns the token of an Authorization value "Bearer <token>"
// (the scheme is case-insensitive, RFC 6750 section 2.1), or nil when the
// value has another scheme or no token. The result aliases authorization.
func BearerToken(authorization []byte) []byte {
	t, ok := cutScheme(authorization, "bearer")
	if !ok || len(t) == 0 {
		return nil
	}
	return t
}
