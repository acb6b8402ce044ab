package testkit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/netcore"
)

// A Child is this test binary running one of its tests (TestXxxChild) in a
// process of its own, for what one process cannot do: a low descriptor or
// thread limit, more descriptors than the hard limit allows for both ends,
// a server measured apart from its client. The child prints its address
// first, then a line for each command written to its stdin, and exits when
// its stdin closes.
type Child struct {
	Addr  string // the address the child printed first
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // the child's stdout, a line each; closed when it has exited
	logs  *SyncBuffer // the child's stderr
	done  chan struct{}
	err   error // how the child exited, once done is closed
	stop1 sync.Once
}

// StartChild runs test in a child process with env ("NAME=value") added
// to its environment, and waits for the address it prints. The caller
// stops it with Stop (usually in t.Cleanup).
func StartChild(t testing.TB, test, env string) *Child {
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
	ch := &Child{cmd: cmd, stdin: stdin, lines: make(chan string, 64), logs: new(SyncBuffer), done: make(chan struct{})}
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
	ch.Addr = ch.Line(t, "the child's address")
	if _, err := netcore.ParseSockaddr(ch.Addr); err != nil {
		ch.Stop()
		t.Fatalf("the child printed %q, not an address%s", ch.Addr, ch.Log())
	}
	return ch
}

// Line waits for the child's next line of output.
func (ch *Child) Line(t testing.TB, what string) string {
	t.Helper()
	select {
	case l, ok := <-ch.lines:
		if !ok {
			t.Fatalf("the child exited (%v) before %s%s", ch.err, what, ch.Log())
		}
		return l
	case <-time.After(Timeout):
		t.Fatalf("no %s within %v%s", what, Timeout, ch.Log())
	}
	return ""
}

// Ask sends a command to the child and returns its answer.
func (ch *Child) Ask(t testing.TB, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(ch.stdin, cmd); err != nil {
		t.Fatalf("telling the child %q: %v%s", cmd, err, ch.Log())
	}
	return ch.Line(t, "the child's answer to "+cmd)
}

// Stop ends the child (closing its stdin) and waits for it, for at most
// Timeout before killing it; it returns how the child exited. Later
// calls return nil.
func (ch *Child) Stop() (err error) {
	ch.stop1.Do(func() {
		ch.stdin.Close()
		select {
		case <-ch.done:
			err = ch.err
		case <-time.After(Timeout):
			ch.cmd.Process.Kill() // only the child this test started
			<-ch.done
			err = fmt.Errorf("the child did not exit within %v", Timeout)
		}
	})
	return err
}

// Stderr is what the child has written to its stderr so far.
func (ch *Child) Stderr() string { return ch.logs.String() }

// Done is closed when the child has exited; Err then says how.
func (ch *Child) Done() <-chan struct{} { return ch.done }

// Err is how the child exited, once Done is closed.
func (ch *Child) Err() error { return ch.err }

// Log is the child's stderr, for error messages.
func (ch *Child) Log() string {
	if s := ch.Stderr(); s != "" {
		return "\nchild's stderr:\n" + s
	}
	return ""
}
