package proxy

import (
	"net/http"
	"strconv"
	"strings"
)

// isGRPC reports whether the request is a gRPC call: content-type
// application/grpc, optionally followed by "+proto", ";…" and the like.
func isGRPC(h http.Header) bool {
	v, ok := h["Content-Type"]
	if !ok || len(v) == 0 {
		return false
	}
	ct := v[0]
	const p = "application/grpc"
	return len(ct) >= len(p) && strings.EqualFold(ct[:len(p)], p) &&
		(len(ct) == len(p) || ct[len(p)] == '+' || ct[len(p)] == ';')
}

// gRPC status codes (google.golang.org/grpc/codes) the proxy sends.
const (
	grpcUnknown           = 2
	grpcResourceExhausted = 8
	grpcPermissionDenied  = 7
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// grpcCode maps the proxy's HTTP status to a gRPC status code, following
// gRPC's HTTP-to-gRPC status mapping (doc/http-grpc-status-mapping.md in
// the grpc repository), plus 413 → RESOURCE_EXHAUSTED.
func grpcCode(status int) int {
	switch status {
	case 400, 414, 431:
		return grpcInternal
	case 401:
		return grpcUnauthenticated
	case 403:
		return grpcPermissionDenied
	case 404:
		return grpcUnimplemented
	case 413:
		return grpcResourceExhausted
	case 429, 502, 503, 504:
		return grpcUnavailable
	}
	return grpcUnknown
}

var grpcCodeStrings = func() [17][]string {
	var a [17][]string
	for i := range a {
		a[i] = []string{strconv.Itoa(i)}
	}
	return a
}()

var (
	hdrTextPlain = []string{string(strTextPlain)}
	hdrGRPC      = []string{"application/grpc"}
)
