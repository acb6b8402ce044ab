//go:build linux

package benchmarks

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/uring"
	"golang.org/x/sys/unix"
)

// uringServer is an echo written directly on internal/uring, netcore's
// io_uring layer: not the Loop (loop-uring is the Loop on its io_uring
// backend), but what an io_uring echo with nothing else to do reaches
// here, written before the Loop had that backend. GOMAXPROCS event loops, each a
// goroutine locked to its OS thread with its own Ring (SINGLE_ISSUER,
// DEFER_TASKRUN), its own provided buffer ring and its own listening
// socket (SO_REUSEPORT: the kernel spreads connections over the loops).
// A loop keeps a multishot accept on its listener and a multishot receive
// on every connection, copies what arrives into the connection's output
// buffer (recycling the receive buffer at once) and sends it back, one
// send in flight per connection. Each iteration is one io_uring_enter:
// it submits every send prepared while reaping the previous completions
// and waits for at least one more.
//
// The buffer ring's shape comes from NETCORE_URING_BUFS, COUNTxSIZE
// (default uringBufs x uringBufSize), so that sizes can be compared
// without a rebuild. With NETCORE_URING_STATS set to a file name, each
// server appends one line of its loops' counters to it when it closes.
type uringServer struct {
	addr   string
	loops  []*uringLoop
	closed sync.Once
	err    error
}

// The defaults of the buffer ring (per loop) and of the rings.
const (
	uringBufs     = 256
	uringBufSize  = 4 << 10
	uringSQ       = 4096 // submissions; the CQ is 4 times larger
	uringStopWait = 5 * time.Second
)

// uringMaxQueue is how many output bytes may wait on a connection: beyond
// it, its receive is cancelled (paused) until the sends have caught up to
// half of it. A variable for the tests.
var uringMaxQueue = 1 << 20

// The kinds of request, in user_data's top byte. user_data is kind<<56 |
// seq<<32 | fd: seq is the connection's sequence number (its fd's
// generation, 24 bits), so that a completion for an earlier connection on
// a reused descriptor is recognised and ignored.
const (
	udAccept = iota + 1
	udRecv
	udSend
	udCancel
	udClose
	udWake
)

func userData(kind uint8, seq uint32, fd int) uint64 {
	return uint64(kind)<<56 | uint64(seq&0xffffff)<<32 | uint64(uint32(fd))
}

func splitUserData(ud uint64) (kind uint8, seq uint32, fd int) {
	return uint8(ud >> 56), uint32(ud>>32) & 0xffffff, int(int32(uint32(ud)))
}

// uringConn is one connection's state, kept in its loop's table by
// descriptor and reused (with the next seq) when the descriptor is.
type uringConn struct {
	fd  int
	seq uint32
	// out is being sent (from out[off:]) while sending; otherwise it
	// collects what arrives, sent at the end of the batch. It is never
	// changed while its send is in flight: what arrives then goes to pend.
	out, pend []byte
	off       int
	sending   bool // a send is in flight (at most one)
	recvArmed bool // the multishot receive is armed
	paused    bool // the receive was ended because too much waits to be sent
	dirty     bool // in the loop's dirty list: send out at the end of the batch
	closing   bool // EOF or an error: cancelling, then closing
	closeSent bool // the close is queued: nothing more is submitted for it
	open      bool
}

// uringLoop is one event loop: a thread, a ring, a buffer ring, a listener.
type uringLoop struct {
	ln    int // listening socket
	wake  int // eventfd: Close writes it, a read queued on the ring sees it
	r     *uring.Ring
	br    *uring.BufRing
	conns []*uringConn // by descriptor
	dirty []*uringConn // to send at the end of this batch
	open  int          // connections not yet closed

	wakeBuf     [8]byte
	acceptArmed bool
	wakeArmed   bool
	stopping    bool
	err         error // the first unexpected error

	onCQE func(uint64, int32, uint32)
	done  chan struct{}

	// Counters, for NETCORE_URING_STATS.
	enters, cqes, accepts, recvs, sends, shortSends, enobufs, rearms, resumes, midSubmits, maxBatch int
}

