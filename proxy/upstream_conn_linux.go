package proxy

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// canPeek reports whether peekSocket can look at a socket here.
const canPeek = true

// peekSocket reads up to len(p) bytes from the socket fd without
// consuming them and without blocking (recv with MSG_PEEK|MSG_DONTWAIT,
// which returns at once): n == 0 with a nil error is the peer's FIN, and
// EAGAIN means nothing has arrived. It is the bare system call: the
// library wrapper allocates for the sender address that a connected TCP
// socket never reports.
func peekSocket(fd uintptr, p []byte) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// isWouldBlock reports whether err says that a non-blocking call found
// nothing to do.
func isWouldBlock(err error) bool {
	return err == unix.EAGAIN || err == unix.EWOULDBLOCK
}
