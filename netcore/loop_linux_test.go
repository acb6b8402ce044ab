package netcore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"
)

// loopFuncs is a LoopHandler made of optional functions; OnClose reports
// every close reason on closed, if set.
type loopFuncs struct {
	open   func(c *netcore.LoopConn)
	data   func(c *netcore.LoopConn)
	eof    func(c *netcore.LoopConn)
	closed chan error
	// closeHook, if set, runs in OnClose before the report on closed.
	closeHook func(c *netcore.LoopConn)
}

func (h *loopFuncs) OnOpen(c *netcore.LoopConn) {
	if h.open != nil {
		h.open(c)
	}
}

func (h *loopFuncs) OnData(c *netcore.LoopConn) {
	if h.data != nil {
		h.data(c)
	}
}

func (h *loopFuncs) OnEOF(c *netcore.LoopConn) {
	if h.eof != nil {
		h.eof(c)
	}
}

func (h *loopFuncs) OnClose(c *netcore.LoopConn, err error) {
	if h.closeHook != nil {
		h.closeHook(c)
	}
	if h.closed != nil {
		h.closed <- err
	}
}

// echoAll writes back all input.
func echoAll(c *netcore.LoopConn) { c.Write(c.Next(c.Buffered())) }

// loopEcho is an echo LoopHandler that echoes everything at EOF too.
func loopEcho(closed chan error) *loopFuncs {
	return &loopFuncs{data: echoAll, eof: echoAll, closed: closed}
}

// quietLogger discards; logTo writes into b.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func logTo(b *testkit.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serveLoop runs lp on a fresh 127.0.0.1 listener and returns its address;
// when the test ends the Loop is shut down and Serve must have returned
// ErrLoopClosed.
func serveLoop(t *testing.T, lp *netcore.Loop) string {
	t.Helper()
	return serveLoopOn(t, lp, testkit.Listen(t, "tcp4", "127.0.0.1:0"))
}

// serveLoopOn is serveLoop on a listener of the caller's.
func serveLoopOn(t *testing.T, lp *netcore.Loop, l net.Listener) string {
	t.Helper()
	return serveLoopWith(t, lp, l, lp.Serve)
}

// serveLoopWith is serveLoopOn with the serving call of the caller's
// (ServeTLS, say).
func serveLoopWith(t testing.TB, lp *netcore.Loop, l net.Listener, serve func(net.Listener) error) string {
	t.Helper()
	if lp.Logger == nil {
		lp.Logger = quietLogger()
	}
	served := make(chan error, 1)
	go func() { served <- serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		defer cancel()
		if err := lp.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := testkit.WaitFor(t, served, "Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
			t.Errorf("Serve = %v, want ErrLoopClosed", err)
		}
	})
	return l.Addr().String()
}

// dialLoop dials addr (a Unix socket if it is a path or an abstract
// name); the connection is closed when the test ends and
// bounded by a deadline of testkit.Timeout.
func dialLoop(t testing.TB, addr string) *netcore.Conn {
	t.Helper()
	network := "tcp4"
	if addr[0] == '/' || addr[0] == '@' {
		network = "unix"
	}
	c, err := netcore.Dial(network, addr)
	if err != nil {
		t.Fatalf("Dial(%q): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	return c
}

// loopRoundTrip writes msg on c and reads len(msg) bytes back, which must be
// msg.
func loopRoundTrip(t testing.TB, c io.ReadWriter, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

func TestLoopEcho(t *testing.T) {
	checkLeaks(t)
	addr := serveLoop(t, &netcore.Loop{Handler: loopEcho(nil), Loops: 2})
	for _, size := range []int{1, 100, 64 << 10, 1 << 20, 8 << 20} {
		c := dialLoop(t, addr)
		testkit.CheckEcho(t, c, size)
		c.Close()
	}
}

func TestLoopEchoManyClients(t *testing.T) {
	checkLeaks(t)
	addr := serveLoop(t, &netcore.Loop{Handler: loopEcho(nil)})
	errs := make(chan error, 50)
	for i := range 50 {
		go func() {
			c, err := netcore.Dial("tcp4", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testkit.Timeout))
			want := testkit.RandomBytes(1000 + 997*i)
			got := make([]byte, len(want))
			go c.Write(want)
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("client %d: echo differs", i)
				return
			}
			errs <- nil
		}()
	}
	for range 50 {
		if err := testkit.WaitFor(t, errs, "a client"); err != nil {
			t.Error(err)
		}
	}
}

// The echo state machine: a client writes random chunks, then
// half-closes; the handler consumes input in amounts drawn by rapid
// (sometimes none, sometimes part, sometimes all). A reader goroutine takes
// the echo as it comes. Whatever the chunking, what has come back is always
// a prefix of what was sent, and after the half-close it is exactly all of
// it.
type loopEchoMachine struct {
	c    *netcore.Conn
	sent []byte
	mu   sync.Mutex
	got  []byte
	done chan error // the reader's end: nil at EOF
}

func (m *loopEchoMachine) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := m.c.Read(buf)
		m.mu.Lock()
		m.got = append(m.got, buf[:max(n, 0)]...)
		m.mu.Unlock()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			m.done <- err
			return
		}
	}
}

