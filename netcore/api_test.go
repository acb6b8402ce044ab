package netcore_test

// This file builds on every platform (CI vets it for darwin and windows):
// it names every exported identifier with its full signature, so a
// stand-in that is missing or differs off Linux breaks the build there,
// and it runs a Server over Go's net, which works everywhere.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

var (
	_ net.Listener    = (*netcore.Listener)(nil)
	_ net.Conn        = (*netcore.Conn)(nil)
	_ netcore.Handler = netcore.HandlerFunc(nil)
	_ error           = (*netcore.ParseError)(nil)
	_ error           = (*netcore.ResolveError)(nil)

	_ = netcore.ErrLinuxOnly
	_ = netcore.ErrServerClosed
	_ = [...]int{netcore.SizeofSockaddrInet4, netcore.SizeofSockaddrInet6}

	_ func(uint16) uint16 = netcore.Htons
	_ func(uint16) uint16 = netcore.Ntohs
	_ func(uint32) uint32 = netcore.Htonl
	_ func(uint32) uint32 = netcore.Ntohl
	_ func(uint64) uint64 = netcore.Htonll
	_ func(uint64) uint64 = netcore.Ntohll

	_ func([4]byte, uint16) netcore.Sockaddr                            = netcore.SockaddrFrom4
	_ func([16]byte, uint16, uint32) netcore.Sockaddr                   = netcore.SockaddrFrom16
	_ func(netip.AddrPort) (netcore.Sockaddr, error)                    = netcore.SockaddrFromAddrPort
	_ func(*net.TCPAddr) (netcore.Sockaddr, error)                      = netcore.SockaddrFromTCPAddr
	_ func(string) (netcore.Sockaddr, error)                            = netcore.ParseSockaddr
	_ func(string) netcore.Sockaddr                                     = netcore.MustParseSockaddr
	_ func(netcore.Sockaddr) int                                        = netcore.Sockaddr.Family
	_ func(netcore.Sockaddr, []byte) ([]byte, error)                    = netcore.Sockaddr.AppendBinary
	_ func(netcore.Sockaddr) ([]byte, error)                            = netcore.Sockaddr.MarshalBinary
	_ func(*netcore.Sockaddr, []byte) error                             = (*netcore.Sockaddr).UnmarshalBinary
	_ func(netcore.Sockaddr, []byte) ([]byte, error)                    = netcore.Sockaddr.AppendText
	_ func(netcore.Sockaddr) ([]byte, error)                            = netcore.Sockaddr.MarshalText
	_ func(*netcore.Sockaddr, []byte) error                             = (*netcore.Sockaddr).UnmarshalText
	_ func(netcore.Sockaddr) string                                     = netcore.Sockaddr.String
	_ func(netcore.Sockaddr) netip.AddrPort                             = netcore.Sockaddr.AddrPort
	_ func(netcore.Sockaddr) *net.TCPAddr                               = netcore.Sockaddr.TCPAddr
	_ func(netcore.Sockaddr, uint16) netcore.Sockaddr                   = netcore.Sockaddr.WithPort
	_ func(context.Context, string, string) ([]netcore.Sockaddr, error) = netcore.Resolve

	_ func(context.Context, string, string, string) ([]netcore.Sockaddr, error) = netcore.ResolveHostPort

	_ func(string, string) (*netcore.Listener, error)                                         = netcore.Listen
	_ func(*netcore.ListenConfig, context.Context, string, string) (*netcore.Listener, error) = (*netcore.ListenConfig).Listen
	_ func(*netcore.Listener) (*netcore.Conn, error)                                          = (*netcore.Listener).AcceptConn
	_ func(*netcore.Listener) netcore.Sockaddr                                                = (*netcore.Listener).Sockaddr
	_ func(*netcore.Listener, time.Time) error                                                = (*netcore.Listener).SetDeadline
	_ func(*netcore.Listener) (syscall.RawConn, error)                                        = (*netcore.Listener).SyscallConn
	_ func(string, string) (*netcore.Conn, error)                                             = netcore.Dial
	_ func(*netcore.Dialer, string, string) (*netcore.Conn, error)                            = (*netcore.Dialer).Dial
	_ func(*netcore.Dialer, context.Context, string, string) (*netcore.Conn, error)           = (*netcore.Dialer).DialContext
	_ func(*netcore.Dialer, context.Context, string, string) (net.Conn, error)                = (*netcore.Dialer).DialNetConn
	_ func(*netcore.Dialer, context.Context, string, string, *tls.Config) (*tls.Conn, error)  = (*netcore.Dialer).DialTLSContext
	_ func(*netcore.Conn) error                                                               = (*netcore.Conn).CloseRead
	_ func(*netcore.Conn) error                                                               = (*netcore.Conn).CloseWrite
	_ func(*netcore.Conn) netcore.Sockaddr                                                    = (*netcore.Conn).LocalSockaddr
	_ func(*netcore.Conn) netcore.Sockaddr                                                    = (*netcore.Conn).RemoteSockaddr
	_ func(*netcore.Conn, bool) error                                                         = (*netcore.Conn).SetNoDelay
	_ func(*netcore.Conn, bool) error                                                         = (*netcore.Conn).SetKeepAlive
	_ func(*netcore.Conn, time.Duration) error                                                = (*netcore.Conn).SetKeepAlivePeriod
	_ func(*netcore.Conn, int) error                                                          = (*netcore.Conn).SetLinger
	_ func(*netcore.Conn, int) error                                                          = (*netcore.Conn).SetReadBuffer
	_ func(*netcore.Conn, int) error                                                          = (*netcore.Conn).SetWriteBuffer
	_ func(*netcore.Conn) (syscall.RawConn, error)                                            = (*netcore.Conn).SyscallConn
	_ func(net.Conn) (*netcore.Conn, bool)                                                    = netcore.AsConn
	_ func(context.Context, func() error) error                                               = netcore.Idle
	_ func(*netcore.Server) error                                                             = (*netcore.Server).ListenAndServe
	_ func(*netcore.Server, net.Listener) error                                               = (*netcore.Server).Serve
	_ func(*netcore.Server, context.Context) (net.Addr, error)                                = (*netcore.Server).BoundAddr
	_ func(*netcore.Server, context.Context) error                                            = (*netcore.Server).Shutdown
	_ func(*netcore.Server) error                                                             = (*netcore.Server).Close

	// The option types, field by field, as the README writes them.
	_ = netcore.ListenConfig{Backlog: 128, ReusePort: true, V6Only: true, Device: "lo", KeepMapped: true,
		Nagle: true, Control: func(string, string, syscall.RawConn) error { return nil }, Blocking: true}
	_ = netcore.Dialer{Timeout: time.Second, LocalAddr: netcore.Sockaddr{}, Device: "lo",
		KeepAlive: time.Second, Nagle: true, Control: func(string, string, syscall.RawConn) error { return nil }, Blocking: true}
	_ = netcore.Server{Addr: ":0", Handler: nil, TLSConfig: &tls.Config{}, MaxConns: 1,
		IdleTimeout: time.Second, Logger: slog.Default()}
)

