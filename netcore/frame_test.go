package netcore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netcore-dev/netcore/internal/frametest"
	"github.com/netcore-dev/netcore/netcore"
	"pgregory.net/rapid"
)

var frameOrders = []struct {
	name  string
	order binary.ByteOrder
}{
	{"little", binary.LittleEndian},
	{"big", binary.BigEndian},
	{"native", binary.NativeEndian},
}

// mustCodec is NewFrameCodec for codecs the test knows to be valid.
func mustCodec(t testing.TB, header int, order binary.ByteOrder, max int) netcore.FrameCodec {
	t.Helper()
	c, err := netcore.NewFrameCodec(header, order, max)
	if err != nil {
		t.Fatalf("NewFrameCodec(%d, %v, %d): %v", header, order, max, err)
	}
	return c
}

func TestNewFrameCodec(t *testing.T) {
	tests := []struct {
		name    string
		header  int
		order   binary.ByteOrder
		max     int
		wantErr string // "" for success
	}{
		{"book", 4, binary.LittleEndian, 4096, ""},
		{"1 byte, full range", 1, binary.BigEndian, 255, ""},
		{"1 byte, too large", 1, binary.BigEndian, 256, "frame maximum payload 256: want 0 to 255 for a 1-byte header"},
		{"2 bytes, full range", 2, binary.BigEndian, 65535, ""},
		{"2 bytes, too large", 2, binary.BigEndian, 65536, "frame maximum payload 65536: want 0 to 65535"},
		{"4 bytes, full range", 4, binary.BigEndian, math.MaxUint32, ""},
		{"4 bytes, too large", 4, binary.BigEndian, math.MaxUint32 + 1, "frame maximum payload 4294967296"},
		{"8 bytes, largest", 8, binary.BigEndian, math.MaxInt - 8, ""},
		{"8 bytes, too large", 8, binary.BigEndian, math.MaxInt - 7, fmt.Sprint(math.MaxInt - 7)},
		{"zero max", 4, binary.BigEndian, 0, ""},
		{"negative max", 4, binary.BigEndian, -1, "frame maximum payload -1"},
		{"header 3", 3, binary.BigEndian, 10, "frame header size 3: want 1, 2, 4 or 8"},
		{"header 0", 0, binary.BigEndian, 10, "frame header size 0"},
		{"nil order", 4, nil, 10, "byte order is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := netcore.NewFrameCodec(tt.header, tt.order, tt.max)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewFrameCodec(%d, %v, %d) = %v, want no error", tt.header, tt.order, tt.max, err)
				}
				if c.HeaderSize() != tt.header || c.MaxPayload() != tt.max || c.Order() != tt.order {
					t.Fatalf("codec reports header %d, max %d, order %v; want %d, %d, %v",
						c.HeaderSize(), c.MaxPayload(), c.Order(), tt.header, tt.max, tt.order)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewFrameCodec(%d, %v, %d) = %v, want an error containing %q", tt.header, tt.order, tt.max, err, tt.wantErr)
			}
		})
	}
}