func (m *loopEchoMachine) Write(t *rapid.T) {
	p := testkit.RandomBytes(rapid.IntRange(1, 16<<10).Draw(t, "chunk"))
	if _, err := m.c.Write(p); err != nil {
		t.Fatalf("Write: %v", err)
	}
	m.sent = append(m.sent, p...)
}

func (m *loopEchoMachine) Check(t *rapid.T) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !bytes.HasPrefix(m.sent, m.got) {
		t.Fatalf("the echo (%d bytes) is not a prefix of what was sent (%d bytes)", len(m.got), len(m.sent))
	}
}

// finish half-closes and waits for EOF: then the echo is exactly what was
// sent.
func (m *loopEchoMachine) finish(t *rapid.T) {
	if err := m.c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	select {
	case err := <-m.done:
		if err != nil {
			t.Fatalf("reading the echo: %v", err)
		}
	case <-time.After(testkit.Timeout):
		t.Fatalf("no EOF within %v", testkit.Timeout)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !bytes.Equal(m.got, m.sent) {
		t.Fatalf("after EOF: got %d bytes, sent %d; equal prefix %v", len(m.got), len(m.sent), bytes.HasPrefix(m.sent, m.got))
	}
}

func TestLoopEchoStateMachine(t *testing.T) {
	checkLeaks(t)
	// Each connection's consumption plan is drawn by rapid and filed under
	// the client's port before its first byte; the handler looks it up at
	// the first data.
	var plans sync.Map // client port -> *consumer
	h := &loopFuncs{
		data: func(c *netcore.LoopConn) {
			p, _ := c.UserData().(*consumer)
			if p == nil {
				v, ok := plans.LoadAndDelete(c.RemoteSockaddr().Port())
				if !ok {
					panic("no plan for this connection")
				}
				p = v.(*consumer)
				c.SetUserData(p)
			}
			c.Write(c.Next(p.next(c.Buffered())))
		},
		eof: echoAll,
	}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 2, MaxInput: 256 << 10})
	rapid.Check(t, func(t *rapid.T) {
		plan := rapid.SliceOfN(rapid.IntRange(-1, 5000), 1, 20).Draw(t, "plan")
		c, err := netcore.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testkit.Timeout))
		plans.Store(c.LocalSockaddr().Port(), &consumer{plan: plan})
		m := &loopEchoMachine{c: c, done: make(chan error, 1)}
		go m.read()
		t.Repeat(rapid.StateMachineActions(m))
		m.finish(t)
	})
}

// consumer consumes per its plan, cyclically: -1 means everything
// buffered, n >= 0 at most n bytes. Whenever the buffer is over 128 KiB
// (half the test's MaxInput) it consumes everything, so that a plan of
// zeros cannot stall.
type consumer struct {
	plan []int
	i    int
}

func (p *consumer) next(buffered int) int {
	k := p.plan[p.i%len(p.plan)]
	p.i++
	if k < 0 || buffered > 128<<10 {
		return buffered
	}
	return min(k, buffered)
}

var (
	errDeadlineExceeded = os.ErrDeadlineExceeded
	errConnReset        = unix.ECONNRESET
)

// Pipelining: a hundred requests in one write are all answered in one
// write(2) of the server.
func TestLoopPipelining(t *testing.T) {
	checkLeaks(t)
	// Requests are 4-byte big-endian numbers; the answer to n is n+1.
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		for c.Buffered() >= 4 {
			n := binary.BigEndian.Uint32(c.Next(4))
			var out [4]byte
			binary.BigEndian.PutUint32(out[:], n+1)
			c.Write(out[:])
		}
	}}
	addr := serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
	c := dialLoop(t, addr)
	roundTripNumbers(t, c, 0, 1) // the connection is open and served
	client := fdOf(t, c)
	var mu sync.Mutex
	writes := 0
	setFilter(t, func(call *sys.Call) error {
		if (call.Op == sys.OpWrite || call.Op == sys.OpWritev) && call.FD != client {
			mu.Lock()
			writes++
			mu.Unlock()
		}
		return nil
	})
	roundTripNumbers(t, c, 1000, 100)
	mu.Lock()
	defer mu.Unlock()
	// (On io_uring the answer is one send, which the seam does not see.)
	if !onUring() && writes != 1 {
		t.Errorf("the server answered 100 pipelined requests with %d writes, want 1", writes)
	}
}

