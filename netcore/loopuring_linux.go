package netcore

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/netcore-dev/netcore/internal/uring"
	"golang.org/x/sys/unix"
)

// The io_uring backend (Loop.Backend). Each event loop owns an io_uring
// instance, made on its locked thread (IORING_SETUP_SINGLE_ISSUER binds it
// there), instead of an epoll instance; the loop's iteration is the same
// (timers, lingering, flushing, resuming, draining), only its waiting and
// its I/O differ:
//
//   - A connection has a multishot receive armed while the loop wants its
//     input (where the epoll backend registers EPOLLIN): the kernel picks a
//     buffer from the loop's provided buffer ring for each arrival, and the
//     completion hands the bytes to the same path a read(2) feeds
//     (received). The buffer goes back to the ring as soon as the handler
//     has returned (what it left unconsumed was copied out by after), so an
//     idle connection holds none. Pausing (back-pressure, a close, EOF)
//     cancels the receive; resuming arms a new one.
//   - Output is sent by IORING_OP_SEND, at most one send in flight per
//     connection. The kernel reads a send's bytes after io_uring_enter
//     returns, so they must not move: the output buffer is handed to the
//     send (snd) and Writes go to a fresh one meanwhile; a short send goes
//     on from its completion. Every send prepared in an iteration goes to
//     the kernel in that iteration's one io_uring_enter.
//   - Listening sockets, the wake-up eventfd and lingering sockets are
//     watched with multishot polls, which complete as edge-triggered epoll
//     reports, so the accepting (steering, budget, EMFILE), the queue of
//     tasks and lingering work as with epoll. Accepting differs in one
//     way: a poll has no EPOLLEXCLUSIVE, so a new connection on a shared
//     listener wakes every loop waiting (steering still hands it to the
//     first loop that is not busy).
//   - A completion's user_data says what it is for: the kind, a
//     generation (which receive of the connection, which watch of the
//     listener), the connection's sequence number and the descriptor, so
//     that completions of a closed connection whose descriptor was reused
//     are told apart.

// Per loop: the provided buffers, 4 MiB. A receive takes the bytes it
// needs from the buffer at the ring's head, and the next receive, of any
// connection, goes on in the same buffer (incremental consumption, 6.12),
// so one io_uring_enter can take a great many connections' small
// arrivals. Where the kernel cannot, a buffer serves one receive, and the
// buffers are many and small: their count bounds how many connections'
// arrivals one io_uring_enter takes, and the rest end with -ENOBUFS and
// are received again. With 256 buffers of 16 KiB and no incremental
// consumption, echo at 10,000 connections ran at half the epoll Loop's
// rate, with 2.5 times its CPU per round trip, mostly in that churn.
const (
	uringIncBufs    = 256
	uringIncBufSize = 16 << 10
	uringBufs       = 1024
	uringBufSize    = 4 << 10
)

// Knobs for fault injection in tests (loopuring_faults_linux_test.go),
// read as a loop makes its ring or queues a request.
var (
	uringEntries uint32 = 1024 // submissions; the completion queue is 4 times larger
	uringRecvMax int           // > 0: every receive is a single one of at most this many bytes
	uringSendMax int           // > 0: every send offers at most this many bytes
	// uringFault, if it returns a result, has a receive or send (kind
	// udRecv or udSend) replaced by a no-op completing with that result.
	uringFault func(kind uint8) (res int32, ok bool)
)

// prepFault queues, in the place of a request of kind, the no-op
// uringFault asks for, if it asks.
func (l *eventLoop) prepFault(kind uint8, ud uint64) bool {
	if uringFault == nil {
		return false
	}
	res, ok := uringFault(kind)
	if ok {
		l.prep(request{op: opNop, n: uint32(res), ud: ud})
	}
	return ok
}

// The kinds of request, in user_data's top 4 bits.
const (
	udWake = iota + 1
	udListener
	udRecv
	udSend
	udCancel
	udLinger
)

