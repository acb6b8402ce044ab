//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
)

// TestPipelinedLargeReplies: a client SETs a 1 MiB value, then pipelines
// 100 GETs of it in one write and reads every reply: each of the 100 is
// the value, byte for byte, in every mode and from a real redis-server
// (started by the test when redis-server is on PATH; CI installs it). The
// netcore modes run with -max-bulk 2 MiB, so the Loop's MaxOutput is about
// 2.3 MiB, far below the 100 MiB of replies: the loop mode must stop
// parsing while its output is full and go back to the input the client
// already sent once the output drains, not buffer every reply (it used to
// close the connection at MaxOutput, after 0 of 100 replies).
func TestPipelinedLargeReplies(t *testing.T) {
	cfg := config{maxBulk: 2 << 20, maxQuery: 64 << 20}
	for _, m := range testModes {
		t.Run(m.name, func(t *testing.T) {
			cfg := cfg
			cfg.blocking = m.blocking
			addr, _ := startResp(t, m.mode, cfg)
			testPipelinedLargeReplies(t, addr)
		})
	}
	t.Run("redis-server", func(t *testing.T) {
		testPipelinedLargeReplies(t, startRedisServer(t))
	})
}

func testPipelinedLargeReplies(t *testing.T, addr string) {
	const gets = 100
	val := make([]byte, 1<<20)
	for i := range val {
		val[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i%36] ^ byte(i>>12&0x20)
	}
	c := dialResp(t, addr)
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte(resp("SET", "big", string(val)))); err != nil {
		t.Fatal(err)
	}
	expectReply(t, r, "+OK")
	if _, err := c.Write([]byte(strings.Repeat(resp("GET", "big"), gets))); err != nil {
		t.Fatal(err)
	}
	want := []byte(fmt.Sprintf("$%d\r\n%s\r\n", len(val), val))
	got := make([]byte, len(want))
	for i := range gets {
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("%d of %d replies to pipelined GETs of a 1 MiB value, then %v", i, gets, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reply %d of %d to pipelined GETs of a 1 MiB value differs from the value at byte %d",
				i+1, gets, firstDiff(got, want))
		}
	}
}

// firstDiff returns the index of the first byte where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// startRedisServer runs redis-server (no persistence, in a temporary
// directory) on a free loopback port until the test ends and returns its
// address; it skips the test if redis-server is not on PATH. redis-server
// cannot listen on port 0 and report its choice, so it gets a port the
// kernel picked for a socket closed just before; if another process takes
// that port first, redis-server exits and the next port is tried. It is
// ready when it logs "Ready to accept connections".
func startRedisServer(t *testing.T) string {
	t.Helper()
	return startRedisServerOn(t, func(port string) []string { return []string{"--port", port} })
}

// startRedisServerOn is startRedisServer with the arguments that make it
// listen on a port (portArgs("6379") is "--port", "6379", or for TLS alone
// "--port", "0", "--tls-port", "6379", ...).
func startRedisServerOn(t *testing.T, portArgs func(port string) []string) string {
	t.Helper()
	bin := testkit.NeedTool(t, "redis-server", "redis-server")
	var log strings.Builder
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, port, _ := net.SplitHostPort(addr)
		args := append([]string{"--bind", "127.0.0.1"}, portArgs(port)...)
		cmd := exec.Command(bin, append(args, "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", t.TempDir())...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready, logged := make(chan bool, 1), make(chan string, 1)
		go func() {
			var b strings.Builder
			sc := bufio.NewScanner(out)
			said := false
			for sc.Scan() {
				b.WriteString(sc.Text() + "\n")
				if !said && strings.Contains(sc.Text(), "Ready to accept connections") {
					said = true
					ready <- true
				}
			}
			if !said {
				ready <- false // it exited without getting ready
			}
			logged <- b.String()
		}()
		stop := func() string {
			cmd.Process.Kill()
			s := <-logged
			cmd.Wait()
			return s
		}
		select {
		case ok := <-ready:
			if ok {
				t.Cleanup(func() { stop() })
				return addr
			}
		case <-time.After(testTimeout):
		}
		log.Reset()
		log.WriteString(stop())
	}
	t.Fatalf("redis-server did not start on a free port in 3 attempts; its last output:\n%s", log.String())
	return ""
}
