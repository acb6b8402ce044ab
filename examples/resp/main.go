//go:build linux

// Command resp is a small Redis-compatible server on netcore: an in-memory
// key space served in RESP, the protocol of redis-cli and redis-benchmark.
//
//	go run ./examples/resp                       # listens on 127.0.0.1:6379
//	go run ./examples/resp -addr 127.0.0.1:0     # a free port; the first line says which
//	go run ./examples/resp -mode server          # a goroutine per connection instead of event loops
//	go run ./examples/resp -unixsocket /tmp/resp.sock           # TCP and a Unix socket: redis-cli -s /tmp/resp.sock
//	go run ./examples/resp -addr "" -unixsocket /tmp/resp.sock # the Unix socket alone
//	go run ./examples/resp -port 0 -tls-port 6380 -tls-cert-file c.pem -tls-key-file k.pem -tls-auth-clients no # TLS alone
//	redis-cli -p 6379 set greeting hello
//	redis-benchmark -p 6379 -t ping,set,get -q
//
// It runs PING, ECHO, SET, GET, DEL, EXISTS, INCR and QUIT, in RESP arrays
// or as inline commands, and answers what clients ask at start-up (CONFIG
// GET, COMMAND, COMMAND DOCS, HELLO 2, CLIENT SETNAME/SETINFO/GETNAME/ID,
// SELECT 0) minimally. Bad input is handled as Redis handles it: a protocol
// error is answered "-ERR Protocol error: ..." and the connection closed; a
// bulk string longer than -max-bulk is refused as soon as its length is
// read, before anything is allocated for it; an unknown command gets
// "-ERR unknown command ...".
//
// The protocol lives in Session.Serve, a function over byte slices with no
// I/O: it consumes the complete commands at the start of its input and
// appends their replies to an output slice. Each -mode wraps it around a way
// of doing I/O; see modes. The default, -mode loop, serves every connection
// on a few event loops (netcore.Loop); -mode server runs a goroutine per
// connection (netcore.Server).
package main

