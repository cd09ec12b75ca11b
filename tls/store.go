package tls

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
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

	mu  sync.Mutex // serialises Reload; guards nothing read by GetCertificate
	set atomic.Pointer[certSet]
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

// certSet is an immutable snapshot of the loaded pairs and their lookup
// tables. It is never modified after it is stored.
type certSet struct {
	pairs []*pair // sorted by name
	// exact maps a lower-case host name to its certificates, in pair order.
	exact map[string][]*tls.Certificate
	// wild maps the parent domain of a wildcard ("example.com" for
	// "*.example.com") to its certificates, in pair order.
	wild map[string][]*tls.Certificate
	def  *tls.Certificate // first pair by name; nil when there is none
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
	set := newCertSet(pairs)
	s.set.Store(set)
	if len(pairs) == 0 {
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

// newCertSet builds the lookup tables over pairs, which must be sorted by
// name. When several pairs serve a name, all are kept in pair order and
// GetCertificate picks the first the client supports.
func newCertSet(pairs []*pair) *certSet {
	set := &certSet{
		pairs: pairs,
		exact: make(map[string][]*tls.Certificate),
		wild:  make(map[string][]*tls.Certificate),
	}
	for _, p := range pairs {
		for _, n := range p.names {
			if parent, ok := strings.CutPrefix(n, "*."); ok {
				set.wild[parent] = append(set.wild[parent], p.cert)
			} else {
				set.exact[n] = append(set.exact[n], p.cert)
			}
		}
	}
	if len(pairs) > 0 {
		set.def = pairs[0].cert
	}
	return set
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
// ("*.example.com" for wildcards), for logs and status pages. The slice is
// a new copy owned by the caller.
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
// [tls.Config.GetCertificate]: an exact match of the SNI name
// (case-insensitive, trailing dot ignored), else a wildcard "*.parent"
// where the name is exactly one label followed by ".parent", else the
// default certificate (the first pair by file name). When several pairs
// serve the chosen name, the first the client supports wins (say an ECDSA
// and an RSA certificate for the same host).
//
// It returns ErrNoCertificate when no pair is loaded. It is safe for
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

// pick returns the first of certs the client supports, or certs[0].
func pick(hello *tls.ClientHelloInfo, certs []*tls.Certificate) *tls.Certificate {
	if len(certs) > 1 {
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