// roundTripNumbers sends count numbers from first in one write and checks
// the count answers.
func roundTripNumbers(t *testing.T, c *netcore.Conn, first, count int) {
	t.Helper()
	req := make([]byte, 0, 4*count)
	for i := range count {
		req = binary.BigEndian.AppendUint32(req, uint32(first+i))
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, len(req))
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatalf("reading %d answers: %v", count, err)
	}
	for i := range count {
		if got := binary.BigEndian.Uint32(resp[4*i:]); got != uint32(first+i+1) {
			t.Fatalf("answer %d = %d, want %d", i, got, first+i+1)
		}
	}
}

// Back-pressure: a client that sends and never reads fills the kernel's
// buffers and then the server's output up to the high watermark; the server
// stops reading it, its buffers stay within the limits, other clients are
// served as usual, and when the client finally reads, every byte comes back.
// Over TLS the same, with the ciphertext waiting for the socket counted as
// output.
func TestLoopBackPressure(t *testing.T) {
	forTransports(t, func(t *testing.T, tr transport) { testLoopBackPressure(t, tr, netcore.BackendDefault) })
}

// testLoopBackPressure is TestLoopBackPressure's scenario on a Loop with
// the given Backend (loopuring_faults_linux_test.go runs it on io_uring
// with the kernel's multishot byte limit left unused).
func testLoopBackPressure(t *testing.T, tr transport, backend netcore.LoopBackend) {
	checkLeaks(t)
	lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 1, MaxInput: 64 << 10,
		OutputHighWater: 128 << 10, OutputLowWater: 32 << 10, MaxOutput: 1 << 20, Backend: backend}
	// Small socket buffers at both ends (accepted sockets inherit the
	// listener's), so that the kernel holds little before the stall.
	lc := netcore.ListenConfig{Control: smallBuffers()}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveLoopWith(t, lp, l, tr.serveFunc(lp))
	raw := dialLoop(t, addr)
	raw.SetReadBuffer(64 << 10)
	raw.SetWriteBuffer(64 << 10)
	stalls := make(chan uint64, 64)
	hog := tr.client(t, &stallConn{Conn: raw, stalls: stalls})
	// Write, and do not read, until the writes have stalled three
	// times: the server has stopped reading and every buffer on the way
	// is full. (From a goroutine, through stallConn: a TLS client's
	// connection cannot go on after a write deadline.)
	sent := testkit.RandomBytes(3 << 20)
	werr := make(chan error, 1)
	go func() {
		_, err := hog.Write(sent)
		werr <- err
	}()
	var waits uint64 // epoll_wait calls during the last stall
	for range 3 {
		select {
		case waits = <-stalls:
		case err := <-werr:
			t.Fatalf("wrote %d bytes without the server pushing back (%v)", len(sent), err)
		case <-time.After(testkit.Timeout):
			t.Fatal("the writes neither stalled nor ended")
		}
	}
	st := lp.Stats()
	t.Logf("stalled; server holds %d input and %d output bytes", st.InputBytes, st.OutputBytes)
	if st.InputBytes > int64(lp.MaxInput) || st.OutputBytes > int64(lp.MaxOutput) {
		t.Errorf("server buffers %d input bytes (MaxInput %d) and %d output bytes (MaxOutput %d)",
			st.InputBytes, lp.MaxInput, st.OutputBytes, lp.MaxOutput)
	}
	// A paused connection does not keep the loop busy: it waits in
	// epoll_wait, not around it. (The stalled write waited 100 ms in Go's
	// poller, which the seam does not count.)
	if waits > 10 {
		t.Errorf("the loop called epoll_wait %d times while the connection was paused, want a few", waits)
	}
	// The loop still serves everyone else.
	other := tr.dial(t, addr)
	for i := range 100 {
		loopRoundTrip(t, other, fmt.Sprintf("round trip %d", i))
	}
	// The hog reads at last: everything it sent comes back.
	got := make([]byte, len(sent))
	if _, err := io.ReadFull(hog, got); err != nil {
		t.Fatalf("reading back %d bytes: %v", len(sent), err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("the echo after back-pressure differs")
	}
	if err := testkit.WaitFor(t, werr, "the hog's writes"); err != nil {
		t.Fatalf("the hog's writes: %v", err)
	}
}

