package netcore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// serveTwoLoops serves an echo Loop of two loops on a new 127.0.0.1
// listener, with SO_REUSEPORT and Loop.ReusePort if reuse; Serve's return
// comes on served.
func serveTwoLoops(t *testing.T, reuse bool) (*netcore.Loop, *netcore.Listener, chan error) {
	t.Helper()
	lc := netcore.ListenConfig{ReusePort: reuse}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 2, ReusePort: reuse, Logger: quietLogger()}
	served := make(chan error, 1)
	go func() { served <- lp.Serve(l) }()
	return lp, l, served
}

// Every loop accepts the connections it serves, on the one listening
// socket (EPOLLEXCLUSIVE) or on a socket of its own (ReusePort): every
// connection is served, the spread shows in Stats, and after Shutdown no
// socket is left listening on the port and no descriptor is left open.
func TestLoopAcceptOnEveryLoop(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "shared", true: "reuseport"}[reuse], func(t *testing.T) {
			checkLeaks(t)
			lp, l, served := serveTwoLoops(t, reuse)
			addr := l.Addr().String()
			const n = 200
			conns := make([]*netcore.Conn, n)
			for i := range conns {
				conns[i] = dialLoop(t, addr)
				loopRoundTrip(t, conns[i], "hello")
			}
			st := lp.Stats()
			if st.Conns != n || st.Accepted != n || len(st.ConnsPerLoop) != 2 || st.ConnsPerLoop[0]+st.ConnsPerLoop[1] != n {
				t.Errorf("Stats() = %+v, want %d connections spread over 2 loops", st, n)
			}
			// The kernel spreads a reuseport group's connections by a
			// hash of their addresses: 200 of them all landing on one
			// socket would mean the siblings do not accept.
			if reuse && (st.ConnsPerLoop[0] == 0 || st.ConnsPerLoop[1] == 0) {
				t.Errorf("ConnsPerLoop = %v: with ReusePort both loops accept", st.ConnsPerLoop)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
			defer cancel()
			for _, c := range conns {
				c.Close()
			}
			if err := lp.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if err := testkit.WaitFor(t, served, "Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
				t.Errorf("Serve = %v, want ErrLoopClosed", err)
			}
			// No listening socket of the group is left: dialing the
			// port, from many source ports, is refused every time.
			for range 20 {
				c, err := net.DialTimeout("tcp4", addr, testkit.Timeout)
				if err == nil {
					c.Close()
					t.Fatalf("a dial to %s after Shutdown was accepted: a listening socket was left open", addr)
				}
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("dial after Shutdown: %v, want ECONNREFUSED", err)
				}
			}
		})
	}
}

// ReusePort on a listener without SO_REUSEPORT is refused with an error
// that says what to do, and the listener is closed; so is Serve of a
// listener that cannot join a reuseport group. A *net.TCPListener with
// SO_REUSEPORT (set by net.ListenConfig's Control) works.
func TestLoopReusePortListener(t *testing.T) {
	checkLeaks(t)
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 2, ReusePort: true, Logger: quietLogger()}
	err := lp.Serve(l)
	if err == nil || !strings.Contains(err.Error(), "SO_REUSEPORT") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("Serve of a listener without SO_REUSEPORT = %v, want an error naming SO_REUSEPORT and %s", err, l.Addr())
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the refused listener: Accept = %v, want net.ErrClosed (Serve closes it)", err)
	}
	lp.Close()

	ul, err := netcore.Listen("unix", "@netcore-reuseport-"+strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	lp = &netcore.Loop{Handler: loopEcho(nil), Loops: 2, ReusePort: true, Logger: quietLogger()}
	if err := lp.Serve(ul); err == nil || !strings.Contains(err.Error(), "Unix socket") || !strings.Contains(err.Error(), ul.Addr().String()) {
		t.Errorf("Serve of a Unix listener with ReusePort = %v, want an error naming it and saying why", err)
	}
	lp.Close()

	nlc := net.ListenConfig{Control: sockoptControl(sockopt{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1})}
	nl, err := nlc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lp = &netcore.Loop{Handler: loopEcho(nil), Loops: 2, ReusePort: true, Logger: quietLogger()}
	served := make(chan error, 1)
	go func() { served <- lp.Serve(nl) }()
	for range 20 {
		loopRoundTrip(t, dialLoop(t, nl.Addr().String()), "through a sibling or the original")
	}
	lp.Close()
	if err := testkit.WaitFor(t, served, "Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
		t.Errorf("Serve = %v, want ErrLoopClosed", err)
	}
}

