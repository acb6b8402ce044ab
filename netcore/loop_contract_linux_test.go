package netcore_test

// The Loop's contract, specified differentially: each scenario runs against
// a goroutine-per-connection server on Go's net package (the behaviour a
// protocol author expects) and against a netcore.Loop, as sibling subtests,
// and the client must see the same bytes from both.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// serveNetOn serves handle on l, a goroutine per connection; it returns
// the address. Everything ends with the test.
func serveNetOn(t *testing.T, l net.Listener, handle func(c net.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// reply64k is the answer to request byte b in the pipelining scenario.
func reply64k(b byte) []byte { return bytes.Repeat([]byte{b}, 64<<10) }

// A client pipelines 100 one-byte requests, each answered with 64 KiB
// (6.4 MiB in all, past the Loop's 4 MiB MaxOutput), and reads everything.
// A handler that stops taking requests while OutputFull is offered the rest
// of its input again once the output drains: every reply arrives, with
// output bounded by the watermarks. Over TLS the same: the ciphertext
// waiting for the socket counts as output.
func TestContractPipelineLargeReplies(t *testing.T) {
	forTransports(t, testContractPipelineLargeReplies)
}

func testContractPipelineLargeReplies(t *testing.T, tr transport) {
	const requests = 100
	var peak int
	var mu sync.Mutex
	servers := map[string]func(t *testing.T) string{
		"net": func(t *testing.T) string {
			return tr.serveNet(t, func(c net.Conn) {
				r := bufio.NewReader(c)
				for {
					b, err := r.ReadByte()
					if err != nil {
						return
					}
					if _, err := c.Write(reply64k(b)); err != nil {
						return
					}
				}
			})
		},
		"loop": func(t *testing.T) string {
			h := &loopFuncs{data: func(c *netcore.LoopConn) {
				for c.Buffered() > 0 && !c.OutputFull() {
					c.Write(reply64k(c.Next(1)[0]))
				}
				mu.Lock()
				peak = max(peak, c.OutputBuffered())
				mu.Unlock()
			}}
			return tr.serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
		},
	}
	for _, name := range []string{"net", "loop"} {
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			c := tr.dial(t, servers[name](t))
			req := make([]byte, requests)
			for i := range req {
				req[i] = 'a' + byte(i%26)
			}
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, requests*(64<<10))
			if n, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read %d of %d reply bytes (%d of %d replies): %v", n, len(got), n/(64<<10), requests, err)
			}
			for i, b := range req {
				if !bytes.Equal(got[i<<16:(i+1)<<16], reply64k(b)) {
					t.Fatalf("reply %d differs", i)
				}
			}
		})
	}
	// The loop never buffered more than the high watermark plus one reply.
	if limit := netcore.DefaultOutputHighWater + 64<<10; peak > limit {
		t.Errorf("the loop buffered %d bytes of output, want at most %d", peak, limit)
	}
}

// A handler that hands the request to a goroutine, which answers with Send,
// keeps the connection open for it with Hold/Release: the client that
// half-closes after its request gets the answer, then EOF. (Over TLS the
// client's half-close is close_notify, then FIN, and the answer ends with
// the server's close_notify.)
func TestContractReplyFromGoroutineAfterHalfClose(t *testing.T) {
	forTransports(t, testContractReplyFromGoroutineAfterHalfClose)
}

