package acme

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
)

// DNSProvider sets and removes the TXT records of DNS-01 challenges (RFC
// 8555 §8.4) at a DNS host; package dnsprovider has Cloudflare and
// Route53. Implementations must be safe for concurrent use.
type DNSProvider interface {
	// SetTXT adds a TXT record name (a fully qualified name without the
	// trailing dot, "_acme-challenge.example.com") with value, keeping
	// other values of the same name.
	SetTXT(ctx context.Context, name, value string) error
	// ClearTXT removes the TXT record name with value; a record already
	// gone is not an error.
	ClearTXT(ctx context.Context, name, value string) error
}

// Defaults of the DNS-01 propagation check.
const (
	// DefaultDNSPollInterval is how often the resolvers are asked whether
	// the TXT record is visible.
	DefaultDNSPollInterval = 2 * time.Second
	// DefaultDNSPropagationTimeout bounds the wait for the record.
	DefaultDNSPropagationTimeout = 2 * time.Minute
)

// dnsSolver solves DNS-01 with a DNSProvider and waits until the
// resolvers see the record before the CA is told to look.
type dnsSolver struct {
	p         DNSProvider
	resolvers []string
	poll      time.Duration
	timeout   time.Duration
}

var (
	_ acmez.Solver = (*dnsSolver)(nil)
	_ acmez.Waiter = (*dnsSolver)(nil)
)

func (s *dnsSolver) Present(ctx context.Context, chal acme.Challenge) error {
	if err := s.p.SetTXT(ctx, chal.DNS01TXTRecordName(), chal.DNS01KeyAuthorization()); err != nil {
		return fmt.Errorf("setting the DNS-01 TXT record: %w", err)
	}
	return nil
}

func (s *dnsSolver) CleanUp(ctx context.Context, chal acme.Challenge) error {
	if err := s.p.ClearTXT(ctx, chal.DNS01TXTRecordName(), chal.DNS01KeyAuthorization()); err != nil {
		return fmt.Errorf("removing the DNS-01 TXT record: %w", err)
	}
	return nil
}

// Wait polls the resolvers until each of them answers the TXT record
// with the challenge's value, or the propagation timeout passes.
func (s *dnsSolver) Wait(ctx context.Context, chal acme.Challenge) error {
	name, want := chal.DNS01TXTRecordName(), chal.DNS01KeyAuthorization()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resolvers := s.resolvers
	if len(resolvers) == 0 {
		resolvers = []string{""} // the system's
	}
	for _, addr := range resolvers {
		r := net.DefaultResolver
		if addr != "" {
			r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}
		}
		for {
			txts, err := r.LookupTXT(ctx, name+".")
			if err == nil && slices.Contains(txts, want) {
				break
			}
			select {
			case <-ctx.Done():
				if err == nil {
					err = errors.New("record not visible yet")
				}
				return fmt.Errorf("waiting for TXT %s at resolver %q: %w", name, cmp.Or(addr, "system"), err)
			case <-time.After(s.poll):
			}
		}
	}
	return nil
}
