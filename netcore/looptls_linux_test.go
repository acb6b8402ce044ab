package netcore_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
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

// heldConn holds what a TLS client writes after its first write (the
// ClientHello) until release, then sends it all in one write: the
// client's Finished and its first application data arrive together, as
// they do from a client that writes its request right after the handshake
// (curl did, about one run in three).
type heldConn struct {
	net.Conn
	writes int
	held   []byte
}

func (h *heldConn) Write(p []byte) (int, error) {
	if h.writes++; h.writes == 1 {
		return h.Conn.Write(p)
	}
	h.held = append(h.held, p...)
	return len(p), nil
}

func (h *heldConn) release() error {
	_, err := h.Conn.Write(h.held)
	h.held = nil
	return err
}

// TestLoopTLSDataWithClientFinished: application data that arrives in the
// same read as the client's last handshake message is served at once, not
// when the next bytes come.
func TestLoopTLSDataWithClientFinished(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	closed := make(chan error, 1)
	lp := &netcore.Loop{Handler: loopEcho(closed), Loops: 1}
	addr := serveLoopTLS(t, lp, pki.ServerConfig())
	raw, err := net.DialTimeout("tcp4", addr, testkit.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(testkit.Timeout))
	held := &heldConn{Conn: raw}
	cfg := pki.ClientConfig()
	cfg.MinVersion = tls.VersionTLS13 // the client's Handshake returns before the server has its Finished
	c := tls.Client(held, cfg)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("first request")); err != nil {
		t.Fatal(err)
	}
	if err := held.release(); err != nil { // Finished and the request in one segment
		t.Fatal(err)
	}
	got := make([]byte, len("first request"))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo of data sent with the client's Finished: %v", err)
	}
	if string(got) != "first request" {
		t.Fatalf("echo %q", got)
	}
}
