package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	keyA = []byte("key A: 32 bytes of test secret!!")
	keyB = []byte("key B: 32 bytes of test secret!!")
)

func at(ns int64) *jwt.NumericDate { return jwt.NewNumericDate(time.Unix(0, ns)) }

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) []byte {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", m.Alg(), err)
	}
	return []byte(s)
}

func TestJWTCheck(t *testing.T) {
	t.Parallel()
	sec := int64(time.Second)
	valid := jwt.RegisteredClaims{Subject: "alice", ExpiresAt: at(t0 + 3600*sec)}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024) // small: only the alg matters
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hs256 := sign(t, jwt.SigningMethodHS256, keyA, valid)
	parts := strings.Split(string(hs256), ".")
	tests := []struct {
		name  string
		token []byte
		want  Result
	}{
		{"valid", hs256, OK},
		{"valid, nbf in the past", sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + sec), NotBefore: at(t0 - sec)}), OK},
		{"expired within the leeway", sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 - sec)}), OK},
		{"nbf within the leeway", sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + 60*sec), NotBefore: at(t0 + sec)}), OK},
		{"empty", nil, Missing},
		{"expired", sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 - 60*sec)}), Invalid},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + 3600*sec), NotBefore: at(t0 + 60*sec)}), Invalid},
		{"missing exp", sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{Subject: "alice"}), Invalid},
		{"wrong key", sign(t, jwt.SigningMethodHS256, keyB, valid), Invalid},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid), Invalid},
		{"alg none, HS256 signature kept", []byte(noneHeader() + "." + parts[1] + "." + parts[2]), Invalid},
		{"HS384 with the same key", sign(t, jwt.SigningMethodHS384, keyA, valid), Invalid},
		{"HS512 with the same key", sign(t, jwt.SigningMethodHS512, keyA, valid), Invalid},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, valid), Invalid},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, valid), Invalid},
		{"tampered claims", []byte(parts[0] + "." + parts[1] + "x." + parts[2]), Invalid},
		{"no signature", []byte(parts[0] + "." + parts[1] + "."), Invalid},
		{"signature with padding bits set", []byte(parts[0] + "." + parts[1] + "." + setPaddingBit(parts[2])), Invalid},
		{"garbage", []byte("not a token"), Invalid},
		{"three garbage parts", []byte("abc.def.ghi"), Invalid},
		{"too long", []byte(strings.Repeat("a", MaxTokenLen+1)), Invalid},
	}
	j := NewJWT(keyA, JWTOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := j.Check(tt.token, t0); got != tt.want {
				t.Errorf("Check(%.40q) = %v; want %v", tt.token, got, tt.want)
			}
		})
	}
}

// setPaddingBit returns sig (unpadded base64url of 32 bytes) with the
// unused low bit of its last character set: the same bytes under a lenient
// decoder.
func setPaddingBit(sig string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, sig[len(sig)-1])
	return sig[:len(sig)-1] + string(alphabet[i|1])
}

// noneHeader is the base64url JOSE header {"alg":"none","typ":"JWT"}.
func noneHeader() string { return "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0" }

func TestJWTCacheHit(t *testing.T) {
	t.Parallel()
	sec := int64(time.Second)
	j := NewJWT(keyA, JWTOptions{Leeway: -1})
	tok := sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + 10*sec)})
	if got := j.Check(tok, t0); got != OK {
		t.Fatalf("Check = %v; want ok", got)
	}
	if j.cache.len() != 1 {
		t.Fatalf("cache holds %d entries after one success; want 1", j.cache.len())
	}
	// Swap the key: only a cache hit can still say OK now.
	j.key = keyB
	if got := j.Check(tok, t0+sec); got != OK {
		t.Fatalf("second Check = %v; want ok from the cache", got)
	}
	// The cache honours exp.
	if got := j.Check(tok, t0+10*sec+1); got != Invalid {
		t.Fatalf("Check after exp = %v; want invalid", got)
	}
	if j.cache.len() != 0 {
		t.Fatalf("cache holds %d entries after exp; want 0", j.cache.len())
	}
}

