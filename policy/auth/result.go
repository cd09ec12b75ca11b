package auth

// Result is the outcome of a credential check. The zero value is Invalid,
// so a Result that was never set fails closed.
type Result uint8

const (
	// Invalid means the credential is malformed, unknown, wrong or expired.
	// The proxy answers 401 and does not say which.
	Invalid Result = iota
	// OK means the credential is valid.
	OK
	// Missing means the request carried no credential. The proxy answers
	// 401.
	Missing
	// Throttled means the client failed too many checks recently and this
	// one was refused without verifying it. The proxy answers 429 (or 401;
	// either way nothing was verified).
	Throttled
)

// String returns the lower-case name of r, for logs and metrics labels.
func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case Missing:
		return "missing"
	case Invalid:
		return "invalid"
	case Throttled:
		return "throttled"
	}
	return "unknown"
}
