package netcore_test

// Tests that need a Loop in a process of its own: a real RLIMIT_NOFILE
// exhaustion, and 10,000 connections (both ends in one process would need
// more descriptors than the hard limit here, 20000).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

const loopChildEnv = "NETCORE_LOOP_CHILD"

// TestLoopChild is the server side of the tests below, run in a child
// process; on its own it does nothing. It serves an echo Loop, prints its
// address, and answers commands on stdin, one a line:
//
//	stats  prints "conns=N rss=BYTES buffers=BYTES" (buffers: the Loop's
//	       input and output buffer memory)
//	empty  waits until no connection is left, shuts the Loop down, and
//	       prints "ok" if descriptors and goroutines are back to where they
//	       were before Serve, or what is left over
//
// It exits when stdin closes.
func TestLoopChild(t *testing.T) {
	mode := os.Getenv(loopChildEnv)
	if mode == "" {
		t.Skip("runs only as the child process of TestLoopRealEMFILE and TestLoop10000Conns")
	}
	// The baseline, once the runtime's poller is up (its descriptors stay).
	if l0, err := netcore.Listen("tcp4", "127.0.0.1:0"); err == nil {
		l0.Close()
	}
	fds0, gs0 := openFDs(t), runtime.NumGoroutine()
	switch mode {
	case "emfile":
		// Room for the listener, the loop's three descriptors (epoll,
		// eventfd, the reserve) and a handful of connections.
		limit := uint64(fds0 + 1 + 3 + 4)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
	case "scale":
		raiseNOFILE(t)
	}
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lp := &netcore.Loop{Handler: loopEcho(nil), Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if mode == "emfile" {
		lp.Loops = 1
	}
	served := make(chan error, 1)
	go func() { served <- lp.Serve(l) }()
	fmt.Println(l.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "stats":
			st := lp.Stats()
			fmt.Printf("conns=%d rss=%d buffers=%d\n", st.Conns, rss(t), st.InputBytes+st.OutputBytes)
		case "empty":
			deadline := time.Now().Add(testkit.Timeout)
			for lp.Stats().Conns > 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // polling a count
			}
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
			err := lp.Shutdown(ctx)
			cancel()
			if err == nil {
				if err = <-served; errors.Is(err, netcore.ErrLoopClosed) {
					err = nil
				}
			}
			for deadline := time.Now().Add(testkit.Timeout); time.Now().Before(deadline); {
				if openFDs(t) <= fds0 && runtime.NumGoroutine() <= gs0 {
					break
				}
				time.Sleep(time.Millisecond) // polling counts
			}
			if fds, gs := openFDs(t), runtime.NumGoroutine(); err != nil || fds > fds0 || gs > gs0 {
				fmt.Printf("leak: Shutdown %v, %d descriptors (baseline %d), %d goroutines (baseline %d)\n", err, fds, fds0, gs, gs0)
			} else {
				fmt.Println("ok")
			}
		}
	}
	lp.Close()
}

// raiseNOFILE raises the soft RLIMIT_NOFILE to the hard limit.
func raiseNOFILE(t testing.TB) uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	rl.Cur = rl.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	return rl.Max
}

