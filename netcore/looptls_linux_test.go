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
