package netcore_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// Real TLS clients against TLS on the Loop: openssl s_client here, curl in
// looptls_curl_linux_test.go. Neither is Go's crypto/tls, so these check
// what the Loop puts on the wire, not just that Go agrees with itself.

// tlsBanner is an echo LoopHandler that first writes one line saying what
// the handler sees of the connection through ConnectionState, for the
// client to print: "netcore: TLS 1.3 alpn="h2" sni="localhost" resumed=false".
func tlsBanner(closed chan error) *loopFuncs {
	h := loopEcho(closed)
	h.open = func(c *netcore.LoopConn) {
		cs := c.ConnectionState()
		fmt.Fprintf(c, "netcore: %s alpn=%q sni=%q resumed=%v\n",
			tls.VersionName(cs.Version), cs.NegotiatedProtocol, cs.ServerName, cs.DidResume)
	}
	return h
}

// sClient starts openssl s_client against addr, trusting the test CA in
// dir, failing on a certificate it cannot verify, and in interactive mode
// (no -quiet, no -ign_eof): lines on its stdin go to the server, except
// the command letters (K, k, Q, R) at the start of a line; the end of its
// stdin ends the connection.
func sClient(t *testing.T, openssl, addr, dir string, args ...string) *testkit.Driven {
	t.Helper()
	base := []string{"s_client", "-connect", addr, "-CAfile", filepath.Join(dir, "ca.crt"), "-verify_return_error"}
	return testkit.Drive(t, openssl, append(base, args...)...)
}

// waitBanner waits for the server's banner line and returns it.
func waitBanner(s *testkit.Driven) string {
	return s.WaitLine("the server's banner", func(l string) bool { return strings.HasPrefix(l, "netcore: ") })
}

// echoLine sends line through s_client and waits for the server's echo.
func echoLine(s *testkit.Driven, line string) {
	s.Send(line)
	s.WaitLine(fmt.Sprintf("the echo of %.40q", line), func(l string) bool { return l == line })
}

