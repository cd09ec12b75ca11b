package discovery

import (
	"encoding/hex"

	"github.com/aralez-go/aralez/config"
)

// Digest identifies a routing table by what it routes: 16 hex digits of
// its config.Sum, a SHA-256 over a canonical encoding that leaves out
// where things were written (every Pos, Files), Warnings and Stats. The
// same table therefore has the same digest whether it was pushed to the
// API (file "<api>"), read from upstreams.yaml or conf.d, or read again
// after a save, and a reload loop can skip a table whose digest equals
// the running one. Pointer fields are compared by the values they point
// to. A nil up gives "".
//
// It costs under 1 µs per host and does not modify up; call it once per
// reload, not per request.
func Digest(up *config.Upstreams) string {
	if up == nil {
		return ""
	}
	return DigestSum(up.Sum())
}

// DigestSum is Digest of a table whose config.Sum is known: a compiled
// snapshot records it (pipeline.Snapshot.Sum).
func DigestSum(sum config.Sum) string { return hex.EncodeToString(sum[:8]) }
