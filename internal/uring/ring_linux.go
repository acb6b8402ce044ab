package uring

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// Options tune New.
type Options struct {
	// CQEntries is the completion queue's size (IORING_SETUP_CQSIZE),
	// rounded up to a power of two by the kernel. Zero means four times
	// the submission queue: one multishot submission brings many
	// completions.
	CQEntries uint32

	// Shared leaves out IORING_SETUP_SINGLE_ISSUER and
	// IORING_SETUP_DEFER_TASKRUN, for a ring used from more than one OS
	// thread. Without it, New and every later call on the ring (Submit,
	// SubmitAndWait, the registrations) must run on one OS thread: the
	// caller locks its goroutine with runtime.LockOSThread first, as each
	// Loop goroutine is. The kernel fails calls from another thread with
	// EEXIST.
	Shared bool
}

// setupFallbacks are the optional setup flags, newest first: when
// io_uring_setup answers EINVAL, New drops the first one still asked for
// and tries again.
var setupFallbacks = [...]uint32{
	IORING_SETUP_DEFER_TASKRUN, // 6.1
	IORING_SETUP_SINGLE_ISSUER, // 6.0
	IORING_SETUP_COOP_TASKRUN,  // 5.19
	IORING_SETUP_SUBMIT_ALL,    // 5.18
}

// Ring is one io_uring instance: a submission queue (SQ) the program fills
// and the kernel consumes, and a completion queue (CQ) the kernel fills and
// the program consumes, in memory both share (three mmaps of the ring's
// descriptor, or two with IORING_FEAT_SINGLE_MMAP). A Ring is not safe for
// concurrent use: one goroutine (one OS thread, unless Options.Shared)
// prepares, submits and reaps.
//
// Layout. io_uring_setup fills struct io_uring_params with the byte offset,
// within the SQ ring's mapping, of its head, tail, ring_mask, flags,
// dropped and array fields, and within the CQ ring's mapping of its head,
// tail, ring_mask, overflow and the CQE array. The SQEs themselves are a
// third mapping, an array of sq_entries; the SQ ring's array holds indexes
// into it. New fills that array once with i at slot i, so the SQE for ring
// position t is always sqes[t&mask] and the array is never touched again.
//
// Ownership and ordering. Each queue has one writer per index: the SQ tail
// and the CQ head are the program's, the SQ head and the CQ tail the
// kernel's. Every index is a free-running uint32 (positions are
// index&mask). The program reads the kernel's indexes with a load-acquire
// (so the entries the kernel wrote before moving its index are seen whole)
// and publishes its own with a store-release (so the entries it wrote, or
// finished reading, are complete before the kernel can see the move).
// Go's sync/atomic loads and stores are sequentially consistent, which is
// at least that, on the uint32s at those addresses.
type Ring struct {
	fd       int
	flags    uint32 // the IORING_SETUP_* flags the kernel took
	features uint32 // IORING_FEAT_*

	sqRing, cqRing, sqeMem unsafe.Pointer // mappings; cqRing == sqRing with SINGLE_MMAP
	sqRingLen, cqRingLen   int
	sqeLen                 int

	sqHead    *uint32 // the kernel's: entries before it are consumed
	sqTail    *uint32 // ours: entries before it are published
	sqFlags   *uint32 // the kernel's: IORING_SQ_*
	sqMask    uint32
	sqEntries uint32
	sqes      []SQE
	recvLimit int8 // RecvLimit's finding: 0 not known yet, 1 yes, -1 no

	cqHead    *uint32 // ours: completions before it are consumed
	cqTail    *uint32 // the kernel's: completions before it are written
	cqMask    uint32
	cqEntries uint32
	cqes      []CQE

	tail uint32 // the SQ tail with the entries prepared since the last Submit

	// The bounded wait's argument lives here, so that SubmitAndWait
	// allocates nothing.
	arg geteventsArg
	ts  unix.Timespec
}

