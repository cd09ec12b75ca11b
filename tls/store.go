package tls

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File name extensions of a certificate pair in the store folder.
const (
	// CertExt ends the name of a pair's PEM certificate file (leaf first,
	// then the chain).
	CertExt = ".crt"
	// KeyExt ends the name of a pair's PEM private key file.
	KeyExt = ".key"
)

// maxPEMSize bounds how much of a .crt or .key file is read (bytes). A
// long chain is a few tens of KiB; anything bigger is not a certificate.
const maxPEMSize = 1 << 20

// ErrNoCertificate is returned by GetCertificate while the store holds no
// usable pair; the handshake is then refused.
var ErrNoCertificate = errors.New("edgetls: no certificate loaded")

// Store serves certificates loaded from a folder of NAME.crt + NAME.key
// PEM pairs (the .crt may hold the leaf followed by its chain). See the
// package doc for naming, SNI and reload rules.
//
// The loaded set is an immutable value behind an atomic.Pointer:
// GetCertificate takes no lock and does not allocate. All methods are safe
// for concurrent use; Reload calls are serialised. A Store must not be
// copied after first use.
type Store struct {
	_ noCopy

	// Debounce is how long Watch waits after the last change event before
	// it reloads (trailing edge), so that a pair written as two files, or
	// a file written in several steps, is read once complete. Zero means
	// DefaultDebounce. Set it before calling Watch.
	Debounce time.Duration
	// PollInterval is how often Watch checks whether a missing folder
	// (and its parent) has appeared. Zero means DefaultPollInterval. Set it
	// before calling Watch.
	PollInterval time.Duration

	dir string
	log *slog.Logger

	// mu serialises Reload and SetCertificates and guards sources;
	// GetCertificate reads only set.
	mu      sync.Mutex
	sources map[string][]*tls.Certificate // by source name; see SetCertificates
	set     atomic.Pointer[certSet]

	responder atomic.Pointer[responderBox] // TLS-ALPN-01; nil when none
}

// noCopy trips go vet's copylocks check when a Store is copied.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// pair is one loaded NAME.crt + NAME.key.
type pair struct {
	name   string // file base name without extension
	cert   *tls.Certificate
	names  []string // lower-case served names, "*.example.com" for wildcards
	digest [sha256.Size]byte
}

// certSet is an immutable snapshot of the loaded pairs, the certificates
// of the other sources and their lookup tables. It is never modified
// after it is stored.
type certSet struct {
	pairs []*pair // sorted by name
	// exact maps a lower-case host name to the certificates that cover
	// it: those naming it and the wildcards of its parent domain, the
	// latest NotAfter first (ties: exact names first, then folder pairs
	// by name, then sources by name).
	exact map[string]certList
	// wild maps the parent domain of a wildcard ("example.com" for
	// "*.example.com") to its certificates, ordered as exact.
	wild map[string]certList
	// def is the first pair by name or, with no pair, the first
	// certificate of the first source; nil when there is none.
	def *tls.Certificate
	// n counts the certificates of every source, pairs included.
	n int
}

