//go:build linux

package netcore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
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

// oversizeServer is a Loop serving the book's framing whose OnFrameError
// answers a frame over the limit with reply, then the connection closes.
func oversizeServer(t *testing.T, linger time.Duration, reply []byte) string {
	t.Helper()
	codec, err := netcore.NewFrameCodec(4, binary.LittleEndian, 4096)
	if err != nil {
		t.Fatal(err)
	}
	fh := &netcore.FrameHandler{
		Codec:        codec,
		OnFrame:      func(c *netcore.LoopConn, p []byte) { c.Write(p) },
		OnFrameError: func(c *netcore.LoopConn, err error) { c.Write(reply) },
	}
	return serveLoop(t, &netcore.Loop{Handler: fh.LoopHandler(), LingerTimeout: linger})
}

// A client sends a frame far over the limit and goes on sending its body
// while the server answers with an error and closes. Closed outright, the
// server's socket answers the unread and later input with a reset, which
// on a real network can destroy the error reply on its way (and here fails
// the client's writes and its read after the reply). Lingering, the loop
// shuts its write side, discards the rest and closes after the client's
// EOF: the client reads the whole reply, then EOF, and all its writes
// succeed.
func TestLoopLingeringClose(t *testing.T) {
	reply := bytes.Repeat([]byte("-ERR frame too large\n"), 5000) // about 100 KiB
	body := make([]byte, 4<<20)
	for _, tc := range []struct {
		name       string
		linger     time.Duration
		wantResets bool
	}{{"lingering", 0, false}, {"off", -1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			c := dialLoop(t, oversizeServer(t, tc.linger, reply))
			hdr := binary.LittleEndian.AppendUint32(nil, 1<<30)
			wrote := make(chan error, 1)
			go func() {
				_, err := c.Write(append(hdr, body...))
				if err == nil {
					err = c.CloseWrite()
				}
				wrote <- err
			}()
			got, rerr := io.ReadAll(c)
			werr := waitFor(t, wrote, "the client's writes")
			whole := bytes.Equal(got, reply)
			t.Logf("read %d of %d reply bytes; read error %v, write error %v", len(got), len(reply), rerr, werr)
			if !tc.wantResets && (!whole || rerr != nil || werr != nil) {
				t.Errorf("want the whole reply, then EOF, and no write error")
			}
			if tc.wantResets && whole && rerr == nil && werr == nil {
				t.Errorf("closed outright with input unread, no reset reached the client: the lingering test proves nothing")
			}
		})
	}
}

// A lingering socket whose peer never closes is closed at LingerTimeout:
// the peer's writes fail from then on.
func TestLoopLingerTimeout(t *testing.T) {
	checkLeaks(t)
	const linger = 100 * time.Millisecond
	c := dialLoop(t, oversizeServer(t, linger, []byte("no\n")))
	start := time.Now()
	c.Write(binary.LittleEndian.AppendUint32(nil, 1<<30))
	got := make([]byte, 3)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "no\n" {
		t.Fatalf("the reply: %q, %v", got, err)
	}
	// While it lingers, writes are taken (and discarded); once it is
	// closed, they are answered with a reset.
	var err error
	for err == nil && time.Since(start) < testTimeout {
		_, err = c.Write(make([]byte, 1024))
		time.Sleep(5 * time.Millisecond) // pacing the probe writes, not synchronisation
	}
	if err == nil {
		t.Fatal("the peer's writes never failed: the lingering socket was not closed")
	}
	if d := time.Since(start); d < linger {
		t.Errorf("writes failed after %v (%v), before LingerTimeout %v", d, err, linger)
	}
}
