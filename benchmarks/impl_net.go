//go:build linux

package benchmarks

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// netBufSize is the net server's buffer per connection: bufio's default
// size, what a typical goroutine-per-connection server holds.
const netBufSize = 4 << 10

// netServer is the baseline: Go's net, one goroutine and one buffer per
// connection, blocked in Read between requests.
type netServer struct {
	l     net.Listener
	cert  []byte // with TLS, the certificate's DER
	mu    sync.Mutex
	conns map[net.Conn]struct{} // nil once closed
	wg    sync.WaitGroup
}

// StartNet starts Go's net echo server (goroutine per connection) on addr.
func StartNet(addr string) (Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &netServer{l: l, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	return s, nil
}

// StartNetTLS starts Go's net echo server with TLS on addr: the listener
// is wrapped by tls.NewListener, and each connection's goroutine runs the
// handshake (bounded by tlsHandshakeTimeout) before its echo loop, as a
// careful user of crypto/tls writes it.
func StartNetTLS(addr string) (Server, error) {
	cfg, cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &netServer{l: tls.NewListener(l, cfg), cert: cert, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	return &netTLSServer{s}, nil
}

// netTLSServer is a netServer that speaks TLS.
type netTLSServer struct{ *netServer }

func (s *netTLSServer) Certificate() []byte { return s.cert }

func (s *netServer) accept() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ECONNABORTED and the like; EMFILE cannot happen below the limit the benchmark sets
		}
		s.mu.Lock()
		if s.conns == nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.echo(c) })
	}
}

func (s *netServer) echo(c net.Conn) {
	defer func() {
		s.mu.Lock()
		if s.conns != nil {
			delete(s.conns, c)
		}
		s.mu.Unlock()
		c.Close()
	}()
	if tc, ok := c.(*tls.Conn); ok {
		// A client that never completes the handshake must not hold
		// its goroutine for ever; the deadline goes once it is done.
		tc.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
	}
	buf := make([]byte, netBufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *netServer) Addr() string { return s.l.Addr().String() }

// Close closes the listener and every connection and waits for their
// goroutines.
func (s *netServer) Close() error {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	if conns == nil {
		return nil
	}
	err := s.l.Close()
	for c := range conns {
		c.Close()
	}
	s.wg.Wait()
	return err
}
