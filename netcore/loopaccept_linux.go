//go:build linux

package netcore

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// acceptor is one listener served by a loop.
type acceptor struct {
	l       net.Listener
	rc      syscall.RawConn
	addr    Sockaddr // the listener's address
	network string
	loop    *eventLoop
	idx     int
	local   Sockaddr // the listener's address, unless it is a wildcard
	fn      func(uintptr)
	sa      sockaddrBuf
	nfd     int
	salen   int
	err     error
	backoff time.Duration
	rearmAt int64 // while backing off: when to watch the listener again
	nextLog int64 // when the next resource-limit message may be logged
	done    chan error
	removed chan struct{}
	ended   bool
}

// acceptOnce is the accept callback: one accept4(2), retried on EINTR and
// on the errors that concern only the connection being accepted.
func (a *acceptor) acceptOnce(s uintptr) {
	for {
		nfd, n, err := sys.Accept4(int(s), a.sa[:], unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if again(err, true) {
			continue
		}
		a.nfd, a.salen, a.err = nfd, n, err
		return
	}
}

func (a *acceptor) finish(err error) {
	if !a.ended {
		a.ended = true
		a.done <- err
		close(a.removed)
	}
}

func (a *acceptor) opErr(err error) error {
	return opError("accept", a.network, a.addr, Sockaddr{}, err)
}

// listen starts watching a's listener (level-triggered).
func (l *eventLoop) listen(a *acceptor) {
	if l.forcing || l.draining {
		a.l.Close()
		a.finish(ErrLoopClosed)
		return
	}
	a.idx = -1
	for i, x := range l.accs {
		if x == nil {
			a.idx = i
			break
		}
	}
	if a.idx < 0 {
		a.idx = len(l.accs)
		l.accs = append(l.accs, nil)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(a.idx), Pad: tagListener}
	var err error
	cerr := a.rc.Control(func(s uintptr) {
		// Serve owns the listener: a blocking-mode one becomes
		// non-blocking, as a loop needs.
		if err = sys.SetNonblock(int(s), true); err != nil {
			err = os.NewSyscallError("fcntl", err)
			return
		}
		err = os.NewSyscallError("epoll_ctl", sys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(s), &ev))
	})
	if cerr != nil {
		err = cerr
	}
	if err != nil {
		a.l.Close()
		a.finish(a.opErr(err))
		return
	}
	l.accs[a.idx] = a
	l.naccs++
	if l.reserve < 0 {
		l.openReserve()
	}
}

// unlisten stops watching a's listener, closes it and ends its Serve
// with err.
func (l *eventLoop) unlisten(a *acceptor, err error) {
	if a.ended {
		return
	}
	if a.idx >= 0 && a.idx < len(l.accs) && l.accs[a.idx] == a {
		a.rc.Control(func(s uintptr) { sys.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(s), nil) })
		l.accs[a.idx] = nil
		l.naccs--
	}
	a.l.Close()
	a.finish(err)
}

// armListener sets the events watched on a's listener: EPOLLIN, or none
// while backing off.
func (l *eventLoop) armListener(a *acceptor, events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: int32(a.idx), Pad: tagListener}
	var err error
	if cerr := a.rc.Control(func(s uintptr) { err = sys.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, int(s), &ev) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		l.lp.logger().Error("netcore: cannot watch the listener; stopped serving it", "err", err)
		l.unlisten(a, a.opErr(os.NewSyscallError("epoll_ctl", err)))
	}
}

func (l *eventLoop) openReserve() {
	fd, err := sys.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fd = -1
	}
	l.reserve = fd
}

