package acme

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	edgetls "github.com/aralez-go/aralez/tls"
)

// Let's Encrypt's directories, for the acme_directory shorthands.
const (
	// ProductionDirectory is Let's Encrypt's production directory.
	ProductionDirectory = certmagic.LetsEncryptProductionCA
	// StagingDirectory is Let's Encrypt's staging directory.
	StagingDirectory = certmagic.LetsEncryptStagingCA
)

// Source is the edgetls source name under which a Manager hands its
// certificates to the store.
const Source = "acme"

// Defaults of Options.
const (
	// DefaultRenewCheckInterval is how often the certificates are checked
	// for renewal (certmagic's default).
	DefaultRenewCheckInterval = certmagic.DefaultRenewCheckInterval
	// DefaultRenewalWindowRatio is the part of a certificate's lifetime,
	// at its end, in which it is renewed (certmagic's default, 1/3: a
	// 90-day certificate is renewed with 30 days left).
	DefaultRenewalWindowRatio = certmagic.DefaultRenewalWindowRatio
	// DefaultOrderTimeout bounds one synchronous order (Order).
	DefaultOrderTimeout = 2 * time.Minute
)

// ErrNoDNSProvider is returned by Manage and Order for a wildcard name
// when no DNS provider is configured: wildcards need DNS-01 (RFC 8555
// §7.1.3).
var ErrNoDNSProvider = errors.New("acme: wildcard names need DNS-01: set acme_dns_provider")

// ErrNoChallenge is returned by Manage and Order when no challenge type
// can be used for a name (none enabled).
var ErrNoChallenge = errors.New("acme: no challenge type enabled for this name")

// Options configures a Manager. Store is required; every other field may
// be left zero.
type Options struct {
	// Store receives the certificates (source "acme") and answers
	// TLS-ALPN-01 through the Manager.
	Store *edgetls.Store
	// Directory is the ACME directory URL. Empty means
	// ProductionDirectory.
	Directory string
	// Email is the account's contact address; empty means none.
	Email string
	// EABKeyID and EABHMACKey bind the account to one at the CA (RFC 8555
	// §7.3.4); both or neither. The HMAC key is base64url.
	EABKeyID, EABHMACKey string
	// TrustedRoots verifies the directory's HTTPS; nil means the system
	// roots.
	TrustedRoots *x509.CertPool

	// HTTPAddr is the proxy's cleartext listener (host:port), which
	// answers HTTP-01 through HTTPChallenge. Empty disables HTTP-01.
	HTTPAddr string
	// TLSAddr is the proxy's TLS listener (host:port), which answers
	// TLS-ALPN-01 through the Store. Empty disables TLS-ALPN-01.
	TLSAddr string
	// DNS, when set, solves DNS-01: for wildcard names, and for every
	// name when DNSOnly is true.
	DNS DNSProvider
	// DNSOnly makes every name use DNS-01.
	DNSOnly bool
	// DNSResolvers are the DNS servers (host:port) asked whether a DNS-01
	// record has propagated; nil means the system's.
	DNSResolvers []string
	// DNSPollInterval is how often they are asked. Zero means
	// DefaultDNSPollInterval.
	DNSPollInterval time.Duration

	// Storage keeps account keys, certificates, challenge tokens and
	// locks. Instances sharing one Storage share certificates and take
	// turns ordering them. Nil means a folder, StorageDir.
	Storage certmagic.Storage
	// StorageDir is the folder of the default storage.
	StorageDir string
	// ExportDir, when set, receives a copy of every certificate as
	// NAME.crt (leaf and chain) and NAME.key (mode 0600), as Aralez
	// writes them; a wildcard is written as wildcard_.example.com.
	ExportDir string

	// RenewalWindowRatio is the part of a certificate's lifetime, at its
	// end, in which it is renewed. Zero means DefaultRenewalWindowRatio.
	RenewalWindowRatio float64
	// RenewCheckInterval is how often certificates are checked for
	// renewal. Zero means DefaultRenewCheckInterval.
	RenewCheckInterval time.Duration
	// OrderTimeout bounds one Order call. Zero means DefaultOrderTimeout.
	OrderTimeout time.Duration

	// OnResult, when set, is called after every order or renewal with its
	// outcome (err nil on success), for metrics. It must not block.
	OnResult func(name string, renewal bool, err error)
	// Logger receives the manager's and the ACME library's logs. Nil
	// means slog.Default().
	Logger *slog.Logger
}

