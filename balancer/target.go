package balancer

// Target is one thing to probe: a backend and the request to send it.
type Target struct {
	// Backend is the backend to probe; targets with a nil Backend are
	// ignored.
	Backend *Backend
	// Host is the Host header (:authority in HTTP/2) and, when it is a
	// DNS name, the TLS server name. Use the route's host; empty,
	// "DEFAULT" or a wildcard such as "*.example.com" means the
	// backend's address.
	Host string
	// Path is the request path, usually the route's path prefix. Empty
	// means "/".
	Path string
}
