package netcore_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// TestServerTLSClosesNonReaderWithinLinger: a client that sends and never
// reads, on a Server. The handler's write deadline passes and it returns;
// the lingering close must then end the connection within LingerTimeout,
// with TLS as without. The soak (scripts/soak, -servers server-tls) found
// the TLS Server taking 5 s instead: the lingering close's CloseWrite is
// (*tls.Conn).CloseWrite, which sends close_notify under crypto/tls's own
// 5 s write deadline, and a peer whose window is full made it wait that
// out (here in blocking mode; in the soak in the default mode too).
func TestServerTLSClosesNonReaderWithinLinger(t *testing.T) {
	const linger = 200 * time.Millisecond
	for _, tlsOn := range []bool{false, true} {
		for _, blocking := range []bool{false, true} {
			t.Run(fmt.Sprintf("tls=%v,blocking=%v", tlsOn, blocking), func(t *testing.T) {
				cert, pool := selfSigned(t)
				writing := make(chan struct{})
				returned := make(chan time.Time, 1)
				srv := &netcore.Server{
					Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
						defer func() { returned <- time.Now() }()
						if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
							t.Errorf("reading the request: %v", err)
							return
						}
						close(writing)
						big := make([]byte, 128<<10)
						for {
							c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
							if _, err := c.Write(big); err != nil {
								return // the client does not read
							}
						}
					}),
					LingerTimeout: linger,
					IdleTimeout:   time.Second,
				}
				if tlsOn {
					srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
				}
				l := testkit.ListenMode(t, blocking)
				served := make(chan error, 1)
				go func() { served <- srv.Serve(l) }()
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
					defer cancel()
					srv.Shutdown(ctx)
					testkit.WaitFor(t, served, "Serve's return")
				}()

				nc, err := net.DialTimeout("tcp", l.Addr().String(), testkit.Timeout)
				if err != nil {
					t.Fatal(err)
				}
				raw := nc.(*net.TCPConn)
				defer raw.Close()
				var c net.Conn = raw
				if tlsOn {
					c = tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
				}
				c.SetDeadline(time.Now().Add(testkit.Timeout))
				if _, err := c.Write([]byte{1}); err != nil {
					t.Fatal(err)
				}
				testkit.WaitFor(t, writing, "the handler's replies")
				// Then more requests, as fast as they go, without reading:
				// once the handler gives up, the server's lingering close
				// discards them, then closes, which fails a write.
				c.SetDeadline(time.Time{})
				wrote := make(chan error, 1)
				go func() {
					p := make([]byte, 64<<10)
					for {
						if _, err := c.Write(p); err != nil {
							wrote <- err
							return
						}
					}
				}()
				back := testkit.WaitFor(t, returned, "the handler's return")
				err = testkit.WaitFor(t, wrote, "the server's close")
				if d := time.Since(back); d > linger+time.Second {
					t.Errorf("closed %v after the handler returned, want within LingerTimeout %v (+1 s)", d.Round(time.Millisecond), linger)
				} else {
					t.Logf("closed %v after the handler returned (%v)", d.Round(time.Millisecond), err)
				}
			})
		}
	}
}
