package netcore_test

// Fault injection through the syscall seam (internal/sys). A filter is
// process-wide, so none of these tests runs in parallel; each restores the
// filter when it ends.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

func setFilter(t *testing.T, f sys.Filter) {
	t.Helper()
	restore := sys.SetFilter(f)
	t.Cleanup(restore)
}

// fdOf returns the descriptor under a Conn or Listener.
func fdOf(t *testing.T, v interface {
	SyscallConn() (syscall.RawConn, error)
}) int {
	t.Helper()
	rc, err := v.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	rc.Control(func(s uintptr) { fd = int(s) })
	return fd
}

// exchange sends n random bytes each way at once over a pair and checks
// both arrive exactly.
func exchange(t *testing.T, a, b *netcore.Conn, n int) {
	t.Helper()
	aw, bw := testkit.RandomBytes(n), testkit.RandomBytes(n)
	type result struct {
		got []byte
		err error
	}
	send := func(c *netcore.Conn, p []byte, out chan<- error) {
		_, err := c.Write(p)
		if err == nil {
			err = c.CloseWrite()
		}
		out <- err
	}
	recv := func(c *netcore.Conn, out chan<- result) {
		got, err := io.ReadAll(c)
		out <- result{got, err}
	}
	werr := make(chan error, 2)
	got := make(chan result, 1)
	got2 := make(chan result, 1)
	go send(a, aw, werr)
	go send(b, bw, werr)
	go recv(b, got)
	go recv(a, got2)
	for range 2 {
		if err := <-werr; err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	for _, r := range []struct {
		res  result
		want []byte
	}{{<-got, aw}, {<-got2, bw}} {
		if r.res.err != nil {
			t.Fatalf("Read: %v", r.res.err)
		}
		if !bytes.Equal(r.res.got, r.want) {
			t.Fatalf("received %d bytes (sha256 %x), want %d (sha256 %x)", len(r.res.got), sha256.Sum256(r.res.got), len(r.want), sha256.Sum256(r.want))
		}
	}
}

// TestEINTRAndShortIOEverywhere fails every other read, write, accept4 and
// connect with EINTR and cuts every read and write to a random length; 1
// MiB each way must still arrive byte for byte, in both modes.
func TestEINTRAndShortIOEverywhere(t *testing.T) {
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			var calls [sys.NumOps]atomic.Uint64
			var mu sync.Mutex
			rng := rand.New(rand.NewPCG(1, 2))
			var eintrs, shorts atomic.Int64
			setFilter(t, func(c *sys.Call) error {
				switch c.Op {
				case sys.OpRead, sys.OpWrite, sys.OpAccept, sys.OpConnect:
				default:
					return nil
				}
				if calls[c.Op].Add(1)%2 == 1 {
					eintrs.Add(1)
					return unix.EINTR
				}
				if (c.Op == sys.OpRead || c.Op == sys.OpWrite) && c.Len > 1 {
					mu.Lock()
					c.Len = 1 + rng.IntN(c.Len)
					mu.Unlock()
					shorts.Add(1)
				}
				return nil
			})
			l := testkit.ListenMode(t, blocking)
			accepted := make(chan *netcore.Conn, 1)
			go func() {
				s, err := l.AcceptConn()
				if err != nil {
					t.Errorf("Accept: %v", err)
				}
				accepted <- s
			}()
			d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
			c, err := d.Dial("tcp4", l.Addr().String())
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			s := <-accepted
			if s == nil {
				t.FailNow()
			}
			defer s.Close()
			c.SetDeadline(time.Now().Add(testkit.Timeout))
			s.SetDeadline(time.Now().Add(testkit.Timeout))
			exchange(t, c, s, 1<<20)
			if eintrs.Load() < 4 || shorts.Load() < 4 {
				t.Errorf("the filter injected %d EINTRs and %d short transfers: too few to prove anything", eintrs.Load(), shorts.Load())
			}
		})
	}
}

