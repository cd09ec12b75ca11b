package acme

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aralez-go/aralez/internal/consultest"
)

func newConsulStorage(t *testing.T, srv *consultest.Server) *ConsulStorage {
	t.Helper()
	s, err := NewConsulStorage(ConsulOptions{Address: srv.Addr(), Prefix: "/fleet/acme/", Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConsulStorage runs the certmagic.Storage operations through the
// real consul/api client against the Consul test server.
func TestConsulStorage(t *testing.T) {
	t.Parallel()
	srv := consultest.NewServer(t)
	s := newConsulStorage(t, srv)
	ctx := context.Background()
	for k, v := range map[string]string{"certificates/ca/a.test/a.test.crt": "A", "certificates/ca/a.test/a.test.key": "K", "certificates/ca/b.test/b.test.crt": "B", "top": "T"} {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := srv.KV("fleet/acme/top"); !ok || string(v) != "T" {
		t.Errorf("KV fleet/acme/top = %q, %v; want T under the prefix", v, ok)
	}
	if b, err := s.Load(ctx, "certificates/ca/a.test/a.test.crt"); err != nil || string(b) != "A" {
		t.Errorf("Load() = %q, %v", b, err)
	}
	if _, err := s.Load(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) error = %v; want fs.ErrNotExist", err)
	}
	got, err := s.List(ctx, "certificates/ca", false)
	if want := []string{"certificates/ca/a.test", "certificates/ca/b.test"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List(non-recursive) = %q, %v; want %q", got, err, want)
	}
	got, err = s.List(ctx, "certificates", true)
	if err != nil || len(got) != 3 {
		t.Errorf("List(recursive) = %q, %v; want the 3 values", got, err)
	}
	if st, err := s.Stat(ctx, "certificates/ca/a.test"); err != nil || st.IsTerminal {
		t.Errorf("Stat(folder) = %+v, %v; want a folder", st, err)
	}
	if st, err := s.Stat(ctx, "top"); err != nil || !st.IsTerminal || st.Size != 1 {
		t.Errorf("Stat(value) = %+v, %v", st, err)
	}
	if !s.Exists(ctx, "certificates") || s.Exists(ctx, "certificates/ca/c.test") {
		t.Errorf("Exists() wrong")
	}
	if err := s.Delete(ctx, "certificates/ca/a.test"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/a.test") || !s.Exists(ctx, "certificates/ca/b.test") || !s.Exists(ctx, "top") {
		t.Errorf("Delete(folder) removed the wrong keys: %q", srv.KVKeys(""))
	}
	if c := srv.Counts(); c.Tokens["tok"] == 0 {
		t.Errorf("no request carried the token: %+v", c.Tokens)
	}
}

// TestConsulStorageLock checks that the lock is exclusive across two
// storages (two instances), that a waiter gives up with its context, and
// that a dead holder's session releases it.
func TestConsulStorageLock(t *testing.T) {
	t.Parallel()
	srv := consultest.NewServer(t)
	a, b := newConsulStorage(t, srv), newConsulStorage(t, srv)
	ctx := context.Background()
	if err := a.Lock(ctx, "issue_cert_x.test"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := b.Lock(short, "issue_cert_x.test"); err == nil {
		t.Fatal("second Lock succeeded while the first is held")
	}
	var got atomic.Bool
	done := make(chan error, 1)
	go func() {
		err := b.Lock(ctx, "issue_cert_x.test")
		got.Store(true)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the waiter block; nothing below depends on it
	if got.Load() {
		t.Fatal("waiter took a held lock")
	}
	if err := a.Unlock(ctx, "issue_cert_x.test"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter Lock() error: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter did not get the released lock")
	}
	// b holds it now; its session dies (its process crashed): a gets it.
	for _, id := range srv.Sessions() {
		srv.DestroySession(id)
	}
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	if err := a.Lock(lctx, "issue_cert_x.test"); err != nil {
		t.Fatalf("Lock() after the holder's session ended: %v", err)
	}
	if err := a.Unlock(ctx, "nope"); err == nil {
		t.Errorf("Unlock(not held) = nil; want an error")
	}
}
