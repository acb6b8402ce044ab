package netcore_test

import (
	"bytes"
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
// uncork, which sends them in one write(2): a client whose last handshake
// flight and first request leave together.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	held   []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.writes == 1 {
		return c.Conn.Write(p)
	}
	c.held = append(c.held, p...)
	return len(p), nil
}

func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.Conn.Write(c.held)
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
					cc := &corkConn{Conn: raw}
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
