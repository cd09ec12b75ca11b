package balancer

import "testing"

// FuzzStickyLookup checks that no cookie value panics Lookup or yields a
// backend outside the pool, and that only the issued values are
// accepted.
func FuzzStickyLookup(f *testing.F) {
	bs := backends(4)
	s := NewSticky([]byte("fuzz secret"))
	p := NewPool(members(bs[:3]), RoundRobin, false)
	s.Prepare(p, 3)
	valid := make(map[string]*Backend)
	for _, b := range bs[:3] {
		v := s.AppendValue(nil, 3, b)
		valid[string(v)] = b
		f.Add(v)
	}
	f.Add(s.AppendValue(nil, 3, bs[3]))
	f.Add(s.AppendValue(nil, 4, bs[0]))
	f.Add([]byte(""))
	f.Add([]byte("."))
	f.Add([]byte("3."))
	f.Add([]byte("3.AAAAAAAAAAAAAAAA"))
	f.Add([]byte("0000000000000003.AAAAAAAAAAAAAAAA"))
	f.Add([]byte("1000000000000003.AAAAAAAAAAAAAAAA"))
	f.Fuzz(func(t *testing.T, value []byte) {
		b := s.Lookup(p, 3, value, 0)
		if b == nil {
			if want := valid[string(value)]; want != nil {
				t.Fatalf("Lookup(%q) = nil; want %s", value, want.Addr())
			}
			return
		}
		if !p.Contains(b) {
			t.Fatalf("Lookup(%q) = %s, not a member of the pool", value, b.Addr())
		}
		if want := valid[string(value)]; want != b {
			t.Fatalf("Lookup(%q) = %s; want nil for a value that was never issued", value, b.Addr())
		}
	})
}
