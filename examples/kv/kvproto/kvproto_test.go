package kvproto_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netcore-dev/netcore/examples/kv/kvproto"
)

// encode is the test's own encoder of a request payload, written with
// binary.Write on a bytes.Buffer rather than with the package's code.
func encode(args ...string) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(len(args)))
	for _, a := range args {
		binary.Write(&b, binary.LittleEndian, uint32(len(a)))
		b.WriteString(a)
	}
	return b.Bytes()
}

// decode is the test's own decoder of a request payload, reading through
// a bytes.Reader with binary.Read: ok is false for any payload that is not
// exactly a count (at most MaxArgs) and that many length-prefixed strings.
func decode(payload []byte) (args []string, ok bool) {
	r := bytes.NewReader(payload)
	var n uint32
	if binary.Read(r, binary.LittleEndian, &n) != nil || n > kvproto.MaxArgs {
		return nil, false
	}
	args = []string{} // a valid request of 0 strings is not "no result"
	for range n {
		var l uint32
		if binary.Read(r, binary.LittleEndian, &l) != nil || int64(l) > int64(r.Len()) {
			return nil, false
		}
		s := make([]byte, l)
		io.ReadFull(r, s)
		args = append(args, string(s))
	}
	return args, r.Len() == 0
}

// u32 is x's 4 little-endian bytes, as a string to build payloads with.
func u32(x uint32) string { return string(binary.LittleEndian.AppendUint32(nil, x)) }

func strs(b [][]byte) []string {
	s := []string{}
	for _, a := range b {
		s = append(s, string(a))
	}
	return s
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    []string
		wantErr string // a substring of the error; "" for success
	}{
		{"get", string(encode("get", "k")), []string{"get", "k"}, ""},
		{"set", string(encode("set", "key", "value")), []string{"set", "key", "value"}, ""},
		{"no strings", u32(0), []string{}, ""},
		{"empty strings", string(encode("", "", "")), []string{"", "", ""}, ""},
		{"binary", string(encode("set", "\x00\xff", "\r\n\x00")), []string{"set", "\x00\xff", "\r\n\x00"}, ""},
		{"empty payload", "", nil, "a 0-byte payload, too short for the 4-byte string count"},
		{"3 bytes", "\x01\x00\x00", nil, "a 3-byte payload, too short"},
		{"over MaxArgs", u32(kvproto.MaxArgs + 1), nil, "200001 strings, over the limit of 200000"},
		{"count 2^32-1", u32(1<<32 - 1), nil, "4294967295 strings, over the limit"},
		{"count beyond payload", u32(3) + u32(0) + u32(0), nil, "3 strings declared, but the 8 bytes after the count hold at most 2"},
		{"length beyond payload", u32(2) + u32(3) + "get" + u32(100) + "k", nil, "string 2 of 2 claims 100 bytes, but 1 remain"},
		{"huge length", u32(1) + u32(1<<32-1) + "abc", nil, "string 1 of 1 claims 4294967295 bytes, but 3 remain"},
		{"length header cut", u32(2) + u32(5) + "hello" + "\x01\x00", nil, "string 2 of 2: 2 bytes left, too few for its 4-byte length"},
		{"trailing bytes", string(encode("get", "k")) + "xyz", nil, "3 bytes after the last of 2 strings"},
		{"trailing after none", u32(0) + "z", nil, "1 bytes after the last of 0 strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := [][]byte{[]byte("kept")}
			got, err := kvproto.ParseRequest(prefix, []byte(tt.payload))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, kvproto.ErrBadRequest) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRequest(%q) error = %v, want ErrBadRequest saying %q", tt.payload, err, tt.wantErr)
				}
				if len(got) != 1 || string(got[0]) != "kept" {
					t.Errorf("ParseRequest(%q) failing returned dst %q, want it as given", tt.payload, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest(%q) = %v", tt.payload, err)
			}
			if diff := cmp.Diff(append([]string{"kept"}, tt.want...), strs(got)); diff != "" {
				t.Errorf("ParseRequest(%q) (-want +got):\n%s", tt.payload, diff)
			}
		})
	}
}

