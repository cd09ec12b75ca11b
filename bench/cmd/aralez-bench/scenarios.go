package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Fixed loopback layout. Nothing the suite starts or sends leaves
// 127.0.0.1; these ports stay clear of the unit tests' (which pick ports
// at random) and of the reference harness in ../shared/bench-ref.
const (
	up1Addr, up2Addr       = "127.0.0.1:19001", "127.0.0.1:19002"
	up1Stats, up2Stats     = "127.0.0.1:19101", "127.0.0.1:19102"
	helperAddr, helperGRPC = "127.0.0.1:19011", "127.0.0.1:19012"
)

// baseName is the target name of the base binary of a same-run A/B
// (-aralez-base): our proxy built from an earlier commit.
const baseName = "aralez-base"

// Target kinds.
const (
	kindDirect = iota // the reference upstream itself: the load side's ceiling
	kindPeer          // nginx, HAProxy, Caddy
	kindOurs          // bin/aralez
)

// targetSpec is a target's fixed addresses. admin is aralez's config API
// (used with -profile).
type targetSpec struct {
	name                  string
	kind                  int
	http, tls, h2c, admin string
}

var allTargets = []targetSpec{
	{name: "direct", kind: kindDirect},
	{name: "nginx", kind: kindPeer, http: "127.0.0.1:18081", tls: "127.0.0.1:18441", h2c: "127.0.0.1:18091"},
	{name: "haproxy", kind: kindPeer, http: "127.0.0.1:18082", tls: "127.0.0.1:18442", h2c: "127.0.0.1:18092"},
	{name: "caddy", kind: kindPeer, http: "127.0.0.1:18083", tls: "127.0.0.1:18443", h2c: "127.0.0.1:18093"},
	// aralez has no separate h2c listener in its config: h2c (prior
	// knowledge) is expected on the plain HTTP listener.
	{name: "aralez", kind: kindOurs, http: "127.0.0.1:18084", tls: "127.0.0.1:18444", h2c: "127.0.0.1:18084", admin: "127.0.0.1:18085"},
	// The base binary of an A/B run; only with -aralez-base.
	{name: baseName, kind: kindOurs, http: "127.0.0.1:18086", tls: "127.0.0.1:18446", h2c: "127.0.0.1:18086", admin: "127.0.0.1:18087"},
}

// Config sets: proxies are started once per set and stay up for all its
// cases and rounds.
const (
	setBase     = "base"     // scenarios 1-6
	setHosts    = "hosts"    // scenario 7: 10,000 hosts in the config
	setFeatures = "features" // scenario 8: rate limit and JWT on (ours)
	// setIdle is scenario 9 on freshly started proxies: memory kept from
	// 10,000 connections would otherwise inflate every later peak RSS, and
	// memory kept from earlier cases would inflate this one.
	setIdle = "idle"
	// setCache is scenario 10: response caching on in every proxy that
	// has one.
	setCache = "cache"
	// setSweep is scenario 11: proxies sized for the largest connection
	// count of the sweep.
	setSweep = "sweep"
)

// configSets lists the config sets in run order.
var configSets = []string{setBase, setHosts, setFeatures, setIdle, setCache, setSweep}

// tcase is one measured cell: a load generator run with fixed settings
// against every target that supports it.
type tcase struct {
	scen    int
	set     string
	id      string // short label, e.g. "h1 100B c50"
	tool    string // wrk, h2load, grpc, ws, idle
	scheme  string // http, https, h2c
	path    string
	conns   int
	streams int      // h2load -m
	headers []string // extra request headers, "Name: value"
	script  string   // wrk Lua prepended to the report script
	host    string   // Host header of the sanity request ("" = default)
	direct  string   // address of the direct row, "" = no direct row
	feature string   // what an "ours" skip message names
	method  string   // sanity request method, "" = GET
	// deny, when set, is a second sanity request that must NOT get 200:
	// it proves the feature under test is really on (an unknown Host must
	// not be routed, a request without a token must be refused).
	deny *denyCheck
	// once runs the case in round 1 only (a peak, not a rate).
	once bool
	// held runs warm-up and window in one wrk process: the warm-up ends
	// only when every connection is established and accepted, and the
	// window's requests are counted at the upstreams (see runHeld).
	held bool
	// cache marks a cache-hit case: the share of requests that reached
	// the upstreams tells whether the target answered from its cache.
	cache bool
}

