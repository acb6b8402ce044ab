package netcore_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// startServe runs srv on a fresh loopback listener; the returned function
// shuts it down and checks Serve's result.
func startServe(t *testing.T, srv *netcore.Server) (addr string, shutdown func(ctx context.Context) error) {
	t.Helper()
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	var once sync.Once
	var shutErr error
	shutdown = func(ctx context.Context) error {
		once.Do(func() {
			shutErr = srv.Shutdown(ctx)
			if err := <-served; !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("Serve = %v, want ErrServerClosed", err)
			}
		})
		return shutErr
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		defer cancel()
		shutdown(ctx)
	})
	return l.Addr().String(), shutdown
}

func echoHandler(_ context.Context, c net.Conn) { io.Copy(c, c) }

// roundTrip dials addr, sends msg, half-closes and returns the reply.
func roundTrip(addr, msg string) (string, error) {
	c, err := netcore.Dial("tcp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestServerEchoManyClients(t *testing.T) {
	t.Parallel()
	addr, _ := startServe(t, &netcore.Server{Handler: netcore.HandlerFunc(echoHandler)})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := strings.Repeat(fmt.Sprintf("client %d ", i), 1000)
			got, err := roundTrip(addr, msg)
			if err == nil && got != msg {
				err = fmt.Errorf("client %d: echo of %d bytes came back as %d bytes", i, len(msg), len(got))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServerRecoversHandlerPanic(t *testing.T) {
	t.Parallel()
	var logs testkit.SyncBuffer
	addr, _ := startServe(t, &netcore.Server{
		Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) {
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if string(buf) == "panic" {
				panic("handler exploded")
			}
			c.Write(buf)
		}),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	// A client connected before the panic, served after it.
	calm, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer calm.Close()
	calm.SetDeadline(time.Now().Add(testkit.Timeout))

	bad, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.SetDeadline(time.Now().Add(testkit.Timeout))
	bad.Write([]byte("panic"))
	if n, err := bad.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the panicking handler's connection stayed open: read %d bytes", n)
	} else if err != io.EOF && !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("Read on the panicking handler's connection = %v, want EOF or ECONNRESET", err)
	}
	calm.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(calm, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("the other client after the panic: %q, %v", buf, err)
	}
	if got := logs.String(); !strings.Contains(got, "panicked") || !strings.Contains(got, "handler exploded") {
		t.Errorf("log does not record the panic:\n%s", got)
	}
}

func TestServerMaxConns(t *testing.T) {
	t.Parallel()
	var running, most atomic.Int64
	started := make(chan struct{}, 3)
	release := make(chan struct{})
	addr, _ := startServe(t, &netcore.Server{
		MaxConns: 2,
		Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			started <- struct{}{}
			<-release
		}),
	})
	var conns []*netcore.Conn
	for range 3 {
		c, err := netcore.Dial("tcp4", addr) // the third waits in the backlog
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for range 2 {
		select {
		case <-started:
		case <-time.After(testkit.Timeout):
			t.Fatal("the first two handlers did not start")
		}
	}
	select {
	case <-started:
		t.Fatal("a third handler started while two were running with MaxConns 2")
	case <-time.After(50 * time.Millisecond): // the behaviour under test: nothing happens
	}
	release <- struct{}{} // one finishes
	select {
	case <-started:
	case <-time.After(testkit.Timeout):
		t.Fatal("the third handler did not start after one finished")
	}
	close(release)
	if most.Load() > 2 {
		t.Errorf("%d handlers ran at once with MaxConns 2", most.Load())
	}
}

func TestServerIdleTimeout(t *testing.T) {
	t.Parallel()
	results := make(chan error, 2)
	deadlineSet := make(chan struct{}, 1)
	addr, _ := startServe(t, &netcore.Server{
		IdleTimeout: 50 * time.Millisecond,
		Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) {
			buf := make([]byte, 4)
			mode := make([]byte, 1)
			if _, err := io.ReadFull(c, mode); err != nil {
				results <- err
				return
			}
			if mode[0] == 'o' { // "own deadline": longer than IdleTimeout
				c.SetReadDeadline(time.Now().Add(testkit.Timeout))
				deadlineSet <- struct{}{}
			}
			_, err := io.ReadFull(c, buf)
			results <- err
		}),
	})
	idle, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte("i")) // then nothing: the handler's next Read times out
	select {
	case err := <-results:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("handler Read on an idle client = %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(testkit.Timeout):
		t.Fatal("IdleTimeout did not end an idle Read")
	}

	busy, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.Write([]byte("o"))
	testkit.WaitFor(t, deadlineSet, "the handler setting its deadline")
	<-time.After(150 * time.Millisecond) // three IdleTimeouts: the behaviour under test
	busy.Write([]byte("data"))
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("handler with its own deadline = %v, want the data (IdleTimeout must not apply)", err)
		}
	case <-time.After(testkit.Timeout):
		t.Fatal("handler with its own deadline did not finish")
	}
}

