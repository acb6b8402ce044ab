package netcore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// serveLoopTLS runs lp.ServeTLS with config on a fresh 127.0.0.1 listener,
// as serveLoop does for Serve.
func serveLoopTLS(t testing.TB, lp *netcore.Loop, config *tls.Config) string {
	t.Helper()
	return serveLoopWith(t, lp, testkit.Listen(t, "tcp4", "127.0.0.1:0"), func(l net.Listener) error { return lp.ServeTLS(l, config) })
}

// dialTLS dials addr with Go's TLS client and completes the handshake;
// the connection is closed when the test ends.
func dialTLS(t testing.TB, addr string, config *tls.Config) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: testkit.Timeout}
	c, err := tls.DialWithDialer(d, "tcp4", addr, config)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	return c
}

// A transport is what a scenario's clients and servers speak: plain TCP, or
// TLS 1.2 or 1.3 over it. The same scenario runs over each, so that the
// Loop's contract is checked through ServeTLS as through Serve, and Go's
// net through tls.NewListener (netcore.Server through its TLSConfig) as
// without.
type transport struct {
	name    string
	version uint16 // the client's TLS version; 0 for plain TCP
	pki     *testkit.PKI
}

// transports are plain TCP, TLS 1.2 and TLS 1.3 (with one throw-away PKI).
func transports(t testing.TB) []transport {
	t.Helper()
	pki := testkit.NewPKI(t)
	return []transport{{name: "tcp"}, {"TLS1.2", tls.VersionTLS12, pki}, {"TLS1.3", tls.VersionTLS13, pki}}
}

// forTransports runs fn as a subtest for each transport.
func forTransports(t *testing.T, fn func(t *testing.T, tr transport)) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) { fn(t, tr) })
	}
}

// serverConfig is the servers' TLS configuration, nil for plain TCP.
func (tr transport) serverConfig() *tls.Config {
	if tr.version == 0 {
		return nil
	}
	return tr.pki.ServerConfig()
}

// clientConfig is the TLS client's configuration: the transport's
// version, the PKI's authority.
func (tr transport) clientConfig() *tls.Config {
	cfg := tr.pki.ClientConfig()
	cfg.MinVersion, cfg.MaxVersion = tr.version, tr.version
	return cfg
}

// serveFunc is lp.Serve, or lp.ServeTLS with the server configuration.
func (tr transport) serveFunc(lp *netcore.Loop) func(net.Listener) error {
	if tr.version == 0 {
		return lp.Serve
	}
	return func(l net.Listener) error { return lp.ServeTLS(l, tr.serverConfig()) }
}

// serveLoop is serveLoop (or serveLoopTLS) over the transport.
func (tr transport) serveLoop(t testing.TB, lp *netcore.Loop) string {
	t.Helper()
	return serveLoopWith(t, lp, testkit.Listen(t, "tcp4", "127.0.0.1:0"), tr.serveFunc(lp))
}

// serveNet serves handle on Go's net, a goroutine per connection, on a
// fresh 127.0.0.1 listener (wrapped by tls.NewListener for TLS: handle
// gets a *tls.Conn); it returns the address. Everything ends with the
// test.
func (tr transport) serveNet(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tr.version != 0 {
		l = tls.NewListener(l, tr.serverConfig())
	}
	return serveNetOn(t, l, handle)
}

// A clientConn is a scenario's client connection: a *netcore.Conn, or a
// Go TLS client over one.
type clientConn interface {
	net.Conn
	CloseWrite() error
}

// dial dials addr with the transport's client (handshake done); the
// connection is closed when the test ends and bounded by a deadline of
// testkit.Timeout.
func (tr transport) dial(t testing.TB, addr string) clientConn {
	t.Helper()
	return tr.client(t, dialLoop(t, addr))
}

