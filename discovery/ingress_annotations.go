package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aralez-go/aralez/config"
)

// AnnotationPrefix starts the Ingress annotations the controller reads
// (Aralez's prefix).
const AnnotationPrefix = "aralez.rs/"

// The Ingress annotations, without AnnotationPrefix. The first four are
// Aralez's; the others set what routes support and users of other
// controllers look for first.
const (
	annRateLimit     = "rate_limit"     // requests per second per client, ≥ 1
	annX4xxLimit     = "x4xx_limit"     // 4xx responses per second per client, ≥ 1
	annClientHeaders = "client_headers" // JSON array of "Name: Value", set on responses
	annServerHeaders = "server_headers" // JSON array of "Name: Value", set on upstream requests
	annToHTTPS       = "to_https"       // "true": plain-HTTP requests get 301 to https
	annTLSVerify     = "tls_verify"     // "true": verify upstream certificates
	annLoadBalance   = "load_balance"   // round_robin, least_conn or random
	annAuthType      = "auth_type"      // basic, apikey, jwt or forward
	annAuthSecret    = "auth_secret"    // Secret (same namespace) whose "auth" key holds the credentials
	annAuthURL       = "auth_url"       // the auth service of auth_type forward
)

// annotationKeys lists every annotation the controller knows.
var annotationKeys = []string{
	annRateLimit, annX4xxLimit, annClientHeaders, annServerHeaders, annToHTTPS,
	annTLSVerify, annLoadBalance, annAuthType, annAuthSecret, annAuthURL,
}

// AuthSecretKey is the key of an auth_secret Secret's data that holds
// the credentials: for basic, one "user:password" (or bcrypt hash) per
// line, as an htpasswd file; for apikey the key; for jwt the signing
// key.
const AuthSecretKey = "auth"

// routeTemplate is what an Ingress's annotations set on each of its
// paths: the policy, the load-balancing policy, and the name of the
// Secret holding the credentials (read by the caller).
type routeTemplate struct {
	policy      config.Policy
	loadBalance string
	authSecret  string
}

// parseAnnotations reads the aralez.rs/ annotations of an Ingress. Every
// problem is reported (joined); an unknown aralez.rs/ key is one, so
// that a typo is not silently ignored.
func parseAnnotations(ann map[string]string) (routeTemplate, error) {
	t := routeTemplate{loadBalance: config.DefaultLoadBalance}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("annotation %s%s: %s", AnnotationPrefix, key, fmt.Sprintf(format, args...)))
	}
	authType := ""
	for _, full := range slices.Sorted(maps.Keys(ann)) {
		key, ok := strings.CutPrefix(full, AnnotationPrefix)
		if !ok {
			continue
		}
		v := strings.TrimSpace(ann[full])
		switch key {
		case annRateLimit, annX4xxLimit:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				bad(key, "want a whole number of at least 1, got %q", v)
				continue
			}
			if key == annRateLimit {
				t.policy.RateLimit = n
			} else {
				t.policy.X4xxLimit = n
			}
		case annClientHeaders, annServerHeaders:
			hs, err := jsonHeaders(v)
			if err != nil {
				bad(key, "%v", err)
				continue
			}
			if key == annClientHeaders {
				t.policy.ClientHeaders = hs
			} else {
				t.policy.ServerHeaders = hs
			}
		case annToHTTPS, annTLSVerify:
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(key, "want true or false, got %q", v)
				continue
			}
			if key == annToHTTPS {
				t.policy.ToHTTPS = &b
			} else {
				t.policy.TLSVerify = &b
			}
		case annLoadBalance:
			t.loadBalance = v
		case annAuthType:
			authType = v
		case annAuthSecret:
			t.authSecret = v
		case annAuthURL:
		default:
			bad(key, "unknown annotation; known: %s", strings.Join(annotationKeys, ", "))
		}
	}
	url := strings.TrimSpace(ann[AnnotationPrefix+annAuthURL])
	switch {
	case authType == "" && (t.authSecret != "" || url != ""):
		bad(annAuthType, "missing: %s%s or %s%s is set", AnnotationPrefix, annAuthSecret, AnnotationPrefix, annAuthURL)
	case authType == "forward":
		if url == "" {
			bad(annAuthURL, "missing: auth_type forward needs the auth service URL")
		}
		t.policy.Authorization = &config.Auth{Type: authType, Data: []string{url}}
	case authType != "":
		if t.authSecret == "" {
			bad(annAuthSecret, "missing: auth_type %s needs a Secret with the credentials under %q", authType, AuthSecretKey)
		}
		t.policy.Authorization = &config.Auth{Type: authType}
	}
	return t, errors.Join(errs...)
}

// jsonHeaders reads a JSON array of "Name: Value" strings.
func jsonHeaders(v string) ([]config.Header, error) {
	var list []string
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		return nil, errors.New("want a JSON array of \"Name: Value\" strings")
	}
	out := make([]config.Header, 0, len(list))
	for _, s := range list {
		h, err := config.ParseHeader(s)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// authData splits an auth Secret's value into the data of an
// authorization block: one entry per non-empty line for basic, the
// whole trimmed value otherwise.
func authData(typ string, raw []byte) []string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return nil
	}
	if typ != "basic" {
		return []string{s}
	}
	var out []string
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}