// TestSpuriousEAGAINBlocking: in blocking mode an EAGAIN without a
// deadline (which a kernel timeout would mean) makes the call again.
func TestSpuriousEAGAINBlocking(t *testing.T) {
	client, server, _ := testkit.ModePair(t, true, "tcp4", "127.0.0.1:0")
	var n atomic.Int64
	cfd, sfd := fdOf(t, client), fdOf(t, server)
	setFilter(t, func(c *sys.Call) error {
		if (c.FD == cfd || c.FD == sfd) && (c.Op == sys.OpRead || c.Op == sys.OpWrite) && n.Add(1)%2 == 1 {
			return unix.EAGAIN
		}
		return nil
	})
	exchange(t, client, server, 64<<10)
	if n.Load() < 4 {
		t.Errorf("only %d calls went through the filter", n.Load())
	}
}

// TestAcceptSkipsECONNABORTED: a connection reset while it waited in the
// queue (ECONNABORTED) is skipped, and the next one is returned.
func TestAcceptSkipsECONNABORTED(t *testing.T) {
	for _, blocking := range testkit.Modes {
		l := testkit.ListenMode(t, blocking)
		lfd := fdOf(t, l)
		var aborted atomic.Int64
		setFilter(t, func(c *sys.Call) error {
			if c.Op == sys.OpAccept && c.FD == lfd && aborted.Add(1) <= 3 {
				return unix.ECONNABORTED
			}
			return nil
		})
		c, err := netcore.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		l.SetDeadline(time.Now().Add(testkit.Timeout))
		s, err := l.AcceptConn()
		if err != nil {
			t.Fatalf("blocking=%v: Accept after ECONNABORTED = %v, want the next connection", blocking, err)
		}
		defer s.Close()
		if s.RemoteSockaddr() != c.LocalSockaddr() {
			t.Errorf("blocking=%v: accepted peer %v, want the dialer %v", blocking, s.RemoteSockaddr(), c.LocalSockaddr())
		}
		if aborted.Load() < 4 {
			t.Errorf("blocking=%v: accept4 called %d times, want 3 aborted and 1 real", blocking, aborted.Load())
		}
	}
}

func TestAcceptEMFILEError(t *testing.T) {
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	lfd := fdOf(t, l)
	var once atomic.Bool
	setFilter(t, func(c *sys.Call) error {
		if c.Op == sys.OpAccept && c.FD == lfd && once.CompareAndSwap(false, true) {
			return unix.EMFILE
		}
		return nil
	})
	c, err := netcore.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.SetDeadline(time.Now().Add(testkit.Timeout))
	_, err = l.AcceptConn()
	var oe *net.OpError
	var se *os.SyscallError
	if !errors.Is(err, unix.EMFILE) || !errors.As(err, &oe) || !errors.As(err, &se) || se.Syscall != "accept4" {
		t.Fatalf("Accept under EMFILE = %#v, want *net.OpError around accept4's *os.SyscallError(EMFILE)", err)
	}
	// The listener is not broken: the connection is still in the queue.
	s, err := l.AcceptConn()
	if err != nil {
		t.Fatalf("Accept after EMFILE passed: %v", err)
	}
	s.Close()
}