func TestFrameDecode(t *testing.T) {
	le := mustCodec(t, 4, binary.LittleEndian, 10)
	be2 := mustCodec(t, 2, binary.BigEndian, 300)
	one := mustCodec(t, 1, binary.BigEndian, 255)
	tests := []struct {
		name        string
		codec       netcore.FrameCodec
		in          string
		wantPayload string
		wantN       int
		wantErr     string
	}{
		{"empty input", le, "", "", 4, ""},
		{"part of the header", le, "\x03\x00", "", 4, ""},
		{"header only", le, "\x03\x00\x00\x00", "", 7, ""},
		{"part of the payload", le, "\x03\x00\x00\x00ab", "", 7, ""},
		{"complete", le, "\x03\x00\x00\x00abc", "abc", 7, ""},
		{"complete, next frame follows", le, "\x03\x00\x00\x00abc\x01\x00\x00\x00z", "abc", 7, ""},
		{"empty payload", le, "\x00\x00\x00\x00rest", "", 4, ""},
		{"at the limit", le, "\x0a\x00\x00\x000123456789", "0123456789", 14, ""},
		{"over the limit", le, "\x0b\x00\x00\x00", "", 0, "frame length 11 exceeds the limit of 10 bytes"},
		{"huge length", le, "\xff\xff\xff\xff", "", 0, "frame length 4294967295 exceeds the limit of 10 bytes"},
		{"big-endian 2 bytes", be2, "\x01\x00" + strings.Repeat("x", 256), strings.Repeat("x", 256), 258, ""},
		{"big-endian 2 bytes, over", be2, "\x01\x2d", "", 0, "frame length 301 exceeds the limit of 300"},
		{"1 byte", one, "\x02hi!", "hi", 3, ""},
		{"1 byte, incomplete", one, "\x05hi", "", 6, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, n, err := tt.codec.Decode([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, netcore.ErrFrameTooLarge) {
					t.Fatalf("Decode(%q) error = %v, want one containing %q that is ErrFrameTooLarge", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || n != tt.wantN {
				t.Fatalf("Decode(%q) = (%q, %d, %v), want n = %d", tt.in, payload, n, err, tt.wantN)
			}
			if n > len(tt.in) {
				if payload != nil {
					t.Fatalf("Decode(%q): incomplete frame but payload %q", tt.in, payload)
				}
				return
			}
			if string(payload) != tt.wantPayload || payload == nil {
				t.Fatalf("Decode(%q) payload = %q, want %q (non-nil)", tt.in, payload, tt.wantPayload)
			}
			if cap(payload) != len(payload) {
				t.Fatalf("Decode(%q): payload capacity %d reaches past the frame (length %d)", tt.in, cap(payload), len(payload))
			}
		})
	}
}

func TestFrameTooLargeError(t *testing.T) {
	c := mustCodec(t, 8, binary.BigEndian, 1<<20)
	_, _, err := c.Decode(binary.BigEndian.AppendUint64(nil, math.MaxUint64))
	var tl *netcore.FrameTooLargeError
	if !errors.As(err, &tl) || tl.Length != math.MaxUint64 || tl.Max != 1<<20 {
		t.Fatalf("Decode of length 2^64-1 = %v, want a *FrameTooLargeError with Length 2^64-1 and Max 2^20", err)
	}
	if _, err := c.Append(nil, make([]byte, 1<<20+1)); !errors.As(err, &tl) || tl.Length != 1<<20+1 {
		t.Fatalf("Append of 2^20+1 bytes = %v, want a *FrameTooLargeError", err)
	}
	if _, err := c.AppendHeader([]byte("keep"), -1); err == nil {
		t.Fatalf("AppendHeader(-1) succeeded")
	}
	dst, err := c.Append([]byte("keep"), make([]byte, 1<<20+1))
	if err == nil || string(dst) != "keep" {
		t.Fatalf("failed Append returned %q, %v; want dst unchanged and an error", dst, err)
	}
	if err := c.PutHeader(make([]byte, 7), 1); err == nil || !strings.Contains(err.Error(), "7-byte buffer for a 8-byte header") {
		t.Fatalf("PutHeader into 7 bytes = %v, want an error naming both sizes", err)
	}
}

func TestFrameZeroCodec(t *testing.T) {
	var c netcore.FrameCodec
	if _, _, err := c.Decode([]byte{1, 2, 3}); !errors.Is(err, netcore.ErrZeroFrameCodec) {
		t.Errorf("zero FrameCodec Decode: %v, want ErrZeroFrameCodec", err)
	}
	if _, err := c.Append(nil, []byte("x")); !errors.Is(err, netcore.ErrZeroFrameCodec) {
		t.Errorf("zero FrameCodec Append: %v, want ErrZeroFrameCodec", err)
	}
	if err := c.PutHeader(make([]byte, 8), 1); !errors.Is(err, netcore.ErrZeroFrameCodec) {
		t.Errorf("zero FrameCodec PutHeader: %v, want ErrZeroFrameCodec", err)
	}
	if _, err := netcore.NewFrameReader(strings.NewReader("abc"), c).Next(); !errors.Is(err, netcore.ErrZeroFrameCodec) {
		t.Errorf("zero FrameCodec FrameReader.Next: %v, want ErrZeroFrameCodec", err)
	}
}

func TestFramePutHeader(t *testing.T) {
	for _, o := range frameOrders {
		for _, h := range []int{1, 2, 4, 8} {
			c := mustCodec(t, h, o.order, 200)
			want, _ := c.Append(nil, []byte("payload"))
			got := make([]byte, h, h+7)
			if err := c.PutHeader(got, 7); err != nil {
				t.Fatal(err)
			}
			got = append(got, "payload"...)
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%d: PutHeader then payload = % x, Append = % x", o.name, h, got, want)
			}
		}
	}
}

// drawCodec draws a header size, a byte order and a maximum the header can
// hold.
func drawCodec(t *rapid.T) netcore.FrameCodec {
	h := rapid.SampledFrom([]int{1, 2, 4, 8}).Draw(t, "header")
	o := rapid.SampledFrom(frameOrders).Draw(t, "order")
	hmax := map[int]int{1: 255, 2: 65535, 4: 1 << 20, 8: 1 << 20}[h]
	max := rapid.IntRange(0, hmax).Draw(t, "max")
	c, err := netcore.NewFrameCodec(h, o.order, max)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func drawPayloads(t *rapid.T, c netcore.FrameCodec) [][]byte {
	return rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, min(c.MaxPayload(), 600)), 0, 20).Draw(t, "payloads")
}

