package netcore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// The defaults of Loop's limits, used where a field is zero.
const (
	DefaultMaxInput        = 1 << 20   // 1 MiB
	DefaultOutputHighWater = 256 << 10 // 256 KiB
	DefaultOutputLowWater  = 64 << 10  // 64 KiB
	DefaultMaxOutput       = 4 << 20   // 4 MiB
	DefaultLingerTimeout   = 2 * time.Second
	// DefaultTLSHandshakeTimeout bounds a TLS handshake on a Loop.
	DefaultTLSHandshakeTimeout = 10 * time.Second
)

// Errors a LoopConn is closed with (its LoopHandler's OnClose gets them),
// and Loop.Serve's error after Shutdown or Close. A breached limit comes as
// a *LimitError that matches one of ErrInputLimit, ErrOutputLimit and
// ErrIdleTimeout under errors.Is.
var (
	// ErrLoopClosed: Serve returns it after Shutdown or Close, and the
	// connections those close get it.
	ErrLoopClosed = errors.New("netcore: loop closed")
	// ErrInputLimit: the input buffer reached MaxInput and the handler
	// consumed nothing of it.
	ErrInputLimit = errors.New("netcore: input buffer limit reached")
	// ErrOutputLimit: the output buffer would have passed MaxOutput.
	ErrOutputLimit = errors.New("netcore: output buffer limit exceeded")
	// ErrIdleTimeout: nothing was read or written for IdleTimeout.
	ErrIdleTimeout = errors.New("netcore: idle timeout")
	// ErrHandlerPanic: a LoopHandler callback panicked; the panic value is
	// in the error's text.
	ErrHandlerPanic = errors.New("netcore: loop handler panicked")
)

// LimitError reports which of a Loop's limits a connection breached and
// the limit's value. errors.Is matches it with ErrInputLimit,
// ErrOutputLimit or ErrIdleTimeout.
type LimitError struct {
	Limit string // the Loop field: "MaxInput", "MaxOutput" or "IdleTimeout"
	Value int64  // the field's value: bytes, or nanoseconds for IdleTimeout
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case "IdleTimeout":
		return fmt.Sprintf("netcore: connection idle for IdleTimeout (%v)", time.Duration(e.Value))
	case "MaxInput":
		return fmt.Sprintf("netcore: input buffer full at MaxInput (%d bytes) and the handler consumed none of it", e.Value)
	}
	return fmt.Sprintf("netcore: output buffer would exceed %s (%d bytes)", e.Limit, e.Value)
}

// Unwrap returns the sentinel error of the limit.
func (e *LimitError) Unwrap() error {
	switch e.Limit {
	case "MaxInput":
		return ErrInputLimit
	case "IdleTimeout":
		return ErrIdleTimeout
	}
	return ErrOutputLimit
}

// A LoopHandler serves the connections of a Loop. Its methods are called
// on the connection's event loop, one at a time per loop, and must not
// block: a loop serves many connections, and while a callback runs none of
// its other connections is served. Work that blocks belongs on another
// goroutine: mark it with LoopConn.Hold, answer with LoopConn.Send or
// LoopConn.Execute, then Release.
//
// A callback that panics is recovered and logged, and its connection is
// closed with an error matching ErrHandlerPanic.
type LoopHandler interface {
	// OnOpen is called once, first, for a new connection. It may write.
	OnOpen(c *LoopConn)
	// OnData is called when new bytes have arrived: all unconsumed input
	// is in c.Peek; the handler consumes what it has used (Discard, Next)
	// and writes its answers (Write). Input left unconsumed is offered
	// again with the next bytes that arrive, and, if the handler stopped
	// because c.OutputFull(), once the output has drained to the low
	// watermark. Answers written in one callback, or in several in one
	// loop iteration, go out in one write(2).
	OnData(c *LoopConn)
	// OnEOF is called when the peer has half-closed (sent FIN): no more
	// input will come. The handler may still write; the connection is
	// closed once its output is flushed and no work is held (Hold).
	OnEOF(c *LoopConn)
	// OnClose is called once, last, when the connection has been closed.
	// err is why: nil after Close, io.EOF after the peer's FIN, ErrLoopClosed
	// at Shutdown or Close, a *LimitError, an error matching
	// os.ErrDeadlineExceeded (SetDeadline), one matching ErrHandlerPanic,
	// or the failed system call (ECONNRESET, EPIPE, ...).
	OnClose(c *LoopConn, err error)
}

