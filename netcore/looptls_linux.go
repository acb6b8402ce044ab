package netcore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
)

// TLS on a Loop, with Go's own crypto/tls and no fork of it.
//
// A *tls.Conn is built on a transport (tlsTransport) that never touches
// the socket: the loop reads ciphertext and hands it over, and takes the
// ciphertext tls writes. The handshake cannot be resumed after its
// transport said "no more bytes yet" (its error is kept), so it runs on a
// goroutine of its own, reading what the loop feeds it and waiting when
// there is nothing. Once it is done the goroutine ends, and the loop calls
// Read and Write on the *tls.Conn itself: Read decrypts what is in hand
// and, when a record is not complete, gets a temporary net.Error from the
// transport, which tls returns without poisoning the connection (see
// readRecordOrCCS in crypto/tls).
//
// Plaintext is what the handler sees: decrypted input goes to the
// connection's input buffer (Peek, Next, Discard), and Write and Send put
// plaintext in its output buffer, which the flush encrypts, a chunk at a
// time, into raw, the ciphertext on its way to the socket.

const (
	// tlsHandshakeBuffer: the loop stops reading a connection whose
	// handshake has this many bytes it has not read yet.
	tlsHandshakeBuffer = 64 << 10
	// tlsSealChunk is the most plaintext a flush encrypts at once: the
	// ciphertext waiting for the socket stays below about this much.
	tlsSealChunk = 64 << 10
	// tlsPlainSize is the loop's staging buffer for decrypted input: one
	// read's ciphertext plus a record that a previous read began fit.
	tlsPlainSize = scratchSize + 20<<10
)

type tlsState uint8

const (
	tlsHandshaking tlsState = iota
	tlsReady
	tlsFailed
)

// loopTLS is a LoopConn's TLS layer. It belongs to the loop, except tr's
// fields under tr.mu.
type loopTLS struct {
	conn     *tls.Conn
	tr       tlsTransport
	state    tlsState
	raw      buffer // ciphertext for the socket
	stalled  bool   // reading stopped: the handshake has tlsHandshakeBuffer bytes unread
	notified bool   // close_notify is in raw or gone
}

// errTLSWait is the transport's answer when the loop has no more
// ciphertext in hand: a temporary error, which tls passes on without
// breaking the connection.
var errTLSWait net.Error = tlsWaitError{}

type tlsWaitError struct{}

func (tlsWaitError) Error() string   { return "netcore: no more TLS input yet" }
func (tlsWaitError) Timeout() bool   { return true }
func (tlsWaitError) Temporary() bool { return true }

// tlsTransport is the net.Conn beneath a LoopConn's *tls.Conn.
type tlsTransport struct {
	c *LoopConn

	// The handshake's: shared by the loop and the handshake goroutine.
	mu      sync.Mutex
	cond    sync.Cond
	in      []byte // ciphertext fed by the loop, not read yet
	eof     bool   // the peer's FIN came
	closed  bool   // the connection closed, or the handshake timed out
	out     []byte // ciphertext the handshake wrote, for the loop to take
	posted  bool   // a taskTLS is in the loop's queue
	stalled bool   // in holds tlsHandshakeBuffer bytes or more
	hsDone  bool
	hsErr   error

	rec records // the handshake's, then the loop's

	// The loop's, once the handshake is done.
	ready  bool
	src    []byte // this read's ciphertext
	srcEOF bool   // after src, the peer's FIN
}

// records follows the TLS record framing of the ciphertext the transport
// hands to tls, so that no Read hands out more than the rest of the
// current record. tls reads only the bytes the record it is reading lacks,
// so it never holds more than one record's bytes: once it has returned a
// record's plaintext and the loop has no more ciphertext in hand, nothing
// is left for it to decrypt, and the loop need not ask it once more (a
// Read that only finds "nothing yet" costs crypto/tls an allocation).
type records struct {
	hdr  [5]byte // the current record's header, as far as handed out
	hdrN int
	left int // the current record's body bytes not handed out yet
}