// Status is the state of one managed name.
type Status struct {
	// Name is the managed name ("*.example.com" for a wildcard).
	Name string
	// NotAfter is the expiry of the certificate served for Name; zero
	// while none has been obtained.
	NotAfter time.Time
	// Challenge is the challenge type used for Name: "http-01",
	// "tls-alpn-01", "http-01/tls-alpn-01" (both offered; the ACME
	// client picks one the CA allows) or "dns-01".
	Challenge string
	// LastError is the error of the last failed order or renewal, empty
	// after a success.
	LastError string
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
	// Renewals and Failures count successful and failed renewals.
	Renewals, Failures int
}

// Manager obtains and renews certificates with ACME (through certmagic),
// hands them to an edgetls.Store, answers HTTP-01 (HTTPChallenge) and
// TLS-ALPN-01 (through the Store) for the tokens it holds, and exports
// them to a folder. Its methods are safe for concurrent use. A Manager
// must not be copied.
type Manager struct {
	_ noCopy

	o       Options
	log     *slog.Logger
	storage certmagic.Storage
	cache   *certmagic.Cache
	cfg     *certmagic.Config     // HTTP-01 and TLS-ALPN-01
	dnsCfg  *certmagic.Config     // DNS-01; nil without a provider
	iss     *certmagic.ACMEIssuer // cfg's issuer
	dnsIss  *certmagic.ACMEIssuer // dnsCfg's issuer; nil without a provider
	ctx     context.Context
	cancel  context.CancelFunc

	keyMu   sync.Mutex // guards acctKey and the issuers' AccountKeyPEM
	acctKey []byte     // account key PEM; nil until first use (accountKey)

	acctMu sync.Mutex // serialises account registration; guards acctOK
	acctOK bool

	mu       sync.Mutex // guards the fields below
	names    map[string]*nameState
	certs    map[string]*tls.Certificate // by name, what the store got
	obtained int                         // certificates obtained or renewed
	wg       sync.WaitGroup              // manage goroutines
}

// nameState is the Manager's record of one managed name.
type nameState struct {
	Status
}

// noCopy trips go vet's copylocks check when a Manager is copied.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// New returns a Manager for o. It contacts no CA and writes nothing to
// storage: the account key is loaded or created there on first use (an
// order, Manage of a name, or CreateAccount), so that a proxy that never
// uses ACME leaves no files behind. Call Manage to start obtaining
// certificates and Stop to end. It returns an error for a missing Store,
// a bad directory URL, half an EAB pair, or neither Storage nor
// StorageDir.
func New(o Options) (*Manager, error) {
	if o.Store == nil {
		return nil, errors.New("acme: Options.Store is nil")
	}
	if o.Directory == "" {
		o.Directory = ProductionDirectory
	}
	if u, err := url.Parse(o.Directory); err != nil || u.Host == "" {
		return nil, fmt.Errorf("acme: bad directory URL %q", o.Directory)
	}
	if (o.EABKeyID == "") != (o.EABHMACKey == "") {
		return nil, errors.New("acme: the EAB key ID and HMAC key go together")
	}
	if o.RenewalWindowRatio <= 0 || o.RenewalWindowRatio >= 1 {
		o.RenewalWindowRatio = DefaultRenewalWindowRatio
	}
	if o.RenewCheckInterval <= 0 {
		o.RenewCheckInterval = DefaultRenewCheckInterval
	}
	if o.OrderTimeout <= 0 {
		o.OrderTimeout = DefaultOrderTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Manager{o: o, log: o.Logger, storage: o.Storage, names: make(map[string]*nameState), certs: make(map[string]*tls.Certificate)}
	if m.storage == nil {
		if o.StorageDir == "" {
			return nil, errors.New("acme: neither Storage nor StorageDir is set")
		}
		m.storage = &certmagic.FileStorage{Path: o.StorageDir}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	zl := newZapLogger(m.log)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) {
			return m.configFor(c.Names), nil
		},
		RenewCheckInterval: o.RenewCheckInterval,
		// OCSP stapling is off (below); this only spaces the idle checks.
		OCSPCheckInterval: 24 * time.Hour,
		Logger:            zl.Logger,
	})
	m.cfg = m.newConfig(zl, nil)
	if o.DNS != nil {
		m.dnsCfg = m.newConfig(zl, &dnsSolver{p: o.DNS, resolvers: o.DNSResolvers,
			poll: cmp.Or(o.DNSPollInterval, DefaultDNSPollInterval), timeout: DefaultDNSPropagationTimeout})
	}
	o.Store.SetChallengeResponder(m)
	m.wg.Add(1)
	go m.syncLoop()
	return m, nil
}

