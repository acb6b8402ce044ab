package netcore_test

// FrameHandler's promises, one test each: no allocation per frame, Serve's
// refusals, a frame too large answered before a clean EOF, End taking a
// frame too large back out, and a pipeline of large replies served within
// the output watermarks; a Send or Execute from another goroutine never
// lands inside a reply frame being built.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// frameOf encodes payload as one frame of codec's format with
// encoding/binary (not the codec), for the client's side.
func frameOf(codec netcore.FrameCodec, payload []byte) []byte {
	return append(putLength(nil, codec.HeaderSize(), codec.Order(), uint64(len(payload))), payload...)
}

// echoFrame answers a frame with its payload, as a reply frame built in
// place.
func echoFrame(codec netcore.FrameCodec) func(c *netcore.LoopConn, payload []byte) {
	return func(c *netcore.LoopConn, payload []byte) {
		f, err := c.BeginFrame(codec)
		if err != nil {
			return
		}
		c.Write(payload)
		f.End()
	}
}

// In steady state a FrameHandler that echoes each frame in a reply built
// in place allocates nothing per frame: a batch of 5,000 pipelined frames
// (340 KB each way, in one write) costs less than one allocation per 20
// frames in the whole process, the client's side included.
func TestFrameHandlerNoAllocsPerFrame(t *testing.T) {
	checkLeaks(t)
	h := &netcore.FrameHandler{Codec: bookCodec, OnFrame: echoFrame(bookCodec)}
	c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: h.LoopHandler(), Loops: 1}))
	const frames = 5000
	var batch []byte
	for i := range frames {
		batch = append(batch, frameOf(bookCodec, bytes.Repeat([]byte{byte(i)}, 64))...)
	}
	// The client reads on its own goroutine, started once: a batch costs
	// the test two channel operations and no allocation.
	got := make([]byte, len(batch))
	start, read := make(chan struct{}), make(chan error)
	go func() {
		for range start {
			_, err := io.ReadFull(c, got)
			read <- err
		}
	}()
	defer close(start)
	round := func() {
		start <- struct{}{}
		if _, err := c.Write(batch); err != nil {
			t.Fatalf("writing %d frames: %v", frames, err)
		}
		if err := testkit.WaitFor(t, read, "the echo of a batch"); err != nil {
			t.Fatalf("reading the echo of %d frames: %v", frames, err)
		}
		if !bytes.Equal(got, batch) {
			t.Fatalf("the echo of %d frames differs", frames)
		}
	}
	for range 3 { // buffers grow to their steady size
		round()
	}
	var before, after runtime.MemStats
	const rounds = 4
	runtime.ReadMemStats(&before)
	for range rounds {
		round()
	}
	runtime.ReadMemStats(&after)
	perFrame := float64(after.Mallocs-before.Mallocs) / (rounds * frames)
	t.Logf("%d allocations in the process for %d frames: %.4f per frame", after.Mallocs-before.Mallocs, rounds*frames, perFrame)
	if perFrame > 0.05 {
		t.Errorf("%.4f allocations per frame, want at most 0.05 (none of them the FrameHandler's)", perFrame)
	}
}

// Loop.Serve refuses a FrameHandler it cannot serve, with an error that
// says why (naming MaxInput and the codec's largest frame when one does
// not fit the other), and closes the listener; a frame exactly as large
// as MaxInput is served.
func TestFrameHandlerServeRefuses(t *testing.T) {
	checkLeaks(t)
	echo := echoFrame(bookCodec)
	for _, tc := range []struct {
		name  string
		h     *netcore.FrameHandler
		max   int      // Loop.MaxInput
		want  []string // in the error's text
		isErr error    // matched by errors.Is, if set
	}{
		{"largest frame over MaxInput", &netcore.FrameHandler{Codec: mustCodec(t, 4, binary.BigEndian, 7000), OnFrame: echo},
			5000, []string{"5000", "7004"}, nil},
		{"largest frame over the default MaxInput", &netcore.FrameHandler{Codec: mustCodec(t, 4, binary.BigEndian, 1<<20), OnFrame: echo},
			0, []string{"1048576", "1048580"}, nil},
		{"largest frame one byte over MaxInput", &netcore.FrameHandler{Codec: mustCodec(t, 2, binary.LittleEndian, 1000), OnFrame: echo},
			1001, []string{"1001", "1002"}, nil},
		{"nil OnFrame", &netcore.FrameHandler{Codec: bookCodec}, 0, []string{"OnFrame"}, nil},
		{"zero Codec", &netcore.FrameHandler{OnFrame: echo}, 0, []string{"Codec"}, netcore.ErrZeroFrameCodec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			lp := &netcore.Loop{Handler: tc.h.LoopHandler(), MaxInput: tc.max, Logger: quietLogger()}
			served := make(chan error, 1)
			go func() { served <- lp.Serve(l) }()
			err := testkit.WaitFor(t, served, "Serve's refusal")
			if err == nil {
				t.Fatal("Serve = nil, want an error")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Serve = %q, want it to name %q", err, s)
				}
			}
			if tc.isErr != nil && !errors.Is(err, tc.isErr) {
				t.Errorf("Serve = %v, want an error matching %v", err, tc.isErr)
			}
			if c, err := netcore.Dial("tcp4", l.Addr().String()); err == nil {
				c.Close()
				t.Errorf("the listener still accepts after Serve refused")
			}
		})
	}
	t.Run("largest frame exactly MaxInput", func(t *testing.T) {
		codec := mustCodec(t, 2, binary.LittleEndian, 1000)
		h := &netcore.FrameHandler{Codec: codec, OnFrame: echoFrame(codec)}
		c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: h.LoopHandler(), MaxInput: 1002}))
		req := frameOf(codec, bytes.Repeat([]byte("m"), 1000))
		c.Write(req)
		got := make([]byte, len(req))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, req) {
			t.Fatalf("the echo of a largest frame: %v", err)
		}
	})
}

