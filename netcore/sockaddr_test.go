//go:build linux

package netcore_test

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"
)

// genSockaddr draws IPv4, IPv6, IPv4-mapped and scoped link-local socket
// addresses; flow info is drawn only when withFlow is set, since only the
// binary form carries it.
func genSockaddr(withFlow bool) *rapid.Generator[netcore.Sockaddr] {
	return rapid.Custom(func(t *rapid.T) netcore.Sockaddr {
		port := rapid.Uint16().Draw(t, "port")
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0:
			return netcore.SockaddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "ip4")), port)
		case 1:
			ip := [16]byte{10: 0xff, 11: 0xff}
			copy(ip[12:], rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "mapped"))
			return netcore.SockaddrFrom16(ip, port, 0)
		}
		ip := [16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "ip6"))
		var scope uint32
		if rapid.Bool().Draw(t, "scoped") {
			ip[0], ip[1] = 0xfe, 0x80
			scope = rapid.Uint32().Draw(t, "scope")
		}
		sa := netcore.SockaddrFrom16(ip, port, scope)
		if withFlow {
			sa = sa.WithFlowInfo(rapid.Uint32().Draw(t, "flow"))
		}
		return sa
	})
}

func TestSockaddrRoundTrips(t *testing.T) {
	t.Run("text", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			sa := genSockaddr(false).Draw(t, "sa")
			got, err := netcore.ParseSockaddr(sa.String())
			if err != nil || got != sa {
				t.Fatalf("ParseSockaddr(%q) = %v, %v; want %v", sa.String(), got, err, sa)
			}
			text, _ := sa.MarshalText()
			var back netcore.Sockaddr
			if err := back.UnmarshalText(text); err != nil || back != sa {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", text, back, err, sa)
			}
		})
	})
	t.Run("binary", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			sa := genSockaddr(true).Draw(t, "sa")
			b, err := sa.MarshalBinary()
			if err != nil {
				t.Fatalf("%v.MarshalBinary() error: %v", sa, err)
			}
			want := netcore.SizeofSockaddrInet4
			if sa.Is6() {
				want = netcore.SizeofSockaddrInet6
			}
			if len(b) != want {
				t.Fatalf("%v.MarshalBinary() has %d bytes, want %d", sa, len(b), want)
			}
			var back netcore.Sockaddr
			if err := back.UnmarshalBinary(b); err != nil || back != sa {
				t.Fatalf("UnmarshalBinary(%x) = %v, %v; want %v", b, back, err, sa)
			}
		})
	})
	t.Run("netip", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			sa := genSockaddr(false).Draw(t, "sa")
			ap := sa.AddrPort()
			if ap.Port() != sa.Port() || ap.Addr().Is4() != sa.Is4() {
				t.Fatalf("%v.AddrPort() = %v: family or port differ", sa, ap)
			}
			got, err := netcore.SockaddrFromAddrPort(ap)
			if err != nil || got != sa {
				t.Fatalf("SockaddrFromAddrPort(%v) = %v, %v; want %v", ap, got, err, sa)
			}
			// The text forms agree with netip's.
			if sa.String() != ap.String() {
				t.Fatalf("%v.String() = %q, netip says %q", sa, sa.String(), ap.String())
			}
		})
	})
	t.Run("unix", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			sa := genSockaddr(false).Draw(t, "sa")
			u := sa.Unix()
			got, err := netcore.SockaddrFromUnix(u)
			if err != nil || got != sa {
				t.Fatalf("SockaddrFromUnix(%#v) = %v, %v; want %v", u, got, err, sa)
			}
		})
	})
	t.Run("TCPAddr", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			sa := genSockaddr(false).Draw(t, "sa")
			a := sa.TCPAddr()
			got, err := netcore.SockaddrFromTCPAddr(a)
			// Go's net treats an unscoped IPv4-mapped IP as IPv4.
			want := sa
			if sa.ScopeID() == 0 {
				want = sa.Unmap()
			}
			if err != nil || got != want {
				t.Fatalf("SockaddrFromTCPAddr(%v) = %v, %v; want %v", a, got, err, want)
			}
			if a.String() != want.String() && a.String() != sa.String() {
				t.Fatalf("%v.TCPAddr().String() = %q", sa, a.String())
			}
		})
	})
	t.Run("unmap", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			sa := genSockaddr(false).Draw(t, "sa")
			u := sa.Unmap()
			if u.Port() != sa.Port() {
				t.Fatalf("%v.Unmap() = %v changed the port", sa, u)
			}
			wantIP := sa.Addr().WithZone("").Unmap()
			if sa.ScopeID() == 0 && u.Addr() != wantIP {
				t.Fatalf("%v.Unmap().Addr() = %v, netip says %v", sa, u.Addr(), wantIP)
			}
			if u.Unmap() != u {
				t.Fatalf("Unmap is not idempotent on %v", sa)
			}
		})
	})
}

