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
	var raw [unix.SizeofSockaddrInet6]byte
	b, _ := sa.AppendBinary(raw[:0])
	var cerr error
	err := fd.control(func(s int) error {
		for {
			err := sys.Connect(s, b)
			switch classify(err, false) {
			case interrupted, retry:
				// The connect goes on in the kernel; the next call says
				// EALREADY or EISCONN.
				continue
			case wait:
				cerr = err
				return nil
			}
			if err == nil || err == unix.EISCONN {
				return nil
			}
			return os.NewSyscallError("connect", err)
		}
	})
	if err != nil {
		return err
	}
	if cerr != nil {
		// In progress: wait.
		err = fd.waitConnect(ctx, func(s int) bool {
			var done bool
			done, cerr = connectResult(s)
			return done
		})
		if err != nil {
			return err
		}
		if cerr != nil {
			return cerr
		}
	}
	return fd.ready()
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
