//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildGo builds the Go package in dir (relative to this one) into the
// test's temporary directory and returns the program's path.
func buildGo(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, b)
	}
	return out
}

// buildC compiles the C peer src with gcc, or skips the test if gcc is
// not installed (CI installs it).
func buildC(t *testing.T, src string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found (%v): the C peer cannot be built", err)
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c"))
	if b, err := exec.Command(gcc, "-O2", "-Wall", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
	return out
}

// runProgram runs bin with args for at most testTimeout and returns its
// standard output and error.
func runProgram(t *testing.T, bin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestCPeer: the C client (testdata/c/kv_client.c, plain sockets) pipelines
// set, get and del and bad commands, and receives replies identical byte
// for byte to the test's own encoding of them; then a pipeline of 300
// requests in one write.
func TestCPeer(t *testing.T) {
	bin := buildC(t, "../../testdata/c/kv_client.c")
	cmds := [][]string{
		{"set", "greeting", "hello world"}, {"get", "greeting"}, {"del", "greeting"}, {"get", "greeting"},
		{"SET", "k", ""}, {"get", "k"}, {"incr", "k"}, {"get"}, {"del", "k"},
	}
	replies := []string{
		reply(0, ""), reply(0, "hello world"), reply(0, ""), reply(2, ""),
		reply(0, ""), reply(0, ""), reply(1, `unknown command "incr": want get, set or del`),
		reply(1, `"get" takes 2 strings (get key), got 1`), reply(0, ""),
	}
	var many [][]string
	var manyReplies []string
	for i := range 100 {
		key, val := fmt.Sprint("key", i), strings.Repeat(fmt.Sprint(i), i)
		many = append(many, []string{"set", key, val}, []string{"get", key}, []string{"del", key})
		manyReplies = append(manyReplies, reply(0, ""), reply(0, val), reply(0, ""))
	}
	forEachTarget(t, config{}, func(t *testing.T, addr string) {
		host, port, _ := strings.Cut(addr, ":")
		for _, tt := range []struct {
			name    string
			cmds    [][]string
			replies []string
		}{{"commands", cmds, replies}, {"pipeline-of-300", many, manyReplies}} {
			t.Run(tt.name, func(t *testing.T) {
				args := []string{host, port}
				var want strings.Builder
				for i, cmd := range tt.cmds {
					if i > 0 {
						args = append(args, ",")
					}
					args = append(args, cmd...)
					want.WriteString(hex.EncodeToString([]byte(frame(tt.replies[i]))) + "\n")
				}
				out, errOut, err := runProgram(t, bin, args...)
				if err != nil {
					t.Fatalf("kv_client: %v\n%s", err, errOut)
				}
				if out != want.String() {
					t.Errorf("kv_client printed\n%s\nwant (the replies' frames in hex)\n%s", out, want.String())
				}
			})
		}
	})
}

// TestPrograms runs the two programs as a user does: the server on port 0
// says where it listens on its first line; the client pipelines commands
// and prints every reply as the book's client does; a request over the
// server's -max-msg is answered ERR and the connection closed, which the
// client reports (exit status 1); SIGTERM stops the server, which exits 0; a -max-msg too
// small is refused.
func TestPrograms(t *testing.T) {
	server := buildGo(t, ".", "kv")
	client := buildGo(t, "./client", "client")

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv := exec.CommandContext(ctx, server, "-addr", "127.0.0.1:0", "-loops", "2", "-max-msg", "4096")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var srvErr bytes.Buffer
	srv.Stderr = &srvErr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	line, err := bufio.NewReader(stdout).ReadString('\n') // bounded: ctx kills the server
	go func() { exited <- srv.Wait() }()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		t.Fatalf("the server's first line is %q (%v), want \"listening on ADDR\"", line, err)
	}

	out, errOut, err := runProgram(t, client, "-addr", addr,
		"set", "greeting", "hello", ",", "get", "greeting", ",", "del", "greeting", ",", "get", "greeting", ",", "nope")
	want := "server says: [0] \nserver says: [0] hello\nserver says: [0] \nserver says: [2] \n" +
		"server says: [1] unknown command \"nope\": want get, set or del\n"
	if err != nil || out != want {
		t.Errorf("client printed %q (%v, %s), want %q", out, err, errOut, want)
	}

	out, errOut, err = runProgram(t, client, "-addr", addr, "-max-msg", "8192",
		"set", "big", strings.Repeat("b", 5000), ",", "get", "big")
	want = "server says: [1] request of 5022 bytes is over the limit of 4096 (-max-msg); closing the connection\n"
	// The server closes without reading what follows the bad header: a
	// client whose bytes arrive after that gets a reset instead of EOF.
	if err == nil || out != want || !(strings.Contains(errOut, "reply 2 of 2: EOF") || strings.Contains(errOut, "connection reset by peer")) {
		t.Errorf("client with a 5000-byte value: printed %q, stderr %q, %v; want %q, then the end of the connection reported", out, errOut, err, want)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the server exited with %v after SIGTERM, want 0; stderr:\n%s", err, srvErr.String())
		}
	case <-time.After(testTimeout):
		t.Fatal("the server did not exit after SIGTERM")
	}

	_, errOut, err = runProgram(t, server, "-addr", "127.0.0.1:0", "-max-msg", "100")
	if err == nil || !strings.Contains(errOut, "maximum message size 100: want at least 4096") {
		t.Errorf("the server with -max-msg 100: %v, stderr %q; want a refusal naming 100 and 4096", err, errOut)
	}
}