func TestSockaddrAccessors(t *testing.T) {
	v4 := netcore.MustParseSockaddr("192.0.2.1:80")
	if !v4.IsValid() || !v4.Is4() || v4.Is6() || v4.Family() != unix.AF_INET || v4.Port() != 80 || v4.As4() != [4]byte{192, 0, 2, 1} {
		t.Errorf("192.0.2.1:80: IsValid %v Is4 %v Is6 %v Family %d Port %d As4 %v", v4.IsValid(), v4.Is4(), v4.Is6(), v4.Family(), v4.Port(), v4.As4())
	}
	if got, want := v4.As16(), netip.MustParseAddr("::ffff:192.0.2.1").As16(); got != want {
		t.Errorf("192.0.2.1:80.As16() = %v, want %v", got, want)
	}
	v6 := netcore.MustParseSockaddr("[fe80::1%7]:443")
	if !v6.Is6() || v6.Family() != unix.AF_INET6 || v6.ScopeID() != 7 || v6.Port() != 443 || v6.Addr() != netip.MustParseAddr("fe80::1%7") {
		t.Errorf("[fe80::1%%7]:443: Is6 %v Family %d Scope %d Port %d Addr %v", v6.Is6(), v6.Family(), v6.ScopeID(), v6.Port(), v6.Addr())
	}
	mapped := netcore.MustParseSockaddr("[::ffff:1.2.3.4]:9")
	if !mapped.Is6() || mapped.Unmap() != netcore.MustParseSockaddr("1.2.3.4:9") {
		t.Errorf("[::ffff:1.2.3.4]:9: Is6 %v, Unmap %v", mapped.Is6(), mapped.Unmap())
	}
	if v4.WithPort(1).Port() != 1 || v4.WithFlowInfo(5) != v4 || v6.WithFlowInfo(5).FlowInfo() != 5 {
		t.Error("WithPort/WithFlowInfo changed what they should not, or not what they should")
	}

	var zero netcore.Sockaddr
	if zero.IsValid() || zero.Is4() || zero.Is6() || zero.Family() != unix.AF_UNSPEC || zero.String() != "invalid Sockaddr" ||
		zero.AddrPort().IsValid() || zero.TCPAddr() != nil || zero.Unix() != nil || zero.WithPort(1).IsValid() {
		t.Errorf("zero Sockaddr is not 'no address' everywhere: %#v", zero)
	}
	if text, _ := zero.MarshalText(); len(text) != 0 {
		t.Errorf("zero.MarshalText() = %q, want empty", text)
	}
	if b, _ := zero.MarshalBinary(); len(b) != 0 {
		t.Errorf("zero.MarshalBinary() = %x, want empty", b)
	}
	var back netcore.Sockaddr = v4
	if err := back.UnmarshalText(nil); err != nil || back.IsValid() {
		t.Errorf("UnmarshalText(nil) = %v, %v; want the zero Sockaddr", back, err)
	}
	back = v4
	if err := back.UnmarshalBinary(nil); err != nil || back.IsValid() {
		t.Errorf("UnmarshalBinary(nil) = %v, %v; want the zero Sockaddr", back, err)
	}
}

func TestParseSockaddrZones(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface named lo: %v", err)
	}
	sa, err := netcore.ParseSockaddr("[fe80::1%lo]:80")
	if err != nil || sa.ScopeID() != uint32(lo.Index) {
		t.Fatalf(`ParseSockaddr("[fe80::1%%lo]:80") = %v, %v; want scope id %d`, sa, err, lo.Index)
	}
	if want := "[fe80::1%" + strconv.Itoa(lo.Index) + "]:80"; sa.String() != want {
		t.Errorf("String() = %q, want %q", sa.String(), want)
	}
	ap := netip.MustParseAddrPort("[fe80::1%lo]:80")
	if got, err := netcore.SockaddrFromAddrPort(ap); err != nil || got != sa {
		t.Errorf("SockaddrFromAddrPort(%v) = %v, %v; want %v", ap, got, err, sa)
	}
	ta := &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "lo"}
	if got, err := netcore.SockaddrFromTCPAddr(ta); err != nil || got != sa {
		t.Errorf("SockaddrFromTCPAddr(%v) = %v, %v; want %v", ta, got, err, sa)
	}
}

