package netcore

import (
	"errors"
	"strconv"
	"strings"
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
// "unix", as Go's net passes them, and address is ctl (see
// controlAddress).
func runControl(control func(network, address string, c syscall.RawConn) error, s int, sa Sockaddr, ctl string) error {
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
	return control(network, ctl, &setupConn{fd: s})
}

// controlAddress is the address a listener's Control gets, spelled as Go's
// net spells it: ":port" for an empty host, "0.0.0.0:port" for a wildcard
// host on "tcp" (Go's dual-stack socket), "" for a Unix socket the kernel
// names (autobind), and the resolved address otherwise.
func controlAddress(network, address string, sa Sockaddr) string {
	switch {
	case sa.IsUnix():
		if address == "" {
			return ""
		}
		return sa.String()
	case strings.HasPrefix(address, ":"):
		return ":" + strconv.Itoa(int(sa.Port()))
	case network == "tcp" && sa.Addr().IsUnspecified():
		return "0.0.0.0:" + strconv.Itoa(int(sa.Port()))
	}
	return sa.String()
}