// New makes a ring with room for entries submissions (a power of two up to
// 32768; the kernel rounds up). It asks for IORING_SETUP_SUBMIT_ALL,
// COOP_TASKRUN, and unless opts.Shared SINGLE_ISSUER and DEFER_TASKRUN,
// and drops them newest first while the kernel answers EINVAL; Flags says
// which it kept. The error of a ring that cannot be made wraps the errno
// (errors.Is(err, unix.EPERM)); Available explains it.
func New(entries uint32, opts Options) (*Ring, error) {
	if entries == 0 || entries > 32768 {
		return nil, fmt.Errorf("uring: %d entries (want 1 to 32768)", entries)
	}
	cq := opts.CQEntries
	if cq == 0 {
		cq = 4 * entries
	}
	flags := uint32(IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP)
	if !opts.Shared {
		flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
	}
	var p params
	var fd int
	for drop := 0; ; {
		p = params{Flags: flags, CqEntries: cq}
		var err error
		fd, err = sys.IoUringSetup(entries, unsafe.Pointer(&p))
		if err == nil {
			break
		}
		for drop < len(setupFallbacks) && flags&setupFallbacks[drop] == 0 {
			drop++
		}
		if !errors.Is(err, unix.EINVAL) || drop == len(setupFallbacks) {
			return nil, os.NewSyscallError("io_uring_setup", err)
		}
		flags &^= setupFallbacks[drop]
	}
	r := &Ring{fd: fd, flags: p.Flags, features: p.Features}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// mapRings maps the SQ ring, the CQ ring (the same mapping with
// IORING_FEAT_SINGLE_MMAP, 5.4) and the SQE array, and finds the fields in
// them by the offsets in p.
func (r *Ring) mapRings(p *params) error {
	const prot = unix.PROT_READ | unix.PROT_WRITE
	const flags = unix.MAP_SHARED | unix.MAP_POPULATE
	r.sqRingLen = int(p.SqOff.Array) + int(p.SqEntries)*4
	r.cqRingLen = int(p.CqOff.Cqes) + int(p.CqEntries)*int(unsafe.Sizeof(CQE{}))
	single := p.Features&IORING_FEAT_SINGLE_MMAP != 0
	if single {
		r.sqRingLen = max(r.sqRingLen, r.cqRingLen)
	}
	var err error
	if r.sqRing, err = sys.Mmap(r.fd, IORING_OFF_SQ_RING, r.sqRingLen, prot, flags); err != nil {
		r.sqRing = nil
		return os.NewSyscallError("mmap", err)
	}
	if single {
		r.cqRing = r.sqRing
	} else if r.cqRing, err = sys.Mmap(r.fd, IORING_OFF_CQ_RING, r.cqRingLen, prot, flags); err != nil {
		r.cqRing = nil
		return os.NewSyscallError("mmap", err)
	}
	r.sqeLen = int(p.SqEntries) * int(unsafe.Sizeof(SQE{}))
	if r.sqeMem, err = sys.Mmap(r.fd, IORING_OFF_SQES, r.sqeLen, prot, flags); err != nil {
		r.sqeMem = nil
		return os.NewSyscallError("mmap", err)
	}

	sq := r.sqRing
	r.sqHead = (*uint32)(unsafe.Add(sq, p.SqOff.Head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.SqOff.Tail))
	r.sqFlags = (*uint32)(unsafe.Add(sq, p.SqOff.Flags))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.SqOff.RingMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.SqOff.RingEntries))
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.SqOff.Array)), r.sqEntries)
	for i := range array {
		array[i] = uint32(i) // ring position t uses sqes[t&mask], always
	}
	r.sqes = unsafe.Slice((*SQE)(r.sqeMem), r.sqEntries)
	r.tail = *r.sqTail

	cq := r.cqRing
	r.cqHead = (*uint32)(unsafe.Add(cq, p.CqOff.Head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.CqOff.Tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.CqOff.RingMask))
	r.cqEntries = *(*uint32)(unsafe.Add(cq, p.CqOff.RingEntries))
	r.cqes = unsafe.Slice((*CQE)(unsafe.Add(cq, p.CqOff.Cqes)), r.cqEntries)
	return nil
}