// When accepting fails for good on one loop, Serve stops on every loop and
// returns that error; the connections already open are still served.
func TestLoopAcceptFailureStopsEveryLoop(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "shared", true: "reuseport"}[reuse], func(t *testing.T) {
			checkLeaks(t)
			lp, l, served := serveTwoLoops(t, reuse)
			t.Cleanup(func() { lp.Close() })
			open := dialLoop(t, l.Addr().String())
			loopRoundTrip(t, open, "before")
			var fail atomic.Bool
			fail.Store(true)
			setFilter(t, func(c *sys.Call) error {
				if c.Op == sys.OpAccept && fail.Load() {
					return unix.EINVAL
				}
				return nil
			})
			// Dial until a connection reaches an accept4 (kernel-side
			// the dial succeeds from the backlog; the loop then fails).
			c, err := net.DialTimeout("tcp4", l.Addr().String(), testkit.Timeout)
			if err == nil {
				defer c.Close()
			}
			err = testkit.WaitFor(t, served, "Serve's return")
			fail.Store(false)
			if !errors.Is(err, unix.EINVAL) {
				t.Fatalf("Serve = %v, want the accept error (EINVAL)", err)
			}
			loopRoundTrip(t, open, "after")
			if c, err := net.DialTimeout("tcp4", l.Addr().String(), time.Second); err == nil {
				c.Close()
				t.Errorf("a dial after Serve returned was accepted: a listening socket was left open")
			}
		})
	}
}

// With the loops sharing one listener, a light load stays on the first
// loop (each wake-up then serves many connections' events), and new
// connections go to the other loop while one is busy.
func TestLoopAcceptPrefersFirstIdleLoop(t *testing.T) {
	checkLeaks(t)
	// A request "S" is long: 200 ms of work on the loop. 5 ms into it,
	// the loop has been busy long enough for others to see it.
	spinning := make(chan struct{}, 1)
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		if c.Peek(1)[0] == 'S' {
			start := time.Now()
			for time.Since(start) < 5*time.Millisecond {
			}
			spinning <- struct{}{}
			for time.Since(start) < 200*time.Millisecond {
			}
		}
		echoAll(c)
	}}
	lp := &netcore.Loop{Handler: h, Loops: 2}
	addr := serveLoop(t, lp)
	// Connections made one after another, each served before the next:
	// the first loop is idle when each arrives. (Not quite all of them
	// need land there: a loop descheduled for a while on a loaded
	// machine counts as busy.)
	const n = 100
	for range n {
		loopRoundTrip(t, dialLoop(t, addr), "light")
	}
	if st := lp.Stats(); st.Conns != n || st.ConnsPerLoop[0] < n*3/4 {
		t.Errorf("after %d connections one by one: Stats() = %+v, want at least %d on the first loop", n, st, n*3/4)
	}
	before := lp.Stats().ConnsPerLoop
	first := dialLoop(t, addr)
	loopRoundTrip(t, first, "which loop?")
	busy := 0
	if lp.Stats().ConnsPerLoop[1] > before[1] {
		busy = 1
	}
	if _, err := first.Write([]byte("S")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, spinning, "the long request")
	before = lp.Stats().ConnsPerLoop
	const m = 10
	for range m {
		loopRoundTrip(t, dialLoop(t, addr), "while busy")
	}
	after := lp.Stats().ConnsPerLoop
	if got := after[1-busy] - before[1-busy]; got < m*7/10 {
		t.Errorf("while loop %d was busy, %d of %d new connections went to the other loop (ConnsPerLoop %v, then %v), want at least %d",
			busy, got, m, before, after, m*7/10)
	}
	if _, err := io.ReadFull(first, make([]byte, 1)); err != nil {
		t.Errorf("the long request's answer: %v", err)
	}
}

// SpinWait: a loop that has served events polls for more for that long
// before it sleeps, and an idle loop does not poll; without SpinWait a
// served request costs one epoll_wait.
func TestLoopSpinWait(t *testing.T) {
	checkLeaks(t)
	// Windows in which the count of epoll_wait calls (every loop of the
	// process) is read; other tests' loops add a few at most.
	count := func(d time.Duration) uint64 {
		w0 := loopWaits()
		time.Sleep(d) // a measurement window
		return loopWaits() - w0
	}
	c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: loopEcho(nil), Loops: 1, SpinWait: 50 * time.Millisecond}))
	loopRoundTrip(t, c, "spin")
	if n := count(20 * time.Millisecond); n < 100 {
		t.Errorf("%d epoll_wait calls in the 20 ms after a request with SpinWait 50 ms, want the loop polling (100 or more)", n)
	}
	// 50 ms after the request the spin has ended, and nothing comes.
	count(40 * time.Millisecond)
	if n := count(100 * time.Millisecond); n > 20 {
		t.Errorf("%d epoll_wait calls in 100 ms of an idle loop with SpinWait, want it asleep", n)
	}
	c = dialLoop(t, serveLoop(t, &netcore.Loop{Handler: loopEcho(nil), Loops: 1}))
	loopRoundTrip(t, c, "sleep")
	if n := count(100 * time.Millisecond); n > 20 {
		t.Errorf("%d epoll_wait calls in 100 ms after a request without SpinWait, want the loop asleep", n)
	}
}

