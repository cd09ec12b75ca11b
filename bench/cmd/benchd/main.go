// Command benchd is the bench suite's own reference upstream and load client
// for what nginx and wrk cannot do on the bench machine.
//
//	benchd serve -http 127.0.0.1:19011 -grpc 127.0.0.1:19012 -name up1
//	benchd grpc-load -addr 127.0.0.1:18094 -c 50 -d 2s -size 100
//	benchd ws-load -url ws://127.0.0.1:18084/ws -c 50 -d 2s -size 100
//	benchd idle -addr 127.0.0.1:18084 -n 10000 -hold 3s
//
// serve answers HTTP/1.1 and h2c (prior knowledge) on -http: "/" returns a
// 100-byte JSON body, "/upload" reads and discards the request body and
// answers with its size, "/ws" is a WebSocket echo, "/echo" returns the
// X-Proxy-From request header. On -grpc it serves the unary method
// /bench.Echo/Unary, which echoes a google.protobuf.BytesValue.
//
// idle opens -n keep-alive connections, sends one GET on each, and holds
// them idle for -hold (the proxy's memory with many idle clients).
//
// The load subcommands print one JSON object (see loadResult) on stdout and
// exit; they send traffic only to the address they are given, which the
// driver always sets to a 127.0.0.1 address.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchd serve|grpc-load|ws-load [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		err = serve(ctx, os.Args[2:], nil)
		stop()
	case "grpc-load":
		err = grpcLoad(os.Args[2:], os.Stdout)
	case "ws-load":
		err = wsLoad(os.Args[2:], os.Stdout)
	case "idle":
		err = idleConns(os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchd:", err)
		os.Exit(1)
	}
}

// loopbackOnly refuses any address that is not on 127.0.0.0/8 or [::1].
func loopbackOnly(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("address %q: %w", hostport, err)
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("address %q is not a loopback address", hostport)
}

// ---------------------------------------------------------------- serve

// jsonBody is the 100-byte JSON body of "/", as long as the nginx upstreams'.
const jsonBody = `{"ok":true,"upstream":"benchd","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

// serve runs the upstream until ctx is done. ready, when not nil, is
// closed once both listeners are up.
func serve(ctx context.Context, args []string, ready chan<- struct{}) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	httpAddr := fs.String("http", "127.0.0.1:19011", "HTTP/1.1 + h2c listen address")
	grpcAddr := fs.String("grpc", "", "gRPC (h2c) listen address; empty: none")
	name := fs.String("name", "benchd", "name put in the X-Upstream response header")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, a := range []string{*httpAddr, *grpcAddr} {
		if a == "" {
			continue
		}
		if err := loopbackOnly(a); err != nil {
			return err
		}
	}

	var uploaded atomic.Int64
	mux := http.NewServeMux()
	body := []byte(jsonBody)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", *name)
		w.Write(body)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "X-Proxy-From: %s\n", r.Header.Get("X-Proxy-From"))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		uploaded.Add(n)
		fmt.Fprintf(w, "%d\n", n)
	})
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096,
		CheckOrigin: func(*http.Request) bool { return true }}
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, p); err != nil {
				return
			}
		}
	})
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	hs := &http.Server{Addr: *httpAddr, Handler: mux, Protocols: &protos,
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 300 * time.Second}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *httpAddr, err)
	}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()

	var gs *grpc.Server
	if *grpcAddr != "" {
		gl, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			hs.Close()
			return fmt.Errorf("listening on %s: %w", *grpcAddr, err)
		}
		gs = grpc.NewServer()
		gs.RegisterService(&echoDesc, struct{}{})
		go func() { errc <- gs.Serve(gl) }()
	}

	if ready != nil {
		close(ready)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	hs.Close()
	if gs != nil {
		gs.Stop()
	}
	return nil
}

// echoDesc describes the service bench.Echo by hand, so no generated code is
// needed: Unary returns the BytesValue it was sent.
var echoDesc = grpc.ServiceDesc{
	ServiceName: "bench.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return in, nil
		},
	}},
	Metadata: "bench.proto",
}

// ---------------------------------------------------------------- load

// loadResult is what the load subcommands print, one JSON object.
type loadResult struct {
	Requests int64   `json:"requests"` // completed round trips in the window
	Errors   int64   `json:"errors"`   // failed calls or broken connections
	Seconds  float64 `json:"seconds"`  // length of the window
	RPS      float64 `json:"rps"`      // Requests / Seconds
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p999_us"`
	FirstErr string  `json:"first_error,omitempty"`
}

// recorder collects per-worker latencies without sharing memory.
type recorder struct {
	lat  []time.Duration
	errs int64
	err  error
}

func (r *recorder) fail(err error) {
	r.errs++
	if r.err == nil {
		r.err = err
	}
}

func summarize(recs []*recorder, elapsed time.Duration) loadResult {
	var all []time.Duration
	res := loadResult{Seconds: elapsed.Seconds()}
	for _, r := range recs {
		all = append(all, r.lat...)
		res.Errors += r.errs
		if r.err != nil && res.FirstErr == "" {
			res.FirstErr = r.err.Error()
		}
	}
	slices.Sort(all)
	res.Requests = int64(len(all))
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p / 100 * float64(len(all)))
		if i >= len(all) {
			i = len(all) - 1
		}
		return float64(all[i].Microseconds())
	}
	res.P50us, res.P99us, res.P999us = pct(50), pct(99), pct(99.9)
	return res
}

func printResult(w io.Writer, res loadResult) error {
	return json.NewEncoder(w).Encode(res)
}

