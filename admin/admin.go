package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/discovery"
)

// Defaults for Options.
const (
	// DefaultMaxBodyBytes is the largest /conf body accepted (4 MiB);
	// larger bodies get 413.
	DefaultMaxBodyBytes = 4 << 20
	// DefaultApplyTimeout bounds waiting for the reload loop to apply a
	// pushed table.
	DefaultApplyTimeout = 30 * time.Second
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request.
	DefaultReadTimeout = 60 * time.Second
	// DefaultIdleTimeout closes idle keep-alive connections.
	DefaultIdleTimeout = 120 * time.Second
)

// maxJWTBody bounds the /jwt request body.
const maxJWTBody = 64 << 10

// apiFile is the file name shown in errors of a pushed document.
const apiFile = "<api>"

// Options configures a Server. Only Push is required for /conf; every
// other field may be left zero.
type Options struct {
	// MasterKey guards /conf and /debug/pprof/ and signs JWTs. Empty
	// means the API is read-only: /conf, /jwt and pprof answer 403 with
	// a body naming what to set.
	MasterKey string
	// ConfigAPIEnabled allows POST /conf; false answers 403.
	ConfigAPIEnabled bool
	// UpstreamsConf is the upstreams.yaml path written by save. A pushed
	// table is merged with conf.d/*.yaml beside it, as the file would
	// be. Empty means save answers 400 and conf.d is not read.
	UpstreamsConf string
	// Push hands pushed tables to the reload loop. nil answers /conf
	// with 503.
	Push *discovery.Push
	// Status is the view behind /status. nil answers 503.
	Status StatusSource
	// Metrics serves /metrics, e.g. (*metrics.Metrics).Handler(). nil
	// answers 404.
	Metrics http.Handler
	// ACME serves /acme_create, /acme_order/{domain} and
	// /.well-known/acme-challenge/{token}. nil answers them with 503 and
	// 404.
	ACME ACME
	// Logger receives one line per push. nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes limits /conf bodies. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ApplyTimeout bounds waiting for the reload loop. Zero means
	// DefaultApplyTimeout.
	ApplyTimeout time.Duration
	// Now returns the current time, for JWT iat/exp. nil means time.Now.
	Now func() time.Time
	// Cache is the response cache behind POST /cache/purge. nil answers
	// 404 (no cache configured).
	Cache CachePurger
}

// Server is the config API server. Create it with NewServer; serve it on
// one or more listeners with Serve and ServeTLS, stop it with Shutdown.
// Its methods are safe for concurrent use. A Server must not be copied.
type Server struct {
	_ noCopy

	o       Options
	log     *slog.Logger
	keyHash [sha256.Size]byte
	hasKey  bool
	handler http.Handler
	srv     *http.Server

	ready    atomic.Bool
	draining atomic.Bool

	// confMu serialises /conf pushes, so that a save and its rollback
	// never interleave with another push.
	confMu sync.Mutex
}

// NewServer returns a Server for o. It binds nothing.
func NewServer(o Options) *Server {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.ApplyTimeout <= 0 {
		o.ApplyTimeout = DefaultApplyTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if o.MasterKey != "" {
		s.keyHash = sha256.Sum256([]byte(o.MasterKey))
		s.hasKey = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /conf", s.handleConf)
	mux.HandleFunc("POST /jwt", s.handleJWT)
	mux.HandleFunc("POST /cache/purge", s.handleCachePurge)
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "live")
	})
	mux.HandleFunc("GET /ready", s.handleReady)
	s.acmeRoutes(mux)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.o.Metrics == nil {
			http.NotFound(w, r)
			return
		}
		s.o.Metrics.ServeHTTP(w, r)
	})
	mux.Handle("/debug/pprof/", s.withKey(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", s.withKey(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", s.withKey(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", s.withKey(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", s.withKey(http.HandlerFunc(pprof.Trace)))
	s.handler = mux
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s
}

// Handler returns the API's handler, for tests or for mounting it on
// another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves plain HTTP on ln until Shutdown, then returns nil; any
// other error is returned as is.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeTLS serves HTTPS on ln with the PEM certificate and key files
// (config_tls_certificate, config_tls_key_file) until Shutdown, then
// returns nil. A bad certificate or key is returned at once.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	if err := s.srv.ServeTLS(ln, certFile, keyFile); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops every listener, waits for requests in progress until
// ctx ends, and then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// SetReady marks the process ready (listeners up and a config loaded):
// /ready answers 200 unless draining. The zero state is not ready.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// SetDraining marks the process as draining (shutdown or upgrade in
// progress): /ready answers 503 while it is true.
func (s *Server) SetDraining(draining bool) { s.draining.Store(draining) }

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.draining.Load():
		plain(w, http.StatusServiceUnavailable, "draining")
	case !s.ready.Load():
		plain(w, http.StatusServiceUnavailable, "not ready")
	default:
		plain(w, http.StatusOK, "ready")
	}
}

