package auth_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/aralez-go/aralez/policy/auth"
)

func ExampleBasic_Check() {
	b, err := auth.NewBasic([]string{"alice:wonderland"})
	if err != nil {
		panic(err)
	}
	client := netip.MustParseAddr("192.0.2.1")
	now := time.Now().UnixNano()
	fmt.Println(b.Check([]byte("Basic YWxpY2U6d29uZGVybGFuZA=="), client, now)) // alice:wonderland
	fmt.Println(b.Check([]byte("Basic YWxpY2U6cmFiYml0"), client, now))         // alice:rabbit
	fmt.Println(b.Check(nil, client, now))
	// Output:
	// ok
	// invalid
	// missing
}

func ExampleBearerToken() {
	fmt.Printf("%s\n", auth.BearerToken([]byte("bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")))
	fmt.Println(auth.BearerToken([]byte("Basic YWxpY2U6d29uZGVybGFuZA==")) == nil)
	// Output:
	// eyJhbGciOiJIUzI1NiJ9.e30.sig
	// true
}

func ExampleAPIKey_Check() {
	a := auth.NewAPIKey("s3cret")
	fmt.Println(a.Check([]byte("s3cret")), a.Check([]byte("guess")), a.Check(nil))
	// Output:
	// ok invalid missing
}