func TestServerShutdown(t *testing.T) {
	t.Parallel()
	t.Run("waits for handlers", func(t *testing.T) {
		t.Parallel()
		inHandler := make(chan struct{})
		release := make(chan struct{})
		addr, shutdown := startServe(t, &netcore.Server{Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) {
			close(inHandler)
			<-release
			c.Write([]byte("bye"))
		})})
		c, err := netcore.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		testkit.WaitFor(t, inHandler, "the handler starting")
		done := make(chan error, 1)
		go func() { done <- shutdown(context.Background()) }()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned (%v) while a handler was running", err)
		case <-time.After(50 * time.Millisecond): // the behaviour under test: it waits
		}
		// New connections are refused once the listener is closed.
		if c2, err := netcore.Dial("tcp4", addr); err == nil {
			c2.Close()
			t.Error("Dial succeeded after Shutdown closed the listener")
		} else if !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("Dial after Shutdown = %v, want ECONNREFUSED", err)
		}
		close(release)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
		case <-time.After(testkit.Timeout):
			t.Fatal("Shutdown did not return after the handler finished")
		}
		c.SetDeadline(time.Now().Add(testkit.Timeout))
		if b, err := io.ReadAll(c); err != nil || string(b) != "bye" {
			t.Errorf("the handler's last words = %q, %v", b, err)
		}
	})
	t.Run("expired context closes connections", func(t *testing.T) {
		t.Parallel()
		readErr := make(chan error, 1)
		started := make(chan struct{})
		addr, shutdown := startServe(t, &netcore.Server{Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) {
			close(started)
			_, err := c.Read(make([]byte, 1))
			readErr <- err
		})})
		c, err := netcore.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		testkit.WaitFor(t, started, "the handler starting")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown with a done context = %v, want context.Canceled", err)
		}
		select {
		case err := <-readErr:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("the handler's Read after a forced shutdown = %v, want net.ErrClosed", err)
			}
		case <-time.After(testkit.Timeout):
			t.Fatal("the handler's Read was not woken")
		}
	})
	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		readErr := make(chan error, 1)
		started := make(chan struct{})
		srv := &netcore.Server{Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) {
			close(started)
			_, err := c.Read(make([]byte, 1))
			readErr <- err
		})}
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		c, err := netcore.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		testkit.WaitFor(t, started, "the handler starting")
		go srv.Close()
		select {
		case err := <-served:
			if !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
			}
		case <-time.After(testkit.Timeout):
			t.Fatal("Serve did not return after Close")
		}
		select {
		case err := <-readErr:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("handler Read after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(testkit.Timeout):
			t.Fatal("handler not woken by Close")
		}
	})
	t.Run("Serve after Shutdown", func(t *testing.T) {
		t.Parallel()
		srv := &netcore.Server{Handler: netcore.HandlerFunc(echoHandler)}
		srv.Shutdown(context.Background())
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		if err := srv.Serve(l); !errors.Is(err, netcore.ErrServerClosed) {
			t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
		}
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("the listener Serve was given is still open: Accept = %v", err)
		}
	})
}

func TestServerBadConfig(t *testing.T) {
	t.Parallel()
	srv := &netcore.Server{Addr: "127.0.0.1:99999", Handler: netcore.HandlerFunc(echoHandler)}
	if err := srv.ListenAndServe(); err == nil || !strings.Contains(err.Error(), "127.0.0.1:99999") {
		t.Errorf("ListenAndServe with a bad Addr = %v, want an error naming it", err)
	}
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	if err := (&netcore.Server{}).Serve(l); err == nil || !strings.Contains(err.Error(), "Handler") {
		t.Errorf("Serve without a Handler = %v, want an error saying so", err)
	}
}

