//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// testTimeout bounds every blocking step.
const testTimeout = 30 * time.Second

// testModes are the ways of serving every real-socket test runs against:
// the modes, and Server mode with netcore's blocking fast path too.
var testModes = []struct {
	name     string
	mode     string
	blocking bool
}{
	{"loop", "loop", false},
	{"server", "server", false},
	{"server-blocking", "server", true},
}

// forEachMode runs f as a subtest for each of testModes.
func forEachMode(t *testing.T, f func(t *testing.T, mode string, blocking bool)) {
	for _, m := range testModes {
		t.Run(m.name, func(t *testing.T) { f(t, m.mode, m.blocking) })
	}
}

// startResp runs the server in mode (a key of modes) in this process on a
// free loopback port until the test ends, then stops it and checks that it
// returned nil and that its goroutines are gone.
func startResp(t *testing.T, mode string, cfg config) (addr string, store *Store) {
	t.Helper()
	addrs, store := startServing(t, mode, "127.0.0.1:0", cfg)
	return addrs[0], store
}

// startServing is startResp with plain TCP on addr ("" for none), and the
// TLS and Unix listeners cfg asks for; it returns the addresses of all its
// listeners in the order listenAll opens them (TCP, TLS, Unix).
func startServing(t *testing.T, mode, addr string, cfg config) (addrs []string, store *Store) {
	t.Helper()
	run, ok := modes[mode]
	if !ok {
		t.Fatalf("no mode %q", mode)
	}
	if cfg.maxBulk == 0 {
		cfg.maxBulk, cfg.maxQuery = DefaultMaxBulk, DefaultMaxQuery
	}
	cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	before := runtime.NumGoroutine()
	store = NewStore()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []endpoint, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, addr, store, cfg, func(eps []endpoint) { ready <- eps }) }()
	select {
	case eps := <-ready:
		for _, e := range eps {
			addrs = append(addrs, e.l.Addr().String())
		}
	case err := <-done:
		t.Fatalf("-mode %s: %v", mode, err)
	case <-time.After(testTimeout):
		t.Fatal("the server did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("-mode %s returned %v after cancel, want nil", mode, err)
			}
		case <-time.After(testTimeout):
			t.Fatal("the server did not stop")
		}
		deadline := time.Now().Add(testTimeout)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines after the server stopped, %d before", n, before)
		}
	})
	return addrs, store
}

func dialResp(t *testing.T, addr string) *netcore.Conn {
	t.Helper()
	c, err := netcore.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

func readN(t *testing.T, c *netcore.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes of replies: %v", n, err)
	}
	return b
}

// TestModes drives every mode over real sockets (Server mode in both of
// netcore's I/O modes): a pipeline in one write, a 1 MiB value (the input
// buffer grows), QUIT, and the protocol errors that close the connection.
func TestModes(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string, blocking bool) {
		addr, _ := startResp(t, mode, config{blocking: blocking})

		t.Run("pipeline", func(t *testing.T) {
			c := dialResp(t, addr)
			var in, want strings.Builder
			for i := range 200 {
				k, v := fmt.Sprintf("key%d", i), strings.Repeat("v", i)
				in.WriteString(resp("SET", k, v) + resp("GET", k) + "INCR n\r\n")
				fmt.Fprintf(&want, "+OK\r\n$%d\r\n%s\r\n:%d\r\n", len(v), v, i+1)
			}
			if _, err := c.Write([]byte(in.String())); err != nil {
				t.Fatal(err)
			}
			if got := readN(t, c, want.Len()); string(got) != want.String() {
				t.Fatalf("replies to a 600-command pipeline differ from what was expected")
			}
		})
		t.Run("1 MiB value", func(t *testing.T) {
			c := dialResp(t, addr)
			val := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			if _, err := c.Write([]byte(resp("SET", "big", string(val)) + resp("GET", "big"))); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("+OK\r\n$%d\r\n%s\r\n", len(val), val)
			if got := readN(t, c, len(want)); string(got) != want {
				t.Fatal("GET of a 1 MiB value did not return it byte for byte")
			}
		})
		for _, tt := range []struct{ name, in, want string }{
			{"QUIT", resp("PING") + resp("QUIT") + resp("PING"), "+PONG\r\n+OK\r\n"},
			{"protocol error", resp("PING") + "*1\r\nPING\r\n", "+PONG\r\n-ERR Protocol error: expected '$', got 'P'\r\n"},
			{"bulk over the limit", "*2\r\n$3\r\nSET\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := dialResp(t, addr)
				if _, err := c.Write([]byte(tt.in)); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(c) // until the server closes
				if err != nil || string(got) != tt.want {
					t.Fatalf("got %q, %v; want %q and then EOF", got, err, tt.want)
				}
			})
		}
	})
}

