package netcore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// startTLSServer serves lp in plaintext; a client line "STARTTLS\n" is
// answered "220 go\n" and then turns the connection to TLS, after which
// afterStart runs (in the same callback); once the handshake is done the
// handler echoes.
func startTLSServer(t *testing.T, lp *netcore.Loop, config *tls.Config, afterStart func(c *netcore.LoopConn)) string {
	t.Helper()
	lp.Handler = &loopFuncs{data: startTLSData(t, config, afterStart)}
	return serveLoop(t, lp)
}

// startTLSData is startTLSServer's OnData.
func startTLSData(t *testing.T, config *tls.Config, afterStart func(c *netcore.LoopConn)) func(c *netcore.LoopConn) {
	return func(c *netcore.LoopConn) {
		if c.ConnectionState().HandshakeComplete {
			echoAll(c)
			return
		}
		in := c.Peek(-1)
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return
		}
		if string(c.Next(i+1)) != "STARTTLS\n" {
			c.Write([]byte("500 what?\n"))
			return
		}
		c.Write([]byte("220 go\n"))
		if err := c.StartTLS(config); err != nil {
			t.Errorf("StartTLS: %v", err)
			return
		}
		if afterStart != nil {
			afterStart(c)
		}
	}
}

// dialStartTLS connects to a startTLSServer, asks for TLS and returns the
// client's *tls.Conn, its handshake not started.
func dialStartTLS(t *testing.T, addr string, config *tls.Config) (*tls.Conn, net.Conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp4", addr, testkit.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(testkit.Timeout))
	if _, err := nc.Write([]byte("STARTTLS\n")); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, nc); got != "220 go" {
		t.Fatalf("answer to STARTTLS %q", got)
	}
	return tls.Client(nc, config), nc
}

// A handler that writes more than OutputHighWater right after StartTLS
// (a banner, say), to be encrypted once the handshake is done: that
// plaintext cannot drain before the handshake, so it must not stop the
// loop from reading the client's handshake.
func TestLoopStartTLSOutputAboveHighWater(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	banner := bytes.Repeat([]byte("0123456789abcde\n"), 512) // 8 KiB
	lp := &netcore.Loop{Loops: 1, OutputHighWater: 4 << 10, OutputLowWater: 1 << 10}
	addr := startTLSServer(t, lp, pki.ServerConfig(), func(c *netcore.LoopConn) {
		c.Write(banner)
	})
	tc, _ := dialStartTLS(t, addr, pki.ClientConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	got := make([]byte, len(banner))
	if _, err := io.ReadFull(tc, got); err != nil {
		t.Fatalf("reading the banner: %v", err)
	}
	if !bytes.Equal(got, banner) {
		t.Fatal("banner differs")
	}
	tlsRoundTrip(t, tc, "still echoing\n")
}

// gatherConn holds what is written on it while gathering, and sends it
// in one write at release: records that a client wrote one by one reach
// the server in one segment.
type gatherConn struct {
	net.Conn
	gathering bool
	held      []byte
}

func (g *gatherConn) Write(p []byte) (int, error) {
	if g.gathering {
		g.held = append(g.held, p...)
		return len(p), nil
	}
	return g.Conn.Write(p)
}

// SetWriteDeadline is ignored: tls's CloseWrite sets one in the past
// once it has written its alert, here before the release.
func (g *gatherConn) SetWriteDeadline(time.Time) error { return nil }

func (g *gatherConn) release() error {
	g.gathering = false
	_, err := g.Conn.Write(g.held)
	g.held = nil
	return err
}

// byteConn writes what is written on it one byte per write(2): records
// split at every byte.
type byteConn struct{ net.Conn }

func (b byteConn) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := b.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// dialTLSOver dials addr and runs a TLS client over wrap(the socket).
func dialTLSOver(t *testing.T, addr string, config *tls.Config, wrap func(net.Conn) net.Conn) (*tls.Conn, net.Conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp4", addr, testkit.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(testkit.Timeout))
	return tls.Client(wrap(nc), config), nc
}

// A handshake and requests that come a byte at a time, and a pipeline of
// records with the client's close_notify in one segment, are all served:
// every byte echoed, in order, then OnEOF.
func TestLoopTLSSplitAndPipelined(t *testing.T) {
	pki := testkit.NewPKI(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			checkLeaks(t)
			closed := make(chan error, 2)
			lp := &netcore.Loop{Handler: loopEcho(closed), Loops: 1}
			addr := serveLoopTLS(t, lp, pki.ServerConfig())
			cfg := pki.ClientConfig()
			cfg.MaxVersion = v

			// Every byte on its own.
			tc, _ := dialTLSOver(t, addr, cfg, func(c net.Conn) net.Conn { return byteConn{c} })
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			tlsRoundTrip(t, tc, "split at every byte")
			tc.Close()
			if err := testkit.WaitFor(t, closed, "OnClose"); err != nil && err != io.EOF {
				t.Errorf("OnClose: %v", err)
			}

			// Many records and the close_notify in one segment.
			var g *gatherConn
			tc, _ = dialTLSOver(t, addr, cfg, func(c net.Conn) net.Conn { g = &gatherConn{Conn: c}; return g })
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			g.gathering = true
			var want []byte
			for i := range 50 {
				m := bytes.Repeat([]byte{'a' + byte(i%26)}, 1+i*97)
				want = append(want, m...)
				tc.Write(m)
			}
			tc.CloseWrite()
			if err := g.release(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(tc)
			if err != nil {
				t.Fatalf("reading the echo: %v (got %d of %d bytes)", err, len(got), len(want))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("echo of %d bytes differs (got %d)", len(want), len(got))
			}
			if err := testkit.WaitFor(t, closed, "OnClose"); err != nil && err != io.EOF {
				t.Errorf("OnClose: %v", err)
			}
		})
	}
}

