//go:build linux

package netcore

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"golang.org/x/sys/unix"
)

// The kernel's sizes of struct sockaddr_in and struct sockaddr_in6.
const (
	SizeofSockaddrInet4 = unix.SizeofSockaddrInet4 // 16
	SizeofSockaddrInet6 = unix.SizeofSockaddrInet6 // 28
)

// AppendBinary appends the bytes of the Linux struct that sa stands for and
// returns the extended buffer:
//
//	struct sockaddr_in (16 bytes): family (host order), port (network order),
//	    4 address bytes, 8 zero bytes.
//	struct sockaddr_in6 (28 bytes): family (host order), port (network order),
//	    flow info (network order), 16 address bytes, scope id (host order).
//
// These are exactly the bytes glibc's inet_pton and htons leave in the
// structs, and what bind(2) and connect(2) read. The zero Sockaddr appends
// nothing. It never fails; the error is there for encoding.BinaryAppender.
func (sa Sockaddr) AppendBinary(b []byte) ([]byte, error) {
	switch sa.family {
	case family4:
		b = binary.NativeEndian.AppendUint16(b, unix.AF_INET)
		b = binary.BigEndian.AppendUint16(b, sa.port)
		b = append(b, sa.addr[:4]...)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	case family6:
		b = binary.NativeEndian.AppendUint16(b, unix.AF_INET6)
		b = binary.BigEndian.AppendUint16(b, sa.port)
		b = binary.BigEndian.AppendUint32(b, sa.flow)
		b = append(b, sa.addr[:]...)
		b = binary.NativeEndian.AppendUint32(b, sa.scope)
	}
	return b, nil
}

// MarshalBinary implements encoding.BinaryMarshaler with the bytes of
// AppendBinary: 16 for IPv4, 28 for IPv6, none for the zero Sockaddr.
func (sa Sockaddr) MarshalBinary() ([]byte, error) {
	return sa.AppendBinary(make([]byte, 0, SizeofSockaddrInet6))
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. It accepts exactly
// the forms MarshalBinary produces: 16 bytes of a struct sockaddr_in whose
// family is AF_INET and whose sin_zero is all zeros, 28 bytes of a struct
// sockaddr_in6 whose family is AF_INET6, or no bytes (the zero Sockaddr).
// Any other length, family or padding is an error that shows the bytes in
// hex; sa is left unchanged then.
func (sa *Sockaddr) UnmarshalBinary(data []byte) error {
	v, err := decodeSockaddr(data)
	if err != nil {
		return err
	}
	*sa = v
	return nil
}

// decodeSockaddr is UnmarshalBinary as a function; the socket layer decodes
// what accept4, getsockname and getpeername return with it.
func decodeSockaddr(data []byte) (Sockaddr, error) {
	if len(data) == 0 {
		return Sockaddr{}, nil
	}
	if len(data) < 2 {
		return Sockaddr{}, binaryError(data, "too short for a family")
	}
	fam := binary.NativeEndian.Uint16(data)
	switch {
	case fam == unix.AF_INET && len(data) == SizeofSockaddrInet4:
		for _, c := range data[8:16] {
			if c != 0 {
				return Sockaddr{}, binaryError(data, "sin_zero padding is not zero")
			}
		}
		return SockaddrFrom4([4]byte(data[4:8]), binary.BigEndian.Uint16(data[2:4])), nil
	case fam == unix.AF_INET6 && len(data) == SizeofSockaddrInet6:
		sa := SockaddrFrom16([16]byte(data[8:24]), binary.BigEndian.Uint16(data[2:4]), binary.NativeEndian.Uint32(data[24:28]))
		sa.flow = binary.BigEndian.Uint32(data[4:8])
		return sa, nil
	case fam == unix.AF_INET:
		return Sockaddr{}, binaryError(data, fmt.Sprintf("AF_INET needs %d bytes, got %d", SizeofSockaddrInet4, len(data)))
	case fam == unix.AF_INET6:
		return Sockaddr{}, binaryError(data, fmt.Sprintf("AF_INET6 needs %d bytes, got %d", SizeofSockaddrInet6, len(data)))
	}
	return Sockaddr{}, binaryError(data, fmt.Sprintf("family %d is neither AF_INET (%d) nor AF_INET6 (%d)", fam, unix.AF_INET, unix.AF_INET6))
}

func binaryError(data []byte, why string) error {
	return &ParseError{Input: hex.EncodeToString(data), Err: fmt.Errorf("%s", why)}
}