// TestLoopTLSOpenSSL drives TLS on the Loop with openssl s_client: echo
// over TLS 1.2 and 1.3, key updates both ways, SNI choosing the
// certificate, ALPN, and session resumption. One Loop serves three TLS
// listeners with different configurations at once.
func TestLoopTLSOpenSSL(t *testing.T) {
	openssl := testkit.NeedTool(t, "openssl", "openssl")
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	dir := t.TempDir()
	pki.WriteFiles(t, dir)
	other := pki.Issue(t, "netcore other server", x509.ExtKeyUsageServerAuth, "other.test")

	closed := make(chan error, 16)
	lp := &netcore.Loop{Handler: tlsBanner(closed), Loops: 2}
	// echo: the server certificate, no ALPN.
	echoAddr := serveLoopTLS(t, lp, pki.ServerConfig())
	// sni: the certificate is picked by the name the client asked for.
	sniConfig := &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "other.test" {
			return &other, nil
		}
		return &pki.Server, nil
	}}
	sniAddr := serveLoopTLS(t, lp, sniConfig)
	// alpn: h2 preferred, http/1.1 taken.
	alpnConfig := pki.ServerConfig()
	alpnConfig.NextProtos = []string{"h2", "http/1.1"}
	alpnAddr := serveLoopTLS(t, lp, alpnConfig)

	// finish ends s_client (the end of its stdin) and checks that it
	// verified the server, exited 0, and that the handler's OnClose got
	// io.EOF: a clean end of the TLS stream, not an error.
	finish := func(t *testing.T, s *testkit.Driven) string {
		t.Helper()
		stdout, stderr, err := s.Finish()
		if err != nil {
			t.Fatalf("s_client: %v%s", err, s.Output())
		}
		if !strings.Contains(stdout, "Verify return code: 0 (ok)") {
			t.Errorf("s_client did not verify the server's certificate%s", s.Output())
		}
		if err := testkit.WaitFor(t, closed, "OnClose"); err != io.EOF {
			t.Errorf("OnClose got %v after s_client left, want io.EOF (a clean end)\nstderr: %s", err, stderr)
		}
		return stdout
	}

	for _, v := range []struct{ flag, name, openssl string }{
		{"-tls1_2", "TLS 1.2", "TLSv1.2"},
		{"-tls1_3", "TLS 1.3", "TLSv1.3"},
	} {
		t.Run("echo "+v.name, func(t *testing.T) {
			before := lp.Stats().TLSHandshakes
			s := sClient(t, openssl, echoAddr, dir, v.flag, "-verify_hostname", "localhost")
			if b := waitBanner(s); !strings.HasPrefix(b, "netcore: "+v.name+" ") {
				t.Errorf("banner %q: the handler saw another version than %s", b, v.name)
			}
			for i := range 5 {
				echoLine(s, fmt.Sprintf("line %d over %s", i, v.name))
			}
			echoLine(s, strings.Repeat("0123456789", 1000)) // a line of 10 kB: one record
			stdout := finish(t, s)
			if want := "New, " + v.openssl + ", Cipher is"; !strings.Contains(stdout, want) {
				t.Errorf("s_client's output lacks %q%s", want, s.Output())
			}
			if got := lp.Stats().TLSHandshakes - before; got != 1 {
				t.Errorf("LoopStats.TLSHandshakes went up by %d, want 1", got)
			}
		})
	}

	t.Run("key update", func(t *testing.T) {
		// -msg prints every TLS message, sent (">>>") and received ("<<<").
		s := sClient(t, openssl, echoAddr, dir, "-tls1_3", "-msg")
		waitBanner(s)
		echoLine(s, "before any key update")
		// A command letter must be alone in what s_client reads at once,
		// so each waits for the message it causes before the next line.
		for i := range 3 {
			// K: a KeyUpdate that asks for one back. The server's must
			// arrive, and the lines after it must still echo: both sides
			// moved to new keys.
			s.Send("K")
			s.WaitLine("the server's KeyUpdate", func(l string) bool {
				return strings.HasPrefix(l, "<<< TLS 1.3") && strings.HasSuffix(l, "KeyUpdate")
			})
			echoLine(s, fmt.Sprintf("after key update %d (requested)", i))
			// k: a KeyUpdate the server answers with nothing.
			s.Send("k")
			s.WaitLine("the client's KeyUpdate", func(l string) bool {
				return strings.HasPrefix(l, ">>> TLS 1.3") && strings.HasSuffix(l, "KeyUpdate")
			})
			echoLine(s, fmt.Sprintf("after key update %d (not requested)", i))
		}
		stdout := finish(t, s)
		if n := strings.Count(stdout, "KeyUpdate\n"); n != 9 { // 6 sent, 3 received
			t.Errorf("s_client saw %d KeyUpdate messages, want 9 (6 sent, 3 from the server)%s", n, s.Output())
		}
	})

	t.Run("renegotiation refused", func(t *testing.T) {
		// Go's crypto/tls never renegotiates as a server: a client that
		// tries (R, TLS 1.2) gets an unexpected_message alert and the
		// connection ends at once, instead of hanging.
		s := sClient(t, openssl, echoAddr, dir, "-tls1_2")
		waitBanner(s)
		echoLine(s, "before renegotiation")
		s.Send("R")
		err := testkit.WaitFor(t, closed, "OnClose after the renegotiation attempt")
		if err == nil || !strings.Contains(err.Error(), "unexpected handshake message") {
			t.Errorf("OnClose got %v, want crypto/tls's error about an unexpected handshake message", err)
		}
		_, stderr, _ := s.Finish()
		if !strings.Contains(stderr, "unexpected message") {
			t.Errorf("s_client was not told why (the unexpected_message alert)%s", s.Output())
		}
	})

	t.Run("SNI", func(t *testing.T) {
		for _, tt := range []struct {
			args    []string
			sni, cn string
		}{
			{[]string{"-servername", "other.test", "-verify_hostname", "other.test"}, "other.test", "netcore other server"},
			{[]string{"-servername", "localhost", "-verify_hostname", "localhost"}, "localhost", "netcore test server"},
			{[]string{"-noservername"}, "", "netcore test server"},
		} {
			s := sClient(t, openssl, sniAddr, dir, append(tt.args, "-showcerts")...)
			if b, want := waitBanner(s), fmt.Sprintf("sni=%q", tt.sni); !strings.Contains(b, want) {
				t.Errorf("%v: banner %q, want %s", tt.args, b, want)
			}
			stdout := finish(t, s)
			if want := "subject=CN = " + tt.cn + "\n"; !strings.Contains(stdout, want) {
				t.Errorf("%v: s_client was not shown the certificate of %q%s", tt.args, tt.cn, s.Output())
			}
		}
	})

	t.Run("ALPN", func(t *testing.T) {
		for _, tt := range []struct{ offer, want string }{
			{"http/1.1,h2", "h2"},
			{"http/1.1", "http/1.1"},
		} {
			s := sClient(t, openssl, alpnAddr, dir, "-alpn", tt.offer)
			if b, want := waitBanner(s), fmt.Sprintf("alpn=%q", tt.want); !strings.Contains(b, want) {
				t.Errorf("-alpn %s: banner %q, want %s", tt.offer, b, want)
			}
			stdout := finish(t, s)
			if want := "ALPN protocol: " + tt.want + "\n"; !strings.Contains(stdout, want) {
				t.Errorf("-alpn %s: s_client's output lacks %q%s", tt.offer, want, s.Output())
			}
		}
		// No protocol in common: the handshake fails with the
		// no_application_protocol alert, and the handler never sees it.
		before := lp.Stats()
		s := sClient(t, openssl, alpnAddr, dir, "-alpn", "spdy/3")
		_, stderr, err := s.Finish()
		if err == nil || !strings.Contains(stderr, "no application protocol") {
			t.Errorf("-alpn spdy/3: s_client exited %v, want an error naming the no_application_protocol alert%s", err, s.Output())
		}
		after := lp.Stats()
		if after.TLSHandshakeErrors != before.TLSHandshakeErrors+1 || after.TLSHandshakes != before.TLSHandshakes {
			t.Errorf("after a refused ALPN: stats %+v, before %+v; want one more handshake error", after, before)
		}
		select {
		case err := <-closed:
			t.Errorf("the handler got OnClose(%v) for a connection whose handshake failed", err)
		default:
		}
	})

	t.Run("resumption", func(t *testing.T) {
		for _, v := range []struct{ flag, openssl string }{{"-tls1_2", "TLSv1.2"}, {"-tls1_3", "TLSv1.3"}} {
			sess := filepath.Join(t.TempDir(), "session.pem")
			s := sClient(t, openssl, echoAddr, dir, v.flag, "-sess_out", sess)
			if b := waitBanner(s); !strings.Contains(b, "resumed=false") {
				t.Errorf("%s, first connection: banner %q", v.flag, b)
			}
			if stdout := finish(t, s); !strings.Contains(stdout, "New, "+v.openssl) {
				t.Errorf("%s, first connection: not a new session%s", v.flag, s.Output())
			}
			s = sClient(t, openssl, echoAddr, dir, v.flag, "-sess_in", sess)
			if b := waitBanner(s); !strings.Contains(b, "resumed=true") {
				t.Errorf("%s, second connection: banner %q, want resumed=true", v.flag, b)
			}
			echoLine(s, "resumed")
			if stdout := finish(t, s); !strings.Contains(stdout, "Reused, "+v.openssl) {
				t.Errorf("%s, second connection: s_client did not resume the session%s", v.flag, s.Output())
			}
		}
	})
}
