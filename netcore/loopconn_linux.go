package netcore

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errEOF is the close reason after the peer's FIN.
var errEOF = io.EOF

// errDeadline closes a connection whose SetDeadline passed.
var errDeadline = fmt.Errorf("netcore: connection deadline passed: %w", os.ErrDeadlineExceeded)

// LoopConn is a connection served by a Loop.
//
// Its buffers belong to its event loop. The methods that touch them (Peek,
// Next, Discard, Buffered, Write, OutputBuffered, OutputFull, CloseWrite,
// BeginFrame, AfterFunc, SetDeadline, SetUserData, UserData) may be called
// only on the loop: from the LoopHandler's callbacks for this connection,
// and from functions that Execute and AfterFunc run for it. Send, Execute,
// Hold, Release and Close are safe from any goroutine, and so are the
// address methods.
//
// Bytes leave in the order the calls that produced them were made: a Send
// that returned before a Write was called goes out before the Write's
// bytes, whichever goroutine made it. The loop takes what other goroutines
// queued with Send and Execute before it calls the handler, and Write takes
// what was queued since, so a function queued with Execute before a Write
// may run inside that Write call, before its bytes are appended.
type LoopConn struct {
	l           *eventLoop
	fd          int
	seq         uint32
	peer, local Sockaddr
	user        any
	tls         *loopTLS // nil without TLS
	hidden      bool     // its TLS handshake runs: the handler has not seen it yet
	snd         *buffer  // io_uring: the bytes of the send in flight
	recvGen     uint32   // io_uring: which receive is armed (events != 0), modulo genMask+1
	finPending  bool     // io_uring: the peer's FIN came while reading was held

	// The loop's own; see eventLoop.
	in           buffer
	borrow       []byte // this read's bytes, in the loop's scratch buffer, while borrowing
	borrowing    bool
	out          buffer
	events       uint32 // registered with epoll
	blocked      bool   // a write met EAGAIN: waiting for EPOLLOUT
	paused       bool   // output above the high watermark: not reading
	eof          bool   // the peer's FIN arrived
	closed       bool
	userClosed   bool // Close was called: no more Write
	wantShutWr   bool
	shutWr       bool
	flushClose   bool // close once output is flushed (and, after EOF, no work is held)
	dirtyQueued  bool
	resumeQueued bool
	taking       bool // takeQueued is running functions Execute queued
	framing      int  // reply frames begun and not ended in this callback
	closeReason  error
	closeErr     error     // set in a callback: close with it when the callback returns
	last         int64     // last activity on the loop's clock
	deadline     int64     // SetDeadline on the loop's clock; 0 for none
	limit        LoopTimer // fires at the idle timeout or the deadline, whichever is first
	timers       *LoopTimer

	// Shared with other goroutines.
	outN   atomic.Int64 // out.Len(), for Send's bound
	pendN  atomic.Int64 // pending.Len()
	queued atomic.Bool  // Send or Execute queued work the loop has not taken
	holds  atomic.Int32 // Hold minus Release
	closeQ atomic.Bool  // Close was called (or a Send breached MaxOutput)

	smu      sync.Mutex // guards what follows
	pending  buffer     // queued by Send
	fns      []queuedFn // queued by Execute
	posted   bool       // a taskQueued is in the loop's queue
	sclosed  bool       // the loop closed the connection
	wrClosed bool       // CloseWrite was called
	reqErr   error      // Close's reason: nil, or a limit breached by Send
}

