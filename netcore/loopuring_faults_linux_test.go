package netcore_test

// Fault injection into the io_uring backend (Loop.Backend =
// BackendIOUring), through its knobs (netcore.SetURingFaults): short sends
// and receives, errnos in the place of sends and receives, a tiny
// submission queue, a kernel without the multishot byte limit; and
// io_uring made unusable through the syscall seam. The knobs and the
// seam's filter are process-wide: none of these tests runs in parallel.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/internal/uring"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// needURing skips t where io_uring cannot be used, quoting why.
func needURing(t *testing.T) {
	t.Helper()
	if err := uring.Available(); err != nil {
		t.Skipf("io_uring cannot be used here, so neither can Loop.Backend io_uring: %v", err)
	}
}

var nopInject struct {
	once sync.Once
	err  error
}

// needNopInject skips t unless io_uring can be used and the kernel
// completes a no-op with the result it is given (IORING_NOP_INJECT_RESULT,
// 6.10), which URingFaults.Fault relies on. The probe runs once.
func needNopInject(t *testing.T) {
	t.Helper()
	needURing(t)
	nopInject.once.Do(func() { nopInject.err = probeNopInject() })
	if nopInject.err != nil {
		t.Skipf("the kernel cannot complete a no-op with an injected result (IORING_NOP_INJECT_RESULT, Linux 6.10), which the fault injection needs: %v", nopInject.err)
	}
}

// probeNopInject queues a no-op injected with -ENOBUFS and checks that it
// completes with -ENOBUFS.
func probeNopInject() error {
	runtime.LockOSThread() // the ring is single-issuer
	defer runtime.UnlockOSThread()
	r, err := uring.New(4, uring.Options{})
	if err != nil {
		return err
	}
	defer r.Close()
	const ud = 42
	if !r.PrepNopResult(-int32(unix.ENOBUFS), ud) {
		return errors.New("no room in a fresh submission queue")
	}
	if _, err := r.SubmitAndWait(1, testkit.Timeout); err != nil {
		return err
	}
	n, res := 0, int32(0)
	r.ForEachCQE(func(u uint64, r int32, _ uint32) {
		if u == ud {
			n, res = n+1, r
		}
	})
	switch {
	case n == 0:
		return fmt.Errorf("no completion within %v", testkit.Timeout)
	case res != -int32(unix.ENOBUFS):
		return fmt.Errorf("a no-op injected with -ENOBUFS completed with %d", res)
	}
	return nil
}

// setURingFaults sets the io_uring knobs until the test ends. Call it
// before the Loop starts (before serveLoop): its cleanup then runs after
// the Loop's Shutdown, so no loop reads a knob as it is restored.
func setURingFaults(t *testing.T, f netcore.URingFaults) {
	t.Helper()
	t.Cleanup(netcore.SetURingFaults(f))
}

// countArms is a URingFaults.Fault that injects nothing and counts the
// requests of kind queued.
func countArms(kind uint8, n *atomic.Int64) func(uint8) (int32, bool) {
	return func(k uint8) (int32, bool) {
		if k == kind {
			n.Add(1)
		}
		return 0, false
	}
}

// uringLoop is a Loop of two event loops on io_uring.
func uringLoop(h netcore.LoopHandler) *netcore.Loop {
	return &netcore.Loop{Handler: h, Loops: 2, Backend: netcore.BackendIOUring}
}

// A closeEvent is a connection's OnClose: its client's address and the
// reason.
type closeEvent struct {
	remote string
	err    error
}

// closeRecorder is a LoopHandler that reports every OnClose on closes.
type closeRecorder struct {
	*loopFuncs
	closes chan closeEvent
}

func newCloseRecorder(h *loopFuncs) *closeRecorder {
	return &closeRecorder{loopFuncs: h, closes: make(chan closeEvent, 256)}
}

func (h *closeRecorder) OnClose(c *netcore.LoopConn, err error) {
	h.closes <- closeEvent{c.RemoteAddr().String(), err}
}

// noneClosed fails t if a connection has been closed so far.
func (h *closeRecorder) noneClosed(t *testing.T) {
	t.Helper()
	for {
		select {
		case e := <-h.closes:
			t.Errorf("connection from %s closed while its client was still using it: %v", e.remote, e.err)
		default:
			return
		}
	}
}

