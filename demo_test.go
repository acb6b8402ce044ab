//go:build linux

package netcore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// binDir holds the programs the tests build, once per test binary.
var binDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "netcore-bin-") })

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := binDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

var builds sync.Map // name -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// build compiles a program once (a Go package, or a C file with gcc) and
// returns its path.
func build(t *testing.T, name string, cmd func(out string) *exec.Cmd) string {
	t.Helper()
	dir, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := builds.LoadOrStore(name, &buildResult{})
	r := v.(*buildResult)
	r.once.Do(func() {
		r.path = filepath.Join(dir, name)
		c := cmd(r.path)
		if out, err := c.CombinedOutput(); err != nil {
			r.err = errors.New(err.Error() + ": " + string(out))
		}
	})
	if r.err != nil {
		t.Fatalf("building %s: %v", name, r.err)
	}
	return r.path
}

func buildGo(t *testing.T, pkg string) string {
	return build(t, filepath.Base(pkg), func(out string) *exec.Cmd {
		return exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, pkg)
	})
}

func buildC(t *testing.T, src string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found (%v): the C peers cannot be built", err)
	}
	return build(t, "c-"+strings.TrimSuffix(filepath.Base(src), ".c"), func(out string) *exec.Cmd {
		return exec.Command(gcc, "-O2", "-Wall", "-o", out, src)
	})
}

// server is a running server program.
type server struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{} // stdout drained
}

// startServer runs a server program and waits for its "listening on ADDR"
// line; the process is killed (if still running) when the test ends.
func startServer(t *testing.T, ctx context.Context, bin string, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.CommandContext(ctx, bin, args...), done: make(chan struct{})}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.out}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill() // only the process this test started
		<-s.done
		s.cmd.Wait()
	})
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n') // bounded: ctx kills the process
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("%s %v: first line %q, %v", bin, args, line, err)
	}
	s.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

// stop interrupts the server and returns its exit error and output.
func (s *server) stop(t *testing.T) (error, string) {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	<-s.done
	err := s.cmd.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return err, s.out.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runClient runs a client program and returns its stdout, stderr and exit
// code.
func runClient(t *testing.T, ctx context.Context, bin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running %s: %v", bin, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func TestDemoPrograms(t *testing.T) {
	t.Parallel()
	serverBin, clientBin := buildGo(t, "./cmd/server"), buildGo(t, "./cmd/client")
	for _, tt := range []struct{ name, listen, msg, bind string }{
		{"IPv4", "127.0.0.1:0", "hello", ""},
		{"message", "127.0.0.1:0", "ping", ""},
		{"source address", "127.0.0.1:0", "hello", "127.0.0.2"},
		{"IPv6", "[::1]:0", "hello", ""},
		{"unix", "UNIX", "hello", ""},
		{"abstract", testkit.AbstractName(), "hello", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.listen[0] == '[' {
				if l, err := netcore.Listen("tcp6", tt.listen); err != nil {
					t.Skipf("no IPv6 here: %v", err)
				} else {
					l.Close()
				}
			}
			if tt.listen == "UNIX" {
				tt.listen = testkit.UnixPath(t)
			}
			ctx := testContext(t)
			srv := startServer(t, ctx, serverBin, "-addr", tt.listen)
			args := []string{"-addr", srv.addr, "-msg", tt.msg}
			if tt.bind != "" {
				args = append(args, "-bind", tt.bind)
			}
			stdout, stderr, code := runClient(t, ctx, clientBin, args...)
			if code != 0 || stdout != "server says: world\n" {
				t.Fatalf("client %v: exit %d, stdout %q, stderr %q; want exit 0 and %q", args, code, stdout, stderr, "server says: world\n")
			}
			err, out := srv.stop(t)
			if err != nil {
				t.Errorf("server exit after SIGINT: %v (output %q)", err, out)
			}
			if want := "client says: " + tt.msg + "\n"; !strings.Contains(out, want) {
				t.Errorf("server output %q does not contain %q", out, want)
			}
		})
	}
}

