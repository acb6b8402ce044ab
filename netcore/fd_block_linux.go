package netcore

import (
	"bytes"
	"context"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// blockFD is the fast path: a blocking socket whose calls block in the
// kernel on their own thread, which the kernel wakes directly when data
// arrives, where the runtime poller needs a second wake-up (the poller's
// thread, then the goroutine's). It costs a thread per blocked call, so it
// suits a few busy connections, not thousands of idle ones.
//
// netcore does for it what the runtime does for pollFD:
//
//   - A reference count keeps the descriptor open while a call is in
//     flight; close marks it closing and the last call out closes it, so
//     its number is never reused under a call.
//   - Deadlines are the kernel's SO_RCVTIMEO/SO_SNDTIMEO, set before a
//     call to the time left. With no deadline they are set to a long
//     timeout (kernelTimeoutMax) rather than to none: a socket call with a
//     finite timeout returns EINTR when a signal arrives, where one
//     without is restarted.
//   - That is how a call already blocked is woken when its deadline is
//     moved earlier or the socket is closed: netcore finds the threads
//     blocked in a system call on the descriptor (/proc/self/task/*/syscall)
//     and sends each SIGURG, the signal Go's runtime itself uses to preempt
//     and that Go programs must already tolerate. The interrupted call
//     sees the new deadline or the close and returns. Calls record when
//     they are inside the kernel (seq), so the waker knows when to stop.
//   - A cleanup closes the descriptor if the socket is dropped without
//     close, as the runtime does for *os.File.
type blockFD struct {
	sysfd   int
	state   atomic.Uint64 // calls in flight << 1 | closingBit
	cleanup runtime.Cleanup

	// dl is each direction's deadline, in nanoseconds of the monotonic
	// clock since clockBase; 0 for none.
	dl [numDirs]atomic.Int64
	// seq counts each direction's entries to and exits from the kernel:
	// odd while a call is inside.
	seq [numDirs]atomic.Uint32
	// kto is each direction's SO_RCVTIMEO/SO_SNDTIMEO as last set (0: the
	// kernel's default, none). Only the direction's one caller at a time
	// (Conn's read or write lock, Listener's lock) touches it.
	kto [numDirs]time.Duration
	// changed is set once a kernel timeout was set to anything but
	// kernelTimeoutMax. Linux copies a listener's timeouts into a
	// connection when the handshake ends, not at accept: once they have
	// changed, an accepted socket's are unknown.
	changed atomic.Bool
}

const closingBit = 1

// kernelTimeoutMax is the kernel timeout of a call without a deadline. It
// only has to be finite; a call that reaches it goes round and waits again.
const kernelTimeoutMax = 24 * time.Hour

// wakeBound bounds how long close or a deadline change tries to interrupt
// a blocked call.
const wakeBound = time.Second

// newBlockFD makes s a blocking-mode socket; netcore owns it from here.
// The caller has taken a slot of the blocking budget for it
// (takeBlockingSlot), which its close gives back.
func newBlockFD(s int) *blockFD {
	fd := &blockFD{sysfd: s}
	fd.cleanup = runtime.AddCleanup(fd, closeBlockingRaw, s)
	return fd
}

// ready turns the socket blocking once it is connected or listening. A
// listener also gets the long kernel timeout in both directions, which the
// sockets it accepts inherit; a connected socket gets it at its first
// call.
func (fd *blockFD) ready(listening bool) error {
	if err := sys.SetNonblock(fd.sysfd, false); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	if !listening {
		return nil
	}
	for d := range numDirs {
		if err := fd.setKernelTimeout(d, kernelTimeoutMax); err != nil {
			return err
		}
	}
	return nil
}

// accepted wraps s, which inherited this listener's kernel timeouts: known
// only while the listener never had anything but the long one. Past the
// blocking budget, s is served in the default mode instead.
func (fd *blockFD) accepted(s int) (descriptor, error) {
	if !takeBlockingSlot() {
		if err := sys.SetNonblock(s, true); err != nil {
			closeFD(s)
			return nil, os.NewSyscallError("fcntl", err)
		}
		return newPollFD(s)
	}
	nfd := newBlockFD(s)
	if !fd.changed.Load() {
		nfd.kto = fd.kto
	} // else unknown (0): the first call sets them
	return nfd, nil
}

func (fd *blockFD) acceptFlags() int { return unix.SOCK_CLOEXEC }

// incref takes a reference for a call, unless close has begun.
func (fd *blockFD) incref() bool {
	for {
		old := fd.state.Load()
		if old&closingBit != 0 {
			return false
		}
		if fd.state.CompareAndSwap(old, old+2) {
			return true
		}
	}
}

// decref drops a reference; the last one after close closes the
// descriptor, as an ordinary (not raw) system call, so that a lingering
// close blocks only its own thread.
func (fd *blockFD) decref() {
	if fd.state.Add(^uint64(1)) == closingBit { // minus 2: no calls left, closing
		fd.cleanup.Stop()
		closeBlockingRaw(fd.sysfd)
	}
}

func (fd *blockFD) closing() bool { return fd.state.Load()&closingBit != 0 }

func (fd *blockFD) isClosed() bool { return fd.closing() }

func (fd *blockFD) run(o *op) error {
	if !fd.incref() {
		return net.ErrClosed
	}
	defer fd.decref()
	o.err = nil
	seq := &fd.seq[o.dir]
	for {
		// seq is odd from before the deadline is read until the call is
		// back: a deadline set meanwhile either is seen here or
		// interrupts the call.
		seq.Add(1)
		if fd.closing() {
			// Close set its bit before looking at seq; this call set seq
			// before looking at the bit: one of the two sees the other.
			seq.Add(1)
			return net.ErrClosed
		}
		err := fd.arm(o.dir)
		finished := err == nil && o.try(fd.sysfd, true)
		seq.Add(1)
		if finished && o.err == nil {
			return nil // completed: its result stands even if Close began meanwhile
		}
		if fd.closing() {
			// Whatever the call said, the socket is being closed.
			return net.ErrClosed
		}
		if err != nil {
			return err
		}
		if finished {
			return o.err
		}
		// Not finished: the kernel timeout fired, or a signal interrupted
		// the call. Look at the deadline again, then call again.
	}
}

// arm prepares a call in direction d: os.ErrDeadlineExceeded if d's
// deadline has passed; otherwise the kernel timeout is made to end the call
// before the deadline (kernelTimeoutMax without one), and the call goes
// round when it fires early.
//
// The kernel's timer wheel rounds a timeout up, by as much as an eighth of
// it (256 ms for 2 to 16 s at HZ=250), so a timeout aimed at the deadline
// itself fires late. A timeout of at most seven eighths of the time left
// fires before the deadline, and each round aims at a fraction of the one
// before, so the deadline is met to within a timer tick. The setsockopt(2)
// is skipped while the timeout already set is between half of what it
// would be set to (half the time left, at most kernelTimeoutMax) and seven
// eighths of the time left: a deadline moved forward by the same amount on
// every request, or one set once far ahead, costs no system call per call
// (a few over its whole life), where aiming at exactly the time left would
// reset it on every call.
func (fd *blockFD) arm(d direction) error {
	cur := fd.kto[d]
	dl := fd.dl[d].Load()
	if dl == 0 {
		if cur == kernelTimeoutMax {
			return nil
		}
		return fd.setKernelTimeout(d, kernelTimeoutMax)
	}
	now := monoNow()
	if dl <= now { // compared, not subtracted: dl may be math.MinInt64
		return os.ErrDeadlineExceeded
	}
	left := time.Duration(dl - now)
	want := min(left/2, kernelTimeoutMax)
	if cur != 0 && cur <= left-left/8 && cur >= want/2 {
		return nil
	}
	return fd.setKernelTimeout(d, max(want, time.Microsecond)) // a zero timeval means none
}

// setKernelTimeout sets SO_RCVTIMEO (dirRead) or SO_SNDTIMEO (dirWrite).
func (fd *blockFD) setKernelTimeout(d direction, t time.Duration) error {
	opt := unix.SO_RCVTIMEO
	if d == dirWrite {
		opt = unix.SO_SNDTIMEO
	}
	tv := unix.NsecToTimeval(t.Nanoseconds())
	b := unsafe.Slice((*byte)(unsafe.Pointer(&tv)), unsafe.Sizeof(tv))
	if err := sys.Setsockopt(fd.sysfd, unix.SOL_SOCKET, opt, b); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	fd.kto[d] = t
	if t != kernelTimeoutMax && !fd.changed.Load() {
		fd.changed.Store(true)
	}
	return nil
}

// clockBase is the origin of blockFD deadlines. Deadlines are kept as
// monotonic durations from it, which never overflow: a time centuries
// away saturates instead of wrapping as UnixNano does.
var clockBase = time.Now()

func monoNow() int64 { return int64(time.Since(clockBase)) }

// monoDeadline converts t to a deadline for blockFD.dl: 0 for the zero
// time, a value never 0 otherwise.
func monoDeadline(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	// time.Until uses t's monotonic reading if it has one, and the wall
	// clock now otherwise (as Go's poller does), and saturates.
	now, left := monoNow(), int64(time.Until(t))
	if left > 0 && now > math.MaxInt64-left {
		return math.MaxInt64
	}
	d := now + left
	if d == 0 {
		d = -1 // clockBase itself: long past, but not "no deadline"
	}
	return d
}

// setDeadline stores the deadline; if a call in that direction is blocked
// and the deadline came earlier, the call is woken to look at it. A later
// deadline needs no wake-up: the call's kernel timeout ends it sooner, and
// it goes round.
func (fd *blockFD) setDeadline(d direction, t time.Time) error {
	if fd.closing() {
		return net.ErrClosed
	}
	nd := monoDeadline(t)
	old := fd.dl[d].Swap(nd)
	if nd != 0 && (old == 0 || nd < old) {
		// With a reference held, so that the descriptor number the
		// wake-up looks for cannot be closed and reused meanwhile.
		if !fd.incref() {
			return net.ErrClosed
		}
		fd.wake(d)
		fd.decref()
	}
	return nil
}

// wake interrupts the call of direction d that is inside the kernel, if
// one is, and waits until it has come back out, for at most wakeBound. It
// reports false if it could not make it come out.
func (fd *blockFD) wake(d direction) bool {
	if fd.seq[d].Load()&1 == 0 {
		return true // no call inside: the next one sees the change
	}
	return len(wakeCalls([]*blockFD{fd}, d)) == 0
}

// close marks the socket closing, wakes the calls blocked on it, and closes
// the descriptor now or when the last of them leaves. Close holds a
// reference of its own meanwhile. The calls are woken by a signal, not by
// shutdown(2): shutting the connection down would change what the peer
// sees (a FIN instead of the reset that SO_LINGER 0 asks for) and kill
// descriptors dup'ed from this one. Only if the calls cannot be woken that
// way (no /proc) is the socket shut down to free them.
func (fd *blockFD) close() error {
	first, inFlight := fd.beginClose()
	if !first {
		return nil
	}
	if inFlight {
		for d := range numDirs {
			if !fd.wake(d) {
				_ = sys.Shutdown(fd.sysfd, unix.SHUT_RDWR)
				break
			}
		}
	}
	fd.decref()
	return nil
}

// beginClose marks the socket closing and takes close's own reference;
// first is false if close had begun already, inFlight tells whether calls
// are in flight to be woken. The caller ends with decref.
func (fd *blockFD) beginClose() (first, inFlight bool) {
	for {
		old := fd.state.Load()
		if old&closingBit != 0 {
			return false, false
		}
		if fd.state.CompareAndSwap(old, (old+2)|closingBit) {
			return true, old>>1 > 0
		}
	}
}

// closeBlocking closes many blocking-mode sockets at once (a Server's Close
// or forced Shutdown): the calls blocked on them are woken with one scan of
// the process's threads per round for all of them, where closing them one
// by one would scan the threads once per socket (1,500 blocked handlers:
// 24 s). Sockets whose calls cannot be woken are shut down, as close does.
func closeBlocking(fds []*blockFD) {
	var busy []*blockFD
	for _, fd := range fds {
		if first, inFlight := fd.beginClose(); first && inFlight {
			busy = append(busy, fd)
		} else if first {
			fd.decref()
		}
	}
	for _, fd := range wakeCalls(busy, dirRead, dirWrite) {
		_ = sys.Shutdown(fd.sysfd, unix.SHUT_RDWR)
	}
	for _, fd := range busy {
		fd.decref()
	}
}

func (fd *blockFD) private() int { return fd.sysfd }

func (fd *blockFD) control(fn func(s int) error) error {
	if !fd.incref() {
		return net.ErrClosed
	}
	defer fd.decref()
	return fn(fd.sysfd)
}

// signalCalls sends SIGURG to every thread of this process that is inside
// a system call on a descriptor on which match is true; one scan of the
// threads serves any number of descriptors.
func signalCalls(match func(fd int) bool) error {
	dir, err := os.Open(taskDir)
	if err != nil {
		return err
	}
	tids, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return err
	}
	pid := os.Getpid()
	var buf [256]byte
	for _, name := range tids {
		// Plain open/read/close (no os.File, no fstat): this runs once per
		// thread of the process.
		f, err := unix.Open(taskDir+"/"+name+"/syscall", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // the thread has exited
		}
		n, err := unix.Read(f, buf[:])
		unix.Close(f)
		if err != nil || n <= 0 {
			continue
		}
		a, b := callFDs(buf[:n])
		if (a >= 0 && match(a)) || (b >= 0 && match(b)) {
			if tid, err := strconv.Atoi(name); err == nil {
				_ = sys.Tgkill(pid, tid, unix.SIGURG)
			}
		}
	}
	return nil
}