// echoBoth writes size random bytes on c while reading back their echo,
// which must be exact; it returns what went wrong.
func echoBoth(c net.Conn, size int) error {
	want := testkit.RandomBytes(size)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		werr <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("%s: reading the echo of %d bytes: %w", c.LocalAddr(), size, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("%s: writing %d bytes: %w", c.LocalAddr(), size, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: the echo of %d bytes differs", c.LocalAddr(), size)
	}
	return nil
}

// echoConcurrently has n clients of tr each echo size random bytes
// through addr, all at once; it fails t for each echo that is not exact.
func echoConcurrently(t *testing.T, tr transport, addr string, n, size int) {
	t.Helper()
	conns := make([]clientConn, n)
	for i := range conns {
		conns[i] = tr.dial(t, addr)
	}
	errs := make(chan error, n)
	for _, c := range conns {
		go func() { errs <- echoBoth(c, size) }()
	}
	for range n {
		if err := testkit.WaitFor(t, errs, "a client's echo"); err != nil {
			t.Error(err)
		}
	}
}

// Short sends: each send offers at most SendMax bytes (1, 7, 1000), so
// every reply goes out in many sends, each going on from the completion
// of the last. Three clients at once each have 16 KiB to 1 MiB echoed,
// pipelined (written while the echo comes back), over TCP and TLS: every
// echo is byte-exact, no connection is closed, nothing leaks, and the
// sends really were short (at least the bytes over SendMax of them).
func TestURingShortSends(t *testing.T) {
	needURing(t)
	for _, c := range []struct{ max, size int }{{1, 16 << 10}, {7, 128 << 10}, {1000, 1 << 20}} {
		t.Run(fmt.Sprintf("SendMax=%d", c.max), func(t *testing.T) {
			forTransports(t, func(t *testing.T, tr transport) {
				checkLeaks(t)
				var sends atomic.Int64
				setURingFaults(t, netcore.URingFaults{SendMax: c.max, Fault: countArms(netcore.URingSend, &sends)})
				h := newCloseRecorder(loopEcho(nil))
				addr := tr.serveLoop(t, uringLoop(h))
				const clients = 3
				echoConcurrently(t, tr, addr, clients, c.size)
				h.noneClosed(t)
				if min := int64(clients * c.size / c.max); sends.Load() < min {
					t.Errorf("%d sends for %d bytes echoed at most %d bytes a send; want at least %d", sends.Load(), clients*c.size, c.max, min)
				}
			})
		})
	}
}

// Short receives: each receive is a single one of at most RecvMax bytes
// (1, 3, 100), so a connection arms thousands of them (more than the 4096
// generations user_data tells apart). A handler that consumes its input
// only in whole blocks of MaxInput bytes has its buffer fill up to
// MaxInput: over TCP exactly, never past it (a receive takes no more than
// the room left); over TLS past it by at most one record, as the README
// says (a record is decrypted whole). Three clients at once, each first
// echoing one block (so that the burst behind a TLS handshake, bounded
// otherwise, is behind it), then a pipelined echo: all byte-exact, no
// connection closed, the Loop's InputBytes within each connection's
// bound, nothing leaked, and the receives really were short.
func TestURingShortReceives(t *testing.T) {
	needURing(t)
	const maxInput = 4 << 10
	for _, c := range []struct{ max, size int }{{1, 2 * maxInput}, {3, 4 * maxInput}, {100, 64 * maxInput}} {
		t.Run(fmt.Sprintf("RecvMax=%d", c.max), func(t *testing.T) {
			forTransports(t, func(t *testing.T, tr transport) {
				checkLeaks(t)
				var recvs atomic.Int64
				setURingFaults(t, netcore.URingFaults{RecvMax: c.max, Fault: countArms(netcore.URingRecv, &recvs)})
				var most atomic.Int64 // the most input a handler found buffered
				echoBlocks := func(lc *netcore.LoopConn) {
					n := lc.Buffered()
					if int64(n) > most.Load() {
						most.Store(int64(n)) // a Loop of one event loop: one writer
					}
					lc.Write(lc.Next(n / maxInput * maxInput))
				}
				h := newCloseRecorder(&loopFuncs{data: echoBlocks})
				lp := uringLoop(h)
				lp.Loops, lp.MaxInput = 1, maxInput
				addr := tr.serveLoop(t, lp)
				const clients = 3
				conns := make([]clientConn, clients)
				for i := range conns {
					conns[i] = tr.dial(t, addr)
					if err := echoBoth(conns[i], maxInput); err != nil {
						t.Fatal(err)
					}
				}
				bound := maxInput
				if tr.version != 0 {
					bound += 16 << 10 // one record
				}
				// The Loop's InputBytes (buffer memory, in slabs of
				// powers of two), sampled while the clients run.
				stop, sampled := make(chan struct{}), make(chan int64, 1)
				go func() {
					peak := int64(0)
					for {
						peak = max(peak, lp.Stats().InputBytes)
						select {
						case <-stop:
							sampled <- peak
							return
						case <-time.After(time.Millisecond): // a sampling period, not synchronisation
						}
					}
				}()
				errs := make(chan error, clients)
				for _, cc := range conns {
					go func() { errs <- echoBoth(cc, c.size) }()
				}
				for range clients {
					if err := testkit.WaitFor(t, errs, "a client's echo"); err != nil {
						t.Error(err)
					}
				}
				close(stop)
				peak := testkit.WaitFor(t, sampled, "the sampler")
				h.noneClosed(t)
				t.Logf("at most %d bytes buffered (MaxInput %d); InputBytes at most %d; %d receives", most.Load(), maxInput, peak, recvs.Load())
				switch {
				case most.Load() > int64(bound):
					t.Errorf("a handler found %d bytes buffered, MaxInput %d: more than %d", most.Load(), maxInput, bound)
				case most.Load() < maxInput:
					t.Errorf("no handler found its input buffer full (at most %d bytes, MaxInput %d): the bound was not reached", most.Load(), maxInput)
				}
				if slabs := int64(clients * slabFor(bound)); peak > slabs {
					t.Errorf("Stats().InputBytes reached %d with %d connections: more than their %d bytes each", peak, clients, slabFor(bound))
				}
				if min := int64(clients * (maxInput + c.size) / c.max); recvs.Load() < min {
					t.Errorf("%d receives for %d bytes at most %d bytes each; want at least %d", recvs.Load(), clients*(maxInput+c.size), c.max, min)
				}
			})
		})
	}
}

// slabFor is the size of the buffer memory that holds n bytes: the
// Loop's buffers are power-of-two slabs of 512 bytes or more.
func slabFor(n int) int {
	s := 512
	for s < n {
		s *= 2
	}
	return s
}

// injector is a URingFaults.Fault that replaces every nth request of kind
// by a no-op completing with the next of errnos in turn, and counts what
// it injected, errno by errno.
type injector struct {
	kind   uint8
	nth    int64
	errnos []unix.Errno
	seen   atomic.Int64
	counts []atomic.Int64
}

func newInjector(kind uint8, nth int64, errnos ...unix.Errno) *injector {
	return &injector{kind: kind, nth: nth, errnos: errnos, counts: make([]atomic.Int64, len(errnos))}
}

func (f *injector) fault(kind uint8) (int32, bool) {
	if kind != f.kind {
		return 0, false
	}
	n := f.seen.Add(1)
	if n%f.nth != 0 {
		return 0, false
	}
	i := int(n/f.nth) % len(f.errnos)
	f.counts[i].Add(1)
	return -int32(f.errnos[i]), true
}

// check fails t unless each errno was injected at least once.
func (f *injector) check(t *testing.T) {
	t.Helper()
	var parts []string
	missing := false
	for i, e := range f.errnos {
		parts = append(parts, fmt.Sprintf("%v %d", e, f.counts[i].Load()))
		missing = missing || f.counts[i].Load() == 0
	}
	t.Logf("injected into 1 in %d of %d requests: %s", f.nth, f.seen.Load(), strings.Join(parts, ", "))
	if missing {
		t.Errorf("injected %s; want each at least once", strings.Join(parts, ", "))
	}
}

// -EAGAIN and -EINTR completing every third send: the send is made again.
// Three clients at once each make 30 round trips of up to 64 KiB, then
// have 256 KiB echoed pipelined, over TCP and TLS: all byte-exact, and no
// connection is closed.
func TestURingSendRetryable(t *testing.T) {
	needNopInject(t)
	forTransports(t, func(t *testing.T, tr transport) {
		checkLeaks(t)
		f := newInjector(netcore.URingSend, 3, unix.EAGAIN, unix.EINTR)
		setURingFaults(t, netcore.URingFaults{Fault: f.fault})
		h := newCloseRecorder(loopEcho(nil))
		addr := tr.serveLoop(t, uringLoop(h))
		const clients = 3
		errs := make(chan error, clients)
		for i := range clients {
			c := tr.dial(t, addr)
			go func() {
				for j := range 30 {
					if err := echoBoth(c, 1+(i*7919+j*4099)%(64<<10)); err != nil {
						errs <- err
						return
					}
				}
				errs <- echoBoth(c, 256<<10)
			}()
		}
		for range clients {
			if err := testkit.WaitFor(t, errs, "a client's echoes"); err != nil {
				t.Error(err)
			}
		}
		h.noneClosed(t)
		f.check(t)
	})
}

// -ENOBUFS, -ECANCELED and -EAGAIN ending every second receive: the loop
// arms a new one, so three clients at once each have 512 KiB echoed
// byte-exact, over TCP and TLS, and no connection is closed. With
// multishot receives (each ends by itself after about MaxInput bytes) and
// with single ones (a kernel without the multishot byte limit).
func TestURingRecvRetryable(t *testing.T) {
	needNopInject(t)
	for _, single := range []bool{false, true} {
		name := "multishot"
		if single {
			name = "single"
		}
		t.Run(name, func(t *testing.T) {
			forTransports(t, func(t *testing.T, tr transport) {
				checkLeaks(t)
				f := newInjector(netcore.URingRecv, 2, unix.ENOBUFS, unix.ECANCELED, unix.EAGAIN)
				setURingFaults(t, netcore.URingFaults{Fault: f.fault, NoRecvLimit: single})
				h := newCloseRecorder(loopEcho(nil))
				lp := uringLoop(h)
				lp.MaxInput = 64 << 10 // a multishot receive ends after 48 KiB or more
				addr := tr.serveLoop(t, lp)
				echoConcurrently(t, tr, addr, 3, 512<<10)
				h.noneClosed(t)
				f.check(t)
			})
		})
	}
}

// Whole buffers: on a kernel without incremental buffer consumption each
// receive takes a buffer of its own (1024 of 4 KiB per loop), with
// multishot receives and with single ones. 1 MiB echoed to each of three
// clients at once, over TCP and TLS, and 200 connections' round trips at
// once: every byte echoed, no connection closed, nothing leaked.
func TestURingWholeBuffers(t *testing.T) {
	needURing(t)
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single=%v", single), func(t *testing.T) {
			forTransports(t, func(t *testing.T, tr transport) {
				checkLeaks(t)
				setURingFaults(t, netcore.URingFaults{WholeBuffers: true, NoRecvLimit: single})
				h := newCloseRecorder(loopEcho(nil))
				addr := tr.serveLoop(t, uringLoop(h))
				echoConcurrently(t, tr, addr, 3, 1<<20)
				if tr.version == 0 {
					echoConcurrently(t, tr, addr, 200, 64)
				}
				h.noneClosed(t)
			})
		})
	}
}