// StartUring starts the io_uring echo server on addr.
func StartUring(addr string) (Server, error) {
	nbufs, size, err := uringBufShape()
	if err != nil {
		return nil, err
	}
	if err := uring.Available(); err != nil {
		return nil, fmt.Errorf("io_uring: %v", err)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	n := runtime.GOMAXPROCS(0)
	s := &uringServer{}
	for i := range n {
		ln, err := uringListen(ap)
		if err != nil {
			s.Close()
			return nil, err
		}
		if i == 0 { // the others bind the port the kernel chose for the first
			sa, err := unix.Getsockname(ln)
			if err != nil {
				unix.Close(ln)
				return nil, os.NewSyscallError("getsockname", err)
			}
			ap = netip.AddrPortFrom(ap.Addr(), uint16(sockaddrPort(sa)))
			s.addr = ap.String()
		}
		lp := &uringLoop{ln: ln, wake: -1, done: make(chan struct{})}
		ready := make(chan error, 1)
		go lp.run(nbufs, size, ready)
		if err := <-ready; err != nil {
			unix.Close(ln)
			s.Close()
			return nil, err
		}
		s.loops = append(s.loops, lp)
	}
	return s, nil
}

// uringBufShape reads NETCORE_URING_BUFS (COUNTxSIZE).
func uringBufShape() (nbufs uint32, size int, err error) {
	v := os.Getenv("NETCORE_URING_BUFS")
	if v == "" {
		return uringBufs, uringBufSize, nil
	}
	c, sz, ok := strings.Cut(v, "x")
	n, err1 := strconv.ParseUint(c, 10, 32)
	s, err2 := strconv.Atoi(sz)
	if !ok || err1 != nil || err2 != nil || n == 0 || n&(n-1) != 0 || n > 32768 || s <= 0 {
		return 0, 0, fmt.Errorf("NETCORE_URING_BUFS=%q: want COUNTxSIZE, COUNT a power of two up to 32768", v)
	}
	return uint32(n), s, nil
}

func sockaddrPort(sa unix.Sockaddr) int {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	return 0
}

// uringListen makes a listening socket on ap in an SO_REUSEPORT group,
// with TCP_NODELAY (which accepted sockets inherit, as Go's net and the
// Loop set it on theirs).
func uringListen(ap netip.AddrPort) (int, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	for _, o := range [][2]int{{unix.SOL_SOCKET, unix.SO_REUSEADDR}, {unix.SOL_SOCKET, unix.SO_REUSEPORT}, {unix.IPPROTO_TCP, unix.TCP_NODELAY}} {
		if err := unix.SetsockoptInt(fd, o[0], o[1], 1); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("listen", err)
	}
	return fd, nil
}

func (s *uringServer) Addr() string { return s.addr }

// Close wakes every loop, which cancels its requests, closes its
// connections and its listener, and waits for them.
func (s *uringServer) Close() error {
	s.closed.Do(func() {
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		for _, lp := range s.loops {
			if _, err := unix.Write(lp.wake, one); err != nil {
				s.err = errors.Join(s.err, os.NewSyscallError("write", err))
			}
		}
		var stats []string
		for _, lp := range s.loops {
			<-lp.done
			s.err = errors.Join(s.err, lp.err)
			stats = append(stats, lp.stats())
		}
		if name := os.Getenv("NETCORE_URING_STATS"); name != "" && len(s.loops) > 0 {
			line := fmt.Sprintf("uring pid %d: %s; process io_uring_enter %d\n", os.Getpid(),
				strings.Join(stats, " | "), sys.Count(sys.OpIoUringEnter))
			if f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
				f.WriteString(line)
				f.Close()
			}
		}
	})
	return s.err
}

func (lp *uringLoop) stats() string {
	return fmt.Sprintf("enters %d cqes %d (max batch %d) accepts %d recvs %d sends %d (short %d) enobufs %d rearms %d resumes %d mid-batch submits %d",
		lp.enters, lp.cqes, lp.maxBatch, lp.accepts, lp.recvs, lp.sends, lp.shortSends, lp.enobufs, lp.rearms, lp.resumes, lp.midSubmits)
}

// run is the loop's goroutine, on its own thread for its whole life (the
// ring is SINGLE_ISSUER). It reports on ready once it accepts.
func (lp *uringLoop) run(nbufs uint32, size int, ready chan<- error) {
	defer close(lp.done)
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	var err error
	if lp.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil { // blocking: io_uring waits on its read
		ready <- os.NewSyscallError("eventfd", err)
		return
	}
	defer unix.Close(lp.wake)
	if lp.r, err = uring.New(uringSQ, uring.Options{}); err != nil {
		ready <- err
		return
	}
	defer lp.r.Close()
	if lp.br, err = lp.r.NewBufRing(0, nbufs, size); err != nil {
		ready <- err
		return
	}
	defer lp.br.Close()
	lp.onCQE = lp.handle
	lp.prepAccept()
	lp.prep(func() bool { return lp.r.PrepRead(lp.wake, lp.wakeBuf[:], userData(udWake, 0, lp.wake)) })
	lp.wakeArmed = true
	ready <- nil

	var deadline time.Time
	for {
		timeout := time.Duration(-1)
		if lp.stopping {
			if lp.finished() {
				break
			}
			timeout = time.Until(deadline)
			if timeout <= 0 {
				lp.fail(fmt.Errorf("uring: %d connections, accept armed %v, still open %v after stopping", lp.open, lp.acceptArmed, uringStopWait))
				break
			}
		}
		if _, err := lp.r.SubmitAndWait(1, timeout); err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EBUSY) {
			lp.fail(err)
			break
		}
		lp.enters++
		n := lp.r.ForEachCQE(lp.onCQE)
		lp.cqes += n
		lp.maxBatch = max(lp.maxBatch, n)
		lp.flush()
		if lp.stopping && deadline.IsZero() {
			deadline = time.Now().Add(uringStopWait)
			lp.stop()
		}
	}
	// Whatever is left (only after a failure or the bound) goes with the
	// ring: closing it cancels every request.
	for _, c := range lp.conns {
		if c != nil && c.open && !c.closeSent {
			unix.Close(c.fd)
		}
	}
	unix.Close(lp.ln)
}

