package netcore

import (
	"errors"
	"syscall"
)

// setupConn is the syscall.RawConn that ListenConfig.Control and
// Dialer.Control get: the new socket, before bind(2) or connect(2). Read
// and Write call f once, as Go's do when f is done at once; an f that
// would wait gets an error, since nothing can arrive on a socket that is
// neither bound nor connected (Go's would wait forever).
type setupConn struct{ fd int }

var errSetupIO = errors.New("netcore: Control's RawConn cannot wait to Read or Write: the socket is neither bound nor connected yet")

func (c *setupConn) Control(f func(fd uintptr)) error    { f(uintptr(c.fd)); return nil }
func (c *setupConn) Read(f func(fd uintptr) bool) error  { return c.once(f) }
func (c *setupConn) Write(f func(fd uintptr) bool) error { return c.once(f) }

func (c *setupConn) once(f func(fd uintptr) bool) error {
	if f(uintptr(c.fd)) {
		return nil
	}
	return errSetupIO
}

// runControl calls a Control function of Go's shape with socket s about
// to be bound to (or connected to) sa: network is "tcp4", "tcp6" or
// "unix", as Go's net passes them, and address is sa's text.
func runControl(control func(network, address string, c syscall.RawConn) error, s int, sa Sockaddr) error {
	if control == nil {
		return nil
	}
	network := "tcp6"
	switch {
	case sa.IsUnix():
		network = "unix"
	case sa.Is4():
		network = "tcp4"
	}
	return control(network, sa.String(), &setupConn{fd: s})
}
