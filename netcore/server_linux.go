package netcore

import (
	"net"
	"time"
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
