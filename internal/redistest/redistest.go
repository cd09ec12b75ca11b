// Package redistest runs a real redis-server (Debian's redis-server
// package) on a free loopback port for tests, and can pause, kill and
// restart it to test what happens when the store goes away.
//
// When redis-server is not installed the test is skipped with a line
// saying so, unless the environment variable ARALEZ_CI is set (.ci/run
// sets it and installs the package): then the test fails.
//
// It is test-only code: nothing outside _test.go files may import it.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process. Its methods must be called from
// the test's goroutine.
type Server struct {
	// Addr is the server's 127.0.0.1:port; it stays the same across
	// Restart.
	Addr string

	tb   testing.TB
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs redis-server on a free loopback port, waits until it
// answers PING, and kills it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("ARALEZ_CI") != "" {
			tb.Fatalf("redistest: redis-server not found, and ARALEZ_CI is set (.ci/run installs it): %v", err)
		}
		tb.Skip("redistest: redis-server is not installed (Debian package redis-server); skipping")
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir()}
	tb.Cleanup(s.Kill)
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("redistest: finding a free port: %v", err)
		}
		s.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if err := s.start(); err == nil {
			return s
		} else if attempt == 4 {
			tb.Fatalf("redistest: %v", err)
		}
	}
}

// start runs the process on s.port and waits for PING to answer.
func (s *Server) start() error {
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--daemonize", "no", "--loglevel", "warning")
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start (port taken?)", s.port)
		default:
		}
		if ping(s.Addr) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10 s", s.Addr)
}

// ping sends PING on a new connection and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop pauses the server (SIGSTOP): connections stay open and nothing is
// answered, as with a server that hangs.
func (s *Server) Stop() { s.signal(syscall.SIGSTOP) }

// Cont resumes a server paused by Stop.
func (s *Server) Cont() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: %v: %v", sig, err)
	}
}

// Kill ends the server (SIGKILL, also when paused) and waits for it. It
// is a no-op when it is not running.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Restart starts a new, empty server on the same address after Kill.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the old socket may linger
	}
	s.tb.Fatalf("redistest: restarting: %v", err)
}
