package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 17, 31, 49, 123456789, time.FixedZone("X", 3600))

func fill(r *Record) {
	r.Time = t0
	r.Status = 200
	r.Bytes = 1234
	r.Duration = 0.0023451
	r.Client = append(r.Client, "203.0.113.7"...)
	r.Method = append(r.Method, "GET"...)
	r.Host = append(r.Host, "app.example.com"...)
	r.Path = append(r.Path, "/api?x=1"...)
	r.Protocol = append(r.Protocol, "HTTP/1.1"...)
	r.Upstream = append(r.Upstream, "127.0.0.1:8000"...)
	r.UserAgent = append(r.UserAgent, "curl/8.5.0 (x)"...)
	r.RequestID = append(r.RequestID, "9f86d081884c7d65000000000000002a"...)
	r.Cache = append(r.Cache, "HIT"...)
}

func TestAppendText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(r *Record)
		want string
	}{
		{
			name: "full",
			edit: func(*Record) {},
			want: `2026-11-29T16:31:49.123Z 203.0.113.7 GET app.example.com /api?x=1 HTTP/1.1 200 1234 0.002345 127.0.0.1:8000 "curl/8.5.0 (x)" 9f86d081884c7d65000000000000002a HIT` + "\n",
		},
		{
			name: "proxy answered, no user agent",
			edit: func(r *Record) { r.Upstream = r.Upstream[:0]; r.UserAgent = nil; r.Status = 404; r.Cache = nil },
			want: `2026-11-29T16:31:49.123Z 203.0.113.7 GET app.example.com /api?x=1 HTTP/1.1 404 1234 0.002345 - - 9f86d081884c7d65000000000000002a -` + "\n",
		},
		{
			name: "forged fields escaped",
			edit: func(r *Record) {
				r.Path = append(r.Path[:0], "/a b\n\"x\\\xff"...)
				r.UserAgent = append(r.UserAgent[:0], "ua\" 200 fake\r\n"...)
			},
			want: `2026-11-29T16:31:49.123Z 203.0.113.7 GET app.example.com /a\x20b\x0a\x22x\x5c\xff HTTP/1.1 200 1234 0.002345 127.0.0.1:8000 "ua\x22 200 fake\x0d\x0a" 9f86d081884c7d65000000000000002a HIT` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &Record{}
			fill(r)
			tt.edit(r)
			if got := string(AppendText(nil, r)); got != tt.want {
				t.Errorf("AppendText() =\n%s; want\n%s", got, tt.want)
			}
		})
	}
}

