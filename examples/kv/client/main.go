//go:build linux

// Command client is the client of the key-value server in examples/kv, as
// the book's: it sends commands and prints each reply's status and data.
//
//	go run ./examples/kv/client set greeting hello
//	go run ./examples/kv/client get greeting          # server says: [0] hello
//	go run ./examples/kv/client get nothing           # server says: [2]
//	go run ./examples/kv/client set a 1 , get a , del a , get a
//
// Several commands, separated by a lone "," (-sep changes it), are sent as
// a pipeline: every request frame in one write, then one reply read per
// command, in order. Each reply is printed as "server says: [STATUS] DATA"
// (0 OK, 1 ERR, 2 NX), DATA as the server sent it. A request over -max-msg
// is refused before anything is sent.
//
// It exits 0 once every reply has arrived, whatever their statuses, and 1
// (saying why on stderr) if the server could not be reached, closed the
// connection early, sent a malformed reply, or took longer than -timeout.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/netcore-dev/netcore/examples/kv/kvproto"
	"github.com/netcore-dev/netcore/netcore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1234", "the server's address (host:port)")
	maxMsg := flag.Int("max-msg", kvproto.DefaultMaxMsg, "largest request or reply payload, in bytes (as the server's -max-msg)")
	sep := flag.String("sep", ",", "the argument that separates pipelined commands")
	timeout := flag.Duration("timeout", 10*time.Second, "time allowed for the whole exchange (0: no limit)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: client [flags] CMD ARG... [, CMD ARG...]...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*addr, *maxMsg, *timeout, split(flag.Args(), *sep), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// split cuts args into commands at each argument equal to sep, dropping
// empty commands (so a trailing or doubled separator is harmless).
func split(args []string, sep string) [][]string {
	var cmds [][]string
	var cur []string
	for _, a := range args {
		if a == sep {
			if len(cur) > 0 {
				cmds = append(cmds, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, a)
	}
	if len(cur) > 0 {
		cmds = append(cmds, cur)
	}
	return cmds
}

// run connects to addr and runs the pipeline cmds, printing the replies
// to out.
func run(addr string, maxMsg int, timeout time.Duration, cmds [][]string, out io.Writer) error {
	if len(cmds) == 0 {
		return errors.New("no command given (try: set k v , get k)")
	}
	codec, err := kvproto.NewCodec(maxMsg)
	if err != nil {
		return err
	}
	reqs, err := encode(codec, cmds)
	if err != nil {
		return err
	}
	c, err := netcore.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	return exchange(c, codec, reqs, len(cmds), out)
}

// encode returns the request frames of cmds, one after the other. A
// command whose payload is over the codec's maximum is an error naming it.
func encode(codec netcore.FrameCodec, cmds [][]string) ([]byte, error) {
	var reqs []byte
	var strs [][]byte
	for i, cmd := range cmds {
		strs = strs[:0]
		for _, a := range cmd {
			strs = append(strs, []byte(a))
		}
		var err error
		reqs, err = codec.AppendHeader(reqs, kvproto.RequestSize(strs...))
		if err != nil {
			return nil, fmt.Errorf("command %d (%.40q): %w", i+1, cmd, err)
		}
		reqs = kvproto.AppendRequest(reqs, strs...)
	}
	return reqs, nil
}

// exchange writes reqs (n request frames) to c in one Write, then reads n
// reply frames and prints each.
func exchange(c io.ReadWriter, codec netcore.FrameCodec, reqs []byte, n int, out io.Writer) error {
	if _, err := c.Write(reqs); err != nil {
		return err
	}
	fr := netcore.NewFrameReader(c, codec)
	for i := range n {
		payload, err := fr.Next()
		if err != nil {
			return fmt.Errorf("reply %d of %d: %w", i+1, n, err)
		}
		st, data, err := kvproto.ParseReply(payload)
		if err != nil {
			return fmt.Errorf("reply %d of %d: %w", i+1, n, err)
		}
		if _, err := fmt.Fprintf(out, "server says: [%d] %s\n", uint32(st), data); err != nil {
			return err
		}
	}
	return nil
}
