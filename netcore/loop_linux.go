package netcore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// loopState is what a Loop keeps once it runs.
type loopState struct {
	mu        sync.Mutex
	closing   bool
	lim       limits
	loops     []*eventLoop
	acceptors map[*acceptor]struct{}
	start     time.Time // the loops' clock starts here

	accepted, acceptLimits atomic.Int64

	handshakes               sync.WaitGroup // TLS handshakes' goroutines
	tlsHandshakes, tlsErrors atomic.Int64
}

// Tags in the high half (Pad) of an epoll event's data; connections carry
// a sequence number >= firstSeq there, so that an event for a descriptor
// closed and reused in the same iteration is recognised as stale.
const (
	tagWake     = 0 // the loop's eventfd; Fd unused
	tagListener = 1 // a listener; Fd is its index in eventLoop.acceptors
	tagLinger   = 2 // a closed connection's socket, lingering; Fd is the descriptor
	firstSeq    = 3
)

const (
	scratchSize  = 64 << 10 // the per-loop buffer every read goes to first
	maxEvents    = 256      // events taken per epoll_wait
	acceptBudget = 64       // connections accepted per listener wake-up, for fairness
)

// Serve accepts connections on l and serves them on the Loop's event loops
// (started by the first Serve) until Shutdown or Close, when it returns
// ErrLoopClosed, or until accepting fails for a reason that will not pass
// (the listener was closed by someone else, say), when it returns that
// error.
//
// l is a *Listener, or any net.Listener that gives access to a listening
// TCP or Unix stream socket through SyscallConn (a *net.TCPListener or
// *net.UnixListener, say); any other
// listener is refused with an error naming its type (serve it with Server
// instead). Serve owns l from here on and closes it when it returns; nothing
// else may Accept on it, and it should be closed only through Shutdown or
// Close (a listener closed behind Serve's back just stops accepting: epoll
// says nothing about it). A blocking-mode listener is switched to
// non-blocking. Accepted TCP connections get TCP_NODELAY, and IPv4-mapped
// peers are unmapped, whatever l's ListenConfig said. Several Serve calls
// may share one Loop. Serve must not be called from a LoopHandler callback.
func (lp *Loop) Serve(l net.Listener) error { return lp.serve(l, nil) }

// serve is Serve, and ServeTLS with a config.
func (lp *Loop) serve(l net.Listener, config *tls.Config) error {
	if lp.Handler == nil {
		l.Close()
		return errors.New("netcore: Loop.Handler is nil")
	}
	rc, addr, err := loopListener(l)
	if err != nil {
		l.Close()
		return err
	}
	st := &lp.state
	st.mu.Lock()
	if st.closing {
		st.mu.Unlock()
		l.Close()
		return ErrLoopClosed
	}
	if st.loops == nil {
		if err := lp.start(); err != nil {
			st.mu.Unlock()
			l.Close()
			return err
		}
	}
	g, err := lp.newServing(l, rc, addr, config)
	if err != nil {
		st.mu.Unlock()
		l.Close()
		return err
	}
	for _, a := range g.members {
		st.acceptors[a] = struct{}{}
	}
	st.mu.Unlock()
	// One loop after the other: the kernel wakes the first loop waiting
	// in the order they registered, so the first loop takes the new
	// connections while it is idle, and the next only those that come
	// while it is busy: a light load stays on few loops, and costs
	// fewer wake-ups.
	for _, a := range g.members {
		if !a.loop.post(task{kind: taskListen, a: a}) {
			// That loop stopped on its own (epoll_wait failed).
			a.release(ErrLoopClosed)
		}
		<-a.settled
	}
	err = <-g.done
	st.mu.Lock()
	for _, a := range g.members {
		delete(st.acceptors, a)
	}
	st.mu.Unlock()
	return err
}

// loopListener returns the socket beneath l and its address: a *Listener's
// own, or that of a listener of another package whose SyscallConn leads to
// a listening IPv4, IPv6 or Unix stream socket.
func loopListener(l net.Listener) (syscall.RawConn, Sockaddr, error) {
	if nl, ok := l.(*Listener); ok {
		rc, err := nl.SyscallConn()
		return rc, nl.Sockaddr(), err
	}
	sc, ok := l.(syscall.Conn)
	if !ok {
		return nil, Sockaddr{}, fmt.Errorf("netcore: Loop.Serve: a %T gives no access to its socket (no SyscallConn method); pass a *netcore.Listener, a *net.TCPListener or a *net.UnixListener, or serve it with netcore.Server", l)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, Sockaddr{}, fmt.Errorf("netcore: Loop.Serve: the socket of a %T: %w", l, err)
	}
	var addr Sockaddr
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		s := int(fd)
		if v, err := getInt(s, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			serr = fmt.Errorf("netcore: Loop.Serve: a %T whose socket is not listening", l)
			return
		}
		if v, err := getInt(s, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || v != unix.SOCK_STREAM {
			serr = fmt.Errorf("netcore: Loop.Serve: a %T whose socket is not a stream socket", l)
			return
		}
		if addr, serr = sockname(s, false); serr != nil {
			serr = fmt.Errorf("netcore: Loop.Serve: a %T whose socket is not TCP over IPv4 or IPv6, nor a Unix socket (%v)", l, serr)
		}
	})
	if cerr != nil {
		return nil, Sockaddr{}, fmt.Errorf("netcore: Loop.Serve: the socket of a %T: %w", l, cerr)
	}
	return rc, addr, serr
}

