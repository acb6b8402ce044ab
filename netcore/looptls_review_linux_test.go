package netcore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
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
	tc, nc := dialTLSOver(t, addr, config, func(nc net.Conn) net.Conn { return nc })
	if _, err := nc.Write([]byte("STARTTLS\n")); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, nc); got != "220 go" {
		t.Fatalf("answer to STARTTLS %q", got)
	}
	return tc, nc
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
	loopRoundTrip(t, tc, "still echoing\n")
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
			loopRoundTrip(t, tc, "split at every byte")
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
	loopRoundTrip(t, tc, "over TLS\n")
}

// Back-pressure over TLS: a pipeline of requests whose answers pass the
// high watermark many times over, from a client that reads slowly, is
// answered whole and in order (the handler stops at OutputFull and is
// offered the rest once the ciphertext has drained), within MaxOutput.
func TestLoopTLSBackPressurePipeline(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	const reply = 20 << 10
	closed := make(chan error, 1)
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		for c.Buffered() > 0 && !c.OutputFull() {
			b := c.Next(1)[0]
			c.Write(bytes.Repeat([]byte{b}, reply))
		}
	}, closed: closed}
	lp := &netcore.Loop{Handler: h, Loops: 1, OutputHighWater: 32 << 10, OutputLowWater: 8 << 10, MaxOutput: 128 << 10}
	addr := serveLoopTLS(t, lp, pki.ServerConfig())
	c := dialTLS(t, addr, pki.ClientConfig())
	var reqs []byte
	for i := range 200 {
		reqs = append(reqs, 'A'+byte(i%26))
	}
	if _, err := c.Write(reqs); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, reply)
	for i, b := range reqs {
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if buf[0] != b || buf[reply-1] != b {
			t.Fatalf("reply %d is of %q, want %q", i, buf[0], b)
		}
	}
	c.Close()
	if err := testkit.WaitFor(t, closed, "OnClose"); err != nil && err != io.EOF {
		t.Errorf("OnClose: %v", err)
	}
}

// countRecords counts the complete TLS records of type typ in b.
func countRecords(b []byte, typ byte) int {
	n := 0
	for len(b) >= 5 {
		end := 5 + (int(b[3])<<8 | int(b[4]))
		if end > len(b) {
			break
		}
		if b[0] == typ {
			n++
		}
		b = b[end:]
	}
	return n
}

// Half-close over TLS: CloseWrite sends close_notify and shuts the write
// side; the peer's input still arrives; the connection's end (the peer's
// close_notify, then Close) sends no second close_notify.
func TestLoopTLSCloseWrite(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	closed := make(chan error, 1)
	after := make(chan string, 1)
	var got []byte
	h := &loopFuncs{
		data: func(c *netcore.LoopConn) {
			got = append(got, c.Next(-1)...)
			if string(got) == "bye" {
				c.Write([]byte("ok"))
				c.CloseWrite()
			}
		},
		eof: func(c *netcore.LoopConn) {
			after <- string(got)
			c.Close()
		},
		closed: closed,
	}
	addr := serveLoopTLS(t, &netcore.Loop{Handler: h, Loops: 1}, pki.ServerConfig())
	cfg := pki.ClientConfig()
	cfg.MaxVersion = tls.VersionTLS12 // alerts show on the wire
	var tap *rawTap
	tc, _ := dialTLSOver(t, addr, cfg, func(c net.Conn) net.Conn { tap = &rawTap{Conn: c}; return tap })
	tc.Write([]byte("bye"))
	b, err := io.ReadAll(tc)
	if err != nil || string(b) != "ok" {
		t.Fatalf("read %q, %v; want \"ok\" then close_notify", b, err)
	}
	tc.Write([]byte(" and more"))
	tc.CloseWrite()
	if s := testkit.WaitFor(t, after, "OnEOF"); s != "bye and more" {
		t.Errorf("the handler read %q after CloseWrite", s)
	}
	if err := testkit.WaitFor(t, closed, "OnClose"); err != nil && err != io.EOF {
		t.Errorf("OnClose: %v", err)
	}
	tap.Conn.SetReadDeadline(time.Now().Add(testkit.Timeout))
	rest, _ := io.ReadAll(tap.Conn)
	if n := countRecords(append(tap.got, rest...), 21); n != 1 {
		t.Errorf("the server sent %d alerts, want one close_notify", n)
	}
}