// LoopStats is a snapshot of a Loop's connections and buffer memory.
type LoopStats struct {
	Conns        int   // connections open
	InputBytes   int64 // bytes of buffer memory held for unconsumed input
	OutputBytes  int64 // bytes of buffer memory held for output not yet written, queued Sends included
	Accepted     int64 // connections accepted since the Loop started
	AcceptLimits int64 // accept4 failures for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)
	// ConnsPerLoop is Conns loop by loop: how the connections are spread
	// (each is served by the loop that accepted it).
	ConnsPerLoop []int
	// TLSHandshakes counts the TLS handshakes that succeeded (ServeTLS,
	// StartTLS); TLSHandshakeErrors those that failed, timed out or were
	// cut short by the connection's end.
	TLSHandshakes, TLSHandshakeErrors int64
}

// LoopBackend is how a Loop's event loops wait for I/O and make it. It is
// a flag.Value: "epoll", "io_uring" or "best".
type LoopBackend uint8

const (
	// BackendDefault (the zero value) is BackendEpoll, unless the
	// environment variable NETCORE_LOOP_BACKEND names another backend
	// ("epoll", "io_uring" or "best"): a way to try io_uring in a program
	// without changing it (the test suite runs on either so).
	BackendDefault LoopBackend = iota
	// BackendEpoll: each loop waits in its own epoll instance and makes
	// a read(2) or write(2) per ready connection.
	BackendEpoll
	// BackendIOUring: each loop has its own io_uring instance, with a
	// receive armed per connection into a ring of buffers the loop
	// provides, and every send of an iteration submitted in its one
	// io_uring_enter. Serve fails, saying why, where io_uring cannot be
	// used (kernel.io_uring_disabled, a seccomp filter, an old kernel, a
	// missing operation). See the README's "io_uring" section.
	BackendIOUring
	// BackendBest is io_uring where it can be used, and epoll otherwise:
	// then the Loop logs why, once, at Info.
	BackendBest
)

// BackendEnv is the environment variable BackendDefault follows.
const BackendEnv = "NETCORE_LOOP_BACKEND"

var backendNames = [...]string{BackendDefault: "", BackendEpoll: "epoll", BackendIOUring: "io_uring", BackendBest: "best"}

func (b LoopBackend) String() string {
	if int(b) < len(backendNames) && b != BackendDefault {
		return backendNames[b]
	}
	if b == BackendDefault {
		return "default"
	}
	return fmt.Sprintf("LoopBackend(%d)", uint8(b))
}

// Set sets b from its name: "epoll", "io_uring" or "best" ("" or
// "default": BackendDefault).
func (b *LoopBackend) Set(name string) error {
	for i, n := range backendNames {
		if name == n || (name == "default" && i == 0) {
			*b = LoopBackend(i)
			return nil
		}
	}
	return fmt.Errorf("netcore: no Loop backend %q (want epoll, io_uring or best)", name)
}

