package netcore_test

// The net.Conn contract in both I/O modes: what code written for Go's net
// relies on (x/net/nettest, net/http, deadlines from other goroutines,
// what the peer sees at Close), each checked in the default mode and the
// blocking fast path alike.

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/net/nettest"
	"golang.org/x/sys/unix"
)

// TestNettestConn runs the standard net.Conn conformance suite over both
// modes, on TCP and on Unix sockets.
func TestNettestConn(t *testing.T) {
	for _, network := range []string{"tcp4", "unix"} {
		for _, blocking := range testkit.Modes {
			t.Run(network+"/"+testkit.ModeName(blocking), func(t *testing.T) {
				testNettestConn(t, network, blocking)
			})
		}
	}
}

func testNettestConn(t *testing.T, network string, blocking bool) {
	address := "127.0.0.1:0"
	if network == "unix" {
		address = testkit.UnixPath(t) // one path: nettest listens once at a time
	}
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		l, err := (&netcore.ListenConfig{Blocking: blocking}).Listen(context.Background(), network, address)
		if err != nil {
			return nil, nil, nil, err
		}
		defer l.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				t.Errorf("Accept: %v", err)
			}
			accepted <- c
		}()
		d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
		c1, err = d.Dial(network, l.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		c2 = testkit.WaitFor(t, accepted, "Accept")
		if c2 == nil {
			c1.Close()
			return nil, nil, nil, errors.New("accept failed")
		}
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	})
}

// blockedIn returns a channel that receives once a call of op on the
// socket of rc has been made and is (about to be) blocked: the seam's
// filter sees the call go in. The filter is removed when the test ends;
// tests that use it must not run in parallel.
func blockedIn(t *testing.T, v interface {
	SyscallConn() (syscall.RawConn, error)
}, op sys.Op) <-chan struct{} {
	t.Helper()
	s := fdOf(t, v)
	entered := make(chan struct{})
	var once atomic.Bool
	restore := sys.SetFilter(func(c *sys.Call) error {
		if c.Op == op && c.FD == s && !once.Swap(true) {
			close(entered)
		}
		return nil
	})
	t.Cleanup(restore)
	return entered
}

// TestDeadlineWakesBlockedCall: a deadline set in the past from another
// goroutine wakes a Read, Write or Accept already blocked (with no
// deadline of its own) with os.ErrDeadlineExceeded, in both modes.
func TestDeadlineWakesBlockedCall(t *testing.T) {
	for _, blocking := range testkit.Modes {
		for i, past := range []time.Time{time.Now(), aLongTimeAgo} {
			name := testkit.ModeName(blocking) + []string{"/now", "/1500"}[i]
			t.Run(name+"/Read", func(t *testing.T) {
				_, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
				server.SetReadDeadline(time.Time{})
				entered := blockedIn(t, server, sys.OpRead)
				done := make(chan error, 1)
				go func() { _, err := server.Read(make([]byte, 10)); done <- err }()
				testkit.WaitFor(t, entered, "the Read")
				server.SetReadDeadline(past)
				if err := testkit.WaitFor(t, done, "the Read's wake-up"); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("blocked Read after SetReadDeadline(%v) = %v, want os.ErrDeadlineExceeded", past, err)
				}
			})
			t.Run(name+"/Write", func(t *testing.T) {
				client, _, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
				client.SetWriteDeadline(time.Time{})
				client.SetWriteBuffer(4096)
				entered := blockedIn(t, client, sys.OpWrite)
				done := make(chan error, 1)
				go func() { _, err := client.Write(make([]byte, 64<<20)); done <- err }() // more than the peer's buffers hold
				testkit.WaitFor(t, entered, "the Write")
				client.SetWriteDeadline(past)
				if err := testkit.WaitFor(t, done, "the Write's wake-up"); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("blocked Write after SetWriteDeadline(%v) = %v, want os.ErrDeadlineExceeded", past, err)
				}
			})
			t.Run(name+"/Accept", func(t *testing.T) {
				l := testkit.ListenMode(t, blocking)
				entered := blockedIn(t, l, sys.OpAccept)
				done := make(chan error, 1)
				go func() { _, err := l.Accept(); done <- err }()
				testkit.WaitFor(t, entered, "the Accept")
				l.SetDeadline(past)
				if err := testkit.WaitFor(t, done, "the Accept's wake-up"); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("blocked Accept after SetDeadline(%v) = %v, want os.ErrDeadlineExceeded", past, err)
				}
			})
		}
	}
}

