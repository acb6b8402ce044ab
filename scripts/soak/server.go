package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// flushAt is how many bytes of replies the Server handler gathers before it
// writes them, even if more requests are buffered.
const flushAt = 64 << 10

// serverStats is what the server reports on "stats" and at "quit".
type serverStats struct {
	Goroutines int              `json:"goroutines"`
	Requests   int64            `json:"requests"`  // frames answered
	Bytes      int64            `json:"bytes"`     // payload bytes answered
	Open       int64            `json:"open"`      // connections being served
	PeakOpen   int64            `json:"peak_open"` // most connections served at once
	Accepted   int64            `json:"accepted"`  // connections served in all
	Closes     map[string]int64 `json:"closes"`    // why connections ended, by kind of error
	Logged     map[string]int64 `json:"logged"`    // what the Server or Loop logged, by message

	// The TLS servers': handshakes that succeeded and that failed (the
	// Loop's LoopStats; the Server's handlers that got a *tls.Conn, and
	// its "TLS handshake failed" logs), and goroutines inside a
	// handshake now.
	TLSHandshakes      int64 `json:"tls_handshakes"`
	TLSHandshakeErrors int64 `json:"tls_handshake_errors"`
	Handshaking        int   `json:"handshaking"`
}

// counters are the server's running figures.
type counters struct {
	requests, bytes, open, peak, accepted atomic.Int64
	tlsHandshakes                         atomic.Int64 // the Server's

	mu     sync.Mutex
	closes map[string]int64
}

func (c *counters) opened() {
	c.accepted.Add(1)
	n := c.open.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
}

func (c *counters) closed(err error) {
	c.open.Add(-1)
	c.mu.Lock()
	if c.closes == nil {
		c.closes = make(map[string]int64)
	}
	c.closes[reason(err)]++
	c.mu.Unlock()
}

func (c *counters) served(n int) {
	c.requests.Add(1)
	c.bytes.Add(int64(n))
}

// tlsFailedLog is the message the Server and the Loop log for a failed
// handshake.
const tlsFailedLog = "netcore: TLS handshake failed; closing the connection"

func (c *counters) stats(logs *logCounter) serverStats {
	c.mu.Lock()
	closes := make(map[string]int64, len(c.closes))
	for k, v := range c.closes {
		closes[k] = v
	}
	c.mu.Unlock()
	return serverStats{
		Goroutines: runtime.NumGoroutine(),
		Requests:   c.requests.Load(),
		Bytes:      c.bytes.Load(),
		Open:       c.open.Load(),
		PeakOpen:   c.peak.Load(),
		Accepted:   c.accepted.Load(),
		Closes:     closes,
		Logged:     logs.snapshot(),
	}
}

// reason names the kind of error a connection ended with.
func reason(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "closed"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "eof mid-frame"
	case errors.Is(err, netcore.ErrFrameTooLarge):
		return "frame too large"
	case errors.Is(err, netcore.ErrIdleTimeout):
		return "idle timeout"
	case errors.Is(err, netcore.ErrInputLimit):
		return "input limit"
	case errors.Is(err, netcore.ErrOutputLimit):
		return "output limit"
	case errors.Is(err, netcore.ErrLoopClosed), errors.Is(err, netcore.ErrServerClosed):
		return "shutdown"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "deadline"
	case errors.As(err, &ne) && ne.Timeout():
		return "deadline"
	}
	return "other: " + withoutNumbers(err.Error())
}

// withoutNumbers replaces the words of msg that hold a digit, and those
// after "version" (in hex), with "N", so that errors that differ only in a
// number or an address ("received record with version 1a2b") are counted
// as one kind.
func withoutNumbers(msg string) string {
	words := strings.Fields(msg)
	for i, w := range words {
		if strings.ContainsAny(w, "0123456789") || i > 0 && words[i-1] == "version" {
			words[i] = "N"
		}
	}
	return strings.Join(words, " ")
}

// logCounter is a slog.Handler that counts records by message instead of
// printing them: a soak makes the Server and Loop log every limit breach.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int64
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCounter) WithGroup(string) slog.Handler            { return h }

func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = make(map[string]int64)
	}
	key := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "error" {
			key += ": " + reason(errorOf(a.Value))
		}
		return true
	})
	h.n[key]++
	return nil
}

func errorOf(v slog.Value) error {
	if err, ok := v.Any().(error); ok {
		return err
	}
	return errors.New(v.String())
}

func (h *logCounter) snapshot() map[string]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := make(map[string]int64, len(h.n))
	for k, v := range h.n {
		m[k] = v
	}
	return m
}