// TestParseRequestAliases: the strings point into the payload, and
// appending to one does not overwrite the next.
func TestParseRequestAliases(t *testing.T) {
	payload := encode("set", "k", "v")
	args, err := kvproto.ParseRequest(nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	payload[len(payload)-1] = 'w'
	if string(args[2]) != "w" {
		t.Errorf("after changing the payload the value is %q, want %q (an alias)", args[2], "w")
	}
	_ = append(args[1], 'X')
	if string(args[2]) != "w" {
		t.Errorf("appending to the key changed the value to %q", args[2])
	}
}

func TestAppendRequest(t *testing.T) {
	for _, args := range [][]string{{}, {"get", "k"}, {"set", "k", strings.Repeat("v", 300)}, {"", "\x00"}} {
		t.Run(fmt.Sprint(len(args), "-strings"), func(t *testing.T) {
			var bs [][]byte
			for _, a := range args {
				bs = append(bs, []byte(a))
			}
			got := kvproto.AppendRequest([]byte("pre"), bs...)
			if want := "pre" + string(encode(args...)); string(got) != want {
				t.Errorf("AppendRequest(%q) = %q, want %q", args, got, want)
			}
			if n := kvproto.RequestSize(bs...); n != len(got)-3 {
				t.Errorf("RequestSize(%q) = %d, want %d", args, n, len(got)-3)
			}
		})
	}
}

func TestReply(t *testing.T) {
	tests := []struct {
		name   string
		st     kvproto.Status
		data   string
		str    string
		encode string
	}{
		{"ok empty", kvproto.OK, "", "OK", "\x00\x00\x00\x00"},
		{"ok value", kvproto.OK, "value", "OK", "\x00\x00\x00\x00value"},
		{"err", kvproto.ERR, "bad", "ERR", "\x01\x00\x00\x00bad"},
		{"nx", kvproto.NX, "", "NX", "\x02\x00\x00\x00"},
		{"other", 0x01020304, "?", "Status(16909060)", "\x04\x03\x02\x01?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kvproto.AppendReply(nil, tt.st, []byte(tt.data))
			if string(got) != tt.encode {
				t.Errorf("AppendReply(%v, %q) = %q, want %q", tt.st, tt.data, got, tt.encode)
			}
			st, data, err := kvproto.ParseReply(got)
			if err != nil || st != tt.st || string(data) != tt.data {
				t.Errorf("ParseReply(%q) = %v, %q, %v; want %v, %q", got, st, data, err, tt.st, tt.data)
			}
			if s := tt.st.String(); s != tt.str {
				t.Errorf("Status(%d).String() = %q, want %q", uint32(tt.st), s, tt.str)
			}
		})
	}
	for _, short := range []string{"", "\x00", "\x00\x00\x00"} {
		if _, _, err := kvproto.ParseReply([]byte(short)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("a %d-byte reply", len(short))) {
			t.Errorf("ParseReply(%q) error = %v, want one naming the %d-byte reply", short, err, len(short))
		}
	}
}

func TestNewCodec(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		wantErr string
	}{
		{"default", kvproto.DefaultMaxMsg, ""},
		{"the book's chapter 4", 4096, ""},
		{"32-bit limit", 1<<32 - 1, ""},
		{"too small", 4095, "maximum message size 4095: want at least 4096"},
		{"negative", -1, "maximum message size -1"},
		{"over 32 bits", 1 << 32, "frame maximum payload 4294967296"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kvproto.NewCodec(tt.max)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewCodec(%d) error = %v, want %q", tt.max, err, tt.wantErr)
				}
				return
			}
			if err != nil || c.HeaderSize() != 4 || c.Order() != binary.LittleEndian || c.MaxPayload() != tt.max {
				t.Fatalf("NewCodec(%d) = header %d, order %v, max %d, %v", tt.max, c.HeaderSize(), c.Order(), c.MaxPayload(), err)
			}
		})
	}
}

// TestZeroAllocs: parsing a request into a reused slice and appending a
// reply to a reused buffer allocate nothing.
func TestZeroAllocs(t *testing.T) {
	req := encode("set", "key", "value")
	args := make([][]byte, 0, 4)
	out := make([]byte, 0, 64)
	value := []byte("value")
	n := testing.AllocsPerRun(1000, func() {
		var err error
		args, err = kvproto.ParseRequest(args[:0], req)
		if err != nil || len(args) != 3 {
			t.Fatalf("ParseRequest: %d strings, %v", len(args), err)
		}
		out = kvproto.AppendReply(out[:0], kvproto.OK, value)
		if _, data, err := kvproto.ParseReply(out); err != nil || len(data) != 5 {
			t.Fatalf("ParseReply: %q, %v", data, err)
		}
	})
	if n != 0 {
		t.Errorf("ParseRequest+AppendReply+ParseReply allocate %v times per request, want 0", n)
	}
}

// FuzzParseRequest checks ParseRequest against the test's own decoder and
// encoder: for arbitrary bytes it never panics, accepts exactly what
// decode accepts with the same strings, and what it accepts encodes back
// to the same bytes (the format has one encoding per request); and for
// strings the fuzzer picks, ParseRequest(encode(x)) == x.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(encode("set", "k", "v")), "get", "key")
	f.Add([]byte(encode()), "", "")
	f.Add([]byte(u32(2)+u32(3)+"get"+u32(9)+"k"), "del", "\x00")
	f.Add([]byte(u32(kvproto.MaxArgs+1)), "x", "y")
	f.Add([]byte(string(encode("get", "k"))+"tail"), "set", "")
	f.Fuzz(func(t *testing.T, data []byte, a, b string) {
		args, err := kvproto.ParseRequest(nil, data)
		want, ok := decode(data)
		if (err == nil) != ok {
			t.Fatalf("ParseRequest(%q) error = %v; the test's decoder says valid = %v", data, err, ok)
		}
		if err != nil {
			if !errors.Is(err, kvproto.ErrBadRequest) || len(args) != 0 {
				t.Fatalf("ParseRequest(%q) = %q, %v; want no strings and ErrBadRequest", data, args, err)
			}
		} else {
			if diff := cmp.Diff(want, strs(args)); diff != "" {
				t.Fatalf("ParseRequest(%q) (-decode +ParseRequest):\n%s", data, diff)
			}
			if re := encode(strs(args)...); !bytes.Equal(re, data) {
				t.Fatalf("ParseRequest(%q) = %q, which encodes to %q", data, args, re)
			}
		}

		for _, x := range [][]string{{a}, {a, b}, {b, a, b}, {}} {
			got, err := kvproto.ParseRequest(nil, encode(x...))
			if err != nil {
				t.Fatalf("ParseRequest(encode(%q)): %v", x, err)
			}
			if diff := cmp.Diff(x, strs(got)); diff != "" {
				t.Fatalf("ParseRequest(encode(%q)) (-want +got):\n%s", x, diff)
			}
		}
	})
}
