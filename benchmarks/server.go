//go:build linux

// Package benchmarks compares echo servers across processes: Go's net
// (a goroutine per connection), gnet v2's event loops, and netcore's Server
// and Loop, in plain TCP and (all but gnet) over TLS. It is its own module
// so that netcore's go.mod never requires gnet.
//
// An echo server runs in its own process (Serve, from cmd/echoserver or the
// re-executed test binary); the benchmarks in this package are its client.
// Every implementation is one entry of Impls: a function that starts an
// echo server on an address.
package benchmarks

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A Server is a running echo server: every byte a client sends comes back
// to it on the same connection, in order.
type Server interface {
	// Addr is the address it listens on, host:port.
	Addr() string
	// Close stops it and closes its connections.
	Close() error
}

// An Impl is one echo server implementation.
type Impl struct {
	// Name is how -impl and the benchmarks' impl=NAME call it.
	Name string
	// Start starts an echo server listening on addr ("127.0.0.1:0": the
	// kernel chooses the port; Server.Addr says which).
	Start func(addr string) (Server, error)
	// TLS says the echo is over TLS: Start returns a TLSServer.
	TLS bool
}

// Impls are the implementations compared, the baseline (net) first, then
// those over TLS, their baseline (net-tls) first. To add one, write its
// Start function and append it here (or from an init function in its own
// file).
var Impls = []Impl{
	{Name: "net", Start: StartNet},
	{Name: "netcore", Start: StartNetcore},
	{Name: "loop", Start: StartLoop},
	{Name: "loop-uring", Start: StartLoopURing},
	{Name: "loop-reuseport", Start: StartLoopReusePort},
	{Name: "loop-spin", Start: StartLoopSpin},
	{Name: "gnet", Start: StartGnet},
	{Name: "uring", Start: StartUring},
	{Name: "net-tls", Start: StartNetTLS, TLS: true},
	{Name: "netcore-tls", Start: StartNetcoreTLS, TLS: true},
	{Name: "loop-tls", Start: StartLoopTLS, TLS: true},
}

// Lookup finds the implementation named name.
func Lookup(name string) (Impl, error) {
	var names []string
	for _, impl := range Impls {
		if impl.Name == name {
			return impl, nil
		}
		names = append(names, impl.Name)
	}
	return Impl{}, fmt.Errorf("unknown implementation %q (have %s)", name, strings.Join(names, ", "))
}

// Stats are a server process's counters at one moment.
type Stats struct {
	CPU     int64 // user + system CPU time so far, every thread, in ns (getrusage)
	RSS     int64 // resident set size now, bytes (VmRSS)
	PeakRSS int64 // the largest RSS so far, bytes (VmHWM)
	// CtxSw counts the context switches so far, every thread, voluntary
	// (a thread blocked: waiting in epoll_wait, a futex, a read) and
	// involuntary (preempted) together (getrusage).
	CtxSw int64
	// Allocs counts the Go heap objects allocated so far
	// (/gc/heap/allocs:objects).
	Allocs int64
}

// ReadStats reads this process's Stats.
func ReadStats() (Stats, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return Stats{}, os.NewSyscallError("getrusage", err)
	}
	st := Stats{CPU: ru.Utime.Nano() + ru.Stime.Nano(), CtxSw: ru.Nvcsw + ru.Nivcsw}
	allocs := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(allocs)
	if allocs[0].Value.Kind() != metrics.KindUint64 {
		return Stats{}, fmt.Errorf("runtime/metrics has no %s", allocs[0].Name)
	}
	st.Allocs = int64(allocs[0].Value.Uint64())
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return Stats{}, err
	}
	if st.RSS, err = statusKiB(status, "VmRSS"); err != nil {
		return Stats{}, err
	}
	if st.PeakRSS, err = statusKiB(status, "VmHWM"); err != nil {
		return Stats{}, err
	}
	return st, nil
}

// statusKiB finds "field:   1234 kB" in /proc/PID/status and returns the
// size in bytes.
func statusKiB(status []byte, field string) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte(field+":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("/proc/self/status has no %q line in kB", field)
}

// String is the one-line form Serve writes and ParseStats reads.
func (s Stats) String() string { return fmt.Sprint(s.CPU, s.RSS, s.PeakRSS, s.CtxSw, s.Allocs) }

// ParseStats reads the form String writes.
func ParseStats(line string) (Stats, error) {
	var s Stats
	if _, err := fmt.Sscan(line, &s.CPU, &s.RSS, &s.PeakRSS, &s.CtxSw, &s.Allocs); err != nil {
		return Stats{}, fmt.Errorf("server counters %q: %v", line, err)
	}
	return s, nil
}

// ReadHeap runs a garbage collection and returns the bytes of Go memory
// then in use: live heap objects (/memory/classes/heap/objects:bytes) and
// goroutine stacks (/memory/classes/heap/stacks:bytes). Unlike RSS it
// counts no garbage awaiting collection and no freed memory the runtime
// keeps, but neither anything outside Go's heap.
func ReadHeap() (int64, error) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	var n int64
	for _, v := range s {
		if v.Value.Kind() != metrics.KindUint64 {
			return 0, fmt.Errorf("runtime/metrics has no %s", v.Name)
		}
		n += int64(v.Value.Uint64())
	}
	return n, nil
}

// HeapCommand is the line on which Serve answers with ReadHeap's figure
// instead of Stats.
const HeapCommand = "heap"

// RaiseFileLimit raises this process's soft RLIMIT_NOFILE to its hard
// limit, so that it can hold as many connections as allowed.
func RaiseFileLimit() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return os.NewSyscallError("getrlimit", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return os.NewSyscallError("setrlimit", err)
		}
	}
	return nil
}

// Serve is a server process's main loop: it raises the descriptor limit,
// starts the echo server impl on addr, writes its address as the first
// line to out (and for a TLS implementation its certificate as the
// second, DER in standard base64), then answers every line read from ctl
// with one line of Stats (HeapCommand: with ReadHeap's bytes), until ctl
// ends; then it closes the server.
func Serve(impl, addr string, ctl io.Reader, out io.Writer) error {
	im, err := Lookup(impl)
	if err != nil {
		return err
	}
	if err := RaiseFileLimit(); err != nil {
		return err
	}
	srv, err := im.Start(addr)
	if err != nil {
		return err
	}
	defer srv.Close()
	if _, err := fmt.Fprintln(out, srv.Addr()); err != nil {
		return err
	}
	if im.TLS {
		ts, ok := srv.(TLSServer)
		if !ok {
			return fmt.Errorf("implementation %q is TLS but its server has no certificate", impl)
		}
		if _, err := fmt.Fprintln(out, base64.StdEncoding.EncodeToString(ts.Certificate())); err != nil {
			return err
		}
	}
	sc := bufio.NewScanner(ctl)
	for sc.Scan() {
		var answer any
		var err error
		if sc.Text() == HeapCommand {
			answer, err = ReadHeap()
		} else {
			answer, err = ReadStats()
		}
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(out, answer); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return srv.Close()
}
