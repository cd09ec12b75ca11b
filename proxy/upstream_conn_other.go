//go:build !linux

package proxy

// canPeek reports whether peekSocket can look at a socket here: not on
// this platform, where pooled connections are taken to be alive and a
// dead one is found by the failed round trip (pipeline.ErrStale).
const canPeek = false

func peekSocket(uintptr, []byte) (int, error) { return 0, nil }

func isWouldBlock(error) bool { return false }