// callFDs parses a /proc/PID/task/TID/syscall line ("NR ARG0 ARG1 ..." for
// a thread in a system call; "running" or "-1 SP PC" otherwise) and returns
// the descriptors the call may be blocked on: its first argument, and for
// splice(2) its third (the descriptor written to); -1 for none.
func callFDs(line []byte) (a, b int) {
	f := bytes.Fields(line)
	if len(f) < 4 || len(f[0]) == 0 || f[0][0] < '0' || f[0][0] > '9' {
		return -1, -1
	}
	arg := func(i int) int {
		v, err := strconv.ParseUint(string(bytes.TrimPrefix(f[i], []byte("0x"))), 16, 64)
		if err != nil || v > math.MaxInt32 {
			return -1
		}
		return int(v)
	}
	a, b = arg(1), -1
	if nr, err := strconv.Atoi(string(f[0])); err == nil && nr == unix.SYS_SPLICE {
		b = arg(3)
	}
	return a, b
}

// wakeCalls interrupts the calls in the given directions that are inside
// the kernel on any of fds, and waits until each has come back out, with
// one scan of the threads per round for all of them, where wake would scan
// them once per socket (with 5,000 idle connections, 5,000 threads each
// time). It gives up after wakeBound and returns the sockets whose calls
// did not come out. The caller holds a reference on each socket.
func wakeCalls(fds []*blockFD, dirs ...direction) []*blockFD {
	type blocked struct {
		fd *blockFD
		d  direction
		s0 uint32
	}
	var waiting []blocked
	for _, fd := range fds {
		for _, d := range dirs {
			if s0 := fd.seq[d].Load(); s0&1 != 0 {
				waiting = append(waiting, blocked{fd, d, s0})
			}
		}
	}
	start := time.Now()
	pause := 20 * time.Microsecond
	for len(waiting) > 0 {
		// A call may be just before the kernel, where no signal reaches
		// it usefully: signal again until it is seen to come out.
		set := make(map[int]bool, len(waiting))
		for _, w := range waiting {
			set[w.fd.sysfd] = true
		}
		if err := signalCalls(func(fd int) bool { return set[fd] }); err != nil || time.Since(start) > wakeBound {
			stuck := make([]*blockFD, 0, len(waiting))
			for _, w := range waiting {
				stuck = append(stuck, w.fd)
			}
			return stuck
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Millisecond)
		left := waiting[:0]
		for _, w := range waiting {
			if w.fd.seq[w.d].Load() == w.s0 {
				left = append(left, w)
			}
		}
		waiting = left
	}
	return nil
}