// Loop serves connections on a few event loops instead of a goroutine per
// connection: each loop is a goroutine locked to its own OS thread, waiting
// in its own epoll instance, that reads, calls Handler and writes for every
// connection it owns. See the README's "Event loop" section.
//
// Zero fields take their defaults. The fields must not change after the
// first Serve.
type Loop struct {
	// Handler serves every connection. It must be set.
	Handler LoopHandler
	// Loops is the number of event loops; 0 means runtime.GOMAXPROCS(0).
	Loops int
	// ReusePort gives each loop a listening socket of its own: Serve
	// opens Loops-1 more on the listener's address, in its SO_REUSEPORT
	// group, and the kernel spreads new connections among them by a hash
	// of their addresses. The listener must have SO_REUSEPORT set
	// (ListenConfig{ReusePort: true}). Without it (the default) every
	// loop watches the one listening socket, with EPOLLEXCLUSIVE: a new
	// connection wakes one waiting loop, which accepts it and owns it.
	// Either way a connection is served by the loop that accepted it.
	ReusePort bool
	// MaxInput bounds a connection's unconsumed input, in bytes
	// (DefaultMaxInput if 0). When the buffer is full and OnData consumed
	// none of it, the connection is closed with a *LimitError
	// (ErrInputLimit).
	MaxInput int
	// OutputHighWater: while more output than this is buffered, the loop
	// stops reading from the connection (DefaultOutputHighWater if 0,
	// capped at MaxOutput)...
	OutputHighWater int
	// OutputLowWater: ...until it has drained to this many bytes
	// (DefaultOutputLowWater if 0, capped at OutputHighWater).
	OutputLowWater int
	// MaxOutput is the hard bound on a connection's buffered output, in
	// bytes (DefaultMaxOutput if 0): a Write or Send that would pass it
	// closes the connection with a *LimitError (ErrOutputLimit), logged.
	MaxOutput int
	// IdleTimeout > 0 closes a connection on which nothing was read or
	// written for that long, with a *LimitError (ErrIdleTimeout). 0 (the
	// default) means no timeout.
	IdleTimeout time.Duration
	// LingerTimeout bounds a lingering close (DefaultLingerTimeout if
	// 0; negative turns lingering off). A connection that its handler
	// closes (LoopConn.Close) before the peer has half-closed is not
	// closed outright, which would answer the peer's unread or later
	// input with a reset that can destroy the reply on its way: once the
	// output is out, the loop shuts the write side down, reads and
	// discards the peer's input until its EOF, and closes the socket
	// then, or after LingerTimeout. OnClose is called when lingering
	// starts; the socket is the loop's alone from then on.
	LingerTimeout time.Duration
	// SpinWait > 0 makes a loop that has just served events poll for
	// new ones (epoll_wait without waiting) for up to that long before it
	// sleeps. 0 (the default) never polls. It trades CPU for latency: a
	// thread asleep in epoll_wait is woken through the scheduler and, on
	// a virtual machine, often the hypervisor (tens of microseconds),
	// while a poll that finds the next request costs one system call.
	// Measured on a 2-vCPU VM (see the README): 50 us halved the p50 of
	// one connection's ping-pong and cost redis-benchmark's 50-client
	// load about a fifth more server CPU per request.
	SpinWait time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake of a connection that
	// ServeTLS accepted or LoopConn.StartTLS turned to TLS
	// (DefaultTLSHandshakeTimeout if 0).
	TLSHandshakeTimeout time.Duration
	// Backend chooses how the loops wait for and make their I/O:
	// BackendEpoll, BackendIOUring or BackendBest; BackendDefault (0) is
	// epoll unless NETCORE_LOOP_BACKEND says otherwise. A handler cannot
	// tell them apart, except by speed.
	Backend LoopBackend
	// Logger receives accept errors, limit breaches and handler panics;
	// nil means slog.Default().
	Logger *slog.Logger

	state loopState
}

func (lp *Loop) logger() *slog.Logger {
	if lp.Logger != nil {
		return lp.Logger
	}
	return slog.Default()
}

// limits is the Loop's limits with defaults filled in and checked.
type limits struct {
	maxInput, high, low, maxOutput int
	idle, linger, spin, handshake  time.Duration
}

func (lp *Loop) limits() (limits, error) {
	lim := limits{lp.MaxInput, lp.OutputHighWater, lp.OutputLowWater, lp.MaxOutput, lp.IdleTimeout, lp.LingerTimeout, lp.SpinWait, lp.TLSHandshakeTimeout}
	if lim.linger == 0 {
		lim.linger = DefaultLingerTimeout
	}

	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"MaxInput", &lim.maxInput, DefaultMaxInput}, {"OutputHighWater", &lim.high, DefaultOutputHighWater},
		{"OutputLowWater", &lim.low, DefaultOutputLowWater}, {"MaxOutput", &lim.maxOutput, DefaultMaxOutput}} {
		if *f.v < 0 {
			return lim, fmt.Errorf("netcore: Loop.%s is %d; it must be positive (or 0 for the default)", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if lp.Loops < 0 {
		return lim, fmt.Errorf("netcore: Loop.Loops is %d; it must be positive (or 0 for GOMAXPROCS)", lp.Loops)
	}
	if lim.spin < 0 {
		return lim, fmt.Errorf("netcore: Loop.SpinWait is %v; it must be positive (or 0 for none)", lim.spin)
	}
	if lim.handshake < 0 {
		return lim, fmt.Errorf("netcore: Loop.TLSHandshakeTimeout is %v; it must be positive (or 0 for the default)", lim.handshake)
	}
	if lim.handshake == 0 {
		lim.handshake = DefaultTLSHandshakeTimeout
	}
	if lim.idle < 0 {
		return lim, fmt.Errorf("netcore: Loop.IdleTimeout is %v; it must be positive (or 0 for none)", lim.idle)
	}
	if lp.OutputHighWater == 0 {
		lim.high = min(lim.high, lim.maxOutput)
	}
	if lp.OutputLowWater == 0 {
		lim.low = min(lim.low, lim.high)
	}
	if lim.high > lim.maxOutput {
		return lim, fmt.Errorf("netcore: Loop.OutputHighWater (%d) is above MaxOutput (%d)", lim.high, lim.maxOutput)
	}
	if lim.low > lim.high {
		return lim, fmt.Errorf("netcore: Loop.OutputLowWater (%d) is above OutputHighWater (%d)", lim.low, lim.high)
	}
	return lim, nil
}