func TestJWTCacheRespectsLeeway(t *testing.T) {
	t.Parallel()
	sec := int64(time.Second)
	j := NewJWT(keyA, JWTOptions{Leeway: 2 * time.Second})
	tok := sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + 10*sec)})
	if got := j.Check(tok, t0); got != OK {
		t.Fatalf("Check = %v; want ok", got)
	}
	if got := j.Check(tok, t0+12*sec); got != OK {
		t.Fatalf("Check at exp+leeway = %v; want ok", got)
	}
	if got := j.Check(tok, t0+12*sec+1); got != Invalid {
		t.Fatalf("Check after exp+leeway = %v; want invalid", got)
	}
}

func TestJWTKeyIsolation(t *testing.T) {
	t.Parallel()
	a, b := NewJWT(keyA, JWTOptions{}), NewJWT(keyB, JWTOptions{})
	tok := sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: at(t0 + int64(time.Hour))})
	for range 2 { // the second round runs on a's cache
		if got := a.Check(tok, t0); got != OK {
			t.Fatalf("key A: Check(token for A) = %v; want ok", got)
		}
		if got := b.Check(tok, t0); got != Invalid {
			t.Fatalf("key B: Check(token for A) = %v; want invalid", got)
		}
	}
}

func TestJWTEmptyKey(t *testing.T) {
	t.Parallel()
	tok := sign(t, jwt.SigningMethodHS256, []byte("x"), jwt.RegisteredClaims{ExpiresAt: at(t0 + int64(time.Hour))})
	if got := NewJWT(nil, JWTOptions{}).Check(tok, t0); got != Invalid {
		t.Fatalf("Check with an empty key = %v; want invalid", got)
	}
}

func TestJWTFarExp(t *testing.T) {
	t.Parallel()
	j := NewJWT(keyA, JWTOptions{})
	tok := sign(t, jwt.SigningMethodHS256, keyA, jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))})
	for range 2 {
		if got := j.Check(tok, t0); got != OK {
			t.Fatalf("Check(exp in year 3000) = %v; want ok", got)
		}
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		isNil    bool
	}{
		{in: "Bearer abc.def", want: "abc.def"},
		{in: "bearer abc", want: "abc"},
		{in: "BEARER  abc ", want: "abc"},
		{in: "", isNil: true},
		{in: "Bearer", isNil: true},
		{in: "Bearer ", isNil: true},
		{in: "Bearer    ", isNil: true},
		{in: "Bearerabc", isNil: true},
		{in: "Basic abc", isNil: true},
		{in: "Token abc", isNil: true},
	}
	for _, tt := range tests {
		got := BearerToken([]byte(tt.in))
		if tt.isNil && got != nil || !tt.isNil && string(got) != tt.want {
			t.Errorf("BearerToken(%q) = %q; want %q (nil %v)", tt.in, got, tt.want, tt.isNil)
		}
	}
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	a := NewAPIKey("s3cret-key")
	tests := []struct {
		in   string
		want Result
	}{
		{"s3cret-key", OK},
		{"", Missing},
		{"s3cret-ke", Invalid},
		{"s3cret-keyy", Invalid},
		{"S3cret-key", Invalid},
		{"s3cret-key ", Invalid},
	}
	for _, tt := range tests {
		if got := a.Check([]byte(tt.in)); got != tt.want {
			t.Errorf("Check(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
	empty := NewAPIKey("")
	for _, in := range []string{"x", "\x00"} {
		if got := empty.Check([]byte(in)); got != Invalid {
			t.Errorf("empty key: Check(%q) = %v; want invalid", in, got)
		}
	}
}

func TestResultString(t *testing.T) {
	t.Parallel()
	var zero Result
	if zero != Invalid {
		t.Fatalf("zero Result = %v; want invalid (fail closed)", zero)
	}
	for r, want := range map[Result]string{OK: "ok", Missing: "missing", Invalid: "invalid", Throttled: "throttled", 99: "unknown"} {
		if got := r.String(); got != want {
			t.Errorf("Result(%d).String() = %q; want %q", r, got, want)
		}
	}
}
