package netcore_test

// The standard library on netcore, used the way a program uses it:
// net/http over a netcore dialer and listener, crypto/tls both ways.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// TestHTTPOverNetcore: an http.Client dialing through netcore talks to an
// http.Server serving on a netcore Listener: three requests with a 10 MiB
// body each way, over one kept-alive connection, byte for byte.
func TestHTTPOverNetcore(t *testing.T) {
	t.Parallel()
	const size = 10 << 20
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Body-Sha256", hex.EncodeToString(h.Sum(nil)))
		w.Header().Set("X-Body-Len", big.NewInt(n).String())
		w.Write(bytes.Repeat([]byte{byte(n)}, size)) // n mod 256, size times
	})}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()

	var dials atomic.Int64
	d := &netcore.Dialer{Timeout: testkit.Timeout}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialNetConn(ctx, network, addr)
	}}
	client := &http.Client{Transport: tr, Timeout: testkit.Timeout}
	url := "http://" + l.Addr().String() + "/upload"
	for i := range 3 {
		body := testkit.RandomBytes(size)
		sum := sha256.Sum256(body)
		var reused bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) {
				reused = info.Reused
				if _, ok := info.Conn.(*netcore.Conn); !ok {
					t.Errorf("request %d: the transport's connection is a %T, want *netcore.Conn", i, info.Conn)
				}
			},
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("request %d: reading the response: %v", i, err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Body-Sha256") != hex.EncodeToString(sum[:]) ||
			resp.Header.Get("X-Body-Len") != big.NewInt(size).String() {
			t.Errorf("request %d: status %d, server saw %s bytes with sha256 %s; sent %d bytes with %x",
				i, resp.StatusCode, resp.Header.Get("X-Body-Len"), resp.Header.Get("X-Body-Sha256"), size, sum)
		}
		if !bytes.Equal(got, bytes.Repeat([]byte{byte(size % 256)}, size)) {
			t.Errorf("request %d: response body of %d bytes is not the %d bytes sent", i, len(got), size)
		}
		if i > 0 && !reused {
			t.Errorf("request %d went over a new connection: keep-alive did not hold", i)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials for 3 requests, want 1 (keep-alive)", n)
	}
	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Errorf("http.Server.Shutdown = %v", err)
	}
	if err := testkit.WaitFor(t, served, "http.Server.Serve returning"); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("http.Server.Serve = %v, want http.ErrServerClosed", err)
	}
}

// TestDialNetConnNilOnError: a failed dial gives a nil net.Conn, not a
// net.Conn holding a nil *Conn, and an error naming the address.
func TestDialNetConnNilOnError(t *testing.T) {
	t.Parallel()
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nobody listens there now
	var d netcore.Dialer
	for _, address := range []string{addr, "127.0.0.1:99999", "no-port"} {
		c, err := d.DialNetConn(context.Background(), "tcp4", address)
		if c != nil {
			t.Errorf("DialNetConn(%q) = %#v (non-nil), %v", address, c, err)
		}
		if err == nil || !strings.Contains(err.Error(), address) {
			t.Errorf("DialNetConn(%q) error = %v, want one naming the address", address, err)
		}
	}
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, signed by
// its own ECDSA P-256 key, and the pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "netcore test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// tlsEchoHandler answers each request of the 8-byte length-prefixed kind
// (length, then bytes) with the same bytes, waiting for each request in
// netcore.Idle. It checks, once per connection, that the connection is TLS
// 1.3 with a netcore socket beneath, reachable for options; problems go to
// errs.
func tlsEchoHandler(errs chan<- error) netcore.Handler {
	return netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
		tc, ok := c.(*tls.Conn)
		if !ok {
			errs <- errors.New("the handler's connection is not a *tls.Conn")
			return
		}
		nc, ok := netcore.AsConn(c)
		if !ok {
			errs <- errors.New("AsConn found no *netcore.Conn beneath the *tls.Conn")
			return
		}
		if err := nc.SetNoDelay(true); err != nil {
			errs <- err
			return
		}
		var hdr [8]byte
		for {
			err := netcore.Idle(ctx, func() error { _, err := io.ReadFull(c, hdr[:1]); return err })
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, netcore.ErrServerClosed) {
					errs <- err
				}
				return
			}
			if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
				errs <- errors.New("server side: not TLS 1.3: " + tls.VersionName(v))
				return
			}
			if _, err := io.ReadFull(c, hdr[1:]); err != nil {
				errs <- err
				return
			}
			n := new(big.Int).SetBytes(hdr[:]).Int64()
			if _, err := io.CopyN(c, c, n); err != nil {
				errs <- err
				return
			}
		}
	})
}

