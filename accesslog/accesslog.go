// Package accesslog writes one line per request off the request path.
//
// The request path takes a pooled Record (AcquireRecord), appends the
// request's values into its byte fields (no allocation once the pool is
// warm) and hands it to Log, which never blocks: records go through a
// fixed-capacity queue to one writer goroutine. When the queue is full the
// record is dropped and counted (Dropped), so a slow disk or a blocked
// stdout never slows a request; the count feeds aralez_logging_errors.
//
// # Line format
//
// Text (the default), one line per request, fields separated by one space:
//
//	time client method host path protocol status bytes duration upstream "user agent" request_id cache
//
// for example
//
//	2026-11-29T17:31:49.123Z 203.0.113.7 GET app.example.com /api?x=1 HTTP/1.1 200 1234 0.002345 127.0.0.1:8000 "curl/8.5.0" 9f86d081884c7d65000000000000002a MISS
//
// where:
//
//   - time is UTC, RFC 3339 with milliseconds, when the request started;
//   - client is the client address (no port) as the proxy saw it;
//   - path is the normalized path the request was routed on, without the
//     query (so credentials such as araleztoken never reach the log);
//   - status is the status sent to the client; bytes the response body
//     bytes sent (-1 when streamed without a declared length); duration
//     the seconds from request start until the proxy handed the response
//     to its front end, with microsecond precision;
//   - upstream is the backend's host:port, "-" when the proxy answered
//     itself (redirect, 404, 429, or a cache hit);
//   - cache is the response cache's status: HIT, MISS, STALE,
//     REVALIDATED or BYPASS, "-" on routes without a cache;
//   - an empty field is written "-" (the user agent as "-", unquoted);
//   - bytes that could break the line or forge a field (control bytes,
//     space outside the quoted user agent, '"', '\\', bytes >= 0x80) are
//     written as \xHH.
//
// JSON (Options.JSON, main.yaml's log_structured), one object per line
// with the keys time, level, client, method, host, path, protocol,
// status, bytes, duration, upstream, user_agent, request_id and cache; level is
// Aralez's level by status class (Level: info below 400, warn for 4xx,
// error from 500); status and bytes are integers, duration a
// number of seconds; strings are JSON-escaped, invalid UTF-8 becomes
// U+FFFD, and empty strings stay empty.
//
// Request IDs come from AppendRequestID: 32 hex digits, a random 64-bit
// prefix chosen at process start followed by a 64-bit counter.
package accesslog

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// DefaultBuffer is the queue capacity, in records, when Options.Buffer
// is zero.
const DefaultBuffer = 8192

// DefaultBatchBytes is how many formatted bytes the writer goroutine
// gathers before one Write, when more records are already queued.
const DefaultBatchBytes = 64 << 10

// Mode values for Options.Mode.
const (
	// ModeAll logs every request.
	ModeAll = "all"
	// ModeError logs requests answered with status >= 500, as Aralez
	// 0.92 does (4xx answers are the clients' errors, not the proxy's).
	ModeError = "error"
	// ModeOff logs nothing; New then starts no goroutine.
	ModeOff = "off"
)

// ErrBadMode is returned by New for a Mode other than "all", "error",
// "off" or "" (off).
var ErrBadMode = errors.New("accesslog: mode must be all, error or off")

// Options configures a Logger.
type Options struct {
	// Mode is ModeAll, ModeError or ModeOff. Empty means ModeOff.
	// Aralez's "access" is accepted as ModeAll.
	Mode string
	// JSON writes one JSON object per line instead of the text format.
	JSON bool
	// Buffer is the queue capacity in records. Zero means DefaultBuffer.
	Buffer int
}

