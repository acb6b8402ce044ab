//go:build !linux

package netcore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// This file gives every Linux-only identifier of the package a stand-in
// with the same signature, so that code written for netcore compiles on
// every platform: the entry points (Listen, Dial, ListenConfig.Listen,
// Dialer.Dial and DialContext) fail with an error matching ErrLinuxOnly,
// and no Listener or Conn can be made, so their methods are never reached
// on a real value (they return ErrLinuxOnly or the zero value). The option
// types (config.go), the Server (server.go), Sockaddr and Resolve are the
// same code on every platform; a Server serves a listener of Go's net
// package here.

// The sizes of Linux's struct sockaddr_in, struct sockaddr_in6 and struct
// sockaddr_un, whose byte layout the binary form of Sockaddr is (it fails
// off Linux).
const (
	SizeofSockaddrInet4 = 16
	SizeofSockaddrInet6 = 28
	SizeofSockaddrUnix  = 110
)

// AppendBinary fails off Linux: the raw form is Linux's struct layout.
func (sa Sockaddr) AppendBinary(b []byte) ([]byte, error) { return b, ErrLinuxOnly }

// MarshalBinary fails off Linux: the raw form is Linux's struct layout.
func (sa Sockaddr) MarshalBinary() ([]byte, error) { return nil, ErrLinuxOnly }

// UnmarshalBinary fails off Linux: the raw form is Linux's struct layout.
func (sa *Sockaddr) UnmarshalBinary([]byte) error { return ErrLinuxOnly }

// Listener stands in for the Linux listener; off Linux none can be made.
type Listener struct{}

// Conn stands in for the Linux connection; off Linux none can be made.
type Conn struct{}

var (
	_ net.Listener = (*Listener)(nil)
	_ net.Conn     = (*Conn)(nil)
)

// linuxOnly is the error of an entry point off Linux; it names the input.
func linuxOnly(op, network, address string) error {
	return &net.OpError{Op: op, Net: network, Err: fmt.Errorf("address %q: %w", address, ErrLinuxOnly)}
}

// Listen fails off Linux with an error matching ErrLinuxOnly.
func Listen(network, address string) (*Listener, error) {
	return nil, linuxOnly("listen", network, address)
}

// Listen fails off Linux with an error matching ErrLinuxOnly.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (*Listener, error) {
	return nil, linuxOnly("listen", network, address)
}

// Dial fails off Linux with an error matching ErrLinuxOnly.
func Dial(network, address string) (*Conn, error) {
	return nil, linuxOnly("dial", network, address)
}

// Dial fails off Linux with an error matching ErrLinuxOnly.
func (d *Dialer) Dial(network, address string) (*Conn, error) {
	return nil, linuxOnly("dial", network, address)
}

// DialContext fails off Linux with an error matching ErrLinuxOnly.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (*Conn, error) {
	return nil, linuxOnly("dial", network, address)
}

// Accept fails off Linux with ErrLinuxOnly.
func (*Listener) Accept() (net.Conn, error) { return nil, ErrLinuxOnly }

// AcceptConn fails off Linux with ErrLinuxOnly.
func (*Listener) AcceptConn() (*Conn, error) { return nil, ErrLinuxOnly }

// Close fails off Linux with ErrLinuxOnly.
func (*Listener) Close() error { return ErrLinuxOnly }

// Addr returns nil off Linux.
func (*Listener) Addr() net.Addr { return nil }

// Sockaddr returns the zero Sockaddr off Linux.
func (*Listener) Sockaddr() Sockaddr { return Sockaddr{} }

// SetUnlinkOnClose does nothing off Linux.
func (*Listener) SetUnlinkOnClose(bool) {}

// SetDeadline fails off Linux with ErrLinuxOnly.
func (*Listener) SetDeadline(time.Time) error { return ErrLinuxOnly }

// SyscallConn fails off Linux with ErrLinuxOnly.
func (*Listener) SyscallConn() (syscall.RawConn, error) { return nil, ErrLinuxOnly }

// Read fails off Linux with ErrLinuxOnly.
func (*Conn) Read([]byte) (int, error) { return 0, ErrLinuxOnly }

// Write fails off Linux with ErrLinuxOnly.
func (*Conn) Write([]byte) (int, error) { return 0, ErrLinuxOnly }

// Close fails off Linux with ErrLinuxOnly.
func (*Conn) Close() error { return ErrLinuxOnly }

// CloseRead fails off Linux with ErrLinuxOnly.
func (*Conn) CloseRead() error { return ErrLinuxOnly }