// tlsExchange sends size random bytes in one request over c and checks
// the echo, byte for byte, and that c is TLS 1.3.
func tlsExchange(t *testing.T, c *tls.Conn, size int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	msg := testkit.RandomBytes(size)
	hdr := big.NewInt(int64(size)).FillBytes(make([]byte, 8))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(append(hdr, msg...))
		errc <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := testkit.WaitFor(t, errc, "the write"); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("the echo of %d bytes differs from what was sent", size)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("client side: %s, want TLS 1.3", tls.VersionName(v))
	}
}

// TestTLS: TLS 1.3 handshakes and a 1 MiB echo, with netcore on either
// end or both: netcore client to a netcore Server (TLSConfig), Go's
// crypto/tls client to a netcore Server (tls.NewListener on a netcore
// Listener), and a netcore client to Go's crypto/tls server. Each netcore
// Server then shuts down with its client idle, at once.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	serverConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	clientConf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	d := &netcore.Dialer{Timeout: testkit.Timeout}

	serveNetcore := func(t *testing.T, useField bool) (addr string, shutdown func()) {
		errs := make(chan error, 4)
		srv := &netcore.Server{Handler: tlsEchoHandler(errs), Logger: slog.New(slog.DiscardHandler)}
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		var nl net.Listener = l
		if useField {
			srv.TLSConfig = serverConf
		} else {
			nl = tls.NewListener(l, serverConf)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(nl) }()
		return l.Addr().String(), func() {
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown with an idle TLS client = %v, want nil", err)
			}
			if err := testkit.WaitFor(t, served, "Serve returning"); !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("Serve = %v, want ErrServerClosed", err)
			}
			close(errs)
			for err := range errs {
				t.Errorf("handler: %v", err)
			}
		}
	}

	t.Run("netcore client, netcore Server with TLSConfig", func(t *testing.T) {
		t.Parallel()
		addr, shutdown := serveNetcore(t, true)
		c, err := d.DialTLSContext(context.Background(), "tcp4", addr, clientConf)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, ok := netcore.AsConn(c); !ok {
			t.Error("AsConn found no *netcore.Conn beneath the client's *tls.Conn")
		}
		tlsExchange(t, c, 1<<20)
		tlsExchange(t, c, 1) // a second request on the same connection
		shutdown()
	})
	t.Run("crypto/tls client, netcore Server on tls.NewListener", func(t *testing.T) {
		t.Parallel()
		addr, shutdown := serveNetcore(t, false)
		td := &tls.Dialer{NetDialer: &net.Dialer{Timeout: testkit.Timeout}, Config: clientConf}
		nc, err := td.DialContext(context.Background(), "tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		tlsExchange(t, nc.(*tls.Conn), 1<<20)
		shutdown()
	})
	t.Run("netcore client, crypto/tls server", func(t *testing.T) {
		t.Parallel()
		l, err := tls.Listen("tcp4", "127.0.0.1:0", serverConf)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			var hdr [8]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			io.CopyN(c, c, new(big.Int).SetBytes(hdr[:]).Int64())
		}()
		c, err := d.DialTLSContext(context.Background(), "tcp4", l.Addr().String(), clientConf)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tlsExchange(t, c, 1<<20)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		addr, shutdown := serveNetcore(t, true)
		defer shutdown()
		c, err := d.DialTLSContext(context.Background(), "tcp4", addr, &tls.Config{MinVersion: tls.VersionTLS13})
		var unknown x509.UnknownAuthorityError
		if c != nil || !errors.As(err, &unknown) || !strings.Contains(err.Error(), addr) {
			t.Errorf("DialTLSContext to an untrusted server = %v, %v; want nil and an x509.UnknownAuthorityError naming %s", c, err, addr)
		}
	})
}

// TestTLSIdleTimeout: Server.IdleTimeout reaches the netcore connection
// beneath TLS: a handler reading from a client that completed the
// handshake and then went quiet gets os.ErrDeadlineExceeded.
func TestTLSIdleTimeout(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	readErr := make(chan error, 1)
	srv := &netcore.Server{
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		IdleTimeout: 50 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
		Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
			_, err := c.Read(make([]byte, 1))
			readErr <- err
		}),
	}
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	d := &netcore.Dialer{Timeout: testkit.Timeout}
	c, err := d.DialTLSContext(context.Background(), "tcp4", l.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := testkit.WaitFor(t, readErr, "the handler's Read timing out"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("handler Read under TLS from a quiet client = %v, want os.ErrDeadlineExceeded", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := testkit.WaitFor(t, served, "Serve returning"); !errors.Is(err, netcore.ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
}