// waitConnect waits for a non-blocking connect with ppoll(2). (The socket
// turns blocking only once connected, since a blocking connect could not be
// cancelled.) Cancelling ctx wakes the wait with shutdown(2): the
// connection is not made, so nobody else can see it.
func (fd *blockFD) waitConnect(ctx context.Context, done func(s int) bool) error {
	if done(fd.sysfd) {
		return nil
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = sys.Shutdown(fd.sysfd, unix.SHUT_RDWR) // the dialer holds the descriptor until fired
		close(fired)
	})
	var err error
	for !done(fd.sysfd) {
		if err = ctx.Err(); err != nil {
			break
		}
		timeout := time.Duration(-1)
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(time.Until(dl), 0)
		}
		if err = pollOnce(fd.sysfd, unix.POLLOUT, timeout); err != nil {
			break
		}
	}
	if !stop() {
		<-fired // the shutdown must finish while the descriptor is surely ours
		return ctx.Err()
	}
	return err
}

// pollOnce waits in ppoll(2) until s has one of events or timeout passes
// (a negative timeout: no bound); EINTR returns early, which the caller's
// loop absorbs.
func pollOnce(s int, events int16, timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(s), Events: events}}
	_, err := sys.Poll(fds, int64(timeout))
	if classify(err, false) == fail && err != nil {
		return os.NewSyscallError("ppoll", err)
	}
	return nil
}