// start opens the event loops and starts their goroutines; the caller
// holds lp.state.mu.
func (lp *Loop) start() error {
	st := &lp.state
	lim, err := lp.limits()
	if err != nil {
		return err
	}
	if fh, ok := lp.Handler.(frameLoopHandler); ok {
		if err := fh.h.check(lim.maxInput); err != nil {
			return err
		}
	}
	n := lp.Loops
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	useUring, err := lp.useUring()
	if err != nil {
		return err
	}
	loops := make([]*eventLoop, 0, n)
	for range n {
		l, err := newEventLoop(lp, lim, useUring)
		if err != nil {
			for _, l := range loops {
				l.closeFDs()
			}
			return err
		}
		loops = append(loops, l)
	}
	st.lim, st.loops, st.start = lim, loops, time.Now()
	st.acceptors = make(map[*acceptor]struct{})
	for _, l := range loops {
		go l.run()
	}
	if useUring {
		// Each loop makes its ring on its own thread: wait for all.
		var first error
		for _, l := range loops {
			if err := <-l.ur.ready; err != nil && first == nil {
				first = err
			}
		}
		if first != nil {
			for _, l := range loops {
				l.post(task{kind: taskForce})
			}
			for _, l := range loops {
				<-l.done
			}
			st.loops = nil
			return first
		}
	}
	return nil
}

// Shutdown stops the Loop gracefully: it closes the listeners, closes
// every connection that is idle (no input left unconsumed, no output
// unwritten or queued, no work held with LoopConn.Hold), and lets the
// others finish: each is closed as soon as it becomes idle. When ctx ends
// first, it closes the remaining connections at once and returns ctx's
// error. Either way, when Shutdown returns the loops' goroutines and
// descriptors are gone, and so are the goroutines of TLS handshakes,
// except one blocked in a callback of the tls.Config (GetCertificate,
// GetConfigForClient) when ctx ends: it is not waited for, and ends when
// its callback returns. Serve returns ErrLoopClosed.
//
// Called from a LoopHandler callback (or a function Execute or AfterFunc
// runs), Shutdown cannot wait for the loop it runs on: it starts the same
// graceful stop on another goroutine, with the same ctx, and returns nil at
// once; Serve's return says when the stop is done.
func (lp *Loop) Shutdown(ctx context.Context) error {
	if lp.onLoop() {
		go lp.Shutdown(ctx)
		return nil
	}
	loops, accs := lp.beginClose()
	if loops == nil {
		return nil
	}
	forced := false
	force := func() {
		if !forced {
			forced = true
			for _, l := range loops {
				l.post(task{kind: taskForce})
			}
		}
	}
	// The listeners first, so that no loop hands a new connection to one
	// that has already finished.
	for _, a := range accs {
		select {
		case <-a.removed:
		case <-ctx.Done():
			force()
			<-a.removed
		}
	}
	for _, l := range loops {
		l.post(task{kind: taskDrain})
	}
	for _, l := range loops {
		select {
		case <-l.done:
		case <-ctx.Done():
			force()
			<-l.done
		}
	}
	// The handshakes' goroutines end once their connections closed,
	// except one held in a callback of the tls.Config (GetCertificate,
	// say): that one is not waited for past ctx, as Server's Shutdown
	// does not wait for a handler blocked elsewhere than its connection.
	// It ends when its callback returns.
	handshakes := make(chan struct{})
	go func() {
		lp.state.handshakes.Wait()
		close(handshakes)
	}()
	select {
	case <-handshakes:
	case <-ctx.Done():
		select {
		case <-handshakes:
		default:
			forced = true
		}
	}
	if forced {
		return ctx.Err()
	}
	return nil
}

// Close stops the Loop at once: it closes the listeners and every
// connection (their handlers' OnClose get ErrLoopClosed), and returns when
// the loops' goroutines and descriptors are gone, and the goroutines of
// TLS handshakes (one blocked in a tls.Config callback is waited for, as
// Server.Close waits for its handlers). Serve returns
// ErrLoopClosed. A second Close returns nil. Called from a callback, Close
// starts the stop on another goroutine and returns nil at once, as
// Shutdown does.
func (lp *Loop) Close() error {
	if lp.onLoop() {
		go lp.Close()
		return nil
	}
	loops, accs := lp.beginClose()
	for _, l := range loops {
		l.post(task{kind: taskForce})
	}
	for _, a := range accs {
		<-a.removed
	}
	for _, l := range loops {
		<-l.done
	}
	lp.state.handshakes.Wait() // each ended when its connection closed
	return nil
}

// onLoop reports whether the caller runs on one of lp's event loops (in a
// callback): each loop's goroutine is locked to its thread, and no other
// goroutine runs on that thread while it lives.
func (lp *Loop) onLoop() bool {
	st := &lp.state
	st.mu.Lock()
	loops := st.loops
	st.mu.Unlock()
	if len(loops) == 0 {
		return false
	}
	tid := int32(sys.Gettid())
	for _, l := range loops {
		if l.tid.Load() == tid {
			return true
		}
	}
	return false
}

