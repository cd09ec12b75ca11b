package proxy

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/aralez-go/aralez/config"
)

// streamSize is the body size of the streaming tests: 64 MiB by default
// (issue 2), ARALEZ_STREAM_MB overrides it.
func streamSize() int64 {
	if v, err := strconv.Atoi(os.Getenv("ARALEZ_STREAM_MB")); err == nil && v > 0 {
		return int64(v) << 20
	}
	return 64 << 20
}

// patternReader yields n deterministic bytes without holding them.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	n := 0
	for n < len(b) {
		n += copy(b[n:], patternBlock[(p.off+int64(n))%int64(len(patternBlock)):])
	}
	p.off += int64(n)
	return n, nil
}

// patternBlock repeats through every pattern body; its odd length makes
// a dropped or repeated buffer show up in the checksum.
var patternBlock = func() []byte {
	b := make([]byte, 65521)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

func patternSum(n int64) string {
	h := sha256.New()
	io.Copy(h, &patternReader{n: n})
	return fmt.Sprintf("%x", h.Sum(nil))
}

// peakHeapDuring runs f and returns how much the in-use heap grew at its
// peak, sampled while f runs.
func peakHeapDuring(f func()) uint64 {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done, finished := make(chan struct{}), make(chan struct{})
	peak := before.HeapInuse
	go func() {
		defer close(finished)
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			default:
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak {
				peak = m.HeapInuse
			}
			runtime.Gosched()
		}
	}()
	f()
	close(done)
	<-finished
	if peak < before.HeapInuse {
		return 0
	}
	return peak - before.HeapInuse
}

func TestStreamingBodies(t *testing.T) {
	size := streamSize()
	want := patternSum(size)
	up, _ := newUpstream(t, "s", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			return
		}
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		}
		io.Copy(w, &patternReader{n: size})
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	limit := uint64(size / 4) // the body never sits in memory whole

	for _, q := range []string{"", "?chunked=1"} {
		var got string
		var n int64
		grew := peakHeapDuring(func() {
			resp, err := client.Get("http://" + addr + "/down" + q)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, _ = io.Copy(h, resp.Body)
			got = fmt.Sprintf("%x", h.Sum(nil))
		})
		if n != size || got != want {
			t.Errorf("download%s: %d bytes sum %s; want %d bytes sum %s", q, n, got, size, want)
		}
		if grew > limit {
			t.Errorf("download%s: heap grew %d bytes; want < %d", q, grew, limit)
		}
	}
	for _, chunked := range []bool{false, true} {
		var body string
		grew := peakHeapDuring(func() {
			var r io.Reader = &patternReader{n: size}
			if chunked {
				r = io.MultiReader(r) // hides the length: chunked upload
			}
			req, _ := http.NewRequest("POST", "http://"+addr+"/up", r)
			if !chunked {
				req.ContentLength = size
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		})
		if wantBody := fmt.Sprintf("%d %s", size, want); body != wantBody {
			t.Errorf("upload chunked=%v: upstream saw %q; want %q", chunked, body, wantBody)
		}
		if grew > limit {
			t.Errorf("upload chunked=%v: heap grew %d bytes; want < %d", chunked, grew, limit)
		}
	}
}

func TestHeadAndNoBodyStatuses(t *testing.T) {
	t.Parallel()
	up, _ := newUpstream(t, "n", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "5")
			if r.Method != "HEAD" {
				io.WriteString(w, "hello")
			}
		}
	})
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", addrOf(up))}
	_, addr := startProxy(t, cfg, Options{}, UpstreamOptions{})
	// Several requests on one keep-alive connection: a body left unread or
	// an invented one would desynchronise the stream.
	for i := 0; i < 3; i++ {
		for _, c := range []struct{ method, path, want string }{
			{"HEAD", "/x", "200 "}, {"GET", "/204", "204 "}, {"GET", "/304", "304 "}, {"GET", "/x", "200 hello"},
		} {
			req, _ := http.NewRequest(c.method, "http://"+addr+c.path, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := fmt.Sprintf("%d %s", resp.StatusCode, b); got != c.want {
				t.Fatalf("%s %s = %q; want %q", c.method, c.path, got, c.want)
			}
		}
	}
}
