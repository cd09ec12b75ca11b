package balancer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func TestStickyMACMatchesHMAC(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{"", "k", strings.Repeat("long secret ", 10)} {
		s := NewSticky([]byte(secret))
		if secret == "" {
			continue // random key: nothing to compare with
		}
		for _, addr := range []string{"127.0.0.1:8080", "[::1]:443", strings.Repeat("a", 300) + ":1"} {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write(binary.BigEndian.AppendUint64(nil, 0x2a00f))
			m.Write([]byte(addr))
			want := "000000000002a00f." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:StickyMACBytes])
			got := string(s.AppendValue(nil, 0x2a00f, NewBackend(addr)))
			if got != want {
				t.Errorf("AppendValue(0x2a00f, %.20q) = %q; want %q", addr, got, want)
			}
		}
	}
}

func TestStickyLookup(t *testing.T) {
	t.Parallel()
	bs := backends(4)
	s := NewSticky([]byte("secret"))
	p := NewPool(members(bs[:3]), RoundRobin, false)
	s.Prepare(p, 7)
	val := func(route uint64, b *Backend) []byte { return s.AppendValue(nil, route, b) }

	for _, b := range bs[:3] {
		v := val(7, b)
		if len(v) != MaxStickyValueLen {
			t.Fatalf("len(AppendValue) = %d; want %d", len(v), MaxStickyValueLen)
		}
		if got := s.Lookup(p, 7, v, 0); got != b {
			t.Fatalf("Lookup(%q) = %v; want %s", v, got, b.Addr())
		}
	}
	good := val(7, bs[0])
	other := NewSticky([]byte("other secret"))
	forged := func() []byte { // flip one MAC character
		v := append([]byte(nil), good...)
		if v[len(v)-3] == 'A' {
			v[len(v)-3] = 'B'
		} else {
			v[len(v)-3] = 'A'
		}
		return v
	}()
	tests := []struct {
		name  string
		value []byte
	}{
		{name: "empty", value: nil},
		{name: "no dot", value: []byte("7")},
		{name: "no route", value: good[16:]},
		{name: "route not hex", value: append([]byte("000000000000000x"), good[16:]...)},
		{name: "route upper-case hex", value: append([]byte("000000000000000A"), good[16:]...)},
		{name: "route too long", value: append([]byte("0"), good...)},
		{name: "route too short", value: good[1:]},
		{name: "older format (position)", value: append([]byte("7"), good[16:]...)},
		{name: "short mac", value: good[:len(good)-1]},
		{name: "long mac", value: append(append([]byte(nil), good...), 'A')},
		{name: "bad base64", value: append(append([]byte(nil), good[:len(good)-1]...), '*')},
		{name: "newline in mac", value: append(append([]byte(nil), good[:len(good)-1]...), '\n')},
		{name: "forged", value: forged},
		{name: "other route", value: val(8, bs[0])},
		{name: "other secret", value: other.AppendValue(nil, 7, bs[0])},
		{name: "not a member", value: val(7, bs[3])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Lookup(p, 7, tt.value, 0); got != nil {
				t.Fatalf("Lookup(%q) = %s; want nil", tt.value, got.Addr())
			}
		})
	}

	// A backend removed from the route's new pool is no longer returned.
	p2 := NewPool(members(bs[1:3]), RoundRobin, false)
	if got := s.Lookup(p2, 7, good, 0); got != nil {
		t.Fatalf("Lookup(removed backend) = %s; want nil", got.Addr())
	}
	// Dead and ejected backends are not returned.
	bs[1].SetUp(false)
	if got := s.Lookup(p, 7, val(7, bs[1]), 0); got != nil {
		t.Fatalf("Lookup(down backend) = %s; want nil", got.Addr())
	}
	now := time.Now().UnixNano()
	for range DefaultFailThreshold {
		bs[2].ReportFailure(now)
	}
	if got := s.Lookup(p, 7, val(7, bs[2]), now); got != nil {
		t.Fatalf("Lookup(ejected backend) = %s; want nil", got.Addr())
	}
	if got := s.Lookup(p, 7, val(7, bs[2]), now+int64(DefaultCooldown)); got != bs[2] {
		t.Fatalf("Lookup(after cooldown) = %v; want %s", got, bs[2].Addr())
	}
	// The same pool used with another route key recomputes its table.
	if got := s.Lookup(p, 8, val(8, bs[0]), 0); got != bs[0] {
		t.Fatalf("Lookup(route 8) = %v; want %s", got, bs[0].Addr())
	}
}