// TestFrameRoundTrip: for every header size and byte order, payloads
// appended one after another decode back to themselves, and the header is
// the length in that byte order as encoding/binary writes it.
func TestFrameRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawCodec(t)
		payloads := drawPayloads(t, c)
		var stream []byte
		for _, p := range payloads {
			start := len(stream)
			var err error
			if stream, err = c.Append(stream, p); err != nil {
				t.Fatalf("Append(%d bytes): %v", len(p), err)
			}
			hdr := stream[start : start+c.HeaderSize()]
			var l uint64
			switch c.HeaderSize() {
			case 1:
				l = uint64(hdr[0])
			case 2:
				l = uint64(c.Order().Uint16(hdr))
			case 4:
				l = uint64(c.Order().Uint32(hdr))
			case 8:
				l = c.Order().Uint64(hdr)
			}
			if l != uint64(len(p)) {
				t.Fatalf("header % x reads %d in %v, want %d", hdr, l, c.Order(), len(p))
			}
		}
		got := decodeAll(t, c, stream)
		if diff := cmp.Diff(payloads, got, cmpEmptyIsNil); diff != "" {
			t.Fatalf("decoded frames differ (-want +got):\n%s", diff)
		}
	})
}

// cmpEmptyIsNil compares frames by their bytes: an empty frame equals nil.
var cmpEmptyIsNil = cmpopts.EquateEmpty()

// decodeAll decodes a whole stream that ends on a frame boundary.
func decodeAll(t *rapid.T, c netcore.FrameCodec, stream []byte) [][]byte {
	var got [][]byte
	for len(stream) > 0 {
		p, n, err := c.Decode(stream)
		if err != nil || n > len(stream) {
			t.Fatalf("Decode at %d bytes from the end: n %d, %v", len(stream), n, err)
		}
		got = append(got, p)
		stream = stream[n:]
	}
	return got
}

// splitChunks cuts b into chunks of drawn sizes.
func splitChunks(t *rapid.T, b []byte) [][]byte {
	var chunks [][]byte
	for i := 0; len(b) > 0; i++ {
		n := rapid.IntRange(1, len(b)).Draw(t, fmt.Sprintf("chunk%d", i))
		chunks = append(chunks, b[:n])
		b = b[n:]
	}
	return chunks
}