// NewStore loads every pair in dir and returns a Store serving them.
//
// It loads what it can: a pair that does not parse, whose key does not
// match the certificate, or that lacks one of its two files is skipped and
// logged at error level. An empty or missing dir is not an error either:
// it is logged as a warning and handshakes are refused (ErrNoCertificate)
// until a pair appears and Reload (or Watch) picks it up.
//
// logger receives the store's logs; nil means slog.Default(). NewStore
// returns an error only when dir is empty or cannot be read for a reason
// other than not existing (permissions, not a folder).
func NewStore(dir string, logger *slog.Logger) (*Store, error) {
	if dir == "" {
		return nil, errors.New("edgetls: certificate folder path is empty")
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{dir: filepath.Clean(dir), log: logger}
	s.set.Store(&certSet{})
	if _, err := s.reload(); err != nil {
		var skipped *skipError
		if !errors.As(err, &skipped) {
			return nil, err
		}
	}
	return s, nil
}

// Dir returns the folder s loads from, cleaned.
func (s *Store) Dir() string { return s.dir }

// Reload re-scans the folder and atomically swaps in the new set; new
// handshakes use it at once, established connections are not affected.
//
// A pair that fails to load now but was loaded before keeps its previous
// certificate, so a half-written or broken update never takes a name
// offline; a pair whose .crt and .key are both gone is dropped. Each
// skipped pair is logged at error level, and Reload returns one error
// listing them all (nil when every pair loaded). A missing or empty
// folder empties the set and logs a warning but is not an error. When the
// folder cannot be read at all, the previous set stays and the error is
// returned.
func (s *Store) Reload() error {
	_, err := s.reload()
	return err
}

// reload does the work of Reload and also reports the new pair count.
// Per-pair failures come back as a *skipError; a folder that cannot be
// read comes back as a plain error, with the set unchanged.
func (s *Store) reload() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	names, err := s.scan()
	if err != nil {
		return len(s.set.Load().pairs), err
	}
	old := s.set.Load()
	pairs := make([]*pair, 0, len(names))
	var skipped []error
	for _, name := range names {
		prev := old.find(name)
		p, err := s.loadPair(name, prev)
		if err != nil {
			skipped = append(skipped, err)
			attrs := []any{"dir", s.dir, "pair", name, "err", err}
			if prev != nil {
				attrs = append(attrs, "kept", "previous certificate")
			}
			s.log.Error("edgetls: skipping certificate pair", attrs...)
			if prev == nil {
				continue
			}
			p = prev
		}
		pairs = append(pairs, p)
	}
	set := newCertSet(pairs, s.sources)
	s.set.Store(set)
	if set.n == 0 {
		s.log.Warn("edgetls: NO TLS CERTIFICATES LOADED: handshakes are refused until a NAME.crt + NAME.key pair appears",
			"dir", s.dir)
	}
	if len(skipped) > 0 {
		return len(pairs), &skipError{dir: s.dir, errs: skipped}
	}
	return len(pairs), nil
}

// scan lists the pair names present in the folder: the base names of
// *.crt and *.key files, sorted. A missing folder yields none.
func (s *Store) scan() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("edgetls: reading certificate folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue // hidden files and Kubernetes' ..data links
		}
		base, ok := strings.CutSuffix(n, CertExt)
		if !ok {
			base, ok = strings.CutSuffix(n, KeyExt)
		}
		if ok && base != "" {
			names = append(names, base)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// loadPair reads and parses NAME.crt and NAME.key. When prev holds the
// same bytes, prev is returned without parsing again.
func (s *Store) loadPair(name string, prev *pair) (*pair, error) {
	certPEM, err := readPEM(filepath.Join(s.dir, name+CertExt))
	if err != nil {
		return nil, fmt.Errorf("pair %q: %w", name, err)
	}
	keyPEM, err := readPEM(filepath.Join(s.dir, name+KeyExt))
	if err != nil {
		return nil, fmt.Errorf("pair %q: %w", name, err)
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	var digest [sha256.Size]byte
	h.Sum(digest[:0])
	if prev != nil && prev.digest == digest {
		return prev, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pair %q: %w", name, err)
	}
	leaf := cert.Leaf // set by X509KeyPair since Go 1.23
	if leaf == nil {
		return nil, fmt.Errorf("pair %q: no leaf certificate", name)
	}
	p := &pair{name: name, cert: &cert, names: servedNames(leaf.DNSNames, leaf.Subject.CommonName), digest: digest}
	now := time.Now()
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		s.log.Warn("edgetls: certificate outside its validity period; serving it anyway",
			"dir", s.dir, "pair", name, "not_before", leaf.NotBefore, "not_after", leaf.NotAfter)
	}
	if len(p.names) == 0 {
		s.log.Warn("edgetls: certificate names no host; it can only serve as the default",
			"dir", s.dir, "pair", name)
	}
	return p, nil
}

// readPEM reads at most maxPEMSize bytes of path.
func readPEM(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("missing %s (half-written pair?)", filepath.Base(path))
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(path), err)
	}
	if len(b) > maxPEMSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(path), maxPEMSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%s is empty", filepath.Base(path))
	}
	return b, nil
}

// servedNames returns the names a certificate serves: its DNS SANs, or its
// CN when it has none, lower-cased, without a trailing dot, deduplicated.
func servedNames(sans []string, cn string) []string {
	src := sans
	if len(src) == 0 && cn != "" {
		src = []string{cn}
	}
	out := make([]string, 0, len(src))
	for _, n := range src {
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n == "" || n == "*." || slices.Contains(out, n) {
			continue
		}
		out = append(out, n)
	}
	return out
}

