package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestBatchConn checks the write batching of HTTP/2 connections (issue
// 16): writes from many goroutines, small and larger than a batch,
// arrive whole and each in one piece in the order Write returned; what is
// batched when Close is called is written first; after a write error,
// every Write fails.
func TestBatchConn(t *testing.T) {
	t.Parallel()
	t.Run("order and content", func(t *testing.T) {
		t.Parallel()
		client, server := tcpPair(t)
		bc := &batchConn{Conn: server}
		bc.enable(0)
		// Each writer sends records "<id><seq>" of a size that varies,
		// some larger than a batch; a mutex stands for the HTTP/2
		// server's one frame writer at a time, and records the order.
		var mu sync.Mutex
		var want bytes.Buffer
		var wg sync.WaitGroup
		for id := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := range 50 {
					size := 1 + (id*131+seq*17)%300
					if seq == 25 {
						size = batchMaxBytes + 1000
					}
					rec := bytes.Repeat([]byte{byte('a' + id), byte(seq)}, size)
					mu.Lock()
					want.Write(rec)
					n, err := bc.Write(rec)
					mu.Unlock()
					if n != len(rec) || err != nil {
						t.Errorf("Write(%d bytes) = %d, %v", len(rec), n, err)
						return
					}
				}
			}()
		}
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(client)
			got <- b
		}()
		wg.Wait()
		if err := bc.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if !bytes.Equal(b, want.Bytes()) {
				t.Errorf("read %d bytes; want the %d written, in order", len(b), want.Len())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the reader did not see the end of the stream")
		}
	})
	t.Run("close writes the batch", func(t *testing.T) {
		t.Parallel()
		client, server := tcpPair(t)
		bc := &batchConn{Conn: server}
		bc.enable(0)
		// A batch with no flush started yet: Close must write it.
		bc.buf = batchBufPool.Get().(*[]byte)
		*bc.buf = append(*bc.buf, "late"...)
		bc.Close()
		b, err := io.ReadAll(client)
		if string(b) != "late" || err != nil {
			t.Errorf("after Close read %q, %v; want \"late\"", b, err)
		}
	})
	t.Run("error sticks", func(t *testing.T) {
		t.Parallel()
		_, server := tcpPair(t)
		bc := &batchConn{Conn: server}
		bc.enable(0)
		server.Close()
		if _, err := bc.Write(make([]byte, batchMaxBytes+1)); err == nil {
			t.Fatal("large Write on a closed connection succeeded")
		}
		if _, err := bc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after an error = %v; want the first error", err)
		}
	})
	t.Run("buffered reads", func(t *testing.T) {
		t.Parallel()
		client, server := tcpPair(t)
		bc := &batchConn{Conn: server}
		bc.enable(16)
		var want bytes.Buffer
		for i := range 40 {
			want.Write(bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*3))
		}
		go func() {
			b := want.Bytes()
			for len(b) > 0 { // pieces that straddle the buffer's size
				n := min(len(b), 7)
				client.Write(b[:n])
				b = b[n:]
			}
			client.Close()
		}()
		var got bytes.Buffer
		p := make([]byte, 5) // smaller reads, and larger ones below
		for {
			if got.Len() > 100 {
				p = make([]byte, 40)
			}
			n, err := bc.Read(p)
			got.Write(p[:n])
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("read %q; want %q", got.Bytes(), want.Bytes())
		}
	})
	t.Run("off writes through", func(t *testing.T) {
		t.Parallel()
		client, server := tcpPair(t)
		bc := &batchConn{Conn: server}
		if _, err := bc.Write([]byte("now")); err != nil {
			t.Fatal(err)
		}
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 3)
		if _, err := io.ReadFull(client, b); err != nil || string(b) != "now" || bc.buf != nil {
			t.Errorf("read %q, %v, batch %v; want \"now\" written at once", b, err, bc.buf)
		}
	})
}
