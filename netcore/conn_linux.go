package netcore

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// Conn is a TCP connection. It implements net.Conn and is safe for
// concurrent use: one Read and one Write may run at the same time, and
// Close (from any goroutine) wakes both.
//
// Read returns io.EOF once the peer has closed its sending side and every
// byte before that has been read. Write writes all of p or returns an error;
// short writes and EINTR are looped inside. After Close every method
// returns an error that matches net.ErrClosed, and a second Close returns
// nil.
type Conn struct {
	fd      descriptor
	network string   // the network the caller named, for errors, as Go's net reports it
	raddr   Sockaddr // the peer, known when the connection is made
	unmap   bool     // report an IPv4-mapped local address as IPv4 (dual-stack listeners)
	laddrMu sync.Mutex
	laddr   Sockaddr // asked of the kernel on first use (or at Close), unless known

	idle time.Duration // Server.IdleTimeout, 0 for none
	// dlMu orders a Read arming the idle timeout with SetReadDeadline, so
	// that a deadline set by another goroutine (Shutdown's wake-up, say)
	// is never overwritten by the idle timeout.
	dlMu            sync.Mutex
	readDeadlineSet bool // the user set a read deadline: idle does not apply

	// The read side and the write side each hold their own lock for the
	// whole call, and run operation values bound once per connection, one
	// for each kind of call (op_linux.go), so the steady state allocates
	// nothing. The kinds only ReadFrom, WriteTo and Writev use are made
	// on their first use: a Conn that never calls them does not carry
	// them.
	rmu      sync.Mutex
	rd       readOp    // Read
	spliceRd *spliceOp // WriteTo or ReadFrom into another Conn: this one's bytes into the pipe

	wmu sync.Mutex
	wr  writeOp     // Write
	wx  *writeKinds // Writev and ReadFrom
}

// writeKinds are a Conn's write-side operations besides Write.
type writeKinds struct {
	wv       writevOp   // Writev
	sf       sendfileOp // ReadFrom a file
	spliceWr spliceOp   // ReadFrom another Conn: the pipe's bytes into this one
}

// writeOps returns c's write-side operations besides Write, made on
// first use. The caller holds c.wmu.
func (c *Conn) writeOps() *writeKinds {
	if c.wx == nil {
		c.wx = new(writeKinds)
		c.wx.wv.init()
		c.wx.sf.init()
		c.wx.spliceWr.init(dirWrite)
	}
	return c.wx
}

var _ net.Conn = (*Conn)(nil)

// newConn returns a Conn over fd to the peer raddr, dialed or accepted on
// network.
func newConn(fd descriptor, network string, raddr Sockaddr) *Conn {
	c := &Conn{fd: fd, raddr: raddr, network: network}
	c.rd.init()
	c.wr.init()
	return c
}

// Read reads up to len(p) bytes. It returns io.EOF at the peer's FIN, an
// error matching os.ErrDeadlineExceeded when a read deadline (or the
// Server's IdleTimeout) passes, and net.ErrClosed after Close. A Read of
// no bytes returns at once, as in Go's net.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if c.fd.isClosed() {
			return 0, c.opErr("read", net.ErrClosed)
		}
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.idle > 0 {
		if err := c.armIdle(); err != nil {
			return 0, c.opErr("read", err)
		}
	}
	c.rd.buf, c.rd.n = p, 0
	err := c.fd.run(&c.rd.op)
	c.rd.buf = nil
	if err != nil {
		return 0, c.opErr("read", err)
	}
	if c.rd.n == 0 {
		return 0, io.EOF
	}
	return c.rd.n, nil
}

// armIdle sets the read deadline IdleTimeout away, unless the user has
// set one.
func (c *Conn) armIdle() error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if c.readDeadlineSet {
		return nil
	}
	return c.fd.setDeadline(dirRead, time.Now().Add(c.idle))
}

// Write writes all of p. It returns len(p) and nil, or the number of bytes
// the kernel took and an error: EPIPE or ECONNRESET when the peer is gone
// (the process is never killed by SIGPIPE), os.ErrDeadlineExceeded when a
// write deadline passes (for a Write of no bytes too, as in Go's net),
// net.ErrClosed after Close.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wr.buf = p
	c.wr.start(int64(len(p)))
	err := c.fd.run(&c.wr.op)
	c.wr.buf = nil
	return int(c.wr.done), c.opErr("write", err)
}

// Close closes the connection. It wakes a blocked Read or Write, which
// return net.ErrClosed. A second Close returns nil.
func (c *Conn) Close() error {
	if !c.fd.isClosed() {
		c.LocalSockaddr() // LocalAddr must still answer after Close
	}
	return c.opErr("close", c.fd.close())
}

// CloseRead shuts down the reading side (shutdown(2) with SHUT_RD).
func (c *Conn) CloseRead() error { return c.shutdown(unix.SHUT_RD, "close-read") }

// CloseWrite shuts down the writing side (shutdown(2) with SHUT_WR): the
// peer reads EOF after the bytes already written. Reading goes on.
func (c *Conn) CloseWrite() error { return c.shutdown(unix.SHUT_WR, "close-write") }

