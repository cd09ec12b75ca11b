package proxy

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"net/netip"
	"strings"
	"time"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/config"
	"github.com/aralez-go/aralez/policy/auth"
	"github.com/aralez-go/aralez/policy/auth/forward"
	"github.com/aralez-go/aralez/policy/ratelimit"
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
	hostHash uint64

	rateLimit, x4xxLimit int
	rateRoute, x4xxRoute uint32 // route ID + 1 when the limit is set on the path, else 0

	allow, deny []netip.Prefix

	authKind           authKind
	basic              *auth.Basic
	apiKey             *auth.APIKey
	jwt                *auth.JWT
	forward            *forward.Client
	forwardCredentials bool
	authHeaders        []string // forward auth: headers taken from the auth service

	sticky       *balancer.Sticky
	stickyMaxAge int // seconds
	cookiePath   string
}

// PolicyOptions are the process-wide inputs of policy compilation.
type PolicyOptions struct {
	// MasterKey signs JWTs for jwt routes without their own key.
	MasterKey string
	// Sticky signs sticky-session cookies; nil disables stickiness.
	Sticky *balancer.Sticky
	// ForwardAuthTimeout bounds one forward-auth call; zero = the auth
	// package default.
	ForwardAuthTimeout time.Duration
}

var hostSeed = maphash.MakeSeed()