import (
	"context"
	"crypto/tls"
	"errors"
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

// DefaultMaxQuery is the largest incomplete command buffered for one
// client by default, Redis's client-query-buffer-limit (1 GiB); the
// -max-query flag changes it. Like DefaultMaxBulk it is a bound, not an
// allocation: input buffers grow as bytes arrive.
const DefaultMaxQuery = 1 << 30

// config is what every mode needs besides the address.
type config struct {
	maxBulk  int                 // longest bulk string accepted
	maxQuery int                 // largest incomplete command buffered for one connection
	blocking bool                // netcore's blocking fast path (Server mode)
	loops    int                 // event loops (Loop mode); 0 means GOMAXPROCS
	spinWait time.Duration       // Loop mode: Loop.SpinWait
	backend  netcore.LoopBackend // Loop mode: Loop.Backend
	// unixSocket, if set, is a Unix socket path to listen on as well
	// (redis-server's unixsocket): besides addr, or alone if addr is "".
	unixSocket string
	// tlsAddr, if set, is a TCP address to serve TLS on with tls
	// (redis-server's tls-port).
	tlsAddr string
	tls     *tls.Config
	// tlsHandshakeTimeout bounds a TLS handshake in either mode
	// (netcore.DefaultTLSHandshakeTimeout if 0).
	tlsHandshakeTimeout time.Duration
	logger              *slog.Logger
}

// An endpoint is a listener a mode serves, and whether it speaks TLS.
type endpoint struct {
	l   net.Listener
	tls bool
}

// String is the endpoint's address, "(TLS)" after it for TLS.
func (e endpoint) String() string {
	if e.tls {
		return e.l.Addr().String() + " (TLS)"
	}
	return e.l.Addr().String()
}

// A mode serves the Store on addr (TCP, unless ""), cfg.tlsAddr (TLS,
// unless "") and cfg.unixSocket (unless "") until ctx is cancelled, then
// shuts down gracefully and returns nil (or returns the error that
// stopped it). It calls ready with its listeners, in that order, once it
// accepts connections.
//
// Each mode keeps a *Session (from store.NewSession(cfg.maxBulk)) per
// connection and, whenever input arrives, calls
//
//	n, out, closeConn := sess.Serve(input, output)
//
// in a loop while n > 0, where input is the connection's unconsumed input
// bytes; it consumes n bytes of input, writes out, and closes after
// writing if closeConn. serveConn does it over a Conn, loopHandler.OnData
// over a LoopConn's buffers.
var modes = map[string]func(ctx context.Context, addr string, store *Store, cfg config, ready func([]endpoint)) error{
	"loop":   runLoop,
	"server": runServer,
}

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "TCP address to listen on (host:port; port 0 picks a free one; empty: none, with -unixsocket)")
	port := flag.Int("port", -1, "TCP port, as redis-server's port: replaces -addr's port; 0 turns plain TCP off (TLS alone, with -tls-port); -1: -addr's")
	tlsPort := flag.Int("tls-port", 0, "port to serve TLS on, on -addr's host, as redis-server's tls-port (0: no TLS)")
	var tf tlsFlags
	flag.StringVar(&tf.certFile, "tls-cert-file", "", "TLS: the server's certificate (PEM; a chain, leaf first)")
	flag.StringVar(&tf.keyFile, "tls-key-file", "", "TLS: the server certificate's private key (PEM)")
	flag.StringVar(&tf.caFile, "tls-ca-cert-file", "", "TLS: the authority that signs client certificates (PEM); needed unless -tls-auth-clients no")
	flag.StringVar(&tf.authClients, "tls-auth-clients", "yes", "TLS: client certificates: yes (required, as redis-server's default), optional (verified if sent) or no (not asked for)")
	flag.StringVar(&tf.protocols, "tls-protocols", defaultTLSProtocols, "TLS: the versions taken, of TLSv1, TLSv1.1, TLSv1.2 and TLSv1.3 (a range)")
	unixSocket := flag.String("unixsocket", "", "Unix socket path to listen on too, as redis-server's unixsocket (\"@name\": the abstract namespace); a stale socket file there is replaced")
	mode := flag.String("mode", "loop", "how connections are served: loop (netcore.Loop, event loops) or server (netcore.Server, a goroutine per connection)")
	loops := flag.Int("loops", 0, "loop mode: number of event loops (0: GOMAXPROCS)")
	var backend netcore.LoopBackend
	flag.Var(&backend, "backend", "loop mode: how the loops wait and make their I/O: epoll, io_uring or best (io_uring where it can be used); unset: epoll, or what $"+netcore.BackendEnv+" names")
	spinWait := flag.Duration("spin-wait", 0, "loop mode: how long a loop polls for new requests before it sleeps (netcore.Loop.SpinWait; 0: never)")
	maxBulk := flag.Int("max-bulk", DefaultMaxBulk, "longest bulk string (argument) accepted, in bytes")
	maxQuery := flag.Int("max-query", DefaultMaxQuery, "largest incomplete command buffered for one client, in bytes")
	blocking := flag.Bool("blocking", false, "server mode: use netcore's blocking fast path (a thread per blocked connection)")
	flag.Parse()
	run, ok := modes[*mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "resp: unknown -mode %q\n", *mode)
		os.Exit(2)
	}
	if *loops < 0 {
		fmt.Fprintf(os.Stderr, "resp: -loops %d must be 0 (GOMAXPROCS) or more\n", *loops)
		os.Exit(2)
	}
	if *spinWait < 0 {
		fmt.Fprintf(os.Stderr, "resp: -spin-wait %v must be 0 (never) or more\n", *spinWait)
		os.Exit(2)
	}
	plainAddr, tlsAddr, err := listenAddrs(*addr, *port, *tlsPort)
	if err != nil {
		fmt.Fprintln(os.Stderr, "resp:", err)
		os.Exit(2)
	}
	if plainAddr == "" && tlsAddr == "" && *unixSocket == "" {
		fmt.Fprintln(os.Stderr, "resp: no TCP address (-addr, -port), no -tls-port and no -unixsocket: nothing to listen on")
		os.Exit(2)
	}
	tlsConfig, err := tf.setup(tlsAddr != "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "resp:", err)
		os.Exit(2)
	}
	if *maxBulk <= 0 || *maxQuery < *maxBulk {
		fmt.Fprintf(os.Stderr, "resp: -max-bulk %d must be positive and at most -max-query %d\n", *maxBulk, *maxQuery)
		os.Exit(2)
	}
	cfg := config{
		maxBulk:    *maxBulk,
		maxQuery:   *maxQuery,
		blocking:   *blocking,
		loops:      *loops,
		spinWait:   *spinWait,
		backend:    backend,
		unixSocket: *unixSocket,
		tlsAddr:    tlsAddr,
		tls:        tlsConfig,
		logger:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = run(ctx, plainAddr, NewStore(), cfg, func(eps []endpoint) {
		for _, e := range eps {
			fmt.Println("listening on", e)
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "resp:", err)
		os.Exit(1)
	}
}

// runServer is -mode server: a netcore.Server, one goroutine per
// connection, each running serveConn.
//
// A TLS listener is wrapped by tls.NewListener: the handshake runs in the
// connection's goroutine, first, bounded by cfg.tlsHandshakeTimeout as
// the Loop bounds its handshakes (tls.NewListener alone has no bound).
func runServer(ctx context.Context, addr string, store *Store, cfg config, ready func([]endpoint)) error {
	eps, err := listenAll(ctx, addr, cfg)
	if err != nil {
		return err
	}
	srv := &netcore.Server{
		Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
			if tc, ok := c.(*tls.Conn); ok && !handshake(ctx, tc, cfg) {
				return
			}
			serveConn(c, store, cfg)
		}),
		Logger: cfg.logger,
	}
	served := make(chan error, len(eps))
	for _, e := range eps {
		l := e.l
		if e.tls {
			l = tls.NewListener(l, cfg.tls)
		}
		go func() { served <- srv.Serve(l) }()
	}
	ready(eps)
	select {
	case err := <-served:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	// A handler waiting in Read for a client's next command holds Shutdown
	// up until this grace period ends and the Server closes what is left;
	// a command in progress takes microseconds.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// handshake runs a TLS connection's handshake within
// cfg.tlsHandshakeTimeout, and logs a failure as the Loop does.
func handshake(ctx context.Context, tc *tls.Conn, cfg config) bool {
	d := cfg.tlsHandshakeTimeout
	if d == 0 {
		d = netcore.DefaultTLSHandshakeTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		cfg.logger.Info("resp: TLS handshake failed; closing the connection", "remote", tc.RemoteAddr().String(), "err", err)
		return false
	}
	return true
}

// listenAll opens the listeners of a mode: TCP on addr unless it is
// empty, TLS on cfg.tlsAddr unless it is empty, and the Unix socket
// cfg.unixSocket unless it is empty. As redis-server does, a socket file
// left at that path (by a server that was killed) is removed first; any
// other file there is left alone, and Listen then fails.
func listenAll(ctx context.Context, addr string, cfg config) ([]endpoint, error) {
	lc := netcore.ListenConfig{Blocking: cfg.blocking}
	var eps []endpoint
	listen := func(network, address string, isTLS bool) error {
		l, err := lc.Listen(ctx, network, address)
		if err != nil {
			for _, e := range eps {
				e.l.Close()
			}
			return err
		}
		eps = append(eps, endpoint{l, isTLS})
		return nil
	}
	if addr != "" {
		if err := listen("tcp", addr, false); err != nil {
			return nil, err
		}
	}
	if cfg.tlsAddr != "" {
		if err := listen("tcp", cfg.tlsAddr, true); err != nil {
			return nil, err
		}
	}
	if p := cfg.unixSocket; p != "" {
		if fi, err := os.Lstat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
			os.Remove(p)
		}
		if err := listen("unix", p, false); err != nil {
			return nil, err
		}
	}
	return eps, nil
}