// beginClose marks the Loop closing and asks every loop that accepts to
// stop; it returns the loops and the acceptors.
func (lp *Loop) beginClose() ([]*eventLoop, []*acceptor) {
	st := &lp.state
	st.mu.Lock()
	defer st.mu.Unlock()
	first := !st.closing
	st.closing = true
	var accs []*acceptor
	for a := range st.acceptors {
		accs = append(accs, a)
		if first {
			a.loop.post(task{kind: taskUnlisten, a: a})
		}
	}
	return st.loops, accs
}

// Stats returns the Loop's connections and buffer memory now. It is safe to
// call from any goroutine.
func (lp *Loop) Stats() LoopStats {
	st := &lp.state
	st.mu.Lock()
	loops := st.loops
	st.mu.Unlock()
	s := LoopStats{Accepted: st.accepted.Load(), AcceptLimits: st.acceptLimits.Load(),
		TLSHandshakes: st.tlsHandshakes.Load(), TLSHandshakeErrors: st.tlsErrors.Load()}
	s.ConnsPerLoop = make([]int, len(loops))
	for i, l := range loops {
		s.ConnsPerLoop[i] = int(l.nconns.Load())
		s.Conns += s.ConnsPerLoop[i]
		s.InputBytes += l.inHeld.Load()
		s.OutputBytes += l.outHeld.Load()
	}
	return s
}

type taskKind uint8

const (
	taskQueued   taskKind = iota // c has work queued by Send or Execute
	taskReleased                 // c's last Hold was released
	taskClose                    // c.Close was called
	taskListen                   // start accepting on a
	taskUnlisten                 // stop accepting on a and close its listener
	taskAccept                   // accept on a: another loop left new connections to this one
	taskRewatch                  // register a's listener again, to restore the loops' order
	taskDrain                    // Shutdown: close idle connections, then the rest as they become idle
	taskForce                    // Close (or Shutdown's ctx ended): close everything
	taskTLS                      // c's TLS handshake wrote, caught up or ended
)

// task is a request to a loop from another goroutine.
type task struct {
	kind taskKind
	c    *LoopConn
	a    *acceptor
}

// eventLoop is one event loop: a goroutine locked to its OS thread,
// waiting in its own epoll instance. Everything but the queue and the
// counters belongs to that goroutine.
type eventLoop struct {
	lp      *Loop
	lim     limits
	epfd    int        // -1 with io_uring
	ur      *uringLoop // nil with epoll
	wakefd  int        // eventfd, watched edge-triggered (epoll) or by a multishot poll: never read
	reserve int        // spare descriptor for the EMFILE trick, -1 if none
	events  []unix.EpollEvent
	scratch []byte
	plain   []byte      // decrypted input, for TLS connections (made on first use)
	conns   []*LoopConn // by descriptor
	count   int         // len of conns that are not nil
	seq     uint32
	accs    []*acceptor // by the index in their epoll data; nil slots are free
	naccs   int
	dirty   []*LoopConn         // connections with output to flush at the end of this iteration
	now     int64               // nanoseconds on the Loop's clock at the last wake-up
	timers  []*LoopTimer        // a binary heap by due time
	resumes nextPass[*LoopConn] // paused connections whose output drained with input left

	lingering []int64    // by descriptor: the lingering deadline, 0 if not lingering
	lingerQ   []lingerFD // lingering sockets, by deadline
	nlinger   int
	tid       atomic.Int32        // the loop's thread
	spinning  bool                // SpinWait: the last wait found events, poll before the next
	acceptQ   nextPass[*acceptor] // listeners with connections left to accept

	// The loop's load: the share of the current window (at least
	// loadWindow long) spent outside epoll_wait so far, and that of the
	// last window, in permille, for other loops to read.
	winStart, idle int64
	load           atomic.Int32
	awake          atomic.Int64 // when the loop last woke (+1), 0 while it waits

	draining, forcing bool

	qmu         sync.Mutex
	queue       []task
	qspare      []task
	wakePending atomic.Bool
	exited      bool // under qmu: the loop is gone, post refuses

	inHeld, outHeld atomic.Int64
	nconns          atomic.Int64
	done            chan struct{}
}

func newEventLoop(lp *Loop, lim limits, useUring bool) (*eventLoop, error) {
	l := &eventLoop{lp: lp, lim: lim, epfd: -1, wakefd: -1, reserve: -1, done: make(chan struct{})}
	var err error
	if useUring {
		// The ring is made on the loop's thread (run); the eventfd is
		// watched by a poll on it.
		if l.wakefd, err = sys.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			return nil, os.NewSyscallError("eventfd2", err)
		}
		l.ur = &uringLoop{ready: make(chan error, 1)}
		l.scratch = make([]byte, min(scratchSize, lim.maxInput))
		return l, nil
	}
	if l.epfd, err = sys.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if l.wakefd, err = sys.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		l.closeFDs()
		return nil, os.NewSyscallError("eventfd2", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Pad: tagWake}
	if err := sys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.wakefd, &ev); err != nil {
		l.closeFDs()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	l.events = make([]unix.EpollEvent, maxEvents)
	l.scratch = make([]byte, min(scratchSize, lim.maxInput))
	return l, nil
}

func (l *eventLoop) closeFDs() {
	for _, fd := range []*int{&l.reserve, &l.wakefd, &l.epfd} {
		if *fd >= 0 {
			closeFD(*fd)
			*fd = -1
		}
	}
}

