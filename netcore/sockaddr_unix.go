//go:build unix

package netcore

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Family returns unix.AF_INET, unix.AF_INET6 or unix.AF_UNIX, or 0
// (AF_UNSPEC) for the zero Sockaddr.
func (sa Sockaddr) Family() int {
	switch sa.family {
	case family4:
		return unix.AF_INET
	case family6:
		return unix.AF_INET6
	case familyUnix:
		return unix.AF_UNIX
	}
	return unix.AF_UNSPEC
}

// SockaddrFromUnix returns the socket address of a *unix.SockaddrInet4,
// *unix.SockaddrInet6 or *unix.SockaddrUnix (whose Name is read as
// SockaddrFromUnixPath reads it). x/sys keeps the Port field in host order
// (it swaps when it talks to the kernel), and so does Sockaddr. A nil
// value, another type, or a port out of range is an error.
func SockaddrFromUnix(usa unix.Sockaddr) (Sockaddr, error) {
	switch u := usa.(type) {
	case *unix.SockaddrInet4:
		if u == nil {
			break
		}
		if u.Port < 0 || u.Port > 0xffff {
			return Sockaddr{}, fmt.Errorf("netcore: unix.SockaddrInet4 port %d out of range 0-65535", u.Port)
		}
		return SockaddrFrom4(u.Addr, uint16(u.Port)), nil
	case *unix.SockaddrInet6:
		if u == nil {
			break
		}
		if u.Port < 0 || u.Port > 0xffff {
			return Sockaddr{}, fmt.Errorf("netcore: unix.SockaddrInet6 port %d out of range 0-65535", u.Port)
		}
		return SockaddrFrom16(u.Addr, uint16(u.Port), u.ZoneId), nil
	case *unix.SockaddrUnix:
		if u == nil {
			break
		}
		return SockaddrFromUnixPath(u.Name)
	case nil:
	default:
		return Sockaddr{}, fmt.Errorf("netcore: unix.Sockaddr of type %T is not an IP or Unix socket address", usa)
	}
	return Sockaddr{}, errors.New("netcore: nil unix.Sockaddr")
}

// Unix returns sa as a *unix.SockaddrInet4, *unix.SockaddrInet6 (flow info
// is dropped: x/sys has no field for it) or *unix.SockaddrUnix (Name as
// Path returns it), or nil for the zero Sockaddr.
func (sa Sockaddr) Unix() unix.Sockaddr {
	switch sa.family {
	case family4:
		return &unix.SockaddrInet4{Port: int(sa.port), Addr: sa.As4()}
	case family6:
		return &unix.SockaddrInet6{Port: int(sa.port), ZoneId: sa.scope, Addr: sa.addr}
	case familyUnix:
		return &unix.SockaddrUnix{Name: sa.path}
	}
	return nil
}