// userData packs a request's kind, a 12-bit generation, the low 16 bits
// of a connection's sequence number and a descriptor (or an acceptor's
// index).
func userData(kind uint8, gen, seq uint32, fd int) uint64 {
	return uint64(kind)<<60 | uint64(gen&genMask)<<48 | uint64(seq&0xffff)<<32 | uint64(uint32(fd))
}

// genMask keeps the bits of a generation user_data holds. A generation
// that completions are checked against (LoopConn.recvGen, acceptor.gen)
// counts modulo genMask+1 (nextGen), so that it equals the one a
// completion brings back after any number of requests.
const genMask = 0xfff

func nextGen(gen uint32) uint32 { return (gen + 1) & genMask }

func splitUserData(ud uint64) (kind uint8, gen, seq uint32, fd int) {
	return uint8(ud >> 60), uint32(ud>>48) & genMask, uint32(ud>>32) & 0xffff, int(int32(uint32(ud)))
}

// uringLoop is an event loop's io_uring state; it belongs to the loop.
type uringLoop struct {
	r       *uring.Ring
	br      *uring.BufRing
	orphans map[uint64]*LoopConn // closed connections whose send is still in flight, by its user_data
	pending int                  // requests whose last completion has not come yet
	backlog []request            // requests waiting for room in the submission queue (prep)
	spare   []*buffer            // send buffers given back (sent), for the next sends
	lgen    uint32               // the last listener watch's generation
	ready   chan error           // the ring's making, reported to start
	fn      func(uint64, int32, uint32)
	spin    bool // SpinWait: the last wait found completions
	// Connections that received in the current load window, and in the
	// last one: whether waits are batched (waitUring).
	active, wasActive int
	window            int64       // the load window active counts (eventLoop.winStart)
	fresh             []*LoopConn // connections whose send was queued since the last wait
	// recvLimit: the kernel can end a multishot receive at a byte count
	// (uring.Ring.RecvLimit); without it every receive is a single one.
	recvLimit bool
	bufSize   int // the buffers' size: the most one receive takes
}

// uringIncremental, when false, makes the loops act as on a kernel
// without incremental buffer consumption (tests).
var uringIncremental = true

// uringRecvLimit, when false, makes the loops act as on a kernel that
// cannot end a multishot receive at a byte count (tests).
var uringRecvLimit = true

// useUring resolves Loop.Backend to io_uring or not: with BackendIOUring
// it fails with the reason io_uring cannot be used; with BackendBest it
// falls back to epoll, logging the reason once (start runs once per
// Loop).
func (lp *Loop) useUring() (bool, error) {
	b := lp.Backend
	if b == BackendDefault {
		if err := b.Set(os.Getenv(BackendEnv)); err != nil {
			return false, fmt.Errorf("%w, in the environment variable %s", err, BackendEnv)
		}
	}
	switch b {
	case BackendDefault, BackendEpoll:
		return false, nil
	case BackendIOUring, BackendBest:
		err := uring.Available()
		if err == nil {
			return true, nil
		}
		if b == BackendIOUring {
			return false, fmt.Errorf("netcore: Loop.Backend is io_uring, but %w", err)
		}
		lp.logger().Info("netcore: io_uring cannot be used here; the Loop uses epoll", "reason", err.Error())
		return false, nil
	}
	return false, fmt.Errorf("netcore: Loop.Backend is %v, which is no backend", lp.Backend)
}

// initUring makes the loop's ring and buffer ring, on the loop's thread,
// and starts watching the wake-up eventfd.
func (l *eventLoop) initUring() error {
	u := l.ur
	r, err := uring.New(uringEntries, uring.Options{})
	if err != nil {
		return fmt.Errorf("netcore: Loop.Backend io_uring: %w", err)
	}
	br, err := r.NewBufRingIncremental(0, uringIncBufs, uringIncBufSize)
	u.bufSize = uringIncBufSize
	if !uringIncremental && err == nil {
		br.Close()
		err = unix.EINVAL
	}
	if errors.Is(err, unix.EINVAL) {
		br, err = r.NewBufRing(0, uringBufs, uringBufSize)
		u.bufSize = uringBufSize
	}
	if err != nil {
		r.Close()
		return fmt.Errorf("netcore: Loop.Backend io_uring: the buffer ring: %w", err)
	}
	if uringRecvLimit {
		if u.recvLimit, err = r.RecvLimit(1); err != nil {
			br.Close()
			r.Close()
			return fmt.Errorf("netcore: Loop.Backend io_uring: %w", err)
		}
	}
	u.r, u.br = r, br
	u.orphans = make(map[uint64]*LoopConn)
	u.fn = l.completed
	l.prepPoll(l.wakefd, unix.POLLIN, userData(udWake, 0, 0, l.wakefd))
	return nil
}

