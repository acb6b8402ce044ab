package netcore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Server.Serve and ListenAndServe after
// Shutdown or Close, by Server.BoundAddr once the server is closed, and by
// Idle when Shutdown ends (or has ended) the wait for a new request.
var ErrServerClosed = errors.New("netcore: server closed")

// A Handler serves one connection.
type Handler interface {
	// ServeConn serves c, which it owns until it returns; the Server
	// closes c afterwards (closing it earlier is fine too). c is what the
	// listener accepted: a *Conn for a netcore Listener, a *tls.Conn with
	// Server.TLSConfig or a tls.NewListener; AsConn finds the *Conn
	// beneath for socket options. ctx is cancelled when Shutdown or Close
	// starts; pass it to Idle around the wait for each new request so
	// that Shutdown can end an idle connection at once.
	ServeConn(ctx context.Context, c net.Conn)
}

// HandlerFunc lets an ordinary function be a Handler.
type HandlerFunc func(ctx context.Context, c net.Conn)

// ServeConn calls f(ctx, c).
func (f HandlerFunc) ServeConn(ctx context.Context, c net.Conn) { f(ctx, c) }

// AsConn returns the netcore *Conn that carries c: c itself, or the
// connection beneath a wrapper that has a NetConn method, as *tls.Conn does
// (followed through any number of such wrappers). ok is false when there is
// no netcore connection beneath, for a connection of Go's net package say.
func AsConn(c net.Conn) (nc *Conn, ok bool) {
	for c != nil {
		switch v := c.(type) {
		case *Conn:
			return v, v != nil
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

// innermost returns the connection beneath every wrapper of c that has a
// NetConn method (a *tls.Conn, say): the one to close when a forced close
// must send no TLS alert, which could block on a stuck peer.
func innermost(c net.Conn) net.Conn {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok || w.NetConn() == nil {
			return c
		}
		c = w.NetConn()
	}
}

// DefaultHandshakeTimeout bounds a TLS handshake when
// Server.HandshakeTimeout is 0: as long as Go's http.Transport gives a
// client's.
const DefaultHandshakeTimeout = 10 * time.Second

// Server accepts connections and runs Handler for each on its own
// goroutine, in the shape of net/http.Server. It serves any net.Listener:
// a netcore Listener, a listener of Go's net package, or either wrapped by
// tls.NewListener; with TLSConfig set it adds TLS itself.
//
// Accept errors never stop it silently: EINTR and ECONNABORTED are retried
// inside Accept; when descriptors or memory run out (EMFILE, ENFILE,
// ENOBUFS, ENOMEM), and when the listener's deadline passes, it logs,
// backs off (5 ms, doubling to 1 s) and keeps serving. A panicking Handler
// is recovered and logged, and only its connection is closed.
type Server struct {
	// Addr is the address ListenAndServe listens on ("tcp"); empty means
	// ":0" (every address, a port the kernel picks; BoundAddr tells which).
	Addr string
	// Handler serves each connection. It must be set.
	Handler Handler
	// TLSConfig, if not nil, makes the Server speak TLS: each accepted
	// connection is wrapped by tls.Server with this configuration, and
	// the handshake runs (on the connection's goroutine, cancelled by
	// Shutdown) before Handler sees the *tls.Conn. A failed handshake is
	// logged and the connection closed. The configuration must not be
	// changed once the Server runs. Leave it nil when the listener is
	// already a tls.NewListener.
	TLSConfig *tls.Config
	// HandshakeTimeout bounds the whole TLS handshake of a connection
	// (with TLSConfig set): a client that has not finished it by then,
	// however slowly it trickles bytes in, is logged and closed, and its
	// MaxConns slot freed. 0 means DefaultHandshakeTimeout; a negative
	// value means no bound (IdleTimeout still bounds each read).
	HandshakeTimeout time.Duration
	// LingerTimeout bounds a lingering close (DefaultLingerTimeout if 0;
	// negative turns it off): when a handler returns with the peer's
	// input unread on a netcore socket, the Server shuts the connection's
	// write side down, discards the peer's input until its EOF, and
	// closes it then or after LingerTimeout, so that no reset destroys the
	// handler's last reply (see the README). The handler's MaxConns slot
	// is free meanwhile.
	LingerTimeout time.Duration
	// MaxConns > 0 bounds the connections served at once by this Server,
	// over all its listeners: at the bound each listener's accept loop
	// holds the one connection it accepted last, unserved, and accepts no
	// more; the rest wait in the kernel's backlog until a handler
	// finishes.
	MaxConns int
	// IdleTimeout > 0 bounds how long a Read on a netcore connection
	// (plain, or beneath TLS) may wait for data when the handler has not
	// set a read deadline of its own; the Read then fails with an error
	// matching os.ErrDeadlineExceeded. It does not apply to connections
	// of other packages: set deadlines on those in the handler.
	IdleTimeout time.Duration
	// Logger receives accept errors, back-offs, failed TLS handshakes and
	// handler panics; nil means slog.Default().
	Logger *slog.Logger

	mu            sync.Mutex
	started       bool // init has run
	closing       bool
	shuttingDown  atomic.Bool // closing, for Idle without s.mu
	budgetLogged  atomic.Bool // the blocking budget's fallback was logged
	forced        atomic.Bool // Close, or Shutdown's context ended: no lingering
	listeners     map[*net.Listener]struct{}
	conns         map[*connState]struct{}
	active        int           // handlers that have not finished
	left          int           // handlers not yet fully ended (connection closed, slot given back)
	drained       chan struct{} // closed once closing and left == 0
	drainedClosed bool
	handlers      sync.WaitGroup // the same handlers, for Close and Shutdown to wait on
	done          chan struct{}  // closed by Shutdown and Close
	ctx           context.Context
	cancel        context.CancelFunc
	slots         chan struct{} // MaxConns tokens, one set for the Server

	ready     chan struct{} // closed once bound or boundErr is set
	bound     net.Addr      // the first listener's address
	boundErr  error         // why there will be no address
	readyDone bool
}

// connState is one connection being served. It is also its handler's
// context: the Server's (cancelled when Shutdown or Close starts), which
// Idle asks for the connState through Value. One allocation per
// connection serves both.
type connState struct {
	context.Context          // the Server's
	conn            net.Conn // what the handler has
	srv             *Server

	mu    sync.Mutex // Idle's own, so that requests do not contend on Server.mu
	idle  bool       // the handler waits in Idle
	woken bool       // Shutdown set a past read deadline to end that wait
}

// Value returns st itself for connKey, and asks the Server's context
// otherwise.
func (st *connState) Value(key any) any {
	if key == (connKey{}) {
		return st
	}
	return st.Context.Value(key)
}

// connKey is the context key of a handler's *connState.
type connKey struct{}

// wakeDeadline is a read deadline that has passed: setting it wakes a
// pending Read.
var wakeDeadline = time.Unix(1, 0)

// Idle runs wait, which blocks until the client starts its next request
// (a bufio.Reader's Peek(1), say), and marks the connection idle while it
// runs: if Shutdown starts meanwhile, it wakes the wait by setting a read
// deadline in the past, and Idle returns ErrServerClosed; the handler then
// returns and its connection is closed. A connection that is not idle is
// left to finish its request, and Shutdown waits for it. ctx is the
// handler's context.
//
// If Shutdown has already started, Idle returns ErrServerClosed without
// calling wait. If wait succeeds although Shutdown woke it (the request
// arrived first), the request is served: Idle clears the read deadline it
// set and returns nil, so set the request's own read deadline after Idle
// returns. Otherwise Idle returns wait's error. With a ctx that does not
// come from a Server, Idle just calls wait.
//
//	for {
//		if err := netcore.Idle(ctx, func() error { _, err := br.Peek(1); return err }); err != nil {
//			return // the client left, or the server is shutting down
//		}
//		// read the request from br, answer it
//	}
func Idle(ctx context.Context, wait func() error) error {
	st, _ := ctx.Value(connKey{}).(*connState)
	if st == nil {
		return wait()
	}
	// Shutdown sets shuttingDown before it visits the connections (each
	// under its st.mu): either it finds this one idle, or Idle sees the
	// flag here.
	st.mu.Lock()
	if st.srv.shuttingDown.Load() {
		st.mu.Unlock()
		return ErrServerClosed
	}
	st.idle = true
	st.mu.Unlock()

	err := wait()

	st.mu.Lock()
	woken := st.woken
	st.idle, st.woken = false, false
	st.mu.Unlock()
	if !woken {
		return err
	}
	if err != nil {
		return ErrServerClosed
	}
	if derr := st.conn.SetReadDeadline(time.Time{}); derr != nil {
		return derr
	}
	return nil
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// init sets the Server up on first use; callers hold s.mu.
func (s *Server) init() {
	if s.started {
		return
	}
	s.started = true
	s.done = make(chan struct{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.listeners = make(map[*net.Listener]struct{})
	s.conns = make(map[*connState]struct{})
	s.drained = make(chan struct{})
	if s.MaxConns > 0 {
		s.slots = make(chan struct{}, s.MaxConns)
	}
	if s.ready == nil {
		s.ready = make(chan struct{})
	}
}

// setBound records the first listener's address, or why there will be
// none, and wakes BoundAddr; later calls change nothing. Callers hold s.mu.
func (s *Server) setBound(addr net.Addr, err error) {
	if s.readyDone {
		return
	}
	s.readyDone = true
	s.bound, s.boundErr = addr, err
	close(s.ready)
}

// BoundAddr waits until the Server listens and returns its address (with
// the port the kernel chose for port 0): that of the listener given to the
// first Serve call, which ListenAndServe makes. It returns early with the
// error of ListenAndServe's Listen if that failed, ErrServerClosed if the
// Server was shut down before it listened, or ctx's error.
//
//	srv := &netcore.Server{Addr: "127.0.0.1:0", Handler: h}
//	go srv.ListenAndServe()
//	addr, err := srv.BoundAddr(ctx)
func (s *Server) BoundAddr(ctx context.Context) (net.Addr, error) {
	s.mu.Lock()
	if s.ready == nil {
		s.ready = make(chan struct{})
	}
	ready := s.ready
	s.mu.Unlock()
	select {
	case <-ready:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.bound, s.boundErr
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ListenAndServe listens on s.Addr ("tcp") and serves. It returns
// ErrServerClosed after Shutdown or Close.
func (s *Server) ListenAndServe() error {
	addr := s.Addr
	if addr == "" {
		addr = ":0"
	}
	l, err := Listen("tcp", addr)
	if err != nil {
		s.mu.Lock()
		s.init()
		s.setBound(nil, err)
		s.mu.Unlock()
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown or Close, when it returns
// ErrServerClosed, or until Accept fails for a reason that will not pass
// (the listener was closed by someone else, say), when it returns that
// error. Serve closes l when it returns. It may be called for several
// listeners at once; they share MaxConns.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil {
		l.Close()
		return errors.New("netcore: Server.Handler is nil")
	}
	s.mu.Lock()
	s.init()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	key := &l
	s.listeners[key] = struct{}{}
	s.setBound(l.Addr(), nil)
	slots := s.slots
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, key)
		s.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			timeout := errors.Is(err, os.ErrDeadlineExceeded)
			if !timeout && !isResourceLimit(err) {
				return err
			}
			backoff = nextBackoff(backoff)
			if timeout {
				s.logger().Debug("netcore: accept timed out (listener deadline); retrying", "err", err, "backoff", backoff)
			} else {
				s.logger().Warn("netcore: accept failed; backing off", "err", err, "backoff", backoff)
			}
			if !s.sleep(backoff) {
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		if blockingFellBack(l, c) && s.budgetLogged.CompareAndSwap(false, true) {
			_, budget, _ := BlockingBudgetStats()
			s.logger().Warn("netcore: the blocking-mode budget is spent; new connections are served in the default mode until blocking ones close (logged once)",
				"budget", budget)
		}
		if slots != nil {
			// At the bound the connection waits here, accepted but not
			// served, and the listener is not asked for another.
			select {
			case slots <- struct{}{}:
			case <-s.done:
				c.Close()
				return ErrServerClosed
			}
		}
		if s.TLSConfig != nil {
			c = tls.Server(c, s.TLSConfig)
		}
		st := s.track(c)
		if st == nil {
			c.Close()
			if slots != nil {
				<-slots
			}
			return ErrServerClosed
		}
		go s.serveConn(st, slots)
	}
}

// nextBackoff doubles d from 5 ms up to 1 s: how long the Server and the
// Loop wait before accepting again after an accept error that passes.
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

// sleep waits d, or until the server is shut down (then it returns false).
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// track registers a new connection and its handler, unless the server is
// shutting down (then it returns nil).
func (s *Server) track(c net.Conn) *connState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	st := &connState{Context: s.ctx, conn: c, srv: s}
	s.conns[st] = struct{}{}
	s.active++
	s.left++
	s.handlers.Add(1)
	return st
}

func (s *Server) serveConn(st *connState, slots chan struct{}) {
	c := st.conn
	defer func() {
		if v := recover(); v != nil {
			s.logger().Error("netcore: handler panicked; closing its connection",
				"remote", remoteString(c), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		// Counted out before the close, so that a peer that sees the
		// close sees a Server with this handler finished.
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
		if slots != nil {
			<-slots // lingering needs no slot
		}
		s.lingerClose(c)
		s.mu.Lock()
		delete(s.conns, st)
		s.mu.Unlock()
		s.handlers.Done()
		s.mu.Lock()
		s.left--
		s.signalDrainedLocked()
		s.mu.Unlock()
	}()
	setIdleTimeout(c, s.IdleTimeout)
	if tc, ok := c.(*tls.Conn); ok && s.TLSConfig != nil {
		hctx := context.Context(st)
		if d := s.HandshakeTimeout; d >= 0 {
			if d == 0 {
				d = DefaultHandshakeTimeout
			}
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(st, d)
			defer cancel()
		}
		// When hctx ends first, crypto/tls closes the connection, which
		// wakes a Read blocked beneath the handshake in either mode.
		if err := tc.HandshakeContext(hctx); err != nil {
			s.logger().Info("netcore: TLS handshake failed; closing the connection",
				"remote", remoteString(c), "err", err)
			return
		}
	}
	s.Handler.ServeConn(st, c)
}

// closeWriteBy calls cw.CloseWrite, c's, and with TLS ends it at deadline:
// (*tls.Conn).CloseWrite sends close_notify under a write deadline of
// crypto/tls's own (5 s), which a peer that does not read would make it
// wait out. At deadline the connection beneath is closed, which ends the
// write; CloseWrite then fails and the connection is closed.
func closeWriteBy(c net.Conn, cw interface{ CloseWrite() error }, deadline time.Time) error {
	if _, ok := c.(*tls.Conn); !ok {
		return cw.CloseWrite()
	}
	t := time.AfterFunc(time.Until(deadline), func() { innermost(c).Close() })
	err := cw.CloseWrite()
	if !t.Stop() && err == nil {
		err = net.ErrClosed // written, but closed meanwhile
	}
	return err
}

// lingerClose closes the connection of a handler that has returned. Closed
// outright with input unread (a request the handler refused, say), a
// socket answers with a reset, which discards what it had not sent yet and
// can overtake the reply on the network. So when input is waiting unread
// on a netcore socket, it shuts the write side down (with TLS, after
// close_notify): the peer reads everything the handler wrote, then EOF; it
// reads and discards the peer's input until its EOF, for at most
// LingerTimeout; then it closes. With nothing unread (an idle client, a
// request answered in full) it closes at once, as does a handler that
// closed the connection itself, Close, or a Shutdown whose context ended.
func (s *Server) lingerClose(c net.Conn) {
	d := s.LingerTimeout
	if d == 0 {
		d = DefaultLingerTimeout
	}
	deadline := time.Now().Add(d)
	cw, ok := c.(interface{ CloseWrite() error })
	if d < 0 || !ok || s.forced.Load() || !hasUnreadInput(c) || closeWriteBy(c, cw, deadline) != nil {
		c.Close()
		return
	}
	if c.SetReadDeadline(deadline) == nil {
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
	}
	c.Close()
}

// remoteString is c's peer address for a log line.
func remoteString(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return "?"
}

// Shutdown stops the server gracefully: it closes the listeners, cancels
// the handlers' context, wakes the handlers waiting in Idle for a new
// request (they get ErrServerClosed), then waits for every handler to
// return; a handler in the middle of a request finishes it. It returns nil
// once they all have, at once if none is running (whatever ctx's state).
// If ctx ends first, it closes the remaining connections (which wakes
// handlers blocked in Read or Write) and returns ctx's error without
// waiting further: a handler blocked on something other than its
// connection is its own business. Serve returns ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose()
	// No goroutine waits on s.handlers here: one would be left behind
	// for good by a handler that never returns, even once ctx ended.
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		idle := s.active == 0
		s.mu.Unlock()
		// Every handler has returned or is cut short now; connections
		// still lingering after theirs are closed too.
		s.forced.Store(true)
		s.closeConns()
		if idle {
			return nil
		}
		return ctx.Err()
	}
}

// wakeIdleLocked ends the wait of every handler in Idle by setting a read
// deadline in the past on its connection, under its st.mu as Idle expects.
// Blocking-mode reads blocked in the kernel also need a signal to see it:
// those sockets are returned, to be woken together (wakeStaged) once s.mu
// is released, since that scans the process's threads. Callers hold s.mu.
func (s *Server) wakeIdleLocked() wakeBatch {
	var batch wakeBatch
	for st := range s.conns {
		st.mu.Lock()
		if st.idle {
			st.woken = true
			batch = stageWake(batch, st.conn, wakeDeadline)
		}
		st.mu.Unlock()
	}
	return batch
}

// Close stops the server at once: it closes the listeners and every
// connection, and waits for the handlers to return. Serve returns
// ErrServerClosed.
func (s *Server) Close() error {
	s.beginClose()
	s.forced.Store(true)
	s.closeConns()
	s.handlers.Wait()
	return nil
}

// beginClose stops accepting, cancels the handlers' context and wakes the
// handlers that wait in Idle.
func (s *Server) beginClose() {
	s.mu.Lock()
	s.init()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.shuttingDown.Store(true)
	close(s.done)
	s.cancel()
	s.setBound(nil, ErrServerClosed)
	for l := range s.listeners {
		(*l).Close()
	}
	batch := s.wakeIdleLocked()
	s.signalDrainedLocked()
	s.mu.Unlock()
	// A read woken after its handler left Idle (and cleared the
	// deadline) just goes round.
	wakeStaged(batch)
}

// signalDrainedLocked closes s.drained once the Server is closing and
// every handler has ended; callers hold s.mu.
func (s *Server) signalDrainedLocked() {
	if s.closing && s.left == 0 && !s.drainedClosed {
		s.drainedClosed = true
		close(s.drained)
	}
}

// closeConns closes every connection still served, outside s.mu: closing
// blocking-mode sockets wakes their calls, which scans the process's
// threads.
func (s *Server) closeConns() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for st := range s.conns {
		conns = append(conns, st.conn)
	}
	s.mu.Unlock()
	closeConns(conns)
}