// newConfig builds one certmagic config over the shared cache; dns nil
// means HTTP-01 and TLS-ALPN-01 on the proxy's listeners.
func (m *Manager) newConfig(zl *zapLogger, dns *dnsSolver) *certmagic.Config {
	o := &m.o
	cfg := certmagic.New(m.cache, certmagic.Config{
		RenewalWindowRatio: o.RenewalWindowRatio,
		Storage:            m.storage,
		OnEvent:            m.onEvent,
		// Let's Encrypt no longer runs OCSP, and the store, not
		// certmagic, serves the certificates: no OCSP traffic at all.
		OCSP:   certmagic.OCSPConfig{DisableStapling: true},
		Logger: zl.Logger,
	})
	// AccountKeyPEM is set on first use (accountKey), before certmagic is
	// asked to order anything.
	tmpl := certmagic.ACMEIssuer{
		CA:           o.Directory,
		Email:        o.Email,
		Agreed:       true,
		TrustedRoots: o.TrustedRoots,
		Logger:       zl.Logger,
	}
	if o.EABKeyID != "" {
		tmpl.ExternalAccount = &acme.EAB{KeyID: o.EABKeyID, MACKey: o.EABHMACKey}
	}
	if dns != nil {
		tmpl.DNS01Solver = dns
	} else {
		// certmagic answers a challenge with its own listener unless the
		// port is taken; the proxy's listeners take it, so the challenges
		// reach HTTPChallenge and the Store's responder.
		tmpl.DisableHTTPChallenge = o.HTTPAddr == ""
		tmpl.DisableTLSALPNChallenge = o.TLSAddr == ""
		if host, port, err := net.SplitHostPort(o.HTTPAddr); err == nil {
			tmpl.ListenHost = host
			tmpl.AltHTTPPort, _ = strconv.Atoi(port)
		}
		if host, port, err := net.SplitHostPort(o.TLSAddr); err == nil {
			if tmpl.ListenHost == "" {
				tmpl.ListenHost = host
			}
			tmpl.AltTLSALPNPort, _ = strconv.Atoi(port)
		}
	}
	iss := certmagic.NewACMEIssuer(cfg, tmpl)
	cfg.Issuers = []certmagic.Issuer{iss}
	if dns == nil {
		m.iss = iss
	} else {
		m.dnsIss = iss
	}
	return cfg
}

// configFor returns the config that manages a certificate for names.
func (m *Manager) configFor(names []string) *certmagic.Config {
	if m.dnsCfg != nil && (m.o.DNSOnly || slices.ContainsFunc(names, isWildcard)) {
		return m.dnsCfg
	}
	return m.cfg
}

func isWildcard(n string) bool { return strings.HasPrefix(n, "*.") }

// challengeFor names the challenge a name is validated with, or returns
// an error when none is possible.
func (m *Manager) challengeFor(name string) (string, error) {
	switch {
	case isWildcard(name) && m.dnsCfg == nil:
		return "", ErrNoDNSProvider
	case m.dnsCfg != nil && (m.o.DNSOnly || isWildcard(name)):
		return "dns-01", nil
	case m.o.HTTPAddr != "" && m.o.TLSAddr != "":
		return "http-01/tls-alpn-01", nil
	case m.o.HTTPAddr != "":
		return "http-01", nil
	case m.o.TLSAddr != "":
		return "tls-alpn-01", nil
	}
	return "", ErrNoChallenge
}