// accept takes up to acceptBudget connections from a's listener and hands
// each to a loop, round robin.
func (l *eventLoop) accept(a *acceptor) {
	st := &l.lp.state
	for range acceptBudget {
		a.nfd, a.salen, a.err = -1, 0, nil
		if err := a.rc.Control(a.fn); err != nil {
			// Someone closed the listener under us.
			l.unlisten(a, a.opErr(err))
			return
		}
		if a.err != nil {
			if classify(a.err, true) == wait {
				return
			}
			if isResourceLimit(a.err) {
				l.acceptLimit(a)
				return
			}
			err := a.opErr(os.NewSyscallError("accept4", a.err))
			l.lp.logger().Error("netcore: accept failed; stopped serving the listener", "err", err)
			l.unlisten(a, err)
			return
		}
		a.backoff = 0
		st.accepted.Add(1)
		s := a.nfd
		if err := transportOf(a.addr).acceptedOptions(s); err != nil {
			// The connection is already dead (the option never fails
			// on a live TCP socket): skip it, as for ECONNABORTED.
			closeFD(s)
			continue
		}
		peer, err := decodeSockaddr(a.sa[:a.salen])
		if err != nil {
			closeFD(s)
			continue
		}
		peer = peer.Unmap()
		if t := st.pick(); t == l {
			l.open(s, peer, a.local)
		} else if !t.post(task{kind: taskOpen, fd: s, peer: peer, local: a.local}) {
			closeFD(s)
		}
	}
}

// acceptLimit handles accept4 failing for lack of descriptors (EMFILE,
// ENFILE) or memory: with the reserve descriptor freed, it accepts the
// waiting connection and closes it at once, so that clients get a prompt
// close instead of hanging in the backlog; without one (or for memory) it
// stops watching the listener for a back-off (5 ms doubling to 1 s). It
// logs at most once per back-off period.
func (l *eventLoop) acceptLimit(a *acceptor) {
	st := &l.lp.state
	st.acceptLimits.Add(1)
	cause := a.opErr(os.NewSyscallError("accept4", a.err))
	if l.reserve >= 0 && (errors.Is(a.err, unix.EMFILE) || errors.Is(a.err, unix.ENFILE)) {
		closeFD(l.reserve)
		l.reserve = -1
		a.nfd, a.err = -1, nil
		cerr := a.rc.Control(a.fn)
		switch {
		case cerr == nil && a.err == nil && a.nfd >= 0:
			a.backoff = loopBackoff(a.backoff)
			l.logLimit(a, "netcore: accept failed; closed a waiting connection with the reserve descriptor",
				"err", cause, "log_backoff", a.backoff)
			closeFD(a.nfd)
			l.openReserve()
			return
		case cerr == nil && classify(a.err, true) == wait:
			// accept4 checks for a free descriptor before it looks at
			// the queue: nobody was waiting. The next connection
			// wakes us.
			l.openReserve()
			return
		}
		l.openReserve()
	}
	a.backoff = loopBackoff(a.backoff)
	a.rearmAt = l.now + int64(a.backoff)
	l.armListener(a, 0)
	l.logLimit(a, "netcore: accept failed; backing off", "err", cause, "backoff", a.backoff)
}

// logLimit logs a resource-limit message at most once per back-off period.
func (l *eventLoop) logLimit(a *acceptor, msg string, args ...any) {
	if l.now >= a.nextLog {
		a.nextLog = l.now + int64(a.backoff)
		l.lp.logger().Warn(msg, args...)
	}
}

// The loop's own small helpers, so that it depends on the descriptor layer
// only through the seam.

// closeFD closes a descriptor the loop owns (close(2) is not retried on
// EINTR: Linux has released the descriptor either way).
func closeFD(fd int) { _ = sys.Close(fd) }

// localSockaddr wraps getsockname(2).
func localSockaddr(fd int) (Sockaddr, error) {
	var buf sockaddrBuf
	n, err := sys.Getsockname(fd, buf[:])
	if err != nil {
		return Sockaddr{}, os.NewSyscallError("getsockname", err)
	}
	return decodeSockaddr(buf[:n])
}

// loopBackoff doubles d from 5 ms up to 1 s.
func loopBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}
