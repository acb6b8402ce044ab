package netcore_test

import (
	"errors"
	"io"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// readEOFWithin reads from c until EOF, failing if it does not come within d.
func readEOFWithin(t *testing.T, c *netcore.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("reading until the server's EOF: %v (the server did not close within %v)", err, d)
	}
}

// After the peer's half-close, with no Hold, a function queued with Execute
// (or an empty Send) that writes nothing must not keep the connection open:
// OnEOF's contract is "closed once its output is flushed".
func TestLoopEOFWithQuietExecuteStillCloses(t *testing.T) {
	closed := make(chan error, 1)
	h := &loopFuncs{
		data:   func(c *netcore.LoopConn) { c.Discard(-1) },
		eof:    func(c *netcore.LoopConn) { c.Execute(func(*netcore.LoopConn) {}) },
		closed: closed,
	}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	c := dialLoop(t, addr)
	c.Write([]byte("x"))
	c.CloseWrite()
	readEOFWithin(t, c, 2*time.Second)
	if err := testkit.WaitFor(t, closed, "OnClose"); !errors.Is(err, io.EOF) {
		t.Fatalf("OnClose(%v), want io.EOF", err)
	}
}

// The same with an empty Send from OnEOF.
func TestLoopEOFWithEmptySendStillCloses(t *testing.T) {
	h := &loopFuncs{
		data: func(c *netcore.LoopConn) { c.Discard(-1) },
		eof:  func(c *netcore.LoopConn) { c.Send(nil) },
	}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	c := dialLoop(t, addr)
	c.Write([]byte("x"))
	c.CloseWrite()
	readEOFWithin(t, c, 2*time.Second)
}

// "Close, Loop.Close and limits still close a held connection": also after
// the peer's half-close.
func TestLoopCloseAfterEOFWhileHeld(t *testing.T) {
	closed := make(chan error, 1)
	eof := make(chan *netcore.LoopConn, 1)
	h := &loopFuncs{
		data:   func(c *netcore.LoopConn) { c.Discard(-1); c.Hold() }, // work in flight, never released here
		eof:    func(c *netcore.LoopConn) { eof <- c },
		closed: closed,
	}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	c := dialLoop(t, addr)
	c.Write([]byte("x"))
	c.CloseWrite()
	sc := testkit.WaitFor(t, eof, "OnEOF")
	defer sc.Release()
	sc.Close()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("OnClose after Close = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close on a held connection after EOF did not close it within 2s")
	}
	readEOFWithin(t, c, 2*time.Second)
}

// Loop.Close ("stops the Loop at once") must not wait LingerTimeout for a
// connection whose Close was taken in the same loop iteration.
func TestLoopCloseDoesNotWaitForLinger(t *testing.T) {
	opened := make(chan *netcore.LoopConn, 2)
	h := &loopFuncs{
		open: func(c *netcore.LoopConn) { opened <- c },
		data: func(c *netcore.LoopConn) {
			c.Discard(-1)
			time.Sleep(300 * time.Millisecond) // keeps the loop busy while the test posts
		},
	}
	lp := &netcore.Loop{Handler: h, Loops: 1, LingerTimeout: 5 * time.Second}
	addr := serveLoop(t, lp)
	b := dialLoop(t, addr)
	sb := testkit.WaitFor(t, opened, "OnOpen of b")
	a := dialLoop(t, addr)
	testkit.WaitFor(t, opened, "OnOpen of a")
	_ = b
	a.Write([]byte("block"))
	time.Sleep(50 * time.Millisecond) // the loop sleeps in a's OnData
	sb.Close()
	start := time.Now()
	lp.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Loop.Close took %v (LingerTimeout is 5s)", d)
	}
}

// AfterFunc with a huge duration must not run at once.
func TestLoopAfterFuncHugeDuration(t *testing.T) {
	ran := make(chan struct{}, 1)
	h := &loopFuncs{
		open: func(c *netcore.LoopConn) {
			c.AfterFunc(time.Duration(math.MaxInt64), func(*netcore.LoopConn) { ran <- struct{}{} })
		},
	}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	dialLoop(t, addr)
	select {
	case <-ran:
		t.Fatal("AfterFunc(MaxInt64) ran at once")
	case <-time.After(300 * time.Millisecond):
	}
}

// IdleTimeout of math.MaxInt64 must not close connections at once.
func TestLoopIdleTimeoutHuge(t *testing.T) {
	closed := make(chan error, 1)
	addr := serveLoop(t, &netcore.Loop{Handler: loopEcho(closed), Loops: 1, IdleTimeout: time.Duration(math.MaxInt64)})
	c := dialLoop(t, addr)
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-closed:
		t.Fatalf("closed at once: %v", err)
	default:
	}
	loopRoundTrip(t, c, "hello")
}

// A loop whose epoll_wait fails closes the whole Loop (logged): every
// Serve returns ErrLoopClosed, and a later Serve on it returns
// ErrLoopClosed at once instead of hanging on a loop that is gone.
func TestLoopServeAfterEpollWaitFailure(t *testing.T) {
	epollOnly(t, "epoll_wait failure")
	var once atomic.Bool
	setFilter(t, func(c *sys.Call) error {
		if c.Op == sys.OpEpollWait && once.CompareAndSwap(false, true) {
			return unix.EBADF
		}
		return nil
	})
	lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 1, Logger: quietLogger()}
	served := make(chan error, 2)
	go func() { served <- lp.Serve(testkit.Listen(t, "tcp4", "127.0.0.1:0")) }()
	if err := testkit.WaitFor(t, served, "first Serve's return after the epoll_wait failure"); !errors.Is(err, netcore.ErrLoopClosed) {
		t.Errorf("Serve after epoll_wait failed = %v, want ErrLoopClosed", err)
	}
	go func() { served <- lp.Serve(testkit.Listen(t, "tcp4", "127.0.0.1:0")) }()
	if err := testkit.WaitFor(t, served, "a later Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
		t.Errorf("a later Serve = %v, want ErrLoopClosed", err)
	}
}

// A function queued before a Write that runs inside it and calls CloseWrite
// must make that Write fail: its bytes would follow the half-close.
func TestLoopWriteAfterCloseWriteInsideWrite(t *testing.T) {
	werr := make(chan error, 1)
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		c.Discard(-1)
		c.Execute(func(c *netcore.LoopConn) { c.CloseWrite() })
		_, err := c.Write([]byte("after"))
		werr <- err
	}}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	c := dialLoop(t, addr)
	c.Write([]byte("x"))
	if err := testkit.WaitFor(t, werr, "OnData"); !errors.Is(err, net.ErrClosed) {
		b, _ := io.ReadAll(c)
		t.Fatalf("Write after CloseWrite (run inside it) = %v, want net.ErrClosed; the peer read %q before EOF", err, b)
	}
}