// TestServerOverGoNet: a Server serves a listener of Go's net package (on
// every platform): the handler gets Go's connection, AsConn finds no
// netcore one beneath, and Shutdown ends the idle client at once.
func TestServerOverGoNet(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	srv := &netcore.Server{Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
		if nc, ok := netcore.AsConn(c); ok || nc != nil {
			ended <- errors.New("AsConn found a netcore Conn beneath a Go net connection")
			return
		}
		br := bufio.NewReader(c)
		for {
			if err := netcore.Idle(ctx, func() error { _, err := br.Peek(1); return err }); err != nil {
				ended <- err
				return
			}
			line, err := br.ReadString('\n')
			if err != nil {
				ended <- err
				return
			}
			io.WriteString(c, line)
		}
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := srv.BoundAddr(ctx)
	if err != nil || addr.String() != l.Addr().String() {
		t.Fatalf("BoundAddr = %v, %v, want %v", addr, err, l.Addr())
	}
	c, err := net.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "hello\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("echo = %q, %v", line, err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with an idle client = %v, want nil", err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, netcore.ErrServerClosed) {
			t.Errorf("the idle handler ended with %v, want ErrServerClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("the handler did not end")
	}
	select {
	case err := <-served:
		if !errors.Is(err, netcore.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return")
	}
}

// wrapped is a connection wrapper with a NetConn method, as *tls.Conn has.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

func TestAsConnEdges(t *testing.T) {
	var nilConn *netcore.Conn
	for name, c := range map[string]net.Conn{
		"nil":                       nil,
		"nil *Conn":                 nilConn,
		"wrapper of nil":            wrapped{},
		"wrapper of a nil *Conn":    wrapped{nilConn},
		"tls.Client over nil *Conn": tls.Client(wrapped{}, &tls.Config{}),
	} {
		if nc, ok := netcore.AsConn(c); ok || nc != nil {
			t.Errorf("AsConn(%s) = %v, %v, want nil, false", name, nc, ok)
		}
	}
}
