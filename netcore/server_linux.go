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