func testContractReplyFromGoroutineAfterHalfClose(t *testing.T, tr transport) {
	servers := map[string]func(t *testing.T) string{
		"net": func(t *testing.T) string {
			return tr.serveNet(t, func(c net.Conn) {
				req, err := io.ReadAll(c) // until the client's FIN (TLS: close_notify)
				if err != nil {
					return
				}
				done := make(chan struct{})
				go func() { // the worker
					defer close(done)
					c.Write(append([]byte("answer to "), req...))
				}()
				<-done
			})
		},
		"loop": func(t *testing.T) string {
			eof := make(chan struct{})
			h := &loopFuncs{
				data: func(c *netcore.LoopConn) {
					req := string(c.Next(-1))
					c.Hold()
					go func() {
						defer c.Release()
						<-eof // answer only after the client's FIN has been seen
						if err := c.Send([]byte("answer to " + req)); err != nil {
							t.Errorf("Send after the peer's FIN: %v", err)
						}
					}()
				},
				eof: func(c *netcore.LoopConn) { close(eof) },
			}
			return tr.serveLoop(t, &netcore.Loop{Handler: h})
		},
	}
	for _, name := range []string{"net", "loop"} {
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			c := tr.dial(t, servers[name](t))
			c.Write([]byte("question"))
			c.CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "answer to question" {
				t.Fatalf("read to EOF = %q, %v; want %q", got, err, "answer to question")
			}
		})
	}
}

// Shutdown while a request is being worked on elsewhere: the answer is
// delivered before the connection closes, and an idle connection is closed
// at once. netcore.Server is the peer (it has a graceful Shutdown, as
// net/http's). Over TLS, the connections Shutdown closes get close_notify
// first: the client reads io.EOF, not an error.
func TestContractShutdownWithWorkInFlight(t *testing.T) {
	forTransports(t, testContractShutdownWithWorkInFlight)
}

func testContractShutdownWithWorkInFlight(t *testing.T, tr transport) {
	type server struct {
		addr     string
		shutdown func(ctx context.Context) error
	}
	started := make(chan struct{}) // the worker has the request
	proceed := make(chan struct{}) // Shutdown is under way: answer now
	servers := map[string]func(t *testing.T) server{
		"server": func(t *testing.T) server {
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			srv := &netcore.Server{Handler: netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
				buf := make([]byte, 64)
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				close(started)
				<-proceed
				c.Write(append([]byte("answer to "), buf[:n]...))
			}), TLSConfig: tr.serverConfig(), Logger: quietLogger()}
			go srv.Serve(l)
			return server{l.Addr().String(), srv.Shutdown}
		},
		"loop": func(t *testing.T) server {
			h := &loopFuncs{data: func(c *netcore.LoopConn) {
				req := string(c.Next(-1))
				if req == "idle" {
					c.Write([]byte("ok"))
					return
				}
				c.Hold()
				close(started)
				go func() {
					defer c.Release()
					<-proceed
					c.Send([]byte("answer to " + req))
				}()
			}}
			lp := &netcore.Loop{Handler: h, Loops: 1, Logger: quietLogger()}
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			go tr.serveFunc(lp)(l)
			return server{l.Addr().String(), lp.Shutdown}
		},
	}
	for _, name := range []string{"server", "loop"} {
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			started = make(chan struct{})
			proceed = make(chan struct{})
			s := servers[name](t)
			busy := tr.dial(t, s.addr)
			busy.Write([]byte("question"))
			testkit.WaitFor(t, started, "the worker")
			var idle clientConn
			if name == "loop" {
				// An idle connection, which Shutdown closes at once. (The
				// Server's handlers read in their own way: it would wait
				// for one blocked in Read.) One round trip: the loop has
				// taken the connection on.
				idle = tr.dial(t, s.addr)
				idle.Write([]byte("idle"))
				if _, err := io.ReadFull(idle, make([]byte, 2)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.shutdown(ctx) }()
			if name == "loop" {
				// Shutdown has closed the idle connection: it is under
				// way, and the busy one must stay open for its answer.
				if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
					t.Fatalf("the idle connection at Shutdown: Read = %v, want EOF", err)
				}
			}
			close(proceed)
			got, err := io.ReadAll(busy)
			if err != nil || string(got) != "answer to question" {
				t.Errorf("read to EOF = %q, %v; want %q", got, err, "answer to question")
			}
			if err := testkit.WaitFor(t, done, "Shutdown"); err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
		})
	}
}

// A Send made for one request and a Write made for the next, later one
// leave in that order (the reviewer saw "CB" in 17-20 of 20 rounds).
func TestContractSendThenWriteOrder(t *testing.T) {
	forTransports(t, testContractSendThenWriteOrder)
}