// SpinWait never delays a timer: a loop polling for events still wakes
// for the first timer due. With a spin of an hour, a timer that had to
// wait for the spin's end would never answer within the connection's
// deadline.
func TestLoopSpinWaitKeepsTimers(t *testing.T) {
	checkLeaks(t)
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		c.Next(-1)
		c.AfterFunc(5*time.Millisecond, func(c *netcore.LoopConn) { c.Write([]byte("T")) })
	}}
	c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: h, Loops: 1, SpinWait: time.Hour}))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Errorf("waiting for AfterFunc(5ms)'s reply with SpinWait 1h: %v", err)
	}
}

// With ReusePort, a connection gets the listener's options whichever
// socket of the group accepts it: the extra sockets take the listener's
// device binding, keep-alive and buffer sizes.
func TestLoopReusePortSiblingsTakeOptions(t *testing.T) {
	checkLeaks(t)
	lc := netcore.ListenConfig{ReusePort: true, KeepAlive: -1, Device: "lo",
		Control: sockoptControl(sockopt{unix.SOL_SOCKET, unix.SO_RCVBUF, 96 << 10})}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot bind to device lo here: %v", err)
	}
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]int
	rc.Control(func(fd uintptr) { want = rawOptions(t, int(fd)) })
	lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 2, ReusePort: true, Logger: quietLogger()}
	addr := serveLoopOn(t, lp, l)
	var clients []*netcore.Conn
	for range 40 {
		c := dialLoop(t, addr)
		loopRoundTrip(t, c, "x")
		clients = append(clients, c)
	}
	if st := lp.Stats(); st.ConnsPerLoop[0] == 0 || st.ConnsPerLoop[1] == 0 {
		t.Fatalf("ConnsPerLoop = %v: both sockets of the group should have accepted", st.ConnsPerLoop)
	}
	// The server's end of each connection is a descriptor of this
	// process: the socket whose peer is the client's local address.
	for i, c := range clients {
		got := serverSideOptions(t, c.LocalSockaddr())
		for _, k := range []string{"SO_KEEPALIVE", "SO_RCVBUF", "SO_BINDTODEVICE"} {
			if got[k] != want[k] {
				t.Errorf("connection %d: %s = %d, the listener's is %d", i, k, got[k], want[k])
			}
		}
	}
}

// serverSideOptions finds, among this process's descriptors, the socket
// whose peer is peer, and reads its options.
func serverSideOptions(t *testing.T, peer netcore.Sockaddr) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := unix.Getpeername(fd)
		if err != nil {
			continue
		}
		if p, ok := sa.(*unix.SockaddrInet4); ok && p.Port == int(peer.Port()) && netip.AddrFrom4(p.Addr) == peer.Addr() {
			return rawOptions(t, fd)
		}
	}
	t.Fatalf("no socket of this process has the peer %s", peer)
	return nil
}

// rawOptions reads the options the ReusePort test compares.
func rawOptions(t *testing.T, fd int) map[string]int {
	t.Helper()
	m := map[string]int{}
	for name, o := range map[string][2]int{
		"SO_KEEPALIVE": {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
		"SO_RCVBUF":    {unix.SOL_SOCKET, unix.SO_RCVBUF},
	} {
		v, err := unix.GetsockoptInt(fd, o[0], o[1])
		if err != nil {
			t.Errorf("getsockopt %s: %v", name, err)
		}
		m[name] = v
	}
	dev, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	if err != nil {
		t.Errorf("getsockopt SO_BINDTODEVICE: %v", err)
	}
	m["SO_BINDTODEVICE"] = len(dev)
	return m
}

// A back-off (accept4 failing for lack of memory) takes a loop's listener
// registration out and puts it back at the end of the listener's wait
// queue; the later loops register again behind it, so the kernel still
// wakes the first loop for a new connection and no hand-off through
// another loop's eventfd is needed.
func TestLoopAcceptOrderAfterBackOff(t *testing.T) {
	checkLeaks(t)
	lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 2}
	addr := serveLoop(t, lp)
	handOffs := func(n int) uint64 {
		w0 := sys.Count(sys.OpWake)
		for range n {
			loopRoundTrip(t, dialLoop(t, addr), "x")
		}
		return sys.Count(sys.OpWake) - w0
	}
	before := handOffs(30)
	var once atomic.Bool
	setFilter(t, func(c *sys.Call) error {
		if c.Op == sys.OpAccept && once.CompareAndSwap(false, true) {
			return unix.ENOMEM
		}
		return nil
	})
	loopRoundTrip(t, dialLoop(t, addr), "after a back-off")
	after := handOffs(30)
	if after > before+10 {
		t.Errorf("eventfd writes for 30 connections one after another: %d before a back-off, %d after: the first loop is no longer woken first", before, after)
	}
}
