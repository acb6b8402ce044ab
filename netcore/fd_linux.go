package netcore

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// sockFlags are the flags of every socket netcore opens or accepts.
const sockFlags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC

// netFD is one socket, in one of two modes.
//
// In the default mode it is handed to Go's runtime poller (os.NewFile): the
// runtime supplies readiness waits, deadlines, a Close that wakes blocked
// calls, and the reference count that keeps the descriptor open (so its
// number cannot be reused) while a call on it is in flight.
//
// In blocking mode (the fast path, blocking_linux.go) the descriptor is
// blocking and netcore owns it: each call blocks in the kernel on its own
// thread, netcore keeps the reference count itself, deadlines become the
// kernel's SO_RCVTIMEO/SO_SNDTIMEO, and Close wakes blocked calls with
// shutdown(2) before the last of them closes the descriptor.
type netFD struct {
	family int
	closed atomic.Bool // Close was called

	// Default mode.
	f  *os.File
	rc syscall.RawConn

	// Blocking mode.
	blocking bool
	sysfd    int
	state    atomic.Uint64 // calls in flight << 1 | closingBit
	rdl, wdl atomic.Int64  // read and write deadlines in Unix nanoseconds, 0 for none
	rto, wto time.Duration // SO_RCVTIMEO/SO_SNDTIMEO as last set; guarded by the caller's read or write lock
}

// openSocket wraps socket(2) for a close-on-exec TCP socket, non-blocking
// unless blocking is set.
func openSocket(family int) (int, error) {
	s, err := sys.Socket(family, unix.SOCK_STREAM|sockFlags, unix.IPPROTO_TCP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return s, nil
}

// initPoller hands s to the runtime poller. From here on the runtime owns
// s: it is closed by netFD.Close (or the *os.File's cleanup), never
// directly. On failure s is closed.
func (fd *netFD) initPoller(s, family int) error {
	f := os.NewFile(uintptr(s), "tcp")
	if f == nil {
		return os.NewSyscallError("socket", unix.EBADF)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	fd.f, fd.rc, fd.family = f, rc, family
	return nil
}

// closeRaw closes a descriptor nobody else knows yet, on an error path.
func closeRaw(s int) { _ = sys.Close(s) }

// Close closes the socket once; later calls return nil. It wakes every call
// blocked on the socket; the descriptor itself is closed when the last of
// them has returned.
func (fd *netFD) Close() error {
	if fd.closed.Swap(true) {
		return nil
	}
	if fd.blocking {
		return fd.closeBlocking()
	}
	if fd.f == nil {
		return nil // never initialised: the caller already closed the descriptor
	}
	sys.CountClose()
	if err := fd.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// rawErr maps an error of RawConn.Read/Write/Control (not of the callback:
// those come back through the caller's own fields) to what netcore reports:
// a deadline, or the socket being closed.
func (fd *netFD) rawErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return net.ErrClosed
}

// control runs fn with the descriptor, holding a reference so it stays open.
func (fd *netFD) control(fn func(s int) error) error {
	if fd.closed.Load() {
		return net.ErrClosed
	}
	if fd.blocking {
		if !fd.incref() {
			return net.ErrClosed
		}
		defer fd.decref()
		return fn(fd.sysfd)
	}
	var ferr error
	if err := fd.rc.Control(func(s uintptr) { ferr = fn(int(s)) }); err != nil {
		return fd.rawErr(err)
	}
	return ferr
}

// setReadDeadline sets the deadline for reads (and accepts).
func (fd *netFD) setReadDeadline(t time.Time) error {
	if fd.closed.Load() {
		return net.ErrClosed
	}
	if fd.blocking {
		fd.rdl.Store(unixNano(t))
		return nil
	}
	if fd.f.SetReadDeadline(t) != nil {
		return net.ErrClosed
	}
	return nil
}

// setWriteDeadline sets the deadline for writes.
func (fd *netFD) setWriteDeadline(t time.Time) error {
	if fd.closed.Load() {
		return net.ErrClosed
	}
	if fd.blocking {
		fd.wdl.Store(unixNano(t))
		return nil
	}
	if fd.f.SetWriteDeadline(t) != nil {
		return net.ErrClosed
	}
	return nil
}

// unixNano is t in Unix nanoseconds, 0 for the zero time, and at least 1
// otherwise (a deadline long past is still a deadline).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

// rawConn returns the syscall.RawConn of the socket.
func (fd *netFD) rawConn() syscall.RawConn {
	if fd.blocking {
		return blockingRawConn{fd}
	}
	return fd.rc
}

// sockaddrBuf holds the largest address netcore decodes (struct
// sockaddr_in6); the kernel truncates anything longer, which the decoder
// then rejects.
type sockaddrBuf [unix.SizeofSockaddrInet6]byte

// sockname wraps getsockname(2) or getpeername(2) and decodes the result.
func sockname(s int, peer bool) (Sockaddr, error) {
	var buf sockaddrBuf
	var n int
	var err error
	name := "getsockname"
	if peer {
		name = "getpeername"
		n, err = sys.Getpeername(s, buf[:])
	} else {
		n, err = sys.Getsockname(s, buf[:])
	}
	if err != nil {
		return Sockaddr{}, os.NewSyscallError(name, err)
	}
	return decodeSockaddr(buf[:n])
}
