package tls

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for the Store fields that tune Watch.
const (
	// DefaultDebounce is the quiet period after the last change event
	// before Watch reloads.
	DefaultDebounce = 200 * time.Millisecond
	// DefaultPollInterval is how often Watch retries watching a folder
	// that does not exist (yet).
	DefaultPollInterval = time.Second
)

// maxDebounceFactor bounds how many debounce periods a steady stream of
// events may delay a reload.
const maxDebounceFactor = 10

// k8sDataLink is the symlink Kubernetes swaps atomically when a mounted
// Secret changes; the NAME.crt links themselves do not change, so an
// event on it must trigger a reload too.
const k8sDataLink = "..data"

// Watch reloads the store whenever a certificate file in its folder is
// created, written, renamed or removed, until ctx is done; then it returns
// nil. It returns an error only when the file watcher cannot be created or
// stops on its own.
//
// It watches the folder itself (not each file, so editors and atomic
// renames are seen) and its parent, so the folder may be missing when
// Watch starts, be created later, or be deleted and re-created: until it
// exists Watch also polls every PollInterval. Events are filtered to
// *.crt and *.key (and Kubernetes' ..data link) and debounced on the
// trailing edge by Debounce, so a pair written as two files is read once,
// complete; a steady stream of events delays a reload by at most ten
// Debounce periods. Watch reloads once at start to catch changes made since
// NewStore. Each reload logs one line with the pair count and duration;
// skipped pairs are logged by Reload.
//
// Call Watch at most once per Store, from a goroutine the caller owns.
func (s *Store) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("edgetls: watching certificate folder: %w", err)
	}
	defer w.Close()

	debounce := s.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	pollEvery := s.PollInterval
	if pollEvery <= 0 {
		pollEvery = DefaultPollInterval
	}
	dir := s.dir
	parent := filepath.Dir(dir)
	dirWatched, parentWatched := false, false

	// attachDir (re)creates the watch on the folder; after a re-create
	// the old watch may still point at the previous inode, so drop it.
	attachDir := func() {
		if dirWatched {
			_ = w.Remove(dir) // fails harmlessly when inotify dropped it already
		}
		dirWatched = w.Add(dir) == nil
	}
	attachParent := func() {
		if !parentWatched && parent != dir {
			parentWatched = w.Add(parent) == nil
		}
	}

	// Debounce on the trailing edge, but never hold a reload back for
	// more than maxDelay while events keep coming.
	maxDelay := maxDebounceFactor * debounce
	timer := time.NewTimer(debounce)
	timer.Stop()
	var (
		fire         <-chan time.Time
		pendingSince time.Time
	)
	schedule := func() {
		now := time.Now()
		if fire == nil {
			pendingSince = now
		}
		delay := min(debounce, max(pendingSince.Add(maxDelay).Sub(now), 0))
		timer.Reset(delay)
		fire = timer.C
	}
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()

	attachParent()
	attachDir()
	s.watchReload() // catch up on changes made since NewStore

	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil

		case <-poll.C:
			attachParent()
			if !dirWatched {
				attachDir()
				if dirWatched {
					schedule()
				}
			}

		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("edgetls: file watcher stopped")
			}
			switch {
			case ev.Name == parent && parentWatched && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)):
				_ = w.Remove(parent)
				parentWatched = false // the poll re-adds it once it exists
			case ev.Name == dir:
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					if dirWatched {
						_ = w.Remove(dir)
						dirWatched = false
					}
					schedule()
				} else if ev.Has(fsnotify.Create) {
					attachDir()
					schedule()
				}
			case filepath.Dir(ev.Name) == dir && relevantFile(filepath.Base(ev.Name)):
				if ev.Op != fsnotify.Chmod {
					schedule()
				}
			}

		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("edgetls: file watcher stopped")
			}
			s.log.Warn("edgetls: certificate folder watch error; reloading", "dir", dir, "err", err)
			schedule() // an overflow may have hidden changes

		case <-fire:
			fire = nil
			s.watchReload()
		}
	}
}

// relevantFile reports whether a change to the folder entry base may
// change the loaded set.
func relevantFile(base string) bool {
	if base == k8sDataLink {
		return true
	}
	if strings.HasPrefix(base, ".") {
		return false
	}
	return strings.HasSuffix(base, CertExt) || strings.HasSuffix(base, KeyExt)
}

// watchReload reloads on behalf of Watch, logging the outcome once; a
// panic while parsing is logged and the previous set keeps serving.
func (s *Store) watchReload() {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("edgetls: panic while reloading certificates; previous set kept", "dir", s.dir, "panic", r)
		}
	}()
	start := time.Now()
	n, err := s.reload()
	attrs := []any{"dir", s.dir, "pairs", n, "seconds", time.Since(start).Seconds()}
	var skipped *skipError
	switch {
	case err == nil:
		s.log.Info("edgetls: certificates reloaded", attrs...)
	case errors.As(err, &skipped):
		s.log.Info("edgetls: certificates reloaded", append(attrs, "skipped", len(skipped.errs))...)
	default:
		s.log.Error("edgetls: reloading certificates failed; previous set kept", append(attrs, "err", err)...)
	}
}