func TestAppendJSON(t *testing.T) {
	t.Parallel()
	r := &Record{}
	fill(r)
	r.Path = append(r.Path[:0], "/p\"\\\x01\xffé"...)
	r.Upstream = r.Upstream[:0]
	line := AppendJSON(nil, r)
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("AppendJSON() = %q; want one line", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("AppendJSON() not JSON: %v: %s", err, line)
	}
	want := map[string]any{
		"time": "2026-11-29T16:31:49.123Z", "level": "info", "client": "203.0.113.7", "method": "GET",
		"host": "app.example.com", "path": "/p\"\\\x01\ufffdé", "protocol": "HTTP/1.1",
		"status": 200.0, "bytes": 1234.0, "duration": 0.002345, "upstream": "",
		"user_agent": "curl/8.5.0 (x)", "request_id": "9f86d081884c7d65000000000000002a", "cache": "HIT",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("AppendJSON()[%q] = %#v; want %#v", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("AppendJSON() has %d keys; want %d", len(got), len(want))
	}
}

// TestLevel checks Aralez's access-log levels by status class (issue 12).
func TestLevel(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		want   string
	}{{101, "info"}, {200, "info"}, {308, "info"}, {399, "info"}, {400, "warn"}, {429, "warn"}, {499, "warn"}, {500, "error"}, {504, "error"}} {
		if got := Level(tt.status); got != tt.want {
			t.Errorf("Level(%d) = %q; want %q", tt.status, got, tt.want)
		}
		r := &Record{Status: tt.status}
		var got map[string]any
		if err := json.Unmarshal(AppendJSON(nil, r), &got); err != nil || got["level"] != tt.want {
			t.Errorf("AppendJSON(status %d)[level] = %v (%v); want %q", tt.status, got["level"], err, tt.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func logOne(l *Logger, status int, path string) bool {
	r := AcquireRecord()
	fill(r)
	r.Status = status
	r.Path = append(r.Path[:0], path...)
	return l.Log(r)
}

func shutdown(t *testing.T, l *Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v; want nil", err)
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mode   string
		json   bool
		nilLog bool
		want   []string // paths written, in order
	}{
		{name: "all", mode: "all", want: []string{"/ok", "/missing", "/broken"}},
		{name: "aralez access", mode: "access", want: []string{"/ok", "/missing", "/broken"}},
		{name: "error", mode: "error", want: []string{"/broken"}}, // 5xx only, as Aralez (issue 12)
		{name: "json error", mode: "error", json: true, want: []string{"/broken"}},
		{name: "off", mode: "off", nilLog: true},
		{name: "empty is off", mode: "", nilLog: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			l, err := New(&out, Options{Mode: tt.mode, JSON: tt.json})
			if err != nil {
				t.Fatalf("New(%q) error = %v", tt.mode, err)
			}
			if (l == nil) != tt.nilLog {
				t.Fatalf("New(%q) = %v; want nil %v", tt.mode, l, tt.nilLog)
			}
			for _, c := range []struct {
				status int
				path   string
			}{{200, "/ok"}, {404, "/missing"}, {502, "/broken"}} {
				if !logOne(l, c.status, c.path) {
					t.Fatalf("Log(%d) = false; want true", c.status)
				}
			}
			shutdown(t, l)
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(tt.want) == 0 {
				if out.String() != "" {
					t.Fatalf("output = %q; want none", out.String())
				}
				return
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("wrote %d lines; want %d:\n%s", len(lines), len(tt.want), out.String())
			}
			for i, p := range tt.want {
				if tt.json {
					var m map[string]any
					if err := json.Unmarshal([]byte(lines[i]), &m); err != nil || m["path"] != p {
						t.Errorf("line %d = %s; want JSON with path %q (err %v)", i, lines[i], p, err)
					}
				} else if f := strings.Fields(lines[i]); f[4] != p {
					t.Errorf("line %d path = %q; want %q", i, f[4], p)
				}
			}
			if l.Written() != uint64(len(tt.want)) || l.Dropped() != 0 {
				t.Errorf("Written, Dropped = %d, %d; want %d, 0", l.Written(), l.Dropped(), len(tt.want))
			}
		})
	}
}

func TestBadMode(t *testing.T) {
	t.Parallel()
	if _, err := New(&bytes.Buffer{}, Options{Mode: "verbose"}); !errors.Is(err, ErrBadMode) {
		t.Errorf("New(verbose) error = %v; want ErrBadMode", err)
	}
}

// blockedWriter blocks every Write until release is closed, and tells
// when a Write has started.
type blockedWriter struct {
	entered chan struct{}
	release chan struct{}
	out     syncBuffer
	once    sync.Once
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.out.Write(p)
}

func TestFullBufferDropsAndCounts(t *testing.T) {
	t.Parallel()
	const buffer, extra = 4, 100
	w := &blockedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	l, err := New(w, Options{Mode: "all", Buffer: buffer})
	if err != nil {
		t.Fatal(err)
	}
	if !logOne(l, 200, "/first") {
		t.Fatal("Log(first) = false; want true")
	}
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("writer never called")
	}
	// The writer goroutine is stuck in Write holding the first record; the
	// queue takes `buffer` more, the rest are dropped, and no Log blocks
	// (the loop finishing is the proof; the test deadline bounds it).
	accepted := 0
	for i := range extra {
		if logOne(l, 200, "/n") {
			accepted++
		} else if got := l.Dropped(); got != uint64(i+1-accepted) {
			t.Fatalf("Dropped() = %d after %d rejected; want equal", got, i+1-accepted)
		}
	}
	if accepted != buffer {
		t.Errorf("accepted %d of %d with a blocked writer; want %d", accepted, extra, buffer)
	}
	if got := l.Dropped(); got != extra-buffer {
		t.Errorf("Dropped() = %d; want %d", got, extra-buffer)
	}
	close(w.release)
	shutdown(t, l)
	if n := strings.Count(w.out.String(), "\n"); n != buffer+1 {
		t.Errorf("lines written = %d; want %d", n, buffer+1)
	}
	if l.Written() != buffer+1 {
		t.Errorf("Written() = %d; want %d", l.Written(), buffer+1)
	}
	if logOne(l, 200, "/late") {
		t.Errorf("Log after Shutdown = true; want false")
	}
	if got := l.Dropped(); got != extra-buffer+1 {
		t.Errorf("Dropped() after late Log = %d; want %d", got, extra-buffer+1)
	}
}

type failWriter struct{ calls int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.calls++
	return 0, errors.New("disk full")
}

func TestWriteErrorCountsLostRecords(t *testing.T) {
	t.Parallel()
	w := &failWriter{}
	l, _ := New(w, Options{Mode: "all", Buffer: 16})
	for range 3 {
		logOne(l, 500, "/x")
	}
	shutdown(t, l)
	n, err := l.WriteErrors()
	if n == 0 || err == nil || err.Error() != "disk full" {
		t.Errorf("WriteErrors() = %d, %v; want > 0, disk full", n, err)
	}
	if l.Dropped() != 3 || l.Written() != 0 {
		t.Errorf("Dropped, Written = %d, %d; want 3, 0", l.Dropped(), l.Written())
	}
}

func TestShutdownWritesQueued(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	const n = 5000
	l, _ := New(&out, Options{Mode: "all", Buffer: n})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range n / 4 {
				logOne(l, 200, "/q")
			}
		})
	}
	wg.Wait()
	shutdown(t, l)
	if got := strings.Count(out.String(), "\n"); got != n || l.Dropped() != 0 {
		t.Errorf("lines, Dropped = %d, %d; want %d, 0", got, l.Dropped(), n)
	}
}