// smallBuffers is a Control function that gives a socket 64 KiB send and
// receive buffers.
func smallBuffers() controlFunc {
	return sockoptControl(sockopt{unix.SOL_SOCKET, unix.SO_RCVBUF, 64 << 10}, sockopt{unix.SOL_SOCKET, unix.SO_SNDBUF, 64 << 10})
}

// stallConn writes through its Conn in attempts bounded by a write deadline
// of 100 ms; an attempt that moves no byte is a stall, reported on stalls
// with the number of epoll_wait calls made meanwhile, and the write goes
// on. So a writer above it (a TLS client) keeps its connection while the
// test sees the server push back.
type stallConn struct {
	*netcore.Conn
	stalls  chan<- uint64
	written atomic.Int64 // bytes written so far
}

func (c *stallConn) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		c.Conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		w0 := loopWaits()
		n, err := c.Conn.Write(p[done:])
		done += n
		c.written.Add(int64(n))
		if err != nil && !errors.Is(err, errDeadlineExceeded) {
			return done, err
		}
		if err != nil && n == 0 {
			select {
			case c.stalls <- loopWaits() - w0:
			default:
			}
		}
	}
	c.Conn.SetWriteDeadline(time.Now().Add(testkit.Timeout))
	return done, nil
}

// The hard output limit closes the connection, logged, with a LimitError
// that names the limit and its value.
func TestLoopOutputLimit(t *testing.T) {
	forTransports(t, testLoopOutputLimit)
}

func testLoopOutputLimit(t *testing.T, tr transport) {
	checkLeaks(t)
	for _, via := range []string{"Write", "Send"} {
		t.Run(via, func(t *testing.T) {
			const limit = 1 << 20
			closed := make(chan error, 1)
			big := testkit.RandomBytes(256 << 10)
			sendErr := make(chan error, 1)
			h := &loopFuncs{closed: closed, data: func(c *netcore.LoopConn) {
				c.Discard(c.Buffered())
				if via == "Write" {
					for range 8 {
						if _, err := c.Write(big); err != nil {
							return
						}
					}
					return
				}
				go func() {
					for {
						if err := c.Send(big); err != nil {
							sendErr <- err
							return
						}
					}
				}()
			}}
			var logs testkit.SyncBuffer
			addr := tr.serveLoop(t, &netcore.Loop{Handler: h, Loops: 1, MaxOutput: limit, Logger: logTo(&logs)})
			c := tr.dial(t, addr)
			c.Write([]byte("go")) // and never read
			err := testkit.WaitFor(t, closed, "the connection's close")
			var le *netcore.LimitError
			if !errors.As(err, &le) || !errors.Is(err, netcore.ErrOutputLimit) || le.Limit != "MaxOutput" || le.Value != limit {
				t.Fatalf("closed with %v, want a LimitError for MaxOutput %d", err, limit)
			}
			if via == "Send" {
				if err := testkit.WaitFor(t, sendErr, "Send's error"); !errors.Is(err, netcore.ErrOutputLimit) && !errors.Is(err, net.ErrClosed) {
					t.Errorf("Send = %v, want ErrOutputLimit or net.ErrClosed", err)
				}
			}
			if !strings.Contains(logs.String(), "1048576 bytes") {
				t.Errorf("the log does not name the limit:\n%s", logs.String())
			}
			if !strings.Contains(err.Error(), "MaxOutput (1048576 bytes)") {
				t.Errorf("error %q does not name the limit and its value", err)
			}
		})
	}
}

// A handler that never consumes gets its connection closed at MaxInput.
func TestLoopInputLimit(t *testing.T) {
	forTransports(t, testLoopInputLimit)
}

func testLoopInputLimit(t *testing.T, tr transport) {
	checkLeaks(t)
	closed := make(chan error, 1)
	addr := tr.serveLoop(t, &netcore.Loop{Handler: &loopFuncs{closed: closed}, MaxInput: 1000})
	c := tr.dial(t, addr)
	c.Write(testkit.RandomBytes(5000))
	err := testkit.WaitFor(t, closed, "the close")
	if !errors.Is(err, netcore.ErrInputLimit) || !strings.Contains(err.Error(), "MaxInput (1000 bytes)") {
		t.Fatalf("closed with %v, want ErrInputLimit naming MaxInput (1000 bytes)", err)
	}
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, errConnReset) {
		t.Errorf("client read after the close: %v", err)
	}
}