// closeUring cancels what is still in flight, waits (bounded) for the
// kernel to let go of the buffers it was given, and closes the rings.
func (l *eventLoop) closeUring() {
	u := l.ur
	if u.r == nil {
		return
	}
	l.prepCancel(userData(udWake, 0, 0, l.wakefd))
	for end := time.Now().Add(2 * time.Second); u.pending > 0 && time.Now().Before(end); {
		l.submitBacklog()
		if _, err := u.r.SubmitAndWait(1, 100*time.Millisecond); err != nil && !retryable(err) {
			break
		}
		u.r.ForEachCQE(u.fn)
	}
	if u.pending > 0 {
		// The kernel may still write into the buffers or read the
		// sends' bytes: leave them to it (closing the ring ends the
		// requests; the mappings are lost, not reused).
		l.lp.logger().Error("netcore: io_uring requests still in flight at the loop's exit; their buffers are not reused",
			"requests", u.pending)
		u.r.Close()
		u.r = nil
		return
	}
	for ud, c := range u.orphans {
		l.sent(c)
		delete(u.orphans, ud)
	}
	u.br.Close()
	u.r.Close()
	u.r = nil
}

func retryable(err error) bool { return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EBUSY) }

// A request is what prep queues: an operation and its arguments, by value
// (a request that waits in backlog allocates nothing).
type request struct {
	op    uint8 // opRecv...
	fd    int
	ud    uint64 // user_data; for opCancel, the request to cancel
	p     []byte // opSend: the bytes (c.snd's, which stay put until the completion)
	n     uint32 // opRecv/opRecvMulti: the byte bound; opPoll: the events; opNop: the result
	multi bool   // opRecv: multishot
}

const (
	opRecv = iota
	opSend
	opPoll
	opCancel
	opNop // with an injected result (uringFault)
)

// add puts q in the submission queue, false if it is full.
func (u *uringLoop) add(q *request) bool {
	r := u.r
	switch q.op {
	case opRecv:
		if q.multi {
			return r.PrepRecvMultishot(q.fd, u.br.Group(), q.n, q.ud)
		}
		return r.PrepRecv(q.fd, u.br.Group(), q.n, q.ud)
	case opSend:
		// MSG_WAITALL for a send small enough to be quiet (waitUring):
		// its completion then means all of it went. A larger one
		// completes with what the socket took, as write(2) would, so
		// that each completion touches the connection (IdleTimeout)
		// and the output drains in steps (OutputLowWater).
		return r.PrepSend(q.fd, q.p, len(q.p) <= uringQuietSend, q.ud)
	case opPoll:
		return r.PrepPollMultishot(q.fd, q.n, q.ud)
	case opCancel:
		return r.PrepCancel(q.ud, userData(udCancel, 0, 0, 0))
	}
	if q.n == 0 {
		return r.PrepNop(q.ud)
	}
	return r.PrepNopResult(int32(q.n), q.ud)
}

// prep queues q and counts it in pending. With the submission queue full
// it submits what is queued and tries again; if the kernel takes nothing
// (an error: short of memory, say), q waits in backlog, in order, for the
// iteration's io_uring_enter (submitBacklog). No request is dropped, and
// the loop never spins here.
func (l *eventLoop) prep(q request) {
	u := l.ur
	u.pending++
	if len(u.backlog) == 0 {
		if u.add(&q) {
			return
		}
		if _, err := u.r.Submit(); err == nil && u.add(&q) {
			return
		}
	}
	u.backlog = append(u.backlog, q)
}

