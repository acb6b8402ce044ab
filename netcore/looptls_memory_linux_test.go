package netcore_test

// What an idle TLS connection costs a server: the Loop (ServeTLS) beside Go's
// net with crypto/tls (a goroutine per connection), each measured in a
// child process of its own so that the clients' memory is not counted.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

const (
	tlsChildEnv    = "NETCORE_TLS_CHILD"     // "loop" or "net"
	tlsChildDirEnv = "NETCORE_TLS_CHILD_DIR" // where the PKI's files are
)

// TestLoopTLSChild is the server of the idle-memory measurement, run in a
// child process; on its own it does nothing. It serves an echo over TLS
// with the certificate in $NETCORE_TLS_CHILD_DIR, on a Loop or on Go's net (a goroutine per
// connection reading into a 4 KiB buffer of its own), prints its address,
// and answers "mem" on stdin, after two garbage collections, with
//
//	heap=BYTES stack=BYTES goroutines=N conns=N
//
// (live heap, goroutine stacks in use, connections served). It exits when
// stdin closes.
func TestLoopTLSChild(t *testing.T) {
	impl, dir := os.Getenv(tlsChildEnv), os.Getenv(tlsChildDirEnv)
	if impl == "" {
		t.Skip("runs only as the child process of TestLoopTLSIdleConns and BenchmarkLoopTLSIdleMemory")
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns func() int
	switch impl {
	case "loop":
		lp := &netcore.Loop{Handler: loopEcho(nil), Loops: 1, Logger: quietLogger()}
		go lp.ServeTLS(l, cfg)
		defer lp.Close()
		conns = func() int { return lp.Stats().Conns }
	case "net":
		var n atomic.Int64
		serveNetOn(t, tls.NewListener(l, cfg), func(c net.Conn) {
			if c.(*tls.Conn).Handshake() != nil {
				return
			}
			n.Add(1)
			defer n.Add(-1)
			buf := make([]byte, 4<<10)
			for {
				k, err := c.Read(buf)
				if err != nil {
					return
				}
				c.Write(buf[:k])
			}
		})
		conns = func() int { return int(n.Load()) }
	default:
		t.Fatalf("%s=%q: want loop or net", tlsChildEnv, impl)
	}
	fmt.Println(l.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "mem" {
			var ms runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			fmt.Printf("heap=%d stack=%d goroutines=%d conns=%d\n", ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine(), conns())
		}
	}
}

// childMem is a TestLoopTLSChild "mem" answer.
type childMem struct{ heap, stack, goroutines, conns int64 }

func askMem(tb testing.TB, ch *testkit.Child) childMem {
	tb.Helper()
	var m childMem
	line := ch.Ask(tb, "mem")
	if _, err := fmt.Sscanf(line, "heap=%d stack=%d goroutines=%d conns=%d", &m.heap, &m.stack, &m.goroutines, &m.conns); err != nil {
		tb.Fatalf("the child answered %q: %v%s", line, err, ch.Log())
	}
	return m
}

// idleTLSCost starts TestLoopTLSChild with impl ("loop" or "net"), opens n
// TLS 1.3 connections to it, each with one echo, and returns the child's
// memory and goroutines before and after (the connections open and idle).
func idleTLSCost(tb testing.TB, impl string, n int) (before, after childMem) {
	tb.Helper()
	pki := testkit.NewPKI(tb)
	dir := tb.TempDir()
	pki.WriteFiles(tb, dir)
	tb.Setenv(tlsChildDirEnv, dir) // the child inherits it
	ch := testkit.StartChild(tb, "TestLoopTLSChild", tlsChildEnv+"="+impl)
	defer ch.Stop()
	before = askMem(tb, ch)
	tr := transport{name: "TLS1.3", version: tls.VersionTLS13, pki: pki}
	clients := make([]clientConn, n)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range clients {
		raw, err := netcore.Dial("tcp4", ch.Addr)
		if err != nil {
			tb.Fatalf("dial %d: %v", i, err)
		}
		raw.SetDeadline(time.Now().Add(testkit.Timeout))
		clients[i] = tr.client(tb, raw)
		loopRoundTrip(tb, clients[i], "hello, idle")
	}
	after = askMem(tb, ch)
	if after.conns != int64(n) {
		tb.Fatalf("the child serves %d connections, want %d%s", after.conns, n, ch.Log())
	}
	return before, after
}

// perConn is (after - before) / n.
func perConn(before, after int64, n int) float64 { return float64(after-before) / float64(n) }

// 200 idle TLS connections on a Loop, each after one echo: no goroutine is
// left per connection (the handshake's goroutine ended with it), where Go's
// net keeps one each; the heap each costs is logged beside net's (the
// BenchmarkLoopTLSIdleMemory figures).
func TestLoopTLSIdleConns(t *testing.T) {
	checkLeaks(t)
	const n = 200
	for _, impl := range []string{"loop", "net"} {
		before, after := idleTLSCost(t, impl, n)
		t.Logf("%s: %d idle TLS connections: %.0f heap bytes and %.0f stack bytes each, %+d goroutines",
			impl, n, perConn(before.heap, after.heap, n), perConn(before.stack, after.stack, n), after.goroutines-before.goroutines)
		if impl == "loop" && after.goroutines > before.goroutines+5 {
			t.Errorf("the Loop's process has %d goroutines with %d idle TLS connections, %d without: one per connection is left",
				after.goroutines, n, before.goroutines)
		}
		if impl == "net" && after.goroutines < before.goroutines+n {
			t.Errorf("net's process has %d goroutines with %d connections, %d without: want one each (is the comparison measuring them?)",
				after.goroutines, n, before.goroutines)
		}
	}
}

// BenchmarkLoopTLSIdleMemory reports what an idle TLS 1.3 connection (one
// echo done) costs the server, the Loop beside Go's net with crypto/tls:
// heap-bytes/conn (live heap after GC), stack-bytes/conn (goroutine
// stacks) and goroutines/conn, with 1000 connections, in a child process.
func BenchmarkLoopTLSIdleMemory(b *testing.B) {
	const n = 1000
	for _, impl := range []string{"loop", "net"} {
		b.Run("impl="+impl, func(b *testing.B) {
			var heap, stack, gs float64
			for range b.N {
				before, after := idleTLSCost(b, impl, n)
				heap += perConn(before.heap, after.heap, n)
				stack += perConn(before.stack, after.stack, n)
				gs += perConn(before.goroutines, after.goroutines, n)
			}
			b.ReportMetric(heap/float64(b.N), "heap-bytes/conn")
			b.ReportMetric(stack/float64(b.N), "stack-bytes/conn")
			b.ReportMetric(gs/float64(b.N), "goroutines/conn")
		})
	}
}