func testContractSendThenWriteOrder(t *testing.T, tr transport) {
	const rounds = 50
	servers := map[string]func(t *testing.T) string{
		"net": func(t *testing.T) string {
			return tr.serveNet(t, func(c net.Conn) {
				var mu sync.Mutex // a goroutine-per-connection server's writer lock
				buf := make([]byte, 1)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if buf[0] == 'b' {
						done := make(chan struct{})
						go func() { mu.Lock(); c.Write([]byte("B")); mu.Unlock(); close(done) }()
						<-done
					} else {
						mu.Lock()
						c.Write([]byte("C"))
						mu.Unlock()
					}
				}
			})
		},
		"loop": func(t *testing.T) string {
			h := &loopFuncs{data: func(c *netcore.LoopConn) {
				for _, b := range c.Next(-1) {
					if b == 'b' {
						done := make(chan struct{})
						go func() { c.Send([]byte("B")); close(done) }()
						<-done // the Send has returned before the next request is read
					} else {
						c.Write([]byte("C"))
					}
				}
			}}
			return tr.serveLoop(t, &netcore.Loop{Handler: h, Loops: 1})
		},
	}
	for _, name := range []string{"net", "loop"} {
		t.Run(name, func(t *testing.T) {
			c := tr.dial(t, servers[name](t))
			got := make([]byte, 2)
			for i := range rounds {
				c.Write([]byte("b"))
				c.Write([]byte("c"))
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatal(err)
				}
				if string(got) != "BC" {
					t.Fatalf("round %d: read %q, want %q", i, got, "BC")
				}
			}
		})
	}
}

// After CloseWrite, Send and Write both fail with net.ErrClosed and the
// peer reads what was written before, then EOF. (Go's net: a Write after
// CloseWrite fails too; over TLS, CloseWrite sends close_notify, and
// crypto/tls refuses a Write after it.)
func TestContractSendAfterCloseWrite(t *testing.T) {
	forTransports(t, testContractSendAfterCloseWrite)
}

func testContractSendAfterCloseWrite(t *testing.T, tr transport) {
	type result struct{ send, write error }
	servers := map[string]func(t *testing.T, res chan<- result) string{
		"net": func(t *testing.T, res chan<- result) string {
			return tr.serveNet(t, func(c net.Conn) {
				c.Read(make([]byte, 16))
				c.Write([]byte("bye"))
				c.(interface{ CloseWrite() error }).CloseWrite()
				_, werr := c.Write([]byte("late"))
				res <- result{werr, werr}
			})
		},
		"loop": func(t *testing.T, res chan<- result) string {
			h := &loopFuncs{data: func(c *netcore.LoopConn) {
				c.Next(-1)
				c.Write([]byte("bye"))
				c.CloseWrite()
				var r result
				r.send = c.Send([]byte("late"))
				_, r.write = c.Write([]byte("late"))
				res <- r
			}}
			return tr.serveLoop(t, &netcore.Loop{Handler: h})
		},
	}
	for _, name := range []string{"net", "loop"} {
		t.Run(name, func(t *testing.T) {
			res := make(chan result, 1)
			c := tr.dial(t, servers[name](t, res))
			c.Write([]byte("hi"))
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "bye" {
				t.Fatalf("read to EOF = %q, %v; want %q", got, err, "bye")
			}
			r := testkit.WaitFor(t, res, "the late writes")
			if r.send == nil || r.write == nil {
				t.Fatalf("after CloseWrite: Send = %v, Write = %v; want errors", r.send, r.write)
			}
			if name == "loop" && (!errors.Is(r.send, net.ErrClosed) || !errors.Is(r.write, net.ErrClosed)) {
				t.Errorf("after CloseWrite: Send = %v, Write = %v; want net.ErrClosed from both", r.send, r.write)
			}
		})
	}
}

