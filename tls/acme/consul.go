package acme

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/consul/api"
)

// DefaultConsulSessionTTL is ConsulOptions.SessionTTL when zero: a lock
// whose holder died is released this long after its last renewal.
const DefaultConsulSessionTTL = 15 * time.Second

// ConsulOptions configures NewConsulStorage.
type ConsulOptions struct {
	// Address is the Consul agent, host:port or URL. Empty means the
	// consul/api default (CONSUL_HTTP_ADDR, else 127.0.0.1:8500).
	Address string
	// Prefix is the KV prefix every key goes under ("aralez/acme").
	// Required.
	Prefix string
	// Token is the ACL token. Empty means CONSUL_HTTP_TOKEN.
	Token string
	// SessionTTL is the TTL of lock sessions. Zero means
	// DefaultConsulSessionTTL.
	SessionTTL time.Duration
}

// ConsulStorage is a certmagic.Storage in Consul's KV store, so that a
// fleet of proxies shares account, certificates, challenge tokens and
// locks. Locks are Consul locks (a session per lock, KV acquire), so a
// holder that dies releases its locks when its session times out. Keys
// have no modification time. It is safe for concurrent use; it must not
// be copied.
type ConsulStorage struct {
	_ noCopy

	kv     *api.KV
	client *api.Client
	prefix string
	ttl    time.Duration

	mu    sync.Mutex // guards locks
	locks map[string]*api.Lock
}

var _ certmagic.Storage = (*ConsulStorage)(nil)

// NewConsulStorage returns a storage over the Consul agent o names. It
// makes no request.
func NewConsulStorage(o ConsulOptions) (*ConsulStorage, error) {
	prefix := strings.Trim(o.Prefix, "/")
	if prefix == "" {
		return nil, errors.New("acme: Consul storage needs a KV prefix")
	}
	cfg := api.DefaultConfig()
	if o.Address != "" {
		cfg.Address = o.Address
	}
	if o.Token != "" {
		cfg.Token = o.Token
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("acme: Consul client: %w", err)
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultConsulSessionTTL
	}
	return &ConsulStorage{kv: c.KV(), client: c, prefix: prefix, ttl: o.SessionTTL, locks: make(map[string]*api.Lock)}, nil
}

// key maps a storage key to its KV key.
func (s *ConsulStorage) key(k string) string { return path.Join(s.prefix, k) }

// Store puts value at key.
func (s *ConsulStorage) Store(ctx context.Context, key string, value []byte) error {
	if _, err := s.kv.Put(&api.KVPair{Key: s.key(key), Value: value}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: storing %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (s *ConsulStorage) Load(ctx context.Context, key string) ([]byte, error) {
	p, _, err := s.kv.Get(s.key(key), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul: loading %s: %w", key, err)
	}
	if p == nil {
		return nil, fmt.Errorf("consul: %s: %w", key, fs.ErrNotExist)
	}
	return p.Value, nil
}

// Delete removes key and every key below it ("key/…"); a missing key
// is not an error.
func (s *ConsulStorage) Delete(ctx context.Context, key string) error {
	w := (&api.WriteOptions{}).WithContext(ctx)
	if _, err := s.kv.Delete(s.key(key), w); err != nil {
		return fmt.Errorf("consul: deleting %s: %w", key, err)
	}
	if _, err := s.kv.DeleteTree(s.key(key)+"/", w); err != nil {
		return fmt.Errorf("consul: deleting %s/: %w", key, err)
	}
	return nil
}

// Exists reports whether key is a value or has keys below it.
func (s *ConsulStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the keys below dir: all of them when recursive, else the
// direct children (values and folders).
func (s *ConsulStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	sep := "/"
	if recursive {
		sep = ""
	}
	base := s.key(dir) + "/"
	keys, _, err := s.kv.Keys(base, sep, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul: listing %s: %w", dir, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("consul: %s: %w", dir, fs.ErrNotExist)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, path.Join(dir, strings.TrimSuffix(strings.TrimPrefix(k, base), "/")))
	}
	return out, nil
}

// Stat describes key: a value (IsTerminal) or a folder of keys.
func (s *ConsulStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	p, _, err := s.kv.Get(s.key(key), q)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("consul: stat %s: %w", key, err)
	}
	if p != nil {
		return certmagic.KeyInfo{Key: key, Size: int64(len(p.Value)), IsTerminal: true}, nil
	}
	keys, _, err := s.kv.Keys(s.key(key)+"/", "/", q)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("consul: stat %s: %w", key, err)
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("consul: %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key}, nil
}

// Lock takes the cluster-wide lock name, waiting while another instance
// holds it, until ctx is done.
func (s *ConsulStorage) Lock(ctx context.Context, name string) error {
	l, err := s.client.LockOpts(&api.LockOptions{
		Key:        s.key("locks/" + name),
		SessionTTL: s.ttl.String(),
		// certmagic holds its locks across a whole order; losing one to
		// a short Consul hiccup must not start a second order.
		MonitorRetries: 5,
		// The client checks for cancellation between blocking reads of
		// the lock key only: keep each read short.
		LockWaitTime: time.Second,
	})
	if err != nil {
		return fmt.Errorf("consul: lock %s: %w", name, err)
	}
	stop := make(chan struct{})
	release := context.AfterFunc(ctx, func() { close(stop) })
	lost, err := l.Lock(stop)
	release()
	if err != nil {
		return fmt.Errorf("consul: lock %s: %w", name, err)
	}
	if lost == nil { // stop closed: ctx is done
		return fmt.Errorf("consul: lock %s: %w", name, context.Cause(ctx))
	}
	s.mu.Lock()
	s.locks[name] = l
	s.mu.Unlock()
	return nil
}

// Unlock releases the lock name taken by this storage.
func (s *ConsulStorage) Unlock(_ context.Context, name string) error {
	s.mu.Lock()
	l, ok := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("consul: unlock %s: not held", name)
	}
	if err := l.Unlock(); err != nil {
		return fmt.Errorf("consul: unlock %s: %w", name, err)
	}
	return nil
}
