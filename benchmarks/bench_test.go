//go:build linux

package benchmarks_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/benchmarks"
	"golang.org/x/sys/unix"
)

// serverEnv tells a re-executed test binary to be an echo server process:
// its value is the implementation's name.
const serverEnv = "NETCORE_ECHO_SERVER"

// timeout bounds every wait outside a timed section.
const timeout = 20 * time.Second

// profileEnv passes -srvprofile to a server process.
const profileEnv = "NETCORE_ECHO_PROFILE"

// srvProfile makes each server process profile itself, for its whole life
// (opening the connections, TLS handshakes included, and every timed
// section): its CPU to PREFIX.IMPL.PID.cpu.pprof, its heap allocations
// (sampled every 4 KiB instead of 512 KiB, after a last collection) to
// PREFIX.IMPL.PID.allocs.pprof. Profiling costs the server CPU: leave it
// off for figures.
var srvProfile = flag.String("srvprofile", "", "write each server process's CPU and allocation profiles to `PREFIX`.IMPL.PID.{cpu,allocs}.pprof")

func TestMain(m *testing.M) {
	if impl := os.Getenv(serverEnv); impl != "" {
		if err := serve(impl, os.Getenv(profileEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "echo server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if err := benchmarks.RaiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// serve is a server process's life: benchmarks.Serve, profiled if prefix
// is not empty (srvProfile).
func serve(impl, prefix string) error {
	if prefix == "" {
		return benchmarks.Serve(impl, "127.0.0.1:0", os.Stdin, os.Stdout)
	}
	name := fmt.Sprintf("%s.%s.%d.", prefix, impl, os.Getpid())
	cpu, err := os.Create(name + "cpu.pprof")
	if err != nil {
		return err
	}
	runtime.MemProfileRate = 4 << 10
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return err
	}
	err = benchmarks.Serve(impl, "127.0.0.1:0", os.Stdin, os.Stdout)
	pprof.StopCPUProfile()
	runtime.GC() // the allocation profile is as of the last collection
	allocs, ferr := os.Create(name + "allocs.pprof")
	if ferr == nil {
		ferr = pprof.Lookup("allocs").WriteTo(allocs, 0)
		if cerr := allocs.Close(); ferr == nil {
			ferr = cerr
		}
	}
	return errors.Join(err, ferr, cpu.Close())
}

// A process is an echo server running in a child process (this test
// binary, re-executed).
type process struct {
	addr  string
	tls   *tls.Config // a TLS server's client configuration; nil for plain TCP
	cmd   *exec.Cmd
	ctl   io.WriteCloser
	lines chan string
	logs  *logBuffer
	done  chan error
}

// logBuffer collects a child's stderr.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// startProcess starts an echo server process for impl and waits for its
// address (and a TLS server's certificate).
func startProcess(tb testing.TB, impl string) *process {
	tb.Helper()
	im, err := benchmarks.Lookup(impl)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serverEnv+"="+impl)
	if *srvProfile != "" {
		cmd.Env = append(cmd.Env, profileEnv+"="+*srvProfile)
	}
	ctl, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &process{cmd: cmd, ctl: ctl, lines: make(chan string, 16), logs: new(logBuffer), done: make(chan error, 1)}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		p.done <- cmd.Wait()
		close(p.lines)
	}()
	p.addr = p.line(tb, "the server's address")
	if _, err := netip.ParseAddrPort(p.addr); err != nil {
		p.stop(tb)
		tb.Fatalf("the %s server printed %q, not an address%s", impl, p.addr, p.log())
	}
	if im.TLS {
		line := p.line(tb, "the server's certificate")
		cert, err := base64.StdEncoding.DecodeString(line)
		if err == nil {
			p.tls, err = benchmarks.ClientTLSConfig(cert, p.addr)
		}
		if err != nil {
			p.stop(tb)
			tb.Fatalf("the %s server printed %q, not a certificate: %v%s", impl, line, err, p.log())
		}
	}
	return p
}

func (p *process) line(tb testing.TB, what string) string {
	tb.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			tb.Fatalf("the server exited before %s%s", what, p.log())
		}
		return l
	case <-time.After(timeout):
		tb.Fatalf("no %s within %v%s", what, timeout, p.log())
	}
	return ""
}

