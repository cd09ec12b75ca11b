package pipeline

import (
	"errors"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/policy/auth"
)

// testResolver is a Resolver without connection pools: the Upstream of
// an address is the address itself.
type testResolver struct{ set *balancer.Set }

func newTestResolver() *testResolver { return &testResolver{set: balancer.NewSet()} }

func (r *testResolver) Upstream(addr string, _ PoolOptions) (*balancer.Backend, Upstream) {
	return r.set.Get(addr), addr
}

func (r *testResolver) Sticky(config.Main) *balancer.Sticky {
	return balancer.NewSticky([]byte("test sticky secret"))
}

func (r *testResolver) ForwardAuth(string, auth.ForwardOptions) (ForwardAuthorizer, error) {
	return nil, errors.New("no forward auth in pipeline tests")
}