func TestSockaddrFromTCPAddr(t *testing.T) {
	tests := []struct {
		name string
		in   *net.TCPAddr
		want string
	}{
		{"ParseIP v4 is 16 bytes", &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 80}, "10.0.0.1:80"},
		{"4-byte v4", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1).To4(), Port: 80}, "10.0.0.1:80"},
		{"v6", &net.TCPAddr{IP: net.IPv6loopback, Port: 65535}, "[::1]:65535"},
		{"zone", &net.TCPAddr{IP: net.ParseIP("fe80::2"), Port: 1, Zone: "3"}, "[fe80::2%3]:1"},
		{"nil IP is the wildcard", &net.TCPAddr{Port: 80}, "[::]:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := netcore.SockaddrFromTCPAddr(tt.in)
			if err != nil || got.String() != tt.want {
				t.Errorf("SockaddrFromTCPAddr(%v) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	texts := []string{
		"", "1.2.3.4", "1.2.3.4:", ":80", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:http",
		"256.1.1.1:80", "[1.2.3.4]:80", "::1:80", "[::1]", "[::1]:99999", "[fe80::1%]:80",
		"[fe80::1%no-such-if0]:80", "[fe80::1%4294967296]:80", "[fe80::1%12x]:80",
		"[fe80::1%averyveryverylonginterfacename]:80", "1.2.3.4%lo:80", "[::1]:80x", "localhost:80",
	}
	for _, s := range texts {
		t.Run("text/"+s, func(t *testing.T) {
			sa, err := netcore.ParseSockaddr(s)
			if err == nil {
				t.Fatalf("ParseSockaddr(%q) = %v, want an error", s, sa)
			}
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Errorf("ParseSockaddr(%q) error %q does not quote the input", s, err)
			}
			var u netcore.Sockaddr
			if s != "" && u.UnmarshalText([]byte(s)) == nil {
				t.Errorf("UnmarshalText(%q) accepted it", s)
			}
		})
	}

	v4 := "0200" + "0050" + "7f000001" + "0000000000000000"
	v6 := "0a00" + "0050" + "00000000" + "00000000000000000000000000000001" + "00000000"
	if netcore.Htons(1) == 1 { // big-endian machine: family in host order
		v4, v6 = "0002"+v4[4:], "000a"+v6[4:]
	}
	blobs := []struct{ name, hex string }{
		{"one byte", "02"},
		{"v4 short", v4[:30]},
		{"v4 long", v4 + "00"},
		{"v4 padding", v4[:30] + "01"},
		{"v6 short", v6[:54]},
		{"v6 long", v6 + "00"},
		{"v4 family v6 length", v4[:4] + v6[4:]},
		{"v6 family v4 length", v6[:4] + v4[4:]},
		{"AF_UNIX path without its NUL", "01002f78"},
		{"AF_UNIX path with bytes after its NUL", "01002f780000"},
		{"AF_UNIX path starting with @", "0100407800"},
		{"AF_UNIX longer than sockaddr_un", "0100" + strings.Repeat("61", 108) + "00"},
		{"AF_NETLINK", "1000" + v4[4:]},
		{"AF_UNSPEC", "0000" + v6[4:]},
	}
	for _, tt := range blobs {
		t.Run("binary/"+tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			before := netcore.MustParseSockaddr("1.1.1.1:1")
			sa := before
			err = sa.UnmarshalBinary(b)
			if err == nil {
				t.Fatalf("UnmarshalBinary(%x) = %v, want an error", b, sa)
			}
			if !strings.Contains(err.Error(), tt.hex) {
				t.Errorf("UnmarshalBinary(%x) error %q does not show the bytes", b, err)
			}
			if sa != before {
				t.Errorf("UnmarshalBinary(%x) changed the value to %v on error", b, sa)
			}
		})
	}
	// The well-formed versions of those blobs do decode.
	for _, h := range []string{v4, v6} {
		b, _ := hex.DecodeString(h)
		var sa netcore.Sockaddr
		if err := sa.UnmarshalBinary(b); err != nil {
			t.Errorf("UnmarshalBinary(%s) = %v", h, err)
		}
	}

	for _, u := range []unix.Sockaddr{nil, (*unix.SockaddrInet4)(nil), &unix.SockaddrInet4{Port: 70000}, &unix.SockaddrInet6{Port: -1},
		(*unix.SockaddrUnix)(nil), &unix.SockaddrUnix{Name: "/" + strings.Repeat("x", 107)}, &unix.SockaddrLinklayer{}} {
		if sa, err := netcore.SockaddrFromUnix(u); err == nil {
			t.Errorf("SockaddrFromUnix(%#v) = %v, want an error", u, sa)
		}
	}
	for _, tt := range []struct {
		a    *net.TCPAddr
		want string // in the message
	}{
		{nil, "nil *net.TCPAddr"},
		{&net.TCPAddr{IP: net.IP{1, 2, 3}, Port: 1}, "IP of 3 bytes (01 02 03), want 4 or 16"},
		{&net.TCPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 65536}, "port 65536"},
		{&net.TCPAddr{IP: net.IPv6loopback, Zone: "no-such-if0"}, `"no-such-if0"`},
		{&net.TCPAddr{IP: net.IPv4(1, 2, 3, 4).To4(), Zone: "lo"}, "an IPv4 address takes no zone"},
		{&net.TCPAddr{Zone: "lo"}, "a zone but no IP"},
	} {
		sa, err := netcore.SockaddrFromTCPAddr(tt.a)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SockaddrFromTCPAddr(%v) = %v, %v; want an error saying %q", tt.a, sa, err, tt.want)
		}
	}
	if sa, err := netcore.SockaddrFromAddrPort(netip.AddrPort{}); err == nil {
		t.Errorf("SockaddrFromAddrPort(zero) = %v, want an error", sa)
	}
}