var aLongTimeAgo = time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)

// TestDeadlineExtremes: deadlines outside the years int64 nanoseconds can
// count (1678-2262) mean what they say: centuries ahead is no timeout at
// all, the year 1500 is long past.
func TestDeadlineExtremes(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			t.Parallel()
			client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			server.SetReadDeadline(aLongTimeAgo)
			if _, err := server.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Read with a deadline in 1500 = %v, want os.ErrDeadlineExceeded", err)
			}
			server.SetReadDeadline(time.Now().Add(math.MaxInt64))
			go client.Write([]byte("x"))
			buf := make([]byte, 1)
			if n, err := server.Read(buf); n != 1 || err != nil {
				t.Errorf("Read with a deadline centuries ahead = %d, %v, want the byte the peer sent", n, err)
			}
			client.SetWriteDeadline(aLongTimeAgo)
			if _, err := client.Write([]byte("y")); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Write with a deadline in 1500 = %v, want os.ErrDeadlineExceeded", err)
			}
		})
	}
}

// TestZeroWriteAfterDeadline: Write(nil) with an expired deadline reports
// the timeout, as Go's net does; Read of nothing returns at once.
func TestZeroWriteAfterDeadline(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		client, _, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
		client.SetDeadline(aLongTimeAgo)
		if n, err := client.Write(nil); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: Write(nil) after the deadline = %d, %v, want 0, os.ErrDeadlineExceeded", testkit.ModeName(blocking), n, err)
		}
		if n, err := client.Read(nil); n != 0 || err != nil {
			t.Errorf("%s: Read(nil) after the deadline = %d, %v, want 0, nil", testkit.ModeName(blocking), n, err)
		}
	}
}

// TestAcceptedConnDropsListenerTimeout: in blocking mode the kernel copies
// the listener's SO_RCVTIMEO (set for an Accept deadline) into the
// accepted socket; a Read without a deadline must not inherit it.
func TestAcceptedConnDropsListenerTimeout(t *testing.T) {
	l := testkit.ListenMode(t, true)
	l.SetDeadline(time.Now().Add(testkit.Timeout / 2))
	go func() {
		d := netcore.Dialer{Blocking: true, Timeout: testkit.Timeout}
		if c, err := d.Dial("tcp4", l.Addr().String()); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}()
	server, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	rc := testkit.MustRaw(t, server)
	entered := blockedIn(t, server, sys.OpRead)
	done := make(chan error, 1)
	go func() { _, err := server.Read(make([]byte, 1)); done <- err }()
	testkit.WaitFor(t, entered, "the Read")
	var tv *unix.Timeval
	rc.Control(func(fd uintptr) { tv, err = unix.GetsockoptTimeval(int(fd), unix.SOL_SOCKET, unix.SO_RCVTIMEO) })
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(tv.Nano()); got < time.Hour {
		t.Errorf("SO_RCVTIMEO during a Read without a deadline = %v, want no short timeout (the listener's was %v)", got, testkit.Timeout/2)
	}
	server.Close()
	if err := testkit.WaitFor(t, done, "the Read's end at Close"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read at Close = %v, want net.ErrClosed", err)
	}
}

