// Package redisstore shares the counters of a ratelimit.Limiter with the
// other instances of a fleet through Redis (or Valkey, which speaks the
// same protocol), using the github.com/redis/go-redis/v9 client.
//
// # What is stored
//
// For each limiter key one exchange runs one Lua script, atomically:
//
//   - the key's rate limit is a GCRA bucket shared by the fleet, kept as
//     one number, its theoretical arrival time (TAT) in microseconds of
//     the Redis server's clock, at <prefix>rl:{<client>,<host>,<route>}.
//     The script adds what the instance admitted since its previous
//     exchange (TAT = max(TAT, now) + admitted × interval, capped at
//     now + the limiter's MaxAhead) and returns how far the TAT is
//     ahead of now. Using the server's clock and returning a relative
//     value keeps the instances' clocks out of the arithmetic.
//   - the key's 4xx limit is a fixed one-second window count at
//     <prefix>x4:{<client>,<host>,<route>}:<window>, incremented by what
//     the instance counted and returned; it expires after 3 s.
//
// <client> is the IPv4 address or the IPv6 /64 ("2001:db8:1:2::/64"),
// <host> and <route> the hexadecimal host and route parts of the key,
// which the proxy derives from the host name and the route's host and
// path prefix: the same in every instance and across reloads. The braces
// are a Redis Cluster hash tag, so both keys of a limiter key live in one
// slot. Every key expires by itself (the TAT a second after it is
// reached), so the store needs no cleaning.
//
// Each exchange also announces the instance in the sorted set
// <prefix>instances (member: a random id per process, score: the server's
// time) and returns how many instances exchanged within InstanceTTL.
//
// All keys of one exchange go in one pipeline: one round trip per
// exchange, however many keys.
package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/aralez-go/aralez/policy/ratelimit"
)

const (
	// DefaultKeyPrefix starts every key when Options.KeyPrefix is empty.
	DefaultKeyPrefix = "aralez:"
	// DefaultDialTimeout is Options.DialTimeout when zero.
	DefaultDialTimeout = time.Second
	// DefaultInstanceTTL is Options.InstanceTTL when zero: twice the
	// longest sync interval.
	DefaultInstanceTTL = 2 * time.Second
)

// Options configures a Store.
type Options struct {
	// Address is the server's host:port.
	Address string
	// Username and Password authenticate (AUTH); both may be empty.
	Username, Password string
	// DB is the database number.
	DB int
	// TLS, when not nil, connects over TLS with this configuration.
	TLS *tls.Config
	// KeyPrefix starts every key. Default DefaultKeyPrefix.
	KeyPrefix string
	// DialTimeout bounds connecting. Default DefaultDialTimeout. An
	// exchange is bounded by its context as a whole.
	DialTimeout time.Duration
	// InstanceTTL is how long an instance is counted after its last
	// exchange. Default DefaultInstanceTTL.
	InstanceTTL time.Duration
}

// exchangeScript applies one key's counts; see the package doc.
// KEYS: the TAT, the 4xx window count. ARGV: admitted, interval (µs, 0 =
// no rate limit), max ahead (µs), 4xx count (-1 = no 4xx limit).
// Returns {ahead µs, fleet 4xx count}.
var exchangeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local iv = tonumber(ARGV[2])
local ahead = 0
if iv > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
  if tat < now then tat = now end
  tat = tat + n * iv
  local cap = now + tonumber(ARGV[3])
  if tat > cap then tat = cap end
  ahead = tat - now
  if n > 0 and ahead > 0 then
    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil(ahead / 1000) + 1000)
  end
end
local x4 = 0
local n4 = tonumber(ARGV[4])
if n4 > 0 then
  x4 = redis.call('INCRBY', KEYS[2], n4)
  redis.call('EXPIRE', KEYS[2], 3)
elseif n4 == 0 then
  x4 = tonumber(redis.call('GET', KEYS[2]) or 0)
end
return {ahead, x4}
`)

// instancesScript announces an instance and counts the live ones.
// KEYS: the sorted set. ARGV: instance id, TTL (µs).
var instancesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZCARD', KEYS[1])
`)

// Store is a ratelimit.Store on one Redis server. Exchange must not be
// called concurrently (the Limiter's exchange loop is the only caller);
// Close may be called from any goroutine.
type Store struct {
	rdb       *redis.Client
	prefix    string
	instances string
	id        string
	ttl       int64 // µs

	cmds []*redis.Cmd // owned by Exchange
	buf  []byte
}

var _ ratelimit.Store = (*Store)(nil)

