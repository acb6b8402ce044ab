package netcore

import (
	"context"
	"io"
	"net"
	"os"
	"time"
	"unsafe"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// Blocking mode, the fast path: a call blocks in the kernel on its own
// thread, and the kernel wakes that thread directly when data arrives,
// where the runtime poller needs a second wake-up (the poller's thread,
// then the goroutine's). It costs a thread per blocked call, so it suits a
// few busy connections, not thousands of idle ones.

const closingBit = 1

// initBlocking makes s a blocking-mode socket; netcore owns it from here.
// clearNonblock turns O_NONBLOCK off now (a dialed socket keeps it until it
// is connected). On failure s is closed.
func (fd *netFD) initBlocking(s, family int, clearNonblock bool) error {
	if clearNonblock {
		if err := sys.SetNonblock(s, false); err != nil {
			closeRaw(s)
			return os.NewSyscallError("fcntl", err)
		}
	}
	fd.blocking, fd.sysfd, fd.family = true, s, family
	return nil
}

// incref takes a reference for a call, unless Close has begun.
func (fd *netFD) incref() bool {
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

// decref drops a reference; the last one after Close closes the descriptor.
func (fd *netFD) decref() {
	if fd.state.Add(^uint64(1)) == closingBit { // minus 2: no calls left, closing
		closeRaw(fd.sysfd)
	}
}

// closing reports whether Close has begun: a call that returns then
// reports net.ErrClosed, whatever the shut-down socket said.
func (fd *netFD) closing() bool { return fd.state.Load()&closingBit != 0 }

// closeBlocking marks the socket closing, wakes the calls blocked on it with
// shutdown(2) (accept, read, write and connect all return), and closes the
// descriptor now or when the last call leaves. Close holds a reference of
// its own meanwhile, so the descriptor cannot be closed and its number
// reused under the shutdown.
func (fd *netFD) closeBlocking() error {
	var old uint64
	for {
		old = fd.state.Load()
		if fd.state.CompareAndSwap(old, (old+2)|closingBit) {
			break
		}
	}
	if old>>1 > 0 {
		_ = sys.Shutdown(fd.sysfd, unix.SHUT_RDWR)
	}
	fd.decref()
	return nil
}

// armTimeout sets the kernel's timeout for the next blocking call from the
// read (or write) deadline: SO_RCVTIMEO (SO_SNDTIMEO) to the time left, or
// none. It makes the setsockopt(2) call only when that changes, so with no
// deadline it costs nothing. A deadline already past is
// os.ErrDeadlineExceeded.
func (fd *netFD) armTimeout(write bool) error {
	dl, cur, opt := &fd.rdl, &fd.rto, unix.SO_RCVTIMEO
	if write {
		dl, cur, opt = &fd.wdl, &fd.wto, unix.SO_SNDTIMEO
	}
	var want time.Duration
	if d := dl.Load(); d != 0 {
		want = time.Duration(d - time.Now().UnixNano())
		if want <= 0 {
			return os.ErrDeadlineExceeded
		}
		want = max(want, time.Microsecond) // a zero timeval means no timeout
	}
	if want == *cur {
		return nil
	}
	tv := unix.NsecToTimeval(want.Nanoseconds())
	b := unsafe.Slice((*byte)(unsafe.Pointer(&tv)), unsafe.Sizeof(tv))
	if err := sys.Setsockopt(fd.sysfd, unix.SOL_SOCKET, opt, b); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	*cur = want
	return nil
}

// timedOut decides what an EAGAIN from a blocking call means: the kernel
// timeout fired. If the deadline has passed that is the caller's error;
// if it was moved later meanwhile, the call is made again.
func timedOut(dl int64) bool {
	return dl != 0 && time.Now().UnixNano() >= dl
}

// readBlocking is Read in blocking mode; the caller holds c.rmu.
func (c *Conn) readBlocking(p []byte) (int, error) {
	fd := &c.fd
	if !fd.incref() {
		return 0, net.ErrClosed
	}
	defer fd.decref()
	for {
		if err := fd.armTimeout(false); err != nil {
			return 0, err
		}
		n, err := sys.Read(fd.sysfd, p)
		if fd.closing() {
			return 0, net.ErrClosed
		}
		switch classify(err, false) {
		case retry:
			continue
		case wait:
			if timedOut(fd.rdl.Load()) {
				return 0, os.ErrDeadlineExceeded
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// writeBlocking is Write in blocking mode; the caller holds c.wmu.
func (c *Conn) writeBlocking(p []byte) (int, error) {
	fd := &c.fd
	if !fd.incref() {
		return 0, net.ErrClosed
	}
	defer fd.decref()
	wn := 0
	for wn < len(p) {
		if err := fd.armTimeout(true); err != nil {
			return wn, err
		}
		n, err := sys.Write(fd.sysfd, p[wn:])
		if fd.closing() {
			return wn, net.ErrClosed
		}
		switch classify(err, false) {
		case retry:
			continue
		case wait:
			if timedOut(fd.wdl.Load()) {
				return wn, os.ErrDeadlineExceeded
			}
			continue
		}
		if err != nil {
			return wn, err
		}
		if n == 0 {
			return wn, io.ErrUnexpectedEOF
		}
		wn += n
	}
	return wn, nil
}

// acceptBlocking is accept4(2) in blocking mode; the caller holds l.mu. The
// new socket is blocking too.
func (l *Listener) acceptBlocking() (s int, peer []byte, err error) {
	fd := &l.fd
	if !fd.incref() {
		return -1, nil, net.ErrClosed
	}
	defer fd.decref()
	for {
		if err := fd.armTimeout(false); err != nil {
			return -1, nil, err
		}
		nfd, n, err := sys.Accept4(fd.sysfd, l.sabuf[:], unix.SOCK_CLOEXEC)
		if fd.closing() {
			if err == nil {
				closeRaw(nfd)
			}
			return -1, nil, net.ErrClosed
		}
		switch classify(err, true) {
		case retry:
			continue
		case wait:
			if timedOut(fd.rdl.Load()) {
				return -1, nil, os.ErrDeadlineExceeded
			}
			continue
		}
		if err != nil {
			return -1, nil, os.NewSyscallError("accept4", err)
		}
		return nfd, l.sabuf[:n], nil
	}
}

// connectBlocking connects a non-blocking socket s (a blocking connect
// could not be cancelled), waiting in ppoll(2); cancelling ctx wakes the
// wait with shutdown(2). Once connected, s becomes blocking.
func connectBlocking(ctx context.Context, fd *netFD, sa Sockaddr) error {
	var raw [unix.SizeofSockaddrInet6]byte
	b, _ := sa.AppendBinary(raw[:0])
	if !fd.incref() {
		return net.ErrClosed
	}
	defer fd.decref()
	for {
		err := sys.Connect(fd.sysfd, b)
		if err == nil || err == unix.EISCONN {
			return os.NewSyscallError("fcntl", sys.SetNonblock(fd.sysfd, false))
		}
		a := classify(err, false)
		if a == retry {
			continue
		}
		if a != wait {
			return os.NewSyscallError("connect", err)
		}
		break
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = sys.Shutdown(fd.sysfd, unix.SHUT_RDWR) // we hold a reference: the descriptor is still ours
		close(fired)
	})
	for {
		done, err := connectResult(fd.sysfd)
		if !done {
			err = pollOnce(ctx, fd.sysfd, unix.POLLOUT)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			if !stop() {
				<-fired
			}
			return ctxErr
		}
		if err != nil {
			if !stop() {
				<-fired // the shutdown must finish while the descriptor is surely ours
			}
			return err
		}
		if done {
			if !stop() {
				<-fired
				return ctx.Err() // shut down under us: the context ended
			}
			return os.NewSyscallError("fcntl", sys.SetNonblock(fd.sysfd, false))
		}
	}
}

// connectResult reads the outcome of a connect in progress: SO_ERROR, then
// getpeername(2) to rule out a spurious wake-up. done is false while the
// connection is still being made.
func connectResult(s int) (done bool, err error) {
	soerr, err := getInt(s, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return true, err
	}
	switch e := unix.Errno(soerr); e {
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		return false, nil
	case 0, unix.EISCONN:
		if _, err := sockname(s, true); err != nil {
			if err, ok := err.(*os.SyscallError); ok && err.Err == unix.ENOTCONN {
				return false, nil // a spurious wake-up: wait again
			}
			return true, err
		}
		return true, nil
	default:
		return true, os.NewSyscallError("connect", e)
	}
}

// pollOnce waits in ppoll(2) until s has one of events, or ctx's deadline
// passes (the caller then sees ctx.Err()); EINTR returns early, which the
// caller's loop absorbs.
func pollOnce(ctx context.Context, s int, events int16) error {
	timeout := int64(-1)
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(int64(time.Until(dl)), 0)
	}
	fds := []unix.PollFd{{Fd: int32(s), Events: events}}
	if _, err := sys.Poll(fds, timeout); err != nil && err != unix.EINTR {
		return os.NewSyscallError("ppoll", err)
	}
	return nil
}

// blockingRawConn is the syscall.RawConn of a blocking-mode socket.
type blockingRawConn struct{ fd *netFD }

func (rc blockingRawConn) Control(f func(fd uintptr)) error {
	return rc.fd.control(func(s int) error { f(uintptr(s)); return nil })
}

func (rc blockingRawConn) Read(f func(fd uintptr) bool) error { return rc.wait(f, unix.POLLIN) }

func (rc blockingRawConn) Write(f func(fd uintptr) bool) error { return rc.wait(f, unix.POLLOUT) }

// wait calls f until it returns true, polling for events in between.
func (rc blockingRawConn) wait(f func(fd uintptr) bool, events int16) error {
	return rc.fd.control(func(s int) error {
		for !f(uintptr(s)) {
			if rc.fd.closing() {
				return net.ErrClosed
			}
			if err := pollOnce(context.Background(), s, events); err != nil {
				return err
			}
		}
		return nil
	})
}