// Manage starts managing names (in addition to those already managed):
// each certificate is loaded from storage or obtained in the background,
// then renewed within the renewal window, with back-off after failures.
// It returns at once; a name that can never be obtained (a wildcard
// without DNS provider) is skipped and reported in the error, the others
// are managed anyway.
func (m *Manager) Manage(names []string) error {
	var errs []error
	byCfg := map[*certmagic.Config][]string{}
	m.mu.Lock()
	for _, n := range names {
		if _, ok := m.names[n]; ok {
			continue
		}
		ch, err := m.challengeFor(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
			continue
		}
		m.names[n] = &nameState{Status: Status{Name: n, Challenge: ch}}
		cfg := m.configFor([]string{n})
		byCfg[cfg] = append(byCfg[cfg], n)
	}
	m.mu.Unlock()
	if len(byCfg) > 0 {
		m.wg.Add(1)
		go m.manage(byCfg)
	}
	return errors.Join(errs...)
}

// manage registers the account (retrying with back-off while the CA is
// unreachable) and then hands the names to certmagic.
func (m *Manager) manage(byCfg map[*certmagic.Config][]string) {
	defer m.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("acme: panic while starting certificate management", "panic", r)
		}
	}()
	for delay := time.Second; ; delay = min(2*delay, 10*time.Minute) {
		err := m.ensureAccount(m.ctx)
		if err == nil {
			break
		}
		m.log.Error("acme: account registration failed; retrying", "err", err, "retry_seconds", delay.Seconds())
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	for cfg, list := range byCfg {
		m.log.Info("acme: managing certificates", "names", list)
		if err := cfg.ManageAsync(m.ctx, list); err != nil {
			m.log.Error("acme: managing certificates", "names", list, "err", err)
		}
	}
}

// ensureAccount registers the account at the CA once per Manager.
func (m *Manager) ensureAccount(ctx context.Context) error {
	m.acctMu.Lock()
	defer m.acctMu.Unlock()
	if m.acctOK {
		return nil
	}
	if _, err := m.CreateAccount(ctx); err != nil {
		return err
	}
	m.acctOK = true
	return nil
}

// Unmanage stops renewing names and stops serving their certificates.
// The certificates stay in storage and in the export folder.
func (m *Manager) Unmanage(names []string) {
	var subj []certmagic.SubjectIssuer
	m.mu.Lock()
	changed := false
	for _, n := range names {
		if _, ok := m.names[n]; !ok {
			continue
		}
		delete(m.names, n)
		if _, ok := m.certs[n]; ok {
			delete(m.certs, n)
			changed = true
		}
		subj = append(subj, certmagic.SubjectIssuer{Subject: n})
	}
	if changed {
		m.publishLocked()
	}
	m.mu.Unlock()
	if len(subj) > 0 {
		m.cache.RemoveManaged(subj)
		m.log.Info("acme: no longer managing", "names", names)
	}
}

// Names returns the managed names, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.names))
	for n := range m.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Status returns the state of every managed name, sorted by name.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.names))
	for _, st := range m.names {
		out = append(out, st.Status)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Order obtains a certificate for name now and manages it from then on
// (the config API's /acme_order). When storage already holds a
// certificate that is not due for renewal, nothing is ordered and fresh
// is true. It waits at most OrderTimeout. Errors: ErrNoDNSProvider,
// ErrNoChallenge, and the CA's or the network's.
func (m *Manager) Order(ctx context.Context, name string) (fresh bool, err error) {
	ch, err := m.challengeFor(name)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.o.OrderTimeout)
	defer cancel()
	cfg := m.configFor([]string{name})
	m.mu.Lock()
	st, known := m.names[name]
	if !known {
		st = &nameState{Status: Status{Name: name, Challenge: ch}}
		m.names[name] = st
	}
	hadCert := !st.NotAfter.IsZero()
	m.mu.Unlock()
	if err := m.ensureAccount(ctx); err != nil {
		m.fail(name, false, err)
		return false, err
	}
	before := m.countObtained()
	if err := cfg.ManageSync(ctx, []string{name}); err != nil {
		m.fail(name, false, err)
		return false, fmt.Errorf("acme: ordering %s: %w", name, err)
	}
	return hadCert || m.countObtained() == before, nil
}

