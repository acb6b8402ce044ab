package netcore

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
)

// pollFD is the default mode: a non-blocking socket handed to Go's runtime
// poller with os.NewFile. The runtime supplies readiness waits,
// deadlines, a Close that wakes blocked calls, the reference count that
// keeps the descriptor open (so its number cannot be reused) while a call
// on it is in flight, and a cleanup that closes it if the Conn is dropped
// without Close. All I/O runs in RawConn callbacks (op.pollFn) that make
// the system calls directly.
type pollFD struct {
	s      int // the number, for private
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
}

// newPollFD hands s to the runtime poller; from here on the runtime owns s
// and closes it. On failure s is closed.
func newPollFD(s int) (*pollFD, error) {
	f := os.NewFile(uintptr(s), "tcp")
	if f == nil {
		closeFD(s)
		return nil, os.NewSyscallError("socket", syscall.EBADF)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &pollFD{s: s, f: f, rc: rc}, nil
}

func (fd *pollFD) run(o *op) error {
	o.err = nil
	if o.pollFn == nil {
		o.pollFn = o.pollTry // once per op, and only for ops that run
	}
	var err error
	if o.dir == dirRead {
		err = fd.rc.Read(o.pollFn)
	} else {
		err = fd.rc.Write(o.pollFn)
	}
	if err != nil {
		return pollErr(err)
	}
	return o.err
}

// waitConnect waits for writability in the poller. The context's end
// (its deadline too) wakes the wait by setting a write deadline in the
// past; if that raced with success, the deadline is cleared again once the
// callback has surely finished.
func (fd *pollFD) waitConnect(ctx context.Context, done func(s int) bool) error {
	// On loopback the connection is usually made already: no waiting
	// machinery then.
	if done(fd.private()) {
		return nil
	}
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			fd.f.SetWriteDeadline(aLongTimeAgo)
			close(fired)
		})
		defer func() {
			if !stop() {
				<-fired
				fd.f.SetWriteDeadline(time.Time{})
			}
		}()
	}
	err := fd.rc.Write(func(s uintptr) bool { return done(int(s)) })
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return pollErr(err)
	}
	return nil
}

// aLongTimeAgo is a deadline that has passed: setting it wakes a wait.
var aLongTimeAgo = time.Unix(1, 0)

func (fd *pollFD) ready(bool) error { return nil }

func (fd *pollFD) accepted(s int) (descriptor, error) { return newPollFD(s) }

func (fd *pollFD) acceptFlags() int { return sockFlags }

func (fd *pollFD) private() int { return fd.s }

func (fd *pollFD) control(fn func(s int) error) error {
	var ferr error
	if err := fd.rc.Control(func(s uintptr) { ferr = fn(int(s)) }); err != nil {
		return pollErr(err)
	}
	return ferr
}

func (fd *pollFD) setDeadline(d direction, t time.Time) error {
	var err error
	if d == dirRead {
		err = fd.f.SetReadDeadline(t)
	} else {
		err = fd.f.SetWriteDeadline(t)
	}
	if err != nil {
		return net.ErrClosed
	}
	return nil
}

func (fd *pollFD) isClosed() bool { return fd.closed.Load() }

func (fd *pollFD) close() error {
	if fd.closed.Swap(true) {
		return nil
	}
	sys.CountClose()
	if err := fd.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

func (fd *pollFD) rawConn() syscall.RawConn { return pollRawConn{fd.rc} }

// pollErr maps an error of the runtime's RawConn (not of a callback:
// those come back in op.err) to what netcore reports: a deadline, or the
// socket being closed.
func pollErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return net.ErrClosed
}

// pollRawConn is the runtime's RawConn with netcore's errors: after Close
// its methods return net.ErrClosed, as a net.Conn's do, not os.ErrClosed.
type pollRawConn struct{ rc syscall.RawConn }

func (rc pollRawConn) Control(f func(fd uintptr)) error { return rawErr(rc.rc.Control(f)) }

func (rc pollRawConn) Read(f func(fd uintptr) bool) error { return rawErr(rc.rc.Read(f)) }

func (rc pollRawConn) Write(f func(fd uintptr) bool) error { return rawErr(rc.rc.Write(f)) }

func rawErr(err error) error {
	if err == nil {
		return nil
	}
	return pollErr(err)
}
