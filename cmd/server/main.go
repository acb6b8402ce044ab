//go:build linux

// Command server is the tutorial's server, built on netcore: it reads what
// each client sends, prints it, answers "world" and closes the connection.
//
//	go run ./cmd/server                  # listens on 127.0.0.1:1234
//	go run ./cmd/server -addr :1234      # every interface, IPv4 and IPv6
//	go run ./cmd/server -addr [::1]:1234 # IPv6 loopback
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1234", "address to listen on (host:port; port 0 picks a free one)")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	// The tutorial's model: each call blocks in the kernel on its own
	// thread (netcore's blocking mode).
	lc := netcore.ListenConfig{Blocking: true}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening on", l.Addr())

	srv := &netcore.Server{
		Handler: netcore.HandlerFunc(hello),
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
