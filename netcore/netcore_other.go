//go:build !linux

package netcore

import (
	"errors"
	"runtime"
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
