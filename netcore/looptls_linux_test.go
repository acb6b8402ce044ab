package netcore_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strings"
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

// tlsHello is a handler that greets each connection, once its handshake
// is done, with what its TLS state says (protocol, server name, client
// certificate), then echoes.
func tlsHello(opened chan<- tls.ConnectionState) *loopFuncs {
	return &loopFuncs{
		open: func(c *netcore.LoopConn) {
			cs := c.ConnectionState()
			if opened != nil {
				opened <- cs
			}
			peer := "-"
			if len(cs.PeerCertificates) > 0 {
				peer = cs.PeerCertificates[0].Subject.CommonName
			}
			fmt.Fprintf(c, "%s|%s|%s\n", cs.NegotiatedProtocol, cs.ServerName, peer)
		},
		data: echoAll,
	}
}

// readLine reads one '\n'-ended line from c.
func readLine(t testing.TB, c io.Reader) string {
	t.Helper()
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, one); err != nil {
			t.Fatalf("reading a line (got %q): %v", b, err)
		}
		if one[0] == '\n' {
			return string(b)
		}
		b = append(b, one[0])
	}
}

// What a server needs of crypto/tls works on the loop: ALPN, SNI with
// GetCertificate, GetConfigForClient, client certificates, in TLS 1.2 and
// 1.3, and the handler sees it all in ConnectionState from OnOpen on.
func TestLoopTLSServerFeatures(t *testing.T) {
	pki := testkit.NewPKI(t)
	certA := pki.Issue(t, "a", x509.ExtKeyUsageServerAuth, "a.test")
	certB := pki.Issue(t, "b", x509.ExtKeyUsageServerAuth, "b.test")
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			checkLeaks(t)
			client := func(name string, protos ...string) *tls.Config {
				cfg := pki.ClientConfig()
				cfg.MaxVersion, cfg.ServerName, cfg.NextProtos = v, name, protos
				return cfg
			}
			t.Run("ALPN", func(t *testing.T) {
				cfg := pki.ServerConfig()
				cfg.NextProtos = []string{"h2", "http/1.1"}
				addr := serveLoopTLS(t, &netcore.Loop{Handler: tlsHello(nil)}, cfg)
				c := dialTLS(t, addr, client("localhost", "http/1.1", "other"))
				if got, want := readLine(t, c), "http/1.1|localhost|-"; got != want {
					t.Errorf("handler saw %q, want %q", got, want)
				}
				if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
					t.Errorf("client negotiated %q", got)
				}
			})
			t.Run("GetCertificate", func(t *testing.T) {
				cfg := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
					switch h.ServerName {
					case "a.test":
						return &certA, nil
					case "b.test":
						return &certB, nil
					}
					return nil, fmt.Errorf("no certificate for %q", h.ServerName)
				}}
				addr := serveLoopTLS(t, &netcore.Loop{Handler: tlsHello(nil)}, cfg)
				for _, name := range []string{"b.test", "a.test"} {
					c := dialTLS(t, addr, client(name))
					if got, want := readLine(t, c), "|"+name+"|-"; got != want {
						t.Errorf("handler saw %q, want %q", got, want)
					}
					if got := c.ConnectionState().PeerCertificates[0].DNSNames[0]; got != name {
						t.Errorf("asked for %s, got the certificate of %s", name, got)
					}
				}
			})
			t.Run("GetConfigForClient", func(t *testing.T) {
				cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
					c := pki.ServerConfig()
					c.NextProtos = []string{"proto-for-" + h.ServerName}
					return c, nil
				}}
				addr := serveLoopTLS(t, &netcore.Loop{Handler: tlsHello(nil)}, cfg)
				c := dialTLS(t, addr, client("localhost", "proto-for-localhost"))
				if got, want := readLine(t, c), "proto-for-localhost|localhost|-"; got != want {
					t.Errorf("handler saw %q, want %q", got, want)
				}
			})
			t.Run("ClientCertificate", func(t *testing.T) {
				cfg := pki.ServerConfig()
				cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pki.Roots
				var logs testkit.SyncBuffer
				lp := &netcore.Loop{Handler: tlsHello(nil), Logger: logTo(&logs)}
				addr := serveLoopTLS(t, lp, cfg)
				withCert := client("localhost")
				withCert.Certificates = []tls.Certificate{pki.Client}
				c := dialTLS(t, addr, withCert)
				if got, want := readLine(t, c), "|localhost|netcore test client"; got != want {
					t.Errorf("handler saw %q, want %q", got, want)
				}
				// Without one the handshake fails: the client hears why
				// (in TLS 1.3 at its first read), the handler never sees
				// the connection, and the Loop counts and logs it.
				nc, err := net.Dial("tcp4", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(testkit.Timeout))
				tc := tls.Client(nc, client("localhost"))
				err = tc.Handshake()
				if err == nil {
					_, err = tc.Read(make([]byte, 1))
				}
				// (1.3 says "certificate required", 1.2 "handshake failure")
				if err == nil || !strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "handshake failure") {
					t.Errorf("a client without a certificate got %v, want the server's alert", err)
				}
				waitStats(t, lp, func(s netcore.LoopStats) bool { return s.TLSHandshakeErrors == 1 && s.TLSHandshakes == 1 })
				if !strings.Contains(logs.String(), "TLS handshake failed") || !strings.Contains(logs.String(), nc.LocalAddr().String()) {
					t.Errorf("log %q does not report the failed handshake from %s", logs.String(), nc.LocalAddr())
				}
			})
		})
	}
}

