package main

import (
	"slices"
	"testing"

	"github.com/aralez-go/aralez/config"
)

// TestKeylessJWTRoutes checks which routes the start warning names: those
// a keyless jwt authorization covers, not a redirect_to route, which
// answers its redirect before authorization runs.
func TestKeylessJWTRoutes(t *testing.T) {
	t.Parallel()
	const doc = `authorization: {type: jwt}
upstreams:
  a.test:
    paths:
      "/":
        servers: ["127.0.0.1:9001"]
      "/old":
        redirect_to: "https://b.test"
      "/open":
        servers: ["127.0.0.1:9001"]
        authorization: {type: basic, data: ["u:p"]}
`
	up, err := config.ParseUpstreams("u.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Upstreams: *up}
	if got, want := keylessJWTRoutes(cfg), []string{"a.test /"}; !slices.Equal(got, want) {
		t.Errorf("keylessJWTRoutes = %q; want %q", got, want)
	}
	cfg.Main.MasterKey = "k"
	if got := keylessJWTRoutes(cfg); len(got) != 0 {
		t.Errorf("keylessJWTRoutes with a master key = %q; want none", got)
	}
}