// queuedFn is a function queued by Execute, to run once the first at bytes
// of pending have gone to the output.
type queuedFn struct {
	fn func(*LoopConn)
	at int
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
// them, or all of it if fewer are buffered or n is negative. The bytes are
// the loop's own: they stay valid until the callback returns and must not be
// kept.
func (c *LoopConn) Peek(n int) []byte {
	in := c.input()
	if n < 0 || n > len(in) {
		return in
	}
	return in[:n]
}

// Next returns the next n bytes of input (all of them if fewer are buffered
// or n is negative) and consumes them. Like Peek's, the bytes stay valid
// until the callback returns.
func (c *LoopConn) Next(n int) []byte {
	p := c.Peek(n)
	c.Discard(len(p))
	return p
}

// Discard consumes the next n bytes of input (all of them if fewer are
// buffered or n is negative) and returns how many it consumed.
func (c *LoopConn) Discard(n int) int {
	if n == 0 {
		return 0
	}
	if c.borrowing {
		if n < 0 || n > len(c.borrow) {
			n = len(c.borrow)
		}
		c.borrow = c.borrow[n:]
		return n
	}
	if n < 0 || n > c.in.Len() {
		n = c.in.Len()
	}
	c.in.Discard(n)
	return n
}

// Write appends p to the output buffer; the loop writes it to the socket
// at the end of the current iteration, together with everything else
// written meanwhile. If the buffered output (queued Sends included) would
// pass MaxOutput, nothing is appended, the error is a *LimitError
// (ErrOutputLimit), and the connection is closed when the callback returns.
// After Close, CloseWrite or the connection's end it fails with
// net.ErrClosed. After the peer's half-close (OnEOF) it still works: the
// connection stays open until what is written has gone out.
func (c *LoopConn) Write(p []byte) (int, error) {
	if c.closed || c.closeErr != nil || c.wantShutWr || c.userClosed || c.closeQ.Load() {
		return 0, net.ErrClosed
	}
	if c.queued.Load() && c.framing == 0 {
		// Sent before this call: goes out first (but never inside a
		// reply frame being built: it goes out after the frame).
		c.l.takeQueued(c)
		if c.closed || c.closeErr != nil || c.wantShutWr || c.userClosed || c.closeQ.Load() {
			return 0, net.ErrClosed
		}
	}
	if c.outLen()+int(c.pendN.Load())+len(p) > c.l.lim.maxOutput {
		c.closeErr = &LimitError{Limit: "MaxOutput", Value: int64(c.l.lim.maxOutput)}
		return 0, c.closeErr
	}
	n, _ := c.out.Write(p)
	c.outN.Store(int64(c.outLen()))
	return n, nil
}

// readHeld reports whether the loop holds off reading c for its output's
// sake: back-pressure (paused), or a Close waiting for the output to go
// out (flushClose). Neither holds while c's TLS handshake runs
// (StartTLS): that input is the handshake's, not the handler's, and
// without it the plaintext written after StartTLS could never be
// encrypted, drain below the low watermark or go out before the close.
func (c *LoopConn) readHeld() bool {
	return (c.paused || c.flushClose) && (c.tls == nil || c.tls.state != tlsHandshaking)
}

// OutputBuffered returns the number of output bytes not yet written to the
// socket (bytes queued by Send and not yet taken by the loop not included).
func (c *LoopConn) OutputBuffered() int { return c.outLen() }

// outLen is the output not written yet: plaintext and, with TLS, the
// ciphertext made of it.
func (c *LoopConn) outLen() int {
	n := c.out.Len()
	if c.tls != nil {
		n += c.tls.raw.Len()
	}
	if c.snd != nil {
		n += c.snd.Len()
	}
	return n
}

// OutputFull reports whether the connection's buffered output, queued
// Sends included, is above the Loop's OutputHighWater. A handler that
// answers requests should stop taking requests while it is true and leave
// the rest of the input unconsumed: the loop stops reading the socket until
// the output has drained to OutputLowWater, then calls OnData again with
// the input that is left, even if no new bytes came. That keeps a pipeline
// of large replies within the watermarks instead of MaxOutput.
func (c *LoopConn) OutputFull() bool {
	return c.outLen()+int(c.pendN.Load()) > c.l.lim.high
}

// CloseWrite half-closes the connection: once the output written and sent
// so far has gone out, the loop shuts the socket down for writing (the peer
// reads EOF). Write and Send fail with net.ErrClosed from then on. Input
// keeps coming until the peer closes too.
func (c *LoopConn) CloseWrite() error {
	if c.closed || c.userClosed {
		return net.ErrClosed
	}
	c.wantShutWr = true
	c.smu.Lock()
	c.wrClosed = true
	c.smu.Unlock()
	return nil
}

// Send queues a copy of p for the connection's output from any goroutine;
// the loop writes it after what was written or sent before. If the output
// buffered and queued would pass MaxOutput, the connection is closed and the
// error is a *LimitError (ErrOutputLimit). After Close, CloseWrite or the
// connection's end it returns net.ErrClosed.
func (c *LoopConn) Send(p []byte) error {
	c.smu.Lock()
	if c.sclosed || c.wrClosed || c.closeQ.Load() {
		c.smu.Unlock()
		return net.ErrClosed
	}
	if c.outN.Load()+int64(c.pending.Len()+len(p)) > int64(c.l.lim.maxOutput) {
		c.smu.Unlock()
		err := &LimitError{Limit: "MaxOutput", Value: int64(c.l.lim.maxOutput)}
		c.closeWith(err)
		return err
	}
	c.pending.Write(p)
	c.pendN.Store(int64(c.pending.Len()))
	c.queueLocked()
	return nil
}

// Execute runs fn on the connection's loop, from any goroutine: the way a
// worker hands a result back to update the connection's state, write, set
// timers or close. fn runs once, after whatever was sent or executed before
// it, and may use every LoopConn method. If the connection closes before
// the loop gets to fn, fn still runs, just before OnClose, and its Writes
// fail with net.ErrClosed. After the connection has closed, Execute returns
// net.ErrClosed and fn never runs.
func (c *LoopConn) Execute(fn func(*LoopConn)) error {
	if fn == nil {
		return errors.New("netcore: LoopConn.Execute with a nil function")
	}
	c.smu.Lock()
	if c.sclosed {
		c.smu.Unlock()
		return net.ErrClosed
	}
	c.fns = append(c.fns, queuedFn{fn: fn, at: c.pending.Len()})
	c.queueLocked()
	return nil
}

// queueLocked records that c has queued work and wakes its loop; it
// unlocks c.smu.
func (c *LoopConn) queueLocked() {
	c.queued.Store(true)
	post := !c.posted
	c.posted = true
	c.smu.Unlock()
	if post {
		// If the loop has exited, it closed c first, and closing took
		// (and ran) what was queued.
		c.l.post(task{kind: taskQueued, c: c})
	}
}

// Hold marks work in flight for the connection, from any goroutine: until
// every Hold is matched by a Release, the loop closes the connection
// neither once the peer has half-closed (after OnEOF) nor at a graceful
// Shutdown (until Shutdown's context ends). Call Hold in the callback that
// hands a request to another goroutine, and Release there once the answer
// has been sent:
//
//	c.Hold()
//	go func() {
//		defer c.Release()
//		c.Send(slowAnswer(req))
//	}()
//
// Close, Loop.Close and limits still close a held connection.
func (c *LoopConn) Hold() { c.holds.Add(1) }

// Release ends work in flight marked by Hold, from any goroutine. A Release
// without a matching Hold is ignored.
func (c *LoopConn) Release() {
	for {
		n := c.holds.Load()
		if n <= 0 {
			return
		}
		if c.holds.CompareAndSwap(n, n-1) {
			if n == 1 {
				c.l.post(task{kind: taskReleased, c: c})
			}
			return
		}
	}
}

// Close closes the connection from any goroutine: the loop stops reading,
// writes out the output written and sent before, then closes the socket
// and calls OnClose with a nil error. Write and Send fail with
// net.ErrClosed from then on. If the peer does not read, the output may
// never drain; IdleTimeout, SetDeadline, Shutdown's deadline or Loop.Close
// end it then. A second Close, or a Close after the connection ended,
// returns nil.
func (c *LoopConn) Close() error {
	c.closeWith(nil)
	return nil
}

func (c *LoopConn) closeWith(err error) {
	c.smu.Lock()
	if c.sclosed || c.closeQ.Load() {
		c.smu.Unlock()
		return
	}
	c.closeQ.Store(true)
	c.reqErr = err
	c.smu.Unlock()
	c.l.post(task{kind: taskClose, c: c})
}

// closing reports whether Close was called, or a limit breached, or the
// connection closed.
func (c *LoopConn) closing() bool {
	return c.closed || c.userClosed || c.closeErr != nil || c.closeQ.Load()
}

// SetDeadline sets a time at which the loop closes the connection, whatever
// it is doing; OnClose then gets an error matching os.ErrDeadlineExceeded.
// The zero time clears it. Moving it costs no system call, so a handler can
// push it forward on every request to bound a client's idle time, or set it
// once to bound a whole exchange. It is kept beside Loop.IdleTimeout: the
// first to pass closes the connection. Call it on the loop only.
func (c *LoopConn) SetDeadline(t time.Time) {
	if c.closed {
		return
	}
	if t.IsZero() {
		c.deadline = 0
		return
	}
	d := max(int64(t.Sub(c.l.lp.state.start)), 1)
	c.deadline = d
	if c.limit.i < 0 || d < c.limit.when {
		c.l.schedule(&c.limit, d)
	}
}

// RemoteSockaddr returns the peer's address (IPv4-mapped IPv6 peers
// unmapped).
func (c *LoopConn) RemoteSockaddr() Sockaddr { return c.peer }

// LocalSockaddr returns the connection's own address.
func (c *LoopConn) LocalSockaddr() Sockaddr { return c.local }

// RemoteAddr returns the peer's address as a *net.TCPAddr (a *net.UnixAddr
// on a Unix socket).
func (c *LoopConn) RemoteAddr() net.Addr { return netAddr(c.peer) }

// LocalAddr returns the connection's own address as a *net.TCPAddr (a
// *net.UnixAddr on a Unix socket).
func (c *LoopConn) LocalAddr() net.Addr { return netAddr(c.local) }

// PeerCred returns the credentials of the process at the other end of a
// Unix socket (SO_PEERCRED), as Conn.PeerCred. Call it on the loop only;
// after the connection closed it returns an error matching net.ErrClosed.
func (c *LoopConn) PeerCred() (Ucred, error) {
	if c.closed {
		return Ucred{}, c.opErr("peercred", "", net.ErrClosed)
	}
	cred, err := peerCred(c.fd, c.peer)
	return cred, c.opErr("peercred", "getsockopt", err)
}

// SetUserData attaches a value of the handler's (its per-connection state,
// say) to the connection. Call it on the loop only.
func (c *LoopConn) SetUserData(v any) { c.user = v }

// UserData returns the value SetUserData attached, nil if none. Call it on
// the loop only.
func (c *LoopConn) UserData() any { return c.user }

// opErr wraps a failed system call on c as Conn does: an *os.SyscallError
// in a *net.OpError with both addresses.
func (c *LoopConn) opErr(op, syscallName string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(syscallName, errno)
	}
	return opError(op, c.peer.network(), c.local, c.peer, err)
}