// Close unmaps the rings and closes the ring's descriptor; the kernel
// cancels what is still in flight. Buffer rings must be closed first.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if r.sqeMem != nil {
		keep(sys.Munmap(r.sqeMem, r.sqeLen))
	}
	if r.cqRing != nil && r.cqRing != r.sqRing {
		keep(sys.Munmap(r.cqRing, r.cqRingLen))
	}
	if r.sqRing != nil {
		keep(sys.Munmap(r.sqRing, r.sqRingLen))
	}
	keep(sys.Close(r.fd))
	*r = Ring{fd: -1}
	return first
}

// Fd is the ring's descriptor.
func (r *Ring) Fd() int { return r.fd }

// Flags are the IORING_SETUP_* flags the kernel accepted.
func (r *Ring) Flags() uint32 { return r.flags }

// Features are the IORING_FEAT_* bits the kernel reported.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries and CQEntries are the queues' sizes.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// CQEntries is the completion queue's size.
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// SQSpace is how many more submissions can be prepared before Submit.
func (r *Ring) SQSpace() uint32 {
	return r.sqEntries - (r.tail - atomic.LoadUint32(r.sqHead))
}

// next takes the next free SQE, zeroed, or returns nil when the SQ is
// full: the caller submits and tries again.
func (r *Ring) next(op uint8, fd int, userData uint64) *SQE {
	// Load-acquire of the kernel's SQ head: the entries before it are
	// consumed (the kernel copies what it needs while it submits), so
	// their slots are free.
	if r.tail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return nil
	}
	sqe := &r.sqes[r.tail&r.sqMask]
	r.tail++
	*sqe = SQE{Opcode: op, Fd: int32(fd), UserData: userData}
	return sqe
}

// PrepNop queues a no-op, which completes with res 0. Each Prep method
// returns false, queuing nothing, when the SQ is full.
func (r *Ring) PrepNop(userData uint64) bool {
	return r.next(IORING_OP_NOP, -1, userData) != nil
}

// PrepNopResult queues a no-op that completes with res
// (IORING_NOP_INJECT_RESULT, 6.10): tests put it in the place of another
// request to make that request fail as they choose.
func (r *Ring) PrepNopResult(res int32, userData uint64) bool {
	if !r.PrepNop(userData) {
		return false
	}
	sqe := &r.sqes[(r.tail-1)&r.sqMask]
	sqe.OpFlags = IORING_NOP_INJECT_RESULT
	sqe.Len = uint32(res)
	return true
}

// PrepPollMultishot queues a multishot poll (5.13) of fd for events
// (POLLIN, ...): one completion, res the events ready, at every wake-up of
// the file while it stays armed (IORING_CQE_F_MORE), as an edge-triggered
// epoll registration reports. Without F_MORE it has ended (cancelled, or
// the kernel dropped it) and must be queued again.
func (r *Ring) PrepPollMultishot(fd int, events uint32, userData uint64) bool {
	sqe := r.next(IORING_OP_POLL_ADD, fd, userData)
	if sqe == nil {
		return false
	}
	sqe.Len = IORING_POLL_ADD_MULTI
	sqe.OpFlags = events // poll32_events
	return true
}

// PrepAcceptMultishot queues a multishot accept (5.19) on the listening
// socket fd: one completion per connection, res the new descriptor
// (non-blocking, close-on-exec), with IORING_CQE_F_MORE while it stays
// armed. Without F_MORE it has ended (an error, or cancelled) and must be
// queued again.
func (r *Ring) PrepAcceptMultishot(fd int, userData uint64) bool {
	sqe := r.next(IORING_OP_ACCEPT, fd, userData)
	if sqe == nil {
		return false
	}
	sqe.Ioprio = IORING_ACCEPT_MULTISHOT
	sqe.OpFlags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC // accept4's flags
	return true
}

