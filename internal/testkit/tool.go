package testkit

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (the environment variable CI is
// set, as .ci/run and most CI services set it). There every tool a test
// drives is installed, so a missing one is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") != "" }

// NeedTool returns the path of the program name. When it is not on PATH
// the test is skipped, saying which package to install (.ci/run installs
// it), or fails in CI.
func NeedTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if InCI() {
			t.Fatalf("%s not found (%v), and CI must run this test: install %s (.ci/run does)", name, err, pkg)
		}
		t.Skipf("%s not found (%v): install %s (.ci/run does: apt-get install %s) to run this test", name, err, pkg, pkg)
	}
	return p
}

// RunTool runs a program to its end with stdin as its input, within
// Timeout (it is killed then), and returns what it wrote.
func RunTool(t testing.TB, stdin, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e SyncBuffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within %v\nstdout: %s\nstderr: %s", name, args, Timeout, o.String(), e.String())
	}
	return o.String(), e.String(), err
}

// A Driven is a program the test talks to through pipes, line by line:
// an interactive client such as openssl s_client.
type Driven struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *SyncBuffer
	done   chan struct{}
	err    error // how it exited, once done is closed

	mu     sync.Mutex
	lines  []string      // stdout, a line each
	next   int           // the first line WaitLine has not looked at
	signal chan struct{} // a line came, or stdout ended
	eof    bool          // stdout ended
}

// Drive starts name with args. When the test ends it is killed (by its
// pid) if it is still running, and waited for.
func Drive(t testing.TB, name string, args ...string) *Driven {
	t.Helper()
	cmd := exec.Command(name, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &Driven{t: t, cmd: cmd, stdin: stdin, stderr: new(SyncBuffer), done: make(chan struct{}),
		signal: make(chan struct{}, 1)}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.mu.Unlock()
			d.wake()
		}
		io.Copy(io.Discard, pipe)
		d.err = cmd.Wait()
		d.mu.Lock()
		d.eof = true
		d.mu.Unlock()
		close(d.done)
		d.wake()
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

func (d *Driven) wake() {
	select {
	case d.signal <- struct{}{}:
	default:
	}
}

// Send writes line and a newline to the program's stdin.
func (d *Driven) Send(line string) {
	d.t.Helper()
	if _, err := io.WriteString(d.stdin, line+"\n"); err != nil {
		d.t.Fatalf("writing %q to %s: %v%s", line, d.cmd.Path, err, d.Output())
	}
}

// WaitLine waits for a line of stdout that match accepts, skipping the
// lines before it, and returns it; the test fails if the program exits or
// Timeout passes first.
func (d *Driven) WaitLine(what string, match func(line string) bool) string {
	d.t.Helper()
	deadline := time.After(Timeout)
	for {
		d.mu.Lock()
		for d.next < len(d.lines) {
			l := d.lines[d.next]
			d.next++
			if match(l) {
				d.mu.Unlock()
				return l
			}
		}
		eof := d.eof
		d.mu.Unlock()
		if eof {
			d.t.Fatalf("%s exited (%v) before it printed %s%s", d.cmd.Path, d.err, what, d.Output())
		}
		select {
		case <-d.signal:
		case <-deadline:
			d.t.Fatalf("%s did not print %s within %v%s", d.cmd.Path, what, Timeout, d.Output())
		}
	}
}

// Finish closes the program's stdin and waits (within Timeout) for it to
// exit; it returns all its output and how it exited.
func (d *Driven) Finish() (stdout, stderr string, err error) {
	d.t.Helper()
	d.stdin.Close()
	select {
	case <-d.done:
	case <-time.After(Timeout):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Fatalf("%s did not exit within %v of its stdin's end%s", d.cmd.Path, Timeout, d.Output())
	}
	return d.Stdout(), d.stderr.String(), d.err
}

// Stdout is what the program wrote to stdout so far (whole lines).
func (d *Driven) Stdout() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.lines) == 0 {
		return ""
	}
	return strings.Join(d.lines, "\n") + "\n"
}

// Output is what the program wrote so far, for a failure message.
func (d *Driven) Output() string {
	return "\nstdout:\n" + d.Stdout() + "\nstderr:\n" + d.stderr.String()
}