// Shutdown or Close called from a handler callback (a gnet user's first
// port does this) returns at once, and the Loop stops: Serve returns
// ErrLoopClosed. Called from a callback they cannot wait for the loop they
// run on; they start the stop and return nil.
func TestContractStopFromCallback(t *testing.T) {
	forTransports(t, testContractStopFromCallback)
}

func testContractStopFromCallback(t *testing.T, tr transport) {
	for _, how := range []string{"Shutdown", "Close"} {
		t.Run(how, func(t *testing.T) {
			checkLeaks(t)
			var lp *netcore.Loop
			returned := make(chan error, 1)
			closed := make(chan error, 1)
			h := &loopFuncs{closed: closed, data: func(c *netcore.LoopConn) {
				c.Write(c.Next(-1))
				ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
				defer cancel()
				if how == "Shutdown" {
					returned <- lp.Shutdown(ctx)
				} else {
					returned <- lp.Close()
				}
			}}
			lp = &netcore.Loop{Handler: h, Loops: 2, Logger: quietLogger()}
			l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
			served := make(chan error, 1)
			go func() { served <- tr.serveFunc(lp)(l) }()
			c := tr.dial(t, l.Addr().String())
			c.Write([]byte("stop"))
			if err := testkit.WaitFor(t, returned, how+" from the callback"); err != nil {
				t.Errorf("%s from a callback = %v, want nil", how, err)
			}
			if err := testkit.WaitFor(t, served, "Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
				t.Errorf("Serve = %v, want ErrLoopClosed", err)
			}
			testkit.WaitFor(t, closed, "OnClose")
			if how == "Shutdown" { // graceful: the echo went out first
				if got, err := io.ReadAll(c); err != nil || string(got) != "stop" {
					t.Errorf("read to EOF = %q, %v; want %q", got, err, "stop")
				}
			}
		})
	}
}

// Peek(-1), Next(-1) and Discard(-1) take all the input, as in gnet.
func TestLoopNegativeCounts(t *testing.T) {
	checkLeaks(t)
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		all := c.Peek(-1)
		if len(all) != c.Buffered() {
			c.Write([]byte("Peek(-1) is short"))
		}
		if bytes.HasSuffix(all, []byte("skip.")) {
			if n := c.Discard(-1); n != len(all) {
				c.Write([]byte("Discard(-1) is short"))
			}
			c.Write([]byte("skipped"))
			return
		}
		c.Write(c.Next(-1))
		if c.Buffered() != 0 {
			c.Write([]byte("Next(-1) left input"))
		}
	}}
	c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: h, MaxInput: 4096}))
	for i := range 20 {
		loopRoundTrip(t, c, strings.Repeat(fmt.Sprint(i), 100))
		c.Write([]byte(strings.Repeat("x", 100) + "skip."))
		if got := make([]byte, 7); func() bool { _, err := io.ReadFull(c, got); return err != nil }() || string(got) != "skipped" {
			t.Fatalf("after a skipped message: read %q, want %q", got, "skipped")
		}
	}
}

// MaxOutput bounds written and sent bytes together: 40 KiB written and 40
// KiB sent in the same callback pass a 64 KiB MaxOutput, whichever comes
// first, and the connection closes with a LimitError.
func TestLoopMaxOutputCountsSendAndWrite(t *testing.T) {
	for _, order := range []string{"write-then-send", "send-then-write"} {
		t.Run(order, func(t *testing.T) {
			checkLeaks(t)
			closed := make(chan error, 1)
			errs := make(chan error, 1)
			chunk := make([]byte, 40<<10)
			h := &loopFuncs{closed: closed, data: func(c *netcore.LoopConn) {
				c.Next(-1)
				var err error
				if order == "write-then-send" {
					c.Write(chunk)
					err = c.Send(chunk)
				} else {
					c.Send(chunk)
					_, err = c.Write(chunk)
				}
				errs <- err
			}}
			c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: h, MaxOutput: 64 << 10, OutputHighWater: 32 << 10}))
			c.Write([]byte("go"))
			if err := testkit.WaitFor(t, errs, "the second buffer"); !errors.Is(err, netcore.ErrOutputLimit) {
				t.Errorf("the buffer that passes MaxOutput: %v, want ErrOutputLimit", err)
			}
			if err := testkit.WaitFor(t, closed, "OnClose"); !errors.Is(err, netcore.ErrOutputLimit) {
				t.Errorf("closed with %v, want ErrOutputLimit", err)
			}
		})
	}
}

