package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/aralez-go/aralez/balancer"
	bhealth "github.com/aralez-go/aralez/balancer/health"
	"github.com/aralez-go/aralez/config"
)

// testService is a small grpc.testing.TestService: unary echo with an
// optional status, server/client/bidi streaming, and a record of what the
// proxy forwarded and of cancellations.
type testService struct {
	testpb.UnimplementedTestServiceServer
	cancelled atomic.Int64
	deadline  atomic.Int64 // last seen deadline - now, in ms
	lastMD    atomic.Pointer[metadata.MD]
}

func (s *testService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.lastMD.Store(&md)
	if dl, ok := ctx.Deadline(); ok {
		s.deadline.Store(time.Until(dl).Milliseconds())
	}
	if st := in.GetResponseStatus(); st != nil && st.Code != 0 {
		return nil, status.Error(codes.Code(st.Code), st.Message)
	}
	body := in.GetPayload().GetBody()
	if n := in.GetResponseSize(); n > 0 {
		body = make([]byte, n)
	}
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1"))
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: body}, Hostname: "backend"}, nil
}

func (s *testService) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for _, p := range in.GetResponseParameters() {
		if p.GetIntervalUs() > 0 {
			select {
			case <-time.After(time.Duration(p.GetIntervalUs()) * time.Microsecond):
			case <-stream.Context().Done():
				s.cancelled.Add(1)
				return stream.Context().Err()
			}
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *testService) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	total := 0
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(in.GetPayload().GetBody())
	}
}

func (s *testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if stream.Context().Err() != nil {
				s.cancelled.Add(1)
			}
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: in.GetPayload()}); err != nil {
			return err
		}
	}
}

// startGRPC serves the test and health services on 127.0.0.1, with TLS
// when tlsCfg is not nil, and returns the address.
func startGRPC(t *testing.T, tlsCfg *tls.Config) (string, *testService) {
	t.Helper()
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	svc := &testService{}
	testpb.RegisterTestServiceServer(srv, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), svc
}

func dialGRPC(t *testing.T, addr string, useTLS bool, authority string) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if authority != "" {
		opts = append(opts, grpc.WithAuthority(authority))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestGRPCThroughProxy runs real gRPC clients through both listeners
// (TLS h2 and cleartext h2c) to h2c and TLS h2 backends: health, unary
// with trailers and error statuses, the three streaming kinds,
// cancellation and deadline propagation (issue 5).
func TestGRPCThroughProxy(t *testing.T) {
	t.Parallel()
	h2cAddr, h2cSvc := startGRPC(t, nil)
	tlsAddr, tlsSvc := startGRPC(t, testTLSConfig(t, []string{"h2"}))
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{
		oneRoute("h2c.test", "/", h2cAddr),
		oneRoute("tls.test", "/", tlsAddr),
	}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	// The h2c backend stays undetected (gRPC then goes over h2c); the
	// TLS one is detected as the health checker would.
	p, err := bhealth.Detect(context.Background(), tlsAddr, "", time.Second)
	if err != nil || p != balancer.ProtoTLS|balancer.ProtoH2 {
		t.Fatalf("Detect(tls backend) = %v, %v; want tls+h2", p, err)
	}
	f.reg.Backends().Get(tlsAddr).SetProto(p)

	type target struct {
		name      string
		addr      string
		tls       bool
		authority string
		svc       *testService
	}
	targets := []target{
		{"h2c-front/h2c-back", f.plain, false, "h2c.test", h2cSvc},
		{"tls-front/h2c-back", f.tls, true, "h2c.test", h2cSvc},
		{"h2c-front/tls-back", f.plain, false, "tls.test", tlsSvc},
		{"tls-front/tls-back", f.tls, true, "tls.test", tlsSvc},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			cc := dialGRPC(t, tg.addr, tg.tls, tg.authority)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Health.Check = %v, %v; want SERVING", hr, err)
			}

			tc := testpb.NewTestServiceClient(cc)
			var trailer metadata.MD
			res, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello")}}, grpc.Trailer(&trailer))
			if err != nil || string(res.GetPayload().GetBody()) != "hello" {
				t.Fatalf("UnaryCall = %v, %v; want payload hello", res, err)
			}
			if got := strings.Join(trailer.Get("x-trailer"), ","); got != "t1" {
				t.Errorf("UnaryCall trailer x-trailer = %q; want t1", got)
			}
			md := *tg.svc.lastMD.Load()
			if got := strings.Join(md.Get("via"), ","); got != "2 aralez" {
				t.Errorf("backend saw via %q; want \"2 aralez\"", got)
			}
			if got := strings.Join(md.Get("x-forwarded-for"), ","); got != "127.0.0.1" {
				t.Errorf("backend saw x-forwarded-for %q; want 127.0.0.1", got)
			}

			big, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 1 << 20})
			if err != nil || len(big.GetPayload().GetBody()) != 1<<20 {
				t.Fatalf("UnaryCall(1 MiB response) = %d bytes, %v; want 1 MiB", len(big.GetPayload().GetBody()), err)
			}

			_, err = tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "nope: ünïcode"}})
			if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || st.Message() != "nope: ünïcode" {
				t.Errorf("UnaryCall(status) = %v; want FailedPrecondition \"nope: ünïcode\"", err)
			}

			dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
			if _, err := tc.UnaryCall(dctx, &testpb.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			dcancel()
			if ms := tg.svc.deadline.Load(); ms <= 0 || ms > 3000 {
				t.Errorf("backend deadline = %d ms; want within (0, 3000] (grpc-timeout forwarded)", ms)
			}

			so, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 10}, {Size: 20000}, {Size: 30}}})
			if err != nil {
				t.Fatal(err)
			}
			var sizes []int
			for {
				m, err := so.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("StreamingOutputCall.Recv: %v", err)
				}
				sizes = append(sizes, len(m.GetPayload().GetBody()))
			}
			if len(sizes) != 3 || sizes[0] != 10 || sizes[1] != 20000 || sizes[2] != 30 {
				t.Errorf("server stream sizes = %v; want [10 20000 30]", sizes)
			}

			si, err := tc.StreamingInputCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 100, 10000} {
				if err := si.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
					t.Fatal(err)
				}
			}
			sr, err := si.CloseAndRecv()
			if err != nil || sr.GetAggregatedPayloadSize() != 10101 {
				t.Errorf("client stream total = %v, %v; want 10101", sr, err)
			}

			// Bidi: each message is answered before the next is sent, so
			// both directions must stream through the proxy.
			fd, err := tc.FullDuplexCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				msg := strings.Repeat("x", i+1)
				if err := fd.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
					t.Fatal(err)
				}
				m, err := fd.Recv()
				if err != nil || string(m.GetPayload().GetBody()) != msg {
					t.Fatalf("bidi round %d = %v, %v; want %q", i, m, err, msg)
				}
			}
			if err := fd.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := fd.Recv(); err != io.EOF {
				t.Errorf("bidi end = %v; want EOF", err)
			}

			// Cancellation: the client cancels mid-stream; the backend
			// must see its stream cancelled.
			before := tg.svc.cancelled.Load()
			cctx, ccancel := context.WithCancel(ctx)
			fd2, err := tc.FullDuplexCall(cctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := fd2.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("a")}}); err != nil {
				t.Fatal(err)
			}
			if _, err := fd2.Recv(); err != nil {
				t.Fatal(err)
			}
			ccancel()
			waitFor(t, 5*time.Second, "backend stream cancelled", func() bool { return tg.svc.cancelled.Load() > before })
		})
	}
}

