package netcore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Resolve is the getaddrinfo step: it turns address, a "host:port" string,
// into socket addresses in the resolver's order, keeping those that fit
// network ("tcp", "tcp4" or "tcp6"). See ResolveHostPort. For network
// "unix", address is a path or an abstract name, read as
// SockaddrFromUnixPath reads it, and the answer is that one address.
func Resolve(ctx context.Context, network, address string) ([]Sockaddr, error) {
	if network == "unix" {
		sa, err := SockaddrFromUnixPath(address)
		if err != nil {
			return nil, &ResolveError{Network: network, Address: address, Err: err}
		}
		return []Sockaddr{sa}, nil
	}
	if _, err := ipNetwork(network); err != nil {
		return nil, &ResolveError{Network: network, Address: address, Err: err}
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		if ae, ok := err.(*net.AddrError); ok {
			err = errors.New(ae.Err) // the address is quoted already
		}
		return nil, &ResolveError{Network: network, Address: address, Err: err}
	}
	sas, err := ResolveHostPort(ctx, network, host, port)
	if err != nil {
		if re, ok := err.(*ResolveError); ok {
			re.Address = address
		}
		return nil, err
	}
	return sas, nil
}

// ResolveHostPort resolves host and port apart. A numeric host (with an
// optional IPv6 zone) never touches DNS. A name is looked up with Go's
// resolver (net.DefaultResolver), which reads /etc/hosts first, so
// "localhost" resolves without DNS. An empty host means the unspecified
// (wildcard) address: "::" then "0.0.0.0" for "tcp". port is decimal or a
// service name ("http") from the services database.
//
// "tcp4" keeps IPv4 addresses (an IPv4-mapped IPv6 address counts as IPv4
// and is unmapped); "tcp6" keeps the other IPv6 addresses; "tcp" keeps all.
// An empty result is an error. Errors are *ResolveError and quote the input.
func ResolveHostPort(ctx context.Context, network, host, port string) ([]Sockaddr, error) {
	fail := func(err error) ([]Sockaddr, error) {
		return nil, &ResolveError{Network: network, Address: net.JoinHostPort(host, port), Err: err}
	}
	lookupNet, err := ipNetwork(network)
	if err != nil {
		return fail(err)
	}
	p, err := resolvePort(ctx, port)
	if err != nil {
		return fail(err)
	}
	var ips []netip.Addr
	switch {
	case host == "":
		ips = []netip.Addr{netip.IPv6Unspecified(), netip.IPv4Unspecified()}
	default:
		if ip, perr := netip.ParseAddr(host); perr == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = net.DefaultResolver.LookupNetIP(ctx, lookupNet, host); err != nil {
			return fail(err)
		} else {
			// The resolver hands IPv4 answers back in their 16-byte
			// mapped form; they are IPv4 addresses.
			for i := range ips {
				ips[i] = ips[i].Unmap()
			}
		}
	}
	out := make([]Sockaddr, 0, len(ips))
	for _, ip := range ips {
		if !fitsNetwork(network, ip) {
			continue
		}
		if network == "tcp4" {
			ip = ip.Unmap()
		}
		sa, err := SockaddrFromAddrPort(netip.AddrPortFrom(ip, p))
		if err != nil {
			return fail(err)
		}
		out = append(out, sa)
	}
	if len(out) == 0 {
		return fail(fmt.Errorf("no %s address for host %q", network, host))
	}
	return out, nil
}

// ipNetwork checks a TCP network name and returns the name the IP lookup
// takes.
func ipNetwork(network string) (string, error) {
	switch network {
	case "tcp":
		return "ip", nil
	case "tcp4":
		return "ip4", nil
	case "tcp6":
		return "ip6", nil
	}
	return "", fmt.Errorf("network %q is not supported (netcore speaks \"tcp\", \"tcp4\", \"tcp6\" and \"unix\")", network)
}

func fitsNetwork(network string, ip netip.Addr) bool {
	switch network {
	case "tcp4":
		return ip.Unmap().Is4()
	case "tcp6":
		return ip.Is6() && !ip.Is4In6()
	}
	return ip.IsValid()
}

func resolvePort(ctx context.Context, port string) (uint16, error) {
	if port == "" {
		return 0, nil // "host:" means port 0, as in Go's net
	}
	if port[0] >= '0' && port[0] <= '9' {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("port %q out of range 0-65535", port)
		}
		return uint16(n), nil
	}
	n, err := net.DefaultResolver.LookupPort(ctx, "tcp", port)
	if err != nil {
		return 0, fmt.Errorf("unknown port or service %q", port)
	}
	return uint16(n), nil
}

// ResolveError is the error of Resolve and ResolveHostPort, and of the
// address step of Listen and Dial.
type ResolveError struct {
	Network string // the network asked for: "tcp", "tcp4" or "tcp6" (or what the caller passed)
	Address string // the address as the caller gave it, "host:port"
	Err     error  // why it failed: a parse error, the resolver's error, or no address of the network
}

// Error names the network and quotes the address.
func (e *ResolveError) Error() string {
	return fmt.Sprintf("netcore: resolve %s address %q: %s", e.Network, e.Address, strings.TrimPrefix(e.Err.Error(), "netcore: "))
}

// Unwrap returns Err, so errors.Is and errors.As see the cause.
func (e *ResolveError) Unwrap() error { return e.Err }

// resolveNumeric is Resolve's allocation-free shortcut for the common
// case: address is a numeric "ip:port" that fits network. ok is false for
// anything else, which then goes through Resolve (and its errors).
func resolveNumeric(network, address string) (sa Sockaddr, ok bool) {
	if network == "unix" {
		sa, err := SockaddrFromUnixPath(address)
		return sa, err == nil && address != ""
	}
	if _, err := ipNetwork(network); err != nil {
		return Sockaddr{}, false
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || ap.Addr().Zone() != "" || !fitsNetwork(network, ap.Addr()) {
		return Sockaddr{}, false
	}
	if network == "tcp4" {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	sa, err = SockaddrFromAddrPort(ap)
	return sa, err == nil
}
