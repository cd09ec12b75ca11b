package pipeline

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/policy/auth"
)

// authKind is a route's compiled authorization type.
type authKind uint8

const (
	authNone authKind = iota
	authBasic
	authAPIKey
	authJWT
	authForward
)

// routePolicy is the compiled per-request policy of one route: the most
// specific level (path > host > global) of each setting.
type routePolicy struct {
	// hostHash and rateRoute/x4xxRoute name the limits' counters by
	// stable identities, the same in every process and across reloads,
	// as a rate-limit store shared by a fleet needs (issue 17).
	hostHash uint64 // FNV-1a 64 of the host name

	rateLimit, x4xxLimit int
	rateRoute, x4xxRoute uint64 // Route.Key when the limit is set on the path, else 0

	allow, deny []netip.Prefix

	authKind           authKind
	basic              *auth.Basic
	apiKey             *auth.APIKey
	jwt                *auth.JWT
	forward            ForwardAuthorizer
	forwardCredentials bool
	authHeaders        []string // forward auth: headers taken from the auth service

	sticky       *balancer.Sticky
	stickyMaxAge int // seconds
	cookiePath   string
}

func compilePolicy(cfg *config.Config, h *config.Host, p *config.Path, r *Route, res Resolver) (routePolicy, error) {
	up := &cfg.Upstreams
	levels := [3]*config.Policy{&p.Policy, &h.Policy, &up.Policy}
	hh := fnv.New64a()
	hh.Write([]byte(h.Name))
	rp := routePolicy{hostHash: hh.Sum64()}
	for i, l := range levels {
		if rp.rateLimit == 0 && l.RateLimit > 0 {
			rp.rateLimit = l.RateLimit
			if i == 0 {
				rp.rateRoute = r.Key
			}
		}
		if rp.x4xxLimit == 0 && l.X4xxLimit > 0 {
			rp.x4xxLimit = l.X4xxLimit
			if i == 0 {
				rp.x4xxRoute = r.Key
			}
		}
		if rp.allow == nil && rp.deny == nil && (len(l.Allow) > 0 || len(l.Deny) > 0) {
			rp.allow, rp.deny = l.Allow, l.Deny
		}
	}
	var a *config.Auth
	for _, l := range levels {
		if l.Authorization != nil {
			a = l.Authorization
			break
		}
	}
	if a != nil {
		var err error
		switch a.Type {
		case "basic":
			rp.authKind = authBasic
			rp.basic, err = auth.NewBasic(a.Data)
		case "apikey":
			rp.authKind = authAPIKey
			rp.apiKey = auth.NewAPIKey(strings.Join(a.Data, ""))
		case "jwt":
			rp.authKind = authJWT
			key := cfg.Main.MasterKey
			if len(a.Data) > 0 && a.Data[0] != "" {
				key = a.Data[0]
			}
			// No key (no data, no master_key): auth.JWT accepts no
			// token, so the route answers 401 to everyone, as Aralez's
			// does; cmd warns once.
			rp.jwt = auth.NewJWT([]byte(key), auth.JWTOptions{})
		case "forward":
			rp.authKind = authForward
			hdrs := p.AuthResponseHeaders
			if hdrs == nil {
				hdrs = config.DefaultAuthResponseHeaders
			}
			rp.authHeaders = hdrs
			if len(a.Data) == 0 {
				err = fmt.Errorf("forward authorization needs a URL in data")
				break
			}
			rp.forward, err = res.ForwardAuth(a.Data[0], auth.ForwardOptions{ResponseHeaders: hdrs})
		default:
			err = fmt.Errorf("unknown authorization type %q", a.Type)
		}
		if err != nil {
			return rp, fmt.Errorf("authorization: %w", err)
		}
	}
	rp.forwardCredentials = p.ForwardCredentials
	if up.StickySessions > 0 && r.pool != nil {
		rp.sticky = res.Sticky(cfg.Main)
		rp.stickyMaxAge = up.StickySessions
		rp.cookiePath = p.Prefix
		rp.sticky.Prepare(r.pool, r.Key)
	}
	return rp, nil
}