// CloseWrite fails off Linux with ErrLinuxOnly.
func (*Conn) CloseWrite() error { return ErrLinuxOnly }

// LocalAddr returns nil off Linux.
func (*Conn) LocalAddr() net.Addr { return nil }

// RemoteAddr returns nil off Linux.
func (*Conn) RemoteAddr() net.Addr { return nil }

// LocalSockaddr returns the zero Sockaddr off Linux.
func (*Conn) LocalSockaddr() Sockaddr { return Sockaddr{} }

// RemoteSockaddr returns the zero Sockaddr off Linux.
func (*Conn) RemoteSockaddr() Sockaddr { return Sockaddr{} }

// SetDeadline fails off Linux with ErrLinuxOnly.
func (*Conn) SetDeadline(time.Time) error { return ErrLinuxOnly }

// SetReadDeadline fails off Linux with ErrLinuxOnly.
func (*Conn) SetReadDeadline(time.Time) error { return ErrLinuxOnly }

// SetWriteDeadline fails off Linux with ErrLinuxOnly.
func (*Conn) SetWriteDeadline(time.Time) error { return ErrLinuxOnly }

// SetNoDelay fails off Linux with ErrLinuxOnly.
func (*Conn) SetNoDelay(bool) error { return ErrLinuxOnly }

// SetKeepAlive fails off Linux with ErrLinuxOnly.
func (*Conn) SetKeepAlive(bool) error { return ErrLinuxOnly }

// SetKeepAlivePeriod fails off Linux with ErrLinuxOnly.
func (*Conn) SetKeepAlivePeriod(time.Duration) error { return ErrLinuxOnly }

// SetLinger fails off Linux with ErrLinuxOnly.
func (*Conn) SetLinger(int) error { return ErrLinuxOnly }

// SetReadBuffer fails off Linux with ErrLinuxOnly.
func (*Conn) SetReadBuffer(int) error { return ErrLinuxOnly }

// SetWriteBuffer fails off Linux with ErrLinuxOnly.
func (*Conn) SetWriteBuffer(int) error { return ErrLinuxOnly }

// SyscallConn fails off Linux with ErrLinuxOnly.
func (*Conn) SyscallConn() (syscall.RawConn, error) { return nil, ErrLinuxOnly }

// PeerCred fails off Linux with ErrLinuxOnly.
func (*Conn) PeerCred() (Ucred, error) { return Ucred{}, ErrLinuxOnly }

// ReadFrom fails off Linux with ErrLinuxOnly.
func (*Conn) ReadFrom(io.Reader) (int64, error) { return 0, ErrLinuxOnly }

// WriteTo fails off Linux with ErrLinuxOnly.
func (*Conn) WriteTo(io.Writer) (int64, error) { return 0, ErrLinuxOnly }

// Writev fails off Linux with ErrLinuxOnly.
func (*Conn) Writev([][]byte) (int64, error) { return 0, ErrLinuxOnly }

// setIdleTimeout applies Server.IdleTimeout to the netcore connection
// beneath c; off Linux there is none.
func setIdleTimeout(net.Conn, time.Duration) {}

