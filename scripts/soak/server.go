package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sort"
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
}

// counters are the server's running figures.
type counters struct {
	requests, bytes, open, peak, accepted atomic.Int64

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
	return "other: " + err.Error()
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
	switch mode {
	case "server", "blocking":
		l, err := (&netcore.ListenConfig{Blocking: mode == "blocking"}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &netcore.Server{
			Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
				cnt.opened()
				cnt.closed(serveConn(ctx, c, lim, &cnt))
			}),
			MaxConns:      lim.MaxConns,
			IdleTimeout:   lim.IdleTimeout,
			LingerTimeout: lim.LingerTimeout,
			Logger:        logger,
		}
		addr, shutdown, closed = l.Addr(), srv.Shutdown, netcore.ErrServerClosed
		go func() { served <- srv.Serve(l) }()
	case "loop":
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
			Handler:       fh.LoopHandler(),
			MaxInput:      lim.MaxInput,
			MaxOutput:     lim.MaxOutput,
			IdleTimeout:   lim.IdleTimeout,
			LingerTimeout: lim.LingerTimeout,
			Logger:        logger,
		}
		addr, shutdown, closed = l.Addr(), lp.Shutdown, netcore.ErrLoopClosed
		go func() { served <- lp.Serve(l) }()
	default:
		return fmt.Errorf("unknown -mode %q (server, blocking or loop)", mode)
	}
	fmt.Fprintf(out, "listening on %s\n", addr)

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	report := func(prefix string) {
		b, _ := json.Marshal(cnt.stats(logs))
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

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
