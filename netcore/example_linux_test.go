package netcore_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// An echo over loopback: listen on a port the kernel picks, dial it, write,
// half-close, and read the echo back.
func ExampleListen() {
	l, err := netcore.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	go func() {
		c, err := l.AcceptConn()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // until the client half-closes
		c.CloseWrite()
	}()

	c, err := netcore.Dial("tcp", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hello"))
	c.CloseWrite()
	reply, err := io.ReadAll(c)
	fmt.Printf("%s %v\n", reply, err)
	// Output: hello <nil>
}

// A Server answering each connection once, then shut down gracefully.
func ExampleServer() {
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &netcore.Server{Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		fmt.Fprintf(c, "you said %q", buf[:n])
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	c, err := netcore.Dial("tcp4", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hi"))
	reply, _ := io.ReadAll(c) // the Server closes after the handler returns
	c.Close()
	fmt.Println(string(reply))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx), <-served)
	// Output:
	// you said "hi"
	// <nil> netcore: server closed
}
