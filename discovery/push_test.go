package discovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aralez-go/aralez/config"
)

const pushYAML = `upstreams:
  app.test:
    paths:
      "/":
        to_https: true
        servers: ["127.0.0.1:8000", "127.0.0.1:8001 weight=2"]
`

func mustParse(t *testing.T, name, doc string) *config.Upstreams {
	t.Helper()
	up, err := config.ParseUpstreams(name, []byte(doc))
	if err != nil {
		t.Fatalf("ParseUpstreams(%s) error = %v", name, err)
	}
	return up
}

func TestPushApplyAcknowledged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		verdict error
	}{
		{"applied", nil},
		{"rejected", errors.New("compiling route: boom")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := NewPush()
			out := make(chan Update)
			go p.Run(ctx, out)
			up := mustParse(t, "<api>", pushYAML)
			got := make(chan *config.Upstreams, 1)
			go func() {
				u := <-out
				if u.Source != "api" || u.Done == nil || u.Err != nil {
					t.Errorf("Update = {%q, Done nil %v, %v}; want api with Done", u.Source, u.Done == nil, u.Err)
				}
				got <- u.Upstreams
				u.Done <- tt.verdict
			}()
			err := p.Apply(ctx, up)
			if !errors.Is(err, tt.verdict) || (tt.verdict == nil) != (err == nil) {
				t.Errorf("Apply() = %v; want %v", err, tt.verdict)
			}
			if g := <-got; g != up {
				t.Errorf("delivered table = %p; want the pushed %p", g, up)
			}
		})
	}
}

func TestPushStopped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	p := NewPush()
	ran := make(chan struct{})
	go func() { p.Run(ctx, make(chan Update)); close(ran) }()
	waitRunning := time.Now().Add(10 * time.Second)
	for !p.running.Load() && time.Now().Before(waitRunning) {
		time.Sleep(time.Millisecond)
	}
	if err := p.Run(ctx, make(chan Update)); !errors.Is(err, ErrPushRunTwice) {
		t.Errorf("second Run() = %v; want ErrPushRunTwice", err)
	}
	cancel()
	<-ran
	actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer acancel()
	if err := p.Apply(actx, mustParse(t, "<api>", pushYAML)); !errors.Is(err, ErrPushStopped) {
		t.Errorf("Apply() after Run ended = %v; want ErrPushStopped", err)
	}
}

func TestPushContextEnds(t *testing.T) {
	t.Parallel()
	p := NewPush() // Run never started: nobody takes the update
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Apply(ctx, mustParse(t, "<api>", pushYAML)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Apply() without Run = %v; want DeadlineExceeded", err)
	}
}

func TestDigest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "upstreams.yaml")
	if err := os.WriteFile(path, []byte(pushYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := config.LoadUpstreams(path)
	if err != nil {
		t.Fatal(err)
	}
	api := mustParse(t, "<api>", pushYAML)
	again := mustParse(t, "<api>", "# comment moves every line\n"+pushYAML)
	other := mustParse(t, "<api>", pushYAML[:len(pushYAML)-len(`"127.0.0.1:8001 weight=2"]`)-1]+`"127.0.0.1:8001 weight=3"]`+"\n")
	noHTTPS := mustParse(t, "<api>", "upstreams:\n  app.test:\n    paths:\n      \"/\":\n        to_https: false\n        servers: [\"127.0.0.1:8000\", \"127.0.0.1:8001 weight=2\"]\n")

	d := Digest(api)
	if len(d) != 16 {
		t.Fatalf("Digest() = %q; want 16 hex digits", d)
	}
	tests := []struct {
		name string
		up   *config.Upstreams
		same bool
	}{
		{"same value", api, true},
		{"read from the file", fromFile, true},
		{"parsed again, lines moved", again, true},
		{"weight changed", other, false},
		{"pointer field value changed", noHTTPS, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Digest(tt.up); (got == d) != tt.same {
				t.Errorf("Digest() = %s vs %s; want same %v", got, d, tt.same)
			}
		})
	}
	if Digest(nil) != "" {
		t.Errorf("Digest(nil) != \"\"")
	}
}
