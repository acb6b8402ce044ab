package netcore

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// family tags, independent of any platform's AF_ numbers.
const (
	familyNone uint8 = iota
	family4
	family6
	familyUnix
)

// Sockaddr is an IPv4, IPv6 or Unix-domain socket address: the tagged union
// that C programs spell struct sockaddr_in / struct sockaddr_in6 / struct
// sockaddr_un. It holds the family, the address bytes, the port (in host
// byte order), and for IPv6 the scope id (interface index) and flow info;
// or, for the Unix domain, the path (see SockaddrFromUnixPath).
//
// Sockaddr is a small comparable value: use it as a map key or compare it
// with ==. Two Sockaddrs are equal when every field is equal.
//
// The zero Sockaddr is not valid: IsValid reports false, and it stands for
// "no address".
type Sockaddr struct {
	addr   [16]byte // IPv4 in addr[:4], the rest zero
	scope  uint32   // IPv6 sin6_scope_id, host order
	flow   uint32   // IPv6 sin6_flowinfo, host order
	port   uint16   // host order
	family uint8
	path   string // familyUnix: the name, "@" first for the abstract namespace, "" unnamed
}

// maxScopeName bounds a zone that is looked up as an interface name
// (IFNAMSIZ-1 on Linux); longer zones are rejected without a lookup.
const maxScopeName = 15

// SockaddrFrom4 returns the IPv4 socket address ip:port.
func SockaddrFrom4(ip [4]byte, port uint16) Sockaddr {
	var sa Sockaddr
	copy(sa.addr[:4], ip[:])
	sa.port = port
	sa.family = family4
	return sa
}

// SockaddrFrom16 returns the IPv6 socket address [ip%scope]:port. A scope of
// 0 means none. An IPv4-mapped ip (::ffff:a.b.c.d) stays IPv6; see Unmap.
func SockaddrFrom16(ip [16]byte, port uint16, scope uint32) Sockaddr {
	return Sockaddr{addr: ip, port: port, scope: scope, family: family6}
}

// SockaddrFromAddrPort returns the socket address of ap. An IPv6 zone is
// either a decimal interface index ("2") or an interface name ("lo"), which
// is looked up with net.InterfaceByName; an unknown name is an error. A
// zone on an IPv4 address cannot occur (netip forbids it). The conversion
// allocates nothing unless the zone is an interface name.
func SockaddrFromAddrPort(ap netip.AddrPort) (Sockaddr, error) {
	ip := ap.Addr()
	switch {
	case ip.Is4():
		return SockaddrFrom4(ip.As4(), ap.Port()), nil
	case ip.Is6():
		scope, err := scopeID(ip.Zone())
		if err != nil {
			return Sockaddr{}, err
		}
		return SockaddrFrom16(ip.As16(), ap.Port(), scope), nil
	}
	return Sockaddr{}, errors.New("netcore: invalid netip.AddrPort (zero value)")
}

// SockaddrFromTCPAddr returns the socket address of a. An empty (nil) IP is
// the wildcard address, as in Go's net package, given here as the IPv6 one
// ([::]:port), which a "tcp" listener serves dual-stack. A 16-byte
// IPv4-mapped IP (the form net.ParseIP returns for "1.2.3.4") is taken as
// IPv4, as Go's net package does; the zone is resolved as in
// SockaddrFromAddrPort. A nil a, an IP neither 0, 4 nor 16 bytes long, or
// a zone on an IPv4 address is an error.
func SockaddrFromTCPAddr(a *net.TCPAddr) (Sockaddr, error) {
	if a == nil {
		return Sockaddr{}, errors.New("netcore: nil *net.TCPAddr")
	}
	if a.Port < 0 || a.Port > 0xffff {
		return Sockaddr{}, fmt.Errorf("netcore: port %d of TCPAddr %q out of range 0-65535", a.Port, a.String())
	}
	if len(a.IP) == 0 {
		if a.Zone != "" {
			return Sockaddr{}, fmt.Errorf("netcore: TCPAddr %q has a zone but no IP", a.String())
		}
		return SockaddrFrom16([16]byte{}, uint16(a.Port), 0), nil
	}
	if ip4 := a.IP.To4(); ip4 != nil {
		if a.Zone != "" {
			return Sockaddr{}, fmt.Errorf("netcore: TCPAddr %q: an IPv4 address takes no zone", a.String())
		}
		return SockaddrFrom4([4]byte(ip4), uint16(a.Port)), nil
	}
	if len(a.IP) != net.IPv6len {
		return Sockaddr{}, fmt.Errorf("netcore: TCPAddr with an IP of %d bytes (% x), want 4 or 16", len(a.IP), []byte(a.IP))
	}
	scope, err := scopeID(a.Zone)
	if err != nil {
		return Sockaddr{}, err
	}
	return SockaddrFrom16([16]byte(a.IP), uint16(a.Port), scope), nil
}