// PrepRecvMultishot queues a multishot receive (6.0) on fd into buffers
// of group bgid: one completion per arrival, res the bytes received into
// the buffer BufferID(flags) names (give it back with BufRing.Recycle),
// res 0 at the peer's EOF, a negative errno on error; -ENOBUFS when the
// group had no buffer. It holds no buffer while nothing arrives. Without
// IORING_CQE_F_MORE it has ended and must be queued again.
//
// With atLeast > 0 (6.17, see RecvLimit) it ends by itself, its last
// completion without F_MORE, once it has received atLeast bytes or more:
// the kernel counts after each buffer, so it can take up to one buffer
// less one byte past atLeast. (sqe.optlen carries atLeast; a kernel that
// predates it fails the receive with -EINVAL.)
func (r *Ring) PrepRecvMultishot(fd int, bgid uint16, atLeast uint32, userData uint64) bool {
	if !r.PrepRecv(fd, bgid, 0, userData) {
		return false
	}
	sqe := &r.sqes[(r.tail-1)&r.sqMask]
	sqe.Ioprio = IORING_RECV_MULTISHOT
	sqe.FileIdx = atLeast // optlen
	return true
}

// PrepRecv queues one receive (5.7 with provided buffers) on fd into a
// buffer of group bgid, of at most max bytes (0: the buffer's size): res
// and the buffer as with PrepRecvMultishot, and it always ends with its
// completion.
func (r *Ring) PrepRecv(fd int, bgid uint16, max uint32, userData uint64) bool {
	sqe := r.next(IORING_OP_RECV, fd, userData)
	if sqe == nil {
		return false
	}
	sqe.Len = max
	sqe.Flags = IOSQE_BUFFER_SELECT
	sqe.BufGroup = bgid
	return true
}

// RecvLimit reports whether the kernel ends a multishot receive at the
// byte count PrepRecvMultishot's atLeast gives (6.17). It finds out once,
// with a receive on a socket pair of its own into a buffer group of its
// own (bgid, which must be unused), and waits for that receive to end: call
// it before anything else is in flight, from the ring's thread.
func (r *Ring) RecvLimit(bgid uint16) (bool, error) {
	if r.recvLimit != 0 {
		return r.recvLimit > 0, nil
	}
	br, err := r.NewBufRing(bgid, 1, 64)
	if err != nil {
		return false, err
	}
	defer br.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, os.NewSyscallError("socketpair", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.Write(fds[0], []byte("xy")); err != nil {
		return false, os.NewSyscallError("write", err)
	}
	const ud = 1<<64 - 1
	for !r.PrepRecvMultishot(fds[1], bgid, 1, ud) {
		if _, err := r.Submit(); err != nil {
			return false, err
		}
	}
	// It ends at once, with -EINVAL (the kernel refuses the limit) or the
	// two bytes (it took the limit); a kernel that ignored the limit keeps
	// it armed, so it is cancelled.
	ok, ended := false, false
	for tries := 0; !ended && tries < 100; tries++ {
		if _, err := r.SubmitAndWait(1, 100*time.Millisecond); err != nil &&
			!errors.Is(err, unix.ETIME) && !errors.Is(err, unix.EINTR) {
			return false, err
		}
		r.ForEachCQE(func(u uint64, res int32, flags uint32) {
			if u != ud {
				return
			}
			if bid, has := BufferID(flags); has {
				br.Recycle(bid)
			}
			if More(flags) {
				r.PrepCancel(ud, ud-1)
				return
			}
			ended = true
			ok = res == 2
		})
	}
	if !ended {
		return false, errors.New("io_uring: a receive on a socket pair did not end")
	}
	r.recvLimit = -1
	if ok {
		r.recvLimit = 1
	}
	return ok, nil
}

// PrepSend queues a send(2) of p on fd with MSG_NOSIGNAL; res is the
// bytes sent, which may be fewer than len(p) (sending the rest is the
// caller's). The kernel reads p after this returns, up to the completion:
// the caller keeps p alive and unchanged until then, and p must not be on
// a goroutine's stack (Go moves a stack when it grows, and the kernel
// holds only the old address; converting p's address to a uint64 does not
// make it escape, so a small local array may stay on the stack): use heap
// memory that something keeps referenced, such as a buffer in a struct, or
// a mapping.
//
// With all (MSG_WAITALL, 5.18 for io_uring sends on stream sockets), a
// send that the socket cannot take at once goes on in the kernel, and it
// completes once every byte of p is sent (res len(p)) or with an error
// (res the bytes sent before it, if any, else -errno).
func (r *Ring) PrepSend(fd int, p []byte, all bool, userData uint64) bool {
	sqe := r.next(IORING_OP_SEND, fd, userData)
	if sqe == nil {
		return false
	}
	sqe.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p))))
	sqe.Len = uint32(min(len(p), math.MaxUint32))
	sqe.OpFlags = unix.MSG_NOSIGNAL
	if all {
		sqe.OpFlags |= unix.MSG_WAITALL
	}
	return true
}