// countObtained counts the certificates obtained or renewed so far.
func (m *Manager) countObtained() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.obtained
}

// CreateAccount makes sure the ACME account exists at the CA (the config
// API's /acme_create): it registers the Manager's account key, agreeing
// to the CA's terms, with the contact e-mail and EAB if configured, or
// finds the account already registered with it (RFC 8555 §7.3.1). It
// returns the account URL.
func (m *Manager) CreateAccount(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, m.o.OrderTimeout)
	defer cancel()
	pemKey, err := m.accountKey(ctx)
	if err != nil {
		return "", err
	}
	key, err := certmagic.PEMDecodePrivateKey(pemKey)
	if err != nil {
		return "", fmt.Errorf("acme: decoding the account key: %w", err)
	}
	client := &acme.Client{Directory: m.o.Directory, HTTPClient: m.httpClient(), Logger: slog.New(slog.DiscardHandler)}
	acct := acme.Account{PrivateKey: key, TermsOfServiceAgreed: true}
	if m.o.Email != "" {
		acct.Contact = []string{"mailto:" + m.o.Email}
	}
	if m.o.EABKeyID != "" {
		if err := acct.SetExternalAccountBinding(ctx, client, acme.EAB{KeyID: m.o.EABKeyID, MACKey: m.o.EABHMACKey}); err != nil {
			return "", fmt.Errorf("acme: external account binding: %w", err)
		}
	}
	acct, err = client.NewAccount(ctx, acct)
	if err != nil {
		return "", fmt.Errorf("acme: registering the account: %w", err)
	}
	m.log.Info("acme: account ready", "account", acct.Location, "status", acct.Status)
	return acct.Location, nil
}

// httpClient is the client for direct calls to the CA.
func (m *Manager) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: m.o.TrustedRoots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// accountKeyPath is the storage key of the account key, per directory,
// so that every instance sharing the storage uses one account.
func (m *Manager) accountKeyPath() string {
	u, _ := url.Parse(m.o.Directory)
	return "aralez/accounts/" + certmagic.StorageKeys.Safe(u.Host+u.Path) + ".key"
}

// accountKey returns the account key PEM, loaded from storage or created
// there on the first call, and hands it to the issuers. Every path that
// lets certmagic talk to the CA (Manage, Order) registers the account
// through CreateAccount first, so the issuers never make a key of their
// own.
func (m *Manager) accountKey(ctx context.Context) ([]byte, error) {
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	if m.acctKey != nil {
		return m.acctKey, nil
	}
	b, err := m.loadAccountKey(ctx)
	if err != nil {
		return nil, err
	}
	for _, iss := range []*certmagic.ACMEIssuer{m.iss, m.dnsIss} {
		if iss != nil {
			iss.AccountKeyPEM = string(b)
		}
	}
	m.acctKey = b
	return b, nil
}

// loadAccountKey loads the account key from storage or, under the
// storage lock, creates it (ECDSA P-256).
func (m *Manager) loadAccountKey(ctx context.Context) ([]byte, error) {
	path := m.accountKeyPath()
	if b, err := m.storage.Load(ctx, path); err == nil {
		return b, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("acme: loading the account key: %w", err)
	}
	if err := m.storage.Lock(ctx, "aralez_account_key"); err != nil {
		return nil, fmt.Errorf("acme: locking the account key: %w", err)
	}
	defer func() { _ = m.storage.Unlock(ctx, "aralez_account_key") }()
	if b, err := m.storage.Load(ctx, path); err == nil {
		return b, nil // another instance made it meanwhile
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := m.storage.Store(ctx, path, b); err != nil {
		return nil, fmt.Errorf("acme: storing the account key: %w", err)
	}
	return b, nil
}