// Execute runs functions on the loop in order with Send; a function queued
// before the connection closes still runs once, before OnClose; after the
// close Execute returns net.ErrClosed.
func TestLoopExecute(t *testing.T) {
	forTransports(t, testLoopExecute)
}

func testLoopExecute(t *testing.T, tr transport) {
	checkLeaks(t)
	conns := make(chan *netcore.LoopConn, 1)
	closed := make(chan error, 1)
	var events []string // on the loop only
	h := &loopFuncs{open: func(c *netcore.LoopConn) { conns <- c }, closed: closed}
	h.closeHook = func(c *netcore.LoopConn) { events = append(events, "OnClose") }
	c := tr.dial(t, tr.serveLoop(t, &netcore.Loop{Handler: h}))
	lc := testkit.WaitFor(t, conns, "OnOpen")
	for i := range 100 {
		lc.Send([]byte(fmt.Sprintf("s%d,", i)))
		if err := lc.Execute(func(c *netcore.LoopConn) { c.Write([]byte(fmt.Sprintf("e%d,", i))) }); err != nil {
			t.Fatalf("Execute: %v", err)
		}
	}
	var want strings.Builder
	for i := range 100 {
		fmt.Fprintf(&want, "s%d,e%d,", i, i)
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want.String() {
		t.Fatalf("read %q, %v; want %q", got, err, want.String())
	}
	// Close, then a function queued behind it: it runs before OnClose,
	// and its Write fails.
	ran := make(chan error, 1)
	// Both queued from the loop itself, so that the Close cannot finish
	// between the two Execute calls (then the second would rightly get
	// net.ErrClosed and its function never run).
	lc.Execute(func(c *netcore.LoopConn) {
		c.Execute(func(c *netcore.LoopConn) { c.Close() })
		if err := c.Execute(func(c *netcore.LoopConn) {
			_, err := c.Write([]byte("x"))
			events = append(events, "late function")
			ran <- err
		}); err != nil {
			ran <- fmt.Errorf("Execute before the Close ran failed: %v", err)
		}
	})
	if err := testkit.WaitFor(t, closed, "OnClose"); err != nil {
		t.Errorf("OnClose = %v, want nil", err)
	}
	if err := testkit.WaitFor(t, ran, "the late function"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write in a function run at close = %v, want net.ErrClosed", err)
	}
	if fmt.Sprint(events) != "[late function OnClose]" {
		t.Errorf("events = %v, want the late function, then OnClose", events)
	}
	if err := lc.Execute(func(*netcore.LoopConn) { t.Error("ran after close") }); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Execute after close = %v, want net.ErrClosed", err)
	}
	if err := lc.Execute(nil); err == nil {
		t.Error("Execute(nil) = nil, want an error")
	}
}