// client is raw itself for plain TCP, or a Go TLS client over raw whose
// handshake is done. The TLS client takes the server's FIN without a
// close_notify before it as an error (errNoCloseNotify): crypto/tls
// accepts one at a record boundary as io.EOF, and these tests want every
// io.EOF they read over TLS to be a clean close_notify.
func (tr transport) client(t testing.TB, raw clientConn) clientConn {
	t.Helper()
	if tr.version == 0 {
		return raw
	}
	c := &tlsClient{Conn: tls.Client(strictEOF{raw}, tr.clientConfig()), raw: raw}
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS handshake with %s: %v", raw.RemoteAddr(), err)
	}
	return c
}

// tlsClient is a Go TLS client whose CloseWrite ends its side as a client
// done sending does: close_notify, then the TCP half-close beneath.
type tlsClient struct {
	*tls.Conn
	raw clientConn
}

func (c *tlsClient) CloseWrite() error {
	if err := c.Conn.CloseWrite(); err != nil {
		return err
	}
	return c.raw.CloseWrite()
}

var errNoCloseNotify = errors.New("the server's FIN came without close_notify")

// strictEOF reads through its connection, with the peer's FIN as
// errNoCloseNotify.
type strictEOF struct{ clientConn }

func (c strictEOF) Read(p []byte) (int, error) {
	n, err := c.clientConn.Read(p)
	if err == io.EOF {
		err = errNoCloseNotify
	}
	return n, err
}

func TestLoopTLSEcho(t *testing.T) {
	pki := testkit.NewPKI(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			checkLeaks(t)
			closed := make(chan error, 1)
			lp := &netcore.Loop{Handler: loopEcho(closed), Loops: 2}
			addr := serveLoopTLS(t, lp, pki.ServerConfig())
			cfg := pki.ClientConfig()
			cfg.MaxVersion = v
			c := dialTLS(t, addr, cfg)
			if got := c.ConnectionState().Version; got != v {
				t.Fatalf("version %s, want %s", tls.VersionName(got), tls.VersionName(v))
			}
			msg := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640 KB: many records both ways
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("echo differs")
			}
			c.Close()
			if err := testkit.WaitFor(t, closed, "OnClose"); err != nil && err != io.EOF {
				t.Fatalf("OnClose: %v", err)
			}
			if s := lp.Stats(); s.TLSHandshakes != 1 || s.TLSHandshakeErrors != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// corkConn passes its first write through and keeps the later ones until
// uncork, which sends them in one write, and lets every write through from
// then on: a client whose last handshake flight and first request leave
// together.
type corkConn struct {
	clientConn
	mu     sync.Mutex
	writes int
	held   []byte
	open   bool // uncorked
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.writes == 1 || c.open {
		return c.clientConn.Write(p)
	}
	c.held = append(c.held, p...)
	return len(p), nil
}

func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open = true
	_, err := c.clientConn.Write(c.held)
	c.held = nil
	return err
}

// A client may send its first request right behind its last handshake
// message (TLS 1.3: the client's Finished; TLS 1.2 resumed: its
// ChangeCipherSpec and Finished), and the server then reads both at once:
// the request is answered, by the Loop as by Go's net. (The Loop's
// handshake read the request into crypto/tls's buffer with the Finished,
// and nothing brought it out until the client sent more.)
func TestLoopTLSRequestBehindFinished(t *testing.T) {
	for _, tr := range transports(t)[1:] {
		t.Run(tr.name, func(t *testing.T) {
			servers := map[string]func(t *testing.T) string{
				"net":  func(t *testing.T) string { return tr.serveNet(t, func(c net.Conn) { io.Copy(c, c) }) },
				"loop": func(t *testing.T) string { return tr.serveLoop(t, &netcore.Loop{Handler: loopEcho(nil), Loops: 1}) },
			}
			for _, name := range []string{"net", "loop"} {
				t.Run(name, func(t *testing.T) {
					checkLeaks(t)
					addr := servers[name](t)
					cfg := tr.clientConfig()
					if tr.version == tls.VersionTLS12 {
						// A full TLS 1.2 handshake ends with the server's
						// Finished; a resumed one with the client's.
						cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
						c := tls.Client(dialLoop(t, addr), cfg)
						loopRoundTrip(t, c, "ticket")
						c.Close()
					}
					raw := dialLoop(t, addr)
					cc := &corkConn{clientConn: raw}
					c := tls.Client(cc, cfg)
					if err := c.Handshake(); err != nil {
						t.Fatalf("handshake: %v", err)
					}
					if tr.version == tls.VersionTLS12 && !c.ConnectionState().DidResume {
						t.Fatal("the TLS 1.2 session was not resumed")
					}
					msg := []byte("the first request, right behind the Finished")
					if _, err := c.Write(msg); err != nil {
						t.Fatal(err)
					}
					if err := cc.uncork(); err != nil {
						t.Fatal(err)
					}
					got := make([]byte, len(msg))
					if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("echo = %q, %v; want %q", got, err, msg)
					}
				})
			}
		})
	}
}

