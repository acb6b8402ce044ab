package netcore_test

// Bad input to ServeTLS, each case beside Go's net with crypto/tls
// (tls.NewListener, the handshake bounded by a context, then an echo):
// the client must see what net's client sees, the Loop must count and log
// the failure, and another connection on the same loop must not notice.

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// logRecords is a slog.Handler that keeps every record. A Loop logs with
// no attributes or groups of its own, so WithAttrs and WithGroup are the
// discard handler's.
type logRecords struct {
	slog.Handler // slog.DiscardHandler
	mu           sync.Mutex
	recs         []slog.Record
}

func newLogRecords() *logRecords { return &logRecords{Handler: slog.DiscardHandler} }

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// find returns the first record with the message msg whose "remote"
// attribute is remote, and that record's "err" attribute.
func (h *logRecords) find(msg, remote string) (r slog.Record, err error, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Message != msg {
			continue
		}
		var rem string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "remote":
				rem = a.Value.String()
			case "err":
				err, _ = a.Value.Any().(error)
			}
			return true
		})
		if rem == remote {
			return r, err, true
		}
		err = nil
	}
	return slog.Record{}, nil, false
}

// A tlsServer is one side of a bad-input scenario.
type tlsServer struct {
	addr string
	// ended reports how each connection ended: for net, the handshake's
	// error or, after it, the echo's Read error; for the Loop, OnClose's
	// error (only for connections whose handshake succeeded).
	ended chan error
	logs  *logRecords              // the Loop's
	stats func() netcore.LoopStats // the Loop's
}

// tlsServers are the two sides: "net", a goroutine per connection that
// runs the handshake within hsTimeout and then echoes until Read fails,
// and "loop", an echo Loop on one event loop with TLSHandshakeTimeout
// hsTimeout. control, if not nil, is the listeners' Control function.
func tlsServers(cfg *tls.Config, hsTimeout time.Duration, control controlFunc) map[string]func(t *testing.T) tlsServer {
	return map[string]func(t *testing.T) tlsServer{
		"net": func(t *testing.T) tlsServer {
			s := tlsServer{ended: make(chan error, 8)}
			lc := net.ListenConfig{Control: control}
			l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s.addr = serveNetOn(t, tls.NewListener(l, cfg), func(c net.Conn) {
				ctx, cancel := context.WithTimeout(context.Background(), hsTimeout)
				err := c.(*tls.Conn).HandshakeContext(ctx)
				cancel()
				if err != nil {
					s.ended <- err
					return
				}
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						s.ended <- err
						return
					}
					c.Write(buf[:n])
				}
			})
			return s
		},
		"loop": func(t *testing.T) tlsServer {
			s := tlsServer{ended: make(chan error, 8), logs: newLogRecords()}
			lp := &netcore.Loop{Handler: loopEcho(s.ended), Loops: 1, TLSHandshakeTimeout: hsTimeout, Logger: slog.New(s.logs)}
			lc := netcore.ListenConfig{Control: control}
			l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s.addr = serveLoopWith(t, lp, l, func(l net.Listener) error { return lp.ServeTLS(l, cfg) })
			s.stats = lp.Stats
			return s
		},
	}
}

// onBothServers runs a bad client's scenario against the net server, then
// the Loop (tlsServers), each with a TLS connection established first that
// must make a round trip before and after (the Loop's on the same event
// loop); scenario returns what the bad client saw and how the server
// ended its connection. The client must see the same from both.
func onBothServers(t *testing.T, tr transport, hsTimeout time.Duration,
	scenario func(t *testing.T, name string, s tlsServer) (ending, error)) (errs [2]error) {
	t.Helper()
	servers := tlsServers(tr.serverConfig(), hsTimeout, nil)
	var endings [2]ending
	for i, name := range []string{"net", "loop"} {
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			s := servers[name](t)
			good := tr.dial(t, s.addr)
			loopRoundTrip(t, good, "before")
			endings[i], errs[i] = scenario(t, name, s)
			loopRoundTrip(t, good, "after")
		})
	}
	t.Logf("the client read %q, then %s; the server: %v", endings[0].got, endings[0].end, errs[0])
	if endings[0] != endings[1] {
		t.Errorf("the client read %q, then %s, from net; %q, then %s, from the Loop", endings[0].got, endings[0].end, endings[1].got, endings[1].end)
	}
	return errs
}

