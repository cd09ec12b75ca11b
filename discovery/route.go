package discovery

import (
	"errors"
	"strconv"
	"strings"

	"github.com/aralez-go/aralez/config"
)

// checkRoute runs the routing table's own validation on one discovered
// route, plus the normal-form rule of checkNormalPath, so that a bad
// value from a tag or an annotation is refused here, for its object
// alone, rather than failing the whole table when it is compiled.
func checkRoute(host string, p config.Path) error {
	if len(p.Servers) == 0 {
		p.Servers = []config.Server{{Address: "127.0.0.1:1", Weight: 1}}
	}
	up := config.Upstreams{Provider: "file", Hosts: []config.Host{{Name: host, Paths: []config.Path{p}}}}
	if err := up.Validate(); err != nil {
		return err
	}
	return checkNormalPath(p.Prefix)
}

// checkNormalPath refuses a path that the proxy's request-path
// normalization would rewrite, so a route on it could never match: one
// with a percent-encoding, an empty segment ("//"), a dot-segment
// ("/./", "/../") or a ";parameter" (routes match paths without them).
// Kubernetes itself refuses most of these in Exact and Prefix paths.
func checkNormalPath(p string) error {
	bad := strings.ContainsAny(p, "%;") || strings.Contains(p, "//")
	for seg := range strings.SplitSeq(p, "/") {
		bad = bad || seg == "." || seg == ".."
	}
	if bad {
		return errors.New("path " + strconv.Quote(p) + " is not in normal form: no percent-encoding, \";\", \"//\", \".\" or \"..\" segments")
	}
	return nil
}
