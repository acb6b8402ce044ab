package netcore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/frametest"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// fuzzFrameFormats are the frame formats FuzzFrameHandlerChunks serves,
// one listener each: every header size, both byte orders, and payloads
// from a few hundred bytes to 64 KiB (past the loop's 64 KiB reads).
var fuzzFrameFormats = []struct {
	header int
	order  binary.ByteOrder
	max    int
}{
	{1, binary.LittleEndian, 200},
	{2, binary.BigEndian, 1000},
	{4, binary.LittleEndian, 4096},
	{8, binary.BigEndian, 300},
	{4, binary.BigEndian, 65535},
}

// frameEcho is the FrameHandler FuzzFrameHandlerChunks serves: each frame's
// payload comes back as a reply frame built in place; a frame too large is
// answered with a frame "E<length>/<max>".
func frameEcho(codec netcore.FrameCodec, closes *sync.Map) *netcore.FrameHandler {
	return &netcore.FrameHandler{
		Codec: codec,
		OnFrame: func(c *netcore.LoopConn, payload []byte) {
			f, err := c.BeginFrame(codec)
			if err != nil {
				return // the missing reply fails the comparison
			}
			c.Write(payload)
			f.End()
		},
		OnFrameError: func(c *netcore.LoopConn, err error) {
			msg := "E?" + err.Error()
			var tl *netcore.FrameTooLargeError
			if errors.As(err, &tl) {
				msg = fmt.Sprintf("E%d/%d", tl.Length, tl.Max)
			}
			f, err := c.BeginFrame(codec)
			if err != nil {
				return
			}
			c.Write([]byte(msg))
			f.End()
		},
		OnClose: func(c *netcore.LoopConn, err error) {
			if ch, ok := closes.LoadAndDelete(c.RemoteSockaddr().Port()); ok {
				ch.(chan error) <- err
			}
		},
	}
}

// byPort serves each listener's connections with its own LoopHandler, on
// one Loop.
type byPort map[uint16]netcore.LoopHandler

func (h byPort) OnOpen(c *netcore.LoopConn) { h[c.LocalSockaddr().Port()].OnOpen(c) }
func (h byPort) OnData(c *netcore.LoopConn) { h[c.LocalSockaddr().Port()].OnData(c) }
func (h byPort) OnEOF(c *netcore.LoopConn)  { h[c.LocalSockaddr().Port()].OnEOF(c) }
func (h byPort) OnClose(c *netcore.LoopConn, err error) {
	h[c.LocalSockaddr().Port()].OnClose(c, err)
}

// putLength appends a header of size bytes holding n in order: the
// oracle's own encoding, through encoding/binary.
func putLength(dst []byte, size int, order binary.ByteOrder, n uint64) []byte {
	var b [8]byte
	switch size {
	case 1:
		b[0] = byte(n)
	case 2:
		order.PutUint16(b[:], uint16(n))
	case 4:
		order.PutUint32(b[:], uint32(n))
	default:
		order.PutUint64(b[:], n)
	}
	return append(dst, b[:size]...)
}

// oracleReplies decodes stream (size-byte headers in order, payloads of at
// most max bytes) with the reference decoder (frametest) and returns the
// replies frameEcho must send, in order: each complete frame echoed, then,
// if a header claims too much, the error frame. Whatever follows a bad
// header, and an incomplete frame at the end, is not answered.
func oracleReplies(stream []byte, size int, order binary.ByteOrder, max int) (replies []byte, tooLarge bool) {
	// fuzzFrameFormats use only BigEndian and LittleEndian.
	frames, _, n, bad := frametest.Decode(stream, size, order == binary.BigEndian, uint64(max))
	for _, f := range frames {
		replies = putLength(replies, size, order, uint64(len(f)))
		replies = append(replies, f...)
	}
	if bad {
		msg := fmt.Sprintf("E%d/%d", n, max)
		replies = putLength(replies, size, order, uint64(len(msg)))
		replies = append(replies, msg...)
	}
	return replies, bad
}

// fuzzStream builds the client's bytes: frames whose lengths and payloads
// come from spec (two bytes of length, reduced modulo max+1, then as much
// of the payload as spec still holds, the rest a pattern), at most maxBytes
// in all; then, by tail, an oversize header at the end (tail >= 0x80) or
// the last tail%32 bytes cut off, leaving a frame incomplete.
func fuzzStream(spec []byte, tail byte, size int, order binary.ByteOrder, max, maxBytes int) []byte {
	var stream []byte
	for len(spec) >= 2 && len(stream) < maxBytes {
		n := int(binary.BigEndian.Uint16(spec)) % (max + 1)
		spec = spec[2:]
		stream = putLength(stream, size, order, uint64(n))
		take := min(n, len(spec))
		stream = append(stream, spec[:take]...)
		spec = spec[take:]
		for i := take; i < n; i++ {
			stream = append(stream, byte(i*7+n))
		}
	}
	if tail >= 0x80 {
		limit := uint64(math.MaxUint64)
		if size < 8 {
			limit = 1<<(8*size) - 1
		}
		n := limit // 0xff: the largest length the header holds
		if tail != 0xff {
			n = uint64(max) + 1 + uint64(tail&0x7f)%(limit-uint64(max))
		}
		return putLength(stream, size, order, n)
	}
	return stream[:len(stream)-min(len(stream), int(tail%32))]
}