// Garbage instead of a ClientHello, a ClientHello longer than crypto/tls
// takes, a ClientHello cut short by the client's FIN, and a client that
// stops in the middle of its ClientHello: the client sees the same as from
// Go's net with crypto/tls (an alert, then EOF, or just EOF; never a
// hang), the handshake fails with the same error (the stalled one when the
// handshake timeout passes: 300 ms here, and an error matching
// os.ErrDeadlineExceeded), the Loop counts it in TLSHandshakeErrors and
// logs it at Info level with the client's address, and an established
// connection on the same event loop goes on.
func TestLoopTLSBadHandshake(t *testing.T) {
	tr := transports(t)[2] // TLS 1.3
	hello := clientHello(t, tr.clientConfig())
	const hsTimeout = 300 * time.Millisecond
	cases := []struct {
		name string
		send func(c *netcore.Conn)
	}{
		// Go's net/http answers this with a 400 of its own; crypto/tls
		// alone sends nothing and closes.
		{"http", func(c *netcore.Conn) { c.Write([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")) }},
		// An SSLv2-style hello: crypto/tls answers protocol_version.
		{"sslv2", func(c *netcore.Conn) { c.Write(append([]byte{0x80, 0x2e, 0x01, 0x03, 0x01}, make([]byte, 43)...)) }},
		// A handshake record that announces a ClientHello of 65537
		// bytes, past crypto/tls's 64 KiB limit: internal_error.
		{"oversize-hello", func(c *netcore.Conn) {
			c.Write(append([]byte{22, 3, 1, 0x40, 0, 1, 1, 0, 1}, make([]byte, 16380)...))
		}},
		{"truncated", func(c *netcore.Conn) { c.Write(hello[:len(hello)/2]); c.CloseWrite() }},
		{"stalled", func(c *netcore.Conn) { c.Write(hello[:len(hello)/2]) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hsErrs := onBothServers(t, tr, hsTimeout, func(t *testing.T, name string, s tlsServer) (ending, error) {
				bad := dialLoop(t, s.addr)
				start := time.Now()
				tc.send(bad)
				e := readEnding(bad)
				if tc.name == "stalled" && time.Since(start) < hsTimeout {
					t.Errorf("closed after %v, before the handshake timeout (%v)", time.Since(start), hsTimeout)
				}
				if name == "net" {
					return e, testkit.WaitFor(t, s.ended, "the handshake's end")
				}
				remote := bad.LocalAddr().String()
				r, err, ok := s.logs.find("netcore: TLS handshake failed; closing the connection", remote)
				if !ok {
					t.Errorf("no log line \"TLS handshake failed\" with remote=%s", remote)
				} else if r.Level != slog.LevelInfo {
					t.Errorf("logged at %v, want Info", r.Level)
				}
				if st := s.stats(); st.TLSHandshakeErrors != 1 || st.TLSHandshakes != 1 {
					t.Errorf("TLSHandshakes %d, TLSHandshakeErrors %d; want 1 and 1", st.TLSHandshakes, st.TLSHandshakeErrors)
				}
				return e, err
			})
			if tc.name == "stalled" {
				if !errors.Is(hsErrs[1], os.ErrDeadlineExceeded) {
					t.Errorf("the Loop's handshake error %v does not match os.ErrDeadlineExceeded", hsErrs[1])
				}
			} else if hsErrs[0] == nil || hsErrs[1] == nil || hsErrs[0].Error() != hsErrs[1].Error() {
				t.Errorf("the handshake failed with %v on net, %v on the Loop", hsErrs[0], hsErrs[1])
			}
		})
	}
}

// After the handshake: a record longer than TLS allows (a header claiming
// 18433 bytes, past 16384+2048), and a record cut short by the client's
// FIN. The server's read fails with the error crypto/tls gives net's (the
// Loop's OnClose gets it inside a *net.OpError, and logs it with the
// client's address), the client sees the same as from net (the oversize
// record: a record_overflow alert; the cut one: close_notify, then EOF),
// and an established connection on the same event loop goes on.
func TestLoopTLSBadRecord(t *testing.T) {
	cases := []struct {
		name string
		send func(raw *netcore.Conn)
	}{
		{"oversize", func(raw *netcore.Conn) { raw.Write([]byte{23, 3, 3, 18433 >> 8, 18433 & 0xff}) }},
		{"truncated", func(raw *netcore.Conn) {
			raw.Write(append([]byte{23, 3, 3, 0, 100}, make([]byte, 10)...))
			raw.CloseWrite()
		}},
	}
	for _, tr := range transports(t)[1:] {
		for _, tc := range cases {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				errs := onBothServers(t, tr, testkit.Timeout, func(t *testing.T, name string, s tlsServer) (ending, error) {
					raw := dialLoop(t, s.addr)
					c := tr.client(t, raw)
					loopRoundTrip(t, c, "hello")
					tc.send(raw)
					e := readEnding(c)
					err := testkit.WaitFor(t, s.ended, "the server's end of the connection")
					if name == "loop" {
						if _, lerr, ok := s.logs.find("netcore: closing connection", raw.LocalAddr().String()); !ok || lerr == nil {
							t.Errorf("the close is not logged with remote=%s", raw.LocalAddr())
						}
						if st := s.stats(); st.TLSHandshakeErrors != 0 || st.TLSHandshakes != 2 {
							t.Errorf("TLSHandshakes %d, TLSHandshakeErrors %d; want 2 and 0", st.TLSHandshakes, st.TLSHandshakeErrors)
						}
					}
					return e, err
				})
				var oe *net.OpError
				if !errors.As(errs[1], &oe) || errs[0] == nil || oe.Err.Error() != errs[0].Error() {
					t.Errorf("the server's read failed with %v on net, %v on the Loop", errs[0], errs[1])
				}
			})
		}
	}
}

// A client that floods bytes behind its ClientHello while the handshake
// waits (in GetConfigForClient: a callback that takes its time) is not
// read without bound: the Loop stops reading at its 64 KiB handshake
// buffer, so the client can send what the kernel's buffers hold (small
// here) plus at most that buffer and one 64 KiB read; net's server, whose
// handshake goroutine reads nothing meanwhile, takes the kernel's
// buffers' worth. The other connection on the loop is served meanwhile.
// Once the callback returns, the handshake reads the garbage and fails:
// counted, logged, and the flooding client's connection ends.
func TestLoopTLSHandshakeFlood(t *testing.T) {
	tr := transports(t)[2] // TLS 1.3
	floodCfg := tr.clientConfig()
	floodCfg.ServerName = "flood"
	hello := clientHello(t, floodCfg)
	var sent [2]int64
	for i, name := range []string{"net", "loop"} {
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			cfg := tr.serverConfig()
			entered, release := holdHandshakes(cfg, "flood")
			defer release()
			s := tlsServers(cfg, testkit.Timeout, smallBuffers())[name](t)
			good := tr.dial(t, s.addr)
			raw := dialLoop(t, s.addr)
			raw.SetWriteBuffer(64 << 10)
			raw.Write(hello)
			testkit.WaitFor(t, entered, "the handshake in GetConfigForClient")
			stalls := make(chan uint64, 64)
			flood := &stallConn{Conn: raw, stalls: stalls}
			werr := make(chan error, 1)
			go func() {
				_, err := flood.Write(make([]byte, 64<<20))
				werr <- err
			}()
			for range 3 {
				select {
				case <-stalls:
				case err := <-werr:
					t.Fatalf("flooded %d bytes without the server pushing back (%v)", flood.written.Load(), err)
				case <-time.After(testkit.Timeout):
					t.Fatal("the flood neither stalled nor ended")
				}
			}
			sent[i] = flood.written.Load()
			loopRoundTrip(t, good, "while flooded")
			release()
			if e := readEnding(raw); e.end != "EOF" && e.end != "reset" {
				t.Errorf("the flooding client's connection ended with %s, want EOF or a reset", e.end)
			}
			testkit.WaitFor(t, werr, "the flood's end")
			if name == "net" {
				testkit.WaitFor(t, s.ended, "the handshake's end")
				return
			}
			if _, err, ok := s.logs.find("netcore: TLS handshake failed; closing the connection", raw.LocalAddr().String()); !ok || err == nil {
				t.Errorf("the failed handshake is not logged with remote=%s", raw.LocalAddr())
			}
			if st := s.stats(); st.TLSHandshakeErrors != 1 || st.TLSHandshakes != 1 {
				t.Errorf("TLSHandshakes %d, TLSHandshakeErrors %d; want 1 and 1", st.TLSHandshakes, st.TLSHandshakeErrors)
			}
		})
	}
	t.Logf("flooded bytes taken before the stall: %d by net, %d by the Loop", sent[0], sent[1])
	if sent[1] > sent[0]+128<<10 {
		t.Errorf("the Loop took %d bytes of flood, net %d: more than its 64 KiB handshake buffer and one 64 KiB read beyond", sent[1], sent[0])
	}
}