// Record is one request's log values. Get one with AcquireRecord; Log
// takes it back. The byte fields are empty (length 0, capacity kept) when
// acquired: fill them with append, e.g. r.Host = append(r.Host, host...),
// so that a warm pool allocates nothing. The bytes are copied, so the
// caller's slices may be reused as soon as append returns. A Record must
// not be used after it was passed to Log or ReleaseRecord.
type Record struct {
	// Time is when the request started.
	Time time.Time
	// Status is the status code sent to the client.
	Status int
	// Bytes is the number of response body bytes sent.
	Bytes int64
	// Duration is the request's duration in seconds.
	Duration float64

	// Client is the client address without port.
	Client []byte
	// Method is the request method.
	Method []byte
	// Host is the Host header (or :authority) as routed.
	Host []byte
	// Path is the request target (path and query) as received.
	Path []byte
	// Protocol is "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0".
	Protocol []byte
	// Upstream is the backend's host:port; empty when the proxy answered.
	Upstream []byte
	// UserAgent is the User-Agent header.
	UserAgent []byte
	// RequestID is the X-Request-Id sent upstream and to the client.
	RequestID []byte
	// Cache is the response cache's status (HIT, MISS, STALE,
	// REVALIDATED, BYPASS); empty on routes without a cache.
	Cache []byte
}

// maxKeptField bounds the capacity a pooled Record keeps per field, so
// that one huge header does not pin memory forever.
const maxKeptField = 4 << 10

func (r *Record) reset() {
	r.Time = time.Time{}
	r.Status, r.Bytes, r.Duration = 0, 0, 0
	for _, f := range r.fields() {
		if cap(*f) > maxKeptField {
			*f = nil
		} else {
			*f = (*f)[:0]
		}
	}
}

func (r *Record) fields() [9]*[]byte {
	return [9]*[]byte{&r.Client, &r.Method, &r.Host, &r.Path, &r.Protocol, &r.Upstream, &r.UserAgent, &r.RequestID, &r.Cache}
}

var recordPool = sync.Pool{New: func() any { return new(Record) }}

// AcquireRecord returns an empty Record from the pool. Pass it to
// (*Logger).Log, or to ReleaseRecord when it is not logged after all.
func AcquireRecord() *Record { return recordPool.Get().(*Record) }

// ReleaseRecord resets r and returns it to the pool. r must not be used
// afterwards. nil is ignored.
func ReleaseRecord(r *Record) {
	if r == nil {
		return
	}
	r.reset()
	recordPool.Put(r)
}

// Logger writes Records to an io.Writer from one goroutine. Its methods
// are safe for concurrent use, and a nil *Logger logs nothing. A Logger
// must not be copied.
type Logger struct {
	_ noCopy

	w       io.Writer
	json    bool
	errOnly bool

	queue   chan *Record
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	dropped atomic.Uint64
	written atomic.Uint64
	wErrs   atomic.Uint64
	lastErr atomic.Pointer[error]
	once    sync.Once
}

