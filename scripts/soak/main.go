// Command soak runs netcore's servers, one after another, against a mixed
// population of clients on loopback for a bounded time, and checks what a
// user of a long-running server cares about: every reply to a well-behaved
// client arrives byte for byte, clients that misbehave are dropped by the
// configured limits, memory stays within a bound derived from those limits,
// and once the clients are gone the server's descriptors and goroutines are
// back to where they started.
//
// The servers are netcore.Server in the default mode (-servers server), the
// same in blocking mode (blocking), netcore.Loop (loop), Loop.ServeTLS
// (loop-tls) and netcore.Server with TLSConfig (server-tls, not in the
// default set: the reference for loop-tls), each speaking one echo
// protocol: a 4-byte big-endian length, then that many bytes (at
// most 64 KiB), answered with the same frame. A header claiming more is
// answered with one frame naming the error, and the connection is closed.
//
// The program has three roles. By default it is the driver: for each server
// it starts itself with -role server in a child process, then with -role
// client in another, watches the server from outside (/proc/PID) and through
// a line protocol on the server's stdin and stdout ("stats", "quit"), and
// prints a table. It exits 1 if any check failed.
//
//	go run ./scripts/soak [-time 60s] [-servers server,blocking,loop,loop-tls] [-clients pipeline=16,...]
//
// scripts/soak.sh builds and runs it, taking the time from SOAK_TIME.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// defaultServers are the servers soaked by default.
const defaultServers = "server,blocking,loop,loop-tls"

// maxPayload is the protocol's largest payload.
const maxPayload = 64 << 10

// codec is the protocol's framing.
var codec, _ = netcore.NewFrameCodec(4, binary.BigEndian, maxPayload)

// limits are the servers' configured limits, shared by the three roles:
// the server applies them, the client knows how soon they must act, the
// driver derives its memory bound from them.
type limits struct {
	MaxConns      int           // Server.MaxConns
	IdleTimeout   time.Duration // Server.IdleTimeout, Loop.IdleTimeout
	WriteTimeout  time.Duration // the Server handler's write deadline per reply batch
	MaxInput      int           // Loop.MaxInput
	MaxOutput     int           // Loop.MaxOutput
	LingerTimeout time.Duration // Server.LingerTimeout, Loop.LingerTimeout
	// Loop.TLSHandshakeTimeout, Server.HandshakeTimeout (the TLS servers):
	// below IdleTimeout, so that it is what cuts a stalled handshake.
	HandshakeTimeout time.Duration
}

func (lim *limits) flags(fs *flag.FlagSet) {
	fs.IntVar(&lim.MaxConns, "max-conns", 32, "Server.MaxConns")
	fs.DurationVar(&lim.IdleTimeout, "idle", 3*time.Second, "Server.IdleTimeout and Loop.IdleTimeout")
	fs.DurationVar(&lim.WriteTimeout, "write-timeout", 3*time.Second, "the Server handler's write deadline for each batch of replies (the Server's IdleTimeout bounds reads only); 0 for none")
	fs.IntVar(&lim.MaxInput, "max-input", 128<<10, "Loop.MaxInput (at least a whole frame: 4+65536 bytes)")
	fs.IntVar(&lim.MaxOutput, "max-output", 512<<10, "Loop.MaxOutput")
	fs.DurationVar(&lim.LingerTimeout, "linger", netcore.DefaultLingerTimeout, "Server.LingerTimeout and Loop.LingerTimeout")
	fs.DurationVar(&lim.HandshakeTimeout, "handshake-timeout", 2*time.Second, "Loop.TLSHandshakeTimeout and Server.HandshakeTimeout (loop-tls, server-tls)")
}

// args returns the flags that give a child process the same limits.
func (lim limits) args() []string {
	return []string{
		fmt.Sprintf("-max-conns=%d", lim.MaxConns),
		fmt.Sprintf("-idle=%s", lim.IdleTimeout),
		fmt.Sprintf("-write-timeout=%s", lim.WriteTimeout),
		fmt.Sprintf("-max-input=%d", lim.MaxInput),
		fmt.Sprintf("-max-output=%d", lim.MaxOutput),
		fmt.Sprintf("-linger=%s", lim.LingerTimeout),
		fmt.Sprintf("-handshake-timeout=%s", lim.HandshakeTimeout),
	}
}

// dropBound is how long the server's limits may take to drop a client
// that stopped reading, counted from when the client's writes stalled.
func (lim limits) dropBound() time.Duration {
	return lim.IdleTimeout + lim.WriteTimeout + lim.LingerTimeout + 5*time.Second
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is main with its arguments, returning the exit status.
func run(args []string) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	role := fs.String("role", "driver", "driver, server or client")
	var lim limits
	lim.flags(fs)
	var d driverConfig
	fs.DurationVar(&d.Time, "time", 60*time.Second, "driver, client: how long the clients run against each server")
	fs.StringVar(&d.Servers, "servers", defaultServers, "driver: the servers to soak, in this order (server, blocking, loop, loop-tls, server-tls)")
	fs.StringVar(&d.Clients, "clients", defaultMix, "driver, client: how many clients of each kind run at once")
	fs.Int64Var(&d.Seed, "seed", 0, "driver, client: random seed (0: from the clock; printed)")
	mode := fs.String("mode", "", "server: server, blocking, loop, loop-tls or server-tls")
	addr := fs.String("addr", "", "client: the server's address")
	cert := fs.String("cert", "", "client: the TLS server's certificate (DER, base64), which the clients trust; none for a plaintext server")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: soak [-time 60s] [-servers server,blocking,loop,loop-tls] [-clients kind=n,...] [limits]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if lim.MaxInput < 4+maxPayload {
		fmt.Fprintf(os.Stderr, "soak: -max-input %d is less than a whole frame (%d bytes)\n", lim.MaxInput, 4+maxPayload)
		return 2
	}
	var err error
	switch *role {
	case "driver":
		d.Limits = lim
		var ok bool
		ok, err = drive(d, os.Stdout)
		if err == nil && !ok {
			return 1
		}
	case "server":
		err = serve(*mode, lim, os.Stdin, os.Stdout)
	case "client":
		mix, perr := parseMix(d.Clients)
		if perr != nil {
			err = perr
			break
		}
		cfg := clientConfig{Addr: *addr, Time: d.Time, Mix: mix, Seed: d.Seed, Limits: lim}
		if *cert != "" {
			if cfg.TLS, err = clientTLSConfig(*cert); err != nil {
				break
			}
		}
		err = runClients(cfg, os.Stdout, os.Stderr)
	default:
		err = fmt.Errorf("unknown -role %q (driver, server or client)", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	return 0
}
