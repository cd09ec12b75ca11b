package proxy

import (
	"bufio"
	"net"
	"runtime"
	"sync"
	"time"
)

// batchConn gathers the writes of an HTTP/2 client connection that happen
// within one turn of the scheduler into one system call. net/http's
// HTTP/2 server flushes whenever its write queue runs empty, which under
// load is after nearly every frame: a response's HEADERS and its DATA
// each cost a write (and, over TLS, a record). Here a Write copies the
// bytes and, if none is pending, starts a flush that first yields, so
// that the frames other streams' handlers produce meanwhile go out with
// it (issue 16). Bytes are never reordered; a write larger than
// batchMaxBytes, or one that would make the batch larger, is preceded by
// the batch and written at once. The first write error is returned by
// every later Write.
//
// Batching is off until enable is called: the TLS handshake and
// connections that are not HTTP/2 write straight through. enable can
// also buffer reads, for cleartext HTTP/2: the server reads each frame
// header and payload with a read of its own, which over TLS come from the
// record already decrypted but over TCP would each be a system call. It
// is safe for concurrent use, with one reader at a time.
type batchConn struct {
	net.Conn
	on bool          // set by enable before the connection is handed on
	r  *bufio.Reader // reads, when buffered; nil = the connection's own

	mu      sync.Mutex // guards buf, pending and err, and orders writes to Conn
	buf     *[]byte    // from batchBufPool while it holds bytes
	pending bool       // a flushSoon goroutine is started and has not run
	err     error      // the first write error
}

// batchMaxBytes bounds a batch: more is written at once.
const batchMaxBytes = 64 << 10

// batchCloseTimeout bounds the last flush of Close.
const batchCloseTimeout = time.Second

var batchBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// h2cReadBufferBytes is the read buffer of a cleartext HTTP/2
// connection: a few frames' headers and small payloads per system call.
const h2cReadBufferBytes = 4 << 10

// enable turns batching on, and buffers reads in readBuf bytes when
// readBuf > 0; call it before any concurrent use.
func (c *batchConn) enable(readBuf int) {
	c.on = true
	if readBuf > 0 {
		c.r = bufio.NewReaderSize(c.Conn, readBuf)
	}
}

// Read reads from the buffer when reads are buffered, else from the
// connection.
func (c *batchConn) Read(p []byte) (int, error) {
	if c.r != nil {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// Write queues p for the next flush, or writes it at once (see
// batchConn).
func (c *batchConn) Write(p []byte) (int, error) {
	if !c.on {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.buf != nil && len(*c.buf)+len(p) > batchMaxBytes || len(p) > batchMaxBytes {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		n, err := c.Conn.Write(p)
		if err != nil {
			c.err = err
		}
		return n, err
	}
	if c.buf == nil {
		c.buf = batchBufPool.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	if !c.pending {
		c.pending = true
		go c.flushSoon()
	}
	return len(p), nil
}

// flushSoon writes the batch after the goroutines that are ready to run
// have had their turn.
func (c *batchConn) flushSoon() {
	runtime.Gosched()
	c.mu.Lock()
	c.pending = false
	_ = c.flushLocked()
	c.mu.Unlock()
}

// flushLocked writes the batch and gives its buffer back. c.mu is held.
func (c *batchConn) flushLocked() error {
	if c.buf == nil || c.err != nil {
		return c.err
	}
	b := c.buf
	c.buf = nil
	_, err := c.Conn.Write(*b)
	if cap(*b) <= batchMaxBytes {
		*b = (*b)[:0]
		batchBufPool.Put(b)
	}
	if err != nil {
		c.err = err
	}
	return err
}

// Close writes what is batched (within batchCloseTimeout; not when a
// flush is blocked on a client that stopped reading) and closes the
// connection.
func (c *batchConn) Close() error {
	if c.on && c.mu.TryLock() {
		if c.buf != nil && c.err == nil {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(batchCloseTimeout))
			_ = c.flushLocked()
		}
		c.mu.Unlock()
	}
	return c.Conn.Close()
}
