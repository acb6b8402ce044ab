package netcore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

func fdIsBlocking(t *testing.T, rc syscall.RawConn) bool {
	t.Helper()
	var flags int
	var err error
	rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if err != nil {
		t.Fatalf("fcntl(F_GETFL): %v", err)
	}
	return flags&unix.O_NONBLOCK == 0
}

func TestBlockingEcho(t *testing.T) {
	t.Parallel()
	for _, nt := range []struct{ network, address string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		for _, size := range []int{1, 64 << 10, 16 << 20} {
			t.Run(nt.network+"/"+strconv.Itoa(size), func(t *testing.T) {
				t.Parallel()
				client, server, l := testkit.ModePair(t, true, nt.network, nt.address)
				for name, rc := range map[string]syscall.RawConn{"client": testkit.MustRaw(t, client), "server": testkit.MustRaw(t, server), "listener": testkit.MustRaw(t, l)} {
					if !fdIsBlocking(t, rc) {
						t.Errorf("%s socket has O_NONBLOCK in blocking mode", name)
					}
				}
				client.SetDeadline(time.Now().Add(testkit.Timeout))
				server.SetDeadline(time.Now().Add(testkit.Timeout))
				go func() {
					io.Copy(server, server)
					server.CloseWrite()
				}()
				testkit.CheckEcho(t, client, size)
				if server.RemoteSockaddr() != client.LocalSockaddr() {
					t.Errorf("server sees %v, client is %v", server.RemoteSockaddr(), client.LocalSockaddr())
				}
			})
		}
	}
}

// The default mode and the fast path talk to each other: the mode is a
// property of one end only.
func TestBlockingInteropWithDefaultMode(t *testing.T) {
	t.Parallel()
	lc := netcore.ListenConfig{Blocking: true}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errc := testkit.EchoOnce(l)
	c, err := netcore.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	c.Write([]byte("mixed"))
	c.CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != "mixed" {
		t.Errorf("echo = %q, %v; want \"mixed\"", got, err)
	}
	if err := <-errc; err != nil {
		t.Error(err)
	}
}

// TestBlockingDeadlineChangeDuringCall pins down the documented behaviour:
// a blocked call keeps the kernel timeout it started with. Moving the
// deadline later while it waits makes it wait on when that timeout fires;
// moving it earlier takes effect at the latest when the original timeout
// fires.
func TestBlockingDeadlineChangeDuringCall(t *testing.T) {
	t.Parallel()
	client, server, _ := testkit.ModePair(t, true, "tcp4", "127.0.0.1:0")
	client.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	got := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		buf := make([]byte, 4)
		n, err := io.ReadFull(client, buf)
		if err == nil && string(buf[:n]) != "late" {
			err = errors.New("read " + strconv.Quote(string(buf[:n])))
		}
		got <- err
	}()
	<-started
	// Extend the deadline while the Read may already be blocked, then send
	// after the original deadline: the Read must still succeed.
	client.SetReadDeadline(time.Now().Add(testkit.Timeout))
	<-time.After(100 * time.Millisecond) // past the original deadline: the behaviour under test
	server.Write([]byte("late"))
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Read with its deadline extended during the call: %v", err)
		}
	case <-time.After(testkit.Timeout):
		t.Fatal("Read did not return")
	}
}

// expectClosedAfterClose runs call (which blocks), closes c, and checks
// call returns net.ErrClosed within testkit.Timeout.
func expectClosedAfterClose(t *testing.T, c io.Closer, call func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- call() }()
	// Give the call a chance to block; if it has not yet, it meets the
	// closed socket instead, which must give the same error.
	select {
	case err := <-errc:
		t.Fatalf("the call returned before Close: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked call after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(testkit.Timeout):
		t.Fatal("Close did not wake the blocked call")
	}
}

// TestBlockingNoLeaks runs many fast-path connections, including ones
// closed while calls are blocked, and checks every descriptor and
// goroutine is gone afterwards.
func TestBlockingNoLeaks(t *testing.T) {
	checkLeaks(t)
	lc := netcore.ListenConfig{Blocking: true}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := netcore.Dialer{Blocking: true, Timeout: testkit.Timeout}
	for i := range 200 {
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		s, err := l.AcceptConn()
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		if i%2 == 0 {
			// Close while a Read is blocked on the other goroutine.
			errc := make(chan error, 1)
			go func() { _, err := s.Read(make([]byte, 1)); errc <- err }()
			s.Close()
			if err := <-errc; !errors.Is(err, net.ErrClosed) && err != io.EOF {
				t.Fatalf("blocked Read after Close = %v", err)
			}
		} else {
			s.Close()
		}
		c.Close()
	}
}