// quiet discards the go-redis client's own log lines (a failed dial per
// exchange during an outage); the Limiter logs one line per outage.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// New returns a Store for o. It does not connect: the first Exchange
// does, and each later one reconnects as needed. The first call silences
// the go-redis client's process-wide log, which would print every failed
// dial of an outage; exchange errors reach the Limiter instead.
func New(o Options) (*Store, error) {
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	if _, _, err := net.SplitHostPort(o.Address); err != nil {
		return nil, fmt.Errorf("redisstore: address %q: %w", o.Address, err)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.InstanceTTL <= 0 {
		o.InstanceTTL = DefaultInstanceTTL
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	rdb := redis.NewClient(&redis.Options{
		Addr:      o.Address,
		Username:  o.Username,
		Password:  o.Password,
		DB:        o.DB,
		TLSConfig: o.TLS,
		// One goroutine exchanges; a second connection covers a
		// reconnect while the first is being closed.
		PoolSize:    2,
		DialTimeout: o.DialTimeout,
		// The exchange's context bounds every read and write; a failed
		// exchange is not retried (the next one comes soon).
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DisableIdentity:       true,
		Protocol:              2,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	return &Store{
		rdb:       rdb,
		prefix:    o.KeyPrefix,
		instances: o.KeyPrefix + "instances",
		id:        hex.EncodeToString(id[:]),
		ttl:       o.InstanceTTL.Microseconds(),
	}, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.rdb.Close() }

// Exchange implements ratelimit.Store: one pipeline with one script per
// item and the instance announcement. A failure to reach the server (or
// ctx expiring) is returned and fills nothing; a key whose script fails
// on its own (a foreign value at its name, say) is left unfilled, which
// leaves that key to its local limit.
func (s *Store) Exchange(ctx context.Context, items []ratelimit.Exchange) (int, error) {
	n, err := s.exchange(ctx, items)
	if err != nil && isNoScript(err) {
		// The server restarted or flushed its scripts: load them
		// and try once more.
		if err = s.load(ctx); err == nil {
			n, err = s.exchange(ctx, items)
		}
	}
	return n, err
}

func (s *Store) load(ctx context.Context) error {
	for _, sc := range []*redis.Script{exchangeScript, instancesScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("redisstore: loading scripts: %w", err)
		}
	}
	return nil
}

func (s *Store) exchange(ctx context.Context, items []ratelimit.Exchange) (int, error) {
	pipe := s.rdb.Pipeline()
	s.cmds = s.cmds[:0]
	for i := range items {
		it := &items[i]
		base := s.keyBase(it.Key)
		tatKey := "rl:" + base
		x4Key := "x4:" + base + ":" + strconv.FormatUint(uint64(it.X4Window), 10)
		iv := int64(0)
		if it.Interval > 0 {
			iv = max(1, (int64(it.Interval)+999)/1000)
		}
		n4 := int64(-1)
		if it.X4Limit > 0 {
			n4 = it.X4Count
		}
		s.cmds = append(s.cmds, exchangeScript.EvalSha(ctx, pipe, []string{s.prefix + tatKey, s.prefix + x4Key},
			it.Admitted, iv, it.MaxAhead.Microseconds(), n4))
	}
	inst := instancesScript.EvalSha(ctx, pipe, []string{s.instances}, s.id, s.ttl)
	_, err := pipe.Exec(ctx)
	if err := inst.Err(); err != nil {
		return 0, fmt.Errorf("redisstore: exchange with %s: %w", s.rdb.Options().Addr, err)
	}
	if err != nil && !isReplyError(err) {
		return 0, fmt.Errorf("redisstore: exchange with %s: %w", s.rdb.Options().Addr, err)
	}
	for i, c := range s.cmds {
		v, err := c.Int64Slice()
		if err != nil || len(v) != 2 {
			continue
		}
		items[i].Ahead = time.Duration(v[0]) * time.Microsecond
		items[i].X4Fleet = v[1]
	}
	instances, err := inst.Int64()
	return int(instances), err
}

// keyBase returns "{<client>,<host>,<route>}" for k.
func (s *Store) keyBase(k ratelimit.Key) string {
	b := append(s.buf[:0], '{')
	c := k.Client()
	if c.Bits() == 32 {
		b = c.Addr().AppendTo(b)
	} else {
		b = c.AppendTo(b)
	}
	b = append(b, ',')
	b = strconv.AppendUint(b, k.Host(), 16)
	b = append(b, ',')
	b = strconv.AppendUint(b, k.Route(), 16)
	b = append(b, '}')
	s.buf = b
	return string(b)
}

func isNoScript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }

// isReplyError reports whether err is an error reply of the server
// (as opposed to a network or context error).
func isReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}
