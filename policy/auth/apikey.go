package auth

// APIKey checks a shared secret sent in a header (x-api-key). The
// comparison takes time that depends only on the key's length: a value of
// another length is compared against the key itself and then refused, so
// neither the key's content nor its length leaks through timing. Safe for
// concurrent use.
type APIKey struct {
	key []byte
}

// NewAPIKey returns an APIKey that accepts exactly key. An empty key
// accepts nothing.
func NewAPIKey(key string) *APIKey {
	return &APIKey{key: []byte(key)}
}

// Check returns Missing for an empty value, OK when value equals the key
// and Invalid otherwise. It does not allocate and does not retain value.
func (a *APIKey) Check(value []byte) Result {
	if len(value) == 0 {
		return Missing
	}
	sameLen := len(value) == len(a.key)
	if !sameLen {
		value = a.key // same work as a real comparison
	}
	if !ctEqual(a.key, value) || !sameLen || len(a.key) == 0 {
		return Invalid
	}
	return OK
}