// serve is the server role: it serves the protocol on 127.0.0.1 port 0
// with mode's server, prints "listening on ADDR", answers "stats" lines on
// in with "stats {json}" lines on out, and at "quit" (or the end of in)
// shuts down gracefully and prints "bye {json}".
func serve(mode string, lim limits, in io.Reader, out io.Writer) error {
	var cnt counters
	logs := &logCounter{}
	logger := slog.New(logs)
	served := make(chan error, 1)
	var addr net.Addr
	var shutdown func(context.Context) error
	var closed error // what Serve returns after Shutdown
	var tlsConfig *tls.Config
	var certText string
	var tlsStats func(*serverStats)
	if isTLS(mode) {
		cert, text, err := newCertificate()
		if err != nil {
			return err
		}
		tlsConfig, certText = &tls.Config{Certificates: []tls.Certificate{cert}}, text
	}
	switch mode {
	case "server", "blocking", "server-tls":
		l, err := (&netcore.ListenConfig{Blocking: mode == "blocking"}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &netcore.Server{
			Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
				if _, ok := c.(*tls.Conn); ok {
					cnt.tlsHandshakes.Add(1) // the Server calls the handler after the handshake
				}
				cnt.opened()
				cnt.closed(serveConn(ctx, c, lim, &cnt))
			}),
			TLSConfig:        tlsConfig,
			HandshakeTimeout: lim.HandshakeTimeout,
			MaxConns:         lim.MaxConns,
			IdleTimeout:      lim.IdleTimeout,
			LingerTimeout:    lim.LingerTimeout,
			Logger:           logger,
		}
		addr, shutdown, closed = l.Addr(), srv.Shutdown, netcore.ErrServerClosed
		if tlsConfig != nil {
			tlsStats = func(st *serverStats) {
				st.TLSHandshakes = cnt.tlsHandshakes.Load()
				for k, n := range st.Logged {
					if strings.HasPrefix(k, "INFO "+tlsFailedLog) {
						st.TLSHandshakeErrors += n
					}
				}
			}
		}
		go func() { served <- srv.Serve(l) }()
	case "loop", "loop-tls":
		l, err := netcore.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fh := &netcore.FrameHandler{
			Codec: codec,
			OnFrame: func(c *netcore.LoopConn, req []byte) {
				f, err := c.BeginFrame(codec)
				if err != nil {
					return // closed, or over MaxOutput (logged; the connection is closed)
				}
				c.Write(req)
				if f.End() == nil {
					cnt.served(len(req))
				}
			},
			OnFrameError: func(c *netcore.LoopConn, err error) {
				if f, ferr := c.BeginFrame(codec); ferr == nil {
					c.Write([]byte(err.Error()))
					f.End()
				}
			},
			OnOpen:  func(*netcore.LoopConn) { cnt.opened() },
			OnClose: func(_ *netcore.LoopConn, err error) { cnt.closed(err) },
		}
		lp := &netcore.Loop{
			Handler:             fh.LoopHandler(),
			MaxInput:            lim.MaxInput,
			MaxOutput:           lim.MaxOutput,
			IdleTimeout:         lim.IdleTimeout,
			LingerTimeout:       lim.LingerTimeout,
			TLSHandshakeTimeout: lim.HandshakeTimeout,
			Logger:              logger,
		}
		addr, shutdown, closed = l.Addr(), lp.Shutdown, netcore.ErrLoopClosed
		if tlsConfig != nil {
			tlsStats = func(st *serverStats) {
				ls := lp.Stats()
				st.TLSHandshakes, st.TLSHandshakeErrors = ls.TLSHandshakes, ls.TLSHandshakeErrors
			}
			go func() { served <- lp.ServeTLS(l, tlsConfig) }()
		} else {
			go func() { served <- lp.Serve(l) }()
		}
	default:
		return fmt.Errorf("unknown -mode %q (server, blocking, loop, loop-tls or server-tls)", mode)
	}
	fmt.Fprintf(out, "listening on %s\n", addr)
	if certText != "" {
		fmt.Fprintf(out, "certificate %s\n", certText)
	}

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	report := func(prefix string) {
		st := cnt.stats(logs)
		if tlsStats != nil {
			tlsStats(&st)
			st.Handshaking = handshaking()
		}
		b, _ := json.Marshal(st)
		fmt.Fprintf(out, "%s %s\n", prefix, b)
	}
	for quit := false; !quit; {
		select {
		case err := <-served:
			return fmt.Errorf("serve returned before quit: %v", err)
		case line, ok := <-lines:
			switch {
			case !ok || line == "quit":
				quit = true
			case line == "stats":
				report("stats")
			default:
				fmt.Fprintf(out, "error unknown command %q\n", line)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %v", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, closed) {
			return fmt.Errorf("serve returned %v after shutdown, want %v", err, closed)
		}
	case <-ctx.Done():
		return errors.New("serve did not return within 10 s of shutdown")
	}
	report("bye")
	return nil
}

// serveConn serves one connection of the Server (both modes) and returns
// the error it ended with. Replies to requests that arrived together are
// written together (up to flushAt), once no further request is buffered;
// each write has lim.WriteTimeout, since the Server's IdleTimeout bounds
// reads only and a client that never reads would otherwise hold its
// handler, and a MaxConns slot, for ever.
func serveConn(ctx context.Context, c net.Conn, lim limits, cnt *counters) error {
	fr := netcore.NewFrameReader(c, codec)
	var out []byte
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		if lim.WriteTimeout > 0 {
			c.SetWriteDeadline(time.Now().Add(lim.WriteTimeout))
		}
		_, err := c.Write(out)
		out = out[:0]
		return err
	}
	for {
		var req []byte
		var err error
		if fr.Ready() {
			req, err = fr.Next()
		} else if err = flush(); err != nil {
			return err
		} else {
			// Waiting for the next request: Shutdown may end this wait.
			err = netcore.Idle(ctx, func() (err error) {
				req, err = fr.Next()
				return err
			})
		}
		if err != nil {
			if errors.Is(err, netcore.ErrFrameTooLarge) {
				out, _ = codec.Append(out, []byte(err.Error()))
			}
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return err
		}
		out, _ = codec.Append(out, req)
		cnt.served(len(req))
		if len(out) >= flushAt {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// isTLS reports whether mode is a TLS server.
func isTLS(mode string) bool { return mode == "loop-tls" || mode == "server-tls" }

// isLoop reports whether mode is a Loop.
func isLoop(mode string) bool { return mode == "loop" || mode == "loop-tls" }

// handshaking counts the goroutines inside a TLS handshake: the Loop's
// handshake goroutines, the Server's handlers before their handshake is
// done.
func handshaking() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "crypto/tls.(*Conn).handshakeContext(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