// keyFrom returns the key of r: ?key= or "Authorization: Bearer".
func keyFrom(r *http.Request) (string, bool) {
	if k := r.URL.Query().Get("key"); k != "" {
		return k, true
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		if k := strings.TrimSpace(a[7:]); k != "" {
			return k, true
		}
	}
	return "", false
}

// keyOK compares k with the master key in constant time; hashing first
// makes the comparison independent of both lengths.
func (s *Server) keyOK(k string) bool {
	h := sha256.Sum256([]byte(k))
	return s.hasKey && subtle.ConstantTimeCompare(h[:], s.keyHash[:]) == 1
}

// authorize answers 403/401/403 and returns false unless r carries the
// master key.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if !s.hasKey {
		plain(w, http.StatusForbidden, msgReadOnly)
		return false
	}
	k, ok := keyFrom(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="aralez"`)
		plain(w, http.StatusUnauthorized, "unauthorized: master key required (?key= or Authorization: Bearer)")
		return false
	}
	if !s.keyOK(k) {
		plain(w, http.StatusForbidden, "forbidden: wrong master key")
		return false
	}
	return true
}

func (s *Server) withKey(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authorize(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}

func (s *Server) handleConf(w http.ResponseWriter, r *http.Request) {
	if !s.o.ConfigAPIEnabled {
		plain(w, http.StatusForbidden, "forbidden: config API disabled (config_api_enabled: false)")
		return
	}
	if !s.authorize(w, r) {
		return
	}
	if r.ContentLength > s.o.MaxBodyBytes {
		plain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", s.o.MaxBodyBytes))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			plain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", s.o.MaxBodyBytes))
			return
		}
		plain(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return
	}
	if blankYAML(body) {
		plain(w, http.StatusBadRequest, "empty body: send an upstreams.yaml document (a table without routes is \"upstreams: {}\")")
		return
	}
	var up *config.Upstreams
	if s.o.UpstreamsConf != "" {
		// The pushed document replaces the upstreams file, not conf.d:
		// merge conf.d as a file reload would (issue 11).
		up, err = config.ParseUpstreamsConfD(apiFile, body, s.o.UpstreamsConf)
	} else {
		up, err = config.ParseUpstreams(apiFile, body)
	}
	if err != nil {
		s.log.Warn("config push rejected", "remote", r.RemoteAddr, "errors", err.Error())
		plain(w, http.StatusBadRequest, err.Error())
		return
	}
	save := saveRequested(r)
	if save && s.o.UpstreamsConf == "" {
		plain(w, http.StatusBadRequest, "save: no upstreams_conf path configured")
		return
	}
	if s.o.Push == nil {
		plain(w, http.StatusServiceUnavailable, "config push not available")
		return
	}

	s.confMu.Lock()
	defer s.confMu.Unlock()
	// The push outlives a client that hangs up: a save must finish or be
	// rolled back either way.
	ctx, cancel := context.WithTimeout(context.Background(), s.o.ApplyTimeout)
	defer cancel()
	code, msg := s.push(ctx, up, body, save)
	if code == http.StatusOK {
		s.log.Info("config pushed", "remote", r.RemoteAddr, "save", save, "hosts", len(up.Hosts))
	} else {
		s.log.Warn("config push failed", "remote", r.RemoteAddr, "save", save, "status", code, "err", msg)
	}
	plain(w, code, msg)
}

// blankYAML reports whether body holds no YAML content: only blank
// lines, comments and document markers. Such a push is refused rather
// than read as a table without routes: it is what a script sends when
// the file it meant to post is missing or empty, and with save it would
// empty the upstreams file too.
func blankYAML(body []byte) bool {
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if len(l) > 0 && l[0] != '#' && !bytes.Equal(l, []byte("---")) && !bytes.Equal(l, []byte("...")) {
			return false
		}
	}
	return true
}

// push applies up (with save, the file's content after writing body) and
// returns the status and message to answer.
func (s *Server) push(ctx context.Context, up *config.Upstreams, body []byte, save bool) (int, string) {
	var old []byte
	hadOld := false
	if save {
		path := s.o.UpstreamsConf
		var err error
		old, err = os.ReadFile(path)
		switch {
		case err == nil:
			hadOld = true
		case !errors.Is(err, os.ErrNotExist):
			return http.StatusInternalServerError, "save: reading " + path + ": " + err.Error()
		}
		if err := writeFileAtomic(path, body); err != nil {
			return http.StatusInternalServerError, "save: " + err.Error()
		}
		// Push what the file watcher will load, so that its reload of
		// this same file is recognised as unchanged.
		loaded, err := config.LoadUpstreams(path)
		if err != nil {
			return s.rollback(old, hadOld, http.StatusBadRequest, err.Error())
		}
		up = loaded
	}
	if err := s.o.Push.Apply(ctx, up); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, discovery.ErrPushStopped) {
			return http.StatusServiceUnavailable, "config not confirmed by the reload loop: " + err.Error()
		}
		msg := "config rejected: " + err.Error()
		if save {
			return s.rollback(old, hadOld, http.StatusBadRequest, msg)
		}
		return http.StatusBadRequest, msg
	}
	msg := fmt.Sprintf("config applied: %d hosts, %d paths", len(up.Hosts), countPaths(up))
	if save {
		msg += "; saved to " + s.o.UpstreamsConf
	}
	return http.StatusOK, msg
}

// rollback restores the upstreams file after a failed save (or removes
// it when there was none) and returns code and msg.
func (s *Server) rollback(old []byte, hadOld bool, code int, msg string) (int, string) {
	path := s.o.UpstreamsConf
	if !hadOld {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error("save: removing rejected upstreams file", "path", path, "err", err)
		}
		return code, msg
	}
	if err := writeFileAtomic(path, old); err != nil {
		s.log.Error("save: restoring upstreams file", "path", path, "err", err)
		return http.StatusInternalServerError, msg + "\nrestoring the previous file failed: " + err.Error()
	}
	return code, msg
}

func countPaths(up *config.Upstreams) int {
	n := 0
	for _, h := range up.Hosts {
		n += len(h.Paths)
	}
	return n
}

// writeFileAtomic replaces path with data so that a crash leaves either
// the old or the new content: it writes a temporary file in the same
// folder (named ".<base>.*.tmp", which the file watcher ignores), syncs
// it, gives it the old file's permissions (0644 for a new file), renames
// it over path and syncs the folder.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("creating temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("setting mode of %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s: %w", tmp, err)
	}
	// The rename is durable only once the folder entry is on disk.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// saveRequested reports whether a /conf push asks to be saved: the save
// parameter is present, as Aralez's "?save", or "=true"; "false", "0"
// and "no" mean not to save.
func saveRequested(r *http.Request) bool {
	v, ok := r.URL.Query()["save"]
	if !ok {
		return false
	}
	switch strings.ToLower(v[0]) {
	case "false", "0", "no":
		return false
	}
	return true
}

// msgReadOnly is the answer to a write without a configured master key.
const msgReadOnly = "forbidden: the config API is read-only because no master_key is configured; set master_key in main.yaml (or the JWT_KEY environment variable) and restart"

// MaxTokenMinutes is the longest validity /jwt issues, in minutes: the
// longest time.Duration (about 292 years). Longer ones answer 400, so
// that the expiry never overflows into the past (issue 11).
const MaxTokenMinutes = math.MaxInt64 / int64(time.Minute)

// jwtRequest is the /jwt body: ours (valid) or Aralez's (exp, random).
type jwtRequest struct {
	MasterKey string `json:"master_key"`
	Owner     string `json:"owner"`
	// Valid and Exp are the token's validity in minutes; give one.
	Valid *int64 `json:"valid"`
	Exp   *int64 `json:"exp"`
	// Random, when not empty, is copied into the token's "random"
	// claim, as Aralez does (it makes two tokens of one owner differ).
	Random string `json:"random"`
}

// minutes returns the requested validity, or a message for a 400.
func (q *jwtRequest) minutes() (int64, string) {
	v := q.Valid
	switch {
	case q.Valid != nil && q.Exp != nil:
		return 0, "give the validity once: valid or exp (minutes), not both"
	case q.Exp != nil:
		v = q.Exp
	case q.Valid == nil:
		return 0, "valid (or exp) must be a positive number of minutes"
	}
	if *v <= 0 || *v > MaxTokenMinutes {
		return 0, fmt.Sprintf("valid (or exp) must be a number of minutes from 1 to %d, got %d", MaxTokenMinutes, *v)
	}
	return *v, ""
}

// handleJWT answers POST /jwt: 201 {"token": "…"} signed HS256 with the
// master key, with claims owner, iat, exp = now + valid (or exp)
// minutes, and random when given.
func (s *Server) handleJWT(w http.ResponseWriter, r *http.Request) {
	if !s.hasKey {
		jsonError(w, http.StatusForbidden, msgReadOnly)
		return
	}
	var req jwtRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJWTBody))
	if err := dec.Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return
	}
	if dec.More() {
		jsonError(w, http.StatusBadRequest, "malformed JSON body: trailing data")
		return
	}
	if !s.keyOK(req.MasterKey) {
		jsonError(w, http.StatusForbidden, "wrong master_key")
		return
	}
	minutes, msg := req.minutes()
	if msg != "" {
		jsonError(w, http.StatusBadRequest, msg)
		return
	}
	now := s.o.Now()
	claims := jwt.MapClaims{
		"owner": req.Owner,
		"iat":   now.Unix(),
		// Seconds are added to seconds: no time.Duration can overflow.
		"exp": now.Unix() + minutes*60,
	}
	if req.Random != "" {
		claims["random"] = req.Random
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	signed, err := tok.SignedString([]byte(s.o.MasterKey))
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "signing token: "+err.Error())
		return
	}
	s.log.Info("jwt issued", "remote", r.RemoteAddr, "owner", req.Owner, "valid_minutes", minutes)
	writeJSON(w, http.StatusCreated, map[string]string{"token": signed})
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// plain writes a text/plain answer of one or more lines.
func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, msg)
	if !strings.HasSuffix(msg, "\n") {
		io.WriteString(w, "\n")
	}
}

// noCopy makes go vet's copylocks check flag copies of a Server.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