// An ending is what a client saw of a connection's end: the bytes it read
// and how reading ended.
type ending struct {
	got string
	end string // "EOF", "reset", or the error
}

func readEnding(c net.Conn) ending {
	got, err := io.ReadAll(c)
	e := ending{got: string(got), end: "EOF"}
	switch {
	case errors.Is(err, errConnReset):
		e.end = "reset"
	case err != nil:
		e.end = err.Error()
	}
	return e
}

// clientHello returns the first flight of a Go TLS client with cfg, its
// ClientHello record, captured over a pipe.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(a, cfg).Handshake() // fails when the pipe closes
	}()
	defer func() { b.Close(); <-done }()
	b.SetDeadline(time.Now().Add(testkit.Timeout))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatalf("reading a ClientHello: %v", err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatalf("reading a ClientHello: %v", err)
	}
	return append(hdr, body...)
}

// Stopping with a TLS handshake under way: the connection has no request
// in flight, so Shutdown closes it as an idle one, as netcore.Server
// cancels its handshakes at Shutdown, instead of waiting for it (the
// handshake timeout here is an hour: Shutdown must return nil well before
// its context's testkit.Timeout); an idle established connection gets
// close_notify. Loop.Close the same, at once. The client stalled after the
// server's flight (it never sends its Finished) reads EOF; the handshake's
// goroutine ends (checkLeaks), and the Loop counts one handshake done and
// one failed.
func TestLoopTLSStopMidHandshake(t *testing.T) {
	tr := transports(t)[2] // TLS 1.3
	hello := clientHello(t, tr.clientConfig())
	type server struct {
		addr  string
		stop  map[string]func(ctx context.Context) error // by name: Shutdown, Close
		stats func() netcore.LoopStats
	}
	servers := map[string]func(t *testing.T) server{
		"server": func(t *testing.T) server {
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			srv := &netcore.Server{Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
				buf := make([]byte, 64)
				for {
					var n int
					if netcore.Idle(ctx, func() (err error) { n, err = c.Read(buf); return err }) != nil {
						return
					}
					c.Write(buf[:n])
				}
			}), TLSConfig: tr.serverConfig(), HandshakeTimeout: time.Hour, Logger: quietLogger()}
			go srv.Serve(l)
			return server{addr: l.Addr().String(), stop: map[string]func(context.Context) error{"Shutdown": srv.Shutdown}}
		},
		"loop": func(t *testing.T) server {
			lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 1, TLSHandshakeTimeout: time.Hour, Logger: quietLogger()}
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			go lp.ServeTLS(l, tr.serverConfig())
			return server{l.Addr().String(), map[string]func(context.Context) error{
				"Shutdown": lp.Shutdown,
				"Close":    func(context.Context) error { return lp.Close() },
			}, lp.Stats}
		},
	}
	for _, c := range []struct{ server, how string }{{"server", "Shutdown"}, {"loop", "Shutdown"}, {"loop", "Close"}} {
		t.Run(c.server+"/"+c.how, func(t *testing.T) {
			checkLeaks(t)
			s := servers[c.server](t)
			idle := tr.dial(t, s.addr)
			loopRoundTrip(t, idle, "before")
			stalled := dialLoop(t, s.addr)
			stalled.Write(hello)
			// The server's flight begins: it waits for the client's
			// Finished now.
			if _, err := io.ReadFull(stalled, make([]byte, 5)); err != nil {
				t.Fatalf("reading the server's flight: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
			defer cancel()
			if err := s.stop[c.how](ctx); err != nil {
				t.Errorf("%s with a handshake under way = %v, want nil", c.how, err)
			}
			if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("the idle client's Read = %v, want io.EOF (after close_notify)", err)
			}
			if _, err := io.ReadAll(stalled); err != nil {
				t.Errorf("the stalled client, after the server's flight: %v, want EOF", err)
			}
			if s.stats != nil {
				if st := s.stats(); st.TLSHandshakes != 1 || st.TLSHandshakeErrors != 1 {
					t.Errorf("TLSHandshakes %d, TLSHandshakeErrors %d; want 1 and 1", st.TLSHandshakes, st.TLSHandshakeErrors)
				}
			}
		})
	}
}