func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	w := &blockedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	l, _ := New(w, Options{Mode: "all"})
	logOne(l, 200, "/stuck")
	<-w.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown(stuck writer) = %v; want DeadlineExceeded", err)
	}
	close(w.release)
	shutdown(t, l)
}

func TestNilLogger(t *testing.T) {
	t.Parallel()
	var l *Logger
	if l.Enabled(500) || !logOne(l, 500, "/x") || l.Dropped() != 0 || l.Shutdown(context.Background()) != nil {
		t.Errorf("nil Logger misbehaves")
	}
}

func TestAppendRequestID(t *testing.T) {
	t.Parallel()
	const workers, per = 4, 2000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range per {
				ids[w] = append(ids[w], string(AppendRequestID(nil)))
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*per)
	prefix := ids[0][0][:16]
	for _, list := range ids {
		for _, id := range list {
			if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
				t.Fatalf("AppendRequestID() = %q; want 32 hex digits", id)
			}
			if id[:16] != prefix {
				t.Fatalf("AppendRequestID() prefix = %q; want %q", id[:16], prefix)
			}
			if seen[id] {
				t.Fatalf("AppendRequestID() = %q twice", id)
			}
			seen[id] = true
		}
	}
	if got := string(AppendRequestID([]byte("id="))); !strings.HasPrefix(got, "id="+prefix) {
		t.Errorf("AppendRequestID(dst) = %q; want dst kept", got)
	}
}