// wait is the loop's epoll_wait until due (see deadline), starting at
// now. With Loop.SpinWait, a loop that has just served events first polls
// for more, for up to that long, but never past due.
func (l *eventLoop) wait(due, now int64) (int, error) {
	if l.spinning && l.msecUntil(due, now) != 0 {
		end := now + int64(l.lim.spin)
		if due >= 0 {
			end = min(end, due)
		}
		for {
			n, err := sys.EpollWait(l.epfd, l.events, 0)
			if n != 0 || err != nil {
				return n, err
			}
			if now = l.clock(); now >= end {
				break
			}
		}
	}
	n, err := sys.EpollWait(l.epfd, l.events, l.msecUntil(due, now))
	l.spinning = n > 0 && l.lim.spin > 0
	return n, err
}

// loadWindow is the shortest window over which a loop measures its load.
const loadWindow = int64(10 * time.Millisecond)

// measureLoad counts the wait that began at waitFrom and ended at l.now as
// idle time, and publishes the load of a window that has run its length.
// A window ends only when the loop wakes: a loop asleep for a minute
// reports a load near 0 when it next wakes.
func (l *eventLoop) measureLoad(waitFrom int64) {
	l.idle += l.now - waitFrom
	if span := l.now - l.winStart; span >= loadWindow {
		l.load.Store(int32((span - min(l.idle, span)) * 1000 / span))
		l.winStart, l.idle = l.now, 0
	}
}

// clock returns nanoseconds on the Loop's monotonic clock.
func (l *eventLoop) clock() int64 { return int64(time.Since(l.lp.state.start)) }

// post queues t for the loop and wakes it. It returns false if the loop has
// exited; the caller then cleans up after t itself.
func (l *eventLoop) post(t task) bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if l.exited {
		return false
	}
	l.queue = append(l.queue, t)
	// One eventfd write per loop wake-up is enough. It is made under qmu
	// so that the loop cannot close the eventfd in between.
	// EAGAIN would mean the counter is full, which cannot happen (it
	// would take 2^64 wake-ups): retried like EINTR, so a wake-up is
	// never lost.
	if !l.wakePending.Swap(true) {
		for err := sys.Wake(l.wakefd); err != nil && classify(err, false) != fail; err = sys.Wake(l.wakefd) {
		}
	}
	return true
}

// run is the loop's goroutine.
func (l *eventLoop) run() {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	l.tid.Store(int32(sys.Gettid()))
	defer close(l.done)
	if l.ur != nil {
		err := l.initUring()
		l.ur.ready <- err
		if err != nil {
			l.exit()
			return
		}
	}
	for {
		waitFrom := l.clock()
		l.awake.Store(0)
		var n int
		var err error
		if l.ur != nil {
			err = l.waitUring(l.deadline(), waitFrom)
		} else {
			n, err = l.wait(l.deadline(), waitFrom)
		}
		if err != nil {
			if again(err, false) {
				continue
			}
			if l.ur == nil {
				err = os.NewSyscallError("epoll_wait", err)
			}
			l.lp.logger().Error("netcore: waiting for events failed; closing the Loop", "err", err)
			l.forcing = true
			// The whole Loop: one loop gone would leave listeners
			// handing it connections. (From here, Close only starts
			// the stop and returns.)
			l.lp.Close()
		}
		l.now = l.clock()
		l.awake.Store(l.now + 1)
		l.measureLoad(waitFrom)
		if l.ur != nil {
			l.reapUring()
		}
		for i := range n {
			l.dispatch(&l.events[i])
		}
		if len(l.acceptQ.items) > 0 {
			l.acceptQueued()
		}
		l.runTimers()
		l.expireLingers(l.forcing)
		l.rearmListeners()
		l.flush()
		if len(l.resumes.items) > 0 {
			l.resume()
			l.flush()
		}
		if l.forcing {
			l.closeAll()
		} else if l.draining {
			l.closeIdle()
		}
		if (l.forcing || l.draining) && l.count == 0 && l.naccs == 0 && l.nlinger == 0 {
			l.exit()
			return
		}
	}
}

// deadline returns when the loop must wake up on its own, on the Loop's
// clock: when the first timer is due or a listener's back-off ends; -1 for
// never, and now while connections wait to be offered their input again
// or to be accepted.
func (l *eventLoop) deadline() int64 {
	if len(l.resumes.items) > 0 || len(l.acceptQ.items) > 0 {
		return 0
	}
	deadline := l.lingerDeadline()
	if len(l.timers) > 0 && (deadline < 0 || l.timers[0].when < deadline) {
		deadline = l.timers[0].when
	}
	for _, a := range l.accs {
		if a != nil && a.rearmAt != 0 && (deadline < 0 || a.rearmAt < deadline) {
			deadline = a.rearmAt
		}
	}
	return deadline
}

