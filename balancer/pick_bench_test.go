package balancer

import (
	"testing"
)

// benchPool is an 8-backend pool with mixed weights, one backend down
// and one backup, as a pick sees it in production.
func benchPool(kind Kind) (*Pool, []*Backend) {
	bs := backends(8)
	ms := members(bs, 5, 3, 2, 1, 1, 1, 1, 1)
	ms[7].Backup = true
	bs[3].SetUp(false)
	return NewPool(ms, kind, false), bs
}

func BenchmarkPick(b *testing.B) {
	for _, kind := range []Kind{RoundRobin, LeastConn, Random} {
		b.Run(kind.String(), func(b *testing.B) {
			p, _ := benchPool(kind)
			b.ReportAllocs()
			for b.Loop() {
				if be, _ := p.Pick(nil); be == nil {
					b.Fatal("Pick(nil) = nil")
				}
			}
		})
		b.Run(kind.String()+"/parallel", func(b *testing.B) {
			p, _ := benchPool(kind)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					be, _ := p.Pick(nil)
					// Acquire and Release as the proxy does, so that
					// least_conn sees moving counts.
					be.Acquire()
					be.Release()
				}
			})
		})
	}
}

func BenchmarkPickExclude(b *testing.B) {
	p, bs := benchPool(RoundRobin)
	b.ReportAllocs()
	for b.Loop() {
		if be, _ := p.Pick(bs[0]); be == bs[0] {
			b.Fatal("Pick returned the excluded backend")
		}
	}
}

func BenchmarkStickyLookup(b *testing.B) {
	p, bs := benchPool(RoundRobin)
	s := NewSticky([]byte("bench secret"))
	s.Prepare(p, 12)
	v := s.AppendValue(nil, 12, bs[2])
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if s.Lookup(p, 12, v, 0) != bs[2] {
				b.Fatal("Lookup failed")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if s.Lookup(p, 12, v, 0) != bs[2] {
					b.Fatal("Lookup failed")
				}
			}
		})
	})
}

func BenchmarkStickyAppendValue(b *testing.B) {
	_, bs := benchPool(RoundRobin)
	s := NewSticky([]byte("bench secret"))
	buf := make([]byte, 0, MaxStickyValueLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendValue(buf[:0], 12, bs[2])
	}
}
