package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/metrics"
	"github.com/aralez-go/aralez/policy/ratelimit"
	"github.com/aralez-go/aralez/policy/ratelimit/redisstore"
	edgetls "github.com/aralez-go/aralez/tls"
)

// limiterOptions returns the rate limiter's options: with
// rate_limit_store (or the redis block), a Redis store shared by the
// fleet, exchanged every rate_limit_sync, and the store to close at exit
// (nil without one).
func limiterOptions(m *config.Main, log *slog.Logger) (ratelimit.Options, io.Closer, error) {
	r := m.RateLimitStore
	if r == nil {
		return ratelimit.Options{}, nil, nil
	}
	o := redisstore.Options{Address: r.Address, Username: r.Username, Password: r.Password, DB: r.DB, KeyPrefix: r.KeyPrefix}
	if r.TLS {
		host, _, _ := net.SplitHostPort(r.Address)
		cfg, err := edgetls.ClientConfig(host, true, m.TLSCAFile)
		if err != nil {
			return ratelimit.Options{}, nil, fmt.Errorf("rate_limit_store: %w", err)
		}
		o.TLS = cfg
	}
	st, err := redisstore.New(o)
	if err != nil {
		return ratelimit.Options{}, nil, fmt.Errorf("rate_limit_store: %w", err)
	}
	log.Info("rate limits shared through Redis", "address", r.Address, "tls", r.TLS,
		"sync_seconds", m.RateLimitSync.Seconds(), "fleet_size", m.RateLimitFleetSize)
	return ratelimit.Options{Store: st, SyncInterval: m.RateLimitSync, FleetSize: m.RateLimitFleetSize, Logger: log}, st, nil
}

// storeStats adapts the limiter's exchange counters to the metrics.
func storeStats(f func() ratelimit.FleetStats) func() metrics.StoreStats {
	return func() metrics.StoreStats {
		s := f()
		return metrics.StoreStats{Up: s.Up, Instances: s.Instances, Exchanges: s.Exchanges,
			Failures: s.Failures, Outages: s.Outages, Keys: s.Keys, Dropped: s.Dropped}
	}
}