func (lp *uringLoop) fail(err error) {
	if lp.err == nil {
		lp.err = err
	}
}

// finished says whether a stopping loop is done: no accept, no
// connection, the wake-up read complete.
func (lp *uringLoop) finished() bool { return !lp.acceptArmed && lp.open == 0 && !lp.wakeArmed }

// stop begins the end: the accept cancelled, every connection closing.
func (lp *uringLoop) stop() {
	if lp.acceptArmed {
		lp.prep(func() bool { return lp.r.PrepCancel(userData(udAccept, 0, lp.ln), userData(udCancel, 0, lp.ln)) })
	}
	for _, c := range lp.conns {
		if c != nil && c.open {
			lp.startClose(c)
		}
	}
}

// prep queues one submission, submitting what is queued first if the SQ
// is full (then this iteration makes more than one io_uring_enter).
func (lp *uringLoop) prep(f func() bool) {
	for !f() {
		lp.midSubmits++
		if _, err := lp.r.Submit(); err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EBUSY) {
			lp.fail(err)
			return
		}
	}
}

func (lp *uringLoop) prepAccept() {
	for !lp.r.PrepAcceptMultishot(lp.ln, userData(udAccept, 0, lp.ln)) {
		lp.submitFull()
	}
	lp.acceptArmed = true
}

func (lp *uringLoop) prepRecv(c *uringConn) {
	for !lp.r.PrepRecvMultishot(c.fd, lp.br.Group(), 0, userData(udRecv, c.seq, c.fd)) {
		lp.submitFull()
	}
	c.recvArmed = true
}

func (lp *uringLoop) prepSend(c *uringConn) {
	for !lp.r.PrepSend(c.fd, c.out[c.off:], false, userData(udSend, c.seq, c.fd)) {
		lp.submitFull()
	}
	c.sending = true
	lp.sends++
}

func (lp *uringLoop) submitFull() {
	lp.midSubmits++
	if _, err := lp.r.Submit(); err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EBUSY) {
		lp.fail(err)
	}
}

// handle is one completion.
func (lp *uringLoop) handle(ud uint64, res int32, flags uint32) {
	kind, seq, fd := splitUserData(ud)
	switch kind {
	case udAccept:
		lp.onAccept(res, flags)
	case udRecv:
		lp.onRecv(lp.conn(fd, seq), res, flags)
	case udSend:
		lp.onSend(lp.conn(fd, seq), res)
	case udClose:
		if c := lp.conn(fd, seq); c != nil {
			c.open = false
			c.out, c.pend = c.out[:0], c.pend[:0]
			lp.open--
		}
	case udWake:
		lp.wakeArmed = false
		lp.stopping = true
	case udCancel: // its target's own completion says what happened
	}
}

// conn is the connection a completion is for, or nil for a stale one (its
// descriptor closed and maybe reused since).
func (lp *uringLoop) conn(fd int, seq uint32) *uringConn {
	if fd < 0 || fd >= len(lp.conns) {
		return nil
	}
	if c := lp.conns[fd]; c != nil && c.open && c.seq == seq {
		return c
	}
	return nil
}

func (lp *uringLoop) onAccept(res int32, flags uint32) {
	if !uring.More(flags) {
		lp.acceptArmed = false
		if !lp.stopping {
			lp.prepAccept()
		}
	}
	if res < 0 {
		return // ECONNABORTED, EMFILE, ECANCELED...: the accept goes on, or was re-armed
	}
	fd := int(res)
	if lp.stopping {
		unix.Close(fd)
		return
	}
	lp.accepts++
	if fd >= len(lp.conns) {
		lp.conns = append(lp.conns, make([]*uringConn, fd+1-len(lp.conns))...)
	}
	c := lp.conns[fd]
	if c == nil {
		c = &uringConn{}
		lp.conns[fd] = c
	}
	*c = uringConn{fd: fd, seq: (c.seq + 1) & 0xffffff, out: c.out[:0], pend: c.pend[:0], open: true}
	lp.open++
	lp.prepRecv(c)
}