// waitStats waits (bounded) until ok holds for lp's stats.
func waitStats(t testing.TB, lp *netcore.Loop, ok func(netcore.LoopStats) bool) {
	t.Helper()
	deadline := time.Now().Add(testkit.Timeout)
	for !ok(lp.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats never as expected: %+v", lp.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// A client resumes its session (a ticket) on the loop, in TLS 1.2 and 1.3.
func TestLoopTLSResumption(t *testing.T) {
	pki := testkit.NewPKI(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			checkLeaks(t)
			addr := serveLoopTLS(t, &netcore.Loop{Handler: loopEcho(nil)}, pki.ServerConfig())
			cfg := pki.ClientConfig()
			cfg.MaxVersion, cfg.ClientSessionCache = v, tls.NewLRUClientSessionCache(4)
			for i, want := range []bool{false, true} {
				c := dialTLS(t, addr, cfg)
				tlsRoundTrip(t, c, "hello") // in 1.3 the ticket comes after the handshake
				if got := c.ConnectionState().DidResume; got != want {
					t.Errorf("connection %d: DidResume = %v, want %v", i, got, want)
				}
				c.Close()
			}
		})
	}
}

// tlsRoundTrip writes msg on c and reads it back.
func tlsRoundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// STARTTLS: a plaintext exchange, then the handler turns the connection
// to TLS; what it wrote before goes out in the clear, what it writes after
// (even before the handshake is done) encrypted.
func TestLoopStartTLS(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	closed := make(chan error, 2)
	h := &loopFuncs{
		open: func(c *netcore.LoopConn) { c.Write([]byte("220 ready\n")) },
		data: func(c *netcore.LoopConn) {
			if c.ConnectionState().HandshakeComplete {
				echoAll(c)
				return
			}
			in := c.Peek(-1)
			i := bytes.IndexByte(in, '\n')
			if i < 0 {
				return
			}
			cmd := string(c.Next(i + 1))
			if cmd != "STARTTLS\n" {
				c.Write([]byte("500 what?\n"))
				return
			}
			c.Write([]byte("220 go ahead\n"))
			if err := c.StartTLS(pki.ServerConfig()); err != nil {
				t.Errorf("StartTLS: %v", err)
			}
			c.Write([]byte("secret greeting\n")) // encrypted, once the handshake is done
		},
		closed: closed,
	}
	lp := &netcore.Loop{Handler: h}
	addr := serveLoop(t, lp)
	for _, good := range []bool{true, false} {
		nc, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(testkit.Timeout))
		if got := readLine(t, nc); got != "220 ready" {
			t.Fatalf("greeting %q", got)
		}
		nc.Write([]byte("STARTTLS\n"))
		if got := readLine(t, nc); got != "220 go ahead" {
			t.Fatalf("answer to STARTTLS %q", got)
		}
		if !good {
			// A client that speaks plaintext on: the handshake fails and
			// the handler hears why in OnClose.
			nc.Write([]byte("HELO plaintext\n"))
			err := testkit.WaitFor(t, closed, "OnClose")
			if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
				t.Errorf("OnClose got %v, want the handshake's error", err)
			}
			nc.Close()
			break
		}
		tc := tls.Client(nc, pki.ClientConfig())
		if got := readLine(t, tc); got != "secret greeting" {
			t.Fatalf("first TLS line %q", got)
		}
		tlsRoundTrip(t, tc, "over TLS now\n")
		tc.Close()
		if err := testkit.WaitFor(t, closed, "OnClose"); err != nil && err != io.EOF {
			t.Errorf("OnClose: %v", err)
		}
	}
}