// TestServerShutdownLeavesNothing serves 50 clients, shuts down, and
// checks every descriptor and goroutine is gone.
func TestServerShutdownLeavesNothing(t *testing.T) {
	checkLeaks(t)
	for _, blocking := range testkit.Modes {
		l := testkit.ListenMode(t, blocking)
		srv := &netcore.Server{Handler: netcore.HandlerFunc(echoHandler)}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := fmt.Sprint("client ", i)
				if got, err := roundTrip(l.Addr().String(), msg); err != nil || got != msg {
					t.Errorf("round trip %d = %q, %v", i, got, err)
				}
			}()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		if err := <-served; !errors.Is(err, netcore.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	}
}

// TestDialAcceptCloseCyclesLeakNothing: 1000 connections made and closed
// in each mode; descriptors and goroutines are back to the baseline.
func TestDialAcceptCloseCyclesLeakNothing(t *testing.T) {
	checkLeaks(t)
	for _, blocking := range testkit.Modes {
		l := testkit.ListenMode(t, blocking)
		d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
		for i := range 1000 {
			c, err := d.Dial("tcp4", l.Addr().String())
			if err != nil {
				t.Fatalf("blocking=%v: dial %d: %v", blocking, i, err)
			}
			s, err := l.AcceptConn()
			if err != nil {
				t.Fatalf("blocking=%v: accept %d: %v", blocking, i, err)
			}
			if i%3 == 0 {
				s.Write([]byte("x"))
				c.Read(make([]byte, 1))
			}
			s.Close()
			c.Close()
		}
		l.Close()
	}
}

// TestServerMaxConnsPerServer: MaxConns bounds the Server, not each Serve
// call: with two listeners and MaxConns 1, one handler runs at a time.
func TestServerMaxConnsPerServer(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	srv := &netcore.Server{
		MaxConns: 1,
		Handler: netcore.HandlerFunc(func(context.Context, net.Conn) {
			started <- struct{}{}
			<-release
		}),
	}
	var addrs []string
	served := make(chan error, 2)
	for range 2 {
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		addrs = append(addrs, l.Addr().String())
		go func() { served <- srv.Serve(l) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		defer cancel()
		srv.Shutdown(ctx)
		for range 2 {
			if err := testkit.WaitFor(t, served, "Serve returning"); !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("Serve = %v, want ErrServerClosed", err)
			}
		}
	})
	for _, addr := range addrs {
		c, err := netcore.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	testkit.WaitFor(t, started, "the first handler starting")
	select {
	case <-started:
		t.Fatal("a second handler started on the other listener while one was running with MaxConns 1")
	case <-time.After(50 * time.Millisecond): // the behaviour under test: nothing happens
	}
	release <- struct{}{}
	testkit.WaitFor(t, started, "the second handler starting after the first finished")
	close(release)
}

// idleLoop is a request/response handler in the recommended shape: each
// request is one line, waited for inside netcore.Idle; the answer is the
// line upper-cased. Before answering it reports the request on requests,
// and waits for proceed when the line is "slow". Its end is reported on
// ended.
func idleLoop(requests chan<- string, proceed <-chan struct{}, ended chan<- error) netcore.Handler {
	return netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			err := netcore.Idle(ctx, func() error { _, err := br.Peek(1); return err })
			if err != nil {
				ended <- err
				return
			}
			line, err := br.ReadString('\n')
			if err != nil {
				ended <- err
				return
			}
			requests <- line
			if line == "slow\n" {
				<-proceed
				if ctx.Err() == nil {
					ended <- errors.New("the handler's context was not cancelled by Shutdown")
					return
				}
			}
			if _, err := io.WriteString(c, strings.ToUpper(line)); err != nil {
				ended <- err
				return
			}
		}
	})
}