func (lp *uringLoop) onRecv(c *uringConn, res int32, flags uint32) {
	if bid, ok := uring.BufferID(flags); ok {
		if c != nil && res > 0 && !c.closing {
			lp.recvs++
			b := lp.br.Buf(bid, int(res))
			if c.sending {
				c.pend = append(c.pend, b...)
				if len(c.pend) > uringMaxQueue && c.recvArmed && !c.paused {
					// The peer sends faster than it reads: stop receiving.
					c.paused = true
					lp.prep(func() bool {
						return lp.r.PrepCancel(userData(udRecv, c.seq, c.fd), userData(udCancel, c.seq, c.fd))
					})
				}
			} else {
				c.out = append(c.out, b...)
				lp.markDirty(c)
			}
		}
		lp.br.Recycle(bid) // right after the copy, stale or not
	}
	if c == nil {
		return
	}
	if uring.More(flags) {
		return
	}
	c.recvArmed = false
	switch {
	case c.closing:
		lp.tryClose(c)
	case res == -int32(unix.ENOBUFS):
		lp.enobufs++
		lp.rearm(c)
	case res == -int32(unix.ECANCELED) && c.paused:
		lp.resume(c) // if the sends caught up meanwhile
	case res == 0 || res < 0: // EOF, or an error (ECONNRESET...)
		lp.startClose(c)
	default: // ended with data (the kernel may end a multishot receive at any time)
		lp.rearm(c)
	}
}

// rearm queues the receive again, unless it is paused or too much waits to
// be sent (then it pauses).
func (lp *uringLoop) rearm(c *uringConn) {
	if c.paused || len(c.out)-c.off+len(c.pend) > uringMaxQueue {
		c.paused = true
		lp.resume(c)
		return
	}
	lp.rearms++
	lp.prepRecv(c)
}

// resume re-arms a paused receive once it has ended and the output has
// caught up to half the limit.
func (lp *uringLoop) resume(c *uringConn) {
	if !c.paused || c.recvArmed || c.closing || len(c.out)-c.off+len(c.pend) > uringMaxQueue/2 {
		return
	}
	c.paused = false
	lp.resumes++
	lp.prepRecv(c)
}

func (lp *uringLoop) onSend(c *uringConn, res int32) {
	if c == nil {
		return
	}
	c.sending = false
	if c.closing {
		lp.tryClose(c)
		return
	}
	if res < 0 && res != -int32(unix.EAGAIN) {
		lp.startClose(c)
		return
	}
	if res > 0 {
		c.off += int(res)
	}
	if c.off < len(c.out) { // a short send: the rest, now
		lp.shortSends++
		lp.prepSend(c)
		return
	}
	c.out, c.pend, c.off = c.pend, c.out[:0], 0
	if len(c.out) > 0 {
		lp.markDirty(c)
	}
	lp.resume(c)
}

func (lp *uringLoop) markDirty(c *uringConn) {
	if !c.dirty {
		c.dirty = true
		lp.dirty = append(lp.dirty, c)
	}
}

// flush sends, once per batch, what each connection collected.
func (lp *uringLoop) flush() {
	for i, c := range lp.dirty {
		c.dirty = false
		lp.dirty[i] = nil
		if c.open && !c.closing && !c.sending && len(c.out) > c.off {
			lp.prepSend(c)
		}
	}
	lp.dirty = lp.dirty[:0]
}

// startClose cancels what c has in flight (by user_data); the close
// follows once each request has ended (tryClose), so that neither the
// descriptor nor the output buffer is reused under the kernel.
func (lp *uringLoop) startClose(c *uringConn) {
	if c.closing {
		return
	}
	c.closing = true
	if c.recvArmed {
		lp.prep(func() bool { return lp.r.PrepCancel(userData(udRecv, c.seq, c.fd), userData(udCancel, c.seq, c.fd)) })
	}
	if c.sending {
		lp.prep(func() bool { return lp.r.PrepCancel(userData(udSend, c.seq, c.fd), userData(udCancel, c.seq, c.fd)) })
	}
	lp.tryClose(c)
}

func (lp *uringLoop) tryClose(c *uringConn) {
	if c.recvArmed || c.sending || c.closeSent {
		return
	}
	c.closeSent = true
	lp.prep(func() bool { return lp.r.PrepClose(c.fd, userData(udClose, c.seq, c.fd)) })
}
