package netcore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// lineUpper answers every line with the line in upper case. A partial line
// stays in the input buffer until the rest arrives.
type lineUpper struct{}

func (lineUpper) OnOpen(c *netcore.LoopConn) {}

func (lineUpper) OnData(c *netcore.LoopConn) {
	for {
		i := bytes.IndexByte(c.Peek(c.Buffered()), '\n')
		if i < 0 {
			return
		}
		c.Write(bytes.ToUpper(c.Next(i + 1)))
	}
}

func (lineUpper) OnEOF(c *netcore.LoopConn) {}

func (lineUpper) OnClose(c *netcore.LoopConn, err error) {}

// A line protocol on a Loop: two pipelined requests, one of them split
// across writes, answered in order.
func ExampleLoop() {
	l, err := netcore.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	lp := &netcore.Loop{Handler: lineUpper{}, Loops: 1}
	go lp.Serve(l)
	defer lp.Close()

	c, err := netcore.Dial("tcp", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hello\nevent "))
	c.Write([]byte("loop\n"))
	c.CloseWrite()
	answer, err := io.ReadAll(c)
	fmt.Printf("%q %v\n", answer, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(lp.Shutdown(ctx))
	// Output:
	// "HELLO\nEVENT LOOP\n" <nil>
	// <nil>
}

// serveExample serves lp on a fresh loopback listener and returns a
// connected client with a deadline.
func serveExample(lp *netcore.Loop) (*netcore.Conn, error) {
	l, err := netcore.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go lp.Serve(l)
	c, err := netcore.Dial("tcp", l.Addr().String())
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, nil
}

// The book's protocol on a Loop: a 4-byte little-endian length, then the
// message. OnFrame is called once per complete request, however the bytes
// arrive, and builds its reply frame in place in the output buffer.
func ExampleFrameHandler() {
	codec, _ := netcore.NewFrameCodec(4, binary.LittleEndian, 4096)
	fh := &netcore.FrameHandler{
		Codec: codec,
		OnFrame: func(c *netcore.LoopConn, req []byte) {
			f, err := c.BeginFrame(codec)
			if err != nil {
				return
			}
			c.Write([]byte("you said: "))
			c.Write(req)
			f.End()
		},
	}
	lp := &netcore.Loop{Handler: fh.LoopHandler(), Loops: 1}
	defer lp.Close()
	c, err := serveExample(lp)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	// Two requests in one write, the second cut short; then the rest.
	req, _ := codec.Append(nil, []byte("hello"))
	req, _ = codec.Append(req, []byte("world"))
	c.Write(req[:12])
	c.Write(req[12:])
	r := netcore.NewFrameReader(c, codec)
	for range 2 {
		reply, err := r.Next()
		fmt.Printf("%q %v\n", reply, err)
	}
	// Output:
	// "you said: hello" <nil>
	// "you said: world" <nil>
}

// Blocking work leaves the loop: the handler marks it in flight with Hold,
// a goroutine does it, and Execute brings the result back to the loop,
// where it may use every LoopConn method. The answer arrives even though
// the client half-closed right after asking: Hold keeps the connection
// open until Release.
func ExampleLoopConn_Execute() {
	h := &loopFuncsExample{data: func(c *netcore.LoopConn) {
		n := c.Buffered()
		c.Discard(n)
		c.Hold()
		go func() {
			defer c.Release()
			sum := 0
			for i := range n * 1000 { // the slow work
				sum += i
			}
			c.Execute(func(c *netcore.LoopConn) {
				fmt.Fprintf(c, "sum for %d bytes: %d", n, sum)
			})
		}()
	}}
	lp := &netcore.Loop{Handler: h, Loops: 1}
	defer lp.Close()
	c, err := serveExample(lp)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.Write([]byte("abc"))
	c.CloseWrite()
	answer, err := io.ReadAll(c)
	fmt.Printf("%s %v\n", answer, err)
	// Output:
	// sum for 3 bytes: 4498500 <nil>
}

// AfterFunc runs on the loop later, with no goroutine or runtime timer per
// connection: here a client that asks nothing for 50 ms is told so and
// dropped, and each request moves the timer.
func ExampleLoopConn_AfterFunc() {
	const patience = 50 * time.Millisecond
	prompt := func(c *netcore.LoopConn) {
		c.Write([]byte("still there? bye\n"))
		c.Close()
	}
	h := &loopFuncsExample{
		open: func(c *netcore.LoopConn) { c.SetUserData(c.AfterFunc(patience, prompt)) },
		data: func(c *netcore.LoopConn) {
			c.UserData().(*netcore.LoopTimer).Stop()
			c.Write(c.Next(-1))
			c.SetUserData(c.AfterFunc(patience, prompt))
		},
	}
	lp := &netcore.Loop{Handler: h, Loops: 1}
	defer lp.Close()
	c, err := serveExample(lp)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.Write([]byte("ping\n"))
	answer, err := io.ReadAll(c)
	fmt.Printf("%q %v\n", answer, err)
	// Output:
	// "ping\nstill there? bye\n" <nil>
}

// loopFuncsExample is a LoopHandler made of optional functions.
type loopFuncsExample struct {
	open, data func(c *netcore.LoopConn)
}

func (h *loopFuncsExample) OnOpen(c *netcore.LoopConn) {
	if h.open != nil {
		h.open(c)
	}
}

func (h *loopFuncsExample) OnData(c *netcore.LoopConn) { h.data(c) }

func (h *loopFuncsExample) OnEOF(c *netcore.LoopConn) {}

func (h *loopFuncsExample) OnClose(c *netcore.LoopConn, err error) {}
