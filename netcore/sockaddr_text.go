package netcore

import (
	"fmt"
	"net/netip"
	"strconv"
)

// ParseSockaddr parses s as an IP socket address: "1.2.3.4:80", "[::1]:80",
// "[fe80::1%lo]:80" or "[fe80::1%2]:80". It accepts what
// netip.ParseAddrPort accepts; a zone must be an interface index or the name
// of an interface on this machine. The port is required and must be
// decimal. A string that starts with "/", "." or "@" is a Unix-domain
// address instead, a path or an abstract name, read as
// SockaddrFromUnixPath reads it (for any other relative path, call that).
// The error quotes s.
func ParseSockaddr(s string) (Sockaddr, error) {
	if s != "" && (s[0] == '/' || s[0] == '.' || s[0] == '@') {
		sa, err := SockaddrFromUnixPath(s)
		if err != nil {
			return Sockaddr{}, &ParseError{Input: s, Err: err}
		}
		return sa, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return Sockaddr{}, &ParseError{Input: s, Err: err}
	}
	sa, err := SockaddrFromAddrPort(ap)
	if err != nil {
		return Sockaddr{}, &ParseError{Input: s, Err: err}
	}
	return sa, nil
}

// MustParseSockaddr is ParseSockaddr for constants and tests: it panics if s
// does not parse.
func MustParseSockaddr(s string) Sockaddr {
	sa, err := ParseSockaddr(s)
	if err != nil {
		panic(err)
	}
	return sa
}

// ParseError is the error of a text or binary form that does not parse. It
// names the input.
type ParseError struct {
	Input string // the text, or the bytes in hex for the binary form
	Err   error  // what is wrong with it
}

// Error quotes the input and says what is wrong with it.
func (e *ParseError) Error() string {
	return fmt.Sprintf("netcore: cannot parse socket address %q: %v", e.Input, e.Err)
}

// Unwrap returns Err, so errors.Is and errors.As see the cause.
func (e *ParseError) Unwrap() error { return e.Err }

// AppendText appends the text form of sa to b and returns the extended
// buffer: "1.2.3.4:80", "[::1]:80", "[fe80::1%2]:80". The scope id is
// written as a decimal interface index, which ParseSockaddr reads back
// without a lookup. A Unix address is its name as net.UnixAddr.String
// gives it: "/run/app.sock", "@name", and "@" for an unnamed socket (as
// Go's net shows it; it parses back as the empty abstract name, which is
// another address). The zero Sockaddr appends nothing. It never fails; the
// error is there for encoding.TextAppender.
func (sa Sockaddr) AppendText(b []byte) ([]byte, error) {
	switch sa.family {
	case family4:
		b = netip.AddrFrom4(sa.As4()).AppendTo(b)
	case family6:
		b = append(b, '[')
		b = netip.AddrFrom16(sa.addr).AppendTo(b)
		if sa.scope != 0 {
			b = append(b, '%')
			b = strconv.AppendUint(b, uint64(sa.scope), 10)
		}
		b = append(b, ']')
	case familyUnix:
		return append(b, sa.unixName()...), nil
	default:
		return b, nil
	}
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(sa.port), 10), nil
}

// String returns the text form of sa (see AppendText), or
// "invalid Sockaddr" for the zero Sockaddr.
func (sa Sockaddr) String() string {
	if !sa.IsValid() {
		return "invalid Sockaddr"
	}
	var buf [64]byte
	b, _ := sa.AppendText(buf[:0])
	return string(b)
}

// MarshalText implements encoding.TextMarshaler: the form of AppendText,
// empty for the zero Sockaddr.
func (sa Sockaddr) MarshalText() ([]byte, error) {
	return sa.AppendText(make([]byte, 0, 64))
}

// UnmarshalText implements encoding.TextUnmarshaler. Empty text gives the
// zero Sockaddr; anything else is parsed by ParseSockaddr.
func (sa *Sockaddr) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*sa = Sockaddr{}
		return nil
	}
	v, err := ParseSockaddr(string(text))
	if err != nil {
		return err
	}
	*sa = v
	return nil
}