func (c *Conn) shutdown(how int, op string) error {
	err := c.fd.control(func(s int) error { return os.NewSyscallError("shutdown", sys.Shutdown(s, how)) })
	return c.opErr(op, err)
}

// LocalAddr returns the local address as a *net.TCPAddr (a *net.UnixAddr
// on a Unix socket), after Close too.
func (c *Conn) LocalAddr() net.Addr { return netAddr(c.LocalSockaddr()) }

// RemoteAddr returns the peer's address as a *net.TCPAddr (a *net.UnixAddr
// on a Unix socket).
func (c *Conn) RemoteAddr() net.Addr { return netAddr(c.raddr) }

// RemoteSockaddr returns the peer's address.
func (c *Conn) RemoteSockaddr() Sockaddr { return c.raddr }

// LocalSockaddr returns the local address. The first call asks the kernel
// (getsockname(2)) and remembers the answer, so accepting costs no system
// call for an address nobody reads. Close asks before closing if nobody
// has, so the answer outlives the socket.
func (c *Conn) LocalSockaddr() Sockaddr {
	c.laddrMu.Lock()
	defer c.laddrMu.Unlock()
	if c.laddr.IsValid() {
		return c.laddr
	}
	var sa Sockaddr
	_ = c.fd.control(func(s int) (err error) {
		sa, err = sockname(s, false)
		return err
	})
	if c.unmap {
		sa = sa.Unmap()
	}
	c.laddr = sa
	return sa
}

// SetDeadline sets the read and write deadlines (see net.Conn). The zero
// time removes them.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for Read calls, pending ones included.
// While a read deadline is set, a Server's IdleTimeout does not apply; the
// zero time removes the deadline and brings IdleTimeout back.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if err := c.fd.setDeadline(dirRead, t); err != nil {
		return c.opErr("set", err)
	}
	c.readDeadlineSet = !t.IsZero()
	return nil
}

// SetWriteDeadline sets the deadline for Write calls, pending ones
// included. A Write that times out may have written part of its buffer.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.opErr("set", c.fd.setDeadline(dirWrite, t))
}

// SetNoDelay turns Nagle's algorithm off (true, netcore's default, as in
// Go's net) or on (TCP_NODELAY). On a Unix socket, which has no Nagle, it
// does nothing.
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.setTCPOpt(func(s int) error { return setInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(noDelay)) })
}

// SetKeepAlive turns TCP keep-alive probes on or off (SO_KEEPALIVE). On a
// Unix socket it does nothing.
func (c *Conn) SetKeepAlive(on bool) error {
	return c.setTCPOpt(func(s int) error { return setKeepAlive(s, on, 0) })
}

// SetKeepAlivePeriod turns keep-alive on and sets both the idle time before
// the first probe and the interval between probes to d, rounded up to whole
// seconds (TCP_KEEPIDLE, TCP_KEEPINTVL). On a Unix socket it does nothing.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	return c.setTCPOpt(func(s int) error { return setKeepAlive(s, true, d) })
}

// setTCPOpt sets an option of TCP, or does nothing on a Unix socket (but
// still fails after Close).
func (c *Conn) setTCPOpt(fn func(s int) error) error {
	if !transportOf(c.raddr).tcp {
		fn = func(int) error { return nil }
	}
	return c.setOpt(fn)
}

// PeerCred returns the credentials of the process at the other end of a
// Unix socket, as the kernel recorded them when the connection was made
// (SO_PEERCRED). On a TCP connection it returns an error.
func (c *Conn) PeerCred() (Ucred, error) {
	var cred Ucred
	err := c.fd.control(func(s int) (err error) {
		cred, err = peerCred(s, c.raddr)
		return err
	})
	return cred, c.opErr("peercred", err)
}

// SetLinger sets what Close does with unsent data (SO_LINGER): sec < 0 (the
// default) sends it in the background; 0 discards it and resets the
// connection; sec > 0 blocks Close until it is sent or sec seconds pass.
func (c *Conn) SetLinger(sec int) error {
	return c.setOpt(func(s int) error { return setLinger(s, sec) })
}

// SetReadBuffer sets the kernel's receive buffer size (SO_RCVBUF). The
// kernel doubles the value for its bookkeeping and clamps it.
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.setOpt(func(s int) error { return setInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, bytes) })
}

// SetWriteBuffer sets the kernel's send buffer size (SO_SNDBUF), doubled
// and clamped by the kernel as for SetReadBuffer.
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.setOpt(func(s int) error { return setInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, bytes) })
}

func (c *Conn) setOpt(fn func(s int) error) error {
	return c.opErr("set", c.fd.control(fn))
}

// SyscallConn returns the raw connection, for options netcore does not
// wrap. Its Control gives the descriptor while holding it open; do not
// close it or change its blocking mode.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if c.fd.isClosed() {
		return nil, c.opErr("raw-conn", net.ErrClosed)
	}
	return c.fd.rawConn(), nil
}

// opErr wraps err as Go's net does, naming both ends.
func (c *Conn) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return opError(op, c.network, c.LocalSockaddr(), c.raddr, err)
}