func TestDemoErrors(t *testing.T) {
	t.Parallel()
	serverBin, clientBin := buildGo(t, "./cmd/server"), buildGo(t, "./cmd/client")
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	tests := []struct {
		name string
		bin  string
		args []string
		want []string // in stderr
	}{
		{"server down", clientBin, []string{"-addr", down}, []string{"client: ", "connection refused", down}},
		{"no port", clientBin, []string{"-addr", "nonsense"}, []string{"client: ", `"nonsense"`}},
		{"port out of range", clientBin, []string{"-addr", "127.0.0.1:99999"}, []string{"client: ", `"127.0.0.1:99999"`}},
		{"bad bind", clientBin, []string{"-addr", down, "-bind", "300.1.1.1"}, []string{"client: ", "300.1.1.1"}},
		{"bad listen address", serverBin, []string{"-addr", "1.2.3.4.5:0"}, []string{"server: ", `"1.2.3.4.5:0"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runClient(t, testContext(t), tt.bin, tt.args...)
			if code != 1 {
				t.Errorf("%v: exit %d, want 1 (stdout %q)", tt.args, code, stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("%v: stderr %q does not contain %q", tt.args, stderr, w)
				}
			}
		})
	}
}

// TestDemoClientNoTimeout: -timeout 0 means no limit (it used to set a
// deadline of "now", so every exchange failed at once).
func TestDemoClientNoTimeout(t *testing.T) {
	t.Parallel()
	serverBin, clientBin := buildGo(t, "./cmd/server"), buildGo(t, "./cmd/client")
	for _, framed := range []bool{false, true} {
		ctx := testContext(t) // bounds the run, whatever the client's own limit
		srv := startServer(t, ctx, serverBin, "-addr", "127.0.0.1:0", fmt.Sprintf("-framed=%v", framed))
		args := []string{"-addr", srv.addr, "-timeout", "0", fmt.Sprintf("-framed=%v", framed)}
		stdout, stderr, code := runClient(t, ctx, clientBin, args...)
		if code != 0 || stdout != "server says: world\n" {
			t.Fatalf("client %v: exit %d, stdout %q, stderr %q; want exit 0 and %q", args, code, stdout, stderr, "server says: world\n")
		}
		srv.stop(t)
	}
}

// TestInteropWithC exchanges hello/world between netcore's programs and
// the same programs in C on the plain socket API.
func TestInteropWithC(t *testing.T) {
	t.Parallel()
	cServer, cClient := buildC(t, "testdata/c/server.c"), buildC(t, "testdata/c/client.c")
	serverBin, clientBin := buildGo(t, "./cmd/server"), buildGo(t, "./cmd/client")

	t.Run("C client, netcore server", func(t *testing.T) {
		ctx := testContext(t)
		srv := startServer(t, ctx, serverBin, "-addr", "127.0.0.1:0")
		host, port, _ := strings.Cut(srv.addr, ":")
		stdout, stderr, code := runClient(t, ctx, cClient, host, port, "from C")
		if code != 0 || stdout != "server says: world\n" {
			t.Fatalf("C client: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if _, out := srv.stop(t); !strings.Contains(out, "client says: from C\n") {
			t.Errorf("netcore server output %q, want it to contain the C client's message", out)
		}
	})
	t.Run("netcore client, C server", func(t *testing.T) {
		ctx := testContext(t)
		srv := startServer(t, ctx, cServer, "0", "1")
		stdout, stderr, code := runClient(t, ctx, clientBin, "-addr", srv.addr)
		if code != 0 || stdout != "server says: world\n" {
			t.Fatalf("netcore client: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		<-srv.done // the C server exits after one client
		srv.mu.Lock()
		out := srv.out.String()
		srv.mu.Unlock()
		if !strings.Contains(out, "client says: hello\n") {
			t.Errorf("C server output %q, want \"client says: hello\"", out)
		}
		if err := srv.cmd.Wait(); err != nil {
			t.Errorf("C server: %v", err)
		}
	})
}

// TestDemoFramed runs the book's protocol end to end: pipelined requests,
// each a 4-byte little-endian length and payload, answered in order, between
// the Go programs and the C peers in every pairing.
func TestDemoFramed(t *testing.T) {
	t.Parallel()
	serverBin, clientBin := buildGo(t, "./cmd/server"), buildGo(t, "./cmd/client")
	reqs := []string{"hello1", "hello2", "", strings.Repeat("x", 4096), "hello3"}
	wantStdout := strings.Repeat("server says: world\n", len(reqs))
	var wantServer strings.Builder
	for _, r := range reqs {
		wantServer.WriteString("client says: " + r + "\n")
	}

	t.Run("Go client, Go server", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := startServer(t, ctx, serverBin, "-addr", "127.0.0.1:0", "-framed")
		args := append([]string{"-addr", srv.addr, "-framed"}, reqs...)
		stdout, stderr, code := runClient(t, ctx, clientBin, args...)
		if code != 0 || stdout != wantStdout {
			t.Fatalf("client: exit %d, stdout %q, stderr %q; want exit 0 and %q", code, stdout, stderr, wantStdout)
		}
		if err, out := srv.stop(t); err != nil || out != wantServer.String() {
			t.Errorf("server: %v, output %q; want %q", err, out, wantServer.String())
		}
	})
	t.Run("C client, Go server", func(t *testing.T) {
		t.Parallel()
		cClient := buildC(t, "testdata/c/framed_client.c")
		ctx := testContext(t)
		srv := startServer(t, ctx, serverBin, "-addr", "127.0.0.1:0", "-framed")
		host, port, _ := strings.Cut(srv.addr, ":")
		stdout, stderr, code := runClient(t, ctx, cClient, append([]string{host, port}, reqs...)...)
		if code != 0 || stdout != wantStdout {
			t.Fatalf("C client: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, wantStdout)
		}
		// The server prints each request before it answers it, so the
		// output is complete once the client has its answers.
		if _, out := srv.stop(t); out != wantServer.String() {
			t.Errorf("server output %q, want %q", out, wantServer.String())
		}
	})
	t.Run("Go client, C server", func(t *testing.T) {
		t.Parallel()
		cServer := buildC(t, "testdata/c/framed_server.c")
		ctx := testContext(t)
		srv := startServer(t, ctx, cServer, "0")
		stdout, stderr, code := runClient(t, ctx, clientBin, append([]string{"-addr", srv.addr, "-framed"}, reqs...)...)
		if code != 0 || stdout != wantStdout {
			t.Fatalf("client: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, wantStdout)
		}
		<-srv.done // the C server exits after its one client
		if err := srv.cmd.Wait(); err != nil {
			t.Errorf("C server: %v", err)
		}
		srv.mu.Lock()
		out := srv.out.String()
		srv.mu.Unlock()
		if out != wantServer.String() {
			t.Errorf("C server output %q, want %q", out, wantServer.String())
		}
	})
	t.Run("request too long, client side", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := startServer(t, ctx, serverBin, "-addr", "127.0.0.1:0", "-framed")
		stdout, stderr, code := runClient(t, ctx, clientBin, "-addr", srv.addr, "-framed", "ok", strings.Repeat("y", 4097))
		if code != 1 || stdout != "" || !strings.Contains(stderr, "frame length 4097 exceeds the limit of 4096 bytes") {
			t.Fatalf("client: exit %d, stdout %q, stderr %q; want exit 1 and the length and the limit named", code, stdout, stderr)
		}
	})
	t.Run("requests without -framed", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := runClient(t, testContext(t), clientBin, "-addr", "127.0.0.1:1", "hello1", "hello2")
		if code != 2 || stdout != "" || !strings.Contains(stderr, `["hello1" "hello2"]`) || !strings.Contains(stderr, "-framed") {
			t.Fatalf("client hello1 hello2: exit %d, stdout %q, stderr %q; want exit 2 quoting the arguments and naming -framed", code, stdout, stderr)
		}
	})
	t.Run("request too long, server side", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := startServer(t, ctx, serverBin, "-addr", "127.0.0.1:0", "-framed")
		c, err := netcore.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testkit.Timeout))
		req := []byte("\x02\x00\x00\x00ok\x88\x13\x00\x00") // "ok", then a header claiming 5000 bytes
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if want := "\x05\x00\x00\x00world"; err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want the answer to the first request (%q) and then EOF", got, err, want)
		}
		_, out := srv.stop(t)
		if !strings.Contains(out, "client says: ok\n") || !strings.Contains(out, "frame length 5000 exceeds the limit of 4096 bytes") {
			t.Errorf("server output %q: want the first request and the length and limit of the second", out)
		}
	})
}