// take copies into p from src, up to the end of the current record, and
// returns how much it copied.
func (r *records) take(p, src []byte) int {
	n := 0
	for n < len(p) && n < len(src) {
		if r.hdrN < len(r.hdr) {
			k := copy(p[n:], src[n:min(len(src), n+len(r.hdr)-r.hdrN)])
			copy(r.hdr[r.hdrN:], p[n:n+k])
			r.hdrN += k
			n += k
			if r.hdrN < len(r.hdr) {
				continue
			}
			r.left = int(r.hdr[3])<<8 | int(r.hdr[4])
		} else {
			k := copy(p[n:], src[n:min(len(src), n+r.left)])
			r.left -= k
			n += k
		}
		if r.left == 0 {
			r.hdrN = 0 // the record's end: the next Read starts the next one
			break
		}
	}
	return n
}

func (tr *tlsTransport) Read(p []byte) (int, error) {
	if tr.ready {
		if len(tr.src) == 0 {
			if tr.srcEOF {
				return 0, io.EOF
			}
			return 0, errTLSWait
		}
		n := tr.rec.take(p, tr.src)
		tr.src = tr.src[n:]
		return n, nil
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for len(tr.in) == 0 && !tr.eof && !tr.closed {
		tr.cond.Wait()
	}
	if tr.closed {
		return 0, net.ErrClosed
	}
	if len(tr.in) == 0 {
		return 0, io.EOF
	}
	n := tr.rec.take(p, tr.in)
	tr.in = tr.in[n:]
	if tr.stalled && len(tr.in) < tlsHandshakeBuffer {
		tr.stalled = false
		tr.postLocked()
	}
	return n, nil
}

func (tr *tlsTransport) Write(p []byte) (int, error) {
	if tr.ready {
		return tr.c.tls.raw.Write(p)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.closed {
		return 0, net.ErrClosed
	}
	tr.out = append(tr.out, p...)
	tr.postLocked()
	return len(p), nil
}

// postLocked asks the loop to take what the handshake has written or
// finished; the caller holds tr.mu.
func (tr *tlsTransport) postLocked() {
	if !tr.posted {
		tr.posted = true
		tr.c.l.post(task{kind: taskTLS, c: tr.c})
	}
}

// Close ends the handshake: its reads and writes fail from now on. tls
// calls it when the handshake's context ends; the loop, when the
// connection closes.
func (tr *tlsTransport) Close() error {
	tr.mu.Lock()
	tr.closed = true
	tr.mu.Unlock()
	tr.cond.Broadcast()
	return nil
}

func (tr *tlsTransport) LocalAddr() net.Addr                { return tr.c.LocalAddr() }
func (tr *tlsTransport) RemoteAddr() net.Addr               { return tr.c.RemoteAddr() }
func (tr *tlsTransport) SetDeadline(t time.Time) error      { return nil }
func (tr *tlsTransport) SetReadDeadline(t time.Time) error  { return nil }
func (tr *tlsTransport) SetWriteDeadline(t time.Time) error { return nil }

// feed gives the handshake ciphertext the loop read (none at the peer's
// FIN) and reports whether the loop should stop reading for now.
func (tr *tlsTransport) feed(p []byte, eof bool) (stall bool) {
	tr.mu.Lock()
	tr.in = append(tr.in, p...)
	tr.eof = tr.eof || eof
	tr.stalled = len(tr.in) >= tlsHandshakeBuffer
	stall = tr.stalled
	tr.mu.Unlock()
	tr.cond.Signal()
	return stall
}

// checkTLSConfig refuses a configuration a server handshake cannot use.
func checkTLSConfig(who string, config *tls.Config) error {
	if config == nil {
		return fmt.Errorf("netcore: %s: the *tls.Config is nil", who)
	}
	if len(config.Certificates) == 0 && config.GetCertificate == nil && config.GetConfigForClient == nil {
		return fmt.Errorf("netcore: %s: the tls.Config has no certificate (Certificates, GetCertificate and GetConfigForClient are all unset)", who)
	}
	return nil
}

// ServeTLS is Serve for TLS: every connection accepted on l first does a
// TLS server handshake with config, on a goroutine of its own that ends
// with the handshake, so that the loops never wait for it; then the
// connection is the loop's, and its LoopHandler sees plaintext through the
// same LoopConn methods (Peek, Next, Discard, Write, Send, Execute, ...).
// OnOpen is called once the handshake has succeeded, so it can look at
// LoopConn.ConnectionState (the negotiated ALPN protocol, the server name,
// the client's certificates). A connection whose handshake fails or takes
// longer than TLSHandshakeTimeout is closed, logged at Info level and
// counted in LoopStats.TLSHandshakeErrors; its handler never sees it.
// Shutdown does not wait for a handshake under way: it closes the
// connection as an idle one (no request has come yet), as Server cancels
// its handshakes at Shutdown.
//
// config must have a certificate (Certificates, GetCertificate or
// GetConfigForClient) and must not change after ServeTLS is called, as for
// tls.Server. Serve and ServeTLS calls may share one Loop.
func (lp *Loop) ServeTLS(l net.Listener, config *tls.Config) error {
	if err := checkTLSConfig("Loop.ServeTLS", config); err != nil {
		l.Close()
		return err
	}
	return lp.serve(l, config)
}

var errAlreadyTLS = errors.New("netcore: LoopConn.StartTLS: the connection already speaks TLS")

// StartTLS turns the connection to TLS as a server, now: the STARTTLS of
// SMTP, IMAP, LDAP or PostgreSQL. Output written and sent before it goes
// out in plaintext, ahead of the handshake; input the handler has not
// consumed is taken as the start of the client's handshake. The handshake
// runs on a goroutine of its own; until it is done OnData is not called,
// and Write and Send keep their plaintext until it can be encrypted. If it
// fails or takes longer than Loop.TLSHandshakeTimeout, the connection is
// closed and OnClose gets the error. After Close, CloseWrite or the
// peer's EOF it returns net.ErrClosed. Call it on the loop only.
func (c *LoopConn) StartTLS(config *tls.Config) error {
	if err := checkTLSConfig("LoopConn.StartTLS", config); err != nil {
		return err
	}
	if c.tls != nil {
		return errAlreadyTLS
	}
	if c.closing() || c.wantShutWr || c.eof {
		return net.ErrClosed // (after the peer's EOF no handshake can come)
	}
	if c.framing > 0 {
		return errors.New("netcore: LoopConn.StartTLS inside a reply frame (BeginFrame without End)")
	}
	c.l.takeQueued(c) // sent before: plaintext too
	if c.closing() || c.wantShutWr {
		return net.ErrClosed
	}
	if c.tls != nil {
		return errAlreadyTLS // a function takeQueued ran called StartTLS
	}
	t := c.l.newTLS(c, config)
	t.raw, c.out = c.out, buffer{held: c.out.held}
	in := c.input()
	t.tr.in = append([]byte(nil), in...)
	t.tr.eof = c.eof
	c.Discard(-1)
	c.l.startHandshake(c)
	return nil
}

// ConnectionState returns the TLS state of the connection once its
// handshake is done (HandshakeComplete is true), and the zero state before
// that or on a connection without TLS. Call it on the loop only.
func (c *LoopConn) ConnectionState() tls.ConnectionState {
	if c.tls == nil || c.tls.state != tlsReady {
		return tls.ConnectionState{}
	}
	return c.tls.conn.ConnectionState()
}

func (l *eventLoop) newTLS(c *LoopConn, config *tls.Config) *loopTLS {
	t := &loopTLS{}
	t.raw.held = &l.outHeld
	t.tr.c = c
	t.tr.cond.L = &t.tr.mu
	t.conn = tls.Server(&t.tr, config)
	c.tls = t
	return t
}

// startHandshake runs c's handshake on a goroutine; the loop hears of its
// end through a taskTLS.
func (l *eventLoop) startHandshake(c *LoopConn) {
	st := &l.lp.state
	st.handshakes.Add(1)
	t, timeout := c.tls, l.lim.handshake
	go func() {
		defer st.handshakes.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := t.conn.HandshakeContext(ctx)
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("netcore: TLS handshake not done within Loop.TLSHandshakeTimeout (%v): %w", timeout, os.ErrDeadlineExceeded)
		}
		cancel()
		tr := &t.tr
		tr.mu.Lock()
		tr.hsDone, tr.hsErr = true, err
		tr.postLocked()
		tr.mu.Unlock()
	}()
}

// tlsTask takes what c's handshake wrote, resumes reading once it has
// caught up, and settles its end.
func (l *eventLoop) tlsTask(c *LoopConn) {
	t := c.tls
	tr := &t.tr
	tr.mu.Lock()
	out := tr.out
	tr.out = nil
	tr.posted = false
	done, err := tr.hsDone, tr.hsErr
	resume := t.stalled && !tr.stalled
	tr.mu.Unlock()
	if len(out) > 0 {
		t.raw.Write(out)
		l.markDirty(c)
	}
	if resume {
		t.stalled = false
		l.rearm(c)
	}
	if done && t.state == tlsHandshaking && !c.closed {
		l.handshakeDone(c, err)
	}
}

// handshakeDone hands c to its handler after a handshake, or closes it.
func (l *eventLoop) handshakeDone(c *LoopConn, err error) {
	t := c.tls
	st := &l.lp.state
	if err != nil {
		t.state = tlsFailed
		l.lp.logger().Info("netcore: TLS handshake failed; closing the connection",
			"remote", c.peer.String(), "err", err)
		st.tlsErrors.Add(1) // after the log: whoever sees the count finds the log
		l.writeLast(c)
		l.closeConn(c, fmt.Errorf("netcore: TLS handshake with %s: %w", c.peer, err))
		return
	}
	st.tlsHandshakes.Add(1)
	t.state = tlsReady
	tr := &t.tr
	tr.mu.Lock()
	left := tr.in
	tr.in, tr.ready = nil, true
	tr.mu.Unlock()
	if t.stalled {
		t.stalled = false
		l.rearm(c)
	}
	if c.hidden {
		c.hidden = false
		l.callback(c, cbOpen)
		l.after(c)
	}
	if !c.closed {
		// Always once, even with nothing left over: tls may hold what
		// its handshake read past its last message (records stops it
		// at record ends, so this is a safety net), and an EOF that
		// came meanwhile is settled here.
		l.decrypt(c, left, c.eof)
	}
	if !c.closed {
		l.markDirty(c) // plaintext written while the handshake ran
	}
}

// tlsRead takes a read's ciphertext (none at the peer's FIN).
func (l *eventLoop) tlsRead(c *LoopConn, p []byte) {
	t := c.tls
	eof := len(p) == 0
	if eof {
		c.eof = true
		l.rearm(c)
		if c.closed {
			return
		}
	}
	if t.state == tlsHandshaking {
		if t.tr.feed(p, eof) && !t.stalled {
			t.stalled = true
			l.rearm(c)
		}
		return
	}
	l.decrypt(c, p, eof)
}

// decrypt gives tls the ciphertext p (and then the peer's FIN, if eof),
// hands the plaintext to OnData, and settles the end of the input: the
// peer's close_notify (or FIN at a record's end) is its EOF, anything else
// tls refuses closes the connection.
func (l *eventLoop) decrypt(c *LoopConn, p []byte, eof bool) {
	t := c.tls
	// What other goroutines queued comes before the plaintext, even
	// what does not fit the staging buffer and goes to c.in at once.
	if !l.sync(c) {
		return
	}
	t.tr.src, t.tr.srcEOF = p, eof
	before := c.in.Len()
	if l.plain == nil {
		l.plain = make([]byte, tlsPlainSize)
	}
	plain := l.plain
	got, spilled := 0, false
	var err error
	for more := true; more; {
		if got == len(plain) {
			c.in.Write(plain)
			got, spilled = 0, true
		}
		space := plain[got:]
		var n int
		n, err = t.conn.Read(space)
		got += n
		if err != nil {
			break
		}
		// Once a Read has returned a record's plaintext whole, tls
		// holds no more (see records) unless the loop has more
		// ciphertext in hand, or the EOF to give.
		more = n == len(space) || len(t.tr.src) > 0 || eof
	}
	t.tr.src = nil
	if t.raw.Len() > 0 {
		l.markDirty(c) // tls answered something (a key update)
	}
	if c.flushClose {
		// Closing (a Close during a StartTLS handshake): a plaintext
		// connection would not have read this, and the handler must
		// not see it.
		c.in.Truncate(before)
		got, spilled = 0, false
	}
	if got > 0 || spilled {
		if c.readHeld() {
			// Back-pressure (io_uring: bytes that came before the
			// receive's cancel took effect): kept for when the output
			// has drained, as unread input would have been.
			c.in.Write(plain[:got])
		} else {
			if c.in.Len() == 0 {
				c.borrow, c.borrowing = plain[:got], true
			} else {
				c.in.Write(plain[:got])
			}
			l.callback(c, cbData)
			l.after(c)
			if c.closed {
				return
			}
		}
	}
	switch {
	case err == nil || err == errTLSWait:
	case err == io.EOF:
		if !c.eof {
			c.eof = true // close_notify: nothing after it counts
			l.rearm(c)
		}
		if c.closed || !l.sync(c) {
			return
		}
		l.callback(c, cbEOF)
		l.after(c)
		if !c.closed {
			l.closeAfterFlush(c, errEOF)
		}
	default:
		l.writeLast(c) // the alert tls wrote, if any
		l.fail(c, c.opErr("read", "", err))
	}
}

// seal encrypts the next chunk of c's plaintext output if the ciphertext
// before it is all gone, and returns the ciphertext to write.
func (l *eventLoop) seal(c *LoopConn) *buffer {
	t := c.tls
	if t.state == tlsReady && t.raw.Len() == 0 && c.out.Len() > 0 && !t.notified {
		p := c.out.Bytes()
		p = p[:min(len(p), tlsSealChunk)]
		if _, err := t.conn.Write(p); err != nil {
			c.closeErr = err // cannot happen: the transport takes everything
		}
		c.out.Discard(len(p))
		c.out.ReleaseIfEmpty()
	}
	return &t.raw
}

// closeNotify puts a close_notify alert in c's ciphertext, once, and
// reports whether it did.
func (l *eventLoop) closeNotify(c *LoopConn) bool {
	t := c.tls
	if t == nil || t.state != tlsReady || t.notified {
		return false
	}
	t.notified = true
	t.conn.CloseWrite()
	return t.raw.Len() > 0
}

// writeLast makes one write of c's ciphertext, whatever comes of it: what
// goes out before a connection closes for an error (an alert).
func (l *eventLoop) writeLast(c *LoopConn) {
	if t := c.tls; t != nil && t.raw.Len() > 0 && !c.shutWr && !(l.ur != nil && c.blocked) {
		// (With io_uring, a send in flight holds earlier bytes: these
		// would overtake them.)
		sys.Write(c.fd, t.raw.Bytes())
		t.raw.Discard(t.raw.Len())
	}
}

// closeTLS ends c's TLS layer as the connection closes for err: a
// handshake in progress is stopped and counted as failed; an established
// connection whose socket still works gets a close_notify if it has not
// had one, as crypto/tls's Close sends it. Only a failed system call
// means the socket does not work: after an error of tls's own (a record
// cut short by the peer's FIN, say) the close_notify goes out, as from a
// net server whose handler closes its *tls.Conn after Read failed.
func (l *eventLoop) closeTLS(c *LoopConn, err error) {
	t := c.tls
	switch t.state {
	case tlsHandshaking:
		t.state = tlsFailed
		if err != ErrLoopClosed {
			// A reset, an idle timeout, a limit: the handshake failed
			// as surely as one crypto/tls gave up on (handshakeDone).
			l.lp.logger().Info("netcore: TLS handshake failed; closing the connection",
				"remote", c.peer.String(), "err", err)
		}
		l.lp.state.tlsErrors.Add(1)
		t.tr.Close()
	case tlsReady:
		var sysErr *os.SyscallError
		if !errors.As(err, &sysErr) && l.closeNotify(c) {
			l.writeLast(c)
		}
	}
	t.raw.Release()
}
