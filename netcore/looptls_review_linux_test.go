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

// startTLSServer serves lp in plaintext; a client line "STARTTLS\n" is
// answered "220 go\n" and then turns the connection to TLS, after which
// afterStart runs (in the same callback); once the handshake is done the
// handler echoes.
func startTLSServer(t *testing.T, lp *netcore.Loop, config *tls.Config, afterStart func(c *netcore.LoopConn)) string {
	t.Helper()
	h := lp.Handler.(*loopFuncs)
	h.data = func(c *netcore.LoopConn) {
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
	return serveLoop(t, lp)
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
	lp := &netcore.Loop{Handler: &loopFuncs{}, Loops: 1, OutputHighWater: 4 << 10, OutputLowWater: 1 << 10}
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
