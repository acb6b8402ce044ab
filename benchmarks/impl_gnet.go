//go:build linux

package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// gnetServer is gnet v2's event engine: one epoll loop per CPU
// (WithMulticore), connections spread round-robin, the handler called on
// the loop with the bytes read.
type gnetServer struct {
	gnet.BuiltinEventEngine
	addr    string
	eng     gnet.Engine
	booted  chan struct{}
	stopped chan error
	once    sync.Once
	err     error
}

// StartGnet starts gnet's echo server on addr.
func StartGnet(addr string) (Server, error) {
	s := &gnetServer{booted: make(chan struct{}), stopped: make(chan error, 1)}
	go func() {
		s.stopped <- gnet.Run(s, "tcp://"+addr,
			gnet.WithMulticore(true),
			gnet.WithLogger(gnetLogger{}))
	}()
	select {
	case <-s.booted:
	case err := <-s.stopped:
		return nil, fmt.Errorf("gnet on %q: %v", addr, err)
	}
	// gnet does not say which port it got: ask the kernel, on a copy of
	// its listening socket.
	fd, err := s.eng.Dup()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("gnet: duplicating the listener: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	unix.Close(fd)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("gnet: getsockname: %v", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		s.addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		s.addr = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	default:
		s.Close()
		return nil, fmt.Errorf("gnet: listening on a %T", sa)
	}
	return s, nil
}

// OnBoot records the engine, for Close and Dup.
func (s *gnetServer) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	close(s.booted)
	return gnet.None
}

// OnTraffic echoes everything read, the way gnet's own echo example does:
// the output is queued and written by the loop.
func (s *gnetServer) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	c.Write(buf)
	return gnet.None
}

func (s *gnetServer) Addr() string { return s.addr }

// Close stops the engine, closing every connection, and waits for Run to
// return.
func (s *gnetServer) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.err = s.eng.Stop(ctx)
		select {
		case err := <-s.stopped:
			if s.err == nil && err != nil && !errors.Is(err, context.Canceled) {
				s.err = err
			}
		case <-ctx.Done():
			s.err = errors.Join(s.err, errors.New("gnet: Run did not return after Stop"))
		}
	})
	return s.err
}

// gnetLogger sends gnet's warnings and errors to stderr and drops the rest:
// gnet's own logger writes to stdout, where a server process reports to the
// benchmark.
type gnetLogger struct{}

func (gnetLogger) Debugf(string, ...any)            {}
func (gnetLogger) Infof(string, ...any)             {}
func (gnetLogger) Warnf(format string, args ...any) { log.Printf("gnet: "+format, args...) }
func (gnetLogger) Errorf(format string, args ...any) {
	log.Printf("gnet: "+format, args...)
}
func (gnetLogger) Fatalf(format string, args ...any) { log.Fatalf("gnet: "+format, args...) }