// TestServerBacksOffUnderEMFILE: while accept4 fails with EMFILE the
// Server retries with a growing back-off (it neither spins nor stops), and
// serves the waiting client once descriptors are back.
func TestServerBacksOffUnderEMFILE(t *testing.T) {
	checkLeaks(t)
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lfd := fdOf(t, l)
	var emfile atomic.Bool
	var accepts atomic.Int64
	emfile.Store(true)
	setFilter(t, func(c *sys.Call) error {
		if c.Op == sys.OpAccept && c.FD == lfd {
			accepts.Add(1)
			if emfile.Load() {
				return unix.EMFILE
			}
		}
		return nil
	})
	var logs testkit.SyncBuffer
	srv := &netcore.Server{
		Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) { io.Copy(c, c) }),
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c, err := netcore.Dial("tcp4", l.Addr().String()) // queued in the kernel's backlog
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Count accept4 calls over a measurement window: the back-off (5 ms
	// doubling) allows about 7 in 500 ms; a spinning loop makes thousands.
	<-time.After(500 * time.Millisecond)
	if n := accepts.Load(); n < 2 || n > 20 {
		t.Errorf("%d accept4 calls in 500 ms under EMFILE, want a backed-off handful (2 to 20)", n)
	}
	if !strings.Contains(logs.String(), "backing off") || !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("the Server's log does not report the back-off:\n%s", logs.String())
	}
	emfile.Store(false)
	c.SetDeadline(time.Now().Add(testkit.Timeout)) // covers the longest back-off
	c.Write([]byte("still here"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("echo after EMFILE cleared = %q, %v", buf, err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, netcore.ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
}

// TestSpuriousConnectWakeUp: getpeername says ENOTCONN after the socket
// looked writable. Dial must wait again, not fail and not succeed early.
func TestSpuriousConnectWakeUp(t *testing.T) {
	for _, blocking := range testkit.Modes {
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		errc := testkit.EchoOnce(l)
		var spurious atomic.Int64
		setFilter(t, func(c *sys.Call) error {
			if c.Op == sys.OpGetpeername && spurious.Add(1) == 1 {
				return unix.ENOTCONN
			}
			return nil
		})
		d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatalf("blocking=%v: Dial after a spurious wake-up: %v", blocking, err)
		}
		if spurious.Load() < 2 {
			t.Errorf("blocking=%v: getpeername called %d times, want the spurious one and a real one", blocking, spurious.Load())
		}
		c.SetDeadline(time.Now().Add(testkit.Timeout))
		c.Write([]byte("ok"))
		c.CloseWrite()
		if got, err := io.ReadAll(c); err != nil || string(got) != "ok" {
			t.Errorf("blocking=%v: echo = %q, %v", blocking, got, err)
		}
		c.Close()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

// TestSetupFailuresLeakNothing fails each system call of Listen and Dial
// in turn: the error names the errno and the address, and no descriptor
// is left open.
func TestSetupFailuresLeakNothing(t *testing.T) {
	checkLeaks(t)
	target := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	addr := target.Addr().String()
	for _, op := range []sys.Op{sys.OpSocket, sys.OpSetsockopt, sys.OpBind, sys.OpListen, sys.OpGetsockname, sys.OpConnect, sys.OpGetsockopt, sys.OpFcntl} {
		for _, blocking := range testkit.Modes {
			restore := sys.SetFilter(func(c *sys.Call) error {
				if c.Op == op {
					return unix.EACCES
				}
				return nil
			})
			lc := netcore.ListenConfig{Blocking: blocking}
			if l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0"); err == nil {
				l.Close()
			} else if !errors.Is(err, unix.EACCES) {
				t.Errorf("Listen with %v failing: %v, want EACCES", op, err)
			}
			d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
			c, err := d.Dial("tcp4", addr)
			restore()
			if err == nil {
				c.Close()
				continue
			}
			if !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), addr) {
				t.Errorf("Dial (blocking=%v) with %v failing: %v, want EACCES naming %s", blocking, op, err, addr)
			}
		}
	}
	drainAccepts(target) // what the dials left in its queue
}

// TestWriteToResetPeer: the peer resets the connection (SO_LINGER 0);
// writing returns EPIPE or ECONNRESET and the process lives on.
func TestWriteToResetPeer(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
		server.SetLinger(0)
		server.Close()
		var err error
		for range 100 {
			if _, err = client.Write(make([]byte, 4096)); err != nil {
				break
			}
		}
		if !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) {
			t.Errorf("blocking=%v: Write to a reset peer = %v, want EPIPE or ECONNRESET", blocking, err)
		}
	}
}

// TestInjectedECONNREFUSED: a refused connect is reported with the errno
// inside connect's *os.SyscallError, and the socket is not leaked.
func TestInjectedECONNREFUSED(t *testing.T) {
	checkLeaks(t)
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	for _, blocking := range testkit.Modes {
		var connects atomic.Int64
		restore := sys.SetFilter(func(c *sys.Call) error {
			if c.Op == sys.OpConnect && connects.Add(1) == 1 {
				return unix.ECONNREFUSED
			}
			return nil
		})
		d := netcore.Dialer{Blocking: blocking}
		_, err := d.Dial("tcp4", l.Addr().String())
		restore()
		var se *os.SyscallError
		if !errors.Is(err, unix.ECONNREFUSED) || !errors.As(err, &se) || se.Syscall != "connect" {
			t.Errorf("%s: Dial with connect refused = %v, want connect's ECONNREFUSED", testkit.ModeName(blocking), err)
		}
	}
}