// candidate is one certificate while a certSet is built.
type candidate struct {
	cert     *tls.Certificate
	notAfter time.Time
	wildcard bool // covers the name through a wildcard
	order    int  // folder pairs by name, then sources by name
}

// newCertSet builds the lookup tables over pairs, which must be sorted
// by name, and the certificates of sources. A name covered by several
// certificates keeps them all, the latest NotAfter first, so that a
// renewed certificate wins over a stale copy whatever its source;
// GetCertificate picks the first the client supports.
func newCertSet(pairs []*pair, sources map[string][]*tls.Certificate) *certSet {
	set := &certSet{
		pairs: pairs,
		exact: make(map[string]certList),
		wild:  make(map[string]certList),
	}
	exact := make(map[string][]candidate)
	wild := make(map[string][]candidate)
	order := 0
	add := func(cert *tls.Certificate, names []string) {
		c := candidate{cert: cert, notAfter: cert.Leaf.NotAfter, order: order}
		order++
		for _, n := range names {
			if parent, ok := strings.CutPrefix(n, "*."); ok {
				wild[parent] = append(wild[parent], c)
			} else {
				exact[n] = append(exact[n], c)
			}
		}
		set.n++
		if set.def == nil {
			set.def = cert
		}
	}
	for _, p := range pairs {
		add(p.cert, p.names)
	}
	for _, src := range slices.Sorted(maps.Keys(sources)) {
		for _, cert := range sources[src] {
			add(cert, servedNames(cert.Leaf.DNSNames, cert.Leaf.Subject.CommonName))
		}
	}
	// A wildcard covers the exact names one label below its parent.
	for n, cs := range exact {
		if i := strings.IndexByte(n, '.'); i > 0 {
			for _, w := range wild[n[i+1:]] {
				w.wildcard = true
				cs = append(cs, w)
			}
		}
		set.exact[n] = sortCandidates(cs)
	}
	for parent, cs := range wild {
		set.wild[parent] = sortCandidates(cs)
	}
	return set
}

// certList is the certificates covering one name, in serving order.
type certList struct {
	certs []*tls.Certificate
	// mixed is true when the certificates have different public key
	// algorithms (an ECDSA and an RSA certificate): only then does pick
	// ask which one the client supports.
	mixed bool
}