// stats asks the server process for its counters.
func (p *process) stats(tb testing.TB) benchmarks.Stats {
	tb.Helper()
	if _, err := io.WriteString(p.ctl, "stats\n"); err != nil {
		tb.Fatalf("asking the server for its counters: %v%s", err, p.log())
	}
	st, err := benchmarks.ParseStats(p.line(tb, "the server's counters"))
	if err != nil {
		tb.Fatalf("%v%s", err, p.log())
	}
	return st
}

// heap asks the server process for its Go memory in use after a garbage
// collection (benchmarks.ReadHeap).
func (p *process) heap(tb testing.TB) int64 {
	tb.Helper()
	if _, err := io.WriteString(p.ctl, benchmarks.HeapCommand+"\n"); err != nil {
		tb.Fatalf("asking the server for its heap: %v%s", err, p.log())
	}
	line := p.line(tb, "the server's heap")
	n, err := strconv.ParseInt(line, 10, 64)
	if err != nil {
		tb.Fatalf("the server's heap %q: %v%s", line, err, p.log())
	}
	return n
}

// stop ends the server (closing its stdin) and waits for it, bounded.
func (p *process) stop(tb testing.TB) {
	tb.Helper()
	p.ctl.Close()
	select {
	case err := <-p.done:
		if err != nil {
			tb.Errorf("the server exited with %v%s", err, p.log())
		}
	case <-time.After(timeout):
		p.cmd.Process.Kill() // only the child this benchmark started
		<-p.done
		tb.Errorf("the server did not exit within %v%s", timeout, p.log())
	}
}

func (p *process) log() string {
	if s := p.logs.String(); s != "" {
		return "\nserver stderr:\n" + s
	}
	return ""
}

// connsPerSource is how many connections dial from one source address
// (127.0.0.1, 127.0.0.2, ...): Linux has 28,232 ephemeral ports per source
// address, and connections of earlier rounds linger in TIME_WAIT.
const connsPerSource = 5000

// dial opens client connection number i to addr, from source address
// 127.0.0.(1 + i/connsPerSource). IP_BIND_ADDRESS_NO_PORT leaves the port
// to connect(2), which can reuse one toward another destination.
func dial(addr string, i int) (net.Conn, error) {
	src := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i/connsPerSource)})
	d := net.Dialer{
		Timeout:   timeout,
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			if err != nil {
				return err
			}
			return os.NewSyscallError("setsockopt(IP_BIND_ADDRESS_NO_PORT)", serr)
		},
	}
	return d.Dial("tcp4", addr)
}

