//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// memory is what the process holds, measured after two garbage
// collections: the second one empties what sync.Pools (the Loop's buffer
// slabs) kept through the first, so what is left is what connections
// hold.
type memory struct {
	heap  int64 // live heap objects (MemStats.HeapAlloc)
	stack int64 // stacks (MemStats.StackInuse): goroutines', and each OS thread's own
}

func measure() memory {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{int64(ms.HeapAlloc), int64(ms.StackInuse)}
}

// keptPerConn measures what each of n idle connections keeps: the growth
// since before, which was measured before they were opened, divided by n
// (negative if it shrank). A server may still be letting go of a buffer
// when its last reply arrives, so it measures again until the heap figure
// is under heapBound or five seconds have passed, and returns the last
// figures.
func keptPerConn(before memory, n int, heapBound int64) memory {
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := measure()
		per := memory{(m.heap - before.heap) / int64(n), (m.stack - before.stack) / int64(n)}
		if per.heap < heapBound || time.Now().After(deadline) {
			return per
		}
	}
}

// expectReply reads one line (up to "\r\n") from r and checks that it
// starts with prefix.
func expectReply(t *testing.T, r *bufio.Reader, prefix string) {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, prefix) || !strings.HasSuffix(line, "\r\n") {
		t.Fatalf("reply %.80q, %v; want a line starting %q", line, err, prefix)
	}
}

// TestIdleMemoryAfterLargeReply: 64 clients each send a 1 MiB value or
// GET one, pipelined with a PING, and read both replies byte for byte;
// then the 64 idle connections keep less than 64 KiB each, on the server
// and in the test's clients together: live heap, which holds every buffer.
// (Each used to keep its 1 MiB reply slice, or, after a SET, the input
// buffer its last command's arguments pointed into.) The stacks are
// logged: in Server mode on the blocking fast path each idle connection
// also has an OS thread blocked in read(2), with the runtime's stacks for
// that thread.
func TestIdleMemoryAfterLargeReply(t *testing.T) {
	const clients, bound = 64, 64 << 10
	val := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for _, tt := range []struct {
		name       string
		req, reply string
	}{
		{"1 MiB GET", resp("GET", "big") + resp("PING"), fmt.Sprintf("$%d\r\n%s\r\n+PONG\r\n", len(val), val)},
		{"1 MiB SET", resp("SET", "big", string(val)) + resp("PING"), "+OK\r\n+PONG\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			forEachMode(t, func(t *testing.T, mode string, blocking bool) {
				addr, store := startResp(t, mode, config{blocking: blocking})
				store.Set([]byte("big"), val) // a SET of the same size rewrites it in place
				req, want := []byte(tt.req), []byte(tt.reply)
				got := make([]byte, len(want))

				before := measure()
				conns := make([]io.ReadWriter, clients)
				for i := range conns {
					conns[i] = dialResp(t, addr)
					if _, err := conns[i].Write(req); err != nil {
						t.Fatal(err)
					}
				}
				for i, c := range conns {
					if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
						t.Fatalf("client %d: %s and PING: %v, or not the replies byte for byte", i, tt.name, err)
					}
				}
				per := keptPerConn(before, clients, bound)
				runtime.KeepAlive(req) // live in both measurements: not counted
				runtime.KeepAlive(got)
				t.Logf("%s: %d idle connections keep %d bytes of heap and %d of stacks each", t.Name(), clients, per.heap, per.stack)
				if per.heap >= bound {
					t.Errorf("%d idle connections after a %s keep %d bytes of heap each, want under %d", clients, tt.name, per.heap, bound)
				}
			})
		})
	}
}

// TestMemoryAfterMillionArgs: 4 clients each send a command of 1,000,000
// empty arguments (6 MB), get its answer (an unknown command: its name is
// empty) and a PING's; then the 4 idle connections keep less than 64 KiB
// of heap each. (Each used to keep its peak argument slices and input
// buffer: about 50 MiB.)
func TestMemoryAfterMillionArgs(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string, blocking bool) {
		const clients, bound = 4, 64 << 10
		addr, _ := startResp(t, mode, config{blocking: blocking})
		cmd := []byte("*1000000\r\n" + strings.Repeat("$0\r\n\r\n", 1000000) + resp("PING"))

		before := measure()
		for i := range clients {
			c := dialResp(t, addr)
			if _, err := c.Write(cmd); err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			r := bufio.NewReaderSize(c, 512)
			expectReply(t, r, "-ERR unknown command '', with args beginning with: '' '' ")
			expectReply(t, r, "+PONG")
		}
		per := keptPerConn(before, clients, bound)
		runtime.KeepAlive(cmd) // live in both measurements: not counted
		t.Logf("%s: %d idle connections after a command of 1,000,000 empty arguments keep %d bytes of heap and %d of stacks each", t.Name(), clients, per.heap, per.stack)
		if per.heap >= bound {
			t.Errorf("%d idle connections after a command of 1,000,000 arguments keep %d bytes of heap each, want under %d", clients, per.heap, bound)
		}
	})
}

// TestLargeBulkClaim: a SET whose value claims 512 MiB (DefaultMaxBulk, as
// Redis's proto-max-bulk-len) is accepted, and the server allocates in
// proportion to the bytes that arrive, not to the claim: a client that
// sends the claim and part of the value, then closes, gets no reply and
// costs the server (and the test) at most six times the bytes it sent,
// plus 1 MiB.
func TestLargeBulkClaim(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string, blocking bool) {
		addr, store := startResp(t, mode, config{blocking: blocking})
		claim := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n"
		for _, tt := range []struct {
			name string
			sent int // bytes of the value sent
		}{
			{"claim only", 0},
			{"64 KiB of it", 64 << 10},
			{"4 MiB of it", 4 << 20},
			{"16 MiB of it", 16 << 20},
		} {
			t.Run(tt.name, func(t *testing.T) {
				in := append([]byte(claim), bytes.Repeat([]byte("v"), tt.sent)...)
				c := dialResp(t, addr)
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				before := ms.TotalAlloc
				if _, err := c.Write(in); err != nil {
					t.Fatal(err)
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(c) // until the server closes
				runtime.ReadMemStats(&ms)
				allocated := ms.TotalAlloc - before
				if err != nil || len(got) != 0 {
					t.Fatalf("after a 512 MiB claim, %d bytes and EOF: got %q, %v; want nothing and EOF", tt.sent, got, err)
				}
				if store.Exists([]byte("k")) {
					t.Fatal("the incomplete SET was run")
				}
				limit := uint64(6*len(in) + 1<<20)
				t.Logf("%s: a 512 MiB claim and %d bytes of it: %d bytes allocated", t.Name(), tt.sent, allocated)
				if allocated > limit {
					t.Errorf("a 512 MiB claim and %d bytes of it allocated %d bytes, want at most %d", tt.sent, allocated, limit)
				}
			})
		}
	})
}
