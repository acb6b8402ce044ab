//go:build linux

package netcore_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// testTimeout bounds every blocking step of a loopback test.
const testTimeout = 10 * time.Second

// openFDs counts this process's open descriptors (/proc/self/fd).
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("reading /proc/self/fd: %v", err)
	}
	return len(ents) - 1 // the directory's own descriptor
}

// checkLeaks records the descriptors and goroutines now and, when the test
// ends, fails it unless both are back to that baseline within testTimeout.
// Only sequential (non-parallel) tests may call it: the counts are the
// whole process's.
func checkLeaks(t *testing.T) {
	t.Helper()
	fds, gs := openFDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(testTimeout)
		for {
			nfd, ng := openFDs(t), runtime.NumGoroutine()
			if nfd <= fds && ng <= gs {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: %d descriptors (baseline %d), %d goroutines (baseline %d)\n%s", nfd, fds, ng, gs, buf)
				return
			}
			runtime.Gosched()
			time.Sleep(5 * time.Millisecond) // polling a count, not standing in for synchronisation
		}
	})
}

// listen opens a listener on a loopback address and port 0, closed when the
// test ends. network "tcp6" skips the test where IPv6 is absent.
func listen(t testing.TB, network, address string) *netcore.Listener {
	t.Helper()
	l, err := netcore.Listen(network, address)
	if err != nil {
		if network == "tcp6" || address[0] == '[' {
			t.Skipf("no IPv6 here: Listen(%q, %q): %v", network, address, err)
		}
		t.Fatalf("Listen(%q, %q): %v", network, address, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// modePair returns a connected client and server Conn, both in the given
// mode (blocking: the fast path), over a fresh listener on network and
// address (port 0). All three are closed when the test ends, and both
// Conns have a deadline testTimeout away. network "tcp6" skips the test
// where IPv6 is absent.
func modePair(t testing.TB, blocking bool, network, address string) (client, server *netcore.Conn, l *netcore.Listener) {
	t.Helper()
	lc := netcore.ListenConfig{Blocking: blocking}
	l, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		if network == "tcp6" || address[0] == '[' {
			t.Skipf("no IPv6 here: Listen(%q, %q): %v", network, address, err)
		}
		t.Fatalf("Listen(%q, %q) (%s): %v", network, address, modeName(blocking), err)
	}
	t.Cleanup(func() { l.Close() })
	type result struct {
		c   *netcore.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.AcceptConn()
		ch <- result{c, err}
	}()
	// A wildcard listener is dialed on loopback.
	target := l.Sockaddr()
	if target.Addr().IsUnspecified() {
		loopback := netip.IPv6Loopback()
		if target.Is4() || network == "tcp4" {
			loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		target, _ = netcore.SockaddrFromAddrPort(netip.AddrPortFrom(loopback, target.Port()))
	}
	d := netcore.Dialer{Blocking: blocking, Timeout: testTimeout}
	client, err = d.Dial(network, target.String())
	if err != nil {
		t.Fatalf("Dial(%q, %q) (%s): %v", network, target, modeName(blocking), err)
	}
	t.Cleanup(func() { client.Close() })
	r := waitFor(t, ch, "Accept on "+l.Addr().String())
	if r.err != nil {
		t.Fatalf("Accept (%s): %v", modeName(blocking), r.err)
	}
	server = r.c
	t.Cleanup(func() { server.Close() })
	deadline := time.Now().Add(testTimeout)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	return client, server, l
}

// unixPath returns a fresh path for a Unix socket, in a short directory of
// its own under os.TempDir (t.TempDir's paths can pass the 107 bytes
// sun_path holds), removed when the test ends.
func unixPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

var abstractSeq atomic.Int64

// abstractName returns a name in the Linux abstract namespace that no
// other test, nor another run of this one, uses.
func abstractName() string {
	return fmt.Sprintf("@netcore-test-%d-%d", os.Getpid(), abstractSeq.Add(1))
}

// drainAccepts accepts and closes what waits in l's queue, until it has
// been empty for 50 ms.
func drainAccepts(l *netcore.Listener) {
	l.SetDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// waitFor waits for ch to deliver (or close) within testTimeout.
func waitFor[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("%s did not happen within %v", what, testTimeout)
		var zero T
		return zero
	}
}

// modes are netcore's two I/O modes: the runtime poller (false) and the
// blocking fast path (true).
var modes = []bool{false, true}

func modeName(blocking bool) string {
	if blocking {
		return "blocking"
	}
	return "poller"
}

// listenMode listens on 127.0.0.1 port 0 in the given mode; the listener
// is closed when the test ends.
func listenMode(t testing.TB, blocking bool) *netcore.Listener {
	t.Helper()
	lc := netcore.ListenConfig{Blocking: blocking}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen (%s): %v", modeName(blocking), err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return p
}

// checkEcho writes size random bytes on c and half-closes, while reading
// back everything the peer echoes until EOF, and fails the test unless the
// echo is byte for byte what was written.
func checkEcho(t *testing.T, c *netcore.Conn, size int) {
	t.Helper()
	want := randomBytes(size)
	// Write and read at once: neither side's buffer can fill up and stall.
	werr := make(chan error, 1)
	go func() {
		n, err := c.Write(want)
		if err == nil && n != len(want) {
			err = errors.New("short write without an error")
		}
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("Write of %d bytes: %v", size, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo of %d bytes: got %d bytes (sha256 %x), want sha256 %x", size, len(got), sha256.Sum256(got), sha256.Sum256(want))
	}
}

// A child is this test binary running one of its tests (TestXxxChild) in a
// process of its own, for what one process cannot do: a low descriptor or
// thread limit, more descriptors than the hard limit allows for both ends,
// a server measured apart from its client. The child prints its address
// first, then a line for each command written to its stdin, and exits when
// its stdin closes.
type child struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // the child's stdout, a line each; closed when it has exited
	logs  *syncBuffer // the child's stderr
	done  chan struct{}
	err   error // how the child exited, once done is closed
	stop1 sync.Once
}

// startChild runs test in a child process with env ("NAME=value") added
// to its environment, and waits for the address it prints. The caller
// stops it with stop (usually in t.Cleanup).
func startChild(t testing.TB, test, env string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 64), logs: new(syncBuffer), done: make(chan struct{})}
	cmd.Stderr = ch.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case ch.lines <- sc.Text():
			default: // nobody asked (the test framework's last words)
			}
		}
		ch.err = cmd.Wait()
		close(ch.done)
		close(ch.lines)
	}()
	ch.addr = ch.line(t, "the child's address")
	if _, err := netcore.ParseSockaddr(ch.addr); err != nil {
		ch.stop()
		t.Fatalf("the child printed %q, not an address%s", ch.addr, ch.log())
	}
	return ch
}