func compilePolicy(cfg *config.Config, h *config.Host, p *config.Path, r *Route, o PolicyOptions) (routePolicy, error) {
	up := &cfg.Upstreams
	levels := [3]*config.Policy{&p.Policy, &h.Policy, &up.Policy}
	rp := routePolicy{hostHash: maphash.String(hostSeed, h.Name)}
	for i, l := range levels {
		if rp.rateLimit == 0 && l.RateLimit > 0 {
			rp.rateLimit = l.RateLimit
			if i == 0 {
				rp.rateRoute = r.ID + 1
			}
		}
		if rp.x4xxLimit == 0 && l.X4xxLimit > 0 {
			rp.x4xxLimit = l.X4xxLimit
			if i == 0 {
				rp.x4xxRoute = r.ID + 1
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
			key := o.MasterKey
			if len(a.Data) > 0 && a.Data[0] != "" {
				key = a.Data[0]
			}
			if key == "" {
				err = fmt.Errorf("jwt authorization needs master_key or data")
			}
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
			rp.forward, err = forward.New(a.Data[0], auth.ForwardOptions{Timeout: o.ForwardAuthTimeout, ResponseHeaders: hdrs})
		default:
			err = fmt.Errorf("unknown authorization type %q", a.Type)
		}
		if err != nil {
			return rp, fmt.Errorf("authorization: %w", err)
		}
	}
	rp.forwardCredentials = p.ForwardCredentials
	if up.StickySessions > 0 && o.Sticky != nil && r.pool != nil {
		rp.sticky = o.Sticky
		rp.stickyMaxAge = up.StickySessions
		rp.cookiePath = p.Prefix
		o.Sticky.Prepare(r.pool, r.ID)
	}
	return rp, nil
}

var (
	strBasicChallenge  = []byte(`Basic realm="aralez"`)
	strBearerChallenge = []byte(`Bearer realm="aralez"`)
	strTokenParam      = []byte("araleztoken")
	strStickyCookie    = []byte("backend_id")
)

// clientOf returns the client address for access lists and limits: the
// TCP peer, or, when the peer is a trusted proxy, the rightmost address of
// X-Forwarded-For that is not itself trusted.
func (e *Engine) clientOf(r *Request) netip.Addr {
	if len(e.opts.TrustedProxies) == 0 || len(r.XForwardedFor) == 0 || !inPrefixes(e.opts.TrustedProxies, r.Peer) {
		return r.Peer
	}
	xff := r.XForwardedFor
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		hop := bytes.TrimSpace(xff[i+1:])
		if i < 0 {
			xff = nil
		} else {
			xff = xff[:i]
		}
		a, err := netip.ParseAddr(string(hop))
		if err != nil {
			return r.Peer // a garbled hop: trust nothing further
		}
		a = a.Unmap()
		if !inPrefixes(e.opts.TrustedProxies, a) {
			return a
		}
	}
	return r.Peer
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// allowed applies the route's access lists: deny wins; with an allow list
// only listed clients pass.
func (rp *routePolicy) allowed(a netip.Addr) bool {
	if inPrefixes(rp.deny, a) {
		return false
	}
	return len(rp.allow) == 0 || inPrefixes(rp.allow, a)
}

// applyPolicies runs access lists (403) and redirects are done by the
// caller; this runs rate limits (429), the 4xx limit (429) and
// authorization (401/403/3xx/503) and fills d. It reports false when d
// is now a final answer.
func (e *Engine) applyLimitsAndAuth(r *Request, rt *Route, d *Decision, client netip.Addr, now int64) bool {
	rp := &rt.policy
	if rp.x4xxLimit > 0 {
		k := ratelimit.MakeKey(client, rp.hostHash, rp.x4xxRoute)
		if blocked, after := e.limiter.Blocked(k, rp.x4xxLimit, now); blocked {
			d.Action, d.Status, d.RetryAfter = ActRespond, 429, after
			return false
		}
		d.LimitKey, d.Count4xx = k, true
	}
	if rp.rateLimit > 0 {
		k := ratelimit.MakeKey(client, rp.hostHash, rp.rateRoute)
		if ok, after := e.limiter.Allow(k, rp.rateLimit, now); !ok {
			d.Action, d.Status, d.RetryAfter = ActRespond, 429, after
			d.Count4xx = false // the proxy's own 429s are never counted
			return false
		}
	}
	var res auth.Result
	switch rp.authKind {
	case authNone:
		return true
	case authBasic:
		res = rp.basic.Check(r.Authorization, client, now)
		d.DropAuthorization = !rp.forwardCredentials
		if res != auth.OK {
			d.WWWAuthenticate = strBasicChallenge
		}
	case authAPIKey:
		res = rp.apiKey.Check(r.APIKey)
		d.DropAPIKey = true
	case authJWT:
		tok := auth.BearerToken(r.Authorization)
		if len(tok) == 0 {
			tok = queryParam(r.Query, strTokenParam)
		}
		res = rp.jwt.Check(tok, now)
		d.DropAuthorization = !rp.forwardCredentials
		if res != auth.OK {
			d.WWWAuthenticate = strBearerChallenge
		}
	case authForward:
		return e.forwardAuth(r, rt, d, client)
	}
	switch res {
	case auth.OK:
		return true
	case auth.Throttled:
		d.Action, d.Status, d.RetryAfter = ActRespond, 429, 1
		d.Count4xx = false
	default:
		d.Action, d.Status = ActRespond, 401
	}
	return false
}

func (e *Engine) forwardAuth(r *Request, rt *Route, d *Decision, client netip.Addr) bool {
	rp := &rt.policy
	proto := "http"
	if r.TLS {
		proto = "https"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := rp.forward.Check(ctx, &auth.ForwardRequest{
		Method:        string(r.Method),
		Proto:         proto,
		Host:          string(r.RawHost),
		URI:           string(r.URI),
		ClientAddr:    client.String(),
		Authorization: string(r.Authorization),
		Cookie:        string(r.Cookie),
	})
	d.StripHeaders = rp.authHeaders
	switch res.Decision {
	case auth.Allow:
		d.AddHeaders = res.Headers
		return true
	case auth.Redirect:
		d.Action, d.Status = ActRedirect, res.Status
		d.buf = append(d.buf[:0], res.Location...)
		d.Location = d.buf
	case auth.Deny:
		d.Action, d.Status = ActRespond, res.Status
		if res.WWWAuthenticate != "" {
			d.WWWAuthenticate = []byte(res.WWWAuthenticate)
		}
	default:
		e.log.Warn("forward auth unavailable; request refused", "route", rt.Host+rt.Prefix, "err", res.Err)
		d.Action, d.Status = ActRespond, 503
		d.Count4xx = false
	}
	return false
}

// queryParam returns the value of the first parameter named name in a
// raw query string, still percent-encoded (tokens need no decoding).
func queryParam(q, name []byte) []byte {
	for len(q) > 0 {
		var kv []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			kv, q = q[:i], q[i+1:]
		} else {
			kv, q = q, nil
		}
		if len(kv) > len(name) && kv[len(name)] == '=' && bytes.Equal(kv[:len(name)], name) {
			return kv[len(name)+1:]
		}
	}
	return nil
}

// appendQueryWithout appends q without the parameters named name,
// keeping every other byte and the order.
func appendQueryWithout(dst, q, name []byte) []byte {
	start := len(dst)
	for len(q) > 0 {
		var kv []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			kv, q = q[:i], q[i+1:]
		} else {
			kv, q = q, nil
		}
		if bytes.Equal(kv, name) || (len(kv) > len(name) && kv[len(name)] == '=' && bytes.Equal(kv[:len(name)], name)) {
			continue
		}
		if len(dst) > start {
			dst = append(dst, '&')
		}
		dst = append(dst, kv...)
	}
	return dst
}

// stickyFromCookie returns the backend a backend_id cookie of this route
// pins the request to, or nil. When several backend_id cookies arrive, the
// first that is valid for this route wins.
func stickyFromCookie(rt *Route, cookie []byte, now int64) *balancer.Backend {
	rp := &rt.policy
	for len(cookie) > 0 {
		var kv []byte
		if i := bytes.IndexByte(cookie, ';'); i >= 0 {
			kv, cookie = cookie[:i], cookie[i+1:]
		} else {
			kv, cookie = cookie, nil
		}
		kv = bytes.TrimSpace(kv)
		if len(kv) > len(strStickyCookie) && kv[len(strStickyCookie)] == '=' && bytes.Equal(kv[:len(strStickyCookie)], strStickyCookie) {
			if b := rp.sticky.Lookup(rt.pool, rt.ID, kv[len(strStickyCookie)+1:], now); b != nil {
				return b
			}
		}
	}
	return nil
}