// New returns a Logger writing to w and starts its writer goroutine
// (none for ModeOff, where the Logger is nil). Call Shutdown to stop it.
// It returns ErrBadMode for an unknown mode.
func New(w io.Writer, o Options) (*Logger, error) {
	errOnly := false
	switch o.Mode {
	case "", ModeOff:
		return nil, nil
	case ModeAll, "access":
	case ModeError:
		errOnly = true
	default:
		return nil, fmt.Errorf("%w: %q", ErrBadMode, o.Mode)
	}
	n := o.Buffer
	if n <= 0 {
		n = DefaultBuffer
	}
	l := &Logger{
		w: w, json: o.JSON, errOnly: errOnly,
		queue: make(chan *Record, n),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Enabled reports whether a request answered with status would be
// logged, so the request path can skip filling a Record. A nil Logger
// returns false.
func (l *Logger) Enabled(status int) bool {
	if l == nil {
		return false
	}
	return !l.errOnly || status >= 500
}

// Level returns Aralez's log level of an access-log line by status
// class: "info" below 400, "warn" for 4xx, "error" from 500.
func Level(status int) string {
	switch {
	case status < 400:
		return "info"
	case status < 500:
		return "warn"
	default:
		return "error"
	}
}

// Log queues r for writing and takes ownership of it. It never blocks: it
// returns false when the queue is full or the Logger is shut down, after
// counting the record as dropped. Records the mode does not log (and
// every record, for a nil Logger) are released and return true.
func (l *Logger) Log(r *Record) bool {
	if !l.Enabled(r.Status) {
		ReleaseRecord(r)
		return true
	}
	if l.closed.Load() {
		l.dropped.Add(1)
		ReleaseRecord(r)
		return false
	}
	select {
	case l.queue <- r:
		return true
	default:
		l.dropped.Add(1)
		ReleaseRecord(r)
		return false
	}
}

// Dropped returns how many records were lost: dropped because the queue
// was full or the Logger was shut down, or lost in a failed write. A nil
// Logger returns 0.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Written returns how many records were written successfully.
func (l *Logger) Written() uint64 {
	if l == nil {
		return 0
	}
	return l.written.Load()
}

// WriteErrors returns how many Write calls failed, and the last error.
func (l *Logger) WriteErrors() (uint64, error) {
	if l == nil {
		return 0, nil
	}
	var err error
	if p := l.lastErr.Load(); p != nil {
		err = *p
	}
	return l.wErrs.Load(), err
}

// Shutdown stops accepting records, writes those already queued and
// waits for the writer goroutine to exit, or for ctx to end (then it
// returns ctx's error and the goroutine exits after its current Write).
// It is safe to call more than once; a nil Logger returns nil.
func (l *Logger) Shutdown(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the writer goroutine: it gathers queued records into one buffer
// (up to DefaultBatchBytes while more are waiting) and writes it at once.
func (l *Logger) run() {
	defer close(l.done)
	buf := make([]byte, 0, DefaultBatchBytes+4096)
	for {
		var r *Record
		select {
		case r = <-l.queue:
		case <-l.stop:
			l.drain(buf)
			return
		}
		n := 0
		buf, n = l.batch(buf[:0], r)
		l.flush(buf, n)
	}
}

// batch formats r and then every record already queued, up to
// DefaultBatchBytes, and returns the buffer and the record count.
func (l *Logger) batch(buf []byte, r *Record) ([]byte, int) {
	n := 0
	for {
		buf = l.format(buf, r)
		ReleaseRecord(r)
		n++
		if len(buf) >= DefaultBatchBytes {
			return buf, n
		}
		select {
		case r = <-l.queue:
		default:
			return buf, n
		}
	}
}

// drain writes what is still queued at shutdown.
func (l *Logger) drain(buf []byte) {
	for {
		select {
		case r := <-l.queue:
			var n int
			buf, n = l.batch(buf[:0], r)
			l.flush(buf, n)
		default:
			return
		}
	}
}

func (l *Logger) flush(buf []byte, n int) {
	if err := l.write(buf); err != nil {
		l.wErrs.Add(1)
		l.lastErr.Store(&err)
		l.dropped.Add(uint64(n))
		return
	}
	l.written.Add(uint64(n))
}

// write calls w.Write, turning a panic in the writer into an error so
// that the goroutine keeps running.
func (l *Logger) write(b []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("accesslog: writer panicked: %v", p)
		}
	}()
	_, err = l.w.Write(b)
	return err
}

func (l *Logger) format(dst []byte, r *Record) []byte {
	if l.json {
		return AppendJSON(dst, r)
	}
	return AppendText(dst, r)
}

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendText appends r in the text line format (see the package doc),
// newline included, and returns the extended buffer.
func AppendText(dst []byte, r *Record) []byte {
	dst = r.Time.UTC().AppendFormat(dst, timeLayout)
	for _, f := range [...][]byte{r.Client, r.Method, r.Host, r.Path, r.Protocol} {
		dst = append(dst, ' ')
		dst = appendField(dst, f, false)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, r.Bytes, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendFloat(dst, r.Duration, 'f', 6, 64)
	dst = append(dst, ' ')
	dst = appendField(dst, r.Upstream, false)
	dst = append(dst, ' ')
	if len(r.UserAgent) == 0 {
		dst = append(dst, '-')
	} else {
		dst = append(dst, '"')
		dst = appendField(dst, r.UserAgent, true)
		dst = append(dst, '"')
	}
	dst = append(dst, ' ')
	dst = appendField(dst, r.RequestID, false)
	dst = append(dst, ' ')
	dst = appendField(dst, r.Cache, false)
	return append(dst, '\n')
}

const hexDigits = "0123456789abcdef"

// unsafeText marks the bytes appendField escapes: control bytes, space,
// '"', '\\', DEL and every byte >= 0x80.
var unsafeText = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c <= ' ' || c >= 0x7f || c == '"' || c == '\\'
	}
	return t
}()