// AfterFunc runs on the loop after its delay; Stop keeps it from running;
// a connection's timers never run after it closed.
func TestLoopAfterFunc(t *testing.T) {
	checkLeaks(t)
	fired := make(chan string, 4)
	closed := make(chan error, 1)
	h := &loopFuncs{closed: closed, data: func(c *netcore.LoopConn) {
		switch req := string(c.Next(-1)); req {
		case "timers":
			start := time.Now()
			c.AfterFunc(50*time.Millisecond, func(c *netcore.LoopConn) {
				if time.Since(start) < 50*time.Millisecond {
					fired <- "early"
				}
				c.Write([]byte("late,"))
			})
			c.AfterFunc(0, func(c *netcore.LoopConn) { c.Write([]byte("soon,")) })
			stopped := c.AfterFunc(10*time.Millisecond, func(c *netcore.LoopConn) { c.Write([]byte("stopped,")) })
			if !stopped.Stop() || stopped.Stop() {
				fired <- "Stop should report true once"
			}
		case "close":
			c.AfterFunc(20*time.Millisecond, func(*netcore.LoopConn) { fired <- "a closed connection's timer ran" })
			c.Close()
		}
	}}
	addr := serveLoop(t, &netcore.Loop{Handler: h})
	c := dialLoop(t, addr)
	c.Write([]byte("timers"))
	got := make([]byte, len("soon,late,"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "soon,late," {
		t.Fatalf("read %q, %v; want %q", got, err, "soon,late,")
	}
	c2 := dialLoop(t, addr)
	c2.Write([]byte("close"))
	testkit.WaitFor(t, closed, "OnClose")
	// The loop goes on past the closed connection's timer: another
	// timer, due later, fires, and nothing was reported before it.
	c.Write([]byte("timers"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "soon,late," {
		t.Fatalf("read %q, %v; want %q", got, err, "soon,late,")
	}
	select {
	case msg := <-fired:
		t.Error(msg)
	default:
	}
}

// SetDeadline closes the connection with an error matching
// os.ErrDeadlineExceeded when it passes; moved forward on each request it
// bounds the idle time of one connection, not the others.
func TestLoopSetDeadline(t *testing.T) {
	checkLeaks(t)
	const idle = 300 * time.Millisecond // round trips under -race on a loaded machine stay well inside it
	closed := make(chan error, 2)
	h := &loopFuncs{closed: closed,
		open: func(c *netcore.LoopConn) { c.SetDeadline(time.Now().Add(idle)) },
		data: func(c *netcore.LoopConn) {
			req := c.Next(-1)
			if string(req) == "forever" {
				c.SetDeadline(time.Time{})
			} else {
				c.SetDeadline(time.Now().Add(idle))
			}
			c.Write(req)
		}}
	addr := serveLoop(t, &netcore.Loop{Handler: h})
	quiet := dialLoop(t, addr)
	busy := dialLoop(t, addr)
	start := time.Now()
	for i := 0; time.Since(start) < 3*idle; i++ {
		loopRoundTrip(t, busy, fmt.Sprint(i))
	}
	if err := testkit.WaitFor(t, closed, "the deadline's close"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("closed with %v, want os.ErrDeadlineExceeded", err)
	}
	if _, err := quiet.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the quiet client's Read = %v, want EOF", err)
	}
	loopRoundTrip(t, busy, "forever")
	select {
	case err := <-closed:
		t.Errorf("a cleared deadline closed the connection: %v", err)
	case <-time.After(3 * idle): // a negative check: nothing may happen in this window
	}
	loopRoundTrip(t, busy, "forever")
}

// 10,000 timers cost at most 64 bytes each, and a loop whose timers are
// far off sleeps: no epoll_wait returns while nothing is due.
func TestLoopTimersCostAndSleep(t *testing.T) {
	checkLeaks(t)
	const timers = 10000
	done := make(chan [2]uint64, 1)
	ts := make([]*netcore.LoopTimer, 0, timers)
	defer runtime.KeepAlive(ts)
	h := &loopFuncs{data: func(c *netcore.LoopConn) {
		if req := c.Next(-1); string(req) != "go" {
			c.Write(req)
			return
		}
		fn := func(*netcore.LoopConn) {}
		var before, after runtime.MemStats
		// Twice: finalizers of earlier tests' sockets free memory at
		// the second collection.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range timers {
			ts = append(ts, c.AfterFunc(time.Hour+time.Duration(i), fn))
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		done <- [2]uint64{after.HeapAlloc, before.HeapAlloc}
	}}
	c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: h, Loops: 1}))
	c.Write([]byte("go"))
	r := testkit.WaitFor(t, done, "the timers")
	perTimer := (float64(r[0]) - float64(r[1])) / timers
	t.Logf("%.1f bytes of heap kept per timer", perTimer)
	if perTimer > 64 {
		t.Errorf("%.1f bytes per timer, want at most 64", perTimer)
	}
	// The loop goes back to epoll_wait after the callback (counted
	// when it returns); from then on, nothing.
	loopRoundTrip(t, c, "x")
	w0 := sys.Count(sys.OpEpollWait)
	time.Sleep(200 * time.Millisecond) // a window in which nothing is due
	if n := sys.Count(sys.OpEpollWait) - w0; n > 1 {
		t.Errorf("epoll_wait returned %d times while no timer was due, want 0 (1 for the round trip's own)", n)
	}
}