// A fatal errno (ECONNRESET) where a send or a receive was: that
// connection alone is closed, its OnClose error is the one the epoll
// backend gives for the same failure of write(2) or read(2) (injected
// through the seam) but for the system call's name (send, recv), its
// client sees the connection end, and the other connections go on.
func TestURingFatalErrno(t *testing.T) {
	needNopInject(t)
	for _, dir := range []string{"send", "receive"} {
		t.Run(dir, func(t *testing.T) {
			var got [2]fatalResult
			for i, b := range []netcore.LoopBackend{netcore.BackendEpoll, netcore.BackendIOUring} {
				t.Run(b.String(), func(t *testing.T) { got[i] = fatalScenario(t, b, dir == "send") })
			}
			ep, ur := got[0], got[1]
			if ep.err == nil || ur.err == nil {
				return // failed above
			}
			var eo, uo *net.OpError
			if !errors.As(ep.err, &eo) || !errors.As(ur.err, &uo) {
				t.Fatalf("OnClose errors %T (epoll) and %T (io_uring), want *net.OpError both", ep.err, ur.err)
			}
			op, epollCall, uringCall := "read", "read", "recv"
			if dir == "send" {
				op, epollCall, uringCall = "write", "write", "send"
			}
			for _, r := range []struct {
				name string
				o    *net.OpError
				res  fatalResult
				call string
			}{{"epoll", eo, ep, epollCall}, {"io_uring", uo, ur, uringCall}} {
				var se *os.SyscallError
				if r.o.Op != op || r.o.Net != "tcp" || r.o.Source.String() != r.res.server || r.o.Addr.String() != r.res.client ||
					!errors.As(r.o.Err, &se) || se.Syscall != r.call || se.Err != syscall.ECONNRESET {
					t.Errorf("%s: OnClose got %#v (%v); want Op %q, Net tcp, Source %s, Addr %s, Err %s: ECONNRESET",
						r.name, r.o, r.o, op, r.res.server, r.res.client, r.call)
				}
			}
			// The same text, once the addresses and the system call's
			// name are set aside.
			norm := func(r fatalResult, call string) string {
				return strings.NewReplacer(r.server, "SERVER", r.client, "CLIENT", " "+call+": ", " CALL: ").Replace(r.err.Error())
			}
			t.Logf("OnClose: epoll %q; io_uring %q", ep.err, ur.err)
			if e, u := norm(ep, epollCall), norm(ur, uringCall); e != u {
				t.Errorf("OnClose's error text: epoll %q, io_uring %q; want the same but for addresses and the call", ep.err, ur.err)
			}
		})
	}
}

