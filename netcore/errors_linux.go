package netcore

import (
	"errors"
	"net"
	"syscall"
)

// action is what a loop does after a system call failed.
type action uint8

const (
	fail        action = iota // give the error to the caller
	retry                     // make the same call again at once (ECONNABORTED and the like on accept)
	interrupted               // a signal interrupted the call (EINTR): call again, after looking at deadlines and Close where a signal may have been sent for that
	wait                      // wait for readiness, then call again (EAGAIN, EINPROGRESS, EALREADY)
)

// classify is the one place that decides how an errno is handled. accept
// is set for accept4, where ECONNABORTED means a queued connection was reset
// before it was accepted, and where Linux passes on the network errors
// already pending on the new socket (accept(2), "Error handling"): both are
// about that one connection, so it is skipped and the next one taken.
func classify(err error, accept bool) action {
	switch err {
	case nil:
		return fail
	case syscall.EINTR:
		return interrupted
	case syscall.EAGAIN, syscall.EINPROGRESS, syscall.EALREADY:
		return wait
	case syscall.ECONNABORTED, syscall.EPROTO, syscall.ENETDOWN, syscall.ENOPROTOOPT, syscall.EHOSTDOWN,
		syscall.ENONET, syscall.EHOSTUNREACH, syscall.EOPNOTSUPP, syscall.ENETUNREACH:
		if accept {
			return retry
		}
	}
	return fail
}

// again reports whether a call that failed with err is simply made again:
// it was interrupted (EINTR), or (for accept4) the failure concerned only
// one connection.
func again(err error, accept bool) bool {
	a := classify(err, accept)
	return a == retry || a == interrupted
}

// isResourceLimit reports whether an accept error means the process or the
// system ran out of something that frees up later: descriptors (EMFILE,
// ENFILE) or memory (ENOBUFS, ENOMEM). A server backs off instead of
// stopping.
func isResourceLimit(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// opError wraps an error the way Go's net package does:
// *net.OpError{Op, Net, Source, Addr, Err}, where Err is the
// *os.SyscallError of the call that failed (named where it was made), or
// net.ErrClosed, os.ErrDeadlineExceeded or a context error, so errors.Is
// finds each of them.
func opError(op, network string, src, dst Sockaddr, err error) error {
	if err == nil {
		return nil
	}
	oe := &net.OpError{Op: op, Net: network, Err: err}
	oe.Source = netAddr(src)
	oe.Addr = netAddr(dst)
	return oe
}