// Half-close both ways, beside Go's net doing the same: the peer's FIN
// reaches OnEOF, which still writes; the handler's CloseWrite reaches the
// client as EOF while the client can still send. Over TLS a half-close is
// close_notify (and the TCP half-close beneath): the client reads the reply,
// then io.EOF, as from crypto/tls's CloseWrite.
func TestLoopHalfClose(t *testing.T) {
	forTransports(t, testLoopHalfClose)
}

func testLoopHalfClose(t *testing.T, tr transport) {
	type result struct {
		input string // what the server read after its CloseWrite
		late  error  // its Write after that
	}
	// The server's CloseWrite first: it answers "bye" with "see you" and
	// half-closes, then reads the rest until the client's half-close.
	servers := map[string]func(t *testing.T, res chan<- result, closed chan error) string{
		"net": func(t *testing.T, res chan<- result, closed chan error) string {
			return tr.serveNet(t, func(c net.Conn) {
				if _, err := io.ReadFull(c, make([]byte, 3)); err != nil {
					return
				}
				c.Write([]byte("see you"))
				c.(interface{ CloseWrite() error }).CloseWrite()
				input, err := io.ReadAll(c)
				_, late := c.Write([]byte(" -- after your FIN"))
				res <- result{string(input), late}
				closed <- err
			})
		},
		"loop": func(t *testing.T, res chan<- result, closed chan error) string {
			var input []byte
			h := &loopFuncs{closed: closed,
				data: func(c *netcore.LoopConn) {
					p := c.Next(c.Buffered())
					if string(p) == "bye" {
						c.Write([]byte("see you"))
						c.CloseWrite()
						return
					}
					input = append(input, p...)
				},
				eof: func(c *netcore.LoopConn) {
					_, late := c.Write([]byte(" -- after your FIN"))
					res <- result{string(input), late}
				},
			}
			return tr.serveLoop(t, &netcore.Loop{Handler: h})
		},
	}
	// The peer's FIN first: the answer written after it still arrives.
	shouters := map[string]func(t *testing.T) string{
		"net": func(t *testing.T) string {
			return tr.serveNet(t, func(c net.Conn) {
				if req, err := io.ReadAll(c); err == nil {
					c.Write([]byte(strings.ToUpper(string(req))))
				}
			})
		},
		"loop": func(t *testing.T) string {
			h := &loopFuncs{data: func(*netcore.LoopConn) {}, eof: func(c *netcore.LoopConn) {
				c.Write([]byte(strings.ToUpper(string(c.Next(c.Buffered())))))
			}}
			return tr.serveLoop(t, &netcore.Loop{Handler: h})
		},
	}
	for _, name := range []string{"net", "loop"} {
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			res := make(chan result, 1)
			closed := make(chan error, 1)
			c := tr.dial(t, servers[name](t, res, closed))
			c.Write([]byte("bye"))
			resp, err := io.ReadAll(c)
			if err != nil || string(resp) != "see you" {
				t.Fatalf("read to EOF = %q, %v; want %q", resp, err, "see you")
			}
			c.Write([]byte("still talking"))
			c.CloseWrite()
			r := testkit.WaitFor(t, res, "the server's EOF")
			if r.input != "still talking" {
				t.Errorf("the server read %q after its CloseWrite, want %q", r.input, "still talking")
			}
			if r.late == nil {
				t.Errorf("a Write after the server's CloseWrite succeeded")
			} else if name == "loop" && !errors.Is(r.late, net.ErrClosed) {
				t.Errorf("a Write after CloseWrite = %v, want net.ErrClosed", r.late)
			}
			// The end of the input: nil from net's ReadAll, io.EOF in
			// OnClose.
			if err := testkit.WaitFor(t, closed, "the close"); err != nil && err != io.EOF {
				t.Errorf("closed with %v, want io.EOF", err)
			}

			c2 := tr.dial(t, shouters[name](t))
			c2.Write([]byte("shout this"))
			c2.CloseWrite()
			if resp, err := io.ReadAll(c2); err != nil || string(resp) != "SHOUT THIS" {
				t.Fatalf("answer after FIN = %q, %v", resp, err)
			}
		})
	}
}

// Other goroutines Send and Close concurrently (run under -race): every
// message of every sender arrives whole and in its sender's order, and a
// Close from outside ends the connection after what was sent.
func TestLoopSendAndCloseFromGoroutines(t *testing.T) {
	forTransports(t, testLoopSendAndCloseFromGoroutines)
}