// fatalResult is how a fatal errno ended a connection: OnClose's error,
// and the addresses of the server and of the client.
type fatalResult struct {
	err            error
	server, client string
}

// fatalScenario injects ECONNRESET into one send (send) or receive of one
// connection (the victim) of a Loop on backend, with three other
// connections open, and checks that the victim alone is closed.
func fatalScenario(t *testing.T, backend netcore.LoopBackend, send bool) fatalResult {
	checkLeaks(t)
	var armed atomic.Bool
	var injected atomic.Int64
	var victimPort atomic.Int64
	if backend == netcore.BackendIOUring {
		// The hook does not know the connection: it is armed while
		// only the victim queues requests of the kind (the others
		// are idle, each with its receive armed).
		kind := netcore.URingRecv
		if send {
			kind = netcore.URingSend
		}
		setURingFaults(t, netcore.URingFaults{Fault: func(k uint8) (int32, bool) {
			if k == kind && armed.CompareAndSwap(true, false) {
				injected.Add(1)
				return -int32(unix.ECONNRESET), true
			}
			return 0, false
		}})
	} else {
		op := sys.OpRead
		if send {
			op = sys.OpWrite
		}
		setFilter(t, func(c *sys.Call) error {
			if c.Op != op || !armed.Load() {
				return nil
			}
			// The victim's socket on the server's side: its peer
			// is the victim's client.
			if sa, err := unix.Getpeername(c.FD); err == nil {
				if in, ok := sa.(*unix.SockaddrInet4); ok && int64(in.Port) == victimPort.Load() && armed.CompareAndSwap(true, false) {
					injected.Add(1)
					return unix.ECONNRESET
				}
			}
			return nil
		})
	}
	h := newCloseRecorder(loopEcho(nil))
	lp := &netcore.Loop{Handler: h, Loops: 2, Backend: backend}
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	addr := serveLoopOn(t, lp, l)
	others := make([]*netcore.Conn, 3)
	for i := range others {
		others[i] = dialLoop(t, addr)
		loopRoundTrip(t, others[i], fmt.Sprintf("before %d", i))
	}
	var victim *netcore.Conn
	if backend == netcore.BackendIOUring && !send {
		// A receive is queued as the connection opens: that one.
		armed.Store(true)
		victim = dialLoop(t, addr)
	} else {
		victim = dialLoop(t, addr)
		if send {
			loopRoundTrip(t, victim, "opened")
		}
		victimPort.Store(int64(victim.LocalAddr().(*net.TCPAddr).Port))
		armed.Store(true)
	}
	victim.Write([]byte("the last words")) // may fail: the server may have closed already
	var closed closeEvent
	select {
	case closed = <-h.closes:
	case <-time.After(testkit.Timeout):
		t.Fatalf("no connection closed within %v of the injected ECONNRESET (injected %d)", testkit.Timeout, injected.Load())
	}
	if n := injected.Load(); n != 1 {
		t.Errorf("injected ECONNRESET %d times, want once", n)
	}
	if closed.remote != victim.LocalAddr().String() {
		t.Errorf("the connection from %s was closed (%v); the errno was the one from %s", closed.remote, closed.err, victim.LocalAddr())
	}
	if !errors.Is(closed.err, syscall.ECONNRESET) {
		t.Errorf("OnClose(%s) = %v, want ECONNRESET", closed.remote, closed.err)
	}
	// The victim's client sees its connection end (maybe after the echo
	// of what it sent).
	if _, err := io.ReadAll(victim); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the victim's client read %v, want EOF or ECONNRESET", err)
	}
	for i, c := range others {
		loopRoundTrip(t, c, fmt.Sprintf("after %d", i))
	}
	h.noneClosed(t)
	return fatalResult{closed.err, l.Addr().String(), victim.LocalAddr().String()}
}

