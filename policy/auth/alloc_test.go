//go:build !race

package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestHotPathAllocs guards the zero-allocation contract of cache hits and
// API key checks (the race detector allocates, hence the build tag).
func TestHotPathAllocs(t *testing.T) {
	b, err := NewBasic([]string{bcryptEntry(t, "bob", "builder", "$2y$")})
	if err != nil {
		t.Fatal(err)
	}
	basic := basicHeader("bob:builder")
	if b.Check(basic, client, t0) != OK {
		t.Fatal("Basic.Check != ok")
	}
	j := NewJWT(keyA, JWTOptions{})
	bearer := append([]byte("Bearer "), sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + int64(time.Hour))})...)
	if j.Check(BearerToken(bearer), t0) != OK {
		t.Fatal("JWT.Check != ok")
	}
	a := NewAPIKey("k3y")
	key := []byte("k3y")
	tests := []struct {
		name string
		f    func()
	}{
		{"Basic cache hit", func() { b.Check(basic, client, t0) }},
		{"Basic missing", func() { b.Check(nil, client, t0) }},
		{"JWT cache hit", func() { j.Check(BearerToken(bearer), t0) }},
		{"APIKey", func() { a.Check(key) }},
		{"APIKey wrong", func() { a.Check(basic) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
			t.Errorf("%s: AllocsPerRun = %v; want 0", tt.name, n)
		}
	}
}
