package netcore

import (
	"syscall"
	"time"
)

// This file holds the option types of Listen and Dial, on every platform, so
// that code written against them compiles everywhere; their methods are in
// listener_linux.go and dial_linux.go (and return ErrLinuxOnly elsewhere).

// DefaultKeepAlive is the keep-alive period of connections whose Dialer
// or ListenConfig leaves KeepAlive 0: Go's net default.
const DefaultKeepAlive = 15 * time.Second

// keepAlivePeriod is the period a KeepAlive field asks for; 0 for off.
func keepAlivePeriod(ka time.Duration) time.Duration {
	switch {
	case ka < 0:
		return 0
	case ka == 0:
		return DefaultKeepAlive
	}
	return ka
}

// ListenConfig holds the options applied between socket(2) and bind(2).
// The zero ListenConfig is what Listen uses.
type ListenConfig struct {
	// Backlog is listen(2)'s backlog; 0 means the system's maximum,
	// /proc/sys/net/core/somaxconn (unix.SOMAXCONN if it cannot be read).
	Backlog int
	// ReusePort sets SO_REUSEPORT, so several sockets can listen on one
	// port and the kernel spreads connections among them.
	ReusePort bool
	// V6Only sets IPV6_V6ONLY on an IPv6 socket: it then accepts IPv6
	// connections only. "tcp6" always sets it; "tcp" on a wildcard address
	// leaves it off (dual-stack) unless V6Only is set.
	V6Only bool
	// Device binds the socket to a network interface (SO_BINDTODEVICE),
	// "lo" for example. Binding to a device may need CAP_NET_RAW.
	Device string
	// KeepMapped keeps the peers of a dual-stack listener as IPv4-mapped
	// IPv6 addresses ([::ffff:1.2.3.4]:5) instead of unmapping them to IPv4
	// (1.2.3.4:5), which is the default.
	KeepMapped bool
	// KeepAlive is the keep-alive period of accepted connections, as in
	// Go's net: 0 turns TCP keep-alive on with DefaultKeepAlive (15 s
	// idle before the first probe, 15 s between probes, the kernel's 9
	// probes); a positive value uses that period instead (rounded up to
	// whole seconds); a negative value leaves keep-alive off.
	KeepAlive time.Duration
	// Nagle leaves Nagle's algorithm on for accepted connections. By
	// default netcore sets TCP_NODELAY on every connection, as Go's net
	// does, so small writes go out at once.
	Nagle bool
	// Control, if not nil, is called with the new socket before bind(2),
	// after netcore's own options: for options netcore does not wrap. It
	// has the signature of net.ListenConfig.Control, so code written for
	// that runs unchanged: network is "tcp4", "tcp6" or "unix", address
	// the address about to be bound, and c.Control runs a function with
	// the descriptor (c cannot Read or Write yet). An error aborts Listen.
	Control func(network, address string, c syscall.RawConn) error
	// Blocking selects the fast path for the listener and every connection
	// it accepts: Accept, Read and Write block in the kernel on their own
	// thread instead of parking on Go's runtime poller. The kernel then
	// wakes the waiting thread directly, which makes accepting and
	// request/response round trips markedly faster, at the cost of one
	// thread per blocked call: choose it for a few busy connections, not
	// for thousands of mostly idle ones. The net.Conn contract holds as
	// in the default mode: Close wakes blocked calls, and a deadline set
	// or moved while a call is blocked takes effect at once (netcore
	// interrupts the blocked thread with SIGURG; see the README).
	// Sockets past the blocking budget (SetBlockingBudget), and every
	// socket in a process where blocked threads cannot be woken (SIGURG
	// ignored, or /proc/self/task unreadable because the process is not
	// dumpable; logged once), are made in the default mode instead.
	Blocking bool
}

// Dialer holds the options for connecting. The zero Dialer is what Dial
// uses.
type Dialer struct {
	// Timeout bounds the whole dial, name resolution and every address
	// tried included; 0 means no bound beyond the context's.
	Timeout time.Duration
	// LocalAddr, if valid, is bound before connecting (the source
	// address). Port 0 lets the kernel pick the port at connect time
	// (IP_BIND_ADDRESS_NO_PORT), so the 4-tuple, not the port alone, must
	// be unique.
	LocalAddr Sockaddr
	// Device binds the socket to a network interface (SO_BINDTODEVICE).
	Device string
	// KeepAlive is the keep-alive period, as in Go's net: 0 turns TCP
	// keep-alive on with DefaultKeepAlive; a positive value is the idle
	// time before the first probe and the interval between probes
	// (rounded up to whole seconds); a negative value leaves keep-alive
	// off.
	KeepAlive time.Duration
	// Nagle leaves Nagle's algorithm on. By default netcore sets
	// TCP_NODELAY, as Go's net does.
	Nagle bool
	// Control, if not nil, is called with the new socket before
	// bind/connect, after netcore's own options, with the signature of
	// net.Dialer.Control (see ListenConfig.Control): address is the
	// destination. An error aborts that address.
	Control func(network, address string, c syscall.RawConn) error
	// Blocking selects the fast path (see ListenConfig.Blocking): Read and
	// Write block in the kernel on their own thread. The connect itself is
	// still non-blocking, so a context can cancel it.
	Blocking bool
}

// Ucred is the identity of the process at the other end of a Unix socket,
// as the kernel recorded it when the connection was made (SO_PEERCRED,
// struct ucred): Conn.PeerCred and LoopConn.PeerCred return it.
type Ucred struct {
	PID int32  // the process id, in the caller's PID namespace (0 if not there)
	UID uint32 // the effective user id
	GID uint32 // the effective group id
}
