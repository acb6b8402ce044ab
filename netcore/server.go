//go:build linux

package netcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// A Handler serves one connection. ServeConn owns c until it returns; the
// Server closes c afterwards (closing it earlier is fine too).
type Handler interface {
	ServeConn(c *Conn)
}

// HandlerFunc lets an ordinary function be a Handler.
type HandlerFunc func(c *Conn)

// ServeConn calls f(c).
func (f HandlerFunc) ServeConn(c *Conn) { f(c) }

// Server accepts connections and runs Handler for each on its own
// goroutine, in the shape of net/http.Server.
//
// Accept errors never stop it silently: EINTR and ECONNABORTED are retried
// inside Accept; when descriptors or memory run out (EMFILE, ENFILE,
// ENOBUFS, ENOMEM) it logs, backs off (5 ms, doubling to 1 s) and keeps
// serving once they free up. A panicking Handler is recovered and logged,
// and only its connection is closed.
type Server struct {
	// Addr is the address ListenAndServe listens on ("tcp"); empty means
	// ":0" (every address, a port the kernel picks).
	Addr string
	// Handler serves each connection. It must be set.
	Handler Handler
	// MaxConns > 0 bounds the connections served at once: at the bound the
	// Server stops accepting, and new connections wait in the kernel's
	// backlog until one finishes.
	MaxConns int
	// IdleTimeout > 0 bounds how long a Read may wait for data when the
	// handler has not set a read deadline of its own; the Read then fails
	// with an error matching os.ErrDeadlineExceeded.
	IdleTimeout time.Duration
	// Logger receives accept errors, back-offs and handler panics;
	// nil means slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[*Listener]struct{}
	conns     map[*Conn]struct{}
	handlers  sync.WaitGroup
	done      chan struct{} // closed by Shutdown and Close
	closing   bool
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// init sets up the maps; callers hold s.mu.
func (s *Server) init() {
	if s.done == nil {
		s.done = make(chan struct{})
		s.listeners = make(map[*Listener]struct{})
		s.conns = make(map[*Conn]struct{})
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
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown or Close, when it returns
// ErrServerClosed, or until Accept fails for a reason that will not pass
// (the listener was closed by someone else, say), when it returns that
// error. Serve closes l when it returns.
func (s *Server) Serve(l *Listener) error {
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
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var slots chan struct{}
	if s.MaxConns > 0 {
		slots = make(chan struct{}, s.MaxConns)
	}
	var backoff time.Duration
	for {
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-s.done:
				return ErrServerClosed
			}
		}
		c, err := l.AcceptConn()
		if err != nil {
			if slots != nil {
				<-slots
			}
			if s.isClosing() {
				return ErrServerClosed
			}
			if !isResourceLimit(err) {
				return err
			}
			backoff = nextBackoff(backoff)
			s.logger().Warn("netcore: accept failed; backing off", "err", err, "backoff", backoff)
			if !s.sleep(backoff) {
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go s.serveConn(c, slots)
	}
}

// nextBackoff doubles d from 5 ms up to 1 s.
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
// shutting down.
func (s *Server) track(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) serveConn(c *Conn, slots chan struct{}) {
	defer func() {
		if v := recover(); v != nil {
			s.logger().Error("netcore: handler panicked; closing its connection",
				"remote", c.RemoteSockaddr().String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		if slots != nil {
			<-slots
		}
		s.handlers.Done()
	}()
	c.idle = s.IdleTimeout
	s.Handler.ServeConn(c)
}

// Shutdown stops the server gracefully: it closes the listeners, then
// waits for every handler to return. If ctx ends first, it closes the
// remaining connections (which wakes handlers blocked in Read or Write) and
// returns ctx's error without waiting further: a handler blocked on
// something other than its connection is its own business. Serve returns
// ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose()
	finished := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		s.closeConns()
		return ctx.Err()
	}
}

// Close stops the server at once: it closes the listeners and every
// connection, and waits for the handlers to return. Serve returns
// ErrServerClosed.
func (s *Server) Close() error {
	s.beginClose()
	s.closeConns()
	s.handlers.Wait()
	return nil
}

func (s *Server) beginClose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if s.closing {
		return
	}
	s.closing = true
	close(s.done)
	for l := range s.listeners {
		l.Close()
	}
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}
