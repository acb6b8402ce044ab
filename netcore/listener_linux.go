package netcore

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// Listen announces on the local network address. network is "tcp",
// "tcp4" or "tcp6"; address is "host:port", where an empty host or a
// wildcard address listens on every address (dual-stack for "tcp") and
// port 0 lets the kernel choose (Addr reports it). network "unix" listens
// on a Unix stream socket: address is a file system path, which Close
// removes (see SetUnlinkOnClose), "@name" in the Linux abstract namespace,
// or "" for an abstract name the kernel picks (Addr reports it).
func Listen(network, address string) (*Listener, error) {
	var lc ListenConfig
	return lc.Listen(context.Background(), network, address)
}

// Listen announces on the local network address with lc's options. ctx
// bounds name resolution only.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (*Listener, error) {
	sas, err := Resolve(ctx, network, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	// "tcp" on a wildcard address is one dual-stack IPv6 socket, as in Go.
	if network == "tcp" && sas[0].Addr().IsUnspecified() {
		sas = []Sockaddr{SockaddrFrom16([16]byte{}, sas[0].Port(), 0), SockaddrFrom4([4]byte{}, sas[0].Port())}
	}
	ctl := controlAddress(network, address, sas[0])
	var first error
	for _, sa := range sas {
		l, err := lc.listen(network, sa, ctl)
		if err == nil {
			return l, nil
		}
		if first == nil {
			first = err
		}
		// Only a missing address family (no IPv6 here) moves on to the
		// next address; any other failure is the answer.
		if !errors.Is(err, syscall.EAFNOSUPPORT) {
			break
		}
	}
	return nil, first
}

// listen opens a listening socket on sa; ctl is the address Control gets.
func (lc *ListenConfig) listen(network string, sa Sockaddr, ctl string) (_ *Listener, err error) {
	fd, err := openSocket(sa, lc.Blocking)
	if err != nil {
		return nil, opError("listen", network, Sockaddr{}, sa, err)
	}
	defer func() {
		if err != nil {
			fd.close()
			err = opError("listen", network, Sockaddr{}, sa, err)
		}
	}()
	s := fd.private()
	if err := lc.setup(s, network, sa, ctl); err != nil {
		return nil, err
	}
	var raw sockaddrBuf
	b, _ := sa.AppendBinary(raw[:0])
	if err := sys.Bind(s, b); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	if sa.isUnixPath() {
		// bind(2) made the socket file: remove it if listening fails.
		defer func() {
			if err != nil {
				_ = sys.Unlink(sa.path)
			}
		}()
	}
	backlog := lc.Backlog
	if backlog <= 0 {
		backlog = maxListenerBacklog()
	}
	if err := sys.Listen(s, backlog); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	bound, err := sockname(s, false)
	if err != nil {
		return nil, err
	}
	if err := fd.ready(true); err != nil {
		return nil, err
	}
	l := &Listener{fd: fd, addr: bound, network: network, unmap: !lc.KeepMapped}
	l.unlink.Store(sa.isUnixPath())
	l.ac.init(fd.acceptFlags())
	return l, nil
}

// setup applies the options that go between socket(2) and bind(2).
func (lc *ListenConfig) setup(s int, network string, sa Sockaddr, ctl string) error {
	if err := setInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	// TCP_NODELAY and keep-alive are set here, on the listening socket:
	// Linux copies them into every socket it accepts, which then costs no
	// system call of its own.
	t := transportOf(sa)
	if err := t.connOptions(s, lc.Nagle, lc.KeepAlive); err != nil {
		return err
	}
	if sa.Is6() {
		if err := setInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolInt(lc.V6Only || network == "tcp6")); err != nil {
			return err
		}
	}
	if err := t.ipOptions(s, lc.Device, lc.ReusePort); err != nil {
		return err
	}
	return runControl(lc.Control, s, sa, ctl)
}

var somaxconn = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return unix.SOMAXCONN
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return unix.SOMAXCONN
	}
	return n
})

// maxListenerBacklog is the backlog Listen uses by default.
func maxListenerBacklog() int { return somaxconn() }