// TestServerShutdownIdleAndBusy: Shutdown ends the connections that wait
// for a new request at once, lets the one in the middle of a request
// finish and answer, and returns nil well before its context expires.
func TestServerShutdownIdleAndBusy(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			t.Parallel()
			requests := make(chan string, 8)
			proceed := make(chan struct{})
			ended := make(chan error, 8)
			srv := &netcore.Server{Handler: idleLoop(requests, proceed, ended), IdleTimeout: time.Minute}
			l := testkit.ListenMode(t, blocking)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()

			dial := func() *netcore.Conn {
				c, err := netcore.Dial("tcp4", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				c.SetDeadline(time.Now().Add(testkit.Timeout))
				return c
			}
			// Two idle clients: one served a request first, one never sent anything.
			idle1, idle2, busy := dial(), dial(), dial()
			io.WriteString(idle1, "ping\n")
			if got := testkit.WaitFor(t, requests, "idle1's request"); got != "ping\n" {
				t.Fatalf("request = %q", got)
			}
			br1 := bufio.NewReader(idle1)
			if line, err := br1.ReadString('\n'); err != nil || line != "PING\n" {
				t.Fatalf("idle1's answer = %q, %v", line, err)
			}
			io.WriteString(busy, "slow\n")
			if got := testkit.WaitFor(t, requests, "the slow request"); got != "slow\n" {
				t.Fatalf("request = %q", got)
			}

			ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- srv.Shutdown(ctx) }()
			// idle2's handler may still be on its way into Idle; either way
			// it ends with ErrServerClosed, like idle1's.
			for range 2 {
				if err := testkit.WaitFor(t, ended, "an idle handler ending"); !errors.Is(err, netcore.ErrServerClosed) {
					t.Fatalf("idle handler ended with %v, want ErrServerClosed", err)
				}
			}
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned (%v) while a request was being served", err)
			default: // the busy handler is parked on proceed: Shutdown cannot have returned
			}
			for _, c := range []*netcore.Conn{idle1, idle2} {
				if n, err := c.Read(make([]byte, 1)); err != io.EOF {
					t.Errorf("idle client after Shutdown: Read = %d, %v, want EOF", n, err)
				}
			}
			close(proceed)
			if line, err := bufio.NewReader(busy).ReadString('\n'); err != nil || line != "SLOW\n" {
				t.Errorf("the busy client's answer = %q, %v, want \"SLOW\\n\"", line, err)
			}
			if err := testkit.WaitFor(t, ended, "the busy handler ending"); !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("busy handler, back in Idle after Shutdown, ended with %v, want ErrServerClosed", err)
			}
			if err := testkit.WaitFor(t, shut, "Shutdown returning"); err != nil {
				t.Errorf("Shutdown = %v, want nil (every handler ended before the context)", err)
			}
			if err := testkit.WaitFor(t, served, "Serve returning"); !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("Serve = %v, want ErrServerClosed", err)
			}
		})
	}
}

// TestServerShutdownExpiredContextNothingRunning: as net/http, a Shutdown
// with nothing left to wait for returns nil even if its context is already
// done (the choice between "finished" and "ctx done" must not be random).
func TestServerShutdownExpiredContextNothingRunning(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 200 {
		srv := &netcore.Server{Handler: netcore.HandlerFunc(echoHandler)}
		if i%2 == 1 { // half of them served a client first
			addr, _ := startServe(t, srv)
			if got, err := roundTrip(addr, "x"); err != nil || got != "x" {
				t.Fatalf("round trip = %q, %v", got, err)
			}
			// The client saw EOF, so the Server has closed the connection,
			// which it does after the handler is counted out.
		}
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown #%d with a done context and nothing running = %v, want nil", i, err)
		}
	}
}

// timeoutListener reports every Accept error on errs (dropping them when
// nobody listens).
type timeoutListener struct {
	*netcore.Listener
	errs chan error
}

func (l timeoutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case l.errs <- err:
		default:
		}
	}
	return c, err
}

