package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/netcore-dev/netcore/internal/frametest"
	"github.com/netcore-dev/netcore/netcore"
)

// fuzzCodec maps fuzzer bytes to a valid codec: header 1, 2, 4 or 8, either
// byte order, a maximum the header can hold (kept small so frames fit).
func fuzzCodec(t *testing.T, sel byte, bigEndian bool, max uint16) (netcore.FrameCodec, int) {
	header := []int{1, 2, 4, 8}[sel%4]
	m := int(max)
	if header == 1 {
		m %= 256
	}
	var order binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	c, err := netcore.NewFrameCodec(header, order, m)
	if err != nil {
		t.Fatalf("NewFrameCodec(%d, %v, %d): %v", header, order, m, err)
	}
	return c, m
}

// FuzzFrameDecode decodes arbitrary bytes frame by frame with
// FrameCodec.Decode and with the reference decoder: the same frames, the
// same place where decoding stops, the same verdict (incomplete or too
// large, naming the length), and never a panic or a read past a frame.
func FuzzFrameDecode(f *testing.F) {
	f.Add(byte(2), false, uint16(4096), []byte("\x05\x00\x00\x00hello\x05\x00\x00\x00world"))
	f.Add(byte(0), true, uint16(3), []byte("\x03abc\x04abcd"))
	f.Add(byte(3), true, uint16(100), []byte("\x00\x00\x00\x00\x00\x00\x00\x02hi\x00"))
	f.Add(byte(1), true, uint16(0), []byte("\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, sel byte, bigEndian bool, max uint16, data []byte) {
		c, m := fuzzCodec(t, sel, bigEndian, max)
		want, wantRest, wantLen, wantBad := frametest.Decode(data, c.HeaderSize(), bigEndian, uint64(m))

		// Decode sees a copy with no spare capacity, so a read past the frame
		// would be a panic, not a silent success.
		in := bytes.Clone(data)
		var got [][]byte
		for {
			payload, n, err := c.Decode(in)
			if err != nil {
				var tl *netcore.FrameTooLargeError
				if !errors.As(err, &tl) || !wantBad || tl.Length != wantLen || tl.Max != m {
					t.Fatalf("Decode(%x) after %d frames: %v; reference: too large %v (length %d)", in, len(got), err, wantBad, wantLen)
				}
				break
			}
			if n > len(in) {
				if wantBad {
					t.Fatalf("Decode(%x) = need %d bytes; reference: too large %v", in, n, wantBad)
				}
				break
			}
			if n < c.HeaderSize() || len(payload) != n-c.HeaderSize() || cap(payload) != len(payload) {
				t.Fatalf("Decode(%x) = payload of %d bytes (cap %d), n %d", in, len(payload), cap(payload), n)
			}
			got = append(got, payload)
			in = in[n:]
		}
		if len(got) != len(want) || !bytes.Equal(in, wantRest) {
			t.Fatalf("Decode stopped after %d frames with %x left; reference: %d frames, %x left", len(got), in, len(want), wantRest)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d = %x, reference %x", i, got[i], want[i])
			}
		}
	})
}

// FuzzFrameChunked reads arbitrary bytes, cut into chunks the fuzzer
// chooses, through a FrameReader: the frames are exactly those of the
// reference decoder over the whole input, and the end is io.EOF between
// frames, io.ErrUnexpectedEOF inside one, or the too-large error.
func FuzzFrameChunked(f *testing.F) {
	f.Add(byte(2), false, uint16(4096), []byte("\x05\x00\x00\x00hello\x05\x00\x00\x00world"), []byte{1, 3, 2, 7})
	f.Add(byte(0), true, uint16(255), []byte("\x03abc\x04ab"), []byte{2})
	f.Add(byte(1), false, uint16(10), []byte("\x02\x00hi\x0b\x00"), []byte{0, 1})
	f.Fuzz(func(t *testing.T, sel byte, bigEndian bool, max uint16, data, cuts []byte) {
		c, m := fuzzCodec(t, sel, bigEndian, max)
		want, wantRest, wantLen, wantBad := frametest.Decode(data, c.HeaderSize(), bigEndian, uint64(m))

		var chunks [][]byte
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(n, int(cuts[i])+1)
			}
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		fr := netcore.NewFrameReader(&frametest.ChunkReader{Chunks: chunks}, c)
		var got [][]byte
		var err error
		for {
			var p []byte
			if p, err = fr.Next(); err != nil {
				break
			}
			got = append(got, bytes.Clone(p))
		}
		if len(got) != len(want) {
			t.Fatalf("FrameReader gave %d frames then %v; the reference decodes %d", len(got), err, len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d = %x, reference %x", i, got[i], want[i])
			}
		}
		var tl *netcore.FrameTooLargeError
		switch {
		case wantBad:
			if !errors.As(err, &tl) || tl.Length != wantLen || tl.Max != m {
				t.Fatalf("end: %v, want a too-large error for length %d", err, wantLen)
			}
		case len(wantRest) > 0:
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("end with %d bytes of a frame: %v, want io.ErrUnexpectedEOF", len(wantRest), err)
			}
		default:
			if err != io.EOF {
				t.Fatalf("end between frames: %v, want io.EOF", err)
			}
		}
	})
}