// TestCloseInFlightPeerSeesReset: Close while a Read is blocked must not
// shut the connection down first: with SO_LINGER 0 the peer sees a reset,
// as with Go's net, and a descriptor dup'ed from the socket stays usable.
func TestCloseInFlightPeerSeesReset(t *testing.T) {
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking)+"/linger0", func(t *testing.T) {
			client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			if err := server.SetLinger(0); err != nil {
				t.Fatal(err)
			}
			entered := blockedIn(t, server, sys.OpRead)
			done := make(chan error, 1)
			go func() { _, err := server.Read(make([]byte, 1)); done <- err }()
			testkit.WaitFor(t, entered, "the Read")
			server.Close()
			if err := testkit.WaitFor(t, done, "the Read's end"); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read at Close = %v, want net.ErrClosed", err)
			}
			_, err := client.Read(make([]byte, 1))
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("peer's Read after Close with linger 0 = %v, want ECONNRESET (what Go's net makes the peer see)", err)
			}
		})
		t.Run(testkit.ModeName(blocking)+"/dup", func(t *testing.T) {
			client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			var dup int
			var err error
			testkit.MustRaw(t, server).Control(func(fd uintptr) { dup, err = unix.Dup(int(fd)) })
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(dup)
			entered := blockedIn(t, server, sys.OpRead)
			done := make(chan error, 1)
			go func() { _, err := server.Read(make([]byte, 1)); done <- err }()
			testkit.WaitFor(t, entered, "the Read")
			server.Close()
			testkit.WaitFor(t, done, "the Read's end")
			if _, err := unix.Write(dup, []byte("still here")); err != nil {
				t.Fatalf("write on a dup of the closed socket: %v, want the connection alive", err)
			}
			buf := make([]byte, 10)
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "still here" {
				t.Errorf("peer read %q, %v; want what the dup wrote", buf, err)
			}
		})
	}
}

// TestDroppedConnIsClosed: a Conn dropped without Close has its
// descriptor closed when it is collected, in both modes, as with Go's net.
func TestDroppedConnIsClosed(t *testing.T) {
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			l := testkit.ListenMode(t, blocking)
			base := openFDs(t)
			func() {
				d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
				if _, err := d.Dial("tcp4", l.Addr().String()); err != nil {
					t.Fatal(err)
				}
			}()
			if openFDs(t) <= base {
				t.Fatal("the dialed socket does not show in /proc/self/fd")
			}
			deadline := time.Now().Add(testkit.Timeout)
			for openFDs(t) > base {
				if time.Now().After(deadline) {
					t.Fatalf("a dropped %s Conn still holds its descriptor after GC: %d open, baseline %d", testkit.ModeName(blocking), openFDs(t), base)
				}
				runtime.GC()
				time.Sleep(time.Millisecond) // lets the cleanup goroutine run; the loop polls a count
			}
		})
	}
}

// TestLocalAddrAfterClose: LocalAddr answers after Close with the real
// address (never a nil *net.TCPAddr inside a non-nil net.Addr), also for a
// connection accepted on a wildcard listener whose address nobody asked.
func TestLocalAddrAfterClose(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		client, server, _ := testkit.ModePair(t, blocking, "tcp4", "0.0.0.0:0")
		want := client.RemoteAddr().String()
		server.Close()
		a, ok := server.LocalAddr().(*net.TCPAddr)
		if !ok || a == nil || a.String() != want {
			t.Errorf("%s: LocalAddr after Close = %#v, want %s", testkit.ModeName(blocking), server.LocalAddr(), want)
		}
	}
}

// TestRawConnAfterClose: the RawConn of a closed Conn or Listener reports
// net.ErrClosed, as a net.Conn's does.
func TestRawConnAfterClose(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		client, _, l := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
		for name, c := range map[string]interface {
			SyscallConn() (syscall.RawConn, error)
			Close() error
		}{"Conn": client, "Listener": l} {
			rc, err := c.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if err := rc.Control(func(uintptr) {}); !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s %s: RawConn.Control after Close = %v, want net.ErrClosed", testkit.ModeName(blocking), name, err)
			}
			if _, err := c.SyscallConn(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s %s: SyscallConn after Close = %v, want net.ErrClosed", testkit.ModeName(blocking), name, err)
			}
		}
	}
}

