package balancer

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

// StickyMACBytes is the length of the truncated HMAC-SHA256 in a sticky
// cookie value (96 bits), before base64url encoding to 16 characters.
const StickyMACBytes = 12

// stickyMACChars is the base64url (unpadded) length of the MAC.
const stickyMACChars = (StickyMACBytes*8 + 5) / 6

// stickyKeyChars is the length of the route key in a sticky value: 16
// lower-case hex digits.
const stickyKeyChars = 16

// MaxStickyValueLen is the length of every value AppendValue produces:
// the 16-digit route key, a dot and the 16-character MAC.
const MaxStickyValueLen = stickyKeyChars + 1 + stickyMACChars

// Sticky signs and checks sticky-session cookie values. A value is
//
//	<routeKey>.<mac>
//
// where routeKey is the route's stable identity (the proxy's route key,
// FNV-1a 64 of its host and path) in 16 lower-case hex digits, and mac is
// the first 12 bytes of HMAC-SHA256(secret, routeKey as 8 big-endian
// bytes || backend address), encoded with unpadded base64url (RFC 4648
// section 5). The value names no address and cannot be forged without
// the secret; it is only valid for the route it was issued for, and stays
// valid across config reloads that keep that route and backend.
//
// A Sticky is immutable and safe for concurrent use; it must not be
// copied.
type Sticky struct {
	_ noCopy

	// ipad and opad are the key blocks of RFC 2104, precomputed so that
	// a MAC costs two SHA-256 sums over stack buffers.
	ipad, opad [sha256.BlockSize]byte
}

// NewSticky returns a Sticky keyed with secret. Secrets longer than 64
// bytes are hashed first (RFC 2104). An empty secret means 32 random
// bytes, so that cookies are valid for the life of the process only.
func NewSticky(secret []byte) *Sticky {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret) // never returns an error (crypto/rand doc)
	}
	var key [sha256.BlockSize]byte
	if len(secret) > sha256.BlockSize {
		sum := sha256.Sum256(secret)
		copy(key[:], sum[:])
	} else {
		copy(key[:], secret)
	}
	s := &Sticky{}
	for i, k := range key {
		s.ipad[i] = k ^ 0x36
		s.opad[i] = k ^ 0x5c
	}
	return s
}

// macStackAddr is the longest address hashed without allocating.
const macStackAddr = 256

// mac returns the truncated HMAC for (routeKey, addr).
func (s *Sticky) mac(routeKey uint64, addr string) [StickyMACBytes]byte {
	var buf [sha256.BlockSize + 8 + macStackAddr]byte
	var msg []byte
	if len(addr) <= macStackAddr {
		msg = buf[:0]
	} else {
		msg = make([]byte, 0, sha256.BlockSize+8+len(addr))
	}
	msg = append(msg, s.ipad[:]...)
	msg = binary.BigEndian.AppendUint64(msg, routeKey)
	msg = append(msg, addr...)
	inner := sha256.Sum256(msg)

	var obuf [sha256.BlockSize + sha256.Size]byte
	copy(obuf[:], s.opad[:])
	copy(obuf[sha256.BlockSize:], inner[:])
	outer := sha256.Sum256(obuf[:])

	var m [StickyMACBytes]byte
	copy(m[:], outer[:])
	return m
}

// AppendValue appends the cookie value binding routeKey to b and returns
// the extended slice. It allocates nothing when dst has room for
// MaxStickyValueLen more bytes and the address is at most 256 bytes.
func (s *Sticky) AppendValue(dst []byte, routeKey uint64, b *Backend) []byte {
	m := s.mac(routeKey, b.addr)
	dst = appendKeyHex(dst, routeKey)
	dst = append(dst, '.')
	return base64.RawURLEncoding.AppendEncode(dst, m[:])
}

const lowerHex = "0123456789abcdef"

// appendKeyHex appends k as 16 lower-case hex digits.
func appendKeyHex(dst []byte, k uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, lowerHex[k>>uint(shift)&15])
	}
	return dst
}

// stickyTable maps the encoded MACs of a pool's members for one
// (Sticky, route). Keeping the base64url text as the key spares Lookup a
// decode; the encoding of 96 bits is canonical, so comparing text is
// comparing MACs.
type stickyTable struct {
	s        *Sticky
	routeKey uint64
	macs     map[[stickyMACChars]byte]*Backend
}

// Prepare computes the MACs of p's members for routeKey so that Lookup
// does not have to (it would, once, on its first call). Call it when
// compiling a config. A pool remembers the table of one (Sticky,
// routeKey) pair at a time; use each pool with one route.
func (s *Sticky) Prepare(p *Pool, routeKey uint64) {
	s.table(p, routeKey)
}

func (s *Sticky) table(p *Pool, routeKey uint64) *stickyTable {
	if t := p.sticky.Load(); t != nil && t.s == s && t.routeKey == routeKey {
		return t
	}
	t := &stickyTable{s: s, routeKey: routeKey, macs: make(map[[stickyMACChars]byte]*Backend, len(p.members))}
	for _, m := range p.members {
		mac := s.mac(routeKey, m.Backend.addr)
		var key [stickyMACChars]byte
		base64.RawURLEncoding.Encode(key[:], mac[:])
		t.macs[key] = m.Backend
	}
	p.sticky.Store(t)
	return t
}

// Lookup returns the member of p that value (a cookie value from
// AppendValue) binds routeKey to, or nil when the value is malformed, was
// issued for another route or with another secret (or in the older
// format naming a route by its position), names no member of p, or names
// a member that is not available at nowNanos (unix nanoseconds; 0 means
// read the clock if needed). It never returns a backend outside p. After
// Prepare (or a first call) it allocates nothing.
//
// A nil result means "no affinity": pick normally and issue a new value.
func (s *Sticky) Lookup(p *Pool, routeKey uint64, value []byte, nowNanos int64) *Backend {
	if len(value) != MaxStickyValueLen || value[stickyKeyChars] != '.' {
		return nil
	}
	var k uint64
	for _, c := range value[:stickyKeyChars] {
		switch {
		case '0' <= c && c <= '9':
			k = k<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			k = k<<4 | uint64(c-'a'+10)
		default:
			return nil // only the canonical form, as AppendValue writes it
		}
	}
	if k != routeKey {
		return nil
	}
	var key [stickyMACChars]byte
	copy(key[:], value[stickyKeyChars+1:])
	b := s.table(p, routeKey).macs[key]
	if b == nil || !p.available(b, nowNanos) {
		return nil
	}
	return b
}
