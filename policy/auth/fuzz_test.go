package auth

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzBasicCheck checks that only the one right credential is accepted,
// whatever the header bytes.
func FuzzBasicCheck(f *testing.F) {
	for _, s := range []string{"Basic YWxpY2U6d29uZGVybGFuZA==", "basic  YWxpY2U6d29uZGVybGFuZA== ", "Basic", "Basic ", "Basic =", "Bearer x", ""} {
		f.Add([]byte(s))
	}
	b, err := NewBasic([]string{"alice:wonderland"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hdr []byte) {
		got := b.Check(hdr, client, t0+time.Now().UnixNano()) // a fresh clock: never throttled for long
		if got != OK {
			return
		}
		cred, _ := cutScheme(hdr, "basic")
		raw, err := base64.StdEncoding.DecodeString(string(cred))
		if err != nil || string(raw) != "alice:wonderland" {
			t.Fatalf("Check(%q) = ok for credentials %q", hdr, raw)
		}
	})
}

// FuzzBearerToken checks that the token is a trimmed, non-empty part of
// the header after a case-insensitive "Bearer ".
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "Bearer", "Bearer ", "Basic abc", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, hdr []byte) {
		tok := BearerToken(hdr)
		if tok == nil {
			return
		}
		if len(tok) == 0 || tok[0] == ' ' || tok[len(tok)-1] == ' ' || !bytes.Contains(hdr, tok) ||
			len(hdr) < 7 || !bytes.EqualFold(hdr[:7], []byte("bearer ")) {
			t.Fatalf("BearerToken(%q) = %q", hdr, tok)
		}
	})
}

// FuzzJWTCheck checks that no token but the one signed with the key is
// accepted.
func FuzzJWTCheck(f *testing.F) {
	valid := sign(f, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + int64(time.Hour))})
	f.Add(valid)
	f.Add(sign(f, jwt.SigningMethodHS512, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + int64(time.Hour))}))
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	f.Add([]byte("a.b.c"))
	j := NewJWT(keyA, JWTOptions{})
	f.Fuzz(func(t *testing.T, tok []byte) {
		if j.Check(tok, t0) == OK && !bytes.Equal(tok, valid) {
			t.Fatalf("Check(%q) = ok; only the signed token may pass", tok)
		}
	})
}