func testLoopSendAndCloseFromGoroutines(t *testing.T, tr transport) {
	checkLeaks(t)
	conns := make(chan *netcore.LoopConn, 1)
	closed := make(chan error, 1)
	echoedOnLoop := make(chan struct{}, 1)
	h := &loopFuncs{open: func(c *netcore.LoopConn) { conns <- c }, closed: closed, data: func(c *netcore.LoopConn) {
		echoAll(c)
		if c.Buffered() == 0 {
			select {
			case echoedOnLoop <- struct{}{}:
			default:
			}
		}
	}}
	addr := tr.serveLoop(t, &netcore.Loop{Handler: h, Loops: 2})
	client := tr.dial(t, addr)
	lc := testkit.WaitFor(t, conns, "OnOpen")
	const senders, each = 8, 500
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := fmt.Sprintf("<%d:%d>", s, i)
				if err := lc.Send([]byte(msg)); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		}()
	}
	// Meanwhile the connection also echoes.
	go client.Write([]byte("<echo>"))
	wg.Wait()
	// The echo was written before Close: a Write after Close fails, as
	// on a net.Conn.
	testkit.WaitFor(t, echoedOnLoop, "the echo")
	lc.Close()
	lc.Close()
	if err := lc.Send([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close = %v, want net.ErrClosed", err)
	}
	all, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int, senders)
	echoed := false
	for _, msg := range strings.SplitAfter(string(all), ">") {
		if msg == "" {
			continue
		}
		if msg == "<echo>" {
			echoed = true
			continue
		}
		var s, i int
		if _, err := fmt.Sscanf(msg, "<%d:%d>", &s, &i); err != nil || s < 0 || s >= senders {
			t.Fatalf("garbled message %q", msg)
		}
		if i != next[s] {
			t.Fatalf("sender %d: message %d arrived where %d was due", s, i, next[s])
		}
		next[s]++
	}
	for s, n := range next {
		if n != each {
			t.Errorf("sender %d: %d messages arrived, want %d", s, n, each)
		}
	}
	if !echoed {
		t.Errorf("the echo never came back")
	}
	if err := testkit.WaitFor(t, closed, "OnClose"); err != nil {
		t.Errorf("OnClose after Close = %v, want nil", err)
	}
}

// Many goroutines race Close against Send on many connections.
func TestLoopConcurrentCloseRace(t *testing.T) {
	checkLeaks(t)
	conns := make(chan *netcore.LoopConn, 64)
	closed := make(chan error, 64)
	addr := serveLoop(t, &netcore.Loop{Handler: &loopFuncs{open: func(c *netcore.LoopConn) { conns <- c }, closed: closed}})
	var wg sync.WaitGroup
	for range 32 {
		c := dialLoop(t, addr)
		lc := testkit.WaitFor(t, conns, "OnOpen")
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					if g == 0 {
						lc.Close()
					} else if err := lc.Send([]byte("x")); err != nil && !errors.Is(err, net.ErrClosed) {
						t.Errorf("Send: %v", err)
					}
				}
			}()
		}
		go io.Copy(io.Discard, c)
	}
	wg.Wait()
	for range 32 {
		if err := testkit.WaitFor(t, closed, "OnClose"); err != nil {
			t.Errorf("OnClose = %v, want nil", err)
		}
	}
}

func TestLoopIdleTimeout(t *testing.T) {
	forTransports(t, testLoopIdleTimeout)
}

func testLoopIdleTimeout(t *testing.T, tr transport) {
	checkLeaks(t)
	const idle = 300 * time.Millisecond
	closed := make(chan error, 2)
	addr := tr.serveLoop(t, &netcore.Loop{Handler: loopEcho(closed), IdleTimeout: idle})
	quiet := tr.dial(t, addr)
	busy := tr.dial(t, addr)
	// The busy one keeps talking for two idle periods, and stays open.
	start := time.Now()
	var quietErr error
	for i := 0; time.Since(start) < 2*idle; i++ {
		loopRoundTrip(t, busy, fmt.Sprintf("%d", i))
	}
	err := testkit.WaitFor(t, closed, "the idle close")
	var le *netcore.LimitError
	if !errors.As(err, &le) || !errors.Is(err, netcore.ErrIdleTimeout) || le.Value != int64(idle) {
		t.Fatalf("closed with %v, want a LimitError for IdleTimeout %v", err, idle)
	}
	if _, quietErr = quiet.Read(make([]byte, 1)); quietErr != io.EOF {
		t.Errorf("the idle client's Read = %v, want io.EOF", quietErr)
	}
	loopRoundTrip(t, busy, "still here")
}