// isResourceLimit reports whether an accept error means the process or the
// system ran out of descriptors or memory, which frees up later.
func isResourceLimit(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// loopState is empty off Linux: no Loop runs.
type loopState struct{}

// LoopConn stands in for the Linux event-loop connection; off Linux none
// can be made.
type LoopConn struct{}

// Serve fails off Linux with ErrLinuxOnly.
func (lp *Loop) Serve(l net.Listener) error {
	l.Close()
	return ErrLinuxOnly
}

// ServeTLS closes l and returns ErrLinuxOnly.
func (lp *Loop) ServeTLS(l net.Listener, config *tls.Config) error {
	l.Close()
	return ErrLinuxOnly
}

// Shutdown fails off Linux with ErrLinuxOnly.
func (lp *Loop) Shutdown(ctx context.Context) error { return ErrLinuxOnly }

// Close fails off Linux with ErrLinuxOnly.
func (lp *Loop) Close() error { return ErrLinuxOnly }

// Stats returns the zero LoopStats off Linux.
func (lp *Loop) Stats() LoopStats { return LoopStats{} }

// Buffered returns 0 off Linux.
func (c *LoopConn) Buffered() int { return 0 }

// Peek returns nil off Linux.
func (c *LoopConn) Peek(n int) []byte { return nil }

// Next returns nil off Linux.
func (c *LoopConn) Next(n int) []byte { return nil }

// Discard returns 0 off Linux.
func (c *LoopConn) Discard(n int) int { return 0 }

// Write fails off Linux with ErrLinuxOnly.
func (c *LoopConn) Write(p []byte) (int, error) { return 0, ErrLinuxOnly }

// OutputBuffered returns 0 off Linux.
func (c *LoopConn) OutputBuffered() int { return 0 }

// CloseWrite fails off Linux with ErrLinuxOnly.
func (c *LoopConn) CloseWrite() error { return ErrLinuxOnly }

// Send fails off Linux with ErrLinuxOnly.
func (c *LoopConn) Send(p []byte) error { return ErrLinuxOnly }

// Close fails off Linux with ErrLinuxOnly.
func (c *LoopConn) Close() error { return ErrLinuxOnly }

// RemoteSockaddr returns the zero Sockaddr off Linux.
func (c *LoopConn) RemoteSockaddr() Sockaddr { return Sockaddr{} }

// LocalSockaddr returns the zero Sockaddr off Linux.
func (c *LoopConn) LocalSockaddr() Sockaddr { return Sockaddr{} }

// RemoteAddr returns nil off Linux.
func (c *LoopConn) RemoteAddr() net.Addr { return nil }

// LocalAddr returns nil off Linux.
func (c *LoopConn) LocalAddr() net.Addr { return nil }

// PeerCred fails off Linux with ErrLinuxOnly.
func (c *LoopConn) PeerCred() (Ucred, error) { return Ucred{}, ErrLinuxOnly }

// SetUserData does nothing off Linux.
func (c *LoopConn) SetUserData(v any) {}

// UserData returns nil off Linux.
func (c *LoopConn) UserData() any { return nil }

// StartTLS returns ErrLinuxOnly.
func (c *LoopConn) StartTLS(config *tls.Config) error { return ErrLinuxOnly }

// ConnectionState returns the zero state.
func (c *LoopConn) ConnectionState() tls.ConnectionState { return tls.ConnectionState{} }

// OutputFull returns false off Linux.
func (c *LoopConn) OutputFull() bool { return false }

// closing returns true off Linux: no LoopConn serves.
func (c *LoopConn) closing() bool { return true }

// Execute fails off Linux with ErrLinuxOnly.
func (c *LoopConn) Execute(fn func(*LoopConn)) error { return ErrLinuxOnly }

// Hold does nothing off Linux.
func (c *LoopConn) Hold() {}

// Release does nothing off Linux.
func (c *LoopConn) Release() {}

// SetDeadline does nothing off Linux.
func (c *LoopConn) SetDeadline(t time.Time) {}

// LoopTimer stands in for the Linux loop timer.
type LoopTimer struct{}

// AfterFunc returns a timer that never runs off Linux.
func (c *LoopConn) AfterFunc(d time.Duration, fn func(*LoopConn)) *LoopTimer { return &LoopTimer{} }

// Stop returns false off Linux.
func (t *LoopTimer) Stop() bool { return false }

// LoopFrame stands in for the Linux reply frame.
type LoopFrame struct{}

// BeginFrame fails off Linux with ErrLinuxOnly.
func (c *LoopConn) BeginFrame(codec FrameCodec) (LoopFrame, error) { return LoopFrame{}, ErrLinuxOnly }

// End fails off Linux with ErrLinuxOnly.
func (f LoopFrame) End() error { return ErrLinuxOnly }

// blockingFellBack is false off Linux: there is no blocking mode.
func blockingFellBack(l net.Listener, c net.Conn) bool { return false }

// SetBlockingBudget does nothing off Linux and returns 0.
func SetBlockingBudget(n int) int { return 0 }

// BlockingBudgetStats returns zeros off Linux.
func BlockingBudgetStats() (inUse, budget, fellBack int64) { return 0, 0, 0 }

// wakeBatch is empty off Linux: there is no blocking mode.
type wakeBatch struct{}

// stageWake sets the read deadline t on c.
func stageWake(batch wakeBatch, c net.Conn, t time.Time) wakeBatch {
	c.SetReadDeadline(t)
	return batch
}

// wakeStaged does nothing off Linux.
func wakeStaged(wakeBatch) {}

// hasUnreadInput is false off Linux: no netcore socket serves.
func hasUnreadInput(c net.Conn) bool { return false }

// closeConns closes every connection of conns, beneath any TLS.
func closeConns(conns []net.Conn) {
	for _, c := range conns {
		innermost(c).Close()
	}
}
