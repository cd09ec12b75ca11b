package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func BenchmarkBasicCacheHit(b *testing.B) {
	bs, err := NewBasic([]string{"alice:wonderland", bcryptEntry(b, "bob", "builder", "$2y$")})
	if err != nil {
		b.Fatal(err)
	}
	h := basicHeader("bob:builder")
	if got := bs.Check(h, client, t0); got != OK {
		b.Fatalf("Check = %v; want ok", got)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if bs.Check(h, client, t0) != OK {
				b.Error("Check != ok")
				return
			}
		}
	})
}

func BenchmarkAPIKeyCheck(b *testing.B) {
	a := NewAPIKey("0123456789abcdef0123456789abcdef")
	v := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if a.Check(v) != OK {
				b.Error("Check != ok")
				return
			}
		}
	})
}

func BenchmarkJWTCachedCheck(b *testing.B) {
	j := NewJWT(keyA, JWTOptions{})
	tok := sign(b, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{Subject: "alice", ExpiresAt: at(t0 + int64(time.Hour))})
	hdr := append([]byte("Bearer "), tok...)
	if got := j.Check(tok, t0); got != OK {
		b.Fatalf("Check = %v; want ok", got)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if j.Check(BearerToken(hdr), t0) != OK {
				b.Error("Check != ok")
				return
			}
		}
	})
}

// BenchmarkJWTUncachedCheck is the cost the cache saves: a full parse and
// HMAC verification per request.
func BenchmarkJWTUncachedCheck(b *testing.B) {
	tok := sign(b, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{Subject: "alice", ExpiresAt: at(t0 + int64(time.Hour))})
	b.ReportAllocs()
	for b.Loop() {
		j := JWT{key: keyA, leeway: DefaultJWTLeeway, cache: newCache(1)}
		if j.Check(tok, t0) != OK {
			b.Fatal("Check != ok")
		}
	}
}
