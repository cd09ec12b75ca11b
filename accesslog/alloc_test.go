//go:build !race

package accesslog

import (
	"context"
	"io"
	"testing"
)

func TestLogAllocatesNothing(t *testing.T) {
	l, _ := New(io.Discard, Options{Mode: "all", Buffer: 64})
	defer l.Shutdown(context.Background())
	id := make([]byte, 0, 32)
	for range 100 { // warm the pool
		r := AcquireRecord()
		fillFast(r, id)
		l.Log(r)
	}
	if n := testing.AllocsPerRun(2000, func() {
		id = AppendRequestID(id[:0])
		r := AcquireRecord()
		fillFast(r, id)
		l.Log(r)
	}); n != 0 {
		t.Errorf("AcquireRecord+Log allocs = %v; want 0", n)
	}
}
