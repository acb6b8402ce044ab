package netcore

import (
	"net"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
)

// setIdleTimeout applies Server.IdleTimeout to the netcore connection
// beneath c, if there is one.
func setIdleTimeout(c net.Conn, d time.Duration) {
	if nc, ok := AsConn(c); ok {
		nc.idle = d
	}
}

// blockingFellBack reports whether c, accepted from a blocking-mode
// listener, was made in the default mode because the blocking budget was
// spent.
func blockingFellBack(l net.Listener, c net.Conn) bool {
	nl, ok := l.(*Listener)
	if !ok {
		return false
	}
	if _, blocking := nl.fd.(*blockFD); !blocking {
		return false
	}
	nc, ok := c.(*Conn)
	if !ok {
		return false
	}
	_, polled := nc.fd.(*pollFD)
	return polled
}

// wakeBatch is the blocking-mode sockets whose blocked reads still need a
// signal to see a deadline that stageWake set; each holds a reference.
type wakeBatch []*blockFD

// stageWake sets the read deadline t on c. On a blocking-mode socket it
// only stores it and adds the socket to batch, for wakeStaged to interrupt
// its blocked read together with the others: one scan of the process's
// threads per round for all of them, where SetReadDeadline would scan them
// once per socket (5,000 idle connections: 5,000 scans of 5,000 threads).
func stageWake(batch wakeBatch, c net.Conn, t time.Time) wakeBatch {
	if nc, ok := AsConn(c); ok {
		if bfd, ok := nc.fd.(*blockFD); ok && bfd.incref() {
			nc.dlMu.Lock()
			bfd.dl[dirRead].Store(monoDeadline(t))
			nc.readDeadlineSet = !t.IsZero()
			nc.dlMu.Unlock()
			return append(batch, bfd)
		}
	}
	c.SetReadDeadline(t)
	return batch
}

// wakeStaged interrupts the reads blocked on batch's sockets and drops its
// references. (A read that cannot be woken sees the deadline when its
// kernel timeout ends, as after SetReadDeadline.)
func wakeStaged(batch wakeBatch) {
	wakeCalls(batch, dirRead)
	for _, fd := range batch {
		fd.decref()
	}
}

// hasUnreadInput reports whether bytes wait unread in the receive queue of
// the netcore socket beneath c (SIOCINQ): closing it now would send a
// reset.
func hasUnreadInput(c net.Conn) bool {
	nc, ok := AsConn(c)
	if !ok {
		return false
	}
	n := 0
	nc.fd.control(func(s int) error {
		n, _ = sys.Unread(s)
		return nil
	})
	return n > 0
}

// closeConns closes every connection of conns, beneath any TLS (a forced
// close sends no TLS alert, which could block on a stuck peer). The
// blocking-mode sockets among them are closed together (closeBlocking).
func closeConns(conns []net.Conn) {
	var batch []*blockFD
	for _, c := range conns {
		nc, ok := AsConn(c)
		if !ok {
			innermost(c).Close()
			continue
		}
		if bfd, ok := nc.fd.(*blockFD); ok {
			if !bfd.isClosed() {
				nc.LocalSockaddr() // LocalAddr must still answer after Close
			}
			batch = append(batch, bfd)
			continue
		}
		nc.Close()
	}
	closeBlocking(batch)
}