// readBuffer is a connection's input buffer between commands, Redis's
// PROTO_IOBUF_LEN.
const readBuffer = 16 << 10

// keptReply is the capacity of the reply slice a connection keeps from one
// batch of replies to the next: enough for a pipeline of small replies, so
// that those cost no allocation. A batch that needs more grows a larger
// slice, which is dropped once written: an idle connection keeps at most
// keptReply bytes of reply slice, whatever it answered last.
const keptReply = 4 << 10

// keepReply returns the slice to build the next batch of replies in: out
// emptied, or nil if it has grown past keptReply.
func keepReply(out []byte) []byte {
	if cap(out) > keptReply {
		return nil
	}
	return out[:0]
}

// serveConn serves one connection: read what has arrived into the
// connection's input buffer, let the Session run every complete command in
// it, write the replies (one Write per batch of about 64 KiB), repeat. An
// incomplete command stays at the front of the buffer until the rest
// comes; the buffer doubles (up to cfg.maxQuery) when a command fills it,
// so it grows with the bytes that arrived, never with a length a command
// claims. Once every buffered command is answered, an input buffer that
// grew is replaced by a readBuffer-sized one, and the reply slice is kept
// only if it is at most keptReply bytes: an idle connection holds at most
// readBuffer+keptReply bytes of buffers.
func serveConn(c net.Conn, store *Store, cfg config) {
	sess := store.NewSession(cfg.maxBulk)
	buf := make([]byte, readBuffer)
	var out []byte
	r, w := 0, 0 // buf[r:w] is read but not yet consumed
	for {
		n, rerr := c.Read(buf[w:])
		w += n
		k, ok := serveInput(c, sess, buf[r:w], &out)
		r += k
		out = keepReply(out)
		if !ok || rerr != nil {
			return // QUIT, a protocol error, EOF, or the connection failed; the Server closes it
		}
		switch {
		case r == w:
			r, w = 0, 0
			if len(buf) > readBuffer {
				buf = make([]byte, readBuffer)
			}
		case w == len(buf) && r > 0:
			w = copy(buf, buf[r:w])
			r = 0
		case w == len(buf):
			if len(buf) >= cfg.maxQuery {
				msg := fmt.Sprintf("-ERR Protocol error: a command over the query buffer limit of %d bytes\r\n", cfg.maxQuery)
				c.Write([]byte(msg))
				return
			}
			nb := make([]byte, min(2*len(buf), cfg.maxQuery))
			w = copy(nb, buf[r:w])
			buf, r = nb, 0
		}
	}
}

// serveInput runs the complete commands at the start of in, building
// replies in *outp and writing them to c whenever Serve returns a batch.
// It returns how many bytes of in it consumed, and false if the connection
// must be closed (after QUIT or a protocol error, whose replies are
// written first, or a failed Write).
func serveInput(c net.Conn, sess *Session, in []byte, outp *[]byte) (consumed int, ok bool) {
	for {
		k, out, closeConn := sess.Serve(in[consumed:], (*outp)[:0])
		*outp, consumed = out, consumed+k
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return consumed, false
			}
		}
		if closeConn {
			return consumed, false
		}
		if k == 0 {
			return consumed, true
		}
	}
}
