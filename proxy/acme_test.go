package proxy

import (
	"net/netip"
	"testing"

	"github.com/aralez-go/aralez/config"
)

// heldChallenges is an HTTPChallenger over a fixed set of host → token →
// key authorization; the ACME manager behind it is tested against a real
// CA in tls/acme and cmd/aralez.
type heldChallenges map[string]map[string]string

func (h heldChallenges) HTTPChallenge(host, token []byte) ([]byte, bool) {
	ka, ok := h[string(host)][string(token)]
	if !ok {
		return nil, false
	}
	return []byte(ka), true
}

// TestFrontEndsACMEChallenge checks, on HTTP/1.1, h2c, h2 and HTTPS/1.1,
// that an HTTP-01 token the process holds is answered before routing,
// allow/deny, to_https and authorization, for any host, and that an
// unknown token goes on to normal routing (issue 13).
func TestFrontEndsACMEChallenge(t *testing.T) {
	t.Parallel()
	up, seen := newUpstream(t, "a", nil)
	host := oneRoute("app.test", "/", addrOf(up))
	host.Paths[0].Policy.ToHTTPS = boolp(true)
	host.Paths[0].Policy.Deny = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	host.Paths[0].Policy.Authorization = &config.Auth{Type: "basic", Data: []string{"u:p"}}
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{host}
	held := heldChallenges{
		"app.test":   {"tok-app_1": "tok-app_1.thumbprint"},
		"other.test": {"tok-other": "tok-other.thumbprint"},
	}
	f := startFronts(t, cfg, Options{Challenges: held}, UpstreamOptions{}, ListenOptions{})
	for _, fe := range frontEnds {
		t.Run(fe.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name, host, target string
				code               int
				body               string
			}{
				{"held token", "app.test", "/.well-known/acme-challenge/tok-app_1", 200, "tok-app_1.thumbprint"},
				{"held token, port in Host", "app.test:8080", "/.well-known/acme-challenge/tok-app_1", 200, "tok-app_1.thumbprint"},
				{"unrouted host", "other.test", "/.well-known/acme-challenge/tok-other", 200, "tok-other.thumbprint"},
				{"token of another host", "other.test", "/.well-known/acme-challenge/tok-app_1", 404, ""},
				{"unknown token is routed", "app.test", "/.well-known/acme-challenge/unknown", 403, ""},
				{"prefix only is routed", "app.test", "/.well-known/acme-challenge/", 403, ""},
			} {
				resp, body := doReq(t, fe.client, "GET", fe.base(f), tc.target, map[string]string{"Host": tc.host}, nil)
				if resp.StatusCode != tc.code || tc.body != "" && body != tc.body {
					t.Errorf("%s: GET %s Host %s = %d %q; want %d %q", tc.name, tc.target, tc.host, resp.StatusCode, body, tc.code, tc.body)
				}
				if tc.code == 200 {
					if ct := resp.Header.Get("Content-Type"); ct == "" {
						t.Errorf("%s: no Content-Type", tc.name)
					}
				}
			}
		})
	}
	if n := seen.hits.Load(); n != 0 {
		t.Errorf("backend saw %d requests; want 0 (denied or answered before routing)", n)
	}
}
