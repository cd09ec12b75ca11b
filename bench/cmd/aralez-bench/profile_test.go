package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestParsePprofTop(t *testing.T) {
	t.Parallel()
	total, funcs := parsePprofTop(testdata(t, "pprof-top.txt"))
	if math.Abs(total-1.83) > 1e-9 {
		t.Errorf("parsePprofTop total = %v; want 1.83 s", total)
	}
	if len(funcs) != 25 {
		t.Fatalf("parsePprofTop: %d functions; want 25", len(funcs))
	}
	first := funcs[0]
	if first.name != "internal/runtime/syscall/linux.Syscall6" || math.Abs(first.flat-1.08) > 1e-9 || math.Abs(first.cum-1.08) > 1e-9 {
		t.Errorf("parsePprofTop[0] = %+v; want Syscall6, 1.08 s flat and cum", first)
	}
	for _, f := range funcs {
		if f.name == "" || strings.HasSuffix(f.name, "%") {
			t.Errorf("parsePprofTop: bad name %q", f.name)
		}
	}
}

func TestRenderProfiles(t *testing.T) {
	t.Parallel()
	ps := []profileResult{
		{scen: 1, caseID: "h1 100B c50", target: "aralez", path: "profiles/a.pprof", top: "TOP50", requests: 10000, total: 0.4,
			funcs: []pprofFunc{{name: "syscall.Syscall6", flat: 0.2}, {name: "fasthttp.parse", flat: 0.05}}},
		{scen: 1, caseID: "h1 100B c256", target: "aralez", path: "profiles/b.pprof", top: "TOP256", requests: 5000, total: 0.4,
			funcs: []pprofFunc{{name: "syscall.Syscall6", flat: 0.2}, {name: "runtime.findRunnable", flat: 0.1}}},
		{scen: 1, caseID: "h1 100B c50", target: baseName, err: "no config API"},
	}
	var b bytes.Buffer
	renderProfiles(&b, ps)
	out := b.String()
	wantAll(t, "renderProfiles", out,
		"| function | aralez h1 100B c50 | aralez h1 100B c256 |",
		"| **all samples** | **40.00** | **80.00** |",
		"| requests during the profile | 10000 | 5000 |",
		// 0.2 s over 10,000 and 5,000 requests.
		"| `syscall.Syscall6` | 20.00 | 40.00 |",
		"| `fasthttp.parse` | 5.00 | - |",
		"| `runtime.findRunnable` | - | 20.00 |",
		"TOP50", "TOP256")
	if strings.Contains(out, baseName) {
		t.Errorf("renderProfiles shows the failed profile:\n%s", out)
	}
	b.Reset()
	renderProfiles(&b, ps[:1])
	if strings.Contains(b.String(), "side by side") || !strings.Contains(b.String(), "TOP50") {
		t.Errorf("renderProfiles(one profile) = %s; want only its top list", b.String())
	}
}