// Hostile records after the handshake (an oversize one, garbage, one that
// does not decrypt) close the connection with tls's error; the loop goes
// on serving others.
func TestLoopTLSHostileRecords(t *testing.T) {
	pki := testkit.NewPKI(t)
	for name, junk := range map[string][]byte{
		"oversize":  {23, 3, 3, 0xff, 0xff},
		"garbage":   bytes.Repeat([]byte{0x80, 1, 2, 3}, 3000),
		"badmac":    append([]byte{23, 3, 3, 0, 40}, make([]byte, 40)...),
		"handshake": append([]byte{22, 3, 3, 0, 4}, 1, 0, 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			closed := make(chan error, 2)
			addr := serveLoopTLS(t, &netcore.Loop{Handler: loopEcho(closed), Loops: 1}, pki.ServerConfig())
			tc, nc := dialTLSOver(t, addr, pki.ClientConfig(), func(c net.Conn) net.Conn { return c })
			loopRoundTrip(t, tc, "first")
			nc.Write(junk)
			if err := testkit.WaitFor(t, closed, "OnClose"); err == nil || err == io.EOF {
				t.Errorf("OnClose: %v, want tls's error", err)
			}
			loopRoundTrip(t, dialTLS(t, addr, pki.ClientConfig()), "another")
		})
	}
}

// prefixConn sends prefix in the same write as the first bytes written
// on it.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Write(b []byte) (int, error) {
	if p.prefix != nil {
		b = append(p.prefix, b...)
		p.prefix = nil
		n, err := p.Conn.Write(b)
		return max(0, n-len(b)), err
	}
	return p.Conn.Write(b)
}

// StartTLS takes the input after the command, borrowed from the loop's
// read buffer, as the start of the handshake: a client that pipelines its
// ClientHello behind STARTTLS; and StartTLS from OnOpen (TLS after a
// plaintext greeting with no command).
func TestLoopStartTLSPipelinedAndOnOpen(t *testing.T) {
	pki := testkit.NewPKI(t)
	t.Run("pipelined", func(t *testing.T) {
		checkLeaks(t)
		addr := startTLSServer(t, &netcore.Loop{Loops: 1}, pki.ServerConfig(), func(c *netcore.LoopConn) {
			c.Write([]byte("encrypted hello\n"))
		})
		nc, err := net.DialTimeout("tcp4", addr, testkit.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(testkit.Timeout))
		pc := &prefixConn{Conn: nc, prefix: []byte("STARTTLS\n")}
		// The plaintext answer comes ahead of the server's handshake: read
		// it from the socket before tls does.
		tc := tls.Client(&lineFirst{Conn: pc, want: "220 go\n"}, pki.ClientConfig())
		if got := readLine(t, tc); got != "encrypted hello" {
			t.Fatalf("first TLS line %q", got)
		}
		loopRoundTrip(t, tc, "pipelined\n")
	})
	t.Run("OnOpen", func(t *testing.T) {
		checkLeaks(t)
		h := &loopFuncs{
			open: func(c *netcore.LoopConn) {
				c.Write([]byte("220 go\n"))
				if err := c.StartTLS(pki.ServerConfig()); err != nil {
					t.Errorf("StartTLS: %v", err)
				}
			},
			data: echoAll,
		}
		addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
		nc := dialLoop(t, addr)
		if got := readLine(t, nc); got != "220 go" {
			t.Fatalf("greeting %q", got)
		}
		loopRoundTrip(t, tls.Client(nc, pki.ClientConfig()), "after OnOpen\n")
	})
}

// lineFirst reads (and checks) a plaintext line from the socket before
// handing the rest to its reader.
type lineFirst struct {
	net.Conn
	want string
	done bool
}

func (l *lineFirst) Read(p []byte) (int, error) {
	if !l.done {
		l.done = true
		got := make([]byte, len(l.want))
		if _, err := io.ReadFull(l.Conn, got); err != nil {
			return 0, err
		}
		if string(got) != l.want {
			return 0, io.ErrUnexpectedEOF
		}
	}
	return l.Conn.Read(p)
}

// Sends and Execute around StartTLS keep their order across the
// plaintext/ciphertext boundary: queued before it, in the clear; after
// it, encrypted once the handshake is done.
func TestLoopStartTLSQueuedOrder(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		if c.ConnectionState().HandshakeComplete {
			echoAll(c)
			return
		}
		c.Discard(-1)
		c.Write([]byte("220 go\n"))
		c.Send([]byte("sent before\n"))
		c.Execute(func(c *netcore.LoopConn) { c.Write([]byte("executed before\n")) })
		if err := c.StartTLS(pki.ServerConfig()); err != nil {
			t.Errorf("StartTLS: %v", err)
		}
		c.Send([]byte("sent after\n"))
		c.Execute(func(c *netcore.LoopConn) { c.Write([]byte("executed after\n")) })
		c.Write([]byte("written after\n"))
	}}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	nc := dialLoop(t, addr)
	nc.Write([]byte("STARTTLS\n"))
	for _, want := range []string{"220 go", "sent before", "executed before"} {
		if got := readLine(t, nc); got != want {
			t.Fatalf("plaintext line %q, want %q", got, want)
		}
	}
	tc := tls.Client(nc, pki.ClientConfig())
	for _, want := range []string{"sent after", "executed after", "written after"} {
		if got := readLine(t, tc); got != want {
			t.Fatalf("TLS line %q, want %q", got, want)
		}
	}
}

