package pipeline

import (
	"os/exec"
	"strings"
	"testing"
)

// httpStacks are the packages the pipeline must never depend on, even
// transitively (issue 10): with them, a rule could be written against
// one front end's types.
var httpStacks = []string{"net/http", "github.com/valyala/fasthttp", "golang.org/x/net/http2"}

// httpDeps returns the HTTP-stack packages that pkg depends on.
func httpDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Skipf("go list -deps %s: %v (no go command?)", pkg, err)
	}
	var bad []string
	for _, dep := range strings.Fields(string(out)) {
		for _, s := range httpStacks {
			if dep == s || strings.HasPrefix(dep, s+"/") {
				bad = append(bad, dep)
			}
		}
	}
	return bad
}

// TestImportGraphNeutral is make deps's front-end-neutral rule inside
// make test: the pipeline imports no HTTP stack. The same check run on
// the proxy package, which adapts the pipeline to fasthttp and net/http,
// must fail, so the check is known to be able to fail.
func TestImportGraphNeutral(t *testing.T) {
	if bad := httpDeps(t, "github.com/aralez-go/aralez/proxy/pipeline"); len(bad) > 0 {
		t.Errorf("proxy/pipeline depends on %v; want no HTTP stack", bad)
	}
	if bad := httpDeps(t, "github.com/aralez-go/aralez/proxy"); len(bad) == 0 {
		t.Errorf("the check found no HTTP stack under proxy, which imports fasthttp; it cannot fail")
	}
}