// A frame whose header claims more than MaxPayload reaches OnFrameError,
// whose answer the client reads in full, after the answers to the frames
// before it, and then a clean EOF.
func TestFrameHandlerTooLargeAnsweredBeforeEOF(t *testing.T) {
	for _, tc := range []tooLargeCase{
		{name: "nothing after the header"},
		{name: "a few bytes after the header", after: 100},
		{name: "nothing after the header, read late", before: 10, late: true},
	} {
		t.Run(tc.name, func(t *testing.T) { checkTooLargeAnswered(t, tc) })
	}
}

// tooLargeCase is a scenario of a frame too large.
type tooLargeCase struct {
	name   string
	before int  // frames of 2,000 bytes before the bad header's frame
	after  int  // bytes the client sends after the bad header, in the same write
	late   bool // the client, its receive buffer small, reads once the server has closed
}

// checkTooLargeAnswered sends frames and a header claiming 5000 bytes to a
// FrameHandler of bookCodec (4096 at most), and checks that OnFrameError
// gets the FrameTooLargeError and that the client reads the echo of the
// frames, then the answer OnFrameError writes (4 KB), then EOF.
func checkTooLargeAnswered(t *testing.T, tc tooLargeCase) {
	checkLeaks(t)
	frameErrs := make(chan error, 1)
	closed := make(chan error, 1)
	answer := func(err error) []byte {
		// Close to MaxPayload: the answer is a few kilobytes.
		msg := []byte("refused: " + err.Error() + " ")
		return append(msg, bytes.Repeat([]byte("."), 4000-len(msg))...)
	}
	h := &netcore.FrameHandler{
		Codec:   bookCodec,
		OnFrame: echoFrame(bookCodec),
		OnFrameError: func(c *netcore.LoopConn, err error) {
			frameErrs <- err
			f, _ := c.BeginFrame(bookCodec)
			c.Write(answer(err))
			f.End()
		},
		OnClose: func(c *netcore.LoopConn, err error) { closed <- err },
	}
	addr := serveLoop(t, &netcore.Loop{Handler: h.LoopHandler()})
	var c *netcore.Conn
	if tc.late {
		d := netcore.Dialer{Timeout: testkit.Timeout, Control: sockoptControl(sockopt{unix.SOL_SOCKET, unix.SO_RCVBUF, 4096})}
		var err error
		if c, err = d.Dial("tcp4", addr); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testkit.Timeout))
	} else {
		c = dialLoop(t, addr)
	}
	var first []byte
	for i := range tc.before {
		first = append(first, frameOf(bookCodec, bytes.Repeat([]byte{byte(i)}, 2000))...)
	}
	first = append(first, frameOf(bookCodec, []byte("the frame before"))...)
	req := append(bytes.Clone(first), binary.LittleEndian.AppendUint32(nil, 5000)...)
	req = append(req, bytes.Repeat([]byte("x"), tc.after)...)
	// Written from a goroutine: the server stops reading at the bad
	// header, and a large write may never complete.
	go c.Write(req)
	err := testkit.WaitFor(t, frameErrs, "OnFrameError")
	var tl *netcore.FrameTooLargeError
	if !errors.As(err, &tl) || tl.Length != 5000 || tl.Max != 4096 || !errors.Is(err, netcore.ErrFrameTooLarge) {
		t.Fatalf("OnFrameError got %v, want a FrameTooLargeError for 5000 over 4096", err)
	}
	want := append(bytes.Clone(first), frameOf(bookCodec, answer(err))...)
	var closeErr error
	if tc.late {
		closeErr = testkit.WaitFor(t, closed, "OnClose")
	}
	got, rerr := io.ReadAll(c)
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, want %d (the echo of %d bytes, then the %d-byte answer); they differ at byte %d",
			len(got), len(want), len(first), len(want)-len(first), firstDiff(got, want))
	}
	if rerr != nil {
		t.Errorf("after %d of %d bytes the client's read failed with %v, want EOF", len(got), len(want), rerr)
	}
	if !tc.late {
		closeErr = testkit.WaitFor(t, closed, "OnClose")
	}
	if closeErr != nil && closeErr != io.EOF {
		t.Errorf("the server closed with %v", closeErr)
	}
}

