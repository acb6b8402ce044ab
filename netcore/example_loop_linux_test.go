//go:build linux

package netcore_test

import (
	"bytes"
	"context"
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