// PrepRead queues a read(2) of fd into p at offset 0 (which an eventfd, a
// pipe or a socket ignores): for the Loop, the read of its wake-up eventfd,
// which must be blocking (no EFD_NONBLOCK: on a non-blocking file io_uring
// completes with -EAGAIN instead of waiting). The caller keeps p alive
// until the completion, off any goroutine's stack (see PrepSend).
func (r *Ring) PrepRead(fd int, p []byte, userData uint64) bool {
	sqe := r.next(IORING_OP_READ, fd, userData)
	if sqe == nil {
		return false
	}
	sqe.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p))))
	sqe.Len = uint32(min(len(p), math.MaxUint32))
	return true
}

// PrepCancel queues the cancellation of the request submitted with
// user_data target. Its own completion has res 0 (found and cancelled),
// -ENOENT (nothing in flight with that user_data) or -EALREADY (running,
// cannot be stopped); the cancelled request completes with -ECANCELED and,
// if multishot, without IORING_CQE_F_MORE.
func (r *Ring) PrepCancel(target, userData uint64) bool {
	sqe := r.next(IORING_OP_ASYNC_CANCEL, -1, userData)
	if sqe == nil {
		return false
	}
	sqe.Addr = target
	return true
}

// PrepCancelFD queues the cancellation of every request in flight on fd
// (IORING_ASYNC_CANCEL_FD|IORING_ASYNC_CANCEL_ALL, 5.19): what a
// connection's close does first. Its completion's res is how many were
// cancelled, or -ENOENT for none.
func (r *Ring) PrepCancelFD(fd int, userData uint64) bool {
	sqe := r.next(IORING_OP_ASYNC_CANCEL, fd, userData)
	if sqe == nil {
		return false
	}
	sqe.OpFlags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL
	return true
}

// PrepClose queues close(2) of fd.
func (r *Ring) PrepClose(fd int, userData uint64) bool {
	return r.next(IORING_OP_CLOSE, fd, userData) != nil
}

// publish makes the prepared SQEs visible to the kernel and returns how
// many it has not consumed yet.
func (r *Ring) publish() uint32 {
	// Store-release of the SQ tail: the SQEs written by the Prep methods
	// are complete before the kernel can see the tail move past them.
	atomic.StoreUint32(r.sqTail, r.tail)
	// Without SQPOLL the kernel moves the head only inside io_uring_enter,
	// so this is exactly what the next enter has to submit (including any
	// a failed enter left behind).
	return r.tail - atomic.LoadUint32(r.sqHead)
}

// Submit hands the kernel every prepared submission, without waiting. It
// enters the kernel only when there is something to submit or completions
// to collect (with IORING_SETUP_DEFER_TASKRUN, completions are posted only
// inside io_uring_enter; a CQ overflow also needs an enter to be flushed).
// It returns how many submissions the kernel took.
func (r *Ring) Submit() (int, error) {
	n := r.publish()
	var flags uint32
	if r.flags&IORING_SETUP_DEFER_TASKRUN != 0 || atomic.LoadUint32(r.sqFlags)&(IORING_SQ_CQ_OVERFLOW|IORING_SQ_TASKRUN) != 0 {
		flags = IORING_ENTER_GETEVENTS
	}
	if n == 0 && flags == 0 {
		return 0, nil
	}
	return r.enter(n, 0, flags, nil, 0)
}