// A submission queue of one entry (and of two): it is full at every
// second request, so the loops submit what is queued and go on. Fifty
// clients at once make round trips of various sizes, all byte-exact; then
// Shutdown, with every connection open and idle, returns nil and every
// client sees its connection end; nothing leaks. The queue really was
// full: io_uring_enter was called to submit a full queue without waiting.
func TestURingFullSubmissionQueue(t *testing.T) {
	needURing(t)
	for _, entries := range []uint32{1, 2} {
		t.Run(fmt.Sprintf("entries=%d", entries), func(t *testing.T) {
			checkLeaks(t)
			setURingFaults(t, netcore.URingFaults{Entries: entries})
			var fullSubmits, counting atomic.Int64
			setFilter(t, func(c *sys.Call) error {
				// A submission without a wait (min_complete 0) of a
				// full queue: prep's. (Cancels, also submitted at
				// once, are not made while the clients run.)
				if c.Op == sys.OpIoUringEnter && c.Level == 0 && c.Len >= int(entries) && counting.Load() == 1 {
					fullSubmits.Add(1)
				}
				return nil
			})
			lp := uringLoop(loopEcho(nil))
			served := make(chan error, 1)
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			lp.Logger = quietLogger()
			go func() { served <- lp.Serve(l) }()
			counting.Store(1)
			const clients = 50
			conns := make([]*netcore.Conn, clients)
			for i := range conns {
				conns[i] = dialLoop(t, l.Addr().String())
			}
			errs := make(chan error, clients)
			for i, c := range conns {
				go func() {
					for j := range 20 {
						if err := echoBoth(c, 1+(i*131+j*977)%20000); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range clients {
				if err := testkit.WaitFor(t, errs, "a client's round trips"); err != nil {
					t.Error(err)
				}
			}
			counting.Store(0)
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
			defer cancel()
			if err := lp.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
			if err := testkit.WaitFor(t, served, "Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
				t.Errorf("Serve = %v, want ErrLoopClosed", err)
			}
			for _, c := range conns {
				if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, errConnReset)) {
					t.Errorf("after Shutdown, a client's Read = %d, %v; want EOF", n, err)
				}
			}
			if fullSubmits.Load() == 0 {
				t.Errorf("no io_uring_enter submitted a full queue of %d without waiting: the queue was never full", entries)
			}
			t.Logf("full submission queue submitted %d times", fullSubmits.Load())
		})
	}
}

// Back-pressure (TestLoopBackPressure's scenario) on io_uring as on a
// kernel that cannot end a multishot receive at a byte count, where every
// receive is a single one of at most the room left: the server's input
// and output stay within MaxInput and MaxOutput while a client sends
// without reading, and every byte comes back once it reads.
func TestURingBackPressureNoRecvLimit(t *testing.T) {
	needURing(t)
	forTransports(t, func(t *testing.T, tr transport) {
		var recvs atomic.Int64
		setURingFaults(t, netcore.URingFaults{NoRecvLimit: true, Fault: countArms(netcore.URingRecv, &recvs)})
		testLoopBackPressure(t, tr, netcore.BackendIOUring)
		// Single receives of at most one buffer (16 KiB): at least one
		// for each 16 KiB of the 3 MiB sent (multishot ones, ending
		// after 48 KiB or more, make about 55 here).
		if min := int64(3 << 20 / (16 << 10)); recvs.Load() < min {
			t.Errorf("%d receives for 3 MiB; single receives of at most 16 KiB take at least %d", recvs.Load(), min)
		}
	})
}

// The ways io_uring_setup and the buffer ring's registration fail, as the
// seam injects them, and the words Available has for each.
var uringUnavailable = []struct {
	name  string
	op    sys.Op
	opNum int // the register opcode, or -1
	errno unix.Errno
	why   string // a part of the reason
}{
	{"seccomp", sys.OpIoUringSetup, -1, unix.EPERM, "seccomp"},
	{"ENOSYS", sys.OpIoUringSetup, -1, unix.ENOSYS, "function not implemented"},
	{"no buffer rings", sys.OpIoUringRegister, uring.IORING_REGISTER_PBUF_RING, unix.EINVAL, "IORING_REGISTER_PBUF_RING"},
}

// failURing has the seam fail op (with opNum, if not -1) with errno until
// the test ends, and returns uring.Available's verdict then.
func failURing(t *testing.T, op sys.Op, opNum int, errno unix.Errno) error {
	t.Helper()
	setFilter(t, func(c *sys.Call) error {
		if c.Op == op && (opNum < 0 || c.Name == opNum) {
			return errno
		}
		return nil
	})
	err := uring.Available()
	if err == nil {
		t.Fatalf("uring.Available() = nil with %v failing with %v", op, errno)
	}
	return err
}

// With io_uring unusable, BackendIOUring makes Serve fail saying why (the
// reason uring.Available gives, wrapping the errno), closing the listener
// as for any other failure to start and leaking nothing; once io_uring is
// back, the same Loop serves on it.
func TestURingUnavailableServe(t *testing.T) {
	needURing(t)
	for _, c := range uringUnavailable {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			lp := uringLoop(loopEcho(nil))
			lp.Logger = quietLogger()
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			// The filter only for this Serve: the Loop is served
			// again below, with io_uring back.
			restore := sys.SetFilter(func(call *sys.Call) error {
				if call.Op == c.op && (c.opNum < 0 || call.Name == c.opNum) {
					return c.errno
				}
				return nil
			})
			t.Cleanup(restore) // should the test end before the call below
			why := uring.Available()
			err := lp.Serve(l)
			restore()
			if why == nil {
				t.Fatalf("uring.Available() = nil with %v failing with %v", c.op, c.errno)
			}
			if err == nil || !strings.Contains(err.Error(), "io_uring") || !strings.Contains(err.Error(), why.Error()) ||
				!strings.Contains(err.Error(), c.why) || !errors.Is(err, c.errno) {
				t.Fatalf("Serve = %v; want an error naming io_uring, saying %q (%q), wrapping %v", err, why, c.why, c.errno)
			}
			// Closed, as Serve closes its listener on any failure to
			// start: nobody listens at its address any more.
			if conn, derr := net.DialTimeout("tcp4", l.Addr().String(), testkit.Timeout); derr == nil {
				conn.Close()
				t.Errorf("the listener still accepts after Serve failed")
			} else if !errors.Is(derr, syscall.ECONNREFUSED) {
				t.Errorf("dialing the listener after Serve failed: %v, want ECONNREFUSED", derr)
			}
			// Not sticky: with io_uring back, the same Loop serves, on
			// io_uring.
			enters := sys.Count(sys.OpIoUringEnter)
			addr := serveLoop(t, lp)
			loopRoundTrip(t, dialLoop(t, addr), "io_uring is back")
			if sys.Count(sys.OpIoUringEnter) == enters {
				t.Errorf("the Loop served without io_uring_enter once io_uring was back")
			}
		})
	}
}