// connect opens client connection number i to the server (dial), and with
// TLS runs the handshake, bounded by timeout.
func (p *process) connect(i int) (net.Conn, error) {
	c, err := dial(p.addr, i)
	if err != nil || p.tls == nil {
		return c, err
	}
	tc := tls.Client(c, p.tls)
	tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// pingPong writes buf and reads as many bytes back into it.
func pingPong(c net.Conn, buf []byte) error {
	if _, err := c.Write(buf); err != nil {
		return err
	}
	_, err := io.ReadFull(c, buf)
	return err
}

// openConns opens n connections to p, 16 dialing at a time, each proven
// served by one 64-byte round trip (after its TLS handshake, with TLS).
func openConns(p *process, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	next := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			buf := make([]byte, 64)
			for i := range next {
				c, err := p.connect(i)
				if err == nil {
					c.SetDeadline(time.Now().Add(timeout))
					err = pingPong(c, buf)
					c.SetDeadline(time.Time{})
					conns[i] = c
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %v", i, err)
					return
				}
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// A fixture is one implementation's server process with its client
// connections open, kept while the framework reruns a sub-benchmark with a
// larger b.N.
type fixture struct {
	proc     *process
	conns    []net.Conn
	idleRSS  float64 // server RSS above its baseline per open, idle connection
	idleHeap float64 // the same for the server's Go heap and stacks after a GC
}

// BenchmarkEcho measures many connections at once, each doing 64-byte
// round trips in lock step (one request outstanding per connection): ns/op
// is per round trip across all of them. The server is a child process; the
// client, the same for every implementation, is Go's net.
//
// Metrics: rt/s; p50-ns, p99-ns (one round trip's time); srv-cpu-ns/op (the
// server's user + system CPU per round trip); srv-peak-rss-B (the server's
// VmHWM); srv-idle-rss-B/conn (the server's VmRSS once every connection is
// open and idle, above its RSS before the first, per connection);
// srv-idle-heap-B/conn (the same for its live Go heap objects and goroutine
// stacks, each read after a forced garbage collection); srv-allocs/op (the
// server's Go heap allocations per round trip); cli-cpu-ns/op (this
// process).
//
// The TLS implementations (net-tls, ...) run too, but not with 10,000
// connections: every connection's handshake is done (and one round trip
// made) before the timed section, which measures the echo alone.
//
// 10,000 connections are skipped under -short (CI).
func BenchmarkEcho(b *testing.B) {
	for _, conns := range []int{64, 1000, 10000} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			if conns > 1000 && testing.Short() {
				b.Skip("10,000 connections take seconds to open: not under -short")
			}
			forEachImpl(b, conns, conns <= 1000, echo)
		})
	}
}

// BenchmarkPingPong is BenchmarkEcho with one connection: the round trip's
// latency when the server has nothing else to do.
func BenchmarkPingPong(b *testing.B) { forEachImpl(b, 1, true, echo) }

// BenchmarkAccept measures short connections one after another: the client
// dials, sends 1 byte, reads its echo (so the server has accepted and
// served the connection) and closes. One op is one whole connection;
// conns/s is their rate, srv-ctxsw/op the server's context switches per
// connection. The TLS implementations do not run: their op would be mostly
// the handshake.
func BenchmarkAccept(b *testing.B) {
	forEachImpl(b, 0, false, func(b *testing.B, fx *fixture) {
		buf := make([]byte, 1)
		m := startMeter(b, fx.proc)
		for i := range b.N {
			c, err := dial(fx.proc.addr, nextAcceptSource())
			if err == nil {
				err = pingPong(c, buf)
				c.Close()
			}
			if err != nil {
				b.Fatalf("connection %d: %v%s", i, err, fx.proc.log())
			}
		}
		m.stop()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	})
}

// nextAcceptSource spreads BenchmarkAccept's connections over 100 of the
// source addresses dial uses (it takes a connection number): each closed
// connection leaves its port in TIME_WAIT on the client's side for a
// minute, and one source address has 28,232 ports.
func nextAcceptSource() int {
	accepted = (accepted + 1) % (100 * connsPerSource)
	return accepted
}

// accepted counts BenchmarkAccept's connections, across runs.
var accepted int

// onlyImpls limits the implementations the benchmarks run.
var onlyImpls = flag.String("impls", "", "run only these implementations (`names`, comma-separated; default all)")

// forEachImpl runs body with conns connections open for each
// implementation (of -impls, if given), those over TLS only if withTLS.
func forEachImpl(b *testing.B, conns int, withTLS bool, body func(*testing.B, *fixture)) {
	only := strings.Split(*onlyImpls, ",")
	for _, impl := range benchmarks.Impls {
		if impl.TLS && !withTLS || *onlyImpls != "" && !slices.Contains(only, impl.Name) {
			continue
		}
		runImpl(b, impl.Name, conns, body)
	}
}

