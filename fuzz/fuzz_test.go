//go:build linux

package fuzz

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// FuzzByteOrder checks every width against encoding/binary's big-endian
// bytes as they lie in memory.
func FuzzByteOrder(f *testing.F) {
	f.Add(uint64(0))
	f.Add(uint64(0x0102030405060708))
	f.Add(^uint64(0))
	f.Fuzz(func(t *testing.T, x uint64) {
		h16, h32, h64 := netcore.Htons(uint16(x)), netcore.Htonl(uint32(x)), netcore.Htonll(x)
		if got, want := unsafe.Slice((*byte)(unsafe.Pointer(&h16)), 2), binary.BigEndian.AppendUint16(nil, uint16(x)); string(got) != string(want) {
			t.Fatalf("Htons(%#x) in memory = % x, want % x", uint16(x), got, want)
		}
		if got, want := unsafe.Slice((*byte)(unsafe.Pointer(&h32)), 4), binary.BigEndian.AppendUint32(nil, uint32(x)); string(got) != string(want) {
			t.Fatalf("Htonl(%#x) in memory = % x, want % x", uint32(x), got, want)
		}
		if got, want := unsafe.Slice((*byte)(unsafe.Pointer(&h64)), 8), binary.BigEndian.AppendUint64(nil, x); string(got) != string(want) {
			t.Fatalf("Htonll(%#x) in memory = % x, want % x", x, got, want)
		}
		if netcore.Ntohs(h16) != uint16(x) || netcore.Ntohl(h32) != uint32(x) || netcore.Ntohll(h64) != x {
			t.Fatalf("ntoh does not undo hton for %#x", x)
		}
	})
}

// FuzzUnmarshalBinary feeds arbitrary bytes to UnmarshalBinary: it must
// never panic, a success must re-encode to the same bytes, and the decoded
// fields must be what encoding/binary and netip read from those bytes.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:443", "[fe80::1%2]:1", "[::ffff:1.2.3.4]:0", "0.0.0.0:0"} {
		b, _ := netcore.MustParseSockaddr(s).MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, data []byte) {
		var sa netcore.Sockaddr
		if err := sa.UnmarshalBinary(data); err != nil {
			if sa.IsValid() {
				t.Fatalf("UnmarshalBinary(%x) failed (%v) but set %v", data, err, sa)
			}
			return
		}
		back, err := sa.MarshalBinary()
		if err != nil || string(back) != string(data) {
			t.Fatalf("UnmarshalBinary(%x) = %v, which marshals to %x, %v", data, sa, back, err)
		}
		if len(data) == 0 {
			return
		}
		fam := binary.NativeEndian.Uint16(data)
		if fam == unix.AF_UNIX {
			checkUnixFields(t, data, sa)
			return
		}
		port := binary.BigEndian.Uint16(data[2:4])
		var ip netip.Addr
		switch fam {
		case unix.AF_INET:
			ip = netip.AddrFrom4([4]byte(data[4:8]))
		case unix.AF_INET6:
			ip = netip.AddrFrom16([16]byte(data[8:24]))
			if got := binary.NativeEndian.Uint32(data[24:28]); sa.ScopeID() != got {
				t.Fatalf("UnmarshalBinary(%x).ScopeID() = %d, want %d", data, sa.ScopeID(), got)
			}
			if got := binary.BigEndian.Uint32(data[4:8]); sa.FlowInfo() != got {
				t.Fatalf("UnmarshalBinary(%x).FlowInfo() = %d, want %d", data, sa.FlowInfo(), got)
			}
		default:
			t.Fatalf("UnmarshalBinary(%x) accepted family %d", data, fam)
		}
		if sa.Family() != int(fam) || sa.Port() != port || sa.Addr().WithZone("") != ip {
			t.Fatalf("UnmarshalBinary(%x) = %v (family %d), want %v port %d family %d", data, sa, sa.Family(), ip, port, fam)
		}
	})
}

// FuzzParseSockaddr feeds arbitrary text to ParseSockaddr: it must never
// panic, must accept what netip.ParseAddrPort accepts (zones aside) with the
// same value, and a success must format to text that parses back to it.
func FuzzParseSockaddr(f *testing.F) {
	for _, s := range []string{"1.2.3.4:80", "[::1]:80", "[fe80::1%lo]:80", "[fe80::1%2]:80", "[::ffff:1.2.3.4]:65535", "1.2.3.4:65536", "[1.2.3.4]:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAgainstNetip(t, s)
	})
}

// checkUnixFields checks a decoded struct sockaddr_un against unix(7): the
// family alone is an unnamed socket; a NUL first is an abstract name, every
// byte after it counted; otherwise the path runs to its NUL, the last
// byte.
func checkUnixFields(t *testing.T, data []byte, sa netcore.Sockaddr) {
	t.Helper()
	name := data[2:]
	var want string
	switch {
	case len(name) == 0:
	case name[0] == 0:
		want = "@" + string(name[1:])
	default:
		if bytes.IndexByte(name, 0) != len(name)-1 || name[0] == '@' {
			t.Fatalf("UnmarshalBinary(%x) accepted a path that does not end at its one NUL, or starts with @: %q", data, sa.Path())
		}
		want = string(name[:len(name)-1])
	}
	if !sa.IsUnix() || sa.Family() != unix.AF_UNIX || sa.Path() != want || len(data) > unix.SizeofSockaddrUnix {
		t.Fatalf("UnmarshalBinary(%x) = %q (unix %v, family %d), want path %q", data, sa.Path(), sa.IsUnix(), sa.Family(), want)
	}
	// x/sys reads the same name out of a struct sockaddr_un.
	if u, ok := sa.Unix().(*unix.SockaddrUnix); !ok || u.Name != want {
		t.Fatalf("UnmarshalBinary(%x).Unix() = %#v, want Name %q", data, sa.Unix(), want)
	}
}

// FuzzUnixPath feeds arbitrary names to SockaddrFromUnixPath: it must never
// panic; it accepts a name exactly when the kernel's limits allow it (a
// path of at most 107 bytes without a NUL, an abstract name of at most 107
// bytes after the "@"), quoting the name otherwise; and an accepted name
// survives the binary form and, for a path or abstract name, the text
// form.
func FuzzUnixPath(f *testing.F) {
	for _, s := range []string{"/tmp/x.sock", "@abstract", "@", "", "rel/sock", "./s", "/a\x00b", "\x00abc", "@a\x00b",
		"/" + strings.Repeat("p", 106), "/" + strings.Repeat("p", 107), "@" + strings.Repeat("a", 107), "@" + strings.Repeat("a", 108)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		checkUnixPath(t, name)
	})
}