// scopeID turns an IPv6 zone into an interface index.
func scopeID(zone string) (uint32, error) {
	if zone == "" {
		return 0, nil
	}
	if zone[0] >= '0' && zone[0] <= '9' {
		n, err := strconv.ParseUint(zone, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("netcore: IPv6 zone %q is not an interface index (0 to 4294967295) or name", zone)
		}
		return uint32(n), nil
	}
	if len(zone) > maxScopeName {
		return 0, fmt.Errorf("netcore: IPv6 zone %q is longer than an interface name can be", zone)
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("netcore: IPv6 zone %q: no such interface", zone)
	}
	return uint32(ifi.Index), nil
}

// IsValid reports whether sa holds an address (is not the zero Sockaddr).
func (sa Sockaddr) IsValid() bool { return sa.family != familyNone }

// Is4 reports whether sa is an IPv4 socket address (struct sockaddr_in).
// An IPv4-mapped IPv6 address is not IPv4; Unmap it first.
func (sa Sockaddr) Is4() bool { return sa.family == family4 }

// Is6 reports whether sa is an IPv6 socket address (struct sockaddr_in6),
// including IPv4-mapped addresses.
func (sa Sockaddr) Is6() bool { return sa.family == family6 }

// IsUnix reports whether sa is a Unix-domain socket address (struct
// sockaddr_un).
func (sa Sockaddr) IsUnix() bool { return sa.family == familyUnix }

// Path returns the name of a Unix-domain socket address as Go's net spells
// it in net.UnixAddr.Name: a file system path, or "@" and the name for the
// Linux abstract namespace. It returns "" for an unnamed socket (a client
// that did not bind) and for addresses of other families.
func (sa Sockaddr) Path() string { return sa.path }

// Port returns the port in host byte order.
func (sa Sockaddr) Port() uint16 { return sa.port }

// ScopeID returns the IPv6 scope id (interface index), or 0.
func (sa Sockaddr) ScopeID() uint32 { return sa.scope }

// FlowInfo returns the IPv6 flow information (traffic class and flow label),
// in host byte order, or 0. Only the binary form carries it; text, netip,
// TCPAddr and unix.Sockaddr conversions drop it.
func (sa Sockaddr) FlowInfo() uint32 { return sa.flow }

// WithPort returns sa with its port replaced. The zero Sockaddr stays zero.
func (sa Sockaddr) WithPort(port uint16) Sockaddr {
	if sa.IsValid() {
		sa.port = port
	}
	return sa
}

// WithFlowInfo returns sa with its IPv6 flow information replaced. Only IPv6
// addresses carry flow information; any other sa is returned unchanged.
func (sa Sockaddr) WithFlowInfo(flow uint32) Sockaddr {
	if sa.Is6() {
		sa.flow = flow
	}
	return sa
}

// As4 returns the IPv4 address bytes. It returns zeros unless sa.Is4().
func (sa Sockaddr) As4() [4]byte { return [4]byte(sa.addr[:4]) }

// As16 returns the address as 16 bytes: the IPv6 address, or for IPv4 its
// IPv4-mapped form ::ffff:a.b.c.d. It returns zeros for the zero Sockaddr.
func (sa Sockaddr) As16() [16]byte {
	if sa.Is4() {
		return netip.AddrFrom4(sa.As4()).As16()
	}
	return sa.addr
}

// Unmap returns sa with an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// turned into the IPv4 address a.b.c.d, keeping the port. Anything else is
// returned unchanged.
func (sa Sockaddr) Unmap() Sockaddr {
	if sa.Is6() {
		if ip := netip.AddrFrom16(sa.addr); ip.Is4In6() {
			return SockaddrFrom4(ip.Unmap().As4(), sa.port)
		}
	}
	return sa
}

// Addr returns the IP address, with the scope id as a decimal zone when it
// is not 0. The zero Sockaddr gives the zero netip.Addr.
func (sa Sockaddr) Addr() netip.Addr {
	switch sa.family {
	case family4:
		return netip.AddrFrom4(sa.As4())
	case family6:
		ip := netip.AddrFrom16(sa.addr)
		if sa.scope != 0 {
			ip = ip.WithZone(strconv.FormatUint(uint64(sa.scope), 10))
		}
		return ip
	}
	return netip.Addr{}
}

