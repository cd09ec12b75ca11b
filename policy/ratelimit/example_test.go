package ratelimit_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/aralez-go/aralez/policy/ratelimit"
)

func ExampleLimiter_Allow() {
	l := ratelimit.New(ratelimit.Options{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	k := ratelimit.MakeKey(netip.MustParseAddr("192.0.2.1"), 0xbeef, 0)
	for i := range 4 {
		ok, retryAfter := l.Allow(k, 3, now) // rate_limit: 3
		fmt.Println(i+1, ok, retryAfter)
	}
	ok, _ := l.Allow(k, 3, now+int64(400*time.Millisecond)) // a token is back after 1/3 s
	fmt.Println("later", ok)
	// Output:
	// 1 true 0
	// 2 true 0
	// 3 true 0
	// 4 false 1
	// later true
}

func ExampleLimiter_Blocked() {
	l := ratelimit.New(ratelimit.Options{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	k := ratelimit.MakeKey(netip.MustParseAddr("2001:db8::1"), 0xbeef, 0)
	for range 3 {
		l.Count4xx(k, now) // three upstream 404s
	}
	fmt.Println(l.Blocked(k, 2, now)) // x4xx_limit: 2
	fmt.Println(l.Blocked(k, 2, now+int64(time.Second)))
	// Output:
	// true 1
	// false 0
}
