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
	// A deep copy with the positions, file names and warnings zeroed,
	// encoded once: struct fields encode in declaration order and
	// pointers by their values, so the bytes are canonical. (About 70 ms
	// for 10,000 hosts; a JSON round trip through maps took 650 ms.)
	c := up.Clone()
	c.Files, c.Warnings = nil, nil
	clearPolicyPos(&c.Policy)
	for hi := range c.Hosts {
		h := &c.Hosts[hi]
		h.Pos = config.Pos{}
		clearPolicyPos(&h.Policy)
		for pi := range h.Paths {
			p := &h.Paths[pi]
			p.Pos = config.Pos{}
			clearPolicyPos(&p.Policy)
			for si := range p.Servers {
				p.Servers[si].Pos = config.Pos{}
			}
		}
	}
	if c.Consul != nil {
		for i := range c.Consul.Services {
			c.Consul.Services[i].Pos = config.Pos{}
			clearPolicyPos(&c.Consul.Services[i].Policy)
		}
	}
	if c.Kubernetes != nil {
		for i := range c.Kubernetes.Services {
			c.Kubernetes.Services[i].Pos = config.Pos{}
			clearPolicyPos(&c.Kubernetes.Services[i].Policy)
		}
	}
	raw, err := json.Marshal(&c)
	if err != nil {
		// Upstreams is plain data; Marshal cannot fail on it.
		panic("discovery: encoding upstreams for digest: " + err.Error())
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// clearPolicyPos zeroes the position of a policy's authorization block
// (Clone gave the copy its own Auth).
func clearPolicyPos(p *config.Policy) {
	if p.Authorization != nil {
		p.Authorization.Pos = config.Pos{}
	}
}
