package netcore_test

// Fault injection into the event loop through the syscall seam. Filters are
// process-wide: none of these tests runs in parallel.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// EINTR from epoll_wait, spurious EAGAIN from read and write, and short
// reads and writes, all at random, on every descriptor: the echo of every
// client is still exact.
func TestLoopFaultsEINTRAndShortIO(t *testing.T) {
	epollOnly(t, "EINTR from epoll_wait and short read(2)/write(2)")
	checkLeaks(t)
	addr := serveLoop(t, &netcore.Loop{Handler: loopEcho(nil), Loops: 2})
	// The clients use the runtime poller, which is edge-triggered: a
	// spurious EAGAIN there would wait for an edge that never comes. So
	// EAGAIN goes to the server's descriptors only.
	clients := make([]*netcore.Conn, 4)
	isClient := make(map[int]bool)
	for i := range clients {
		clients[i] = dialLoop(t, addr)
		isClient[fdOf(t, clients[i])] = true
	}
	var eintr, eagain, short atomic.Int64
	setFilter(t, func(c *sys.Call) error {
		r := rand.IntN(4)
		switch c.Op {
		case sys.OpEpollWait:
			if r == 0 {
				eintr.Add(1)
				return unix.EINTR
			}
		case sys.OpRead, sys.OpWrite, sys.OpWritev:
			switch {
			case r == 0 && c.Len > 0:
				c.Len = 1 + rand.IntN(c.Len)
				short.Add(1)
			case r == 1 && !isClient[c.FD]:
				eagain.Add(1)
				return unix.EAGAIN
			case r == 2:
				return unix.EINTR
			}
		}
		return nil
	})
	done := make(chan error, 4)
	for _, c := range clients {
		go func() { done <- echoErr(c, 256<<10) }()
	}
	for range 4 {
		if err := testkit.WaitFor(t, done, "a client"); err != nil {
			t.Error(err)
		}
	}
	if eintr.Load() == 0 || eagain.Load() == 0 || short.Load() == 0 {
		t.Errorf("faults injected: %d EINTR from epoll_wait, %d EAGAIN, %d short transfers; want some of each",
			eintr.Load(), eagain.Load(), short.Load())
	}
}

// One EMFILE: the loop frees its reserve descriptor, accepts the waiting
// connection and closes it at once (the client sees the close instead of
// hanging in the backlog), logs, and serves the next client.
func TestLoopEMFILEReserveDescriptor(t *testing.T) {
	checkLeaks(t)
	var logs testkit.SyncBuffer
	lp := &netcore.Loop{Handler: loopEcho(nil), Logger: logTo(&logs)}
	addr := serveLoop(t, lp)
	var once atomic.Bool
	setFilter(t, func(c *sys.Call) error {
		if c.Op == sys.OpAccept && !once.Swap(true) {
			return unix.EMFILE
		}
		return nil
	})
	shed := dialLoop(t, addr)
	if n, err := shed.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, errConnReset)) {
		t.Fatalf("the shed connection's Read = %d, %v; want EOF or a reset", n, err)
	}
	if !strings.Contains(logs.String(), "reserve descriptor") || !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("the log does not report the shed connection:\n%s", logs.String())
	}
	loopRoundTrip(t, dialLoop(t, addr), "served again")
	if st := lp.Stats(); st.AcceptLimits != 1 {
		t.Errorf("Stats().AcceptLimits = %d, want 1", st.AcceptLimits)
	}
}

// EMFILE that does not pass (the reserve trick fails too): the loop stops
// watching the listener and backs off instead of spinning, and serves
// again once accept4 works.
func TestLoopEMFILEBackOff(t *testing.T) {
	checkLeaks(t)
	var logs testkit.SyncBuffer
	addr := serveLoop(t, &netcore.Loop{Handler: loopEcho(nil), Logger: logTo(&logs)})
	var emfile atomic.Bool
	var accepts atomic.Int64
	emfile.Store(true)
	setFilter(t, func(c *sys.Call) error {
		if c.Op == sys.OpAccept {
			accepts.Add(1)
			if emfile.Load() {
				return unix.EMFILE
			}
		}
		return nil
	})
	c := dialLoop(t, addr)
	// A measurement window: the back-off (5 ms doubling, two accept4
	// calls per attempt) allows about 14 calls in 500 ms; a loop that
	// spins makes thousands.
	<-time.After(500 * time.Millisecond)
	if n := accepts.Load(); n < 2 || n > 40 {
		t.Errorf("%d accept4 calls in 500 ms under EMFILE, want a backed-off handful (2 to 40)", n)
	}
	if !strings.Contains(logs.String(), "backing off") {
		t.Errorf("the log does not report the back-off:\n%s", logs.String())
	}
	emfile.Store(false)
	loopRoundTrip(t, c, "still here")
}

// Setup failures (epoll_create1, eventfd2, epoll_ctl) leave no descriptor
// behind: Serve reports the first two, the third closes only the new
// connection.
func TestLoopSetupFailures(t *testing.T) {
	epollOnly(t, "epoll_create1, eventfd2 and epoll_ctl failures")
	checkLeaks(t)
	for _, op := range []sys.Op{sys.OpEpollCreate, sys.OpEventfd} {
		restore := sys.SetFilter(func(c *sys.Call) error {
			if c.Op == op {
				return unix.ENFILE
			}
			return nil
		})
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		err := (&netcore.Loop{Handler: loopEcho(nil), Loops: 2}).Serve(l)
		restore()
		if !errors.Is(err, unix.ENFILE) || !strings.Contains(err.Error(), op.String()) {
			t.Errorf("Serve with %v failing = %v, want ENFILE naming %v", op, err, op)
		}
	}
	var logs testkit.SyncBuffer
	addr := serveLoop(t, &netcore.Loop{Handler: loopEcho(nil), Loops: 1, Logger: logTo(&logs)})
	loopRoundTrip(t, dialLoop(t, addr), "up")
	var fail atomic.Bool
	fail.Store(true)
	setFilter(t, func(c *sys.Call) error {
		if c.Op == sys.OpEpollCtl && c.Name == unix.EPOLL_CTL_ADD && fail.Swap(false) {
			return unix.ENOMEM
		}
		return nil
	})
	dropped := dialLoop(t, addr)
	if n, err := dropped.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, errConnReset)) {
		t.Fatalf("Read on the dropped connection = %d, %v; want EOF", n, err)
	}
	if !strings.Contains(logs.String(), "cannot watch") {
		t.Errorf("the log does not report the failure:\n%s", logs.String())
	}
	loopRoundTrip(t, dialLoop(t, addr), "still up")
}

// echoErr is testkit.CheckEcho for a goroutine: it returns what went wrong.
func echoErr(c *netcore.Conn, size int) error {
	want := testkit.RandomBytes(size)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("writing %d bytes: %w", size, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo of %d bytes: got %d bytes, different", size, len(got))
	}
	return nil
}
