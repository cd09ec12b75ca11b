package cache

import (
	"testing"
	"time"
)

// hdr is a request header list for tests; *hdr is a Peeker that
// allocates nothing.
type hdr [][2][]byte

func mkHdr(kv ...string) *hdr {
	h := hdr{}
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, [2][]byte{[]byte(kv[i]), []byte(kv[i+1])})
	}
	return &h
}

func (h *hdr) Peek(name []byte) []byte {
	for _, f := range *h {
		if equalFold(f[0], name) {
			return f[1]
		}
	}
	return nil
}

func (h *hdr) Repeated(name []byte) bool {
	n := 0
	for _, f := range *h {
		if equalFold(f[0], name) {
			n++
		}
	}
	return n > 1
}

func fields(kv ...string) Fields {
	var f Fields
	for i := 0; i+1 < len(kv); i += 2 {
		f = AppendField(f, []byte(kv[i]), []byte(kv[i+1]))
	}
	return f
}

// t0 is the tests' clock origin: a real time, so that the storage's own
// expiry (which reads the wall clock) keeps the entries the tests use.
var t0 = time.Now().UnixNano()

func at(d time.Duration) int64 { return t0 + int64(d) }

func newTestCache(t testing.TB, o Options) *Cache {
	t.Helper()
	if o.MaxBytes == 0 {
		o.MaxBytes = 8 << 20
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func getReq(key string, h *hdr) *Request {
	if h == nil {
		h = mkHdr()
	}
	return &Request{Method: []byte("GET"), Key: []byte(key), Header: h}
}

// resp200 is a 200 answer with the given fields and body, received at
// t0+d.
func respAt(d time.Duration, status int, body string, kv ...string) *Response {
	return &Response{Status: status, Header: fields(kv...), Body: []byte(body), RequestTime: at(d), ResponseTime: at(d)}
}

// fill stores resp for r the way a front end does after a miss.
func fill(t testing.TB, c *Cache, r *Request, now time.Duration, resp *Response) *Entry {
	t.Helper()
	res := c.Lookup(r, at(now))
	if res.Outcome != Miss && res.Outcome != Revalidate {
		t.Fatalf("Lookup(%s) before storing = %v; want miss", r.Key, res.Outcome)
	}
	e, why := c.Store(r, res.Fill, resp)
	if e == nil {
		t.Fatalf("Store(%s) = not stored (%v)", r.Key, why)
	}
	return e
}
