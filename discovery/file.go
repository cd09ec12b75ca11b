// Package discovery holds the sources of upstream configuration: the file
// watcher (upstreams.yaml and conf.d/), the config API push, Consul and
// Kubernetes. Each source emits complete config.Upstreams values on a
// channel; none touches the running proxy. The single reload
// goroutine in cmd/aralez owns applying them.
package discovery

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/aralez-go/aralez/config"
)

// Update is one value emitted by a Source: a freshly loaded routing table,
// or the error that loading it gave (the caller keeps the old one).
type Update struct {
	// Source names the emitter ("file", "api", "consul", "kubernetes").
	Source string
	// Upstreams is the new routing table; nil when Err or Certificates
	// is set.
	Upstreams *config.Upstreams
	// Err is a load error: a config.ErrorList with file:line:col entries,
	// or an I/O error.
	Err error
	// Certificates, when non-nil, is the complete set of certificates
	// the source serves now (the Kubernetes Ingress controller's TLS
	// Secrets), for the TLS store to serve under the name Source; such
	// an update carries no Upstreams. An empty List withdraws them.
	Certificates *Certificates
	// Done, when non-nil, gets exactly one send from the consumer: nil
	// once the update is applied (or unchanged), else why it was
	// rejected. It is buffered, so the send never blocks. Only Push sets
	// it; other sources leave it nil.
	Done chan<- error
}

// Certificates is a discovery source's complete set of TLS
// certificates, each parsed, with Leaf set. The consumer must not
// modify them.
type Certificates struct {
	List []*tls.Certificate
}

// Source produces routing tables until its context ends.
type Source interface {
	// Name identifies the source in logs.
	Name() string
	// Run emits updates on out until ctx is done, then returns nil; it
	// returns an error only when it cannot start at all.
	Run(ctx context.Context, out chan<- Update) error
}

// DefaultDebounce is File's default quiet period after the last change
// before a reload: long enough to coalesce an editor's write burst.
const DefaultDebounce = 150 * time.Millisecond

// File watches an upstreams file and the conf.d folder beside it and
// emits a reloaded config.Upstreams after every change, parsing only the
// files whose content changed (config.Cache). It watches the
// folders, not the files, so that editors that save by rename work, and
// filters events to the upstreams file and conf.d/*.yaml (logs or
// certificates in the same folder cause no reload). A conf.d folder
// removed, renamed or created after the start is watched again when one
// is there. When the upstreams file is a symbolic link through another
// entry of its folder, as in a Kubernetes ConfigMap volume
// (upstreams.yaml -> ..data/upstreams.yaml, where the kubelet applies an
// update by renaming a new ..data link over the old one), a change of
// that entry is a change of the file. Debouncing is on the trailing
// edge: a second save inside the window restarts it, so the last save is
// always applied.
type File struct {
	path     string
	debounce time.Duration
	log      *slog.Logger
	cache    *config.Cache
}

// NewFile returns a File source for the upstreams file at path. debounce
// <= 0 means DefaultDebounce.
func NewFile(path string, debounce time.Duration, log *slog.Logger) *File {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	if log == nil {
		log = slog.Default()
	}
	abs, err := filepath.Abs(path)
	if err == nil {
		path = abs
	}
	return &File{path: path, debounce: debounce, log: log, cache: new(config.Cache)}
}

// SetCache makes the File's loads go through c, a parse cache shared
// with the other loads of the same files (the SIGHUP reload), so that a
// file is parsed once per change whichever trigger reads it. Call it
// before Run. By default a File has a cache of its own; nil parses
// every file on every load.
func (f *File) SetCache(c *config.Cache) { f.cache = c }

// Name returns "file".
func (f *File) Name() string { return "file" }

// Run watches until ctx is done. It returns an error only when the
// watcher cannot be created or the upstreams file's folder cannot be
// watched.
func (f *File) Run(ctx context.Context, out chan<- Update) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	dir := filepath.Dir(f.path)
	confd := filepath.Join(dir, "conf.d")
	if err := w.Add(dir); err != nil {
		return err
	}
	confdWatched := w.Add(confd) == nil

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Name == confd {
				switch {
				case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
					// The watch went with the folder (or follows it
					// under its new name): drop it.
					w.Remove(confd)
					confdWatched = false
				case ev.Has(fsnotify.Create) && !confdWatched:
					confdWatched = w.Add(confd) == nil
				}
			}
			if !f.relevant(ev, confd) {
				continue
			}
			timer.Reset(f.debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			f.log.Warn("config watch error", "err", err)
		case <-timer.C:
			if !confdWatched {
				// A conf.d that came with a swapped link, or was
				// created between a removal and this reload.
				confdWatched = w.Add(confd) == nil
			}
			up, err := f.cache.LoadUpstreams(f.path)
			u := Update{Source: f.Name(), Upstreams: up, Err: err}
			if err != nil {
				u.Upstreams = nil
			}
			select {
			case out <- u:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// relevant reports whether ev may change the routing table: an event of
// the upstreams file, of conf.d or a YAML file in it, or the creation,
// removal or renaming of the folder entry the upstreams file links
// through (linkEntry).
func (f *File) relevant(ev fsnotify.Event, confd string) bool {
	name := ev.Name
	if name == f.path || name == confd {
		return true
	}
	if filepath.Dir(name) == confd {
		return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
	}
	return ev.Has(fsnotify.Create|fsnotify.Remove|fsnotify.Rename) && name == f.linkEntry()
}

// linkEntry returns the entry of the upstreams file's folder that the
// file, a symbolic link, points through ("..data" for upstreams.yaml ->
// ..data/upstreams.yaml), or "" when it is not such a link. It is read
// at each call: only creations, removals and renames in the folder ask.
func (f *File) linkEntry() string {
	target, err := os.Readlink(f.path)
	if err != nil {
		return ""
	}
	dir := filepath.Dir(f.path)
	if !filepath.IsAbs(target) {
		target = filepath.Join(dir, target)
	}
	rel, err := filepath.Rel(dir, target)
	if err != nil {
		return ""
	}
	head, rest, ok := strings.Cut(filepath.ToSlash(rel), "/")
	if !ok || rest == "" || head == ".." || head == "." {
		return ""
	}
	return filepath.Join(dir, head)
}