func (fd *blockFD) rawConn() syscall.RawConn { return blockRawConn{fd} }

// blockRawConn is the syscall.RawConn of a blocking-mode socket. Its Read
// and Write wait for readiness with ppoll(2), looking at close and at the
// direction's deadline every rawPollSlice: past the deadline they return
// os.ErrDeadlineExceeded, after Close net.ErrClosed, as the default mode's
// do.
type blockRawConn struct{ fd *blockFD }

// rawPollSlice bounds each wait of blockRawConn, so that close ends it.
const rawPollSlice = 50 * time.Millisecond

func (rc blockRawConn) Control(f func(fd uintptr)) error {
	return rc.fd.control(func(s int) error { f(uintptr(s)); return nil })
}

func (rc blockRawConn) Read(f func(fd uintptr) bool) error {
	return rc.wait(f, dirRead, unix.POLLIN)
}

func (rc blockRawConn) Write(f func(fd uintptr) bool) error {
	return rc.wait(f, dirWrite, unix.POLLOUT)
}

// wait calls f until it returns true, polling for events in between.
func (rc blockRawConn) wait(f func(fd uintptr) bool, d direction, events int16) error {
	return rc.fd.control(func(s int) error {
		for !f(uintptr(s)) {
			if rc.fd.closing() {
				return net.ErrClosed
			}
			slice := rawPollSlice
			if dl := rc.fd.dl[d].Load(); dl != 0 {
				now := monoNow()
				if dl <= now {
					return os.ErrDeadlineExceeded
				}
				slice = min(slice, time.Duration(dl-now))
			}
			if err := pollOnce(s, events, slice); err != nil {
				return err
			}
		}
		return nil
	})
}