// TestFrameChunked: a stream fed in arbitrary chunks decodes to exactly the
// frames of decoding it whole, both through Decode over an accumulating
// buffer (an event loop's input) and through a FrameReader; "need n more
// bytes" is never more than the frame really needs.
func TestFrameChunked(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawCodec(t)
		payloads := drawPayloads(t, c)
		var stream []byte
		for _, p := range payloads {
			stream, _ = c.Append(stream, p)
		}
		chunks := splitChunks(t, stream)

		var got [][]byte
		var buf []byte
		consumed := 0
		for _, ch := range chunks {
			buf = append(buf, ch...)
			for {
				p, n, err := c.Decode(buf)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if n > len(buf) {
					if len(buf) == 0 {
						break // between frames: the next header, if any, is still to come
					}
					// The rest of the stream must hold at least what was asked for.
					if rest := len(stream) - consumed; n > rest {
						t.Fatalf("Decode asks for %d bytes, only %d remain in the stream", n, rest)
					}
					break
				}
				got = append(got, bytes.Clone(p))
				buf, consumed = buf[n:], consumed+n
			}
		}
		if len(buf) != 0 {
			t.Fatalf("%d bytes left undecoded", len(buf))
		}
		if diff := cmp.Diff(payloads, got, cmpEmptyIsNil); diff != "" {
			t.Fatalf("chunked Decode differs from the payloads (-want +got):\n%s", diff)
		}

		fr := netcore.NewFrameReader(&frametest.ChunkReader{Chunks: chunks}, c)
		got = got[:0]
		for {
			p, err := fr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("FrameReader.Next after %d frames: %v", len(got), err)
			}
			got = append(got, bytes.Clone(p))
		}
		if diff := cmp.Diff(payloads, got, cmpEmptyIsNil); diff != "" {
			t.Fatalf("FrameReader differs from the payloads (-want +got):\n%s", diff)
		}
	})
}

