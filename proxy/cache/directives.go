package cache

import (
	"math"
	"time"
)

// Directive values: absent is -1; delta-seconds above maxDelta are read
// as maxDelta (RFC 9111 §1.2.2: "the greatest positive integer it can
// represent", at least 2^31).
const (
	absent   = -1
	maxDelta = math.MaxInt32
)

// responseCC holds the Cache-Control response directives the cache obeys
// (RFC 9111 §5.2.2, RFC 5861). Seconds are -1 when absent.
type responseCC struct {
	maxAge, sMaxAge               int64
	staleWhileRevalidate          int64
	staleIfError                  int64
	noStore, noCache, private     bool
	public, mustRevalidate        bool
	proxyRevalidate, mustUnderstd bool
}

// requestCC holds the Cache-Control request directives (RFC 9111
// §5.2.1). maxStale is maxDelta for a bare max-stale ("any staleness").
type requestCC struct {
	maxAge, maxStale, minFresh int64
	noCache, noStore           bool
	onlyIfCached               bool
}

// parseResponseCC reads every Cache-Control field of h. A directive with
// an invalid value is read in its most restrictive sense: max-age and
// s-maxage become 0 (stale), RFC 9111 §4.2.1; a duplicate keeps the
// smaller value.
func parseResponseCC(h Fields) responseCC {
	cc := responseCC{maxAge: absent, sMaxAge: absent, staleWhileRevalidate: absent, staleIfError: absent}
	for n, v := range h.All() {
		if !equalFold(n, "cache-control") {
			continue
		}
		eachDirective(v, func(name, val []byte) {
			switch {
			case equalFold(name, "max-age"):
				cc.maxAge = minDelta(cc.maxAge, parseDelta(val))
			case equalFold(name, "s-maxage"):
				cc.sMaxAge = minDelta(cc.sMaxAge, parseDelta(val))
			case equalFold(name, "stale-while-revalidate"):
				cc.staleWhileRevalidate = minDelta(cc.staleWhileRevalidate, parseDelta(val))
			case equalFold(name, "stale-if-error"):
				cc.staleIfError = minDelta(cc.staleIfError, parseDelta(val))
			case equalFold(name, "no-store"):
				cc.noStore = true
			case equalFold(name, "no-cache"):
				// The qualified form (no-cache="Set-Cookie") is read as
				// unqualified: the whole response is revalidated, which
				// RFC 9111 §5.2.2.4 allows.
				cc.noCache = true
			case equalFold(name, "private"):
				// Qualified or not, a shared cache does not store it
				// (§5.2.2.7 lets a cache treat the qualified form as
				// unqualified).
				cc.private = true
			case equalFold(name, "public"):
				cc.public = true
			case equalFold(name, "must-revalidate"):
				cc.mustRevalidate = true
			case equalFold(name, "proxy-revalidate"):
				cc.proxyRevalidate = true
			case equalFold(name, "must-understand"):
				cc.mustUnderstd = true
			}
		})
	}
	return cc
}

// parseRequestCC reads a request's Cache-Control value. pragma is the
// Pragma value, read only when Cache-Control is absent (RFC 9111 §5.4).
func parseRequestCC(v, pragma []byte) requestCC {
	cc := requestCC{maxAge: absent, maxStale: absent, minFresh: absent}
	if v == nil {
		eachDirective(pragma, func(name, _ []byte) {
			cc.noCache = cc.noCache || equalFold(name, "no-cache")
		})
		return cc
	}
	eachDirective(v, func(name, val []byte) {
		switch {
		case equalFold(name, "max-age"):
			cc.maxAge = minDelta(cc.maxAge, parseDelta(val))
		case equalFold(name, "max-stale"):
			if val == nil {
				cc.maxStale = maxDelta
			} else {
				cc.maxStale = minDelta(cc.maxStale, parseDelta(val))
			}
		case equalFold(name, "min-fresh"):
			cc.minFresh = max(cc.minFresh, parseDelta(val))
		case equalFold(name, "no-cache"):
			cc.noCache = true
		case equalFold(name, "no-store"):
			cc.noStore = true
		case equalFold(name, "only-if-cached"):
			cc.onlyIfCached = true
		}
	})
	return cc
}

// eachDirective calls fn with the name and value of each directive of a
// Cache-Control (or Pragma) value. fn does not escape, so a closure
// passed to it stays on the caller's stack.
func eachDirective(v []byte, fn func(name, value []byte)) {
	for len(v) > 0 {
		var item []byte
		item, v = nextListItem(v)
		fn(splitDirective(item))
	}
}

// splitDirective splits "name=value" (value unquoted); value is nil when
// there is no "=".
func splitDirective(item []byte) (name, value []byte) {
	for i, c := range item {
		if c == '=' {
			name, value = trimOWS(item[:i]), trimOWS(item[i+1:])
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if value == nil {
				value = []byte{}
			}
			return name, value
		}
	}
	return item, nil
}

// parseDelta reads delta-seconds (RFC 9111 §1.2.2); anything else,
// including a missing value, is 0: the most restrictive reading.
func parseDelta(v []byte) int64 {
	if len(v) == 0 {
		return 0
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
		if n > maxDelta {
			return maxDelta
		}
	}
	return n
}

// minDelta returns the smaller of a (possibly absent) and b.
func minDelta(a, b int64) int64 {
	if a == absent || b < a {
		return b
	}
	return a
}

// parseHTTPDate reads an HTTP-date (RFC 9110 §5.6.7) as Unix seconds.
// The IMF-fixdate form is parsed without allocating; the obsolete RFC 850
// and asctime forms go through the time package. ok is false for
// anything else.
func parseHTTPDate(v []byte) (sec int64, ok bool) {
	v = trimOWS(v)
	if sec, ok := parseIMFFixdate(v); ok {
		return sec, true
	}
	if len(v) == 0 || len(v) > 64 {
		return 0, false
	}
	for _, layout := range [...]string{"Monday, 02-Jan-06 15:04:05 GMT", "Mon Jan _2 15:04:05 2006"} {
		if t, err := time.Parse(layout, string(v)); err == nil {
			return t.Unix(), true
		}
	}
	return 0, false
}

// parseIMFFixdate reads "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(v []byte) (int64, bool) {
	if len(v) != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' ||
		v[16] != ' ' || v[19] != ':' || v[22] != ':' || v[25] != ' ' || string(v[26:]) != "GMT" {
		return 0, false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	day, year := num(v[5:7]), num(v[12:16])
	hh, mm, ss := num(v[17:19]), num(v[20:22]), num(v[23:25])
	month := 0
	for i, m := range [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"} {
		if string(v[8:11]) == m {
			month = i + 1
			break
		}
	}
	if day < 1 || day > 31 || year < 0 || month == 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 {
		return 0, false
	}
	return time.Date(year, time.Month(month), day, hh, mm, ss, 0, time.UTC).Unix(), true
}

// appendHTTPDate appends t (Unix seconds) as an IMF-fixdate.
func appendHTTPDate(dst []byte, sec int64) []byte {
	return time.Unix(sec, 0).UTC().AppendFormat(dst, "Mon, 02 Jan 2006 15:04:05 GMT")
}
