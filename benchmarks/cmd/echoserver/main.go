//go:build linux

// Command echoserver runs one of the benchmarks' echo servers in its own
// process, as the benchmarks do:
//
//	go run ./cmd/echoserver -impl gnet
//
// It prints its address (and a TLS implementation, such as net-tls, its
// self-signed certificate on the next line, DER in base64: a client trusts
// it as its root), then answers every line on stdin with one line of
// counters: CPU time in ns (user + system), RSS and peak RSS in bytes,
// context switches and Go heap allocations (a line "heap": with the bytes
// of Go heap objects and stacks after a garbage collection instead). It
// stops at the end of stdin.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/netcore-dev/netcore/benchmarks"
)

func main() {
	var names []string
	for _, impl := range benchmarks.Impls {
		names = append(names, impl.Name)
	}
	impl := flag.String("impl", "net", "the implementation: "+strings.Join(names, ", "))
	addr := flag.String("addr", "127.0.0.1:0", "the address to listen on (port 0: the kernel chooses)")
	flag.Parse()
	if err := benchmarks.Serve(*impl, *addr, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
}
