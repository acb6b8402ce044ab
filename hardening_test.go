//go:build linux

package netcore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// freeEphemeralPort returns an even port of the ephemeral range on
// 127.0.0.1 with nothing listening on it. Even, because Linux gives
// connect(2) even source ports (and bind(2) odd ones): that is where a
// dial's source can collide with its destination.
func freeEphemeralPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port &^ 1
		l.Close()
		if even, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			even.Close()
			return port
		}
	}
	t.Fatal("no free even port found in 100 tries")
	return 0
}

// Dialing a free port of the ephemeral range thousands of times never
// yields a connection: without a check, the kernel sooner or later picks
// that very port as the source and TCP's simultaneous open connects the
// socket to itself (then it holds the port a server wants). Go's net
// retries such a dial; so does netcore, in both modes.
func TestDialNeverConnectsToItself(t *testing.T) {
	const attempts = 30000 // two cycles of the even ports of the ephemeral range
	dialers := map[string]func(addr string) (net.Conn, error){
		"net": func(addr string) (net.Conn, error) { return net.Dial("tcp4", addr) },
		"netcore": func(addr string) (net.Conn, error) {
			return netcore.Dial("tcp4", addr)
		},
		"netcore-blocking": func(addr string) (net.Conn, error) {
			d := netcore.Dialer{Blocking: true}
			return d.Dial("tcp4", addr)
		},
	}
	for _, name := range []string{"net", "netcore", "netcore-blocking"} {
		t.Run(name, func(t *testing.T) {
			if testing.Short() {
				t.Skip("thousands of dials")
			}
			checkLeaks(t)
			addr := fmt.Sprintf("127.0.0.1:%d", freeEphemeralPort(t))
			for i := range attempts {
				c, err := dialers[name](addr)
				if err == nil {
					c.Close()
					t.Fatalf("attempt %d: Dial(%q) connected (local %v): nothing listens there", i, addr, c.LocalAddr())
				}
				if !errors.Is(err, unix.ECONNREFUSED) {
					t.Fatalf("attempt %d: Dial(%q) = %v, want ECONNREFUSED", i, addr, err)
				}
			}
		})
	}
}

// A client that trickles its ClientHello a byte every 20 ms never
// finishes the handshake: HandshakeTimeout closes it (IdleTimeout, per
// read, would not), logs it, and frees its MaxConns slot for a real
// client, in both modes.
func TestServerHandshakeTimeout(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		t.Run(modeName(blocking), func(t *testing.T) {
			checkLeaks(t)
			cert, pool := selfSigned(t)
			var logs syncBuffer
			errs := make(chan error, 4)
			srv := &netcore.Server{
				Handler:          tlsEchoHandler(errs),
				TLSConfig:        &tls.Config{Certificates: []tls.Certificate{cert}},
				HandshakeTimeout: 300 * time.Millisecond,
				IdleTimeout:      time.Second,
				MaxConns:         1,
				Logger:           logTo(&logs),
			}
			l := listenMode(t, blocking)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				srv.Shutdown(ctx)
				waitFor(t, served, "Serve's return")
			}()

			// The trickler: a real ClientHello, captured, sent a byte at
			// a time.
			hello := clientHello(t)
			slow := dialLoop(t, l.Addr().String())
			start := time.Now()
			ended := make(chan error, 1)
			go func() {
				for i := 0; i < len(hello); i++ {
					if _, err := slow.Write(hello[i : i+1]); err != nil {
						ended <- err
						return
					}
					time.Sleep(20 * time.Millisecond) // the attack's pace, not synchronisation
				}
				ended <- errors.New("the whole ClientHello went through")
			}()
			// The slot is taken: a real client gets through only once the
			// trickler has been dropped.
			tc, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatalf("the real client's handshake: %v", err)
			}
			defer tc.Close()
			tlsExchange(t, tc, 1000)
			if err := waitFor(t, ended, "the trickler's end"); err == nil || strings.Contains(err.Error(), "whole ClientHello") {
				t.Fatalf("the trickler: %v, want its connection closed", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("the trickler was dropped after %v, want about 300 ms", d)
			}
			if !strings.Contains(logs.String(), "TLS handshake failed") {
				t.Errorf("the dropped handshake is not logged:\n%s", logs.String())
			}
			select {
			case err := <-errs:
				t.Errorf("handler: %v", err)
			default:
			}
		})
	}
}

// clientHello returns the first bytes a crypto/tls client sends: its
// ClientHello record.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true}).Handshake()
	buf := make([]byte, 4096)
	b.SetReadDeadline(time.Now().Add(testTimeout))
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// ReadFrom's errors name the operation as Go's net does ("readfrom"),
// through sendfile, splice and the buffered copy alike.
func TestReadFromErrorOp(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "src")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(bytes.Repeat([]byte("x"), 1<<16))
	sources := map[string]func() io.Reader{
		"file":   func() io.Reader { f.Seek(0, io.SeekStart); return f },
		"reader": func() io.Reader { return bytes.NewReader(make([]byte, 1<<16)) },
	}
	conns := map[string]func(t *testing.T) io.ReaderFrom{
		"net": func(t *testing.T) io.ReaderFrom {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			c, err := net.Dial("tcp4", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			return c.(*net.TCPConn)
		},
		"netcore": func(t *testing.T) io.ReaderFrom {
			c, _, _ := modePair(t, false, "tcp4", "127.0.0.1:0")
			c.Close()
			return c
		},
		"netcore-blocking": func(t *testing.T) io.ReaderFrom {
			c, _, _ := modePair(t, true, "tcp4", "127.0.0.1:0")
			c.Close()
			return c
		},
	}
	for _, cname := range []string{"net", "netcore", "netcore-blocking"} {
		for _, sname := range []string{"file", "reader"} {
			t.Run(cname+"/"+sname, func(t *testing.T) {
				_, err := conns[cname](t).ReadFrom(sources[sname]())
				var oe *net.OpError
				if !errors.As(err, &oe) || oe.Op != "readfrom" || !errors.Is(err, net.ErrClosed) {
					t.Errorf("ReadFrom on a closed connection = %v, want an *OpError with Op \"readfrom\" matching net.ErrClosed", err)
				}
			})
		}
	}
}