func TestFrameReaderEnd(t *testing.T) {
	c := mustCodec(t, 4, binary.LittleEndian, 4096)
	whole, _ := c.Append(nil, []byte("hello"))
	whole, _ = c.Append(whole, []byte("world"))
	tests := []struct {
		name    string
		stream  []byte
		frames  []string
		wantErr error
	}{
		{"clean end", whole, []string{"hello", "world"}, io.EOF},
		{"nothing at all", nil, nil, io.EOF},
		{"cut in a header", whole[:11], []string{"hello"}, io.ErrUnexpectedEOF},
		{"cut after a header", whole[:13], []string{"hello"}, io.ErrUnexpectedEOF},
		{"cut in a payload", whole[:len(whole)-1], []string{"hello"}, io.ErrUnexpectedEOF},
		{"cut in the first header", whole[:1], nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		for _, r := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{
			{"whole", func(r io.Reader) io.Reader { return r }},
			{"one byte", iotest.OneByteReader},
			{"data+EOF", iotest.DataErrReader},
		} {
			t.Run(tt.name+"/"+r.name, func(t *testing.T) {
				fr := netcore.NewFrameReader(r.wrap(bytes.NewReader(tt.stream)), c)
				var got []string
				var err error
				for {
					var p []byte
					if p, err = fr.Next(); err != nil {
						break
					}
					got = append(got, string(p))
				}
				if !cmp.Equal(got, tt.frames) || err != tt.wantErr {
					t.Fatalf("frames %q, end %v; want %q, %v", got, err, tt.frames, tt.wantErr)
				}
				if _, again := fr.Next(); again != err {
					t.Fatalf("Next after %v returned %v: errors must be sticky", err, again)
				}
			})
		}
	}
}

func TestFrameReaderErrors(t *testing.T) {
	c := mustCodec(t, 4, binary.LittleEndian, 4096)
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("boom")
		fr := netcore.NewFrameReader(iotest.ErrReader(boom), c)
		if _, err := fr.Next(); err != boom {
			t.Fatalf("Next = %v, want the reader's error", err)
		}
	})
	t.Run("no progress", func(t *testing.T) {
		fr := netcore.NewFrameReader(zeroReader{}, c)
		if _, err := fr.Next(); err != io.ErrNoProgress {
			t.Fatalf("Next over a reader that always returns (0, nil) = %v, want io.ErrNoProgress", err)
		}
	})
	t.Run("too large, then sticky", func(t *testing.T) {
		stream := binary.LittleEndian.AppendUint32(nil, 4097)
		fr := netcore.NewFrameReader(bytes.NewReader(stream), c)
		_, err := fr.Next()
		if err == nil || err.Error() != "netcore: frame length 4097 exceeds the limit of 4096 bytes" {
			t.Fatalf("Next = %v, want the length and the limit named", err)
		}
		if !fr.Ready() {
			t.Fatal("Ready = false after an error; Next would not block")
		}
		if _, again := fr.Next(); again != err {
			t.Fatalf("second Next = %v, want the same error", again)
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// TestFrameTooLargeAllocatesNothing: a header that claims a gigabyte over
// the limit is refused before a buffer of that size exists.
func TestFrameTooLargeAllocatesNothing(t *testing.T) {
	c := mustCodec(t, 8, binary.BigEndian, 1<<30)
	stream := binary.BigEndian.AppendUint64(nil, 1<<30+1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fr := netcore.NewFrameReader(bytes.NewReader(stream), c)
	_, err := fr.Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, netcore.ErrFrameTooLarge) {
		t.Fatalf("Next = %v, want ErrFrameTooLarge", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing a 1 GiB frame allocated %d bytes", grew)
	}
}

// allocatedBy returns the fewest bytes that f allocated over three runs
// (runtime.MemStats.TotalAlloc), so that another goroutine allocating at
// the same time is unlikely to inflate the figure.
func allocatedBy(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// TestFrameReaderClaimCostsNothing: a header that claims 2^40 bytes, under
// a limit of 2^46, followed by part of the payload and the end of the
// stream, is io.ErrUnexpectedEOF, and the memory allocated follows the
// bytes that arrived, not the claim: at most 8 KiB (the first 4 KiB buffer
// and the reader itself) plus four times the bytes received (the buffer
// doubles when full, and the buffers it outgrew count too).
func TestFrameReaderClaimCostsNothing(t *testing.T) {
	c := mustCodec(t, 8, binary.BigEndian, 1<<46)
	tests := []struct {
		name string
		sent int // payload bytes after the header
	}{
		{"header only", 0},
		{"one byte", 1},
		{"a few bytes", 100},
		{"past the first buffer", 5000},
		{"a megabyte", 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := binary.BigEndian.AppendUint64(nil, 1<<40)
			stream = append(stream, bytes.Repeat([]byte("x"), tt.sent)...)
			var err error
			grew := allocatedBy(func() {
				_, err = netcore.NewFrameReader(bytes.NewReader(stream), c).Next()
			})
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("Next over a 2^40-byte claim with %d bytes and EOF = %v, want io.ErrUnexpectedEOF", tt.sent, err)
			}
			if limit := uint64(8<<10 + 4*len(stream)); grew > limit {
				t.Fatalf("a 2^40-byte claim with %d bytes received allocated %d bytes, want at most %d", tt.sent, grew, limit)
			}
			if tt.sent == 0 && grew >= 64<<10 {
				t.Fatalf("a 2^40-byte claim and EOF allocated %d bytes, want under 64 KiB", grew)
			}
		})
	}
}

// TestFrameReaderLargeFramesInPieces: large frames that arrive a few bytes
// per Read decode byte-exact, with the frames around them intact.
func TestFrameReaderLargeFramesInPieces(t *testing.T) {
	c := mustCodec(t, 4, binary.LittleEndian, 4<<20)
	pattern := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i ^ i>>8 ^ i>>16)
		}
		return b
	}
	tests := []struct {
		name   string
		sizes  []int
		pieces func(io.Reader) io.Reader
	}{
		{"1 MiB in 1000-byte pieces", []int{1 << 20}, func(r io.Reader) io.Reader { return &pieceReader{r: r, n: 1000} }},
		{"100 KiB one byte at a time", []int{100 << 10}, iotest.OneByteReader},
		{"small, large, small, larger in 4093-byte pieces", []int{3, 300 << 10, 0, 4 << 20}, func(r io.Reader) io.Reader { return &pieceReader{r: r, n: 4093} }},
		{"4 MiB whole", []int{4 << 20}, func(r io.Reader) io.Reader { return r }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stream []byte
			var want [][]byte
			for i, n := range tt.sizes {
				p := pattern(n)
				if n > 0 {
					p[0] = byte(i) // frames of one size still differ
				}
				want = append(want, p)
				stream, _ = c.Append(stream, p)
			}
			fr := netcore.NewFrameReader(tt.pieces(bytes.NewReader(stream)), c)
			for i, w := range want {
				got, err := fr.Next()
				if err != nil {
					t.Fatalf("frame %d (%d bytes): %v", i, len(w), err)
				}
				if !bytes.Equal(got, w) {
					t.Fatalf("frame %d: got %d bytes, want %d; first difference at %d", i, len(got), len(w), firstDiff(got, w))
				}
			}
			if _, err := fr.Next(); err != io.EOF {
				t.Fatalf("Next after the last frame = %v, want io.EOF", err)
			}
		})
	}
}

