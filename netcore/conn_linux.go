package netcore

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
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
	fd      netFD
	network string   // "tcp4" or "tcp6" after the peer's address, for errors
	raddr   Sockaddr // the peer, known when the connection is made
	unmap   bool     // report an IPv4-mapped local address as IPv4 (dual-stack listeners)
	laddrMu sync.Mutex
	laddr   Sockaddr // asked of the kernel on first use, unless known

	idle            time.Duration // Server.IdleTimeout, 0 for none
	readDeadlineSet atomic.Bool   // the user set a read deadline: idle does not apply

	// Read and Write each hold their own lock for the whole call, and pass
	// the buffer to a callback bound on first use, once per connection, so
	// the steady state allocates nothing.
	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(uintptr) bool
}

var _ net.Conn = (*Conn)(nil)

// newConn returns a Conn to the peer raddr; the caller then initialises
// c.fd in one of its two modes.
func newConn(raddr Sockaddr) *Conn {
	c := &Conn{raddr: raddr, network: "tcp4"}
	if raddr.Is6() {
		c.network = "tcp6"
	}
	return c
}

// Read reads up to len(p) bytes. It returns io.EOF at the peer's FIN, an
// error matching os.ErrDeadlineExceeded when a read deadline (or the
// Server's IdleTimeout) passes, and net.ErrClosed after Close.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if c.fd.closed.Load() {
			return 0, c.opErr("read", "read", net.ErrClosed)
		}
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.idle > 0 && !c.readDeadlineSet.Load() {
		if err := c.fd.setReadDeadline(time.Now().Add(c.idle)); err != nil {
			return 0, c.opErr("read", "read", err)
		}
	}
	if c.fd.blocking {
		n, err := c.readBlocking(p)
		if err != nil && err != io.EOF {
			err = c.opErr("read", "read", err)
		}
		return n, err
	}
	if c.readFn == nil {
		c.readFn = c.readOnce
	}
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.fd.rc.Read(c.readFn)
	c.rbuf = nil
	if err != nil {
		return 0, c.opErr("read", "read", c.fd.rawErr(err))
	}
	if c.rerr != nil {
		return 0, c.opErr("read", "read", c.rerr)
	}
	if c.rn == 0 {
		return 0, io.EOF
	}
	return c.rn, nil
}

// readOnce is the read callback: one read(2), retried on EINTR; false
// asks the runtime to wait for readability.
func (c *Conn) readOnce(s uintptr) bool {
	for {
		n, err := sys.Read(int(s), c.rbuf)
		switch classify(err, false) {
		case retry:
			continue
		case wait:
			return false
		}
		if err != nil {
			c.rerr = err
		} else {
			c.rn = n
		}
		return true
	}
}

// Write writes all of p. It returns len(p) and nil, or the number of bytes
// the kernel took and an error: EPIPE or ECONNRESET when the peer is gone
// (the process is never killed by SIGPIPE), os.ErrDeadlineExceeded when a
// write deadline passes, net.ErrClosed after Close.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(p) == 0 {
		if c.fd.closed.Load() {
			return 0, c.opErr("write", "write", net.ErrClosed)
		}
		return 0, nil
	}
	if c.fd.blocking {
		n, err := c.writeBlocking(p)
		return n, c.opErr("write", "write", err)
	}
	if c.writeFn == nil {
		c.writeFn = c.writeAll
	}
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.fd.rc.Write(c.writeFn)
	c.wbuf = nil
	n := c.wn
	if err != nil {
		return n, c.opErr("write", "write", c.fd.rawErr(err))
	}
	if c.werr != nil {
		return n, c.opErr("write", "write", c.werr)
	}
	return n, nil
}

// writeAll is the write callback: write(2) until the buffer is gone,
// retrying EINTR and continuing after short writes; false asks the runtime
// to wait for writability.
func (c *Conn) writeAll(s uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, err := sys.Write(int(s), c.wbuf[c.wn:])
		switch classify(err, false) {
		case retry:
			continue
		case wait:
			return false
		}
		if err != nil {
			c.werr = err
			return true
		}
		if n == 0 {
			c.werr = io.ErrUnexpectedEOF
			return true
		}
		c.wn += n
	}
	return true
}

// Close closes the connection. It wakes a blocked Read or Write, which
// return net.ErrClosed. A second Close returns nil.
func (c *Conn) Close() error {
	return c.opErr("close", "close", c.fd.Close())
}

// CloseRead shuts down the reading side (shutdown(2) with SHUT_RD).
func (c *Conn) CloseRead() error { return c.shutdown(unix.SHUT_RD, "close-read") }

// CloseWrite shuts down the writing side (shutdown(2) with SHUT_WR): the
// peer reads EOF after the bytes already written. Reading goes on.
func (c *Conn) CloseWrite() error { return c.shutdown(unix.SHUT_WR, "close-write") }

func (c *Conn) shutdown(how int, op string) error {
	err := c.fd.control(func(s int) error { return sys.Shutdown(s, how) })
	return c.opErr(op, "shutdown", err)
}

// LocalAddr returns the local address as a *net.TCPAddr.
func (c *Conn) LocalAddr() net.Addr { return c.LocalSockaddr().TCPAddr() }

// RemoteAddr returns the peer's address as a *net.TCPAddr.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr.TCPAddr() }

// RemoteSockaddr returns the peer's address.
func (c *Conn) RemoteSockaddr() Sockaddr { return c.raddr }

// LocalSockaddr returns the local address. The first call asks the kernel
// (getsockname(2)) and remembers the answer, so accepting costs no system
// call for an address nobody reads. It is the zero Sockaddr if the
// connection was closed before anyone asked.
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
	if err := c.fd.setReadDeadline(t); err != nil {
		return c.opErr("set", "setdeadline", err)
	}
	c.readDeadlineSet.Store(!t.IsZero())
	return nil
}

// SetWriteDeadline sets the deadline for Write calls, pending ones
// included. A Write that times out may have written part of its buffer.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.opErr("set", "setdeadline", c.fd.setWriteDeadline(t))
}

// SetNoDelay turns Nagle's algorithm off (true, netcore's default, as in
// Go's net) or on (TCP_NODELAY).
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.setOpt(func(s int) error { return setInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(noDelay)) })
}

// SetKeepAlive turns TCP keep-alive probes on or off (SO_KEEPALIVE).
func (c *Conn) SetKeepAlive(on bool) error {
	return c.setOpt(func(s int) error { return setKeepAlive(s, on, 0) })
}

// SetKeepAlivePeriod turns keep-alive on and sets both the idle time before
// the first probe and the interval between probes to d, rounded up to whole
// seconds (TCP_KEEPIDLE, TCP_KEEPINTVL).
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	return c.setOpt(func(s int) error { return setKeepAlive(s, true, d) })
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
	return c.opErr("set", "setsockopt", c.fd.control(fn))
}

// SyscallConn returns the raw connection, for options netcore does not
// wrap. Its Control gives the descriptor while holding it open; do not
// close it or change its blocking mode.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if c.fd.closed.Load() {
		return nil, c.opErr("raw-conn", "", net.ErrClosed)
	}
	return c.fd.rawConn(), nil
}

// opErr wraps err as Go's net does, naming both ends (the local one only
// if it is already known: an error costs no extra system call).
func (c *Conn) opErr(op, syscallName string, err error) error {
	if err == nil {
		return nil
	}
	c.laddrMu.Lock()
	local := c.laddr
	c.laddrMu.Unlock()
	return opError(op, c.network, syscallName, local, c.raddr, err)
}
