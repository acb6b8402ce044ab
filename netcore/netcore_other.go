//go:build !linux

package netcore

import (
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