// pieceReader returns at most n bytes per Read.
type pieceReader struct {
	r io.Reader
	n int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	return r.r.Read(p[:min(len(p), r.n)])
}

// firstDiff is the index of the first byte where a and b differ, or the
// length of the shorter when one is a prefix of the other.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestFrameReaderReady(t *testing.T) {
	c := mustCodec(t, 2, binary.BigEndian, 100)
	stream, _ := c.Append(nil, []byte("one"))
	stream, _ = c.Append(stream, []byte("two"))
	stream = append(stream, 0) // part of a third header
	fr := netcore.NewFrameReader(bytes.NewReader(stream), c)
	if fr.Ready() {
		t.Fatal("Ready before anything was read")
	}
	if p, err := fr.Next(); err != nil || string(p) != "one" {
		t.Fatalf("Next = %q, %v", p, err)
	}
	if !fr.Ready() || fr.Buffered() != 6 {
		t.Fatalf("after the first frame: Ready %v, Buffered %d; want true, 6", fr.Ready(), fr.Buffered())
	}
	if p, err := fr.Next(); err != nil || string(p) != "two" {
		t.Fatalf("Next = %q, %v", p, err)
	}
	if fr.Ready() || fr.Buffered() != 1 {
		t.Fatalf("with half a header left: Ready %v, Buffered %d; want false, 1", fr.Ready(), fr.Buffered())
	}
}

// loopReader serves the same stream forever without allocating.
type loopReader struct {
	stream []byte
	off    int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.stream[r.off:])
	r.off = (r.off + n) % len(r.stream)
	return n, nil
}

func TestFrameAllocs(t *testing.T) {
	c := mustCodec(t, 4, binary.LittleEndian, 4096)
	payload := bytes.Repeat([]byte("x"), 1000)
	frame, _ := c.Append(nil, payload)
	dst := make([]byte, 0, 2*len(frame))
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := c.Decode(frame); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decode: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		dst, _ = c.Append(dst[:0], payload)
		dst, _ = c.AppendHeader(dst[:0], len(payload))
	}); n != 0 {
		t.Errorf("Append into a buffer with room: %v allocations, want 0", n)
	}
	// Frames of varied sizes, split across Read calls at varying offsets.
	var stream []byte
	for _, size := range []int{0, 1, 100, 4096, 7, 3000} {
		stream, _ = c.Append(stream, payload[:min(size, len(payload))])
	}
	fr := netcore.NewFrameReader(&loopReader{stream: stream}, c)
	for range 20 { // warm up: the buffer reaches its final size
		fr.Next()
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("FrameReader.Next in steady state: %v allocations per frame, want 0", n)
	}
}

func ExampleFrameCodec() {
	// The book's protocol: a 4-byte little-endian length, then up to 4096 bytes.
	codec, err := netcore.NewFrameCodec(4, binary.LittleEndian, 4096)
	if err != nil {
		panic(err)
	}
	var out []byte
	out, _ = codec.Append(out, []byte("hello"))
	out, _ = codec.Append(out, []byte("world"))
	fmt.Printf("% x\n", out[:9])

	in := out[:15] // the second frame has not fully arrived
	for {
		payload, n, err := codec.Decode(in)
		if err != nil {
			fmt.Println(err)
			return
		}
		if n > len(in) {
			fmt.Printf("need %d more bytes\n", n-len(in))
			break
		}
		fmt.Printf("frame %q\n", payload)
		in = in[n:]
	}
	_, _, err = codec.Decode([]byte{0x01, 0x10, 0, 0})
	fmt.Println(err)
	// Output:
	// 05 00 00 00 68 65 6c 6c 6f
	// frame "hello"
	// need 3 more bytes
	// netcore: frame length 4097 exceeds the limit of 4096 bytes
}