// A handshake stuck in a callback of the server's tls.Config
// (GetConfigForClient here; a GetCertificate that fetches a certificate,
// say) does not hold Shutdown past its context: like netcore.Server's,
// Shutdown returns the context's error when it ends, and the handshake's
// goroutine ends once the callback returns (checkLeaks). The client's
// connection is closed meanwhile.
func TestLoopTLSShutdownWithCallbackStuck(t *testing.T) {
	tr := transports(t)[2] // TLS 1.3
	hello := clientHello(t, tr.clientConfig())
	servers := map[string]func(t *testing.T, cfg *tls.Config) (string, func(context.Context) error){
		"server": func(t *testing.T, cfg *tls.Config) (string, func(context.Context) error) {
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			srv := &netcore.Server{Handler: netcore.HandlerFunc(func(context.Context, net.Conn) {}), TLSConfig: cfg, Logger: quietLogger()}
			go srv.Serve(l)
			return l.Addr().String(), srv.Shutdown
		},
		"loop": func(t *testing.T, cfg *tls.Config) (string, func(context.Context) error) {
			lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 1, Logger: quietLogger()}
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			go lp.ServeTLS(l, cfg)
			return l.Addr().String(), lp.Shutdown
		},
	}
	for _, name := range []string{"server", "loop"} {
		t.Run(name, func(t *testing.T) {
			cfg := tr.serverConfig()
			entered, release := holdHandshakes(cfg, "")
			defer release()
			checkLeaks(t)
			addr, shutdown := servers[name](t, cfg)
			c := dialLoop(t, addr)
			c.Write(hello)
			testkit.WaitFor(t, entered, "the handshake in GetConfigForClient")
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- shutdown(ctx) }()
			err := testkit.WaitFor(t, done, "Shutdown's return")
			release()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown with a handshake stuck in a callback = %v, want context.DeadlineExceeded", err)
			}
			if _, err := io.ReadAll(c); err != nil && !errors.Is(err, errConnReset) {
				t.Errorf("the client's connection: %v, want EOF or a reset", err)
			}
		})
	}
}

// holdHandshakes makes cfg's GetConfigForClient hold the handshake of each
// client that asks for serverName (of every client if it is ""): it
// reports on entered, then waits until release is called. Defer release
// too: a test that fails first must not leave a server's cleanup waiting
// for a held handshake.
func holdHandshakes(cfg *tls.Config, serverName string) (entered <-chan struct{}, release func()) {
	in := make(chan struct{}, 1)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if serverName == "" || h.ServerName == serverName {
			in <- struct{}{}
			<-gate
		}
		return nil, nil
	}
	return in, release
}