// A reply frame whose payload passes MaxPayload is refused by End, with a
// FrameTooLargeError, and taken back out of the output whole: the frames
// written before and after it in the same callback arrive intact, and
// nothing of it follows them.
func TestLoopFrameEndTooLarge(t *testing.T) {
	checkLeaks(t)
	codec := mustCodec(t, 2, binary.BigEndian, 100)
	type report struct {
		err             error
		before, after   int // OutputBuffered before BeginFrame and after End
		beginErr, other error
	}
	reports := make(chan report, 1)
	reply := func(c *netcore.LoopConn, p string) error {
		f, err := c.BeginFrame(codec)
		if err != nil {
			return err
		}
		c.Write([]byte(p))
		return f.End()
	}
	h := &netcore.FrameHandler{Codec: codec, OnFrame: func(c *netcore.LoopConn, payload []byte) {
		switch string(payload) {
		case "big":
			var r report
			r.other = reply(c, "before")
			r.before = c.OutputBuffered()
			f, err := c.BeginFrame(codec)
			r.beginErr = err
			c.Write(bytes.Repeat([]byte("a"), 60)) // in two pieces, 101 bytes in all
			c.Write(bytes.Repeat([]byte("b"), 41))
			r.err = f.End()
			r.after = c.OutputBuffered()
			if err := reply(c, "after"); r.other == nil {
				r.other = err
			}
			reports <- r
		default:
			reply(c, "re:"+string(payload))
		}
	}}
	c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: h.LoopHandler()}))
	c.Write(frameOf(codec, []byte("big")))
	r := testkit.WaitFor(t, reports, "the handler's report")
	if r.beginErr != nil || r.other != nil {
		t.Fatalf("BeginFrame = %v; the frames around it: %v", r.beginErr, r.other)
	}
	var tl *netcore.FrameTooLargeError
	if !errors.As(r.err, &tl) || tl.Length != 101 || tl.Max != 100 || !errors.Is(r.err, netcore.ErrFrameTooLarge) {
		t.Errorf("End of a 101-byte payload = %v, want a FrameTooLargeError for 101 over 100", r.err)
	}
	if r.after != r.before {
		t.Errorf("after End refused the frame %d bytes are buffered, want %d as before BeginFrame", r.after, r.before)
	}
	// The next request's answer follows right after: nothing of the
	// refused frame is between them.
	c.Write(frameOf(codec, []byte("next")))
	want := append(append(frameOf(codec, []byte("before")), frameOf(codec, []byte("after"))...), frameOf(codec, []byte("re:next"))...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

// A client pipelines 100 requests, each answered with a 64 KiB frame built
// in place (6.4 MiB, past MaxOutput): FrameHandler stops taking frames
// while the output is full and goes on once it drains, so every answer
// arrives, in order, with no more output buffered than the high watermark
// and one frame; over TCP and over a Unix socket.
func TestFrameHandlerPipelineLargeReplies(t *testing.T) {
	checkLeaks(t)
	for _, network := range []string{"tcp4", "unix"} {
		t.Run(network, func(t *testing.T) {
			address := "127.0.0.1:0"
			if network == "unix" {
				address = testkit.UnixPath(t)
			}
			testFrameHandlerPipelineLargeReplies(t, testkit.Listen(t, network, address))
		})
	}
}

func testFrameHandlerPipelineLargeReplies(t *testing.T, l *netcore.Listener) {
	const requests, size = 100, 64 << 10
	codec := mustCodec(t, 4, binary.BigEndian, size)
	var peak atomic.Int64
	closed := make(chan error, 1)
	h := &netcore.FrameHandler{
		Codec: codec,
		OnFrame: func(c *netcore.LoopConn, payload []byte) {
			f, err := c.BeginFrame(codec)
			if err != nil {
				return
			}
			c.Write(bytes.Repeat(payload[:1], size))
			f.End()
			if n := int64(c.OutputBuffered()); n > peak.Load() {
				peak.Store(n)
			}
		},
		OnClose: func(c *netcore.LoopConn, err error) { closed <- err },
	}
	c := dialLoop(t, serveLoopOn(t, &netcore.Loop{Handler: h.LoopHandler(), Loops: 1}, l))
	var req []byte
	for i := range requests {
		req = append(req, frameOf(codec, []byte{byte(i)})...)
	}
	go c.Write(req)
	fr := netcore.NewFrameReader(c, codec)
	for i := range requests {
		p, err := fr.Next()
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i, requests, err)
		}
		if !bytes.Equal(p, bytes.Repeat([]byte{byte(i)}, size)) {
			t.Fatalf("answer %d differs (%d bytes)", i, len(p))
		}
	}
	t.Logf("at most %d bytes of output buffered", peak.Load())
	if limit := int64(netcore.DefaultOutputHighWater + size + 4); peak.Load() > limit {
		t.Errorf("the loop buffered %d bytes of output, want at most %d", peak.Load(), limit)
	}
	select {
	case err := <-closed:
		t.Fatalf("the connection closed: %v", err)
	default:
	}
	// Still open and served.
	c.Write(frameOf(codec, []byte{'!'}))
	if p, err := fr.Next(); err != nil || len(p) != size || p[0] != '!' {
		t.Fatalf("an answer after the pipeline: %d bytes, %v", len(p), err)
	}
}

