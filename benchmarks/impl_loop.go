//go:build linux

package benchmarks

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/netcore-dev/netcore/internal/uring"
	"github.com/netcore-dev/netcore/netcore"
)

// loopServer is netcore's Loop: a few event loops (GOMAXPROCS of them),
// each on its own OS thread with its own epoll instance (or io_uring
// instance: loop-uring), serving every connection from pooled buffers.
type loopServer struct {
	l      *netcore.Listener
	lp     *netcore.Loop
	served chan error
	closed sync.Once
	err    error
}

// StartLoop starts an echo server on netcore's Loop on addr, with the
// Loop's defaults (every loop watches the one listening socket) but its
// backend set to epoll, whatever NETCORE_LOOP_BACKEND says: the loop
// implementations are the epoll Loop, loop-uring the io_uring one.
func StartLoop(addr string) (Server, error) { return startLoop(addr, false, 0) }

// StartLoopURing is StartLoop with Loop.Backend io_uring: each loop waits
// in its own io_uring instance, with a multishot receive per connection
// into a provided buffer ring and its sends as io_uring requests. It fails
// where io_uring cannot be used (rather than falling back to epoll, as
// BackendBest would, and measuring epoll under another name).
func StartLoopURing(addr string) (Server, error) {
	if err := uring.Available(); err != nil {
		return nil, fmt.Errorf("loop-uring: io_uring cannot be used here: %w", err)
	}
	s, err := startLoopWith(addr, false, 0, nil, netcore.BackendIOUring)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// StartLoopReusePort is StartLoop with Loop.ReusePort: a listening socket
// per loop, in one SO_REUSEPORT group.
func StartLoopReusePort(addr string) (Server, error) {
	return startLoop(addr, true, 0)
}

// StartLoopSpin is StartLoop with Loop.SpinWait 50 us: a loop that has
// just served events polls for more before it sleeps.
func StartLoopSpin(addr string) (Server, error) {
	return startLoop(addr, false, 50*time.Microsecond)
}

// StartLoopTLS is StartLoop over TLS (Loop.ServeTLS, its default
// TLSHandshakeTimeout): each connection's handshake runs on a short-lived
// goroutine, then the loop decrypts and encrypts, and the same echo
// handler sees plaintext.
func StartLoopTLS(addr string) (Server, error) {
	cfg, cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s, err := startLoopWith(addr, false, 0, cfg, netcore.BackendEpoll)
	if err != nil {
		return nil, err
	}
	return &loopTLSServer{s, cert}, nil
}

// loopTLSServer is a loopServer that speaks TLS.
type loopTLSServer struct {
	*loopServer
	cert []byte
}

func (s *loopTLSServer) Certificate() []byte { return s.cert }

// startLoop serves the echo handler with Loop.ReusePort and SpinWait as
// given.
func startLoop(addr string, reusePort bool, spin time.Duration) (Server, error) {
	return startLoopWith(addr, reusePort, spin, nil, netcore.BackendEpoll)
}

// startLoopWith is startLoop on the given backend, over TLS with cfg if it
// is not nil.
func startLoopWith(addr string, reusePort bool, spin time.Duration, cfg *tls.Config, backend netcore.LoopBackend) (*loopServer, error) {
	lc := netcore.ListenConfig{ReusePort: reusePort}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	lp := &netcore.Loop{Handler: loopEcho{}, ReusePort: reusePort, SpinWait: spin, Backend: backend}
	s := &loopServer{l: l, lp: lp, served: make(chan error, 1)}
	if cfg != nil {
		go func() { s.served <- s.lp.ServeTLS(l, cfg) }()
	} else {
		go func() { s.served <- s.lp.Serve(l) }()
	}
	return s, nil
}

func (s *loopServer) Addr() string { return s.l.Addr().String() }

// Close closes the listener and every connection, and waits for the loops
// and for Serve to return.
func (s *loopServer) Close() error {
	s.closed.Do(func() {
		s.err = s.lp.Close()
		<-s.served
	})
	return s.err
}

// loopEcho writes back whatever arrives: the input buffer's bytes are
// appended to the output buffer, which the loop writes once per iteration.
type loopEcho struct{}

func (loopEcho) OnOpen(c *netcore.LoopConn) {}

func (loopEcho) OnData(c *netcore.LoopConn) {
	if _, err := c.Write(c.Peek(c.Buffered())); err == nil {
		c.Discard(c.Buffered())
	}
}

func (loopEcho) OnEOF(c *netcore.LoopConn) {}

func (loopEcho) OnClose(c *netcore.LoopConn, err error) {}
