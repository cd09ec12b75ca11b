package pipeline

import (
	"bytes"
	"context"
	"net/netip"

	"github.com/aralez-go/aralez/balancer"
	"github.com/aralez-go/aralez/policy/auth"
	"github.com/aralez-go/aralez/policy/ratelimit"
)

var (
	strBasicChallenge  = []byte(`Basic realm="aralez"`)
	strBearerChallenge = []byte(`Bearer realm="aralez"`)
	strTokenParam      = []byte("araleztoken")
	strStickyCookie    = []byte("backend_id")
)

// clientOf returns the client address for access lists and limits: the
// TCP peer, or, when the peer is a trusted proxy, the rightmost address of
// X-Forwarded-For that is not itself trusted.
func (p *Pipeline) clientOf(r *Request) netip.Addr {
	if len(p.opts.TrustedProxies) == 0 || len(r.XForwardedFor) == 0 || !InPrefixes(p.opts.TrustedProxies, r.Peer) {
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
		if !InPrefixes(p.opts.TrustedProxies, a) {
			return a
		}
	}
	return r.Peer
}

// InPrefixes reports whether a is inside one of ps.
func InPrefixes(ps []netip.Prefix, a netip.Addr) bool {
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
	if InPrefixes(rp.deny, a) {
		return false
	}
	return len(rp.allow) == 0 || InPrefixes(rp.allow, a)
}

// Admit is step 2 of the pipeline, for a request that Route sent on to
// be forwarded: the 4xx limit and the rate limit (429), then
// authorization (401, 403, a forward-auth redirect, or 503 when forward
// auth is unavailable), then the sticky-session lookup and the query to
// forward (araleztoken removed on jwt routes). A rejected request never
// reaches an upstream. It runs at most once per request: a second call
// (Expect: 100-continue handled before the body) does nothing, so limits
// count a request once. ctx is the request's context: a client that goes
// away cancels forward auth (on HTTP/1.1, where the server does not
// report disconnects, forward auth's own timeout bounds the wait). Only
// forward auth allocates (it makes a network call).
func (p *Pipeline) Admit(ctx context.Context, r *Request, d *Decision) {
	if d.Action != ActForward || d.Admitted {
		return
	}
	d.Admitted = true
	rt := d.Route
	var now int64 // Unix nanoseconds, read only for a route that uses it
	if rt.policy.usesClock() {
		now = nowNanos()
	}
	if !p.limitsAndAuth(ctx, r, rt, d, d.Client, now) {
		return
	}
	d.Query = r.Query
	if rt.policy.authKind == authJWT && len(r.Query) > 0 && bytes.Contains(r.Query, strTokenParam) {
		// The token never reaches the upstream or its logs.
		d.qbuf = appendQueryWithout(d.qbuf[:0], r.Query, strTokenParam)
		d.Query = d.qbuf
	}
	if rt.policy.sticky != nil {
		d.Sticky = stickyFromCookie(rt, r.Cookie, now)
		d.SetSticky = d.Sticky == nil
	}
}

// usesClock reports whether Admit's steps for the route read the time:
// limits, basic and JWT auth (expiry, throttling) and sticky sessions. A
// clock read costs ~0.2 µs on some virtual machines' clocks, so a plain
// route does not pay for it. Keep it in step with limitsAndAuth and Admit.
func (rp *routePolicy) usesClock() bool {
	return rp.x4xxLimit > 0 || rp.rateLimit > 0 || rp.authKind == authBasic || rp.authKind == authJWT || rp.sticky != nil
}

// limitsAndAuth runs the limits and authorization of Admit and fills d;
// it reports false when d is now a final answer.
func (p *Pipeline) limitsAndAuth(ctx context.Context, r *Request, rt *Route, d *Decision, client netip.Addr, now int64) bool {
	rp := &rt.policy
	if rp.x4xxLimit > 0 {
		k := ratelimit.MakeKey(client, rp.hostHash, rp.x4xxRoute)
		if blocked, after := p.limiter.Blocked(k, rp.x4xxLimit, now); blocked {
			d.Action, d.Status, d.RetryAfter = ActRespond, 429, after
			return false
		}
		d.limitKey, d.count4xx = k, true
	}
	if rp.rateLimit > 0 {
		k := ratelimit.MakeKey(client, rp.hostHash, rp.rateRoute)
		if ok, after := p.limiter.Allow(k, rp.rateLimit, now); !ok {
			d.Action, d.Status, d.RetryAfter = ActRespond, 429, after
			d.count4xx = false // the proxy's own 429s are never counted
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
		return p.forwardAuth(ctx, r, rt, d, client)
	}
	switch res {
	case auth.OK:
		return true
	case auth.Throttled:
		d.Action, d.Status, d.RetryAfter = ActRespond, 429, 1
		d.count4xx = false
	default:
		d.Action, d.Status = ActRespond, 401
	}
	return false
}

// forwardAuth asks the route's auth service about r under ctx.
func (p *Pipeline) forwardAuth(ctx context.Context, r *Request, rt *Route, d *Decision, client netip.Addr) bool {
	rp := &rt.policy
	proto := "http"
	if r.TLS {
		proto = "https"
	}
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
		// The auth service's own answer (a login hint, a JSON error) is
		// what the client gets: its status, headers and body.
		d.Action, d.Status = ActRespond, res.Status
		d.ReplyHeaders, d.Body = res.Reply, res.Body
		if d.Body == nil {
			d.Body = []byte{}
		}
	default:
		p.log.Warn("forward auth unavailable; request refused", "route", rt.Name, "err", res.Err)
		d.Action, d.Status = ActRespond, 503
		d.count4xx = false
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
			if b := rp.sticky.Lookup(rt.pool, rt.Key, kv[len(strStickyCookie)+1:], now); b != nil {
				return b
			}
		}
	}
	return nil
}