// A reply frame built in place stays one frame when another goroutine's
// Send, or a function queued with Execute, lands while it is being built:
// what they write goes before the frame or after it, never into it. (The
// callback waits for the Send here to make the timing certain; in a server
// a worker's Send returns at that moment by chance. Before 4ef993b the
// payload's Write took what was queued, and End counted it into the
// frame: with four goroutines sending while OnFrame built 8000-byte
// frames in two Writes, about one frame in 60,000 came out corrupted.)
func TestLoopFrameWithConcurrentSend(t *testing.T) {
	for _, via := range []string{"Send", "Execute"} {
		t.Run(via, func(t *testing.T) {
			checkLeaks(t)
			codec := mustCodec(t, 2, binary.BigEndian, 1000)
			other := frameOf(codec, []byte("from another goroutine"))
			h := &netcore.FrameHandler{Codec: codec, OnFrame: func(c *netcore.LoopConn, payload []byte) {
				f, err := c.BeginFrame(codec)
				if err != nil {
					return
				}
				done := make(chan error, 1)
				go func() {
					if via == "Send" {
						done <- c.Send(other)
					} else {
						done <- c.Execute(func(c *netcore.LoopConn) { c.Write(other) })
					}
				}()
				select {
				case err := <-done:
					if err != nil {
						panic(err)
					}
				case <-time.After(testkit.Timeout):
					panic(via + " did not return")
				}
				c.Write([]byte("built in place"))
				f.End()
			}}
			c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: h.LoopHandler()}))
			c.Write(frameOf(codec, []byte("go")))
			fr := netcore.NewFrameReader(c, codec)
			want := map[string]bool{string(other[codec.HeaderSize():]): true, "built in place": true}
			for range 2 {
				p, err := fr.Next()
				if err != nil {
					t.Fatalf("reading the frames: %v", err)
				}
				if !want[string(p)] {
					t.Fatalf("a frame of %q, want one of %q and one of %q, in either order", p, other[codec.HeaderSize():], "built in place")
				}
				delete(want, string(p))
			}
		})
	}
}

// A frame too large, with more of the client's input behind it than the
// loop has read: closed outright, the socket would answer the unread input
// with a reset instead of a FIN, and the client would get ECONNRESET after
// the answer instead of EOF (46 runs in 50 before the lingering close) or,
// reading late, lose the answers still in the server's send queue, which
// the reset discards (every run: 4096 of 24064 bytes arrived). A
// goroutine-per-connection server on Go's net that writes its answer and
// closes does the same. The Loop's lingering close keeps the promise.
func TestFrameHandlerTooLargeWithInputPending(t *testing.T) {
	for _, tc := range []tooLargeCase{
		{name: "1 MiB after the header", after: 1 << 20},
		{name: "1 MiB after the header, read late", before: 10, after: 1 << 20, late: true},
	} {
		t.Run(tc.name, func(t *testing.T) { checkTooLargeAnswered(t, tc) })
	}
}
