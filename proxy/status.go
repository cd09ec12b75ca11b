package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

var strTextPlain = []byte("text/plain; charset=utf-8")

// statusBodies holds the short plain bodies of the proxy's own responses,
// built once so that answering allocates nothing.
var statusBodies = func() map[int][]byte {
	m := make(map[int][]byte)
	for _, c := range []int{301, 302, 400, 401, 403, 404, 408, 413, 414, 417, 429, 431, 500, 502, 503, 504} {
		m[c] = []byte(strconv.Itoa(c) + " " + fasthttp.StatusMessage(c) + "\n")
	}
	return m
}()

// statusBody returns the plain body for status: "404 Not Found\n".
func statusBody(status int) []byte {
	if b, ok := statusBodies[status]; ok {
		return b
	}
	return []byte(strconv.Itoa(status) + " " + fasthttp.StatusMessage(status) + "\n")
}

// appendStatusBody appends "502 Bad Gateway\nrequest_id: <id>\n".
func appendStatusBody(dst []byte, status int, rid []byte) []byte {
	dst = append(dst, statusBody(status)...)
	if len(rid) > 0 {
		dst = append(dst, "request_id: "...)
		dst = append(dst, rid...)
		dst = append(dst, '\n')
	}
	return dst
}