// runImpl runs the sub-benchmark impl=name. Its fixture lives until b.Run
// returns, when the framework is done with it (every b.N): then its
// connections and server go, before the next implementation's open.
func runImpl(b *testing.B, name string, conns int, body func(*testing.B, *fixture)) {
	var fx *fixture
	defer func() {
		if fx != nil {
			closeAll(fx.conns)
			fx.proc.stop(b)
		}
	}()
	b.Run("impl="+name, func(b *testing.B) {
		if fx == nil {
			p := startProcess(b, name)
			base := p.stats(b)
			baseHeap := p.heap(b) // after base: RSS is read before the collection
			cs, err := openConns(p, conns)
			if err != nil {
				p.stop(b)
				b.Fatalf("%v%s", err, p.log())
			}
			idle := p.stats(b)
			idleHeap := p.heap(b)
			fx = &fixture{proc: p, conns: cs}
			if conns > 0 {
				fx.idleRSS = float64(idle.RSS-base.RSS) / float64(conns)
				fx.idleHeap = float64(idleHeap-baseHeap) / float64(conns)
			}
		}
		body(b, fx)
	})
}

// echo runs b.N round trips spread over the fixture's connections.
func echo(b *testing.B, fx *fixture) {
	b.ReportAllocs()
	conns := fx.conns
	lats := make([][]int64, len(conns))
	errs := make(chan error, len(conns))
	var wg sync.WaitGroup
	m := startMeter(b, fx.proc)
	for i, c := range conns {
		n := b.N / len(conns)
		if i < b.N%len(conns) {
			n++
		}
		if n == 0 {
			continue
		}
		wg.Go(func() {
			lat := make([]int64, n)
			buf := make([]byte, 64)
			for j := range n {
				t0 := time.Now()
				if err := pingPong(c, buf); err != nil {
					errs <- fmt.Errorf("connection %d: %v", i, err)
					return
				}
				lat[j] = int64(time.Since(t0))
			}
			lats[i] = lat
		})
	}
	wg.Wait()
	m.stop()
	close(errs)
	for err := range errs {
		b.Fatalf("%v%s", err, fx.proc.log())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
	if len(conns) >= 64 {
		b.ReportMetric(fx.idleRSS, "srv-idle-rss-B/conn")
		b.ReportMetric(fx.idleHeap, "srv-idle-heap-B/conn")
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2]), "p50-ns")
		b.ReportMetric(float64(all[len(all)*99/100]), "p99-ns")
	}
}

// A meter measures the server process and this one over a timed section.
type meter struct {
	b      *testing.B
	p      *process
	before benchmarks.Stats
	cpu    time.Duration
	sc     *syscallCounter
}

// startMeter reads the counters and starts the timer (and, with
// -syscalls, perf's count of the server's system calls).
func startMeter(b *testing.B, p *process) *meter {
	m := &meter{b: b, p: p, before: p.stats(b)}
	if *countSyscalls {
		sc, err := startSyscallCounter(p.cmd.Process.Pid)
		if err == nil {
			if err = sc.command("enable"); err != nil {
				sc.stop()
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		m.sc = sc
	}
	m.cpu = cpuTime(b)
	b.ResetTimer()
	return m
}

// stop stops the timer and reports per op: srv-cpu-ns/op (the server's
// user + system CPU), srv-ctxsw/op (its context switches, every thread),
// srv-allocs/op (its Go heap allocations), cli-cpu-ns/op (this process's CPU), srv-syscalls/op (with -syscalls), and
// srv-peak-rss-B (the server's VmHWM).
func (m *meter) stop() {
	b := m.b
	b.StopTimer()
	n := float64(b.N)
	if m.sc != nil {
		calls, err := m.sc.stop()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(calls)/n, "srv-syscalls/op")
	}
	after := m.p.stats(b)
	b.ReportMetric(float64(after.CPU-m.before.CPU)/n, "srv-cpu-ns/op")
	b.ReportMetric(float64(after.CtxSw-m.before.CtxSw)/n, "srv-ctxsw/op")
	b.ReportMetric(float64(after.Allocs-m.before.Allocs)/n, "srv-allocs/op")
	b.ReportMetric(float64(cpuTime(b)-m.cpu)/n, "cli-cpu-ns/op")
	b.ReportMetric(float64(after.PeakRSS), "srv-peak-rss-B")
}

// cpuTime is this process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
