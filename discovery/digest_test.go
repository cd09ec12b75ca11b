package discovery

import (
	"testing"

	"github.com/aralez-go/aralez/config"
)

// TestDigestLeavesInputAlone: Digest zeroes positions on a deep copy only.
func TestDigestLeavesInputAlone(t *testing.T) {
	up, err := config.ParseUpstreams("a.yaml", []byte("upstreams:\n  a.test:\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:1\"]\n        authorization: {type: apikey, data: k}\n"))
	if err != nil {
		t.Fatal(err)
	}
	Digest(up)
	p := up.Hosts[0].Paths[0]
	if up.Hosts[0].Pos.Line == 0 || p.Pos.Line == 0 || p.Servers[0].Pos.Line == 0 || p.Policy.Authorization.Pos.Line == 0 {
		t.Errorf("Digest changed its input's positions: %+v", p)
	}
}
