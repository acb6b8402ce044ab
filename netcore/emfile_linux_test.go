package netcore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

const emfileChildEnv = "NETCORE_EMFILE_CHILD"

// TestEMFILEChild is the server side of TestRealEMFILE, run in a child
// process with a low descriptor limit; on its own it does nothing.
func TestEMFILEChild(t *testing.T) {
	if os.Getenv(emfileChildEnv) != "1" {
		t.Skip("runs only as TestRealEMFILE's child process")
	}
	// Room for the listener and a handful of connections, no more.
	limit := uint64(openFDs(t) + 6)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &netcore.Server{
		Handler: netcore.HandlerFunc(func(_ context.Context, c net.Conn) { io.Copy(c, c) }),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	go srv.Serve(l)
	fmt.Println(l.Addr())
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
	srv.Close()
}

// TestRealEMFILE floods a server that runs out of descriptors for real (a
// child process with a low RLIMIT_NOFILE): it must back off without
// exiting or spinning, and serve a new client once connections close.
func TestRealEMFILE(t *testing.T) {
	t.Parallel()
	ch := testkit.StartChild(t, "TestEMFILEChild", emfileChildEnv+"=1")
	t.Cleanup(func() { ch.Stop() })
	addr := ch.Addr

	// Hold connections open, each proven served by an echo, until the
	// child's accept4 fails with EMFILE.
	var held []*netcore.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	hitLimit := false
	for i := 0; i < 64 && !hitLimit; i++ {
		c, err := netcore.Dial("tcp4", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write([]byte("x"))
		_, err = c.Read(make([]byte, 1))
		c.SetDeadline(time.Time{})
		if err != nil { // not accepted: the child must have hit its limit
			deadline := time.Now().Add(testkit.Timeout)
			for !strings.Contains(ch.Stderr(), "too many open files") && time.Now().Before(deadline) {
				<-time.After(10 * time.Millisecond) // polling the child's log, bounded
			}
			hitLimit = strings.Contains(ch.Stderr(), "too many open files")
		}
	}
	if !hitLimit {
		t.Fatalf("the child never reported EMFILE after %d connections; its log:\n%s", len(held), ch.Stderr())
	}
	select {
	case <-ch.Done():
		t.Fatalf("the child exited under EMFILE: %v\n%s", ch.Err(), ch.Stderr())
	default:
	}
	if !strings.Contains(ch.Stderr(), "backing off") {
		t.Errorf("the child's log does not show the back-off:\n%s", ch.Stderr())
	}

	// Free the descriptors; a new client is served.
	for _, c := range held {
		c.Close()
	}
	held = nil
	c, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatalf("dial after the flood: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo after descriptors freed = %q, %v; child log:\n%s", buf, err, ch.Stderr())
	}
}
