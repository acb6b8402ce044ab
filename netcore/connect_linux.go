package netcore

import (
	"context"
	"os"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// connect is the one connect algorithm, for both modes: a non-blocking
// connect(2); on EINPROGRESS the mode waits for writability, then SO_ERROR
// gives the outcome and getpeername(2) confirms it, since a wake-up does
// not prove the connection is made. Cancelling ctx (or its deadline
// passing) ends the wait with ctx's error. Nobody else has fd yet.
func connect(ctx context.Context, fd descriptor, sa Sockaddr) error {
	var raw sockaddrBuf
	b, _ := sa.AppendBinary(raw[:0])
	s := fd.private()
	var err error
	for {
		err = sys.Connect(s, b)
		if a := classify(err, false); a != interrupted && a != retry {
			break
		}
		// EINTR: the connect goes on in the kernel; the next call says
		// EALREADY or EISCONN.
	}
	if classify(err, false) == wait {
		var cerr error
		err = fd.waitConnect(ctx, func(s int) bool {
			var done bool
			done, cerr = connectResult(s)
			return done
		})
		if err == nil {
			err = cerr
		}
	} else if err == unix.EISCONN {
		err = nil
	} else if err != nil {
		err = os.NewSyscallError("connect", err)
	}
	if err != nil {
		return err
	}
	return fd.ready(false)
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
