//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/examples/kv/kvproto"
	"github.com/netcore-dev/netcore/netcore"
)

// testTimeout bounds every blocking step of a test.
const testTimeout = 30 * time.Second

// The test's own encoding of the protocol, written from the book's
// description with encoding/binary and nothing of kvproto's, so that the
// server's bytes are checked against an independent source.

// frame is one frame: payload's length as 4 little-endian bytes, then
// payload.
func frame(payload string) string {
	return string(binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))) + payload
}

// request is a request payload: the count of strings, then each string
// after its length, all lengths 4 little-endian bytes.
func request(args ...string) string {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(args)))
	for _, a := range args {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(a)))
		b = append(b, a...)
	}
	return string(b)
}

// reply is a reply payload: the status as 4 little-endian bytes, then
// data.
func reply(st uint32, data string) string {
	return string(binary.LittleEndian.AppendUint32(nil, st)) + data
}

// u32 is x as 4 little-endian bytes.
func u32(x uint32) string { return string(binary.LittleEndian.AppendUint32(nil, x)) }

// running is a server started by a test.
type running struct {
	addr string
	lp   *netcore.Loop      // the Loop server's; nil for the reference
	stop context.CancelFunc // begins the graceful shutdown
	done chan error         // run's return
}

// startKV runs the server (run, on a netcore.Loop) in this process on a
// free loopback port. Unless the test stops it itself, it is stopped when
// the test ends, and must then return nil and leave no goroutine behind.
func startKV(t *testing.T, cfg config) *running {
	t.Helper()
	if cfg.maxMsg == 0 {
		cfg.maxMsg = kvproto.DefaultMaxMsg
	}
	if cfg.grace == 0 {
		cfg.grace = testTimeout
	}
	cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stop: cancel, done: make(chan error, 1)}
	ready := make(chan *running, 1)
	go func() {
		r.done <- run(ctx, "127.0.0.1:0", NewStore(), cfg, func(a net.Addr, lp *netcore.Loop) {
			ready <- &running{addr: a.String(), lp: lp}
		})
	}()
	select {
	case rr := <-ready:
		r.addr, r.lp = rr.addr, rr.lp
	case err := <-r.done:
		t.Fatalf("run: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("the server did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := r.wait(t); err != nil {
			t.Errorf("run returned %v after cancel, want nil", err)
		}
		deadline := time.Now().Add(testTimeout)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polling a count; nothing to wait on
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines after the server stopped, %d before", n, before)
		}
	})
	return r
}

// wait returns run's result; it can be called more than once.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(testTimeout):
		t.Fatal("the server did not stop")
		return nil
	}
}

// startNetKV runs the reference server: the same protocol functions and
// Store on Go's net, a goroutine per connection reading frames with
// netcore.FrameReader. Behaviour tests run against it as a sibling of the
// Loop server, so a difference in the Loop's wiring shows in one run.
func startNetKV(t *testing.T, cfg config) *running {
	t.Helper()
	if cfg.maxMsg == 0 {
		cfg.maxMsg = kvproto.DefaultMaxMsg
	}
	codec, err := kvproto.NewCodec(cfg.maxMsg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveNetConn(c, store, codec)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return &running{addr: l.Addr().String()}
}

// appender is an io.Writer appending to a slice.
type appender struct{ b []byte }

func (w *appender) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// serveNetConn answers c's frames until it ends; replies to frames already
// read are written together before the next read.
func serveNetConn(c net.Conn, store *Store, codec netcore.FrameCodec) {
	defer c.Close()
	fr := netcore.NewFrameReader(c, codec)
	var out, payload appender
	var strs [][]byte
	for {
		req, err := fr.Next()
		if err != nil {
			var tooLarge *netcore.FrameTooLargeError
			if errors.As(err, &tooLarge) {
				out.b, _ = codec.Append(out.b, errReply(frameErrorMessage(err)))
				c.Write(out.b)
			}
			return
		}
		payload.b = payload.b[:0]
		if strs, err = kvproto.ParseRequest(strs[:0], req); err != nil {
			payload.b = kvproto.AppendReply(payload.b, kvproto.ERR, []byte(err.Error()))
		} else {
			store.Exec(&payload, strs)
		}
		out.b, _ = codec.Append(out.b, payload.b)
		if !fr.Ready() {
			if _, err := c.Write(out.b); err != nil {
				return
			}
			out.b = out.b[:0]
		}
	}
}

// targets are the servers every behaviour test runs against.
var targets = []struct {
	name  string
	start func(t *testing.T, cfg config) *running
}{
	{"loop", startKV},
	{"net", startNetKV},
}

// forEachTarget runs f as a subtest against each of targets.
func forEachTarget(t *testing.T, cfg config, f func(t *testing.T, addr string)) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) { f(t, tg.start(t, cfg).addr) })
	}
}

// dial connects to addr with a deadline of testTimeout on every call.
func dial(t *testing.T, addr string) *netcore.Conn {
	t.Helper()
	c, err := netcore.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("Dial(%q): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

// readN reads exactly n bytes from c.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if k, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d reply bytes: got %d (%q...), %v", n, k, b[:min(k, 64)], err)
	}
	return b
}

// roundTrip writes req to c and reads len(want) bytes, which must be want.
func roundTrip(t *testing.T, c net.Conn, req, want string) {
	t.Helper()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatalf("writing a request: %v", err)
	}
	if got := readN(t, c, len(want)); string(got) != want {
		t.Fatalf("request %.80q: reply %.200q, want %.200q", req, got, want)
	}
}

// waitInput waits until the Loop holds unconsumed input of some
// connection: the bytes a test wrote have been read by the server.
func (r *running) waitInput(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for r.lp.Stats().InputBytes == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server did not buffer the bytes written")
		}
		time.Sleep(time.Millisecond) // polling Stats; nothing to wait on
	}
}

// expectEOF reads from c and fails unless the server closed it (EOF, or a
// reset if bytes were still in flight) with nothing more to read.
func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	n, err := c.Read(make([]byte, 64))
	if n > 0 || err == nil {
		t.Fatalf("read %d more bytes, %v; want the connection closed", n, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection stayed open: %v", err)
	}
}
