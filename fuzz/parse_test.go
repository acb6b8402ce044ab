package fuzz

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/netcore-dev/netcore/netcore"
	"pgregory.net/rapid"
)

// genAddrText draws strings that look like socket addresses, valid or
// nearly so: the pieces netip.ParseAddrPort has to judge.
func genAddrText() *rapid.Generator[string] {
	piece := rapid.SampledFrom([]string{
		"1.2.3.4", "255.255.255.255", "0.0.0.0", "256.0.0.1", "1.2.3", "::", "::1", "fe80::1",
		"::ffff:1.2.3.4", "2001:db8::1:0:0:1", "1:2:3:4:5:6:7:8", "1::2::3", "gg::1", "[::1]", "",
	})
	zone := rapid.SampledFrom([]string{"", "%1", "%0", "%lo", "%4294967295", "%4294967296", "%x", "%", "%01"})
	port := rapid.SampledFrom([]string{"0", "80", "65535", "65536", "-1", "", "http", "08", " 1"})
	return rapid.Custom(func(t *rapid.T) string {
		ip, z, p := piece.Draw(t, "ip"), zone.Draw(t, "zone"), port.Draw(t, "port")
		switch rapid.IntRange(0, 3).Draw(t, "shape") {
		case 0:
			return ip + z + ":" + p
		case 1:
			return "[" + ip + z + "]:" + p
		case 2:
			return "[" + ip + z + "]" + p
		}
		return rapid.String().Draw(t, "junk")
	})
}

// zoneKnown reports whether netcore can turn zone into a scope id: a
// decimal uint32 or the name of an interface here.
func zoneKnown(zone string) (uint32, bool) {
	if zone == "" {
		return 0, true
	}
	if zone[0] >= '0' && zone[0] <= '9' {
		n, err := strconv.ParseUint(zone, 10, 32)
		return uint32(n), err == nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, false
	}
	return uint32(ifi.Index), true
}

// checkAgainstNetip is the oracle shared by the property and the fuzz
// target's twin: netcore accepts exactly what netip accepts (zones aside),
// with the same address and port.
func checkAgainstNetip(t interface{ Fatalf(string, ...any) }, s string) {
	if s != "" && strings.ContainsRune("/.@", rune(s[0])) {
		checkUnixPath(t, s) // a Unix address, not one for netip
		return
	}
	sa, err := netcore.ParseSockaddr(s)
	ap, nerr := netip.ParseAddrPort(s)
	scope, zoneOK := zoneKnown(ap.Addr().Zone())
	if nerr != nil || !zoneOK {
		if err == nil {
			t.Fatalf("ParseSockaddr(%q) = %v, but netip says %v (zone known: %v)", s, sa, nerr, zoneOK)
		}
		if !strings.Contains(err.Error(), strconv.Quote(s)) {
			t.Fatalf("ParseSockaddr(%q) error %q does not quote the input", s, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("ParseSockaddr(%q) = %v, but netip accepts it as %v", s, err, ap)
	}
	if sa.Addr().WithZone("") != ap.Addr().WithZone("") || sa.Port() != ap.Port() || sa.ScopeID() != scope {
		t.Fatalf("ParseSockaddr(%q) = %v, netip says %v (scope %d)", s, sa, ap, scope)
	}
	if again, err := netcore.ParseSockaddr(sa.String()); err != nil || again != sa {
		t.Fatalf("ParseSockaddr(%q) = %v, %v; want %v", sa.String(), again, err, sa)
	}
}

func TestParseSockaddrAgreesWithNetip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkAgainstNetip(t, genAddrText().Draw(t, "s"))
	})
}

// checkUnixPath is the oracle of SockaddrFromUnixPath, from unix(7) and
// Go's net: a path takes at most 107 bytes and no NUL; an abstract name
// ("@", or a NUL, first) at most 107 bytes after it. What is accepted
// round-trips through the binary form, and through ParseSockaddr when it
// starts with "/", "." or "@"; what is refused is an error quoting it.
func checkUnixPath(t interface{ Fatalf(string, ...any) }, name string) {
	sa, err := netcore.SockaddrFromUnixPath(name)
	abstract := name != "" && (name[0] == '@' || name[0] == 0)
	ok := len(name) <= 107 && !strings.Contains(name, "\x00")
	if abstract {
		ok = len(name) <= 108
	}
	if !ok {
		if err == nil {
			t.Fatalf("SockaddrFromUnixPath(%q) = %v, want an error (too long, or a NUL in a path)", name, sa)
		}
		if !strings.Contains(err.Error(), strconv.Quote(name)) {
			t.Fatalf("SockaddrFromUnixPath(%q) error %q does not quote the input", name, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("SockaddrFromUnixPath(%q) = %v", name, err)
	}
	want := name
	if abstract {
		want = "@" + name[1:]
	}
	if !sa.IsUnix() || sa.Path() != want {
		t.Fatalf("SockaddrFromUnixPath(%q).Path() = %q, want %q", name, sa.Path(), want)
	}
	b, err := sa.MarshalBinary()
	var back netcore.Sockaddr
	if err != nil || back.UnmarshalBinary(b) != nil || back != sa {
		t.Fatalf("SockaddrFromUnixPath(%q) marshals to %x, %v, which unmarshals to %v", name, b, err, back)
	}
	if want != "" && strings.ContainsRune("/.@", rune(want[0])) {
		if again, err := netcore.ParseSockaddr(sa.String()); err != nil || again != sa {
			t.Fatalf("ParseSockaddr(%q) = %v, %v; want %v", sa.String(), again, err, sa)
		}
	}
}

func TestUnixPathProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		prefix := rapid.SampledFrom([]string{"", "/", "@", "\x00", "./", "/tmp/"}).Draw(t, "prefix")
		body := rapid.StringOfN(rapid.RuneFrom([]rune{'a', '/', '.', 0, 'é', ' '}), 0, 120, -1).Draw(t, "body")
		checkUnixPath(t, prefix+body)
	})
}