// line waits for the child's next line of output.
func (ch *child) line(t testing.TB, what string) string {
	t.Helper()
	select {
	case l, ok := <-ch.lines:
		if !ok {
			t.Fatalf("the child exited (%v) before %s%s", ch.err, what, ch.log())
		}
		return l
	case <-time.After(testTimeout):
		t.Fatalf("no %s within %v%s", what, testTimeout, ch.log())
	}
	return ""
}

// ask sends a command to the child and returns its answer.
func (ch *child) ask(t testing.TB, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(ch.stdin, cmd); err != nil {
		t.Fatalf("telling the child %q: %v%s", cmd, err, ch.log())
	}
	return ch.line(t, "the child's answer to "+cmd)
}

// stop ends the child (closing its stdin) and waits for it, for at most
// testTimeout before killing it; it returns how the child exited. Later
// calls return nil.
func (ch *child) stop() (err error) {
	ch.stop1.Do(func() {
		ch.stdin.Close()
		select {
		case <-ch.done:
			err = ch.err
		case <-time.After(testTimeout):
			ch.cmd.Process.Kill() // only the child this test started
			<-ch.done
			err = fmt.Errorf("the child did not exit within %v", testTimeout)
		}
	})
	return err
}

// log is the child's stderr, for error messages.
func (ch *child) log() string {
	if s := ch.logs.String(); s != "" {
		return "\nchild's stderr:\n" + s
	}
	return ""
}

// A sockopt is an integer socket option: level, name, value.
type sockopt struct{ level, name, value int }

// sockoptControl is a Control function, of the signature net's and
// netcore's ListenConfig and Dialer share, that sets opts on the socket.
func sockoptControl(opts ...sockopt) func(string, string, syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			for _, o := range opts {
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), o.level, o.name, o.value)
				}
			}
		}); err != nil {
			return err
		}
		return serr
	}
}