// sortCandidates orders cs by NotAfter, latest first; ties keep exact
// names before wildcards, then build order.
func sortCandidates(cs []candidate) certList {
	slices.SortStableFunc(cs, func(a, b candidate) int {
		if c := b.notAfter.Compare(a.notAfter); c != 0 {
			return c
		}
		if a.wildcard != b.wildcard {
			if a.wildcard {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.order, b.order)
	})
	var l certList
	for _, c := range cs {
		if slices.Contains(l.certs, c.cert) {
			continue
		}
		if len(l.certs) > 0 && c.cert.Leaf.PublicKeyAlgorithm != l.certs[0].Leaf.PublicKeyAlgorithm {
			l.mixed = true
		}
		l.certs = append(l.certs, c.cert)
	}
	return l
}

// SetCertificates replaces the certificates that source (a short name
// such as "acme" or "kubernetes") contributes to the store and swaps the
// new set in atomically; nil or empty removes the source. The folder's
// pairs are not a source and are not affected. Names come from each
// certificate's leaf as for folder pairs (DNS SANs, else the CN); where
// several certificates cover a name, from any sources, the one with the
// latest NotAfter is served. A certificate whose Leaf is nil is parsed;
// one that does not parse is skipped and logged. The store keeps the
// slice's pointers: the caller must not modify the certificates later.
// It is safe for concurrent use.
func (s *Store) SetCertificates(source string, certs []*tls.Certificate) {
	kept := make([]*tls.Certificate, 0, len(certs))
	for _, c := range certs {
		if c == nil || len(c.Certificate) == 0 {
			continue
		}
		if c.Leaf == nil {
			leaf, err := x509.ParseCertificate(c.Certificate[0])
			if err != nil {
				s.log.Error("edgetls: skipping unparsable certificate", "source", source, "err", err)
				continue
			}
			c.Leaf = leaf
		}
		kept = append(kept, c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(kept) == 0 {
		delete(s.sources, source)
	} else {
		if s.sources == nil {
			s.sources = make(map[string][]*tls.Certificate)
		}
		s.sources[source] = kept
	}
	s.set.Store(newCertSet(s.set.Load().pairs, s.sources))
}

// find returns the pair called name, or nil.
func (cs *certSet) find(name string) *pair {
	i, ok := slices.BinarySearchFunc(cs.pairs, name, func(p *pair, n string) int {
		return strings.Compare(p.name, n)
	})
	if !ok {
		return nil
	}
	return cs.pairs[i]
}

// Names returns the sorted, deduplicated host names the store serves
// ("*.example.com" for wildcards), from the folder and every source, for
// logs and status pages. The slice is a new copy owned by the caller.
func (s *Store) Names() []string {
	set := s.set.Load()
	out := make([]string, 0, len(set.exact)+len(set.wild))
	for n := range set.exact {
		out = append(out, n)
	}
	for n := range set.wild {
		out = append(out, "*."+n)
	}
	slices.Sort(out)
	return out
}

// Expiry calls emit once per name the store serves, wildcards as
// "*.example.com", with the NotAfter of the certificate served for it
// (for metrics). It reads one snapshot of the set.
func (s *Store) Expiry(emit func(name string, notAfter time.Time)) {
	set := s.set.Load()
	for n, l := range set.exact {
		emit(n, l.certs[0].Leaf.NotAfter)
	}
	for n, l := range set.wild {
		emit("*."+n, l.certs[0].Leaf.NotAfter)
	}
}

// Pairs returns the sorted names (file base names) of the loaded pairs;
// the first is the default certificate. The slice is a new copy.
func (s *Store) Pairs() []string {
	set := s.set.Load()
	out := make([]string, len(set.pairs))
	for i, p := range set.pairs {
		out[i] = p.name
	}
	return out
}

// GetCertificate picks the certificate for a handshake, for
// [tls.Config.GetCertificate]: a certificate naming the SNI name
// (case-insensitive, trailing dot ignored) or a wildcard "*.parent" where
// the name is exactly one label followed by ".parent", else the default
// certificate (the first pair by file name, or the first certificate of
// a source when the folder has none). Among the certificates covering the
// name, from the folder and every source, the one with the latest
// NotAfter that the client supports wins (ties: a certificate naming the
// host before a wildcard, then by pair name), so an ECDSA and an RSA
// certificate can serve the same host side by side.
//
// It returns ErrNoCertificate when no certificate is loaded. It is safe for
// concurrent use, takes no lock, and does not allocate.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.set.Load()
	if set.def == nil {
		return nil, ErrNoCertificate
	}
	name := hello.ServerName
	if name == "" {
		return set.def, nil
	}
	name = strings.TrimSuffix(name, ".")
	if hasUpper(name) && len(name) <= maxHostLen {
		// Lower-case into a stack buffer; map lookups keyed by
		// string(bytes) do not allocate.
		var buf [maxHostLen]byte
		b := buf[:len(name)]
		for i := 0; i < len(name); i++ {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
		}
		if certs, ok := set.exact[string(b)]; ok {
			return pick(hello, certs), nil
		}
		if i := bytes.IndexByte(b, '.'); i > 0 {
			if certs, ok := set.wild[string(b[i+1:])]; ok {
				return pick(hello, certs), nil
			}
		}
		return set.def, nil
	}
	if certs, ok := set.exact[name]; ok {
		return pick(hello, certs), nil
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if certs, ok := set.wild[name[i+1:]]; ok {
			return pick(hello, certs), nil
		}
	}
	return set.def, nil
}

// maxHostLen is the longest DNS name in text form (RFC 1035 §2.3.4);
// longer SNI values cannot match a certificate name.
const maxHostLen = 253

// pick returns the first certificate of l the client supports, or the
// first. Certificates of one key algorithm are interchangeable for the
// client, so the first (latest NotAfter) is served without asking.
func pick(hello *tls.ClientHelloInfo, l certList) *tls.Certificate {
	certs := l.certs
	if l.mixed {
		for _, c := range certs {
			if hello.SupportsCertificate(c) == nil {
				return c
			}
		}
	}
	return certs[0]
}

// hasUpper reports whether s has an ASCII upper-case letter.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// skipError lists the pairs a reload skipped.
type skipError struct {
	dir  string
	errs []error
}

func (e *skipError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "edgetls: %d certificate pair(s) skipped in %q: ", len(e.errs), e.dir)
	for i, err := range e.errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *skipError) Unwrap() []error { return e.errs }