func TestLoopHandlerPanic(t *testing.T) {
	forTransports(t, testLoopHandlerPanic)
}

func testLoopHandlerPanic(t *testing.T, tr transport) {
	checkLeaks(t)
	closed := make(chan error, 2)
	h := &loopFuncs{closed: closed, data: func(c *netcore.LoopConn) {
		if string(c.Peek(5)) == "panic" {
			panic("handler bug")
		}
		echoAll(c)
	}}
	var logs testkit.SyncBuffer
	addr := tr.serveLoop(t, &netcore.Loop{Handler: h, Logger: logTo(&logs)})
	good := tr.dial(t, addr)
	bad := tr.dial(t, addr)
	loopRoundTrip(t, good, "hello")
	bad.Write([]byte("panic"))
	if err := testkit.WaitFor(t, closed, "the close"); !errors.Is(err, netcore.ErrHandlerPanic) || !strings.Contains(err.Error(), "handler bug") {
		t.Fatalf("closed with %v, want ErrHandlerPanic with the value", err)
	}
	if _, err := io.ReadAll(bad); err != nil && !errors.Is(err, errConnReset) {
		t.Errorf("the panicking connection: %v", err)
	}
	loopRoundTrip(t, good, "still served")
	if !strings.Contains(logs.String(), "handler bug") {
		t.Errorf("the panic is not logged:\n%s", logs.String())
	}
}

func TestLoopShutdown(t *testing.T) {
	forTransports(t, testLoopShutdown)
}

func testLoopShutdown(t *testing.T, tr transport) {
	checkLeaks(t)
	t.Run("graceful", func(t *testing.T) {
		// Half a request waits; Shutdown closes the idle connection at
		// once and lets the busy one finish its request.
		closed := make(chan error, 2)
		h := &loopFuncs{closed: closed, data: func(c *netcore.LoopConn) {
			if c.Buffered() >= 8 {
				c.Write(c.Next(8))
			}
		}}
		lp := &netcore.Loop{Handler: h, Logger: quietLogger()}
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		served := make(chan error, 1)
		go func() { served <- tr.serveFunc(lp)(l) }()
		idle := tr.dial(t, l.Addr().String())
		busy := tr.dial(t, l.Addr().String())
		loopRoundTrip(t, idle, "12345678")
		busy.Write([]byte("1234"))
		loopRoundTrip(t, idle, "abcdefgh") // both are open: the loop served idle after busy's half request
		done := make(chan error, 1)
		go func() { done <- lp.Shutdown(context.Background()) }()
		if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("idle connection's Read after Shutdown = %v, want io.EOF", err)
		}
		if err := testkit.WaitFor(t, closed, "the idle close"); !errors.Is(err, netcore.ErrLoopClosed) {
			t.Errorf("idle closed with %v", err)
		}
		busy.Write([]byte("5678"))
		got, err := io.ReadAll(busy)
		if err != nil || string(got) != "12345678" {
			t.Fatalf("busy got %q, %v; want its answer, then EOF", got, err)
		}
		if err := testkit.WaitFor(t, done, "Shutdown"); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := testkit.WaitFor(t, served, "Serve"); !errors.Is(err, netcore.ErrLoopClosed) {
			t.Errorf("Serve = %v, want ErrLoopClosed", err)
		}
		if err := lp.Serve(testkit.Listen(t, "tcp4", "127.0.0.1:0")); !errors.Is(err, netcore.ErrLoopClosed) {
			t.Errorf("Serve after Shutdown = %v, want ErrLoopClosed", err)
		}
	})
	t.Run("forced", func(t *testing.T) {
		// A client that never reads keeps output pending: Shutdown
		// waits until its context ends, then closes it.
		h := &loopFuncs{data: func(c *netcore.LoopConn) {
			for range c.Buffered() / 4 {
				c.Discard(4)
				c.Write(make([]byte, 4<<20))
			}
		}}
		// No pause: more output than the kernel's buffers take piles up.
		lp := &netcore.Loop{Handler: h, Logger: quietLogger(), OutputHighWater: 64 << 20, MaxOutput: 64 << 20}
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		served := make(chan error, 1)
		go func() { served <- tr.serveFunc(lp)(l) }()
		c := tr.dial(t, l.Addr().String())
		c.Write([]byte(strings.Repeat("more", 12)))
		// Wait until the server is stuck with output.
		deadline := time.Now().Add(testkit.Timeout)
		// (More than a TLS handshake's flight, which io_uring counts
		// until its send's completion is reaped.)
		for lp.Stats().OutputBytes < 1<<20 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // polling a count
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := lp.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
		if err := testkit.WaitFor(t, served, "Serve"); !errors.Is(err, netcore.ErrLoopClosed) {
			t.Errorf("Serve = %v, want ErrLoopClosed", err)
		}
		if st := lp.Stats(); st.Conns != 0 || st.OutputBytes != 0 {
			t.Errorf("after Shutdown: %+v", st)
		}
	})
	t.Run("close", func(t *testing.T) {
		closed := make(chan error, 1)
		lp := &netcore.Loop{Handler: loopEcho(closed), Logger: quietLogger()}
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		served := make(chan error, 1)
		go func() { served <- tr.serveFunc(lp)(l) }()
		c := tr.dial(t, l.Addr().String())
		loopRoundTrip(t, c, "hi")
		lp.Close()
		if err := lp.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := testkit.WaitFor(t, closed, "OnClose"); !errors.Is(err, netcore.ErrLoopClosed) {
			t.Errorf("OnClose = %v, want ErrLoopClosed", err)
		}
		if err := testkit.WaitFor(t, served, "Serve"); !errors.Is(err, netcore.ErrLoopClosed) {
			t.Errorf("Serve = %v, want ErrLoopClosed", err)
		}
		if _, err := netcore.Dial("tcp4", l.Addr().String()); err == nil {
			t.Errorf("the listener still accepts after Close")
		}
	})
}

