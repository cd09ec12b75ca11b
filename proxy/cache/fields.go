package cache

import (
	"encoding/binary"
	"iter"
)

// Fields is an encoded block of header fields: for each field, a 2-byte
// name length, a 4-byte value length (both big-endian), the name and the
// value. Front ends build one with AppendField from their own header
// type, in wire order, without allocating once their buffer has grown;
// the cache stores it as is, so a hit replays the fields by walking
// offsets, never by parsing text. The zero value is an empty block.
type Fields []byte

// fieldHead is the size of a field's length prefix.
const fieldHead = 6

// AppendField appends one header field to dst. Names longer than 65535
// bytes are cut (no real header name is that long; front ends refuse
// such requests long before).
func AppendField(dst Fields, name, value []byte) Fields {
	if len(name) > 0xffff {
		name = name[:0xffff]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(value)))
	dst = append(dst, name...)
	return append(dst, value...)
}

// Next returns the field that starts at offset off and the offset of the
// one after it; next is -1 when off is at the end (or the block is
// truncated). Walk a block with
//
//	for off := 0; ; {
//		name, value, next := f.Next(off)
//		if next < 0 { break }
//		…
//		off = next
//	}
//
// The returned slices alias f.
func (f Fields) Next(off int) (name, value []byte, next int) {
	if off < 0 || off+fieldHead > len(f) {
		return nil, nil, -1
	}
	nl := int(binary.BigEndian.Uint16(f[off:]))
	vl := int(binary.BigEndian.Uint32(f[off+2:]))
	start := off + fieldHead
	end := start + nl + vl
	if end > len(f) || end < start {
		return nil, nil, -1
	}
	return f[start : start+nl], f[start+nl : end], end
}

// Get returns the value of the first field named name (ASCII
// case-insensitive), or nil when there is none.
func (f Fields) Get(name []byte) []byte {
	for off := 0; ; {
		n, v, next := f.Next(off)
		if next < 0 {
			return nil
		}
		if equalFold(n, name) {
			if v == nil {
				return []byte{}
			}
			return v
		}
		off = next
	}
}

// Has reports whether a field named name is present.
func (f Fields) Has(name []byte) bool { return f.Get(name) != nil }

// All returns an iterator over the fields of f, in order. Hot paths walk
// with Next instead, which never allocates.
func (f Fields) All() iter.Seq2[[]byte, []byte] {
	return func(yield func(name, value []byte) bool) {
		for off := 0; ; {
			n, v, next := f.Next(off)
			if next < 0 || !yield(n, v) {
				return
			}
			off = next
		}
	}
}

// Len returns the number of fields in f.
func (f Fields) Len() int {
	n := 0
	for off := 0; ; n++ {
		_, _, next := f.Next(off)
		if next < 0 {
			return n
		}
		off = next
	}
}

// equalFold reports whether a and b are equal under ASCII case folding,
// without allocating (bytes.EqualFold also folds Unicode).
func equalFold[T []byte | string](a []byte, b T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// trimOWS removes optional whitespace (SP, HTAB) around v, RFC 9110 §5.6.3.
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// nextListItem splits the first element off a comma-separated list
// (RFC 9110 §5.6.1), skipping commas inside quoted strings, and returns
// it trimmed with the rest of the list.
func nextListItem(v []byte) (item, rest []byte) {
	inQuote := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			return trimOWS(v[:i]), v[i+1:]
		}
	}
	return trimOWS(v), nil
}
