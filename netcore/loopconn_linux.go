//go:build linux

package netcore

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// errEOF is the close reason after the peer's FIN.
var errEOF = io.EOF

// LoopConn is a connection served by a Loop. Its input and output buffers
// belong to its event loop: the methods that touch them (Peek, Next,
// Discard, Buffered, Write, OutputBuffered, CloseWrite, SetUserData,
// UserData) may be called only from the LoopHandler's callbacks for this
// connection. Send and Close are safe from any goroutine, and so are the
// address methods.
type LoopConn struct {
	l           *eventLoop
	fd          int
	seq         uint32
	peer, local Sockaddr
	user        any

	// The loop's own; see eventLoop.
	in        buffer
	borrow    []byte // this read's bytes, in the loop's scratch buffer, while borrowing
	borrowing bool
	out       buffer
	events    uint32 // registered with epoll
	blocked   bool   // a write met EAGAIN: waiting for EPOLLOUT
	paused    bool   // output above the high watermark: not reading
	eof       bool   // the peer's FIN arrived
	closed    bool

	wantShutWr, shutWr bool
	closeAfterFlush    bool
	closeReason        error
	closeErr           error // set in a callback: close with it when the callback returns
	dirtyQueued        bool
	last               int64 // last activity on the loop's clock
	prev, next         *LoopConn

	// Shared with other goroutines, under smu.
	smu      sync.Mutex
	pending  buffer // queued by Send
	squeued  bool   // a taskSend is queued
	sclosed  bool   // the loop closed the connection
	closeReq bool
	reqErr   error
}

// input returns the unconsumed input.
func (c *LoopConn) input() []byte {
	if c.borrowing {
		return c.borrow
	}
	return c.in.Bytes()
}

// Buffered returns the number of input bytes not yet consumed.
func (c *LoopConn) Buffered() int { return len(c.input()) }

// Peek returns the first n bytes of unconsumed input without consuming
// them, or all of it if fewer are buffered. The bytes are the loop's own:
// they stay valid until the callback returns and must not be kept.
func (c *LoopConn) Peek(n int) []byte {
	in := c.input()
	if n < 0 {
		n = 0
	}
	return in[:min(n, len(in))]
}

// Next returns the next n bytes of input (or all of them if fewer are
// buffered) and consumes them. Like Peek's, the bytes stay valid until the
// callback returns.
func (c *LoopConn) Next(n int) []byte {
	p := c.Peek(n)
	c.Discard(len(p))
	return p
}

// Discard consumes the next n bytes of input (all of them if fewer are
// buffered) and returns how many it consumed.
func (c *LoopConn) Discard(n int) int {
	if n <= 0 {
		return 0
	}
	if c.borrowing {
		n = min(n, len(c.borrow))
		c.borrow = c.borrow[n:]
		return n
	}
	n = min(n, c.in.Len())
	c.in.Discard(n)
	return n
}

// Write appends p to the output buffer; the loop writes it to the socket
// at the end of the current iteration, together with everything else
// written meanwhile. If the output buffer would pass MaxOutput, nothing is
// appended, the error is a *LimitError (ErrOutputLimit), and the
// connection is closed when the callback returns. After Close, CloseWrite
// or the connection's end it fails with net.ErrClosed.
func (c *LoopConn) Write(p []byte) (int, error) {
	if c.closed || c.closeErr != nil || c.wantShutWr || c.closeAfterFlush {
		return 0, net.ErrClosed
	}
	if c.out.Len()+len(p) > c.l.lim.maxOutput {
		c.closeErr = &LimitError{Limit: "MaxOutput", Value: int64(c.l.lim.maxOutput)}
		return 0, c.closeErr
	}
	return c.out.Write(p)
}

// OutputBuffered returns the number of output bytes not yet written to the
// socket.
func (c *LoopConn) OutputBuffered() int { return c.out.Len() }

// CloseWrite half-closes the connection: once the output written so far
// has gone out, the loop shuts the socket down for writing (the peer reads
// EOF). Input keeps coming until the peer closes too.
func (c *LoopConn) CloseWrite() error {
	if c.closed || c.closeAfterFlush {
		return net.ErrClosed
	}
	c.wantShutWr = true
	return nil
}

// Send queues a copy of p for the connection's output from any goroutine;
// the loop writes it after what it has already buffered. If the queued
// bytes would pass MaxOutput, the connection is closed and the error is a
// *LimitError (ErrOutputLimit). After the connection has been closed it
// returns net.ErrClosed.
func (c *LoopConn) Send(p []byte) error {
	c.smu.Lock()
	if c.sclosed || c.closeReq {
		c.smu.Unlock()
		return net.ErrClosed
	}
	if c.pending.Len()+len(p) > c.l.lim.maxOutput {
		c.smu.Unlock()
		err := &LimitError{Limit: "MaxOutput", Value: int64(c.l.lim.maxOutput)}
		c.closeWith(err)
		return err
	}
	c.pending.Write(p)
	queued := c.squeued
	c.squeued = true
	c.smu.Unlock()
	if !queued && !c.l.post(task{kind: taskSend, c: c}) {
		return net.ErrClosed
	}
	return nil
}

// hasSent reports whether Send has queued bytes the loop has not taken.
func (c *LoopConn) hasSent() bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.squeued
}

// Close closes the connection from any goroutine: the loop stops reading,
// writes out the output buffered so far (Sends included), then closes the
// socket and calls OnClose with a nil error. If the peer does not read,
// the output may never drain; IdleTimeout, Shutdown's deadline or Loop.Close
// end it then. A second Close, or a Close after the connection ended,
// returns nil.
func (c *LoopConn) Close() error {
	c.closeWith(nil)
	return nil
}

func (c *LoopConn) closeWith(err error) {
	c.smu.Lock()
	if c.sclosed || c.closeReq {
		c.smu.Unlock()
		return
	}
	c.closeReq, c.reqErr = true, err
	c.smu.Unlock()
	c.l.post(task{kind: taskClose, c: c})
}

// RemoteSockaddr returns the peer's address (IPv4-mapped IPv6 peers
// unmapped).
func (c *LoopConn) RemoteSockaddr() Sockaddr { return c.peer }

// LocalSockaddr returns the connection's own address.
func (c *LoopConn) LocalSockaddr() Sockaddr { return c.local }

// RemoteAddr returns the peer's address as a *net.TCPAddr.
func (c *LoopConn) RemoteAddr() net.Addr { return c.peer.TCPAddr() }

// LocalAddr returns the connection's own address as a *net.TCPAddr.
func (c *LoopConn) LocalAddr() net.Addr { return c.local.TCPAddr() }

// SetUserData attaches a value of the handler's (its per-connection state,
// say) to the connection.
func (c *LoopConn) SetUserData(v any) { c.user = v }

// UserData returns the value SetUserData attached, nil if none.
func (c *LoopConn) UserData() any { return c.user }

// opErr wraps a failed system call on c as Conn does: an *os.SyscallError
// in a *net.OpError with both addresses.
func (c *LoopConn) opErr(op, syscallName string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(syscallName, errno)
	}
	return opError(op, "tcp", c.local, c.peer, err)
}
