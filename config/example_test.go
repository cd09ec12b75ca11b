package config_test

import (
	"errors"
	"fmt"

	"github.com/aralez-go/aralez/config"
)

func ExampleParseUpstreams() {
	u, err := config.ParseUpstreams("upstreams.yaml", []byte(`
upstreams:
  app.example.com:
    paths:
      "/api":
        servers: ["10.0.0.1:8080 weight=3", "10.0.0.2:8080 backup"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range u.Hosts[0].Paths[0].Servers {
		fmt.Println(s.Address, s.Weight, s.Backup)
	}
	// Output:
	// 10.0.0.1:8080 3 false
	// 10.0.0.2:8080 1 true
}

func ExampleErrorList() {
	_, err := config.ParseUpstreams("upstreams.yaml", []byte(`rate_limit: 0
upstreams:
  app.example.com:
    paths:
      "/api":
        servers: ["10.0.0.1"]
        to_https: yes
`))
	fmt.Println(err)
	var el config.ErrorList
	if errors.As(err, &el) {
		fmt.Println(len(el), "errors; first at line", el[0].Pos.Line)
	}
	// Output:
	// upstreams.yaml:1:13: rate_limit: must be a positive integer, got 0
	// upstreams.yaml:6:19: upstreams.app.example.com.paths./api.servers[0]: invalid address "10.0.0.1": missing port; want host:port
	// upstreams.yaml:7:19: upstreams.app.example.com.paths./api.to_https: want true or false, got "yes"
	// 3 errors; first at line 1
}