// submitBacklog moves the requests prep could not queue into the
// submission queue, submitting as it fills; what still does not fit
// waits for the next iteration.
func (l *eventLoop) submitBacklog() {
	u := l.ur
	i := 0
	for ; i < len(u.backlog); i++ {
		if u.add(&u.backlog[i]) {
			continue
		}
		if _, err := u.r.Submit(); err != nil && !retryable(err) {
			l.lp.logger().Error("netcore: io_uring_enter failed", "err", err)
		}
		if !u.add(&u.backlog[i]) {
			break
		}
	}
	n := copy(u.backlog, u.backlog[i:])
	clear(u.backlog[n:])
	u.backlog = u.backlog[:n]
}

func (l *eventLoop) prepPoll(fd int, events uint32, ud uint64) {
	l.prep(request{op: opPoll, fd: fd, n: events, ud: ud})
}

func (l *eventLoop) prepCancel(target uint64) { l.prep(request{op: opCancel, ud: target}) }

// Batched waits. A loop that wakes at every completion makes about one
// io_uring_enter per request when many clients each send one request and
// wait for its answer (redis-benchmark -c 1000 -P 1): each wake-up finds
// one or two. With many connections active, a wait asks for uringBatch
// completions but returns once uringBatchWait has passed with at least
// one (IORING_FEAT_MIN_TIMEOUT, 6.12; without it, at the first): an
// answer waits at most that long, where a round trip already takes
// uringBatchConns answers' worth of work. With few connections (a
// ping-pong, a handful of clients) a wait ends at the first completion, as
// with epoll.
const (
	uringBatchConns = 64 // connections that received in a load window
	uringBatch      = 32
	uringBatchWait  = 50 * time.Microsecond
	// uringQuietSend is the largest send whose completion need not end a
	// wait (see waitUring).
	uringQuietSend = 16 << 10
	uringQuietWait = time.Millisecond
)

// waitUring is the iteration's one io_uring_enter: it submits everything
// prepared since the last and waits until due for a completion, or a
// batch of them (see above; and eventLoop.wait for SpinWait).
func (l *eventLoop) waitUring(due, now int64) error {
	u := l.ur
	if len(u.backlog) > 0 {
		l.submitBacklog()
	}
	timeout := time.Duration(-1)
	if due >= 0 {
		timeout = time.Duration(max(due-now, 0))
	}
	if u.spin && timeout != 0 {
		end := now + int64(l.lim.spin)
		if due >= 0 {
			end = min(end, due)
		}
		for {
			if _, err := u.r.SubmitAndWait(1, 0); err != nil && !retryable(err) {
				return err
			}
			if u.r.CQReady() > 0 {
				clear(u.fresh)
				u.fresh = u.fresh[:0]
				return nil
			}
			if now = l.clock(); now >= end {
				break
			}
		}
		if due >= 0 {
			timeout = time.Duration(max(due-now, 0))
		}
	}
	if l.winStart != u.window {
		u.window, u.wasActive, u.active = l.winStart, u.active, 0
	}
	// A send completes once all of it is sent (MSG_WAITALL), often in
	// this very io_uring_enter. Its completion need not end the wait
	// unless something waits for it; otherwise a ping-pong would make
	// two io_uring_enter per request, one for the request and one for
	// the completion of its answer's send.
	want := uint32(1)
	for _, c := range u.fresh {
		if c.blocked && !c.closed && !l.awaitsSend(c) {
			want++
		}
	}
	clear(u.fresh)
	u.fresh = u.fresh[:0]
	if want > 1 && (timeout < 0 || timeout > uringQuietWait) {
		// Reaped within a millisecond all the same: a connection's
		// OutputBuffered and the Loop's Stats count a send's bytes
		// until its completion is reaped.
		timeout = uringQuietWait
	}
	var err error
	if max(u.active, u.wasActive) >= uringBatchConns {
		_, err = u.r.SubmitAndWaitBatch(max(want, uringBatch), uringBatchWait, timeout)
	} else {
		_, err = u.r.SubmitAndWait(want, timeout)
	}
	if err != nil && retryable(err) {
		err = nil // reap, then submit again
	}
	u.spin = l.lim.spin > 0 && u.r.CQReady() > 0
	return err
}

