package netcore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"golang.org/x/sys/unix"
)

// The kernel's sizes of struct sockaddr_in, struct sockaddr_in6 and struct
// sockaddr_un.
const (
	SizeofSockaddrInet4 = unix.SizeofSockaddrInet4 // 16
	SizeofSockaddrInet6 = unix.SizeofSockaddrInet6 // 28
	SizeofSockaddrUnix  = unix.SizeofSockaddrUnix  // 110
)

// AppendBinary appends the bytes of the Linux struct that sa stands for and
// returns the extended buffer:
//
//	struct sockaddr_in (16 bytes): family (host order), port (network order),
//	    4 address bytes, 8 zero bytes.
//	struct sockaddr_in6 (28 bytes): family (host order), port (network order),
//	    flow info (network order), 16 address bytes, scope id (host order).
//	struct sockaddr_un (3 to 110 bytes): family (host order), then the path
//	    and its NUL; or a NUL and the abstract name (no NUL after it); or
//	    nothing more for an unnamed socket (2 bytes).
//
// These are exactly the bytes glibc's inet_pton and htons leave in the
// structs, and what bind(2) and connect(2) read (and what getsockname(2)
// returns for a Unix socket, whose address length is part of it). The zero Sockaddr appends
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
	case familyUnix:
		b = binary.NativeEndian.AppendUint16(b, unix.AF_UNIX)
		switch {
		case sa.path == "":
		case sa.path[0] == '@':
			b = append(b, 0)
			b = append(b, sa.path[1:]...)
		default:
			b = append(b, sa.path...)
			b = append(b, 0)
		}
	}
	return b, nil
}

// MarshalBinary implements encoding.BinaryMarshaler with the bytes of
// AppendBinary: 16 for IPv4, 28 for IPv6, 2 to 110 for a Unix address, none
// for the zero Sockaddr.
func (sa Sockaddr) MarshalBinary() ([]byte, error) {
	return sa.AppendBinary(make([]byte, 0, SizeofSockaddrInet6))
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. It accepts exactly
// the forms MarshalBinary produces: 16 bytes of a struct sockaddr_in whose
// family is AF_INET and whose sin_zero is all zeros, 28 bytes of a struct
// sockaddr_in6 whose family is AF_INET6, 2 to 110 bytes of a struct
// sockaddr_un whose family is AF_UNIX (a path must end at its one NUL, the
// last byte: the length getsockname(2) reports, not sizeof; and must not
// start with "@", which names the abstract namespace here), or no bytes
// (the zero Sockaddr).
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
	case fam == unix.AF_UNIX:
		return decodeSockaddrUnix(data)
	case fam == unix.AF_INET:
		return Sockaddr{}, binaryError(data, fmt.Sprintf("AF_INET needs %d bytes, got %d", SizeofSockaddrInet4, len(data)))
	case fam == unix.AF_INET6:
		return Sockaddr{}, binaryError(data, fmt.Sprintf("AF_INET6 needs %d bytes, got %d", SizeofSockaddrInet6, len(data)))
	}
	return Sockaddr{}, binaryError(data, fmt.Sprintf("family %d is none of AF_INET (%d), AF_INET6 (%d), AF_UNIX (%d)", fam, unix.AF_INET, unix.AF_INET6, unix.AF_UNIX))
}

// decodeSockaddrUnix decodes a struct sockaddr_un of the length the kernel
// gives it.
func decodeSockaddrUnix(data []byte) (Sockaddr, error) {
	name := data[2:]
	switch {
	case len(data) > SizeofSockaddrUnix:
		return Sockaddr{}, binaryError(data, fmt.Sprintf("AF_UNIX takes at most %d bytes, got %d", SizeofSockaddrUnix, len(data)))
	case len(name) == 0:
		return Sockaddr{family: familyUnix}, nil // unnamed
	case name[0] == 0:
		return Sockaddr{family: familyUnix, path: "@" + string(name[1:])}, nil
	}
	if i := bytes.IndexByte(name, 0); i != len(name)-1 {
		return Sockaddr{}, binaryError(data, "an AF_UNIX path must end at its NUL, the last byte")
	}
	if name[0] == '@' {
		// Go's net spells abstract names so: no text could tell them apart.
		return Sockaddr{}, binaryError(data, "an AF_UNIX path starting with @ cannot be told from an abstract name; bind ./@... instead")
	}
	return Sockaddr{family: familyUnix, path: string(name[:len(name)-1])}, nil
}

func binaryError(data []byte, why string) error {
	return &ParseError{Input: hex.EncodeToString(data), Err: fmt.Errorf("%s", why)}
}
