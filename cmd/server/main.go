//go:build linux

// Command server is the tutorial's server, built on netcore: it reads what
// each client sends, prints it, answers "world" and closes the connection.
//
//	go run ./cmd/server                  # listens on 127.0.0.1:1234
//	go run ./cmd/server -addr :1234      # every interface, IPv4 and IPv6
//	go run ./cmd/server -addr [::1]:1234 # IPv6 loopback
//	go run ./cmd/server -addr /tmp/hello.sock # a Unix socket (or @hello: abstract)
//
// With -framed it speaks the book's protocol instead: each request is a
// 4-byte little-endian length and up to 4096 bytes; the server prints each
// one and answers "world" to each, in order, until the client closes.
// Pipelined requests are answered in one write per batch.
//
//	go run ./cmd/server -framed
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1234", "address to listen on (host:port; port 0 picks a free one); a path, or @name, is a Unix socket")
	framed := flag.Bool("framed", false, "the book's protocol: length-prefixed requests, each answered in order")
	flag.Parse()
	handler := netcore.HandlerFunc(hello)
	if *framed {
		handler = serveFramed
	}
	if err := run(*addr, handler); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(addr string, handler netcore.Handler) error {
	// The tutorial's model: each call blocks in the kernel on its own
	// thread (netcore's blocking mode).
	lc := netcore.ListenConfig{Blocking: true}
	l, err := lc.Listen(context.Background(), network(addr), addr)
	if err != nil {
		return err
	}
	fmt.Println("listening on", l.Addr())

	srv := &netcore.Server{
		Handler: handler,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// Ctrl-C (or SIGTERM) stops accepting and lets running handlers finish.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-served:
		return err
	case <-stop:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// network is "unix" for an address that is a path or an abstract name
// ("/tmp/hello.sock", "./hello.sock", "@hello"), "tcp" for host:port.
func network(addr string) string {
	if addr != "" && strings.ContainsRune("/.@", rune(addr[0])) {
		return "unix"
	}
	return "tcp"
}

// hello serves one client: one read, one answer. The Server closes the
// connection when hello returns. The read is the wait for the client's
// request, so it runs inside netcore.Idle: Ctrl-C ends it at once instead
// of waiting for the deadline.
func hello(ctx context.Context, c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	var n int
	err := netcore.Idle(ctx, func() (err error) {
		n, err = c.Read(buf)
		return err
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "server: read:", err)
		return
	}
	fmt.Printf("client says: %s\n", buf[:n])
	if _, err := c.Write([]byte("world")); err != nil {
		fmt.Fprintln(os.Stderr, "server: write:", err)
	}
}

// book is the book's framing: a 4-byte little-endian length, at most 4096
// bytes of payload.
var book, _ = netcore.NewFrameCodec(4, binary.LittleEndian, 4096)

// idle bounds how long a framed connection may wait for its next request.
const idle = 10 * time.Second

// serveFramed serves one client in the book's protocol: every request is
// printed and answered "world", in order. Answers to requests that arrived
// together are written together, once no further request is buffered.
func serveFramed(_ context.Context, c net.Conn) {
	fr := netcore.NewFrameReader(c, book)
	var out []byte
	c.SetDeadline(time.Now().Add(idle))
	for {
		req, err := fr.Next()
		if err == io.EOF {
			c.Write(out)
			return // the client is done, between two requests
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "server: %v: %v\n", c.RemoteAddr(), err)
			c.Write(out) // the answers to the requests before the bad one
			return
		}
		fmt.Printf("client says: %s\n", req)
		out, _ = book.Append(out, []byte("world"))
		if !fr.Ready() { // the next Next would block: send what is ready
			if _, err := c.Write(out); err != nil {
				fmt.Fprintf(os.Stderr, "server: %v: write: %v\n", c.RemoteAddr(), err)
				return
			}
			out = out[:0]
			c.SetDeadline(time.Now().Add(idle))
		}
	}
}