// FuzzFrameHandlerChunks sends a FrameHandler on a Loop a stream of frames
// built from the fuzzer's input, cut into writes of sizes the fuzzer
// chooses, then half-closes. The replies, each built in place with
// BeginFrame and End, must be byte for byte what an independent decoder of
// the same stream expects, then EOF: a frame too large is answered (by
// OnFrameError) and the client reads that answer and a clean EOF, not a
// reset.
func FuzzFrameHandlerChunks(f *testing.F) {
	f.Add(byte(0), []byte("\x00\x05hello\x00\x05world"), []byte{1, 3, 2, 7}, byte(0))
	f.Add(byte(1), []byte("\x00\x00\x00\x01x\x03\xe8"), []byte{0}, byte(0x80))
	f.Add(byte(2), []byte("\x10\x00abc\x00\x00"), []byte{}, byte(5))
	f.Add(byte(3), []byte("\x01\x2cpayload"), []byte{2, 0, 9}, byte(0xff))
	f.Add(byte(4), []byte("\xff\xff\xff\xfe\x80\x00"), []byte{200, 255, 3}, byte(0))
	f.Add(byte(4), []byte("\x40\x00\x40\x01"), []byte{255}, byte(0x81))
	f.Add(byte(0), []byte{}, []byte{}, byte(0xc0))

	var (
		once   sync.Once
		lp     *netcore.Loop
		addrs  []string
		codecs []netcore.FrameCodec
		served = make(chan error, len(fuzzFrameFormats))
		closes sync.Map // client port -> chan error: the server's close reason
	)
	start := func() error {
		h := byPort{}
		var ls []*netcore.Listener
		for _, ff := range fuzzFrameFormats {
			codec, err := netcore.NewFrameCodec(ff.header, ff.order, ff.max)
			if err != nil {
				return err
			}
			l, err := netcore.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				return err
			}
			h[l.Sockaddr().Port()] = frameEcho(codec, &closes).LoopHandler()
			ls = append(ls, l)
			addrs = append(addrs, l.Addr().String())
			codecs = append(codecs, codec)
		}
		lp = &netcore.Loop{Handler: h, Loops: 2, Logger: quietLogger()}
		for _, l := range ls {
			go func() { served <- lp.Serve(l) }()
		}
		return nil
	}
	f.Cleanup(func() {
		if lp == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		defer cancel()
		if err := lp.Shutdown(ctx); err != nil {
			f.Errorf("Shutdown: %v", err)
		}
		for range addrs {
			if err := testkit.WaitFor(f, served, "Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
				f.Errorf("Serve = %v, want ErrLoopClosed", err)
			}
		}
	})

	f.Fuzz(func(t *testing.T, sel byte, spec, cuts []byte, tail byte) {
		var startErr error
		once.Do(func() { startErr = start() })
		if startErr != nil {
			t.Fatalf("starting the Loop: %v", startErr)
		}
		if len(codecs) == 0 {
			t.Fatal("the Loop did not start")
		}
		i := int(sel) % len(fuzzFrameFormats)
		ff := fuzzFrameFormats[i]
		stream := fuzzStream(spec, tail, ff.header, ff.order, ff.max, 512<<10)
		want, tooLarge := oracleReplies(stream, ff.header, ff.order, ff.max)
		t.Logf("%d-byte headers, max %d: %d-byte stream, %d reply bytes, too large at the end: %v", ff.header, ff.max, len(stream), len(want), tooLarge)

		c, err := netcore.Dial("tcp4", addrs[i])
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testkit.Timeout))
		closed := make(chan error, 1)
		closes.Store(c.LocalSockaddr().Port(), closed)
		defer closes.Delete(c.LocalSockaddr().Port())

		// Write the chunks while the replies are read: neither side's
		// buffers can fill up and stall the other. After 1024 chunks
		// the rest goes in one write.
		werr := make(chan error, 1)
		go func() {
			rest := stream
			for k := 0; len(rest) > 0; k++ {
				n := len(rest)
				if len(cuts) > 0 && k < 1024 {
					n = min(n, int(cuts[k%len(cuts)])+1)
				}
				if _, err := c.Write(rest[:n]); err != nil {
					werr <- fmt.Errorf("writing bytes %d to %d of %d: %w", len(stream)-len(rest), len(stream)-len(rest)+n, len(stream), err)
					return
				}
				rest = rest[n:]
			}
			werr <- c.CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("%d-byte headers, max %d, %d-byte stream (too large at the end: %v): after %d of %d reply bytes: %v",
				ff.header, ff.max, len(stream), tooLarge, len(got), len(want), err)
		}
		if !bytes.Equal(got, want) {
			k := firstDiff(got, want)
			t.Fatalf("%d-byte headers, max %d, %d-byte stream (too large at the end: %v): replies differ at byte %d of %d (got %d)\ngot  %s\nwant %s",
				ff.header, ff.max, len(stream), tooLarge, k, len(want), len(got), brief(got[k:]), brief(want[min(k, len(want)):]))
		}
		if err := testkit.WaitFor(t, werr, "the client's writes"); err != nil {
			t.Fatalf("client: %v", err)
		}
		// The server closed because of the bad frame (nil: FrameHandler's
		// Close) or the client's half-close (io.EOF); never a reset, a
		// limit or a panic.
		if err := testkit.WaitFor(t, closed, "OnClose"); err != nil && err != io.EOF {
			t.Fatalf("the server closed the connection with %v, want nil or io.EOF", err)
		}
	})
}
