package netcore

import (
	"time"

	"golang.org/x/sys/unix"
)

// A transport is what the network of a socket means below its address: the
// protocol socket(2) takes (the family is the address's, the type is
// always SOCK_STREAM) and which options have a meaning. This is the one
// place that knows the difference between TCP and Unix stream sockets:
// options of TCP and IP are skipped on a Unix socket, as Go's net skips
// keep-alive there, rather than failing.
type transport struct {
	proto int  // socket(2)'s protocol
	tcp   bool // TCP's and IP's options apply
}

var (
	tcpTransport  = transport{proto: unix.IPPROTO_TCP, tcp: true}
	unixTransport = transport{proto: 0}
)

// transportOf returns the transport of a socket whose address (either
// end's) is sa.
func transportOf(sa Sockaddr) transport {
	if sa.IsUnix() {
		return unixTransport
	}
	return tcpTransport
}

// connOptions applies the options every new connection gets before it
// connects, or a listening socket passes on to what it accepts: TCP_NODELAY
// unless nagle, and keep-alive with the period of the KeepAlive field ka.
func (t transport) connOptions(s int, nagle bool, ka time.Duration) error {
	if !t.tcp {
		return nil
	}
	if !nagle {
		if err := setInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return err
		}
	}
	if p := keepAlivePeriod(ka); p > 0 {
		return setKeepAlive(s, true, p)
	}
	return nil
}

// acceptedOptions applies what a Loop gives every connection it accepts:
// TCP_NODELAY.
func (t transport) acceptedOptions(s int) error {
	if !t.tcp {
		return nil
	}
	return setInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

// ipOptions applies the options of the IP layer that ListenConfig and
// Dialer carry: the device (SO_BINDTODEVICE), and for a listener
// SO_REUSEPORT; neither means anything for a Unix socket. (IPV6_V6ONLY
// goes on IPv6 sockets only, which are TCP.)
func (t transport) ipOptions(s int, device string, reusePort bool) error {
	if !t.tcp {
		return nil
	}
	if reusePort {
		if err := setInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return err
		}
	}
	if device != "" {
		return setDevice(s, device)
	}
	return nil
}