// msecUntil is epoll_wait's timeout, at now, for a wake-up at due: -1 for
// never, rounded up to a millisecond.
func (l *eventLoop) msecUntil(due, now int64) int {
	if due < 0 {
		return -1
	}
	d := due - now
	if d <= 0 {
		return 0
	}
	return int(min((d+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<30))
}

func (l *eventLoop) dispatch(e *unix.EpollEvent) {
	tag := uint32(e.Pad)
	switch tag {
	case tagWake:
		l.drainQueue()
		return
	case tagListener:
		if i := int(e.Fd); i < len(l.accs) && l.accs[i] != nil {
			l.accept(l.accs[i], true)
		}
		return
	case tagLinger:
		l.lingerRead(int(e.Fd))
		return
	}
	fd := int(e.Fd)
	if fd >= len(l.conns) {
		return
	}
	c := l.conns[fd]
	if c == nil || c.seq != tag {
		return // stale: closed (and perhaps reused) earlier in this iteration
	}
	ev := e.Events
	if ev&unix.EPOLLOUT != 0 && c.blocked {
		c.blocked = false
		l.markDirty(c)
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.read(c)
	}
	if !c.closed && ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		if c.outLen() > 0 {
			// The peer is gone or the socket failed: a write says
			// how, and closes the connection.
			c.blocked = false
			l.flushConn(c)
		} else if c.eof || c.flushClose {
			// Nothing more can be read or written (a connection
			// kept open after EOF for held work, say): the report
			// would repeat at every epoll_wait.
			l.closeConn(c, l.sockErr(c))
		}
	}
}

// sockErr returns the pending error of c's socket (SO_ERROR) as a close
// reason, or io.EOF if there is none.
func (l *eventLoop) sockErr(c *LoopConn) error {
	if e, err := getInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
		return c.opErr("read", "read", unix.Errno(e))
	}
	return errEOF
}

// drainQueue runs the tasks other goroutines posted.
func (l *eventLoop) drainQueue() {
	l.wakePending.Store(false) // before taking the queue: a later post wakes us again
	l.qmu.Lock()
	q := l.queue
	l.queue = l.qspare[:0]
	l.qmu.Unlock()
	for i := range q {
		l.runTask(&q[i])
		q[i] = task{}
	}
	l.qspare = q[:0]
}

func (l *eventLoop) runTask(t *task) {
	switch t.kind {
	case taskQueued:
		t.c.smu.Lock()
		t.c.posted = false
		t.c.smu.Unlock()
		if !t.c.closed {
			l.takeQueued(t.c)
			l.after(t.c)
		}
	case taskReleased:
		if !t.c.closed {
			l.markDirty(t.c) // the flush closes it if nothing else keeps it
		}
	case taskClose:
		l.closeRequested(t.c)
	case taskListen:
		l.listen(t.a)
	case taskAccept:
		if !t.a.ended {
			l.accept(t.a, false)
		}
	case taskRewatch:
		l.rewatch(t.a)
	case taskUnlisten:
		l.unlisten(t.a, ErrLoopClosed)
	case taskDrain:
		l.draining = true
	case taskForce:
		l.forcing = true
	case taskTLS:
		if !t.c.closed {
			l.tlsTask(t.c)
		}
	}
}

// flush writes the output of every connection that got some in this
// iteration: one write(2) each, unless the kernel takes less.
func (l *eventLoop) flush() {
	for i, c := range l.dirty {
		l.dirty[i] = nil
		c.dirtyQueued = false
		if !c.closed {
			l.flushConn(c)
		}
	}
	l.dirty = l.dirty[:0]
}

func (l *eventLoop) markDirty(c *LoopConn) {
	if !c.dirtyQueued {
		c.dirtyQueued = true
		l.dirty = append(l.dirty, c)
	}
}

// rearmListeners watches again the listeners whose back-off has ended.
func (l *eventLoop) rearmListeners() {
	now := l.now
	for _, a := range l.accs {
		if a != nil && a.rearmAt != 0 && a.rearmAt <= now {
			a.rearmAt = 0
			l.pauseListener(a, false)
			// Re-added, a's registration is last in the listener's
			// wait queue: the later loops' go after it again, so the
			// kernel keeps trying the loops in their order.
			a.g.rewatchAfter(a)
		}
	}
}

// closeIdle closes, while draining, every connection with nothing left to
// do: no input buffered or waiting unread in the socket (a request that
// arrived is served, and closing over unread input would send a reset), no
// output written or queued, no work held. A TLS handshake under way is
// nothing to wait for (no request has come yet, and a client that stalls
// would hold Shutdown for its whole TLSHandshakeTimeout): the connection
// closes, its unread handshake bytes with it, as netcore.Server cancels
// its handshakes at Shutdown.
func (l *eventLoop) closeIdle() {
	for _, c := range l.conns {
		if c != nil && c.in.Len() == 0 && c.outLen() == 0 && !c.queued.Load() && c.holds.Load() == 0 {
			handshaking := c.tls != nil && c.tls.state == tlsHandshaking
			if n, err := sys.Unread(c.fd); err == nil && n > 0 && !c.eof && !c.flushClose && !handshaking {
				continue // read at the next epoll_wait
			}
			l.closeConn(c, ErrLoopClosed)
		}
	}
}

// resume offers their input again to the connections whose output drained
// below the low watermark while input was left: a handler that stopped
// taking requests at OutputFull goes on where it stopped.
func (l *eventLoop) resume() {
	rs := l.resumes.take()
	for _, c := range rs {
		c.resumeQueued = false
		if c.closed || c.paused || c.flushClose || c.in.Len() == 0 {
			continue
		}
		if l.sync(c) {
			l.callback(c, cbData)
			l.after(c)
		}
	}
	l.resumes.done(rs)
}

// A nextPass is a list of items a loop handles in its next iteration. The
// list taken and the one filled meanwhile swap their backing arrays, so
// that neither allocates once grown.
type nextPass[T any] struct{ items, spare []T }