// A handshake that the client never finishes ends at TLSHandshakeTimeout,
// and Close and Shutdown stop one at once: no goroutine or descriptor
// stays behind, and each is counted as a failed handshake.
func TestLoopTLSHandshakeCutShort(t *testing.T) {
	pki := testkit.NewPKI(t)
	t.Run("timeout", func(t *testing.T) {
		checkLeaks(t)
		lp := &netcore.Loop{Handler: &loopFuncs{}, Loops: 1, TLSHandshakeTimeout: 100 * time.Millisecond}
		addr := serveLoopTLS(t, lp, pki.ServerConfig())
		nc := dialLoop(t, addr)
		nc.Write([]byte{22, 3, 1}) // the start of a record, no more
		if _, err := io.ReadAll(nc); err != nil {
			t.Fatalf("the server should close: %v", err)
		}
		waitStats(t, lp, func(s netcore.LoopStats) bool { return s.TLSHandshakeErrors == 1 && s.Conns == 0 })
	})
	for _, stop := range []string{"Close", "Shutdown"} {
		t.Run(stop, func(t *testing.T) {
			checkLeaks(t)
			lp := &netcore.Loop{Handler: &loopFuncs{}, Loops: 1}
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			served := make(chan error, 1)
			go func() { served <- lp.ServeTLS(l, pki.ServerConfig()) }()
			nc := dialLoop(t, l.Addr().String())
			nc.Write([]byte{22, 3, 1})
			waitStats(t, lp, func(s netcore.LoopStats) bool { return s.Conns == 1 })
			start := time.Now()
			if stop == "Close" {
				lp.Close()
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				lp.Shutdown(ctx)
				cancel()
			}
			if d := time.Since(start); d > netcore.DefaultTLSHandshakeTimeout/2 {
				t.Errorf("%s took %v with a handshake in progress", stop, d)
			}
			testkit.WaitFor(t, served, "Serve's return")
			if s := lp.Stats(); s.TLSHandshakeErrors != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// StartTLS, when a function queued with Execute that runs inside it (to
// go out after what was sent before) calls StartTLS too: one of the two
// turns the connection to TLS, the other is refused, and what was written
// before still goes out in plaintext ahead of the handshake.
func TestLoopStartTLSInsideQueuedStartTLS(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	results := make(chan [2]error, 1)
	plain := startTLSData(t, pki.ServerConfig(), nil)
	h := &loopFuncs{}
	h.data = func(c *netcore.LoopConn) {
		if c.ConnectionState().HandshakeComplete || !bytes.HasPrefix(c.Peek(-1), []byte("UPGRADE\n")) {
			plain(c)
			return
		}
		c.Discard(len("UPGRADE\n"))
		c.Write([]byte("220 go\n"))
		var errs [2]error
		c.Execute(func(c *netcore.LoopConn) { errs[0] = c.StartTLS(pki.ServerConfig()) })
		errs[1] = c.StartTLS(pki.ServerConfig())
		results <- errs
	}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	nc := dialLoop(t, addr)
	nc.Write([]byte("UPGRADE\n"))
	errs := testkit.WaitFor(t, results, "the StartTLS calls")
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("StartTLS inside StartTLS: %v, then %v; want one to succeed and one to be refused", errs[0], errs[1])
	}
	if got := readLine(t, nc); got != "220 go" {
		t.Fatalf("answer %q", got)
	}
	tc := tls.Client(nc, pki.ClientConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	tlsRoundTrip(t, tc, "over TLS\n")
}