// rss returns the process's resident set size in bytes.
func rss(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// startLoopChild starts TestLoopChild in mode; it is stopped when the test
// ends.
func startLoopChild(t *testing.T, mode string) *testkit.Child {
	t.Helper()
	ch := testkit.StartChild(t, "TestLoopChild", loopChildEnv+"="+mode)
	t.Cleanup(func() { ch.Stop() })
	return ch
}

// A Loop out of descriptors for real (a child process with a low
// RLIMIT_NOFILE): clients beyond the limit are closed promptly by the
// reserve-descriptor trick instead of hanging in the backlog, the Loop
// keeps serving, and a new client is served once descriptors free up.
func TestLoopRealEMFILE(t *testing.T) {
	t.Parallel()
	ch := startLoopChild(t, "emfile")
	var held []*netcore.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	shed := false
	for i := 0; i < 64 && !shed; i++ {
		c, err := netcore.Dial("tcp4", ch.Addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(testkit.Timeout))
		c.Write([]byte("x"))
		n, err := c.Read(make([]byte, 1))
		switch {
		case n == 1:
			// Served: keep it open.
		case err == io.EOF || errors.Is(err, unix.ECONNRESET):
			shed = true // closed at once by the reserve trick
		default:
			t.Fatalf("connection %d: Read = %d, %v; want the echo or a prompt close (child log:\n%s)", i, n, err, ch.Stderr())
		}
	}
	if !shed {
		t.Fatalf("no connection was shed after %d; child log:\n%s", len(held), ch.Stderr())
	}
	// The child logs right after the close the client saw.
	logged := func() bool {
		log := ch.Stderr()
		return strings.Contains(log, "too many open files") && strings.Contains(log, "reserve descriptor")
	}
	for deadline := time.Now().Add(testkit.Timeout); !logged() && time.Now().Before(deadline); {
		<-time.After(5 * time.Millisecond) // polling the child's log, bounded
	}
	if log := ch.Stderr(); !logged() {
		t.Errorf("the child's log does not report the shed connection:\n%s", log)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	// Descriptors free up as the loop sees the closes; a new client is
	// served (one that comes too early is shed: try again).
	for attempt := 0; ; attempt++ {
		c := dialLoop(t, ch.Addr)
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		_, err := io.ReadFull(c, buf)
		c.Close()
		if err == nil && string(buf) == "ping" {
			break
		}
		if attempt == 100 {
			t.Fatalf("no echo after the descriptors were freed: %q, %v; child log:\n%s", buf, err, ch.Stderr())
		}
	}
}

// 10,000 connections to a Loop in a child process: each is opened and
// makes a round trip; all are held open at once, then closed; the child's
// descriptors and goroutines are back to their baseline, and so are ours.
func TestLoop10000Conns(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections: not in -short")
	}
	checkLeaks(t)
	const n = 10000
	if hard := raiseNOFILE(t); hard < n+100 {
		t.Skipf("RLIMIT_NOFILE hard limit %d is too low for %d connections", hard, n)
	}
	ch := startLoopChild(t, "scale")
	base := ch.Ask(t, "stats")
	conns := make([]*netcore.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8)
			for i := w; i < n; i += workers {
				c, err := netcore.Dial("tcp4", ch.Addr)
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				conns[i] = c
				c.SetDeadline(time.Now().Add(testkit.Timeout))
				msg := fmt.Appendf(buf[:0], "%08d", i)
				if _, err := c.Write(msg); err != nil {
					errs <- fmt.Errorf("conn %d: %w", i, err)
					return
				}
				got := make([]byte, 8)
				if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
					errs <- fmt.Errorf("conn %d: echo %q, %v; want %q", i, got, err, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var c0, c1, r0, r1, b0, b1 int64
	fmt.Sscanf(base, "conns=%d rss=%d buffers=%d", &c0, &r0, &b0)
	// The loop releases a buffer right after the write that the client
	// may already have read: ask until that has happened (bounded).
	for deadline := time.Now().Add(testkit.Timeout); ; {
		full := ch.Ask(t, "stats")
		fmt.Sscanf(full, "conns=%d rss=%d buffers=%d", &c1, &r1, &b1)
		if b1 == 0 || time.Now().After(deadline) {
			break
		}
	}
	if c1 != n {
		t.Errorf("the child's Loop has %d connections, want %d", c1, n)
	}
	if b1 != 0 {
		t.Errorf("%d idle connections hold %d bytes of buffers, want none", n, b1)
	}
	t.Logf("child RSS %d KiB before, %d KiB with %d idle connections: %d bytes per connection", r0>>10, r1>>10, n, (r1-r0)/n)
	for i, c := range conns {
		c.Close()
		conns[i] = nil
	}
	if got := ch.Ask(t, "empty"); got != "ok" {
		t.Errorf("the child after all closed: %s\n%s", got, ch.Stderr())
	}
}