// With io_uring unusable, BackendBest serves on epoll (its loops wait in
// epoll_wait, never in io_uring_enter), two Serve calls on one Loop, and
// logs why once, at Info, with the reason uring.Available gives.
func TestURingUnavailableBest(t *testing.T) {
	needURing(t)
	for _, c := range uringUnavailable {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			why := failURing(t, c.op, c.opNum, c.errno)
			logs := newLogRecords()
			lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 2, Backend: netcore.BackendBest, Logger: slog.New(logs)}
			waits, enters := sys.Count(sys.OpEpollWait), sys.Count(sys.OpIoUringEnter)
			for i := range 2 {
				addr := serveLoop(t, lp)
				loopRoundTrip(t, dialLoop(t, addr), fmt.Sprintf("served by Serve call %d", i))
			}
			if sys.Count(sys.OpEpollWait) == waits {
				t.Error("the Loop served without epoll_wait")
			}
			if n := sys.Count(sys.OpIoUringEnter) - enters; n != 0 {
				t.Errorf("the Loop called io_uring_enter %d times, with io_uring unusable", n)
			}
			logs.mu.Lock()
			defer logs.mu.Unlock()
			var about []string
			for _, r := range logs.recs {
				text := r.Message
				r.Attrs(func(a slog.Attr) bool {
					text += " " + a.Key + "=" + a.Value.String()
					return true
				})
				if strings.Contains(text, "io_uring") {
					about = append(about, r.Level.String()+" "+text)
				}
			}
			if len(about) != 1 || !strings.HasPrefix(about[0], "INFO ") || !strings.Contains(about[0], why.Error()) ||
				!strings.Contains(about[0], c.why) {
				t.Errorf("the log about io_uring: %q; want one Info record giving the reason %q", about, why)
			}
		})
	}
}

