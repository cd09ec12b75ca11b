package pipeline

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestPresentBit checks the name table behind Request.present: every
// removed name in any case has its own bit, other names none.
func TestPresentBit(t *testing.T) {
	t.Parallel()
	seen := uint32(0)
	for i, n := range presentNames {
		for _, spelling := range []string{n, strings.ToLower(n), strings.ToUpper(n)} {
			if got := presentBit([]byte(spelling)); got != 1<<i {
				t.Errorf("presentBit(%q) = %#x; want %#x", spelling, got, uint32(1)<<i)
			}
		}
		seen |= 1 << i
	}
	if seen != 1<<len(presentNames)-1 {
		t.Errorf("bits %#x; want all %d", seen, len(presentNames))
	}
	for _, n := range []string{"", "X", "Host", "X-Forwarded", "X-Forwarded-Fo", "Connections", "X-Real-IPv6", "Keep-Alive-X", "Upgrade-Insecure-Requests"} {
		if got := presentBit([]byte(n)); got != 0 {
			t.Errorf("presentBit(%q) = %#x; want 0", n, got)
		}
	}
}

// routed returns a request for a.test/x from 192.0.2.7 with the given
// header lines (name, value, ...), through Route and Admit on a one-route
// table, and the pipeline.
func routed(t *testing.T, hdrs ...string) (*Pipeline, *Request, *Decision) {
	t.Helper()
	snap, err := Compile(routeConfig(map[string][]string{"a.test": {"/"}}), newTestResolver())
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{})
	r, d := new(Request), new(Decision)
	r.Reset()
	d.Reset()
	r.Proto = []byte("HTTP/1.1")
	r.Peer = netip.MustParseAddr("192.0.2.7")
	for i := 0; i < len(hdrs); i += 2 {
		if !r.See([]byte(hdrs[i]), []byte(hdrs[i+1])) {
			t.Fatalf("See(%q) refused", hdrs[i])
		}
	}
	if st := p.SetTarget(r, []byte("/x"), []byte("a.test")); st != 0 {
		t.Fatalf("SetTarget = %d", st)
	}
	p.Route(snap, r, d)
	p.Admit(context.Background(), r, d)
	if d.Action != ActForward {
		t.Fatalf("action %d", d.Action)
	}
	return p, r, d
}

// TestPlanRequestDeletesWhatIsPresent: the request plan deletes exactly
// the hop-by-hop and client forwarding headers the request has, in any
// case, and marks the forwarding fields it sets Fresh only when no client
// line of them can be left.
func TestPlanRequestDeletesWhatIsPresent(t *testing.T) {
	t.Parallel()
	plan := func(hdrs ...string) *Plan {
		p, r, d := routed(t, hdrs...)
		pl := new(Plan)
		p.PlanRequest(r, d, pl)
		return pl
	}
	names := func(fs []Field) []string {
		var out []string
		for _, f := range fs {
			out = append(out, strings.ToLower(string(f.Name)))
		}
		slices.Sort(out)
		return out
	}
	fresh := func(pl *Plan, name string) bool {
		for _, f := range pl.Set {
			if strings.EqualFold(string(f.Name), name) {
				return f.Fresh
			}
		}
		t.Fatalf("no Set field %s", name)
		return false
	}

	bare := plan()
	if len(bare.Del) != 0 {
		t.Errorf("a request with none of them: Del %v; want none", names(bare.Del))
	}
	for _, n := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id", "Via"} {
		if !fresh(bare, n) {
			t.Errorf("a request without %s: its Set field is not Fresh", n)
		}
	}

	spoofed := plan("x-real-ip", "6.6.6.6", "FORWARDED", "for=6.6.6.6", "keep-alive", "1",
		"x-forwarded-for", "6.6.6.6", "X-FORWARDED-PREFIX", "/evil", "te", "gzip", "x-request-id", "abc", "via", "1.1 evil")
	want := []string{"forwarded", "keep-alive", "te", "x-forwarded-for", "x-forwarded-prefix", "x-real-ip"}
	if got := names(spoofed.Del); !slices.Equal(got, want) {
		t.Errorf("spoofed headers: Del %v; want %v", got, want)
	}
	if !fresh(spoofed, "X-Forwarded-For") {
		t.Error("untrusted X-Forwarded-For is deleted first: its Set field should be Fresh")
	}
	if fresh(spoofed, "X-Request-Id") || fresh(spoofed, "Via") {
		t.Error("X-Request-Id and Via lines of the client stay until set: not Fresh")
	}
}

// TestPlanResponseDeletesWhatIsSeen: the response plan deletes the
// hop-by-hop names the response has (HeaderSet, any case) and all of
// them for AllHeaders; X-Request-Id is Fresh only when the response has
// none.
func TestPlanResponseDeletesWhatIsSeen(t *testing.T) {
	t.Parallel()
	p, _, dp := routed(t)
	d := *dp
	var seen HeaderSet
	for _, n := range []string{"Content-Type", "keep-alive", "TRANSFER-ENCODING", "x-request-id", "Server"} {
		seen.See([]byte(n))
	}
	var pl Plan
	p.PlanResponse(&d, nil, nil, seen, &pl)
	var got []string
	for _, f := range pl.Del {
		got = append(got, strings.ToLower(string(f.Name)))
	}
	slices.Sort(got)
	if want := []string{"keep-alive", "transfer-encoding"}; !slices.Equal(got, want) {
		t.Errorf("Del %v; want %v", got, want)
	}
	if pl.Set[len(pl.Set)-1].Fresh {
		t.Error("X-Request-Id is in the response: its Set field is Fresh")
	}
	p.PlanResponse(&d, nil, nil, AllHeaders, &pl)
	if len(pl.Del) != len(hopByHop) || pl.Set[len(pl.Set)-1].Fresh {
		t.Errorf("AllHeaders: %d deletions, Fresh %v; want %d, false", len(pl.Del), pl.Set[len(pl.Set)-1].Fresh, len(hopByHop))
	}
	p.PlanResponse(&d, nil, nil, 0, &pl)
	if len(pl.Del) != 0 || !pl.Set[len(pl.Set)-1].Fresh {
		t.Errorf("no names: Del %d, Fresh %v; want 0, true", len(pl.Del), pl.Set[len(pl.Set)-1].Fresh)
	}
}