func (p *nextPass[T]) add(x T) { p.items = append(p.items, x) }

// take returns the items so far and starts a new list; done gives the
// taken slice back once handled.
func (p *nextPass[T]) take() []T {
	q := p.items
	p.items = p.spare[:0]
	return q
}

func (p *nextPass[T]) done(q []T) {
	clear(q)
	p.spare = q[:0]
}

func (l *eventLoop) closeAll() {
	for _, a := range l.accs {
		if a != nil {
			l.unlisten(a, ErrLoopClosed)
		}
	}
	for _, c := range l.conns {
		if c != nil {
			l.closeConn(c, ErrLoopClosed)
		}
	}
}

// exit refuses further tasks, cleans up after those still queued, and
// closes the loop's descriptors.
func (l *eventLoop) exit() {
	l.qmu.Lock()
	l.exited = true
	q := l.queue
	l.queue = nil
	l.qmu.Unlock()
	for _, t := range q {
		switch t.kind {
		case taskListen:
			t.a.release(ErrLoopClosed)
		}
	}
	if l.ur != nil {
		l.closeUring()
	}
	l.closeFDs()
}

// callback runs one of the handler's callbacks; a panic becomes the
// connection's close error.
func (l *eventLoop) callback(c *LoopConn, which int) {
	defer func() {
		if v := recover(); v != nil {
			l.lp.logger().Error("netcore: loop handler panicked; closing its connection",
				"remote", c.peer.String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			c.closeErr = fmt.Errorf("%w: %v", ErrHandlerPanic, v)
		}
	}()
	h := l.lp.Handler
	switch which {
	case cbOpen:
		h.OnOpen(c)
	case cbData:
		h.OnData(c)
	case cbEOF:
		h.OnEOF(c)
	}
}

const (
	cbOpen = iota
	cbData
	cbEOF
)

// callbackFn runs a function given to Execute or AfterFunc; a panic
// becomes the connection's close error, as in callback.
func (l *eventLoop) callbackFn(c *LoopConn, fn func(*LoopConn)) {
	defer func() {
		if v := recover(); v != nil {
			l.lp.logger().Error("netcore: function run on the loop panicked; closing its connection",
				"remote", c.peer.String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !c.closed {
				c.closeErr = fmt.Errorf("%w: %v", ErrHandlerPanic, v)
			}
		}
	}()
	fn(c)
}

// after settles a connection after a callback: the input the handler left
// is kept (copied out of the scratch buffer), limits are checked, output
// is scheduled for the flush, and reading pauses above the high watermark.
func (l *eventLoop) after(c *LoopConn) {
	c.framing = 0 // a frame left open ends with its callback
	if c.borrowing {
		if len(c.borrow) > 0 {
			c.in.Write(c.borrow)
		}
		c.borrow, c.borrowing = nil, false
	}
	c.in.ReleaseIfEmpty()
	if c.closed {
		return
	}
	if c.closeErr != nil {
		l.fail(c, c.closeErr)
		return
	}
	if c.outLen() > 0 || c.flushClose || (c.wantShutWr && !c.shutWr) {
		l.markDirty(c)
	}
	if !c.paused && c.OutputFull() {
		c.paused = true
		l.rearm(c)
	}
	// Input left while output is full waits for the output to drain;
	// otherwise a full input buffer the handler took nothing from can
	// never make progress.
	if c.in.Len() >= l.lim.maxInput && !c.paused {
		l.fail(c, &LimitError{Limit: "MaxInput", Value: int64(l.lim.maxInput)})
		return
	}
	if l.ur != nil && c.events == 0 {
		l.rearm(c) // a receive that ended, or waited for input room
	}
}

// fail closes c for err, logging it (idle timeouts only at debug level).
func (l *eventLoop) fail(c *LoopConn, err error) {
	if errors.Is(err, ErrIdleTimeout) {
		l.lp.logger().Debug("netcore: closing connection", "remote", c.peer.String(), "err", err)
	} else {
		l.lp.logger().Warn("netcore: closing connection", "remote", c.peer.String(), "err", err)
	}
	l.closeConn(c, err)
}

// open takes on an accepted connection: it registers it with the loop's
// epoll instance and calls OnOpen.
func (l *eventLoop) open(fd int, peer, local Sockaddr, config *tls.Config) {
	if !local.IsValid() {
		// A wildcard listener: the connection's own address says which.
		if sa, err := sockname(fd, false); err == nil {
			local = sa.Unmap()
		}
	}
	c := &LoopConn{l: l, fd: fd, peer: peer, local: local}
	c.limit = LoopTimer{i: -1, c: c}
	c.in.held, c.out.held, c.pending.held = &l.inHeld, &l.outHeld, &l.outHeld
	l.seq++
	if l.seq < firstSeq || l.seq > 1<<31-1 {
		l.seq = firstSeq
	}
	c.seq = l.seq
	// (With io_uring, the receive is armed by after, or once the TLS
	// handshake has begun, so that it takes no more than the handshake's
	// buffer.)
	if l.ur == nil {
		if err := l.watch(c); err != nil {
			l.lp.logger().Error("netcore: cannot watch an accepted connection; closing it",
				"remote", peer.String(), "err", os.NewSyscallError("epoll_ctl", err))
			closeFD(fd)
			return
		}
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns[:cap(l.conns)], nil)
	}
	l.conns[fd] = c
	l.count++
	l.nconns.Add(1)
	c.last = l.now
	if l.lim.idle > 0 {
		l.schedule(&c.limit, addSat(l.now, int64(l.lim.idle)))
	}
	if config != nil {
		// The handler sees the connection once its handshake is done.
		l.newTLS(c, config)
		c.hidden = true
		l.startHandshake(c)
		if l.ur != nil {
			l.rearm(c)
		}
		return
	}
	l.callback(c, cbOpen)
	l.after(c)
}

// watch registers a new connection with the loop's epoll instance, for
// input.
func (l *eventLoop) watch(c *LoopConn) error {
	c.events = unix.EPOLLIN | unix.EPOLLRDHUP
	ev := unix.EpollEvent{Events: c.events, Fd: int32(c.fd), Pad: int32(c.seq)}
	return sys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev)
}