// reapUring handles every completion ready.
func (l *eventLoop) reapUring() { l.ur.r.ForEachCQE(l.ur.fn) }

// completed handles one completion.
func (l *eventLoop) completed(ud uint64, res int32, flags uint32) {
	u := l.ur
	kind, gen, seq, fd := splitUserData(ud)
	if kind == 0 || kind > udLinger {
		return // not the loop's (RecvLimit's probe)
	}
	more := uring.More(flags)
	if !more {
		u.pending--
	}
	switch kind {
	case udWake:
		l.drainQueue()
		if !more && !l.exiting() {
			l.prepPoll(l.wakefd, unix.POLLIN, ud) // the kernel dropped the poll: watch again
		}
	case udListener:
		if fd >= len(l.accs) || l.accs[fd] == nil || l.accs[fd].gen != gen {
			return // stale: that watch was cancelled
		}
		a := l.accs[fd]
		if res > 0 {
			l.accept(a, true)
		}
		if !more && res != -int32(unix.ECANCELED) && a.open.Load() && l.accs[fd] == a && a.gen == gen {
			a.open.Store(false)
			l.pauseListener(a, false) // ended on its own: watch again
		}
	case udRecv:
		l.recvCompleted(ud, gen, seq, fd, res, flags, more)
	case udSend:
		l.sendCompleted(ud, res)
	case udLinger:
		if res > 0 {
			l.lingerRead(fd)
		}
	}
}

// recvCompleted hands what a multishot receive brought to the connection.
func (l *eventLoop) recvCompleted(ud uint64, gen, seq uint32, fd int, res int32, flags uint32, more bool) {
	u := l.ur
	bid, hasBuf := uring.BufferID(flags)
	var p []byte
	if hasBuf {
		var recycle bool
		if p, recycle = u.br.Completed(bid, res, flags); recycle {
			defer u.br.Recycle(bid)
		}
	}
	var c *LoopConn
	if fd >= 0 && fd < len(l.conns) && l.conns[fd] != nil && l.conns[fd].seq&0xffff == seq {
		c = l.conns[fd]
	}
	if c == nil {
		return // a closed connection's: what it brought is dropped, as a closed socket drops it
	}
	current := c.recvGen == gen
	if !more && current {
		c.events = 0 // this receive has ended
	}
	switch {
	case res > 0 && hasBuf:
		if c.last < u.window {
			u.active++ // its first receive in this window
		}
		// Bytes the receive brought before its cancel took effect:
		// the epoll backend would not have read them yet.
		switch {
		case !c.readHeld():
			l.received(c, p)
		case c.flushClose:
			// Closing: dropped, as lingering drops what follows.
		case c.tls == nil:
			c.in.Write(p) // back-pressure: offered once the output drains (resume)
		default:
			l.received(c, p)
		}
	case res == 0:
		switch {
		case c.eof || c.flushClose:
		case c.readHeld():
			// The peer's FIN behind input the handler has not been
			// offered (back-pressure): the epoll backend would read
			// it after that input, so it waits (setRecv).
			c.finPending = true
		default:
			l.received(c, nil)
		}
	case res == -int32(unix.ENOBUFS), res == -int32(unix.ECANCELED),
		res == -int32(unix.EAGAIN), res == -int32(unix.EINTR):
		// Ended for want of a buffer (re-armed below, now that
		// buffers are coming back), cancelled (by the loop, or by
		// the kernel), or ended with nothing to take: re-armed
		// below if the loop still wants input.
	default: // an error
		l.closeConn(c, c.opErr("read", "recv", unix.Errno(-res)))
	}
	if !c.closed && c.events == 0 {
		l.rearm(c)
	}
}

