//go:build linux

// Command kv is the key-value server of "Build Your Own Redis" (chapters
// 4 to 6) on netcore's event loop: get, set and del over the book's
// length-prefixed binary protocol (see package kvproto for the bytes).
//
//	go run ./examples/kv                           # listening on 127.0.0.1:1234
//	go run ./examples/kv -addr 127.0.0.1:0         # a free port; the first line says which
//	go run ./examples/kv/client set greeting hello , get greeting
//
// Every request frame gets exactly one reply frame, in order, pipelined or
// not. A request whose payload is not a well-formed list of strings, or
// names an unknown command, or has the wrong number of strings, gets an ERR
// reply saying what was wrong, and the connection goes on. A frame whose
// length is over -max-msg gets an ERR reply as soon as its header arrives
// (nothing of it is buffered), then the connection is closed: the rest of
// the stream cannot be told apart from the next frame.
//
// SIGINT or SIGTERM shuts the server down gracefully: it stops accepting,
// closes idle connections, answers requests already received or still
// arriving, and after -shutdown-timeout closes whatever is left.
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

	"github.com/netcore-dev/netcore/examples/kv/kvproto"
	"github.com/netcore-dev/netcore/netcore"
)

func main() {
	cfg := config{logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	addr := flag.String("addr", "127.0.0.1:1234", "address to listen on (host:port; port 0 picks a free one)")
	flag.IntVar(&cfg.loops, "loops", 0, "number of event loops (0: GOMAXPROCS)")
	flag.Var(&cfg.backend, "backend", "how the loops wait and make their I/O: epoll, io_uring or best (io_uring where it can be used); unset: epoll, or what $"+netcore.BackendEnv+" names")
	flag.IntVar(&cfg.maxMsg, "max-msg", kvproto.DefaultMaxMsg,
		fmt.Sprintf("largest request or reply payload, in bytes (%d to %d)", kvproto.MinMaxMsg, uint32(1<<32-1)))
	flag.DurationVar(&cfg.grace, "shutdown-timeout", 5*time.Second,
		"on SIGINT or SIGTERM, how long requests in progress get before every connection is closed")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kv: unexpected argument %q (the server takes only flags)\n", flag.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *addr, NewStore(), cfg, func(a net.Addr, _ *netcore.Loop) {
		fmt.Println("listening on", a)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kv:", err)
		os.Exit(1)
	}
}