// read makes one read(2) into the scratch buffer and hands the bytes to
// the handler.
func (l *eventLoop) read(c *LoopConn) {
	if c.closed || c.readHeld() || c.eof {
		return
	}
	p := l.scratch[:min(len(l.scratch), l.room(c))]
	if len(p) == 0 {
		return // a full input buffer waiting for output room (see after)
	}
	var n int
	var err error
	for {
		n, err = sys.Read(c.fd, p)
		if !again(err, false) {
			break
		}
	}
	if err != nil {
		if classify(err, false) == wait {
			return
		}
		l.closeConn(c, c.opErr("read", "read", err))
		return
	}
	l.received(c, p[:n])
}

// room is how many bytes c may be given now: what MaxInput leaves of its
// input buffer, and during a TLS handshake no more than the handshake's
// buffer.
func (l *eventLoop) room(c *LoopConn) int {
	n := l.lim.maxInput - c.in.Len()
	if c.tls != nil && c.tls.state == tlsHandshaking {
		n = min(n, tlsHandshakeBuffer)
	}
	return n
}

// received hands what a read brought (nothing at the peer's FIN) to the
// handler, or to the TLS layer: the path a read(2) and an io_uring
// receive share. p is the loop's: borrowed until the handler returns.
func (l *eventLoop) received(c *LoopConn, p []byte) {
	n := len(p)
	l.touch(c)
	if c.tls != nil {
		l.tlsRead(c, p[:n])
		return
	}
	if n == 0 {
		c.eof = true
		l.rearm(c)
		if c.closed {
			return
		}
		if !l.sync(c) {
			return
		}
		l.callback(c, cbEOF)
		l.after(c)
		if !c.closed {
			l.closeAfterFlush(c, errEOF)
		}
		return
	}
	if !l.sync(c) {
		return
	}
	if c.in.Len() == 0 {
		c.borrow, c.borrowing = p[:n], true
	} else {
		c.in.Write(p[:n])
	}
	l.callback(c, cbData)
	l.after(c)
}

// closeAfterFlush stops reading from c and closes it once its output is
// written (after EOF: and no work is held).
func (l *eventLoop) closeAfterFlush(c *LoopConn, reason error) {
	if !c.flushClose {
		c.flushClose, c.closeReason = true, reason
		l.rearm(c)
	}
	if !c.closed {
		l.markDirty(c)
	}
}

// flushConn writes c's output: one write(2) when the kernel takes it all,
// more only after a short write, until EAGAIN (then EPOLLOUT is watched).
func (l *eventLoop) flushConn(c *LoopConn) {
	if l.ur != nil {
		l.flushUring(c)
		return
	}
	w := &c.out
	if c.tls != nil {
		w = l.seal(c) // the ciphertext
	}
	for w.Len() > 0 && !c.blocked {
		n, err := sys.Write(c.fd, w.Bytes())
		switch {
		case err == nil:
			w.Discard(n)
			if c.tls != nil && w.Len() == 0 {
				w = l.seal(c)
			}
			c.outN.Store(int64(c.outLen()))
			l.touch(c)
		case again(err, false):
		case classify(err, false) == wait:
			c.blocked = true
		default:
			l.closeConn(c, c.opErr("write", "write", err))
			return
		}
	}
	l.flushed(c, w)
}

// flushed settles c once its output has gone as far as it can for now
// (w, what was being written, may still hold the rest): at its end, the
// half-close or close that waited for it; below the low watermark, the end
// of back-pressure.
func (l *eventLoop) flushed(c *LoopConn, w *buffer) {
	w.ReleaseIfEmpty()
	if c.tls != nil && c.closeErr != nil {
		l.fail(c, c.closeErr)
		return
	}
	if c.outLen() == 0 && !c.queued.Load() {
		closing := c.flushClose && (c.closeReason != errEOF || c.userClosed || c.holds.Load() == 0)
		if (closing || c.wantShutWr && !c.shutWr) && l.closeNotify(c) {
			l.flushConn(c) // the close_notify alert goes first
			return
		}
		if c.wantShutWr && !c.shutWr && (c.tls == nil || c.tls.state != tlsHandshaking) {
			// (After a TLS handshake: it must finish, and close_notify go first.)
			c.shutWr = true
			if err := sys.Shutdown(c.fd, unix.SHUT_WR); err != nil {
				l.closeConn(c, c.opErr("close-write", "shutdown", err))
				return
			}
		}
		if closing {
			l.closeConn(c, c.closeReason)
			return
		}
	}
	l.drained(c)
}

