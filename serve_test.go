//go:build linux

package netcore_test

import (
	"context"
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
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
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
	c.SetDeadline(time.Now().Add(testTimeout))
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
	var logs syncBuffer
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
	calm.SetDeadline(time.Now().Add(testTimeout))

	bad, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.SetDeadline(time.Now().Add(testTimeout))
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
		case <-time.After(testTimeout):
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
	case <-time.After(testTimeout):
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
				c.SetReadDeadline(time.Now().Add(testTimeout))
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
	case <-time.After(testTimeout):
		t.Fatal("IdleTimeout did not end an idle Read")
	}

	busy, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.Write([]byte("o"))
	waitFor(t, deadlineSet, "the handler setting its deadline")
	<-time.After(150 * time.Millisecond) // three IdleTimeouts: the behaviour under test
	busy.Write([]byte("data"))
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("handler with its own deadline = %v, want the data (IdleTimeout must not apply)", err)
		}
	case <-time.After(testTimeout):
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
		waitFor(t, inHandler, "the handler starting")
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
		case <-time.After(testTimeout):
			t.Fatal("Shutdown did not return after the handler finished")
		}
		c.SetDeadline(time.Now().Add(testTimeout))
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
		waitFor(t, started, "the handler starting")
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
		case <-time.After(testTimeout):
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
		l := listen(t, "tcp4", "127.0.0.1:0")
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		c, err := netcore.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitFor(t, started, "the handler starting")
		go srv.Close()
		select {
		case err := <-served:
			if !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("Serve did not return after Close")
		}
		select {
		case err := <-readErr:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("handler Read after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("handler not woken by Close")
		}
	})
	t.Run("Serve after Shutdown", func(t *testing.T) {
		t.Parallel()
		srv := &netcore.Server{Handler: netcore.HandlerFunc(echoHandler)}
		srv.Shutdown(context.Background())
		l := listen(t, "tcp4", "127.0.0.1:0")
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
	l := listen(t, "tcp4", "127.0.0.1:0")
	if err := (&netcore.Server{}).Serve(l); err == nil || !strings.Contains(err.Error(), "Handler") {
		t.Errorf("Serve without a Handler = %v, want an error saying so", err)
	}
}

// TestServerShutdownLeavesNothing serves 50 clients, shuts down, and
// checks every descriptor and goroutine is gone.
func TestServerShutdownLeavesNothing(t *testing.T) {
	checkLeaks(t)
	for _, blocking := range modes {
		l := listenMode(t, blocking)
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
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
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
	for _, blocking := range modes {
		l := listenMode(t, blocking)
		d := netcore.Dialer{Blocking: blocking, Timeout: testTimeout}
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