// wrappedListener hides its listener's SyscallConn, as many wrappers do.
type wrappedListener struct{ net.Listener }

// Loop.Serve takes a net.Listener as Server.Serve does: a *net.TCPListener
// is served, and so is a *net.UnixListener; a listener without a
// reachable socket is refused with
// an error naming it (and closed, as Serve owns it).
func TestLoopServeNetListener(t *testing.T) {
	checkLeaks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lp := &netcore.Loop{Handler: loopEcho(nil), Logger: quietLogger()}
	served := make(chan error, 1)
	go func() { served <- lp.Serve(l) }()
	c := dialLoop(t, l.Addr().String())
	for i := range 10 {
		loopRoundTrip(t, c, fmt.Sprintf("over a *net.TCPListener %d", i))
	}

	refused := func(name string, l net.Listener, want string) {
		t.Run(name, func(t *testing.T) {
			err := lp.Serve(l)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Serve(%T) = %v, want an error containing %q", l, err, want)
			}
			if _, aerr := l.Accept(); !errors.Is(aerr, net.ErrClosed) {
				t.Errorf("after a refused Serve, Accept = %v; want net.ErrClosed (Serve closes its listener)", aerr)
			}
		})
	}
	wl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused("wrapped", wrappedListener{wl}, "netcore_test.wrappedListener gives no access to its socket")
	// A *net.UnixListener is served too, beside the TCP one.
	ul, err := net.Listen("unix", testkit.UnixPath(t))
	if err != nil {
		t.Fatal(err)
	}
	uServed := make(chan error, 1)
	go func() { uServed <- lp.Serve(ul) }()
	uc, err := netcore.Dial("unix", ul.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.SetDeadline(time.Now().Add(testkit.Timeout))
	loopRoundTrip(t, uc, "over a *net.UnixListener")
	uc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := testkit.WaitFor(t, served, "Serve's return"); !errors.Is(err, netcore.ErrLoopClosed) {
		t.Errorf("Serve = %v, want ErrLoopClosed", err)
	}
	if err := testkit.WaitFor(t, uServed, "Serve's return (unix)"); !errors.Is(err, netcore.ErrLoopClosed) {
		t.Errorf("Serve(*net.UnixListener) = %v, want ErrLoopClosed", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Errorf("the *net.TCPListener still accepts after Shutdown")
	}
}

// A Send made while a reply frame is being built goes out after the
// frame, never inside it; one made before the frame goes out before it.
func TestLoopSendAroundReplyFrame(t *testing.T) {
	checkLeaks(t)
	codec, err := netcore.NewFrameCodec(2, binary.BigEndian, 1000)
	if err != nil {
		t.Fatal(err)
	}
	fh := &netcore.FrameHandler{Codec: codec, OnFrame: func(c *netcore.LoopConn, req []byte) {
		c.Send([]byte("before,"))
		f, err := c.BeginFrame(codec)
		if err != nil {
			t.Errorf("BeginFrame: %v", err)
			return
		}
		c.Write([]byte("pay"))
		c.Send([]byte(",after"))
		c.Write([]byte("load"))
		if err := f.End(); err != nil {
			t.Errorf("End: %v", err)
		}
	}}
	c := dialLoop(t, serveLoop(t, &netcore.Loop{Handler: fh.LoopHandler()}))
	req, _ := codec.Append(nil, []byte("q"))
	c.Write(req)
	want := "before,\x00\x07payload,after"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}