// TestServerRetriesListenerTimeout: a listener deadline that passes is
// not the end of Serve; once the deadline is lifted, clients are served.
func TestServerRetriesListenerTimeout(t *testing.T) {
	t.Parallel()
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	if err := l.SetDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	tl := timeoutListener{l, make(chan error, 1)}
	srv := &netcore.Server{Handler: netcore.HandlerFunc(echoHandler), Logger: slog.New(slog.DiscardHandler)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tl) }()
	if err := testkit.WaitFor(t, tl.errs, "Accept timing out"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Accept with a past deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v after a listener timeout", err)
	default:
	}
	if err := l.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(l.Addr().String(), "after the timeout"); err != nil || got != "after the timeout" {
		t.Errorf("round trip after the deadline was lifted = %q, %v", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := testkit.WaitFor(t, served, "Serve returning"); !errors.Is(err, netcore.ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
}

func TestServerBoundAddr(t *testing.T) {
	t.Parallel()
	t.Run("ListenAndServe on port 0", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		defer cancel()
		srv := &netcore.Server{Addr: "127.0.0.1:0", Handler: netcore.HandlerFunc(echoHandler)}
		served := make(chan error, 1)
		go func() { served <- srv.ListenAndServe() }()
		addr, err := srv.BoundAddr(ctx)
		if err != nil {
			t.Fatalf("BoundAddr = %v", err)
		}
		tcp, ok := addr.(*net.TCPAddr)
		if !ok || tcp.Port == 0 || !tcp.IP.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Fatalf("BoundAddr = %v (%T), want 127.0.0.1 and the port the kernel chose", addr, addr)
		}
		if got, err := roundTrip(addr.String(), "bound"); err != nil || got != "bound" {
			t.Errorf("round trip to the bound address = %q, %v", got, err)
		}
		if again, err := srv.BoundAddr(ctx); err != nil || again.String() != addr.String() {
			t.Errorf("BoundAddr again = %v, %v, want %v", again, err, addr)
		}
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := testkit.WaitFor(t, served, "ListenAndServe returning"); !errors.Is(err, netcore.ErrServerClosed) {
			t.Errorf("ListenAndServe = %v, want ErrServerClosed", err)
		}
	})
	t.Run("bad Addr", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		defer cancel()
		srv := &netcore.Server{Addr: "127.0.0.1:99999", Handler: netcore.HandlerFunc(echoHandler)}
		go srv.ListenAndServe()
		if addr, err := srv.BoundAddr(ctx); err == nil || !strings.Contains(err.Error(), "127.0.0.1:99999") {
			t.Errorf("BoundAddr after a failed Listen = %v, %v, want the error naming the address", addr, err)
		}
	})
	t.Run("closed before listening", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		defer cancel()
		srv := &netcore.Server{Handler: netcore.HandlerFunc(echoHandler)}
		got := make(chan error, 1)
		go func() {
			_, err := srv.BoundAddr(ctx)
			got <- err
		}()
		srv.Close()
		if err := testkit.WaitFor(t, got, "BoundAddr returning"); !errors.Is(err, netcore.ErrServerClosed) {
			t.Errorf("BoundAddr on a closed Server = %v, want ErrServerClosed", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
		defer cancel()
		srv := &netcore.Server{Handler: netcore.HandlerFunc(echoHandler)}
		done, cancelDone := context.WithCancel(ctx)
		cancelDone()
		if _, err := srv.BoundAddr(done); !errors.Is(err, context.Canceled) {
			t.Errorf("BoundAddr with a cancelled context = %v, want context.Canceled", err)
		}
	})
}

// TestServerShutdownIdleLeavesNothing: 20 clients, served once and then
// idle, over plain TCP and TLS in each mode; Shutdown ends them all and
// returns nil, and every descriptor and goroutine is gone afterwards.
func TestServerShutdownIdleLeavesNothing(t *testing.T) {
	checkLeaks(t)
	cert, pool := selfSigned(t)
	for _, blocking := range testkit.Modes {
		for _, useTLS := range []bool{false, true} {
			requests := make(chan string, 20)
			ended := make(chan error, 20)
			srv := &netcore.Server{Handler: idleLoop(requests, nil, ended)}
			if useTLS {
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
			}
			l := testkit.ListenMode(t, blocking)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			var conns []net.Conn
			for range 20 {
				var c net.Conn
				var err error
				d := &netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
				if useTLS {
					c, err = d.DialTLSContext(context.Background(), "tcp4", l.Addr().String(), &tls.Config{RootCAs: pool})
				} else {
					c, err = d.DialNetConn(context.Background(), "tcp4", l.Addr().String())
				}
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(testkit.Timeout))
				io.WriteString(c, "hi\n")
				if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "HI\n" {
					t.Fatalf("blocking=%v tls=%v: answer = %q, %v", blocking, useTLS, line, err)
				}
				testkit.WaitFor(t, requests, "the request")
				conns = append(conns, c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("blocking=%v tls=%v: Shutdown with 20 idle clients = %v, want nil", blocking, useTLS, err)
			}
			cancel()
			for range 20 {
				if err := testkit.WaitFor(t, ended, "a handler ending"); !errors.Is(err, netcore.ErrServerClosed) {
					t.Errorf("blocking=%v tls=%v: handler ended with %v, want ErrServerClosed", blocking, useTLS, err)
				}
			}
			if err := testkit.WaitFor(t, served, "Serve returning"); !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("Serve = %v", err)
			}
			for _, c := range conns {
				c.Close()
			}
		}
	}
}