// BackendDefault follows NETCORE_LOOP_BACKEND: a name that is no backend
// makes Serve fail quoting it and the variable (closing the listener,
// leaking nothing).
func TestLoopBackendEnvBogus(t *testing.T) {
	t.Setenv(netcore.BackendEnv, "bogus")
	checkLeaks(t)
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	err := (&netcore.Loop{Handler: loopEcho(nil)}).Serve(l)
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) || !strings.Contains(err.Error(), netcore.BackendEnv) {
		t.Fatalf("Serve with %s=bogus = %v; want an error quoting \"bogus\" and naming %s", netcore.BackendEnv, err, netcore.BackendEnv)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on the listener after Serve failed = %v, want net.ErrClosed", err)
	}
}

// LoopBackend is a flag.Value: every backend's name sets it back, in a
// flag set as directly; a name that is none is refused, quoted, and
// leaves the value as it was.
func TestLoopBackendFlag(t *testing.T) {
	for _, b := range []netcore.LoopBackend{netcore.BackendDefault, netcore.BackendEpoll, netcore.BackendIOUring, netcore.BackendBest} {
		got := netcore.LoopBackend(99)
		if err := got.Set(b.String()); err != nil || got != b {
			t.Errorf("Set(%q) = %v, giving %v; want %v", b.String(), err, got, b)
		}
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		var v netcore.LoopBackend
		fs.Var(&v, "backend", "the Loop's backend")
		if err := fs.Parse([]string{"-backend=" + b.String()}); err != nil || v != b {
			t.Errorf("-backend=%s = %v, giving %v; want %v", b, err, v, b)
		}
	}
	if b := netcore.LoopBackend(0); b.Set("") != nil || b != netcore.BackendDefault {
		t.Errorf(`Set("") gives %v, want default`, b)
	}
	b := netcore.BackendEpoll
	err := b.Set("nope")
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || b != netcore.BackendEpoll {
		t.Errorf(`Set("nope") = %v, leaving %v; want an error quoting "nope", and epoll left`, err, b)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&b, "backend", "the Loop's backend")
	if err := fs.Parse([]string{"-backend=nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("-backend=nope: %v, want an error quoting \"nope\"", err)
	}
	if s := netcore.LoopBackend(9).String(); s != "LoopBackend(9)" {
		t.Errorf("LoopBackend(9).String() = %q", s)
	}
}

