//go:build !race

package balancer

import (
	"testing"
	"time"
)

func TestStickyZeroAlloc(t *testing.T) {
	bs := backends(3)
	s := NewSticky([]byte("secret"))
	p := NewPool(members(bs), RoundRobin, false)
	s.Prepare(p, 1)
	buf := make([]byte, 0, MaxStickyValueLen)
	if n := testing.AllocsPerRun(100, func() { buf = s.AppendValue(buf[:0], 1, bs[1]) }); n != 0 {
		t.Fatalf("AppendValue allocs = %v; want 0", n)
	}
	v := s.AppendValue(nil, 1, bs[1])
	if n := testing.AllocsPerRun(100, func() {
		if s.Lookup(p, 1, v, 0) != bs[1] {
			panic("lookup failed")
		}
	}); n != 0 {
		t.Fatalf("Lookup allocs = %v; want 0", n)
	}
	bad := []byte("1.****************")
	if n := testing.AllocsPerRun(100, func() { s.Lookup(p, 1, bad, 0) }); n != 0 {
		t.Fatalf("Lookup(bad base64) allocs = %v; want 0", n)
	}
}

func TestPickZeroAlloc(t *testing.T) {
	for _, kind := range []Kind{RoundRobin, LeastConn, Random} {
		bs := backends(4)
		p := NewPool(members(bs, 3, 1, 2, 1), kind, false)
		bs[0].SetUp(false)
		for range DefaultFailThreshold {
			bs[1].ReportFailure(time.Now().UnixNano())
		}
		if n := testing.AllocsPerRun(100, func() { p.Pick(nil) }); n != 0 {
			t.Fatalf("%v: Pick allocs = %v; want 0", kind, n)
		}
		if n := testing.AllocsPerRun(100, func() { p.Pick(bs[2]) }); n != 0 {
			t.Fatalf("%v: Pick(exclude) allocs = %v; want 0", kind, n)
		}
	}
}