// appendField appends s with unsafe bytes as \xHH; "-" when empty.
// Space is kept only inside quotes. Safe runs are copied at once.
func appendField(dst, s []byte, quoted bool) []byte {
	if len(s) == 0 {
		return append(dst, '-')
	}
	start := 0
	for i, c := range s {
		if !unsafeText[c] || (c == ' ' && quoted) {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// AppendJSON appends r as one JSON object (see the package doc), newline
// included, and returns the extended buffer.
func AppendJSON(dst []byte, r *Record) []byte {
	dst = append(dst, `{"time":"`...)
	dst = r.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","level":"`...)
	dst = append(dst, Level(r.Status)...)
	dst = append(dst, `","client":`...)
	dst = appendJSONString(dst, r.Client)
	dst = append(dst, `,"method":`...)
	dst = appendJSONString(dst, r.Method)
	dst = append(dst, `,"host":`...)
	dst = appendJSONString(dst, r.Host)
	dst = append(dst, `,"path":`...)
	dst = appendJSONString(dst, r.Path)
	dst = append(dst, `,"protocol":`...)
	dst = appendJSONString(dst, r.Protocol)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, r.Bytes, 10)
	dst = append(dst, `,"duration":`...)
	dst = strconv.AppendFloat(dst, r.Duration, 'f', 6, 64)
	dst = append(dst, `,"upstream":`...)
	dst = appendJSONString(dst, r.Upstream)
	dst = append(dst, `,"user_agent":`...)
	dst = appendJSONString(dst, r.UserAgent)
	dst = append(dst, `,"request_id":`...)
	dst = appendJSONString(dst, r.RequestID)
	dst = append(dst, `,"cache":`...)
	dst = appendJSONString(dst, r.Cache)
	return append(dst, "}\n"...)
}

// appendJSONString appends s as a quoted JSON string (RFC 8259 §7).
// Runs of plain ASCII are copied at once.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if c == '"' || c == '\\' {
				dst = append(dst, '\\', c)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + 1
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() [16]byte {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported systems; fall back to
		// the clock so that IDs stay distinct between processes.
		binary.BigEndian.PutUint64(b[:], uint64(time.Now().UnixNano()))
	}
	var h [16]byte
	for i, c := range b {
		h[2*i], h[2*i+1] = hexDigits[c>>4], hexDigits[c&0xf]
	}
	return h
}

// AppendRequestID appends a new request ID to dst and returns the
// extended buffer: 32 lower-case hex digits, the process's random 64-bit
// prefix then a 64-bit counter. IDs are unique within the process and,
// with overwhelming probability, across processes. It is safe for
// concurrent use and allocates nothing when dst has 32 bytes spare.
func AppendRequestID(dst []byte) []byte {
	n := idCounter.Add(1)
	dst = append(dst, idPrefix[:]...)
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(n>>uint(shift))&0xf])
	}
	return dst
}

// noCopy makes go vet's copylocks check flag copies of a Logger.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
