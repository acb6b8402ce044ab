//go:build linux

package netcore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// loopEcho echoes every byte back; with consume set it consumes only
// as much as consume says, per callback.
type loopEcho struct {
	consume func(buffered int) int

	mu     sync.Mutex
	closed []error
	ended  chan error // every OnClose error, if not nil
}

func (h *loopEcho) OnOpen(c *netcore.LoopConn) {}

func (h *loopEcho) OnData(c *netcore.LoopConn) {
	n := c.Buffered()
	if h.consume != nil {
		n = h.consume(n)
	}
	c.Write(c.Next(n))
}

func (h *loopEcho) OnEOF(c *netcore.LoopConn) {
	c.Write(c.Next(c.Buffered()))
}

func (h *loopEcho) OnClose(c *netcore.LoopConn, err error) {
	h.mu.Lock()
	h.closed = append(h.closed, err)
	h.mu.Unlock()
	if h.ended != nil {
		h.ended <- err
	}
}

// serveLoop runs lp on a fresh 127.0.0.1 listener and returns its address;
// when the test ends the Loop is shut down and Serve must have returned
// ErrLoopClosed.
func serveLoop(t *testing.T, lp *netcore.Loop) string {
	t.Helper()
	l := listen(t, "tcp4", "127.0.0.1:0")
	if lp.Logger == nil {
		lp.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	served := make(chan error, 1)
	go func() { served <- lp.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := lp.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := waitFor(t, served, "Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
			t.Errorf("Serve = %v, want ErrLoopClosed", err)
		}
	})
	return l.Addr().String()
}

func dialLoop(t testing.TB, addr string) *netcore.Conn {
	t.Helper()
	c, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatalf("Dial(%q): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

func TestLoopEcho(t *testing.T) {
	checkLeaks(t)
	addr := serveLoop(t, &netcore.Loop{Handler: &loopEcho{}, Loops: 2})
	for _, size := range []int{1, 100, 64 << 10, 1 << 20, 8 << 20} {
		c := dialLoop(t, addr)
		checkEcho(t, c, size)
		c.Close()
	}
}

var _ = bytes.Equal
var _ net.Conn
