package netcore

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// sockFlags are the flags of every socket netcore opens or accepts.
const sockFlags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC

// netFD is a socket handed to Go's runtime poller. The runtime supplies
// readiness waits, deadlines, a Close that wakes blocked calls, and the
// reference count that keeps the descriptor open (so its number cannot be
// reused) while a call on it is in flight.
type netFD struct {
	f      *os.File
	rc     syscall.RawConn
	family int
	closed atomic.Bool
}

// openSocket wraps socket(2) for a non-blocking, close-on-exec TCP socket.
func openSocket(family int) (int, error) {
	s, err := sys.Socket(family, unix.SOCK_STREAM|sockFlags, unix.IPPROTO_TCP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return s, nil
}

// newNetFD hands s to the runtime poller. From here on the runtime owns s:
// it is closed by netFD.Close (or the *os.File's cleanup), never directly.
// On failure s is closed.
func newNetFD(s, family int) (*netFD, error) {
	f := os.NewFile(uintptr(s), "tcp")
	if f == nil {
		return nil, os.NewSyscallError("socket", unix.EBADF)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &netFD{f: f, rc: rc, family: family}, nil
}

// closeRaw closes a descriptor the runtime does not own yet, on an error
// path.
func closeRaw(s int) { _ = sys.Close(s) }

// Close closes the socket once; later calls return nil. It wakes every call
// blocked on the socket; the descriptor itself is closed when the last of
// them has returned.
func (fd *netFD) Close() error {
	if fd.closed.Swap(true) {
		return nil
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
	var ferr error
	if err := fd.rc.Control(func(s uintptr) { ferr = fn(int(s)) }); err != nil {
		return fd.rawErr(err)
	}
	return ferr
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
