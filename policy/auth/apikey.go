package auth

import (
	"crypto/sha256"
	"crypto/subtle"
)

// APIKey checks a shared secret sent in a header (x-api-key). It compares
// SHA-256 digests in constant time, so neither the content nor the length
// of the key leaks through timing. Safe for concurrent use.
type APIKey struct {
	sum   [32]byte
	empty bool
}

// NewAPIKey returns an APIKey that accepts exactly key. An empty key
// accepts nothing.
func NewAPIKey(key string) *APIKey {
	return &APIKey{sum: sha256.Sum256([]byte(key)), empty: key == ""}
}

// Check returns Missing for an empty value, OK when value equals the key
// and Invalid otherwise. It does not allocate and does not retain value.
func (a *APIKey) Check(value []byte) Result {
	if len(value) == 0 {
		return Missing
	}
	sum := sha256.Sum256(value)
	if subtle.ConstantTimeCompare(sum[:], a.sum[:]) != 1 || a.empty {
		return Invalid
	}
	return OK
}