// TestServerQueryLimit: a command larger than -max-query is refused and the
// connection closed, though each of its bulk strings is within -max-bulk.
func TestServerQueryLimit(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string, blocking bool) { testQueryLimit(t, mode, blocking) })
}

func testQueryLimit(t *testing.T, mode string, blocking bool) {
	addr, store := startResp(t, mode, config{maxBulk: 32 << 10, maxQuery: 64 << 10, blocking: blocking})
	c := dialResp(t, addr)
	half := strings.Repeat("x", 32<<10)
	if _, err := c.Write([]byte(resp("SET", half, half))); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	// The server closes with part of the command unread, so the kernel
	// resets the connection (as it does for Redis): the reply arrives, and
	// the reset may follow it.
	if errors.Is(err, unix.ECONNRESET) {
		err = nil
	}
	want := "-ERR Protocol error: a command over the query buffer limit of 65536 bytes\r\n"
	if err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q and EOF", got, err, want)
	}
	if store.Exists([]byte(half)) {
		t.Fatal("the refused SET was run")
	}
}

// needTool returns the path of a program of redis-tools (redis-cli,
// redis-benchmark), or skips the test without it (fails in CI).
func needTool(t *testing.T, name string) string {
	t.Helper()
	return testkit.NeedTool(t, name, "redis-tools")
}

func runTool(t *testing.T, stdin string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestRedisCLI: the real redis-cli, a client nobody here wrote, runs
// commands against the server, one per run and several through its stdin
// (where it first asks for COMMAND DOCS).
func TestRedisCLI(t *testing.T) {
	cli := needTool(t, "redis-cli")
	for _, mode := range []string{"loop", "server"} {
		for _, transport := range []string{"tcp", "unix"} {
			t.Run(mode+"/"+transport, func(t *testing.T) { testRedisCLI(t, cli, mode, transport) })
		}
	}
}

// startRespOn starts the server in mode with -unixsocket, and returns the
// arguments that make redis-cli and redis-benchmark connect to it over
// transport: "-h HOST -p PORT" for "tcp", "-s PATH" for "unix".
func startRespOn(t *testing.T, mode, transport string, cfg config) (args []string, store *Store) {
	t.Helper()
	dir, err := os.MkdirTemp("", "resp") // short: sun_path holds 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.unixSocket = filepath.Join(dir, "redis.sock")
	addr, store := startResp(t, mode, cfg)
	if transport == "unix" {
		return []string{"-s", cfg.unixSocket}, store
	}
	host, port, _ := net.SplitHostPort(addr)
	return []string{"-h", host, "-p", port}, store
}

func testRedisCLI(t *testing.T, cli, mode, transport string) {
	base, _ := startRespOn(t, mode, transport, config{})
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "PONG\n"},
		{[]string{"SET", "greeting", "hello world"}, "OK\n"},
		{[]string{"GET", "greeting"}, "hello world\n"},
		{[]string{"EXISTS", "greeting", "nope"}, "1\n"},
		{[]string{"DEL", "greeting"}, "1\n"},
		{[]string{"GET", "greeting"}, "\n"},
		{[]string{"INCR", "visits"}, "1\n"},
		{[]string{"INCR", "visits"}, "2\n"},
		{[]string{"ECHO", "é ü\t!"}, "é ü\t!\n"},
		{[]string{"INCR", "nope", "extra"}, "ERR wrong number of arguments for 'incr' command\n"},
		{[]string{"FLUSHALL"}, "ERR unknown command 'FLUSHALL', with args beginning with: \n"},
	} {
		stdout, stderr, err := runTool(t, "", cli, append(base, tt.args...)...)
		if err != nil || !strings.HasPrefix(stdout, tt.want) {
			t.Errorf("redis-cli %q: %q (stderr %q, %v); want %q", tt.args, stdout, stderr, err, tt.want)
		}
	}
	stdout, stderr, err := runTool(t, "SET n 41\nINCR n\nGET n\nPING\nQUIT\n", cli, base...)
	// redis-cli quits at QUIT without printing its answer.
	if want := "OK\n42\n42\nPONG\n"; err != nil || stdout != want {
		t.Errorf("redis-cli with commands on stdin: %q (stderr %q, %v); want %q", stdout, stderr, err, want)
	}
}