// drained ends c's back-pressure once its output is at or below the low
// watermark (its input is offered again in the next pass), and rearms it.
func (l *eventLoop) drained(c *LoopConn) {
	if c.paused && c.outLen() <= l.lim.low {
		c.paused = false
		if c.in.Len() > 0 && !c.resumeQueued {
			c.resumeQueued = true
			l.resumes.add(c)
		}
	}
	l.rearm(c)
}

// rearm makes the epoll registration match what c waits for: input unless
// paused or finished, output room while a write is blocked. It costs an
// epoll_ctl only when that changes (back-pressure, a full socket buffer,
// EOF), never per request.
func (l *eventLoop) rearm(c *LoopConn) {
	if c.closed {
		return
	}
	reading := !c.readHeld() && !c.eof && (c.tls == nil || !c.tls.stalled)
	if l.ur != nil {
		l.setRecv(c, reading)
		return
	}
	var want uint32
	if reading {
		want = unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if c.blocked {
		want |= unix.EPOLLOUT
	}
	if want == c.events {
		return
	}
	ev := unix.EpollEvent{Events: want, Fd: int32(c.fd), Pad: int32(c.seq)}
	if err := sys.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		l.closeConn(c, c.opErr("read", "epoll_ctl", err))
		return
	}
	// Input that waited while reading was paused is reported at the
	// next epoll_wait: registrations are level-triggered.
	c.events = want
}

// sync takes what other goroutines queued for c before a callback, so
// that the callback's Writes come after it; it reports whether c is still
// open.
func (l *eventLoop) sync(c *LoopConn) bool {
	if c.queued.Load() {
		l.takeQueued(c)
		if c.closeErr != nil && !c.closed {
			l.fail(c, c.closeErr)
		}
	}
	return !c.closed
}

// takeQueued runs what other goroutines queued for c with Send and
// Execute, in the order they queued it: sent bytes go to the output,
// functions run. The loop calls it before each callback for c, and Write
// calls it (outside takeQueued itself), so that bytes leave in the order
// of the calls that made them. Output past MaxOutput sets c.closeErr.
func (l *eventLoop) takeQueued(c *LoopConn) {
	if c.closed || c.taking || !c.queued.Load() {
		return
	}
	c.smu.Lock()
	c.queued.Store(false)
	p := c.pending
	c.pending = buffer{held: p.held}
	fns := c.fns
	c.fns = nil
	c.outN.Add(int64(p.Len()))
	c.pendN.Store(0)
	c.smu.Unlock()
	if len(fns) == 0 && c.out.Len() == 0 {
		c.out.Release()
		c.out = p // the common case: no copy
	} else {
		c.taking = true
		at := 0
		for i, f := range fns {
			c.out.Write(p.Bytes()[at:f.at])
			at = f.at
			c.outN.Store(int64(c.out.Len()))
			if !c.closed {
				l.callbackFn(c, f.fn)
			}
			fns[i] = queuedFn{}
		}
		c.taking = false
		if !c.closed {
			c.out.Write(p.Bytes()[at:])
		}
		p.Release()
	}
	if c.closed {
		return
	}
	c.outN.Store(int64(c.outLen()))
	if c.outLen() > l.lim.maxOutput && c.closeErr == nil {
		c.closeErr = &LimitError{Limit: "MaxOutput", Value: int64(l.lim.maxOutput)}
	}
}

// closeRequested handles Close from any goroutine: a limit breach closes
// at once, a plain Close after the output is flushed.
func (l *eventLoop) closeRequested(c *LoopConn) {
	if c.closed {
		return
	}
	c.smu.Lock()
	err := c.reqErr
	c.smu.Unlock()
	if err != nil {
		l.fail(c, err)
		return
	}
	c.userClosed = true
	l.closeAfterFlush(c, nil)
	c.closeReason = nil // Close after the peer's EOF: OnClose gets nil, as Close promises
}

// closeConn closes c now and calls OnClose.
func (l *eventLoop) closeConn(c *LoopConn, err error) {
	if c.closed {
		return
	}
	c.closed = true
	l.conns[c.fd] = nil
	l.count--
	l.nconns.Add(-1)
	l.stopTimers(c)
	c.smu.Lock()
	c.sclosed = true
	c.pending.Release()
	c.pendN.Store(0)
	c.queued.Store(false)
	fns := c.fns
	c.fns = nil
	c.smu.Unlock()
	c.in.Release()
	c.out.Release()
	c.outN.Store(0)
	c.borrow = nil
	if c.tls != nil {
		l.closeTLS(c, err)
	}
	if l.ur != nil {
		l.forgetUring(c)
	}
	if !(c.userClosed && err == nil && l.linger(c)) {
		closeFD(c.fd) // also takes it out of the epoll set
	}
	// What Execute queued still runs, once: its Writes fail.
	for _, f := range fns {
		l.callbackFn(c, f.fn)
	}
	if c.hidden {
		return // a TLS connection whose handshake did not succeed: its handler never saw it
	}
	defer func() {
		if v := recover(); v != nil {
			l.lp.logger().Error("netcore: loop handler panicked in OnClose",
				"remote", c.peer.String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	l.lp.Handler.OnClose(c, err)
}

// touch records activity on c for the idle timeout; the limit timer
// notices when it fires.
func (l *eventLoop) touch(c *LoopConn) { c.last = l.now }
