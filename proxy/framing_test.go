package proxy

import (
	"errors"
	"testing"
)

// scanAll runs a fresh framer over the pieces of in split at the given
// offsets and returns the absolute offset of the first framing error (or
// -1), the error, and the framer.
func scanAll(in []byte, splits ...int) (int, error, *framer) {
	f := &framer{}
	f.startHead()
	prev := 0
	for _, end := range append(splits, len(in)) {
		if end < prev || end > len(in) {
			continue
		}
		k, err := f.scan(in[prev:end])
		if err != nil {
			return prev + k, err, f
		}
		prev = end
	}
	return -1, nil, f
}

// FuzzFramerSplit: the framing check decides the same whatever the reads
// the bytes arrive in (issue 11).
func FuzzFramerSplit(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na\nbGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\na\nb\r\n0\r\nT: 1\r\n\r\nGET /\n",
		"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\n Folded: x\r\n\r\n\n\n",
	} {
		f.Add([]byte(s), uint16(7), uint16(30))
	}
	f.Fuzz(func(t *testing.T, in []byte, a, b uint16) {
		i, j := int(a)%(len(in)+1), int(b)%(len(in)+1)
		if i > j {
			i, j = j, i
		}
		off1, err1, f1 := scanAll(in)
		off2, err2, f2 := scanAll(in, i, j)
		if off1 != off2 || !errors.Is(err1, err2) && !errors.Is(err2, err1) || f1.state != f2.state || f1.seq != f2.seq {
			t.Fatalf("%q: whole: error %v at %d, state %d, seq %d; split at %d, %d: error %v at %d, state %d, seq %d",
				in, err1, off1, f1.state, f1.seq, i, j, err2, off2, f2.state, f2.seq)
		}
	})
}

// TestFramerCases: the framing check's verdicts on whole inputs.
func TestFramerCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		err      error
		at       int
		seq      uint64
	}{
		{name: "two requests", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n", at: -1, seq: 2},
		{name: "leading empty lines", in: "\r\n\r\nGET / HTTP/1.1\r\n\r\n", at: -1, seq: 1},
		{name: "bare LF request line", in: "GET / HTTP/1.1\nHost: a\r\n\r\n", err: errBareLF, at: 14},
		{name: "bare LF ends the head", in: "GET / HTTP/1.1\r\nHost: a\r\n\n", err: errBareLF, at: 25},
		{name: "bare CR", in: "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", err: errBareCR, at: 21},
		{name: "LF in a body", in: "POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n\n\n\nGET / HTTP/1.1\r\n\r\n", at: -1, seq: 2},
		{name: "LF in chunk data", in: "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\n\n\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", at: -1, seq: 2},
		{name: "bare LF in a trailer", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\n", err: errBareLF, at: 54},
		{name: "folded line stops the check", in: "GET / HTTP/1.1\r\nA: 1\r\n b\r\n\r\nGET /\n", at: -1, seq: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			at, err, f := scanAll([]byte(tt.in))
			if at != tt.at || !errors.Is(err, tt.err) && (err != nil || tt.err != nil) {
				t.Fatalf("scan(%q) = error %v at %d; want %v at %d", tt.in, err, at, tt.err, tt.at)
			}
			if err == nil && f.seq != tt.seq {
				t.Errorf("scan(%q): %d heads ended; want %d", tt.in, f.seq, tt.seq)
			}
		})
	}
}

// TestFramerChunkLimit: a chunk size over the limit set for the request
// being read is refused at its line.
func TestFramerChunkLimit(t *testing.T) {
	t.Parallel()
	f := &framer{}
	f.startHead()
	head := []byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n")
	if _, err := f.scan(head); err != nil {
		t.Fatal(err)
	}
	if f.setBodyLimit(2, 100) || f.limit != 0 {
		t.Fatalf("setBodyLimit(another request) applied; want ignored")
	}
	if f.setBodyLimit(1, 100) {
		t.Fatalf("setBodyLimit(1, 100) after a 16-byte chunk = over; want not")
	}
	data := []byte("0123456789abcdef\r\n100000005\r\nabc")
	k, err := f.scan(data)
	if !errors.Is(err, errChunkOverLimit) || k != len("0123456789abcdef\r\n100000005\r\n") {
		t.Fatalf("scan(a 4 GiB chunk) = %d, %v; want %v after the size line", k, err, errChunkOverLimit)
	}
}