// Close right after StartTLS: what was written after StartTLS still goes
// out, encrypted, once the handshake is done, and OnClose gets nil, as
// Close promises; the loop must keep reading the client's handshake.
func TestLoopStartTLSThenClose(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	closed := make(chan error, 1)
	h := &loopFuncs{closed: closed, data: startTLSData(t, pki.ServerConfig(), func(c *netcore.LoopConn) {
		c.Write([]byte("bye\n"))
		c.Close()
	})}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	tc, _ := dialStartTLS(t, addr, pki.ClientConfig())
	b, err := io.ReadAll(tc)
	if err != nil || string(b) != "bye\n" {
		t.Errorf("read %q, %v; want \"bye\\n\" and close_notify", b, err)
	}
	if err := testkit.WaitFor(t, closed, "OnClose"); err != nil {
		t.Errorf("OnClose: %v", err)
	}
}

// CloseWrite right after StartTLS: the handshake still completes, then
// the server's close_notify and its FIN end the client's input, and the
// client's own input still reaches the handler.
func TestLoopStartTLSThenCloseWrite(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	got := make(chan string, 1)
	plain := startTLSData(t, pki.ServerConfig(), func(c *netcore.LoopConn) {
		c.CloseWrite()
	})
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		if !c.ConnectionState().HandshakeComplete {
			plain(c) // then keep the input for OnEOF
		}
	}, eof: func(c *netcore.LoopConn) { got <- string(c.Next(-1)) }}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	tc, _ := dialStartTLS(t, addr, pki.ClientConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if b, err := io.ReadAll(tc); err != nil || len(b) != 0 {
		t.Errorf("read %q, %v; want close_notify", b, err)
	}
	tc.Write([]byte("last words"))
	tc.CloseWrite()
	if s := testkit.WaitFor(t, got, "OnEOF"); s != "last words" {
		t.Errorf("OnEOF with %q", s)
	}
}

// After StartTLS and Close, what the client sends behind its Finished is
// not handed to the handler (a plaintext connection stops reading at
// Close), and StartTLS after the peer's EOF is refused.
func TestLoopStartTLSClosingAndAfterEOF(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	late := make(chan string, 1)
	closed := make(chan error, 1)
	eofErr := make(chan error, 1)
	start := startTLSData(t, pki.ServerConfig(), func(c *netcore.LoopConn) {
		c.Write([]byte("bye\n"))
		c.Close()
	})
	h := &loopFuncs{closed: closed, data: func(c *netcore.LoopConn) {
		if c.ConnectionState().HandshakeComplete {
			late <- string(c.Next(-1))
			return
		}
		start(c)
	}, eof: func(c *netcore.LoopConn) {
		if !c.ConnectionState().HandshakeComplete {
			eofErr <- c.StartTLS(pki.ServerConfig())
		}
	}}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})

	_, nc := dialStartTLS(t, addr, pki.ClientConfig())
	held := &corkConn{clientConn: nc.(*net.TCPConn)}
	cfg := pki.ClientConfig()
	cfg.MinVersion = tls.VersionTLS13 // Finished is the client's last flight
	tc := tls.Client(held, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tc.Write([]byte("late request"))
	if err := held.uncork(); err != nil { // Finished and the request together
		t.Fatal(err)
	}
	if b, err := io.ReadAll(tc); err != nil || string(b) != "bye\n" {
		t.Errorf("read %q, %v; want \"bye\\n\" and close_notify", b, err)
	}
	if err := testkit.WaitFor(t, closed, "OnClose"); err != nil {
		t.Errorf("OnClose: %v", err)
	}
	select {
	case s := <-late:
		t.Errorf("the handler got %q after its Close", s)
	default:
	}

	c := dialLoop(t, addr)
	c.CloseWrite()
	if err := testkit.WaitFor(t, eofErr, "StartTLS in OnEOF"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("StartTLS after the peer's EOF: %v, want net.ErrClosed", err)
	}
}
