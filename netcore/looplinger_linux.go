package netcore

import (
	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// Lingering close. A connection closed by its handler (Close) while the
// peer may still be sending must not be closed outright: input that
// arrives at a closed socket, or is still unread in it, makes the kernel
// answer with a reset, and a reset that overtakes the reply on the network
// destroys the reply at the peer. So, as careful servers do, the loop shuts
// the write side down once the reply is out (the peer reads it, then EOF),
// then reads and discards what the peer still sends until its EOF, and
// closes the socket then, or when LingerTimeout has passed. The handler is
// done with the connection when lingering starts: OnClose has been called.

// lingerFD is a lingering socket in the loop's FIFO, by deadline.
type lingerFD struct {
	fd       int
	deadline int64
}

// linger takes c's socket over for lingering; it reports false (and
// leaves c alone) if lingering does not apply: the peer has half-closed
// already (nothing more can come), lingering is off, or the Loop is being
// closed at once.
func (l *eventLoop) linger(c *LoopConn) bool {
	if c.eof || l.lim.linger <= 0 || l.forcing {
		return false
	}
	if !c.shutWr {
		if err := sys.Shutdown(c.fd, unix.SHUT_WR); err != nil {
			return false // the connection is gone: nothing to protect
		}
		c.shutWr = true
	}
	if l.ur != nil {
		l.prepPoll(c.fd, unix.POLLIN|unix.POLLRDHUP, userData(udLinger, 0, 0, c.fd))
	} else {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd), Pad: tagLinger}
		if err := sys.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
			return false
		}
	}
	deadline := addSat(l.now, int64(l.lim.linger))
	for c.fd >= len(l.lingering) {
		l.lingering = append(l.lingering[:cap(l.lingering)], 0)
	}
	l.lingering[c.fd] = deadline
	l.lingerQ = append(l.lingerQ, lingerFD{c.fd, deadline})
	l.nlinger++
	return true
}

// lingerRead discards what arrived on a lingering socket; its EOF, or an
// error, ends the lingering.
func (l *eventLoop) lingerRead(fd int) {
	if fd >= len(l.lingering) || l.lingering[fd] == 0 {
		return
	}
	for range 16 { // bounded: a peer that keeps sending meets the deadline
		n, err := sys.Read(fd, l.scratch)
		if again(err, false) {
			continue
		}
		if err != nil && classify(err, false) == wait {
			return
		}
		if err != nil || n == 0 {
			l.endLinger(fd)
			return
		}
	}
}

// endLinger closes a lingering socket.
func (l *eventLoop) endLinger(fd int) {
	l.lingering[fd] = 0
	l.nlinger--
	if l.ur != nil {
		l.prepCancel(userData(udLinger, 0, 0, fd))
		l.submitBeforeClose()
	}
	closeFD(fd)
}

// expireLingers closes the lingering sockets whose LingerTimeout has
// passed (all of them if all is set).
func (l *eventLoop) expireLingers(all bool) {
	q := l.lingerQ
	i := 0
	for ; i < len(q) && (all || q[i].deadline <= l.now); i++ {
		if l.lingering[q[i].fd] == q[i].deadline { // not ended and reused since
			l.endLinger(q[i].fd)
		}
	}
	if i > 0 {
		l.lingerQ = append(q[:0], q[i:]...)
	}
}

// lingerDeadline is when the first lingering socket's time is up, -1 if
// none lingers.
func (l *eventLoop) lingerDeadline() int64 {
	if len(l.lingerQ) == 0 {
		return -1
	}
	return l.lingerQ[0].deadline
}
