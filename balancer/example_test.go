package balancer_test

import (
	"fmt"
	"strings"

	"github.com/aralez-go/aralez/balancer"
)

func ExamplePool_Pick() {
	set := balancer.NewSet()
	a, b := set.Get("10.0.0.1:80"), set.Get("10.0.0.2:80")
	p := balancer.NewPool([]balancer.Member{
		{Backend: a, Weight: 3},
		{Backend: b, Weight: 1},
	}, balancer.RoundRobin, false)
	var order []string
	for range 8 {
		be, _ := p.Pick(nil)
		be.Acquire() // the request is sent
		order = append(order, be.Addr())
		be.Release() // the exchange ended
	}
	fmt.Println(strings.Join(order, " "))

	a.SetUp(false) // as the health checker would
	b.SetUp(false)
	be, panicMode := p.Pick(nil)
	fmt.Println(be != nil, panicMode)
	// Output:
	// 10.0.0.1:80 10.0.0.1:80 10.0.0.2:80 10.0.0.1:80 10.0.0.1:80 10.0.0.1:80 10.0.0.2:80 10.0.0.1:80
	// true true
}

func ExampleSticky() {
	set := balancer.NewSet()
	a := set.Get("10.0.0.1:80")
	p := balancer.NewPool([]balancer.Member{{Backend: a}, {Backend: set.Get("10.0.0.2:80")}}, balancer.RoundRobin, false)
	s := balancer.NewSticky([]byte("a secret of 32 bytes or more...."))
	const routeKey = 0x5ca1ab1e // the proxy's stable route key
	s.Prepare(p, routeKey)

	value := s.AppendValue(nil, routeKey, a) // the cookie value to set
	fmt.Println(string(value))
	fmt.Println(s.Lookup(p, routeKey, value, 0).Addr())
	fmt.Println(s.Lookup(p, routeKey+1, value, 0) == nil)
	// Output:
	// 000000005ca1ab1e.c2LbI1a3vplFUmZR
	// 10.0.0.1:80
	// true
}

func ExampleParseKind() {
	k, err := balancer.ParseKind("least_conn")
	fmt.Println(k, err)
	_, err = balancer.ParseKind("ip_hash")
	fmt.Println(err)
	// Output:
	// least_conn <nil>
	// balancer: unknown load balancing algorithm "ip_hash"
}
