//go:build linux

package benchmarks_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// countSyscalls turns on srv-syscalls/op: the server's system calls in the
// timed section, counted by perf stat on the raw_syscalls:sys_enter
// tracepoint. Off by default: the tracepoint costs the server some CPU on
// every call, which would tilt srv-cpu-ns/op against the implementations
// that make more calls; benchmarks/run.sh counts them in a pass of its own.
var countSyscalls = flag.Bool("syscalls", false, "count the server's system calls per op with perf stat (needs perf and the right to trace the server)")

// A syscallCounter is a perf stat process attached to a server process,
// counting its system calls (every thread) while enabled.
type syscallCounter struct {
	cmd  *exec.Cmd
	ctl  *os.File // commands to perf: "enable", "disable"
	ack  *os.File // perf's "ack" after each
	acks *bufio.Reader
	out  bytes.Buffer // perf's report, at its end
	done chan error
}

// startSyscallCounter attaches perf stat to pid with its counter disabled.
func startSyscallCounter(pid int) (*syscallCounter, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("-syscalls needs perf (apt-get install linux-perf): %v", err)
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	s := &syscallCounter{ctl: ctlW, ack: ackR, acks: bufio.NewReader(ackR), done: make(chan error, 1)}
	// Descriptors 3 and 4 of perf are ExtraFiles[0] and [1].
	s.cmd = exec.Command(perf, "stat", "-x", ",", "-e", "raw_syscalls:sys_enter",
		"--delay", "-1", "--control", "fd:3,4", "-p", strconv.Itoa(pid))
	s.cmd.ExtraFiles = []*os.File{ctlR, ackW}
	s.cmd.Stderr = &s.out
	err = s.cmd.Start()
	ctlR.Close()
	ackW.Close()
	if err != nil {
		ctlW.Close()
		ackR.Close()
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	return s, nil
}

// command sends perf one control command and waits for its ack.
func (s *syscallCounter) command(c string) error {
	if _, err := fmt.Fprintln(s.ctl, c); err != nil {
		return fmt.Errorf("perf stat %s: %v", c, err)
	}
	s.ack.SetReadDeadline(time.Now().Add(timeout))
	line, err := s.acks.ReadString('\n')
	// perf writes the C string's terminating NUL too.
	if err != nil || strings.Trim(line, "\x00\n") != "ack" {
		return fmt.Errorf("perf stat %s: answered %q, %v; perf said: %s", c, line, err, s.out.String())
	}
	return nil
}

// stop ends perf and returns the calls counted while enabled.
func (s *syscallCounter) stop() (int64, error) {
	defer s.ctl.Close()
	defer s.ack.Close()
	if err := s.command("disable"); err != nil {
		s.cmd.Process.Kill() // only the perf this benchmark started
		<-s.done
		return 0, err
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		<-s.done
		return 0, fmt.Errorf("perf stat did not end within %v", timeout)
	}
	return parsePerfCount(s.out.String(), "raw_syscalls:sys_enter")
}

// parsePerfCount finds event's count in perf stat's -x, output: a line
// "COUNT,UNIT,EVENT,...".
func parsePerfCount(out, event string) (int64, error) {
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) >= 3 && f[2] == event {
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("perf stat counted %q for %s", f[0], event)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("perf stat printed no count for %s: %q", event, out)
}