// A client pipelines requests whose answers fill the output past the high
// watermark and half-closes at once, before the server has read a byte;
// the handler takes no request while the output is full. The epoll
// backend reads nothing while reading is held for back-pressure, so the
// peer's FIN, behind the requests, reaches OnEOF only once the output has
// drained below the high watermark and the input was offered again. On
// io_uring the FIN can come in the same batch of completions as the data,
// while reading is held: it must wait the same way (it was taken as OnEOF
// at once, with the output still full and requests never offered again).
// Run on both backends (the suite's NETCORE_LOOP_BACKEND).
func TestLoopFINBehindHeldInput(t *testing.T) {
	checkLeaks(t)
	const requests, answer, high = 40, 64 << 10, 256 << 10
	eofOut := make(chan int, 1)
	h := &loopFuncs{
		data: func(c *netcore.LoopConn) {
			for c.Buffered() >= 4 && !c.OutputFull() {
				c.Discard(4)
				c.Write(make([]byte, answer))
			}
		},
		eof: func(c *netcore.LoopConn) { eofOut <- c.OutputBuffered() },
	}
	lp := &netcore.Loop{Handler: h, Loops: 1, OutputHighWater: high, OutputLowWater: 64 << 10, MaxOutput: 1 << 20}
	addr := serveLoop(t, lp)
	c := dialLoop(t, addr)
	if _, err := c.Write(make([]byte, 4*requests)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(testkit.Timeout))
	n, err := io.Copy(io.Discard, c)
	if err != nil || n == 0 || n%answer != 0 {
		t.Fatalf("read %d bytes then %v; want whole answers of %d bytes, then EOF", n, err, answer)
	}
	if out := testkit.WaitFor(t, eofOut, "OnEOF"); out >= high {
		t.Errorf("OnEOF came with %d bytes of output buffered, at or above the high watermark (%d): while reading was held", out, high)
	}
	t.Logf("%d of %d requests answered before the EOF", n/answer, requests)
}
