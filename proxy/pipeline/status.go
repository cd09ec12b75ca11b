package pipeline

import "strconv"

// statusText holds the reason phrases of the statuses the proxy answers
// with itself (RFC 9110 §15).
var statusText = map[int]string{
	200: "OK", 301: "Moved Permanently", 302: "Found", 308: "Permanent Redirect",
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
	405: "Method Not Allowed", 408: "Request Timeout", 413: "Request Entity Too Large",
	414: "Request URI Too Long", 417: "Expectation Failed", 429: "Too Many Requests",
	431: "Request Header Fields Too Large", 500: "Internal Server Error",
	502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
	505: "HTTP Version Not Supported",
}

// StatusText returns the reason phrase of status, or "Status <n>" for one
// the proxy never sends itself.
func StatusText(status int) string {
	if s, ok := statusText[status]; ok {
		return s
	}
	return "Status " + strconv.Itoa(status)
}

// statusBodies holds the short plain bodies of the proxy's own responses,
// built once so that answering allocates nothing.
var statusBodies = func() map[int][]byte {
	m := make(map[int][]byte, len(statusText))
	for c, s := range statusText {
		m[c] = []byte(strconv.Itoa(c) + " " + s + "\n")
	}
	return m
}()

// StatusBody returns the plain body of the proxy's own answer with
// status: "404 Not Found\n". The slice is shared: do not modify it.
func StatusBody(status int) []byte {
	if b, ok := statusBodies[status]; ok {
		return b
	}
	return []byte(strconv.Itoa(status) + " " + StatusText(status) + "\n")
}

// AppendStatusBody appends the body of the proxy's own answer, naming the
// status and the request ID so that a user can quote it to an operator:
// "502 Bad Gateway\nrequest_id: <id>\n".
func AppendStatusBody(dst []byte, status int, rid []byte) []byte {
	dst = append(dst, StatusBody(status)...)
	if len(rid) > 0 {
		dst = append(dst, "request_id: "...)
		dst = append(dst, rid...)
		dst = append(dst, '\n')
	}
	return dst
}