var (
	sinkSA  netcore.Sockaddr
	sinkAP  netip.AddrPort
	sinkBuf []byte
)

func TestSockaddrHotConversionsDoNotAllocate(t *testing.T) {
	sa4 := netcore.MustParseSockaddr("127.0.0.1:8080")
	sa6 := netcore.MustParseSockaddr("[2001:db8::1]:443")
	u4, u6 := sa4.Unix(), sa6.Unix()
	ap := sa6.AddrPort()
	buf := make([]byte, 0, 128)
	cases := map[string]func(){
		"AddrPort":             func() { sinkAP = sa6.AddrPort() },
		"SockaddrFromAddrPort": func() { sinkSA, _ = netcore.SockaddrFromAddrPort(ap) },
		"SockaddrFromUnix":     func() { sinkSA, _ = netcore.SockaddrFromUnix(u4); sinkSA, _ = netcore.SockaddrFromUnix(u6) },
		"AppendText":           func() { sinkBuf, _ = sa6.AppendText(buf[:0]); sinkBuf, _ = sa4.AppendText(buf[:0]) },
		"AppendBinary":         func() { sinkBuf, _ = sa6.AppendBinary(buf[:0]); sinkBuf, _ = sa4.AppendBinary(buf[:0]) },
		"UnmarshalBinary": func() {
			b, _ := sa6.AppendBinary(buf[:0])
			_ = sinkSA.UnmarshalBinary(b)
		},
		"ParseSockaddr": func() { sinkSA, _ = netcore.ParseSockaddr("[2001:db8::1]:443") },
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times, want 0", name, n)
		}
	}
}

func ExampleParseSockaddr() {
	sa, err := netcore.ParseSockaddr("[2001:db8::1]:443")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sa.Is6(), sa.Port(), sa.Addr())
	b, _ := sa.MarshalBinary() // struct sockaddr_in6
	fmt.Printf("port bytes % x, address bytes % x\n", b[2:4], b[8:24])

	_, err = netcore.ParseSockaddr("1.2.3.4:99999")
	fmt.Println(err != nil)
	// Output:
	// true 443 2001:db8::1
	// port bytes 01 bb, address bytes 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
	// true
}

func ExampleSockaddr_Unmap() {
	peer := netcore.MustParseSockaddr("[::ffff:192.0.2.7]:5000") // as a dual-stack socket sees it
	fmt.Println(peer, "->", peer.Unmap())
	// Output: [::ffff:192.0.2.7]:5000 -> 192.0.2.7:5000
}