// Listener is a TCP or Unix stream listener. It implements net.Listener;
// Accept and Close are safe to call from different goroutines, and Close
// wakes a blocked Accept.
type Listener struct {
	fd      descriptor
	addr    Sockaddr
	network string
	unmap   bool
	unlink  atomic.Bool // Close removes the socket file (see SetUnlinkOnClose)

	// Accept holds mu for the whole call, which runs ac.
	mu sync.Mutex
	ac acceptOp
}

var _ net.Listener = (*Listener)(nil)

// Accept waits for and returns the next connection as a net.Conn (a
// *Conn); see AcceptConn.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn waits for and returns the next connection. EINTR,
// ECONNABORTED (a connection reset while it waited in the queue) and the
// other errors that concern only the connection being accepted are
// retried inside. Other accept4(2) errors, EMFILE among them, are returned
// in a *net.OpError; after Close the error matches net.ErrClosed, after a
// deadline os.ErrDeadlineExceeded.
func (l *Listener) AcceptConn() (*Conn, error) {
	c, err := l.accept()
	if err != nil {
		return nil, l.opErr("accept", err)
	}
	return c, nil
}

// accept takes the next connection off the queue. Its TCP_NODELAY and
// keep-alive come from the listening socket (see ListenConfig.setup).
func (l *Listener) accept() (*Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ac.nfd = -1
	if err := l.fd.run(&l.ac.op); err != nil {
		if l.ac.nfd >= 0 {
			closeFD(l.ac.nfd) // accepted as Close began
		}
		return nil, err
	}
	s, peer := l.ac.nfd, l.ac.peer
	fd, err := l.fd.accepted(s)
	if err != nil {
		return nil, err
	}
	if l.unmap {
		peer = peer.Unmap()
	}
	c := newConn(fd, l.network, peer)
	c.unmap = l.unmap
	if !l.addr.Addr().IsUnspecified() {
		// The listener's own address is the connection's: no
		// getsockname needed.
		c.laddr = l.addr
	}
	return c, nil
}

// Close stops listening. A blocked Accept returns an error matching
// net.ErrClosed; connections already accepted stay open. The first Close
// of a listener on a Unix path removes the socket file, as Go's net does
// (unless SetUnlinkOnClose(false)); failing to remove it is not an error.
// A second Close returns nil.
func (l *Listener) Close() error {
	closing := !l.fd.isClosed()
	err := l.fd.close()
	if closing && l.unlink.Swap(false) {
		_ = sys.Unlink(l.addr.path)
	}
	return l.opErr("close", err)
}

// SetUnlinkOnClose sets whether Close removes the socket file of a
// listener on a Unix path, as net.UnixListener.SetUnlinkOnClose: Listen
// turns it on. Off, the file stays, and a new Listen on the path fails
// with EADDRINUSE until it is removed. It does nothing for other
// listeners.
func (l *Listener) SetUnlinkOnClose(unlink bool) {
	l.unlink.Store(unlink && l.addr.isUnixPath())
}

// Addr returns the listener's address as a *net.TCPAddr, with the port the
// kernel chose for port 0; or as a *net.UnixAddr.
func (l *Listener) Addr() net.Addr { return netAddr(l.addr) }

// Sockaddr returns the listener's address, with the port the kernel chose
// for port 0.
func (l *Listener) Sockaddr() Sockaddr { return l.addr }

// SetDeadline sets a deadline for Accept calls, pending ones included; the
// zero time removes it.
func (l *Listener) SetDeadline(t time.Time) error {
	return l.opErr("set", l.fd.setDeadline(dirRead, t))
}

// SyscallConn returns the raw listening socket, for options netcore does
// not wrap.
func (l *Listener) SyscallConn() (syscall.RawConn, error) {
	if l.fd.isClosed() {
		return nil, l.opErr("raw-conn", net.ErrClosed)
	}
	return l.fd.rawConn(), nil
}

func (l *Listener) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return opError(op, l.network, l.addr, Sockaddr{}, err)
}
