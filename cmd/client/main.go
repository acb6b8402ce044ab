//go:build linux

// Command client is the tutorial's client, built on netcore: it sends a
// message, prints the server's answer and exits.
//
//	go run ./cmd/client                        # says hello to 127.0.0.1:1234
//	go run ./cmd/client -msg ping -addr [::1]:1234
//	go run ./cmd/client -bind 127.0.0.2        # from a chosen source address
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1234", "server address (host:port)")
	msg := flag.String("msg", "hello", "message to send")
	bind := flag.String("bind", "", "source address: an IP, or IP:port")
	timeout := flag.Duration("timeout", 5*time.Second, "bound on connecting, and on the whole exchange")
	flag.Parse()
	answer, err := run(*addr, *msg, *bind, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	fmt.Printf("server says: %s\n", answer)
}

func run(addr, msg, bind string, timeout time.Duration) ([]byte, error) {
	d := netcore.Dialer{Timeout: timeout, Blocking: true}
	if bind != "" {
		src, err := parseSource(bind)
		if err != nil {
			return nil, err
		}
		d.LocalAddr = src
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return nil, err
	}
	// The server answers once and closes: read until EOF.
	return io.ReadAll(c)
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