// TestHTTPShutdownBlocking: net/http's Server over netcore serves
// keep-alive requests and shuts down promptly, in both modes. After each
// request it aborts its background read with a deadline in the past and
// waits for that read to return, so the deadline must wake a read already
// blocked: the handler here returns only once the background read is
// surely under way.
func TestHTTPShutdownBlocking(t *testing.T) {
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) { testHTTPShutdown(t, blocking) })
	}
}

func testHTTPShutdown(t *testing.T, blocking bool) {
	l := testkit.ListenMode(t, blocking)
	// The background read is the only 1-byte read(2) the server makes:
	// count those per descriptor.
	var oneByteReads [1 << 16]atomic.Int32
	restore := sys.SetFilter(func(c *sys.Call) error {
		if c.Op == sys.OpRead && c.Len == 1 && c.FD >= 0 && c.FD < len(oneByteReads) {
			oneByteReads[c.FD].Add(1)
		}
		return nil
	})
	t.Cleanup(restore)
	type connKey struct{}
	type connState struct {
		fd       int
		requests atomic.Int32
	}
	srv := &http.Server{
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			st := &connState{fd: fdOf(t, c.(*netcore.Conn))}
			oneByteReads[st.fd].Store(0)
			return context.WithValue(ctx, connKey{}, st)
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := r.Context().Value(connKey{}).(*connState)
			i := st.requests.Add(1)
			deadline := time.Now().Add(testkit.Timeout / 2)
			for oneByteReads[st.fd].Load() < i && time.Now().Before(deadline) {
				runtime.Gosched() // polls a counter: this request's background read starting
			}
			io.WriteString(w, "hello")
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
	client := &http.Client{Timeout: testkit.Timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
	for range 3 {
		resp, err := client.Get("http://" + l.Addr().String() + "/")
		if err != nil {
			t.Fatalf("%s: GET: %v", testkit.ModeName(blocking), err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "hello" {
			t.Fatalf("%s: body %q, %v", testkit.ModeName(blocking), body, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("%s: http.Server.Shutdown = %v, want nil well before its context ends", testkit.ModeName(blocking), err)
	}
	cancel()
	if err := testkit.WaitFor(t, served, "Serve's return"); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("%s: Serve = %v, want http.ErrServerClosed", testkit.ModeName(blocking), err)
	}
	client.CloseIdleConnections()
}

// TestLingerCloseBlocksLikeASyscall: a blocking-mode Close that lingers
// (SO_LINGER 1 s, with data the peer does not take) waits its full linger,
// not cut short by the runtime's preemption signals, and blocks only its
// own goroutine: with one P, another goroutine runs meanwhile. (The bounds
// are about what Close waits for, with wide slack, not about speed.)
func TestLingerCloseBlocksLikeASyscall(t *testing.T) {
	client, _, _ := testkit.ModePair(t, true, "tcp4", "127.0.0.1:0")
	client.SetWriteBuffer(4096)
	// Fill the send path until a write times out having moved nothing:
	// the peer reads nothing, and every buffer on the way is full. (A
	// write cut short while bytes still flowed, on a loaded machine, left
	// the send queue to drain before Close.)
	chunk := make([]byte, 64<<10)
	for {
		client.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := client.Write(chunk)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		if err != nil && n == 0 {
			break
		}
	}
	const linger = time.Second
	if err := client.SetLinger(int(linger / time.Second)); err != nil {
		t.Fatal(err)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	started := make(chan struct{})
	ran := make(chan time.Time, 1)
	go func() {
		<-started
		ran <- time.Now()
	}()
	start := time.Now()
	close(started)
	client.Close()
	took := time.Since(start)
	if took < linger*9/10 {
		t.Errorf("Close with SO_LINGER %v and unsent data returned after %v: the linger was cut short", linger, took)
	}
	if at := testkit.WaitFor(t, ran, "the other goroutine").Sub(start); at > linger/2 {
		t.Errorf("another goroutine first ran %v into a %v lingering Close: Close held the only P", at, took)
	}
}

// TestErrorsAsGoNet: errors read as Go's net writes them. A Read or Write
// error names both ends and the network the caller passed; dialing a
// wildcard address reports the peer the kernel connected to; "host:" is
// port 0; a network netcore does not speak is named as such.
func TestErrorsAsGoNet(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		client, _, l := testkit.ModePair(t, blocking, "tcp", "127.0.0.1:0")
		client.Close()
		_, err := client.Read(make([]byte, 1))
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Net != "tcp" || oe.Source == nil || oe.Addr == nil ||
			oe.Source.String() != client.LocalAddr().String() || oe.Addr.String() != l.Addr().String() {
			t.Errorf("%s: Read after Close = %#v, want a *net.OpError on \"tcp\" naming %v and %v", testkit.ModeName(blocking), err, client.LocalAddr(), l.Addr())
		}
	}

	wild := testkit.Listen(t, "tcp4", "0.0.0.0:0")
	c, err := netcore.Dial("tcp4", wild.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteSockaddr(); got.Addr().IsUnspecified() || got.Port() != wild.Sockaddr().Port() {
		t.Errorf("RemoteAddr after dialing %v = %v, want the peer the kernel connected to", wild.Addr(), got)
	}

	l, err := netcore.Listen("tcp", "127.0.0.1:")
	if err != nil {
		t.Fatalf(`Listen("tcp", "127.0.0.1:") = %v, want port 0 as in Go's net`, err)
	}
	if l.Sockaddr().Port() == 0 {
		t.Errorf("Listen on port 0 reports port 0, want the port the kernel chose")
	}
	l.Close()

	for _, network := range []string{"unixgram", "udp"} {
		_, err := netcore.Dial(network, "/run/x.sock")
		if err == nil || !strings.Contains(err.Error(), `network "`+network+`" is not supported`) || strings.Count(err.Error(), "netcore:") != 1 {
			t.Errorf("Dial(%q, ...) = %v, want one error naming the network as unsupported", network, err)
		}
	}
}

// TestKeepAliveAsGoNet: dialed and accepted connections have TCP
// keep-alive on with Go's 15 s period unless asked otherwise; a negative
// KeepAlive leaves it off, a positive one sets the period.
func TestKeepAliveAsGoNet(t *testing.T) {
	t.Parallel()
	opts := func(c *netcore.Conn) (on, idle, intvl int) {
		t.Helper()
		var err error
		testkit.MustRaw(t, c).Control(func(fd uintptr) {
			s := int(fd)
			on, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			if err == nil {
				idle, err = unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
			}
			if err == nil {
				intvl, err = unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return on, idle, intvl
	}
	for _, tt := range []struct {
		name      string
		keepAlive time.Duration
		on        int
		period    int // seconds, when on
	}{
		{"default", 0, 1, 15},
		{"off", -1, 0, 0},
		{"7s", 7 * time.Second, 1, 7},
	} {
		lc := netcore.ListenConfig{KeepAlive: tt.keepAlive}
		l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d := netcore.Dialer{KeepAlive: tt.keepAlive, Timeout: testkit.Timeout}
		client, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := l.AcceptConn()
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		for end, c := range map[string]*netcore.Conn{"dialed": client, "accepted": server} {
			on, idle, intvl := opts(c)
			if on != tt.on || (tt.on == 1 && (idle != tt.period || intvl != tt.period)) {
				t.Errorf("KeepAlive %v, %s: SO_KEEPALIVE %d, TCP_KEEPIDLE %d, TCP_KEEPINTVL %d; want %d and a %d s period",
					tt.keepAlive, end, on, idle, intvl, tt.on, tt.period)
			}
		}
	}
}