// TestGRPCProxyErrors checks that failures before an upstream answers
// reach gRPC clients as status codes from trailers-only responses.
func TestGRPCProxyErrors(t *testing.T) {
	t.Parallel()
	dead := closedAddr(t)
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{
		oneRoute("dead.test", "/", dead),
		{Name: "redir.test", Paths: []config.Path{{Prefix: "/", RedirectTo: "https://x.test"}}},
	}
	f := startFronts(t, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	tests := []struct {
		name, authority string
		want            codes.Code
	}{
		{"backend refuses", "dead.test", codes.Unavailable},
		{"no route", "nothing.test", codes.Unimplemented},
		{"redirect", "redir.test", codes.Unknown},
	}
	for _, tt := range tests {
		for _, useTLS := range []bool{false, true} {
			addr := f.plain
			if useTLS {
				addr = f.tls
			}
			cc := dialGRPC(t, addr, useTLS, tt.authority)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
			st, _ := status.FromError(err)
			if st.Code() != tt.want {
				t.Errorf("%s (tls=%v): Check = %v; want code %v", tt.name, useTLS, err, tt.want)
			}
		}
	}
}

// waitFor polls cond every 10 ms until it holds or ceiling passes.
func waitFor(t testing.TB, ceiling time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	defer func() {
		if os.Getenv("ARALEZ_DEBUG_WAIT") != "" {
			t.Logf("waited %v for %s", time.Since(start), what)
		}
	}()
	deadline := time.Now().Add(ceiling)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", ceiling, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkGRPCUnary measures small unary calls straight to the backend
// and through the proxy's h2c listener, for the proxy-vs-direct ratio.
func BenchmarkGRPCUnary(b *testing.B) {
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, &testService{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	defer srv.Stop()
	cfg := &config.Config{}
	cfg.Upstreams.Hosts = []config.Host{oneRoute("DEFAULT", "/", ln.Addr().String())}
	f := startFronts(b, cfg, Options{}, UpstreamOptions{}, ListenOptions{})
	for _, bc := range []struct{ name, addr string }{{"direct", ln.Addr().String()}, {"proxy-h2c", f.plain}} {
		b.Run(bc.name, func(b *testing.B) {
			cc, err := grpc.NewClient("passthrough:///"+bc.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			tc := testpb.NewTestServiceClient(cc)
			req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello")}}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := tc.UnaryCall(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
