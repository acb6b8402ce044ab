package netcore

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// sockFlags are the flags of every socket netcore opens, and of every
// socket a default-mode listener accepts.
const sockFlags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC

// descriptor is one socket in one of netcore's two I/O modes. Conn and
// Listener use only this interface and never ask which mode they are in:
//
//   - pollFD (fd_poll_linux.go), the default: a non-blocking socket on Go's
//     runtime poller, which supplies readiness waits, deadlines and a Close
//     that wakes blocked calls.
//   - blockFD (fd_block_linux.go), the fast path: a blocking socket whose
//     calls block in the kernel on their own thread.
//
// Both run the same retry loop (op.try) around the same system calls; a mode
// supplies only how to wait between attempts.
type descriptor interface {
	// run makes o's system call until it completes, waiting for the socket
	// to be ready meanwhile. It returns the call's error (named with
	// os.NewSyscallError), net.ErrClosed once close has begun, or
	// os.ErrDeadlineExceeded when the deadline of o's direction passes.
	run(o *op) error
	// waitConnect waits for a non-blocking connect in progress to finish:
	// it calls done whenever the socket may have become writable, until
	// done returns true, or returns ctx's error once ctx ends.
	waitConnect(ctx context.Context, done func(s int) bool) error
	// ready finishes setting up a socket that is connected, or listening.
	ready(listening bool) error
	// accepted wraps a socket that this listening socket accepted, in the
	// same mode.
	accepted(s int) (descriptor, error)
	// acceptFlags are the flags accept4(2) gives the sockets it makes.
	acceptFlags() int
	// private returns the descriptor number without taking a reference:
	// only for a socket nobody else has yet, while Listen or Dial sets it
	// up (it costs no closure).
	private() int
	// control runs fn with the descriptor number, which stays open (and its
	// number unused by anything else) until fn returns.
	control(fn func(s int) error) error
	// setDeadline sets the deadline of one direction: reads and accepts,
	// or writes. The zero time removes it. A call already waiting sees
	// the new deadline at once.
	setDeadline(d direction, t time.Time) error
	// isClosed reports whether close was called.
	isClosed() bool
	// close closes the socket once (later calls return nil) and wakes every
	// call waiting on it; the descriptor itself is released when the last
	// of them has returned.
	close() error
	// rawConn returns the socket as a syscall.RawConn.
	rawConn() syscall.RawConn
}

// direction is the side of a socket a call uses, and whose deadline
// bounds it.
type direction uint8

const (
	dirRead  direction = iota // read(2), accept4(2): SO_RCVTIMEO, the read deadline
	dirWrite                  // write(2): SO_SNDTIMEO, the write deadline
	numDirs
)

// openSocket wraps socket(2) for a non-blocking, close-on-exec stream
// socket for sa (TCP, or a Unix socket: see transport) and wraps the
// descriptor in the mode asked for at once, so that one deferred close
// covers every later error path.
func openSocket(sa Sockaddr, blocking bool) (descriptor, error) {
	s, err := sys.Socket(sa.Family(), unix.SOCK_STREAM|sockFlags, transportOf(sa).proto)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if blocking && takeBlockingSlot() {
		return newBlockFD(s), nil
	}
	return newPollFD(s) // the default mode, or past the blocking budget
}

// closeFD closes a descriptor that no runtime poller or blockFD owns: one
// nobody else knows yet, on an error path, a pipe, or one of the Loop's.
// close(2) is not retried on EINTR: Linux has released the descriptor
// either way.
func closeFD(s int) { _ = sys.Close(s) }

// sockaddrBuf holds the largest address netcore decodes or encodes (struct
// sockaddr_un), and then some: the kernel truncates anything longer, which
// the decoder then rejects.
type sockaddrBuf [unix.SizeofSockaddrAny]byte

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
