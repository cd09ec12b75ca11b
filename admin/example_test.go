package admin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/aralez-go/aralez/admin"
	"github.com/aralez-go/aralez/discovery"
	"github.com/aralez-go/aralez/metrics"
)

// Wiring in cmd: the Push is one more discovery source of the single
// reload loop, which answers every Update.Done; the Server gets the Push,
// a status view and the metrics handler.
func Example_wiring() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	m := metrics.New()
	push := discovery.NewPush()
	updates := make(chan discovery.Update)
	go push.Run(ctx, updates)

	// The reload loop (cmd/aralez owns it): skip unchanged tables by
	// digest, compile and swap, then acknowledge.
	var running string
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case u := <-updates:
				err := u.Err
				if err == nil && discovery.Digest(u.Upstreams) != running {
					// proxy.Compile + Engine.Swap would run here; err = its error.
					running = discovery.Digest(u.Upstreams)
				}
				m.Reload(err == nil)
				if u.Done != nil {
					u.Done <- err
				}
			}
		}
	}()

	s := admin.NewServer(admin.Options{
		MasterKey:        "k",
		ConfigAPIEnabled: true,
		Push:             push,
		Metrics:          m.Handler(),
		Logger:           slog.New(slog.DiscardHandler),
		// Status: a StatusSource over the serving snapshot.
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	s.SetReady(true) // listeners up, config loaded

	doc := "upstreams:\n  app.test:\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:8000\"]\n"
	resp, err := http.Post("http://"+ln.Addr().String()+"/conf?key=k", "application/yaml", strings.NewReader(doc))
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.StatusCode, " ", string(body))

	// Output: 200 config applied: 1 hosts, 1 paths
}
