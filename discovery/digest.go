package discovery

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/aralez-go/aralez/config"
)

// Digest identifies a routing table by what it routes: 16 hex digits of
// a SHA-256 over a canonical encoding of up that leaves out where things
// were written (every Pos, Files) and Warnings. The same table therefore
// has the same digest whether it was pushed to the API (file "<api>"),
// read from upstreams.yaml, or read again after a save, and a reload
// loop can skip a table whose digest equals the running one. Pointer
// fields are compared by the values they point to. A nil up gives "".
//
// It allocates; call it once per reload, not per request.
func Digest(up *config.Upstreams) string {
	if up == nil {
		return ""
	}
	raw, err := json.Marshal(up)
	if err != nil {
		// Upstreams is plain data; Marshal cannot fail on it.
		panic("discovery: encoding upstreams for digest: " + err.Error())
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		panic("discovery: decoding upstreams for digest: " + err.Error())
	}
	if m, ok := tree.(map[string]any); ok {
		delete(m, "Files")
		delete(m, "Warnings")
	}
	tree = stripPos(tree)
	// Maps encode with sorted keys, so the bytes are canonical.
	canon, _ := json.Marshal(tree)
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:8])
}

// stripPos removes every "Pos" key at any depth.
func stripPos(v any) any {
	switch t := v.(type) {
	case map[string]any:
		delete(t, "Pos")
		for k, e := range t {
			t[k] = stripPos(e)
		}
	case []any:
		for i, e := range t {
			t[i] = stripPos(e)
		}
	}
	return v
}
