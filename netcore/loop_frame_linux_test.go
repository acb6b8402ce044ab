package netcore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// bookCodec is the book's protocol: a 4-byte little-endian length, then
// at most 4096 bytes of payload.
var bookCodec, _ = netcore.NewFrameCodec(4, binary.LittleEndian, 4096)

// frameServer answers every complete frame in a LoopConn's input with
// "re:" + the payload, decoding in place over the input buffer (no copy)
// and appending the answers to one output slice; a bad length closes the
// connection, its error reported on closed.
func frameServer(closed chan error) *loopFuncs {
	return &loopFuncs{
		data: func(c *netcore.LoopConn) {
			in := c.Peek(c.Buffered())
			used := 0
			var out []byte // per call: connections on different loops run at once
			for {
				payload, n, err := bookCodec.Decode(in[used:])
				if err != nil {
					c.Write(out)
					closed <- err
					c.Close()
					return
				}
				if n > len(in)-used {
					break // need n-(len-used) more bytes: wait for them
				}
				out, _ = bookCodec.Append(out, append([]byte("re:"), payload...))
				used += n
			}
			c.Discard(used)
			c.Write(out)
		},
	}
}

// TestFramesOnLoop: the book's protocol served on a Loop with FrameCodec
// over the LoopConn's input buffer: pipelined requests are answered in
// order and byte for byte, also when the frames arrive a few bytes at a
// time; a length over the limit closes the connection with the codec's
// error naming it.
func TestFramesOnLoop(t *testing.T) {
	t.Parallel()
	bad := make(chan error, 4)
	addr := serveLoop(t, &netcore.Loop{Handler: frameServer(bad)})

	var req, want []byte
	for i := range 50 {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, i*80) // up to 3920 bytes, one empty
		req, _ = bookCodec.Append(req, p)
		want, _ = bookCodec.Append(want, append([]byte("re:"), p...))
	}
	for _, piece := range []int{len(req), 7} {
		t.Run(fmt.Sprintf("pieces-of-%d", piece), func(t *testing.T) {
			c := dialLoop(t, addr)
			go func() {
				for rest := req; len(rest) > 0; {
					n := min(piece, len(rest))
					if _, err := c.Write(rest[:n]); err != nil {
						return
					}
					rest = rest[n:]
				}
			}()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reading %d answer bytes: %v", len(want), err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("answers differ from the requests' in order (%d bytes)", len(want))
			}
			// The reader side for goroutine-per-connection code decodes the
			// same answers.
			fr := netcore.NewFrameReader(bytes.NewReader(got), bookCodec)
			for i := range 50 {
				p, err := fr.Next()
				if err != nil || len(p) != 3+i*80 {
					t.Fatalf("answer %d: %d bytes, %v", i, len(p), err)
				}
			}
		})
	}

	c := dialLoop(t, addr)
	c.Write(binary.LittleEndian.AppendUint32(nil, 5000))
	err := testkit.WaitFor(t, bad, "the server's frame error")
	var tooLarge *netcore.FrameTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Length != 5000 || tooLarge.Max != 4096 {
		t.Fatalf("a 5000-byte length = %v, want a FrameTooLargeError naming 5000 and 4096", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("the connection stayed open after a bad length")
	}
}