func TestLoopBadConfig(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		lp   *netcore.Loop
		want string
	}{
		{&netcore.Loop{}, "Handler is nil"},
		{&netcore.Loop{Handler: loopEcho(nil), MaxInput: -1}, "MaxInput is -1"},
		{&netcore.Loop{Handler: loopEcho(nil), OutputHighWater: 10, OutputLowWater: 20}, "OutputLowWater (20) is above OutputHighWater (10)"},
		{&netcore.Loop{Handler: loopEcho(nil), OutputHighWater: 2 << 20, MaxOutput: 1 << 20}, "OutputHighWater (2097152) is above MaxOutput (1048576)"},
		{&netcore.Loop{Handler: loopEcho(nil), IdleTimeout: -time.Second}, "IdleTimeout is -1s"},
		{&netcore.Loop{Handler: loopEcho(nil), Loops: -2}, "Loops is -2"},
		{&netcore.Loop{Handler: loopEcho(nil), SpinWait: -time.Millisecond}, "SpinWait is -1ms"},
	} {
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		err := tc.lp.Serve(l)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Serve = %v, want an error containing %q", err, tc.want)
		}
	}
}

// The addresses a handler sees: an IPv4 client of a dual-stack wildcard
// listener is unmapped at both ends (the local address from getsockname),
// an IPv6 client stays IPv6.
func TestLoopAddresses(t *testing.T) {
	checkLeaks(t)
	type ends struct{ local, remote netcore.Sockaddr }
	seen := make(chan ends, 1)
	h := &loopFuncs{open: func(c *netcore.LoopConn) {
		seen <- ends{c.LocalSockaddr(), c.RemoteSockaddr()}
		if c.LocalAddr().String() != c.LocalSockaddr().String() || c.RemoteAddr().String() != c.RemoteSockaddr().String() {
			panic("Addr and Sockaddr disagree")
		}
	}, data: echoAll}
	for _, tc := range []struct{ network, listen, dial string }{
		{"tcp", ":0", "127.0.0.1"},
		{"tcp6", "[::1]:0", "::1"},
	} {
		l := testkit.Listen(t, tc.network, tc.listen)
		addr := serveLoopOn(t, &netcore.Loop{Handler: h}, l)
		port := l.Sockaddr().Port()
		c, err := netcore.Dial("tcp", net.JoinHostPort(tc.dial, strconv.Itoa(int(port))))
		if err != nil {
			t.Fatalf("Dial %s port %d (listening on %s): %v", tc.dial, port, addr, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testkit.Timeout))
		loopRoundTrip(t, c, "hi")
		e := testkit.WaitFor(t, seen, "OnOpen")
		if e.local != c.RemoteSockaddr() || e.remote != c.LocalSockaddr() {
			t.Errorf("%s: the handler sees local %v remote %v; the client sees local %v remote %v",
				tc.listen, e.local, e.remote, c.LocalSockaddr(), c.RemoteSockaddr())
		}
	}
}