// runWorkers runs conns workers until the deadline; each calls once per
// iteration and records the latency of successful calls.
func runWorkers(conns int, d time.Duration, call func(w int) error) ([]*recorder, time.Duration) {
	recs := make([]*recorder, conns)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range conns {
		recs[w] = &recorder{lat: make([]time.Duration, 0, 1<<14)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := recs[w]
			for {
				t0 := time.Now()
				if t0.After(deadline) {
					return
				}
				if err := call(w); err != nil {
					r.fail(err)
					if r.errs > 1000 {
						return
					}
					continue
				}
				r.lat = append(r.lat, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return recs, time.Since(start)
}

func grpcLoad(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("grpc-load", flag.ContinueOnError)
	addr := fs.String("addr", "", "target host:port (h2c)")
	conns := fs.Int("c", 50, "concurrent calls")
	tcpConns := fs.Int("conns", 5, "TCP connections the calls are spread over")
	d := fs.Duration("d", 2*time.Second, "length of the measured window")
	size := fs.Int("size", 100, "payload bytes per call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(*addr); err != nil {
		return err
	}
	ccs := make([]*grpc.ClientConn, *tcpConns)
	for i := range ccs {
		cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("dialing %s: %w", *addr, err)
		}
		defer cc.Close()
		ccs[i] = cc
	}
	payload := &wrapperspb.BytesValue{Value: []byte(strings.Repeat("x", *size))}
	call := func(w int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out := new(wrapperspb.BytesValue)
		if err := ccs[w%len(ccs)].Invoke(ctx, "/bench.Echo/Unary", payload, out); err != nil {
			return err
		}
		if len(out.Value) != *size {
			return fmt.Errorf("echo returned %d bytes; want %d", len(out.Value), *size)
		}
		return nil
	}
	// One call per connection first, so the window does not include dialing.
	for w := range ccs {
		if err := call(w); err != nil {
			return fmt.Errorf("first call: %w", err)
		}
	}
	recs, el := runWorkers(*conns, *d, call)
	return printResult(w, summarize(recs, el))
}

func wsLoad(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("ws-load", flag.ContinueOnError)
	url := fs.String("url", "", "ws://127.0.0.1:port/path")
	conns := fs.Int("c", 50, "WebSocket connections, one message in flight on each")
	d := fs.Duration("d", 2*time.Second, "length of the measured window")
	size := fs.Int("size", 100, "message bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hostport := strings.TrimPrefix(*url, "ws://")
	if i := strings.IndexByte(hostport, '/'); i >= 0 {
		hostport = hostport[:i]
	}
	if !strings.HasPrefix(*url, "ws://") {
		return fmt.Errorf("url %q: want ws://", *url)
	}
	if err := loopbackOnly(hostport); err != nil {
		return err
	}
	cs := make([]*websocket.Conn, *conns)
	for i := range cs {
		c, _, err := websocket.DefaultDialer.Dial(*url, nil)
		if err != nil {
			return fmt.Errorf("dialing %s: %w", *url, err)
		}
		defer c.Close()
		cs[i] = c
	}
	msg := []byte(strings.Repeat("m", *size))
	call := func(w int) error {
		c := cs[w]
		dl := time.Now().Add(5 * time.Second)
		c.SetWriteDeadline(dl)
		c.SetReadDeadline(dl)
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			return err
		}
		_, p, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if len(p) != len(msg) {
			return fmt.Errorf("echo returned %d bytes; want %d", len(p), len(msg))
		}
		return nil
	}
	// A broken connection fails fast on every later call; runWorkers
	// stops a worker after 1000 errors, and the errors are reported.
	recs, el := runWorkers(*conns, *d, call)
	return printResult(w, summarize(recs, el))
}

// idleConns opens n HTTP/1.1 keep-alive connections to addr, completes one
// GET on each, keeps them all open and idle for hold, then closes them. It
// reports the connections that completed their request as "requests" and
// the time it took to open them all as "seconds".
func idleConns(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	addr := fs.String("addr", "", "target host:port")
	n := fs.Int("n", 10000, "connections")
	hold := fs.Duration("hold", 3*time.Second, "how long all connections stay open and idle")
	path := fs.String("path", "/", "request path")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(*addr); err != nil {
		return err
	}
	// Each connection is a file descriptor: raise the soft limit to the
	// hard one (as root, the hard one too when it is too small).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		want := uint64(*n) + 256
		if lim.Max < want {
			lim.Max = want
		}
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *addr + "\r\nUser-Agent: benchd-idle\r\n\r\n")
	conns := make([]net.Conn, *n)
	lat := make([]time.Duration, *n)
	errs := make([]error, *n)
	start := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				t0 := time.Now()
				c, err := net.DialTimeout("tcp", *addr, 10*time.Second)
				if err != nil {
					errs[i] = err
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(req); err != nil {
					c.Close()
					errs[i] = err
					continue
				}
				resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4096), nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					c.Close()
					errs[i] = err
					continue
				}
				c.SetDeadline(time.Time{})
				conns[i], lat[i] = c, time.Since(t0)
			}
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	time.Sleep(*hold)
	// A connection the server closed while idle is a failure too: probe
	// every connection at once with one shared short deadline.
	closed := make([]bool, *n)
	deadline := time.Now().Add(100 * time.Millisecond)
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(deadline)
			if _, err := c.Read(make([]byte, 1)); err == io.EOF {
				closed[i] = true
			}
			c.Close()
		}()
	}
	wg.Wait()
	rec := &recorder{}
	for i, c := range conns {
		switch {
		case c == nil:
			rec.fail(errs[i])
		case closed[i]:
			rec.fail(fmt.Errorf("connection %d closed by the server while idle", i))
		default:
			rec.lat = append(rec.lat, lat[i])
		}
	}
	return printResult(w, summarize([]*recorder{rec}, opened))
}
