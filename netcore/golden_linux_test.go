package netcore_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/netcore-dev/netcore/netcore"
)

const vectorsFile = "testdata/vectors.txt"

// TestGoldenVectors checks netcore against the bytes glibc wrote: the
// struct sockaddr_in/in6 of each address, and what htons and friends leave
// in memory.
func TestGoldenVectors(t *testing.T) {
	t.Parallel()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the checked-in vectors come from a little-endian machine; TestGoldenVectorsRegenerate checks this one")
	}
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, data)
}

func checkVectors(t *testing.T, data []byte) {
	t.Helper()
	kinds := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		f := strings.Fields(text)
		kinds[f[0]]++
		t.Run(strconv.Itoa(line)+"/"+f[0]+"/"+f[1], func(t *testing.T) {
			switch f[0] {
			case "sockaddr":
				if len(f) != 4 {
					t.Fatalf("line %d: %q: want 4 fields", line, text)
				}
				checkSockaddrVector(t, f[1], f[2], f[3])
			case "sockaddr_un":
				if len(f) != 3 {
					t.Fatalf("line %d: %q: want 3 fields", line, text)
				}
				checkUnixVector(t, f[1], f[2])
			case "htons", "ntohs", "htonl", "ntohl", "htonll":
				if len(f) != 3 {
					t.Fatalf("line %d: %q: want 3 fields", line, text)
				}
				checkByteOrderVector(t, f[0], f[1], f[2])
			default:
				t.Fatalf("line %d: unknown kind %q", line, f[0])
			}
		})
	}
	for _, k := range []string{"sockaddr", "sockaddr_un", "htons", "ntohs", "htonl", "ntohl", "htonll"} {
		if kinds[k] == 0 {
			t.Errorf("%s has no %s vectors", vectorsFile, k)
		}
	}
}

func checkSockaddrVector(t *testing.T, text, flowText, hexBytes string) {
	want, err := hex.DecodeString(hexBytes)
	if err != nil {
		t.Fatal(err)
	}
	flow, err := strconv.ParseUint(flowText, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := netcore.ParseSockaddr(text)
	if err != nil {
		t.Fatalf("ParseSockaddr(%q): %v", text, err)
	}
	sa = sa.WithFlowInfo(uint32(flow))
	if got, _ := sa.MarshalBinary(); !bytes.Equal(got, want) {
		t.Errorf("ParseSockaddr(%q).MarshalBinary() = %x, want %x", text, got, want)
	}
	var back netcore.Sockaddr
	if err := back.UnmarshalBinary(want); err != nil || back != sa {
		t.Errorf("UnmarshalBinary(%x) = %v, %v; want %v", want, back, err, sa)
	}
	if back.String() != text {
		t.Errorf("UnmarshalBinary(%x).String() = %q, want %q (glibc's inet_ntop)", want, back.String(), text)
	}
}

// checkUnixVector checks a struct sockaddr_un as C lays it out: name is
// the address as Go's net spells it, "-" for an unnamed socket.
func checkUnixVector(t *testing.T, name, hexBytes string) {
	want, err := hex.DecodeString(hexBytes)
	if err != nil {
		t.Fatal(err)
	}
	if name == "-" {
		name = ""
	}
	sa, err := netcore.SockaddrFromUnixPath(name)
	if err != nil {
		t.Fatalf("SockaddrFromUnixPath(%q): %v", name, err)
	}
	if got, _ := sa.MarshalBinary(); !bytes.Equal(got, want) {
		t.Errorf("SockaddrFromUnixPath(%q).MarshalBinary() = %x, want %x", name, got, want)
	}
	var back netcore.Sockaddr
	if err := back.UnmarshalBinary(want); err != nil || back != sa {
		t.Errorf("UnmarshalBinary(%x) = %v, %v; want %v", want, back, err, sa)
	}
	if back.Path() != name {
		t.Errorf("UnmarshalBinary(%x).Path() = %q, want %q", want, back.Path(), name)
	}
}

func checkByteOrderVector(t *testing.T, fn, in, hexBytes string) {
	want, err := hex.DecodeString(hexBytes)
	if err != nil {
		t.Fatal(err)
	}
	x, err := strconv.ParseUint(in, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	switch fn {
	case "htons", "ntohs":
		v := netcore.Htons(uint16(x))
		if fn == "ntohs" {
			v = netcore.Ntohs(uint16(x))
		}
		got = append(got, unsafe.Slice((*byte)(unsafe.Pointer(&v)), 2)...)
	case "htonl", "ntohl":
		v := netcore.Htonl(uint32(x))
		if fn == "ntohl" {
			v = netcore.Ntohl(uint32(x))
		}
		got = append(got, unsafe.Slice((*byte)(unsafe.Pointer(&v)), 4)...)
	case "htonll":
		v := netcore.Htonll(x)
		got = append(got, unsafe.Slice((*byte)(unsafe.Pointer(&v)), 8)...)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s(%#x) in memory = %x, glibc's = %x", fn, x, got, want)
	}
}

// TestGoldenVectorsRegenerate rebuilds the vectors with gcc and glibc
// and fails on any difference from the checked-in file.
func TestGoldenVectorsRegenerate(t *testing.T) {
	t.Parallel()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found (%v): only the checked-in vectors are checked", err)
	}
	bin := filepath.Join(t.TempDir(), "gen_vectors")
	if out, err := exec.Command(gcc, "-O2", "-Wall", "-o", bin, "testdata/gen_vectors.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	got, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("gen_vectors: %v", err)
	}
	checkVectors(t, got)
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return // the checked-in file is little-endian
	}
	want, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")); diff != "" {
		t.Errorf("%s differs from what glibc writes now (-want +got):\n%s", vectorsFile, diff)
	}
}
