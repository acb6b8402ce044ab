//go:build linux

// Command client is the tutorial's client, built on netcore: it sends a
// message, prints the server's answer and exits.
//
//	go run ./cmd/client                        # says hello to 127.0.0.1:1234
//	go run ./cmd/client -msg ping -addr [::1]:1234
//	go run ./cmd/client -bind 127.0.0.2        # from a chosen source address
//
// With -framed it speaks the book's protocol (a 4-byte little-endian length,
// then up to 4096 bytes): it sends every request at once, pipelined, then
// prints each answer in order.
//
//	go run ./cmd/client -framed hello1 hello2 hello3
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1234", "server address (host:port); a path, or @name, is a Unix socket")
	msg := flag.String("msg", "hello", "message to send (with -framed, when no requests are given as arguments)")
	bind := flag.String("bind", "", "source address: an IP, or IP:port")
	timeout := flag.Duration("timeout", 5*time.Second, "bound on connecting, and on the whole exchange (0: no limit)")
	framed := flag.Bool("framed", false, "the book's protocol: each argument is a request, sent pipelined; answers printed in order")
	flag.Parse()
	if !*framed && flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "client: unexpected arguments %q (requests as arguments need -framed)\n", flag.Args())
		os.Exit(2)
	}
	c, err := dial(*addr, *bind, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	defer c.Close()
	if *framed {
		reqs := flag.Args()
		if len(reqs) == 0 {
			reqs = []string{*msg}
		}
		err = exchangeFramed(c, reqs, os.Stdout)
	} else {
		var answer []byte
		if answer, err = exchange(c, *msg); err == nil {
			fmt.Printf("server says: %s\n", answer)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		c.Close()
		os.Exit(1)
	}
}

// dial connects, from bind if it is set, within timeout (0: no limit), and
// bounds the whole exchange by the same timeout.
func dial(addr, bind string, timeout time.Duration) (*netcore.Conn, error) {
	d := netcore.Dialer{Timeout: timeout, Blocking: true}
	if bind != "" {
		src, err := parseSource(bind)
		if err != nil {
			return nil, err
		}
		d.LocalAddr = src
	}
	network := "tcp"
	if addr != "" && strings.ContainsRune("/.@", rune(addr[0])) {
		network = "unix" // a path, or an abstract name
	}
	c, err := d.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	if timeout > 0 { // 0 means no limit, not a deadline of "now"
		c.SetDeadline(time.Now().Add(timeout))
	}
	return c, nil
}

// exchange is the tutorial's: write msg, read until the server closes.
func exchange(c *netcore.Conn, msg string) ([]byte, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

// book is the book's framing: a 4-byte little-endian length, at most 4096
// bytes of payload.
var book, _ = netcore.NewFrameCodec(4, binary.LittleEndian, 4096)

// exchangeFramed writes every request in one write (pipelined), then reads
// one answer per request, in order, and prints each.
func exchangeFramed(c *netcore.Conn, reqs []string, out io.Writer) error {
	var buf []byte
	for _, r := range reqs {
		var err error
		if buf, err = book.Append(buf, []byte(r)); err != nil {
			return fmt.Errorf("request %q...: %w", r[:min(len(r), 20)], err)
		}
	}
	if _, err := c.Write(buf); err != nil {
		return err
	}
	c.CloseWrite() // no more requests: the server sees EOF after the last answer
	fr := netcore.NewFrameReader(c, book)
	for i := range reqs {
		answer, err := fr.Next()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("answer %d of %d: %w", i+1, len(reqs), err)
		}
		if _, err := fmt.Fprintf(out, "server says: %s\n", answer); err != nil {
			return err
		}
	}
	return nil
}

// parseSource accepts "127.0.0.2" (any port) or "127.0.0.2:5000".
func parseSource(s string) (netcore.Sockaddr, error) {
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(s, "0")
	}
	sa, err := netcore.ParseSockaddr(s)
	if err != nil {
		return netcore.Sockaddr{}, fmt.Errorf("bad -bind: %w", err)
	}
	return sa, nil
}