// denyCheck describes a request the target must refuse.
type denyCheck struct {
	host     string // Host header to send instead of the case's
	dropAuth bool   // send no Authorization header
	oursOnly bool   // peers are not configured for it (scenario 8)
	what     string // what a 200 answer means, for the skip line
}

const uploadScript = `
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
`

// hostsScript spreads requests round robin over n Host values.
func hostsScript(n int) string {
	return fmt.Sprintf(`
local hosts = {}
local n = %d
local i = 0
init = function(args)
  for k = 1, n do
    hosts[k] = wrk.format("GET", "/", {["Host"] = string.format("h%%05d.bench.test", k)})
  end
end
request = function()
  i = i %% n + 1
  return hosts[i]
end
`, n)
}

// hostName returns the i-th (1-based) host of the many-routes scenario.
func hostName(i int) string { return fmt.Sprintf("h%05d.bench.test", i) }

const numHosts = 10000

// numIdle is the number of idle keep-alive connections of scenario 9.
const numIdle = 10000

// defaultSweep is the connection counts of scenario 11.
var defaultSweep = []int{50, 256, 1000, 10000}

// cacheMB is the cache size every proxy gets in scenario 10, in MiB.
const cacheMB = 64

// scenarioTitles names each scenario in the report.
var scenarioTitles = map[int]string{
	1: "HTTP/1.1 keep-alive, 100 B body",
	2: "HTTP/1.1, new connection per request (Connection: close)",
	3: "Large bodies: 64 KiB down, 1 MiB up",
	4: "TLS: HTTP/1.1 (wrk) and h2 (h2load)",
	5: "h2c and gRPC unary",
	6: "WebSocket echo",
	7: "Many routes: 10,000 hosts in the config",
	8: "Rate limit and JWT auth enabled, never triggered",
	9: "Peak RSS with 10,000 idle keep-alive connections",
	// Not in the default set: named with SCENARIOS=10 (or cache) and 11
	// (or sweep).
	10: "Cache hit: 100 B and 4 KiB bodies from the proxy's response cache",
	11: "Connection sweep: HTTP/1.1 keep-alive, 100 B, 50 to 10,000 connections",
}

// defaultScenarios is what runs when no scenario is named.
var defaultScenarios = []int{1, 2, 3, 4, 5, 6, 7, 8, 9}

// scenarioAliases are names accepted in -scenarios besides numbers.
var scenarioAliases = map[string]int{"cache": 10, "sweep": 11}

