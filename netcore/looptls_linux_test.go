package netcore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
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
				loopRoundTrip(t, c, "hello") // in 1.3 the ticket comes after the handshake
				if got := c.ConnectionState().DidResume; got != want {
					t.Errorf("connection %d: DidResume = %v, want %v", i, got, want)
				}
				c.Close()
			}
		})
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
		loopRoundTrip(t, tc, "over TLS now\n")
		tc.Close()
		if err := testkit.WaitFor(t, closed, "OnClose"); err != nil && err != io.EOF {
			t.Errorf("OnClose: %v", err)
		}
	}
}

// rawTap records what a client connection reads from the wire.
type rawTap struct {
	net.Conn
	got []byte
}

func (r *rawTap) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.got = append(r.got, p[:n]...)
	return n, err
}

// lastRecordType walks the TLS records in b and returns the content type
// of the last complete one.
func lastRecordType(t *testing.T, b []byte) byte {
	t.Helper()
	var typ byte
	for len(b) >= 5 {
		n := 5 + (int(b[3])<<8 | int(b[4]))
		if n > len(b) {
			t.Fatalf("a truncated record (%d of %d bytes)", len(b), n)
		}
		typ, b = b[0], b[n:]
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after the last record", len(b))
	}
	return typ
}

// A server that closes after its answer sends close_notify first, as
// (*tls.Conn).Close on Go's net does; both tested the same way (TLS 1.2,
// where an alert's record type shows on the wire).
func TestLoopTLSCloseNotify(t *testing.T) {
	pki := testkit.NewPKI(t)
	servers := map[string]func(t *testing.T) string{
		"net": func(t *testing.T) string {
			return transport{}.serveNet(t, func(c net.Conn) {
				tc := tls.Server(c, pki.ServerConfig())
				tc.Write([]byte("bye\n"))
				tc.Close()
			})
		},
		"loop": func(t *testing.T) string {
			h := &loopFuncs{open: func(c *netcore.LoopConn) {
				c.Write([]byte("bye\n"))
				c.Close()
			}}
			return serveLoopTLS(t, &netcore.Loop{Handler: h}, pki.ServerConfig())
		},
	}
	for _, name := range []string{"net", "loop"} {
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			nc, err := net.Dial("tcp4", servers[name](t))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(testkit.Timeout))
			tap := &rawTap{Conn: nc}
			cfg := pki.ClientConfig()
			cfg.MaxVersion = tls.VersionTLS12
			tc := tls.Client(tap, cfg)
			got, err := io.ReadAll(tc)
			if err != nil || string(got) != "bye\n" {
				t.Fatalf("read %q, %v; want \"bye\\n\" and EOF", got, err)
			}
			if typ := lastRecordType(t, tap.got); typ != 21 {
				t.Errorf("the last record is of type %d, want 21 (an alert: close_notify)", typ)
			}
		})
	}
}

// StartTLS refuses, with a reason, what cannot work: no certificate, a
// connection already on TLS, a reply frame open, a closed connection; the
// connection goes on in plaintext after a refusal.
func TestLoopStartTLSRefusals(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	results := make(chan []string, 1)
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		c.Discard(-1)
		var got []string
		for _, try := range []func() error{
			func() error { return c.StartTLS(nil) },
			func() error { return c.StartTLS(&tls.Config{}) },
			func() error {
				codec, err := netcore.NewFrameCodec(4, binary.BigEndian, 1<<10)
				if err != nil {
					return err
				}
				f, err := c.BeginFrame(codec)
				if err != nil {
					return err
				}
				defer f.End()
				return c.StartTLS(pki.ServerConfig())
			},
			func() error { return c.StartTLS(pki.ServerConfig()) },
			func() error { return c.StartTLS(pki.ServerConfig()) },
		} {
			err := try()
			got = append(got, fmt.Sprint(err))
		}
		results <- got
	}}
	addr := serveLoop(t, &netcore.Loop{Handler: h})
	c := dialLoop(t, addr)
	c.Write([]byte("go"))
	got := testkit.WaitFor(t, results, "the handler's StartTLS calls")
	want := []string{"the *tls.Config is nil", "has no certificate", "inside a reply frame", "<nil>", "already speaks TLS"}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("StartTLS call %d: %q, want it to say %q", i, got[i], want[i])
		}
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

// A FrameHandler serves over TLS as it is: frames split across records
// and records carrying many frames come back whole, each answer built in
// place with BeginFrame.
func TestLoopTLSFrameHandler(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	codec, err := netcore.NewFrameCodec(4, binary.BigEndian, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	fh := &netcore.FrameHandler{Codec: codec, OnFrame: func(c *netcore.LoopConn, payload []byte) {
		f, err := c.BeginFrame(codec)
		if err != nil {
			t.Errorf("BeginFrame: %v", err)
			return
		}
		c.Write(bytes.ToUpper(payload))
		f.End()
	}}
	addr := serveLoopTLS(t, &netcore.Loop{Handler: fh.LoopHandler()}, pki.ServerConfig())
	c := dialTLS(t, addr, pki.ClientConfig())
	var req, want []byte
	for i, n := range []int{0, 1, 100, 20000, 64 << 10, 3} { // 20000 and 64 KiB span records
		p := bytes.Repeat([]byte{'a' + byte(i)}, n)
		req = binary.BigEndian.AppendUint32(req, uint32(n))
		req = append(req, p...)
		want = binary.BigEndian.AppendUint32(want, uint32(n))
		want = append(want, bytes.ToUpper(p)...)
	}
	go c.Write(req) // in records of the client's choosing
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the answers differ from the frames sent, upper-cased")
	}
}

// A client that resets its connection mid-handshake: the failure is
// counted and logged like any other, with the client's address, and the
// handler never sees the connection.
func TestLoopTLSHandshakeResetLogged(t *testing.T) {
	checkLeaks(t)
	pki := testkit.NewPKI(t)
	var logs testkit.SyncBuffer
	opened := make(chan tls.ConnectionState, 1)
	lp := &netcore.Loop{Handler: tlsHello(opened), Logger: logTo(&logs), Loops: 1}
	addr := serveLoopTLS(t, lp, pki.ServerConfig())
	nc, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	from := nc.LocalAddr().String()
	nc.Write([]byte{22, 3, 1, 0, 200, 1}) // the start of a ClientHello
	nc.(*net.TCPConn).SetLinger(0)        // close with a reset
	nc.Close()
	waitStats(t, lp, func(s netcore.LoopStats) bool { return s.TLSHandshakeErrors == 1 && s.Conns == 0 })
	if !strings.Contains(logs.String(), "TLS handshake failed") || !strings.Contains(logs.String(), from) {
		t.Errorf("log %q does not report the failed handshake from %s", logs.String(), from)
	}
	select {
	case <-opened:
		t.Error("the handler saw a connection whose handshake failed")
	default:
	}
}
