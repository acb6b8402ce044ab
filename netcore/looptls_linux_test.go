package netcore_test

import (
	"bytes"
	"crypto/tls"
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
func serveLoopTLS(t *testing.T, lp *netcore.Loop, config *tls.Config) string {
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
// ChangeCipherSpec and Finished), and the loop then reads both at once:
// the request is answered.
func TestLoopTLSRequestBehindFinished(t *testing.T) {
	pki := testkit.NewPKI(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			checkLeaks(t)
			lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 1}
			addr := serveLoopTLS(t, lp, pki.ServerConfig())
			cfg := pki.ClientConfig()
			cfg.MaxVersion = v
			if v == tls.VersionTLS12 {
				// A full TLS 1.2 handshake ends with the server's
				// Finished; a resumed one with the client's.
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				c := dialTLS(t, addr, cfg)
				if _, err := c.Write([]byte("ticket")); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, make([]byte, 6)); err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			raw, err := net.DialTimeout("tcp4", addr, testkit.Timeout)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(testkit.Timeout))
			cc := &corkConn{Conn: raw}
			c := tls.Client(cc, cfg)
			if err := c.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if v == tls.VersionTLS12 && !c.ConnectionState().DidResume {
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
}