// buildCases returns the cases of the chosen scenarios in run order.
// jwtToken is sent as a bearer token in scenario 8; sweep is the
// connection counts of scenario 11.
func buildCases(scens []int, jwtToken string, sweep []int) []tcase {
	var out []tcase
	has := func(n int) bool {
		for _, s := range scens {
			if s == n {
				return true
			}
		}
		return false
	}
	if has(1) {
		out = append(out,
			tcase{scen: 1, set: setBase, id: "h1 100B c50", tool: "wrk", scheme: "http", path: "/", conns: 50, direct: up1Addr},
			tcase{scen: 1, set: setBase, id: "h1 100B c256", tool: "wrk", scheme: "http", path: "/", conns: 256, direct: up1Addr})
	}
	if has(2) {
		out = append(out, tcase{scen: 2, set: setBase, id: "h1 close c50", tool: "wrk", scheme: "http", path: "/", conns: 50,
			headers: []string{"Connection: close"}, direct: up1Addr})
	}
	if has(3) {
		out = append(out,
			tcase{scen: 3, set: setBase, id: "64KiB down c50", tool: "wrk", scheme: "http", path: "/64k", conns: 50, direct: up1Addr},
			tcase{scen: 3, set: setBase, id: "1MiB up c16", tool: "wrk", scheme: "http", path: "/upload", conns: 16,
				script: uploadScript, direct: helperAddr, method: "POST", feature: "request body streaming on /upload"})
	}
	if has(4) {
		out = append(out,
			tcase{scen: 4, set: setBase, id: "TLS h1 c50", tool: "wrk", scheme: "https", path: "/", conns: 50, feature: "TLS listener"},
			tcase{scen: 4, set: setBase, id: "TLS h2 c50x10", tool: "h2load", scheme: "https", path: "/", conns: 50, streams: 10, feature: "TLS listener with h2"})
	}
	if has(5) {
		out = append(out,
			tcase{scen: 5, set: setBase, id: "h2c c50x10", tool: "h2load", scheme: "h2c", path: "/", conns: 50, streams: 10,
				direct: helperAddr, feature: "h2c (prior knowledge) on the HTTP listener"},
			tcase{scen: 5, set: setBase, id: "gRPC unary c50", tool: "grpc", scheme: "h2c", path: "/bench.Echo/Unary", conns: 50,
				direct: helperGRPC, feature: "gRPC proxying over h2c"})
	}
	if has(6) {
		out = append(out, tcase{scen: 6, set: setBase, id: "WebSocket echo c50", tool: "ws", scheme: "http", path: "/ws", conns: 50,
			direct: helperAddr, feature: "WebSocket upgrade"})
	}
	if has(9) {
		out = append(out, tcase{scen: 9, set: setIdle, id: "idle 10k conns", tool: "idle", scheme: "http", path: "/", conns: numIdle, once: true})
	}
	if has(7) {
		out = append(out, tcase{scen: 7, set: setHosts, id: "h1 10k hosts c50", tool: "wrk", scheme: "http", path: "/", conns: 50,
			script: hostsScript(numHosts), host: hostName(numHosts / 2), feature: "10,000 host entries",
			deny: &denyCheck{host: "unknown.bench.test", what: "a host that is not in the config was routed (200)"}})
	}
	if has(8) {
		out = append(out, tcase{scen: 8, set: setFeatures, id: "h1 ratelimit+JWT c50", tool: "wrk", scheme: "http", path: "/", conns: 50,
			headers: []string{"Authorization: Bearer " + jwtToken}, feature: "rate_limit and JWT authorization",
			deny: &denyCheck{dropAuth: true, oursOnly: true, what: "a request without a bearer token was answered 200: JWT authorization is not enforced"}})
	}
	if has(10) {
		out = append(out,
			tcase{scen: 10, set: setCache, id: "cache hit 100B c50", tool: "wrk", scheme: "http", path: "/cache/100", conns: 50,
				direct: up1Addr, cache: true},
			tcase{scen: 10, set: setCache, id: "cache hit 4KiB c50", tool: "wrk", scheme: "http", path: "/cache/4k", conns: 50,
				direct: up1Addr, cache: true})
	}
	if has(11) {
		for _, n := range sweep {
			out = append(out, tcase{scen: 11, set: setSweep, id: fmt.Sprintf("h1 sweep c%d", n), tool: "wrk", scheme: "http",
				path: "/", conns: n, direct: up1Addr, held: true})
		}
	}
	return out
}

// parseScenarios parses "1,4" or "1-3,8", with the names of
// scenarioAliases allowed in place of numbers ("1,sweep"); empty means the
// default set.
func parseScenarios(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(defaultScenarios), nil
	}
	var parts []string
	for _, p := range strings.Split(s, ",") {
		if n, ok := scenarioAliases[strings.ToLower(strings.TrimSpace(p))]; ok {
			p = strconv.Itoa(n)
		}
		parts = append(parts, p)
	}
	list, err := parseCPUList(strings.Join(parts, ","))
	if err != nil {
		return nil, fmt.Errorf("scenarios %q: %w", s, err)
	}
	for _, n := range list {
		if _, ok := scenarioTitles[n]; !ok {
			return nil, fmt.Errorf("scenarios %q: no scenario %d (1-%d)", s, n, len(scenarioTitles))
		}
	}
	return list, nil
}

// parseSweep parses the connection counts of scenario 11, e.g.
// "50,256,1000,10000"; empty means defaultSweep.
func parseSweep(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(defaultSweep), nil
	}
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("sweep %q: %q is not a positive whole number", s, p)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}
