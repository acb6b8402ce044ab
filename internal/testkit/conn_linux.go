package testkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// Listen opens a listener on a loopback address and port 0, closed when the
// test ends. network "tcp6" skips the test where IPv6 is absent.
func Listen(t testing.TB, network, address string) *netcore.Listener {
	t.Helper()
	l, err := netcore.Listen(network, address)
	if err != nil {
		if network == "tcp6" || address[0] == '[' {
			t.Skipf("no IPv6 here: Listen(%q, %q): %v", network, address, err)
		}
		t.Fatalf("Listen(%q, %q): %v", network, address, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// ModePair returns a connected client and server Conn, both in the given
// mode (blocking: the fast path), over a fresh listener on network and
// address (port 0). All three are closed when the test ends, and both
// Conns have a deadline Timeout away. network "tcp6" skips the test
// where IPv6 is absent.
func ModePair(t testing.TB, blocking bool, network, address string) (client, server *netcore.Conn, l *netcore.Listener) {
	t.Helper()
	lc := netcore.ListenConfig{Blocking: blocking}
	l, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		if network == "tcp6" || address[0] == '[' {
			t.Skipf("no IPv6 here: Listen(%q, %q): %v", network, address, err)
		}
		t.Fatalf("Listen(%q, %q) (%s): %v", network, address, ModeName(blocking), err)
	}
	t.Cleanup(func() { l.Close() })
	type result struct {
		c   *netcore.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.AcceptConn()
		ch <- result{c, err}
	}()
	// A wildcard listener is dialed on loopback.
	target := l.Sockaddr()
	if target.Addr().IsUnspecified() {
		loopback := netip.IPv6Loopback()
		if target.Is4() || network == "tcp4" {
			loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		target, _ = netcore.SockaddrFromAddrPort(netip.AddrPortFrom(loopback, target.Port()))
	}
	d := netcore.Dialer{Blocking: blocking, Timeout: Timeout}
	client, err = d.Dial(network, target.String())
	if err != nil {
		t.Fatalf("Dial(%q, %q) (%s): %v", network, target, ModeName(blocking), err)
	}
	t.Cleanup(func() { client.Close() })
	r := WaitFor(t, ch, "Accept on "+l.Addr().String())
	if r.err != nil {
		t.Fatalf("Accept (%s): %v", ModeName(blocking), r.err)
	}
	server = r.c
	t.Cleanup(func() { server.Close() })
	deadline := time.Now().Add(Timeout)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	return client, server, l
}

// ListenMode listens on 127.0.0.1 port 0 in the given mode; the listener
// is closed when the test ends.
func ListenMode(t testing.TB, blocking bool) *netcore.Listener {
	t.Helper()
	lc := netcore.ListenConfig{Blocking: blocking}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen (%s): %v", ModeName(blocking), err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// CheckEcho writes size random bytes on c and half-closes, while reading
// back everything the peer echoes until EOF, and fails the test unless the
// echo is byte for byte what was written.
func CheckEcho(t *testing.T, c *netcore.Conn, size int) {
	t.Helper()
	want := RandomBytes(size)
	// Write and read at once: neither side's buffer can fill up and stall.
	werr := make(chan error, 1)
	go func() {
		n, err := c.Write(want)
		if err == nil && n != len(want) {
			err = errors.New("short write without an error")
		}
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("Write of %d bytes: %v", size, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo of %d bytes: got %d bytes (sha256 %x), want sha256 %x", size, len(got), sha256.Sum256(got), sha256.Sum256(want))
	}
}

// EchoOnce accepts one connection on l and echoes it until EOF, then
// half-closes; the error (nil on success) arrives on the returned channel.
func EchoOnce(l *netcore.Listener) <-chan error {
	errc := make(chan error, 1)
	go func() {
		c, err := l.AcceptConn()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(Timeout))
		if _, err := io.Copy(c, c); err != nil {
			errc <- err
			return
		}
		errc <- c.CloseWrite()
	}()
	return errc
}

// Echo copies fixed-size messages back until the connection ends.
func Echo(c net.Conn, size int) {
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// MustRaw returns v's syscall.RawConn, failing the test if it has none.
func MustRaw(t testing.TB, v interface {
	SyscallConn() (syscall.RawConn, error)
}) syscall.RawConn {
	t.Helper()
	rc, err := v.SyscallConn()
	if err != nil {
		t.Fatalf("SyscallConn: %v", err)
	}
	return rc
}

// CPUTime is this process's user plus system CPU time so far.
func CPUTime(t testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