// SubmitAndWait hands the kernel every prepared submission and waits until
// at least min completions are ready, or timeout has passed (a negative
// timeout waits without a bound; IORING_ENTER_EXT_ARG, 5.11): the one
// io_uring_enter of a loop iteration. A timeout, or a signal interrupting
// the wait, is not an error: it returns with fewer completions ready.
// EAGAIN and EBUSY (the kernel is short of memory, or the CQ is
// overflowing) come back as errors: reap completions, then submit again;
// nothing queued is lost.
func (r *Ring) SubmitAndWait(min uint32, timeout time.Duration) (int, error) {
	return r.SubmitAndWaitBatch(min, 0, timeout)
}

// SubmitAndWaitBatch is SubmitAndWait that, for a wait that would end at
// the first completion, waits up to minWait for min completions first
// (IORING_FEAT_MIN_TIMEOUT, 6.12): it returns once min completions are
// ready, or once minWait has passed and at least one is, or at timeout.
// Where the kernel lacks it, it waits for one completion.
func (r *Ring) SubmitAndWaitBatch(min uint32, minWait, timeout time.Duration) (int, error) {
	n := r.publish()
	flags := uint32(IORING_ENTER_GETEVENTS)
	var arg unsafe.Pointer
	var size uintptr
	batch := minWait > 0 && min > 1 && r.features&IORING_FEAT_MIN_TIMEOUT != 0
	if !batch && min > 1 && minWait > 0 {
		min = 1
	}
	if (timeout >= 0 && min > 0) || batch {
		r.arg = geteventsArg{}
		if timeout >= 0 {
			r.ts = unix.NsecToTimespec(int64(timeout))
			r.arg.Ts = uint64(uintptr(unsafe.Pointer(&r.ts)))
		}
		if batch {
			r.arg.MinWaitUsec = uint32(max(minWait/time.Microsecond, 1))
		}
		flags |= IORING_ENTER_EXT_ARG
		arg, size = unsafe.Pointer(&r.arg), unsafe.Sizeof(r.arg)
	}
	return r.enter(n, min, flags, arg, size)
}

func (r *Ring) enter(n, min, flags uint32, arg unsafe.Pointer, size uintptr) (int, error) {
	got, err := sys.IoUringEnter(r.fd, n, min, flags, arg, size)
	switch {
	case err == nil:
		return got, nil
	case errors.Is(err, unix.EINTR), errors.Is(err, unix.ETIME):
		// Interrupted or timed out before submitting anything: what was
		// published is still in the SQ for the next call.
		return 0, nil
	}
	return 0, os.NewSyscallError("io_uring_enter", err)
}

// CQReady is how many completions are waiting to be reaped.
func (r *Ring) CQReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - *r.cqHead
}

// ForEachCQE calls fn with each completion ready, oldest first, then
// hands their slots back to the kernel, and returns how many there were.
// fn may prepare submissions and call Submit, but not reap (ForEachCQE,
// SubmitAndWait).
func (r *Ring) ForEachCQE(fn func(userData uint64, res int32, flags uint32)) int {
	head := *r.cqHead // ours: only this goroutine writes it
	// Load-acquire of the kernel's CQ tail: the CQEs before it are
	// completely written.
	tail := atomic.LoadUint32(r.cqTail)
	for i := head; i != tail; i++ {
		c := &r.cqes[i&r.cqMask]
		fn(c.UserData, c.Res, c.Flags)
	}
	// Store-release of the CQ head: we have finished reading those slots
	// before the kernel may write them again.
	atomic.StoreUint32(r.cqHead, tail)
	return int(tail - head)
}

// More reports whether a completion's multishot request stays armed
// (IORING_CQE_F_MORE).
func More(flags uint32) bool { return flags&IORING_CQE_F_MORE != 0 }

// BufferID is the provided buffer a completion used, if it used one
// (IORING_CQE_F_BUFFER; the id is in the upper 16 bits of the flags).
func BufferID(flags uint32) (bid uint16, ok bool) {
	return uint16(flags >> IORING_CQE_BUFFER_SHIFT), flags&IORING_CQE_F_BUFFER != 0
}
