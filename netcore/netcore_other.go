//go:build !linux

package netcore

import (
	"context"
	"errors"
	"net"
	"runtime"
	"time"
)

// ErrLinuxOnly is returned by every entry point that needs the Linux kernel
// when netcore is built for another platform.
var ErrLinuxOnly = errors.New("netcore: this needs Linux; built for " + runtime.GOOS)

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

// Listen fails off Linux with ErrLinuxOnly.
func Listen(network, address string) (*Listener, error) {
	return nil, &net.OpError{Op: "listen", Net: network, Err: ErrLinuxOnly}
}

// Dial fails off Linux with ErrLinuxOnly.
func Dial(network, address string) (*Conn, error) {
	return nil, &net.OpError{Op: "dial", Net: network, Err: ErrLinuxOnly}
}

func (*Listener) Accept() (net.Conn, error)    { return nil, ErrLinuxOnly }
func (*Listener) Close() error                 { return ErrLinuxOnly }
func (*Listener) Addr() net.Addr               { return nil }
func (*Conn) Read([]byte) (int, error)         { return 0, ErrLinuxOnly }
func (*Conn) Write([]byte) (int, error)        { return 0, ErrLinuxOnly }
func (*Conn) Close() error                     { return ErrLinuxOnly }
func (*Conn) LocalAddr() net.Addr              { return nil }
func (*Conn) RemoteAddr() net.Addr             { return nil }
func (*Conn) SetDeadline(time.Time) error      { return ErrLinuxOnly }
func (*Conn) SetReadDeadline(time.Time) error  { return ErrLinuxOnly }
func (*Conn) SetWriteDeadline(time.Time) error { return ErrLinuxOnly }

// loopState is empty off Linux: no Loop runs.
type loopState struct{}

// LoopConn stands in for the Linux event-loop connection; off Linux none
// can be made.
type LoopConn struct{}

// Serve fails off Linux with ErrLinuxOnly.
func (lp *Loop) Serve(l *Listener) error { return ErrLinuxOnly }

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

// SetUserData does nothing off Linux.
func (c *LoopConn) SetUserData(v any) {}

// UserData returns nil off Linux.
func (c *LoopConn) UserData() any { return nil }