// AddrPort returns sa as a netip.AddrPort (see Addr for the zone). It
// allocates nothing for an address without a scope id.
func (sa Sockaddr) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(sa.Addr(), sa.port)
}

// TCPAddr returns sa as a new *net.TCPAddr, or nil for the zero Sockaddr
// and for a Unix-domain address. An IPv6 scope id becomes a decimal Zone.
func (sa Sockaddr) TCPAddr() *net.TCPAddr {
	if !sa.Is4() && !sa.Is6() {
		return nil
	}
	ap := sa.AddrPort()
	return net.TCPAddrFromAddrPort(ap)
}

// The largest names struct sockaddr_un holds: sun_path is 108 bytes; a path
// needs its terminating NUL there, an abstract name's leading NUL is the
// "@".
const (
	maxUnixPath     = 107
	maxUnixAbstract = 108 // "@" included
)

// SockaddrFromUnixPath returns the Unix-domain socket address of name, as
// Go's net reads net.UnixAddr.Name: a file system path ("/run/app.sock",
// or relative to the working directory), "@name" for the Linux abstract
// namespace (a leading NUL byte is taken as "@"), or "" for an unnamed
// socket (Listen binds it to an abstract name the kernel picks). A path
// longer than 107 bytes, an abstract name longer than 107 bytes after the
// "@", or a path holding a NUL byte is an error quoting name that matches
// syscall.EINVAL, as the kernel would answer.
func SockaddrFromUnixPath(name string) (Sockaddr, error) {
	abstract := name != "" && (name[0] == '@' || name[0] == 0)
	switch {
	case abstract && len(name) > maxUnixAbstract:
		return Sockaddr{}, fmt.Errorf("netcore: abstract unix socket name %q is %d bytes after the @; sun_path holds at most %d: %w",
			name, len(name)-1, maxUnixAbstract-1, syscall.EINVAL)
	case !abstract && len(name) > maxUnixPath:
		return Sockaddr{}, fmt.Errorf("netcore: unix socket path %q is %d bytes; sun_path holds at most %d (%d with the NUL): %w",
			name, len(name), maxUnixPath, maxUnixPath+1, syscall.EINVAL)
	case !abstract && strings.IndexByte(name, 0) >= 0:
		return Sockaddr{}, fmt.Errorf("netcore: unix socket path %q holds a NUL byte: %w", name, syscall.EINVAL)
	case abstract && name[0] == 0:
		name = "@" + name[1:]
	}
	return Sockaddr{family: familyUnix, path: name}, nil
}

// SockaddrFromUnixAddr returns the socket address of a, read as
// SockaddrFromUnixPath reads a.Name. A nil a, or a Net other than "unix"
// or "" (netcore speaks stream sockets only), is an error.
func SockaddrFromUnixAddr(a *net.UnixAddr) (Sockaddr, error) {
	if a == nil {
		return Sockaddr{}, errors.New("netcore: nil *net.UnixAddr")
	}
	if a.Net != "unix" && a.Net != "" {
		return Sockaddr{}, fmt.Errorf("netcore: UnixAddr %q is on network %q; netcore speaks \"unix\" (stream) only", a.Name, a.Net)
	}
	return SockaddrFromUnixPath(a.Name)
}

// UnixAddr returns sa as a new *net.UnixAddr on network "unix", as Go's net
// reports Unix addresses: an unnamed socket is "@", as net shows a client
// that did not bind. It returns nil unless sa.IsUnix().
func (sa Sockaddr) UnixAddr() *net.UnixAddr {
	if !sa.IsUnix() {
		return nil
	}
	return &net.UnixAddr{Name: sa.unixName(), Net: "unix"}
}

// unixName is the name Go's net shows for sa: its path, "@" if unnamed.
func (sa Sockaddr) unixName() string {
	if sa.path == "" {
		return "@"
	}
	return sa.path
}

// isUnixPath reports whether sa is a Unix address in the file system: one
// that Listen creates a file for.
func (sa Sockaddr) isUnixPath() bool {
	return sa.IsUnix() && sa.path != "" && sa.path[0] != '@'
}

// netAddr is sa as a net.Addr: a *net.TCPAddr or *net.UnixAddr, or nil
// (never a nil pointer in a non-nil interface) if sa is not valid.
func netAddr(sa Sockaddr) net.Addr {
	switch {
	case sa.IsUnix():
		return sa.UnixAddr()
	case sa.IsValid():
		return sa.TCPAddr()
	}
	return nil
}

// network is the network name of sa's transport, as net.Addr.Network
// gives it: "unix" or "tcp".
func (sa Sockaddr) network() string {
	if sa.IsUnix() {
		return "unix"
	}
	return "tcp"
}