// TestRedisBenchmarkSmoke: a short run of the real redis-benchmark, plain
// and pipelined, must finish without an error, report every test, and have
// run every INCR exactly once.
func TestRedisBenchmarkSmoke(t *testing.T) {
	bench := needTool(t, "redis-benchmark")
	for _, mode := range []string{"loop", "server"} {
		for _, transport := range []string{"tcp", "unix"} {
			t.Run(mode+"/"+transport, func(t *testing.T) { testRedisBenchmarkSmoke(t, bench, mode, transport) })
		}
	}
}

func testRedisBenchmarkSmoke(t *testing.T, bench, mode, transport string) {
	base, store := startRespOn(t, mode, transport, config{})
	const n = 2000
	for i, pipeline := range []string{"1", "16"} {
		stdout, stderr, err := runTool(t, "", bench, append(base, "-t", "ping,set,get,incr",
			"-n", fmt.Sprint(n), "-c", "20", "-P", pipeline, "--csv")...)
		if err != nil || strings.Contains(stdout+stderr, "rror") {
			t.Fatalf("redis-benchmark -P %s: %v\nstdout: %s\nstderr: %s", pipeline, err, stdout, stderr)
		}
		rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
		if err != nil {
			t.Fatalf("redis-benchmark -P %s: CSV output %q: %v", pipeline, stdout, err)
		}
		var tests []string
		for _, r := range rows[1:] {
			tests = append(tests, r[0])
		}
		if want := "PING_INLINE PING_MBULK SET GET INCR"; strings.Join(tests, " ") != want {
			t.Errorf("redis-benchmark -P %s reported %q, want %q", pipeline, tests, want)
		}
		got := store.AppendGet(nil, []byte("counter:__rand_int__"))
		if want := fmt.Sprintf("$4\r\n%d\r\n", (i+1)*n); string(got) != want {
			t.Errorf("after redis-benchmark -P %s the INCR counter is %q, want %q", pipeline, got, want)
		}
	}
}

// TestLoopZeroAllocsPerRequest: in Loop mode a round trip of pipelined
// GET, SET, PING, ECHO, EXISTS and INCR allocates nothing in steady state,
// on the server (parsing, the store, the loop) and on the client (a
// netcore Conn).
func TestLoopZeroAllocsPerRequest(t *testing.T) {
	addr, _ := startResp(t, "loop", config{loops: 1})
	c := dialResp(t, addr)
	req := []byte(resp("SET", "k", "value") + resp("GET", "k") + "PING\r\n" +
		resp("ECHO", "hi") + resp("EXISTS", "k") + resp("INCR", "n"))
	// INCR's counter keeps four digits: its replies keep one length.
	if _, err := c.Write([]byte(resp("SET", "n", "1000"))); err != nil {
		t.Fatal(err)
	}
	readN(t, c, len("+OK\r\n"))
	reply := make([]byte, len("+OK\r\n$5\r\nvalue\r\n+PONG\r\n$2\r\nhi\r\n:1\r\n:1001\r\n"))
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		roundTrip() // warm the loop's pools
	}
	if n := testing.AllocsPerRun(1000, roundTrip); n != 0 {
		t.Errorf("a pipelined round trip of 6 commands in Loop mode allocates %v times, want 0", n)
	}
	// 100 warm-up round trips, AllocsPerRun's own warm-up and its 1000.
	if want := "+OK\r\n$5\r\nvalue\r\n+PONG\r\n$2\r\nhi\r\n:1\r\n:2101\r\n"; string(reply) != want {
		t.Errorf("last reply %q, want %q", reply, want)
	}
}