// setRecv arms c's receive, or cancels it. A receive takes no more than
// room allows, as the epoll backend's read(2) does, so that MaxInput and
// the handshake's buffer hold: a multishot receive that ends by itself
// before it could pass room, or, for less than two buffers of room (or
// where the kernel cannot end a multishot receive at a byte count), a
// single receive of at most room bytes.
func (l *eventLoop) setRecv(c *LoopConn, want bool) {
	u := l.ur
	switch {
	case want && c.events == 0 && c.finPending:
		// The FIN a receive brought while reading was held: a
		// no-op completing with 0 delivers it as that receive would
		// have, after the input offered on resuming.
		c.finPending = false
		c.recvGen = nextGen(c.recvGen)
		c.events = unix.EPOLLIN
		l.prep(request{op: opNop, ud: userData(udRecv, c.recvGen, c.seq, c.fd)})
	case want && c.events == 0:
		n := l.room(c)
		if n <= 0 {
			return // a full input buffer waiting for output room (see after)
		}
		c.recvGen = nextGen(c.recvGen)
		c.events = unix.EPOLLIN
		ud := userData(udRecv, c.recvGen, c.seq, c.fd)
		if l.prepFault(udRecv, ud) {
			return
		}
		if uringRecvMax > 0 {
			n = min(n, uringRecvMax)
		}
		if u.recvLimit && n >= 2*u.bufSize {
			// It ends once it has taken atLeast bytes or more, the
			// last buffer's worth included: n at most.
			atLeast := uint32(n - u.bufSize + 1)
			l.prep(request{op: opRecv, multi: true, fd: c.fd, n: atLeast, ud: ud})
			return
		}
		max := uint32(min(n, u.bufSize))
		l.prep(request{op: opRecv, fd: c.fd, n: max, ud: ud})
	case !want && c.events != 0:
		c.events = 0
		l.prepCancel(userData(udRecv, c.recvGen, c.seq, c.fd))
		// At once, not with the iteration's enter: until the cancel
		// is in, the receive goes on taking what arrives.
		if _, err := l.ur.r.Submit(); err != nil && !retryable(err) {
			l.lp.logger().Error("netcore: io_uring_enter failed", "err", err)
		}
	}
}

// flushUring sends c's output, the ciphertext made of it with TLS: one
// send in flight at a time, its bytes moved to c.snd so that Writes
// meanwhile cannot move them. With nothing to send, it settles c as the
// epoll backend's flush does once everything is written.
func (l *eventLoop) flushUring(c *LoopConn) {
	if c.blocked {
		return // a send is in flight: its completion goes on
	}
	w := &c.out
	if c.tls != nil {
		w = l.seal(c)
	}
	if w.Len() > 0 {
		c.snd = l.ur.takeSnd() // (nil while no send is in flight)
		*c.snd, *w = *w, buffer{held: w.held}
		l.send(c)
		if c.paused {
			// Below the low watermark with this send in flight: as
			// the epoll backend after a write (a stream of Sends
			// would otherwise keep it paused).
			l.drained(c)
		}
		return
	}
	l.flushed(c, w)
}

// send queues the send of c.snd's bytes.
func (l *eventLoop) send(c *LoopConn) {
	c.blocked = true
	ud := sendUD(c)
	if l.prepFault(udSend, ud) {
		return
	}
	p := c.snd.Bytes()
	if uringSendMax > 0 {
		p = p[:min(len(p), uringSendMax)]
	}
	l.prep(request{op: opSend, fd: c.fd, p: p, ud: ud})
	l.ur.fresh = append(l.ur.fresh, c)
}

// sendUD is the user_data of c's send: 28 bits of its sequence number
// (the generation's bits hold bits 16-27) and its descriptor, so that it
// names c alone among the connections a descriptor has had recently.
func sendUD(c *LoopConn) uint64 { return userData(udSend, c.seq>>16, c.seq, c.fd) }

