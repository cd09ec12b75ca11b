package pipeline

import (
	"strings"
	"testing"
)

// The tests of this file check the routing of path spellings against
// what common backends serve (issue 11): whatever the spelling, a request
// that a backend would serve from under /admin goes through the /admin
// route, or is refused.

// backendView returns the path a backend serves for the path p (no
// query) under a common normalisation: every escape decoded once, a
// decoded "?" or "#" ending the path (a backend that re-parses the
// decoded target), "\" read as "/", each segment's ";parameters" dropped
// when servlet is true (Tomcat, Jetty, Spring), empty segments merged and
// dot-segments resolved. It reports false when the backend would refuse
// the path (a malformed escape).
func backendView(p string, servlet bool) (string, bool) {
	var dec strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", false
			}
			c = unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
		}
		if c == '?' || c == '#' {
			break
		}
		if c == '\\' {
			c = '/'
		}
		dec.WriteByte(c)
	}
	var out []string
	for _, seg := range strings.Split(dec.String(), "/") {
		if servlet {
			seg, _, _ = strings.Cut(seg, ";")
		}
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	return "/" + strings.Join(out, "/"), true
}

// servesAdmin reports whether a backend with either normalisation would
// serve p from under /admin.
func servesAdmin(p string) bool {
	for _, servlet := range []bool{false, true} {
		if v, ok := backendView(p, servlet); ok && (v == "/admin" || strings.HasPrefix(v, "/admin/")) {
			return true
		}
	}
	return false
}

// pathRouter runs SetTarget and Route over a snapshot with the routes "/"
// and "/admin".
type pathRouter struct {
	p    *Pipeline
	snap *Snapshot
	r    Request
	d    Decision
}

func newPathRouter(tb testing.TB) *pathRouter {
	tb.Helper()
	snap, err := Compile(routeConfig(map[string][]string{"app.test": {"/", "/admin"}}), newTestResolver())
	if err != nil {
		tb.Fatal(err)
	}
	return &pathRouter{p: New(Options{}), snap: snap}
}

// check routes the request target path and fails when a backend would
// serve the forwarded path (what it receives) from under /admin while the
// request went through another route.
func (pr *pathRouter) check(tb testing.TB, path string) {
	tb.Helper()
	pr.r.Reset()
	pr.d.Reset()
	pr.r.Proto = strHTTP11
	if pr.p.SetTarget(&pr.r, []byte(path), []byte("app.test")) != 0 {
		return // refused before routing
	}
	pr.p.Route(pr.snap, &pr.r, &pr.d)
	if pr.d.Action != ActForward || pr.d.Route.Prefix == "/admin" {
		return // refused, or routed to /admin
	}
	forwarded := string(pr.r.Path)
	if servesAdmin(forwarded) {
		tb.Errorf("%q: forwarded as %q through route %q; a backend serves it from /admin", path, forwarded, pr.d.Route.Prefix)
	}
}

// pathSpellings are the bypasses and the spellings they combine.
var pathSpellings = []string{
	"/admin;v=1/x", "/admin;x", "/%61dmin;jsessionid=1/x", "/admin%3Bv=1/x",
	"/admin%00/x", "/admin%3F/x", "/admin%23/x", "/public/..;/admin", "/x/..%2Fadmin",
	"/x\\..\\admin", "/%2e%2e/admin", "/admin/..;/x", "/;x/admin", "/admin%2Fx", "/admin%5Cx",
}

// TestRoutePathSpellings routes every combination of a few segment
// spellings (two or three segments, five separators) and the issue's
// bypasses; each must reach /admin or be refused when a backend would
// serve it from /admin.
func TestRoutePathSpellings(t *testing.T) {
	t.Parallel()
	pr := newPathRouter(t)
	segs := []string{"admin", "%61dmin", "admin;v=1", "admin%3Bv", "..", "..;", "%2e%2e", ".;x", "x", "", "x;", "admin%3F", "admin%23"}
	seps := []string{"/", "//", "\\", "%2F", "%5C"}
	n := 0
	for _, a := range segs {
		for _, s1 := range seps {
			for _, b := range segs {
				pr.check(t, "/"+a+s1+b)
				n++
				for _, c := range []string{"admin", "x", "..;"} {
					pr.check(t, "/"+a+s1+b+"/"+c)
					n++
				}
			}
		}
	}
	for _, p := range pathSpellings {
		pr.check(t, p)
	}
	t.Logf("%d spellings routed", n+len(pathSpellings))
}

// FuzzRoutePathSpellings checks the same property on arbitrary paths.
func FuzzRoutePathSpellings(f *testing.F) {
	for _, p := range pathSpellings {
		f.Add(p)
	}
	pr := newPathRouter(f)
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		pr.check(t, p)
	})
}
