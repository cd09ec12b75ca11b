package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/aralez-go/aralez/config"
)

// ACME is what the ACME endpoints need from the certificate manager;
// tls/acme's Manager implements it. Its methods must be safe for
// concurrent use.
type ACME interface {
	// CreateAccount makes sure the ACME account exists at the CA and
	// returns its URL.
	CreateAccount(ctx context.Context) (string, error)
	// Order obtains a certificate for name now and manages it from then
	// on; fresh reports that a valid one existed and nothing was ordered.
	Order(ctx context.Context, name string) (fresh bool, err error)
	// HTTPChallenge returns the key authorization of an HTTP-01 token
	// for host, or ok=false when no such token is held.
	HTTPChallenge(host, token []byte) (keyAuth []byte, ok bool)
}

// acmeRoutes registers Aralez's ACME endpoints: /acme_create and
// /acme_order/{domain} (master key required) and
// /.well-known/acme-challenge/{token} (public: it answers only tokens of
// pending challenges).
func (s *Server) acmeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/acme_create", s.handleACMECreate)
	mux.HandleFunc("/acme_order/{domain...}", s.handleACMEOrder)
	mux.HandleFunc("GET /.well-known/acme-challenge/{token}", s.handleACMEChallenge)
}

func (s *Server) handleACMECreate(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	if s.o.ACME == nil {
		plain(w, http.StatusServiceUnavailable, "ACME is not available in this process")
		return
	}
	acct, err := s.o.ACME.CreateAccount(r.Context())
	if err != nil {
		s.log.Warn("acme_create failed", "remote", r.RemoteAddr, "err", err)
		plain(w, http.StatusInternalServerError, "Failed to create account: "+err.Error())
		return
	}
	s.log.Info("acme_create", "remote", r.RemoteAddr, "account", acct)
	plain(w, http.StatusOK, acct)
}

func (s *Server) handleACMEOrder(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	if s.o.ACME == nil {
		plain(w, http.StatusServiceUnavailable, "ACME is not available in this process")
		return
	}
	name, err := config.NormaliseACMEName(r.PathValue("domain"))
	if err != nil {
		plain(w, http.StatusBadRequest, "acme_order: "+err.Error())
		return
	}
	fresh, err := s.o.ACME.Order(r.Context(), name)
	if err != nil {
		s.log.Warn("acme_order failed", "remote", r.RemoteAddr, "name", name, "err", err)
		plain(w, http.StatusInternalServerError, "Failed to order a certificate: "+err.Error())
		return
	}
	s.log.Info("acme_order", "remote", r.RemoteAddr, "name", name, "fresh", fresh)
	if fresh {
		plain(w, http.StatusOK, "Fresh certificate exists. Not renewing!")
		return
	}
	plain(w, http.StatusOK, "Certificate is successfully generated")
}

func (s *Server) handleACMEChallenge(w http.ResponseWriter, r *http.Request) {
	if s.o.ACME != nil {
		if ka, ok := s.o.ACME.HTTPChallenge([]byte(r.Host), []byte(r.PathValue("token"))); ok {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusOK)
			w.Write(ka)
			return
		}
	}
	plain(w, http.StatusNotFound, "Not found")
}

// CertificateStatus is the state of one ACME-managed name, as GET
// /status?certificates lists it.
type CertificateStatus struct {
	// Name is the managed name ("*.example.com" for a wildcard).
	Name string `json:"name"`
	// NotAfter is the expiry of the certificate served; zero (left out)
	// while none has been obtained.
	NotAfter time.Time `json:"not_after,omitzero"`
	// Challenge is the challenge type used.
	Challenge string `json:"challenge"`
	// LastError is the error of the last failed order or renewal; empty
	// after a success. The previous certificate keeps serving.
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Renewals and Failures count successful and failed renewals.
	Renewals int `json:"renewals"`
	Failures int `json:"renewal_failures"`
}

// handleCertificates answers GET /status?certificates: the ACME-managed
// names, a JSON list.
func (s *Server) handleCertificates(w http.ResponseWriter, v StatusView) {
	list := v.Certificates
	if list == nil {
		list = []CertificateStatus{}
	}
	writeJSON(w, http.StatusOK, list)
}