// sendCompleted goes on after a send: the rest of a short one, then
// whatever was written meanwhile.
func (l *eventLoop) sendCompleted(ud uint64, res int32) {
	_, _, _, fd := splitUserData(ud)
	var c *LoopConn
	if fd >= 0 && fd < len(l.conns) && l.conns[fd] != nil && l.conns[fd].blocked && sendUD(l.conns[fd]) == ud {
		c = l.conns[fd]
	} else if c = l.ur.orphans[ud]; c != nil {
		delete(l.ur.orphans, ud)
	} else {
		return
	}
	c.blocked = false
	if c.closed {
		l.sent(c) // the kernel is done with the bytes now
		return
	}
	if res < 0 {
		if res == -int32(unix.EAGAIN) || res == -int32(unix.EINTR) {
			l.send(c)
			return
		}
		l.sent(c)
		l.closeConn(c, c.opErr("write", "send", unix.Errno(-res)))
		return
	}
	c.snd.Discard(int(res))
	l.touch(c)
	if c.snd.Len() > 0 {
		l.send(c)
		return
	}
	l.sent(c)
	c.outN.Store(int64(c.outLen()))
	l.flushConn(c)
}

// sent releases c.snd's bytes, once the kernel is done with them, and
// keeps the buffer for the loop's next send: an idle connection holds
// none, and a send allocates none.
func (l *eventLoop) sent(c *LoopConn) {
	c.snd.Release()
	l.ur.spare = append(l.ur.spare, c.snd)
	c.snd = nil
}

// takeSnd is a buffer for a send, the last one given back if any.
func (u *uringLoop) takeSnd() *buffer {
	if n := len(u.spare); n > 0 {
		b := u.spare[n-1]
		u.spare[n-1] = nil
		u.spare = u.spare[:n-1]
		return b
	}
	return new(buffer)
}

// awaitsSend reports whether something waits for the completion of c's
// send in flight: more output behind it, a close or half-close after it,
// the end of back-pressure, a Shutdown that closes c once it is idle, or
// Send's bound, which counts the send's bytes until its completion is
// reaped (so only a small send may wait); or the rest of c.snd, when the
// send offers only part of it (uringSendMax).
func (l *eventLoop) awaitsSend(c *LoopConn) bool {
	return c.snd.Len() > uringQuietSend || (uringSendMax > 0 && c.snd.Len() > uringSendMax) ||
		c.out.Len() > 0 || (c.tls != nil && c.tls.raw.Len() > 0) ||
		c.flushClose || c.wantShutWr || c.paused || l.draining || l.forcing
}

// forgetUring ends c's requests as it closes: its receive and its send in
// flight are cancelled (a send to a peer that reads nothing would never
// complete); the send's bytes are released at its completion.
func (l *eventLoop) forgetUring(c *LoopConn) {
	if c.events != 0 {
		c.events = 0
		l.prepCancel(userData(udRecv, c.recvGen, c.seq, c.fd))
	}
	if c.blocked {
		l.ur.orphans[sendUD(c)] = c
		l.prepCancel(sendUD(c))
	}
	l.submitBeforeClose()
}

// submitBeforeClose hands the kernel every request queued so far, before
// the loop closes a descriptor. The kernel finds a request's file when it
// is submitted: a request on a connection's descriptor still waiting in
// the submission queue when the descriptor is closed and taken by an
// accept would act on the new connection (send the old one's bytes to it,
// or take its first bytes into a receive dropped as stale).
func (l *eventLoop) submitBeforeClose() {
	if len(l.ur.backlog) > 0 {
		l.submitBacklog()
	}
	for i := 0; l.ur.r.SQSpace() < l.ur.r.SQEntries() && i < 100; i++ {
		if _, err := l.ur.r.Submit(); err != nil && !retryable(err) {
			l.lp.logger().Error("netcore: io_uring_enter failed", "err", err)
			return
		}
	}
}

// watchUring watches a listener (a multishot poll), or stops.
func (l *eventLoop) watchUring(a *acceptor, fd int, on bool) {
	if on {
		// From the loop's counter, not the acceptor's: a new acceptor
		// in a closed one's slot must not take a generation whose
		// completions may still come.
		l.ur.lgen = nextGen(l.ur.lgen)
		a.gen = l.ur.lgen
		l.prepPoll(fd, unix.POLLIN, userData(udListener, a.gen, 0, a.idx))
		return
	}
	l.prepCancel(userData(udListener, a.gen, 0, a.idx))
}

// exiting reports whether the loop is on its way out (no new watches).
func (l *eventLoop) exiting() bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.exited
}
