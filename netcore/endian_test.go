package netcore_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"unsafe"

	"github.com/netcore-dev/netcore/netcore"
	"pgregory.net/rapid"
)

// inMemory returns the bytes of v as they lie in memory: the definition of
// "network order" that Htons and friends promise, read without
// encoding/binary's NativeEndian.
func inMemory[T uint16 | uint32 | uint64](v T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v))
}

func TestByteOrderProperties(t *testing.T) {
	t.Run("16", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			x := rapid.Uint16().Draw(t, "x")
			h := netcore.Htons(x)
			if got := netcore.Ntohs(h); got != x {
				t.Fatalf("Ntohs(Htons(%#x)) = %#x", x, got)
			}
			if netcore.Ntohs(x) != h {
				t.Fatalf("Ntohs(%#x) = %#x, Htons = %#x: not the same function", x, netcore.Ntohs(x), h)
			}
			want := binary.BigEndian.AppendUint16(nil, x)
			if got := inMemory(h); string(got) != string(want) {
				t.Fatalf("Htons(%#x) lies in memory as % x, want % x", x, got, want)
			}
			if nat := binary.NativeEndian.Uint16(want); nat != h {
				t.Fatalf("Htons(%#x) = %#x, NativeEndian of big-endian bytes = %#x", x, h, nat)
			}
		})
	})
	t.Run("32", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			x := rapid.Uint32().Draw(t, "x")
			h := netcore.Htonl(x)
			if got := netcore.Ntohl(h); got != x {
				t.Fatalf("Ntohl(Htonl(%#x)) = %#x", x, got)
			}
			if netcore.Ntohl(x) != h {
				t.Fatalf("Ntohl(%#x) = %#x, Htonl = %#x: not the same function", x, netcore.Ntohl(x), h)
			}
			want := binary.BigEndian.AppendUint32(nil, x)
			if got := inMemory(h); string(got) != string(want) {
				t.Fatalf("Htonl(%#x) lies in memory as % x, want % x", x, got, want)
			}
			if nat := binary.NativeEndian.Uint32(want); nat != h {
				t.Fatalf("Htonl(%#x) = %#x, NativeEndian of big-endian bytes = %#x", x, h, nat)
			}
		})
	})
	t.Run("64", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			x := rapid.Uint64().Draw(t, "x")
			h := netcore.Htonll(x)
			if got := netcore.Ntohll(h); got != x {
				t.Fatalf("Ntohll(Htonll(%#x)) = %#x", x, got)
			}
			if netcore.Ntohll(x) != h {
				t.Fatalf("Ntohll(%#x) = %#x, Htonll = %#x: not the same function", x, netcore.Ntohll(x), h)
			}
			want := binary.BigEndian.AppendUint64(nil, x)
			if got := inMemory(h); string(got) != string(want) {
				t.Fatalf("Htonll(%#x) lies in memory as % x, want % x", x, got, want)
			}
			if nat := binary.NativeEndian.Uint64(want); nat != h {
				t.Fatalf("Htonll(%#x) = %#x, NativeEndian of big-endian bytes = %#x", x, h, nat)
			}
		})
	})
}

var sink64 uint64

func TestByteOrderAllocs(t *testing.T) {
	x := uint64(0x0102030405060708)
	n := testing.AllocsPerRun(100, func() {
		sink64 += uint64(netcore.Htons(uint16(x))) + uint64(netcore.Ntohs(uint16(x)))
		sink64 += uint64(netcore.Htonl(uint32(x))) + uint64(netcore.Ntohl(uint32(x)))
		sink64 += netcore.Htonll(x) + netcore.Ntohll(x)
		x++
	})
	if n != 0 {
		t.Errorf("byte-order conversions allocate %v times per run, want 0", n)
	}
}

// The examples print the bytes in memory, which are the same on every
// machine: that is the point of network byte order.

func ExampleHtons() {
	port := netcore.Htons(8080) // 0x1f90
	fmt.Printf("% x\n", inMemory(port))
	fmt.Println(netcore.Ntohs(port))
	// Output:
	// 1f 90
	// 8080
}

func ExampleHtonl() {
	addr := netcore.Htonl(0x7f000001) // 127.0.0.1
	fmt.Printf("% x\n", inMemory(addr))
	fmt.Printf("%#x\n", netcore.Ntohl(addr))
	// Output:
	// 7f 00 00 01
	// 0x7f000001
}

func ExampleHtonll() {
	v := netcore.Htonll(0x0102030405060708)
	fmt.Printf("% x\n", inMemory(v))
	fmt.Printf("%#x\n", netcore.Ntohll(v))
	// Output:
	// 01 02 03 04 05 06 07 08
	// 0x102030405060708
}
