//go:build linux

package netcore_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// The benchmarks run across processes, as real clients and servers do:
// the server side of every workload runs in a child process (this test
// binary re-executed as TestBenchServer), the client in the benchmark.
// Both ends use the same implementation, so a ratio against impl=net is
// "netcore on both ends" against "Go's net on both ends". In one process the
// two ends would share one Go runtime (its Ps, sysmon, spinning threads),
// which changes the comparison between the modes; BenchmarkPingPongInProcess
// keeps that case because it answers a different question (see there).
//
// Metrics beside ns/op (wall time, the client's view):
//   - srv-cpu-ns/op: the server process's CPU time (user + system, every
//     thread) over the timed section, reported by the child from
//     getrusage(RUSAGE_SELF); far steadier than wall time on a VM.
//   - cli-cpu-ns/op: the same for the benchmark (client) process.
//   - srv-allocs/op: heap allocations in the server process; allocs/op and
//     B/op are the client's.
//   - syscalls/op (netcore only): system calls through the seam, both ends.
//   - conns/s, rt/s, p50-ns and p99-ns where the workload has them.

// A stack is one implementation under test: Go's net, netcore in its
// default mode, or netcore's blocking fast path. Every workload runs for
// each as sibling sub-benchmarks named impl=..., so one benchstat run
// compares them (benchstat -col /impl).
type stack struct {
	name    string
	counted bool // netcore: syscalls/op come from the seam's counters
	listen  func() (net.Listener, error)
	dial    func(addr string) (net.Conn, error)
}

// stacksOn returns the three implementations listening on address of
// network; suffix tells their names apart from the TCP ones.
func stacksOn(suffix, network, address string) []stack {
	return []stack{
		{
			name:   "net" + suffix,
			listen: func() (net.Listener, error) { return net.Listen(network, address) },
			dial:   func(addr string) (net.Conn, error) { return net.Dial(network, addr) },
		},
		{
			name:    "netcore" + suffix,
			counted: true,
			listen:  func() (net.Listener, error) { return netcore.Listen(network, address) },
			dial:    func(addr string) (net.Conn, error) { return netcore.Dial(network, addr) },
		},
		{
			name:    "netcore-blocking" + suffix,
			counted: true,
			listen: func() (net.Listener, error) {
				lc := netcore.ListenConfig{Blocking: true}
				return lc.Listen(context.Background(), network, address)
			},
			dial: func(addr string) (net.Conn, error) {
				d := netcore.Dialer{Blocking: true}
				return d.Dial(network, addr)
			},
		},
	}
}

// stacks are the implementations over TCP on loopback; unixStacks the same
// over a Unix socket (an abstract name the kernel picks: nothing to clean
// up), for the workloads that compare the two transports.
var (
	stacks     = stacksOn("", "tcp4", "127.0.0.1:0")
	unixStacks = stacksOn("-unix", "unix", "")
	bothStacks = append(slices.Clip(stacks), unixStacks...)
)

func stackNamed(name string) (stack, bool) {
	for _, s := range bothStacks {
		if s.name == name {
			return s, true
		}
	}
	return stack{}, false
}

// benchServerEnv tells a re-executed test binary to be a benchmark server:
// its value is "impl/workload", for example "netcore/echo".
const benchServerEnv = "NETCORE_BENCH_SERVER"

// serverWorkloads are what a benchmark server does with each accepted
// connection. It runs in the accept loop's goroutine, so anything longer
// than a close starts its own goroutine.
var serverWorkloads = map[string]func(c net.Conn){
	// accept: close at once; the client waits for the EOF.
	"accept": func(c net.Conn) { c.Close() },
	// echo: 64-byte messages echoed back, one goroutine per connection.
	"echo": func(c net.Conn) {
		go func() {
			testkit.Echo(c, 64)
			c.Close()
		}()
	},
	// sink: read and drop everything until EOF, then reply with the byte
	// count (8 bytes, big-endian) so the client knows all arrived.
	"sink": func(c net.Conn) {
		go func() {
			defer c.Close()
			buf := make([]byte, 1<<20)
			var n uint64
			for {
				m, err := c.Read(buf)
				n += uint64(m)
				if err != nil {
					break
				}
			}
			c.Write(binary.BigEndian.AppendUint64(nil, n))
		}()
	},
}

// TestBenchServer is the server side of the benchmarks, run in a child
// process (see startBenchServer); on its own it does nothing. It prints
// its listener's address, then answers each line on stdin with one line of
// counters (see serverStats) until stdin ends.
func TestBenchServer(t *testing.T) {
	spec := os.Getenv(benchServerEnv)
	if spec == "" {
		t.Skip("runs only as a benchmark's server process")
	}
	name, workload, _ := strings.Cut(spec, "/")
	s, ok := stackNamed(name)
	handle := serverWorkloads[workload]
	if !ok || handle == nil {
		t.Fatalf("%s=%q: want impl/workload, impl one of net, netcore, netcore-blocking (each with -unix for a Unix socket), workload one of accept, echo, sink", benchServerEnv, spec)
	}
	l, err := s.listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// A benchmark must not go on without its server: exiting
				// resets every connection, so the client fails at once.
				fmt.Fprintf(os.Stderr, "accept: %v\n", err)
				os.Exit(2)
			}
			handle(c)
		}
	}()
	fmt.Println(l.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			t.Fatalf("getrusage: %v", err)
		}
		// ReadMemStats stops the world, but only here, outside the
		// timed section; it counts allocations exactly, as
		// b.ReportAllocs does.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Println(ru.Utime.Nano()+ru.Stime.Nano(), sys.Total(), ms.Mallocs)
	}
}

// serverStats are a benchmark server's counters at one moment.
type serverStats struct {
	cpu      time.Duration // user + system CPU time, every thread
	syscalls uint64        // system calls through netcore's seam
	allocs   uint64        // heap objects allocated
}

// A benchServer is a running child process serving one workload with one
// implementation.
type benchServer struct {
	*testkit.Child

	// conns are client connections a benchmark keeps open across its
	// runs; they are closed before the server stops.
	conns []net.Conn
}

// startBenchServer starts a child process that serves workload with the
// implementation named impl and waits for its address.
func startBenchServer(b *testing.B, impl, workload string) *benchServer {
	b.Helper()
	return &benchServer{Child: testkit.StartChild(b, "TestBenchServer", benchServerEnv+"="+impl+"/"+workload)}
}

// stats asks the child for its counters.
func (srv *benchServer) stats(b *testing.B) serverStats {
	b.Helper()
	l := srv.Ask(b, "stats")
	var cpu int64
	var st serverStats
	if _, err := fmt.Sscan(l, &cpu, &st.syscalls, &st.allocs); err != nil {
		b.Fatalf("the server's counters %q: %v%s", l, err, srv.Log())
	}
	st.cpu = time.Duration(cpu)
	return st
}

// A meter measures one benchmark run: the body calls start where it would
// call b.ResetTimer and stop where it would call b.StopTimer.
type meter struct {
	b       *testing.B
	srv     *benchServer
	counted bool

	started, stopped bool
	cliCPU           time.Duration
	cliCalls         uint64
	srvStats         serverStats
}

// addr is the server's address.
func (m *meter) addr() string { return m.srv.Addr }

// fatalf fails the benchmark, with the server's stderr appended.
func (m *meter) fatalf(format string, args ...any) {
	m.b.Helper()
	m.b.Fatalf(format+"%s", append(args, m.srv.Log())...)
}

func (m *meter) start() {
	m.srvStats = m.srv.stats(m.b)
	m.cliCPU, m.cliCalls = testkit.CPUTime(m.b), sys.Total()
	m.started = true
	m.b.ResetTimer()
}

func (m *meter) stop() {
	m.b.StopTimer()
	cliCPU, cliCalls := testkit.CPUTime(m.b), sys.Total()
	st := m.srv.stats(m.b)
	m.stopped = true
	n := float64(m.b.N)
	m.b.ReportMetric(float64(st.cpu-m.srvStats.cpu)/n, "srv-cpu-ns/op")
	m.b.ReportMetric(float64(cliCPU-m.cliCPU)/n, "cli-cpu-ns/op")
	m.b.ReportMetric(float64(st.allocs-m.srvStats.allocs)/n, "srv-allocs/op")
	if m.counted {
		m.b.ReportMetric(float64(cliCalls-m.cliCalls+st.syscalls-m.srvStats.syscalls)/n, "syscalls/op")
	}
}

// forEachStack runs body as a sub-benchmark per stack against a server
// child process doing workload. The child is started once per stack and
// reused when the framework runs the sub-benchmark again with a larger
// b.N; it stops, and the client connections kept in its conns are closed,
// when b.Run returns (the framework is done with every b.N).
func forEachStack(b *testing.B, workload string, body func(b *testing.B, s stack, m *meter)) {
	forEachStackOf(b, stacks, workload, body)
}

// forEachStackOf is forEachStack over the stacks of list.
func forEachStackOf(b *testing.B, list []stack, workload string, body func(b *testing.B, s stack, m *meter)) {
	for _, s := range list {
		runStack(b, s, workload, body)
	}
}

func runStack(b *testing.B, s stack, workload string, body func(b *testing.B, s stack, m *meter)) {
	var srv *benchServer
	defer func() {
		if srv != nil {
			for _, c := range srv.conns {
				c.Close()
			}
			if err := srv.Stop(); err != nil {
				b.Errorf("the server: %v%s", err, srv.Log())
			}
		}
	}()
	b.Run("impl="+s.name, func(b *testing.B) {
		if srv == nil {
			srv = startBenchServer(b, s.name, workload)
		}
		b.ReportAllocs()
		m := &meter{b: b, srv: srv, counted: s.counted}
		body(b, s, m)
		if !m.started || !m.stopped {
			b.Fatal("benchmark body did not call both start and stop")
		}
	})
}

// BenchmarkAccept measures sequential connection set-up and tear-down: the
// client dials and waits for EOF, the server accepts and closes. One op is
// one whole connection.
func BenchmarkAccept(b *testing.B) {
	forEachStack(b, "accept", func(b *testing.B, s stack, m *meter) {
		var buf [1]byte
		m.start()
		for range b.N {
			c, err := s.dial(m.addr())
			if err != nil {
				m.fatalf("dial: %v", err)
			}
			if _, err := c.Read(buf[:]); err != io.EOF {
				m.fatalf("client Read = %v, want EOF", err)
			}
			c.Close()
		}
		m.stop()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	})
}

// BenchmarkPingPong measures one connection's round trip: a 64-byte
// request and its 64-byte echo. ns/op is one round trip; p50-ns and p99-ns
// are its percentiles. It runs over TCP loopback and over Unix sockets
// (impl=...-unix).
func BenchmarkPingPong(b *testing.B) {
	forEachStackOf(b, bothStacks, "echo", func(b *testing.B, s stack, m *meter) {
		c, err := s.dial(m.addr())
		if err != nil {
			m.fatalf("dial: %v", err)
		}
		defer c.Close()
		if err := pingOnce(c, make([]byte, 64)); err != nil {
			m.fatalf("first round trip: %v", err)
		}
		pingPong(b, c, m.start, m.stop)
	})
}

// pingPong times b.N 64-byte round trips over c, between start and stop,
// and reports their p50 and p99.
func pingPong(b *testing.B, c net.Conn, start, stop func()) {
	buf := make([]byte, 64)
	lat := make([]int64, b.N)
	b.SetBytes(64)
	start()
	for i := range b.N {
		t0 := time.Now()
		if err := pingOnce(c, buf); err != nil {
			b.Fatal(err)
		}
		lat[i] = int64(time.Since(t0))
	}
	stop()
	reportLatency(b, lat)
}

// pingOnce writes buf and reads as many bytes back into it.
func pingOnce(c net.Conn, buf []byte) error {
	if _, err := c.Write(buf); err != nil {
		return err
	}
	_, err := io.ReadFull(c, buf)
	return err
}

// reportLatency reports the p50 and p99 of round-trip times in ns.
func reportLatency(b *testing.B, lat []int64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
}

// BenchmarkPingPongInProcess is BenchmarkPingPong with both ends in this
// process. It answers a different question: what a round trip costs when
// client and server share one Go runtime (a proxy, a test, a sidecar
// linked in), where blocking calls on both ends compete for the same Ps.
// cpu-ns/op is the whole process, both ends.
func BenchmarkPingPongInProcess(b *testing.B) {
	for _, s := range stacks {
		b.Run("impl="+s.name, func(b *testing.B) {
			b.ReportAllocs()
			client, server, cleanup := connPair(b, s)
			defer cleanup()
			go testkit.Echo(server, 64)
			var calls uint64
			var cpu time.Duration
			pingPong(b, client, func() {
				calls, cpu = sys.Total(), testkit.CPUTime(b)
				b.ResetTimer()
			}, func() {
				b.StopTimer()
				b.ReportMetric(float64(testkit.CPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
				if s.counted {
					b.ReportMetric(float64(sys.Total()-calls)/float64(b.N), "syscalls/op")
				}
			})
		})
	}
}

// connPair dials a connection to a fresh listener of s in this process and
// returns both ends; cleanup closes everything.
func connPair(b *testing.B, s stack) (client, server net.Conn, cleanup func()) {
	l, err := s.listen()
	if err != nil {
		b.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = s.dial(l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server = testkit.WaitFor(b, accepted, "accept")
	if server == nil {
		b.Fatal("accept failed")
	}
	return client, server, func() {
		client.Close()
		server.Close()
		l.Close()
	}
}

// BenchmarkThroughput measures one direction of one connection: writes of
// the given size, read by the server into a 1 MiB buffer and dropped. The
// timer stops when the server has confirmed every byte. It runs over TCP
// loopback and over Unix sockets (impl=...-unix).
func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 64 << 10, 1 << 20} {
		b.Run("size="+sizeName(size), func(b *testing.B) {
			forEachStackOf(b, bothStacks, "sink", func(b *testing.B, s stack, m *meter) {
				c, err := s.dial(m.addr())
				if err != nil {
					m.fatalf("dial: %v", err)
				}
				defer c.Close()
				msg := make([]byte, size)
				var reply [8]byte
				b.SetBytes(int64(size))
				m.start()
				for range b.N {
					if _, err := c.Write(msg); err != nil {
						m.fatalf("write: %v", err)
					}
				}
				if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
					m.fatalf("CloseWrite: %v", err)
				}
				if _, err := io.ReadFull(c, reply[:]); err != nil {
					m.fatalf("reading the server's byte count: %v", err)
				}
				m.stop()
				if got, want := binary.BigEndian.Uint64(reply[:]), uint64(b.N)*uint64(size); got != want {
					m.fatalf("the server got %d bytes, want %d", got, want)
				}
			})
		})
	}
}

// BenchmarkSendfile copies a 256 MiB file to a connection with io.Copy,
// which makes netcore's Conn (and Go's net.TCPConn) hand the file to the
// kernel with sendfile(2); the server, in its own process, reads and drops
// it. One op is one whole file.
func BenchmarkSendfile(b *testing.B) {
	const size = 256 << 20
	path := filepath.Join(b.TempDir(), "file")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for range size / len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	for _, s := range stacks {
		if s.name == "netcore-blocking" {
			continue // the same sendfile(2), blocking: nothing new to compare
		}
		runStack(b, s, "sink", func(b *testing.B, s stack, m *meter) {
			b.SetBytes(size)
			m.start()
			for range b.N {
				c, err := s.dial(m.addr())
				if err != nil {
					m.fatalf("dial: %v", err)
				}
				f, err := os.Open(path)
				if err != nil {
					m.fatalf("open: %v", err)
				}
				n, err := io.Copy(c, f)
				f.Close()
				if err != nil || n != size {
					m.fatalf("io.Copy of the file = %d, %v", n, err)
				}
				var reply [8]byte
				c.(interface{ CloseWrite() error }).CloseWrite()
				if _, err := io.ReadFull(c, reply[:]); err != nil || binary.BigEndian.Uint64(reply[:]) != size {
					m.fatalf("the server's byte count: %x, %v", reply, err)
				}
				c.Close()
			}
			m.stop()
		})
	}
}

// BenchmarkEchoScale measures many connections at once, each doing 64-byte
// round trips with its own goroutine on the server: ns/op is per round
// trip across all of them, rt/s the aggregate rate. The connections are
// opened once per impl and reused as b.N grows.
func BenchmarkEchoScale(b *testing.B) {
	for _, conns := range []int{64, 1000} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			forEachStack(b, "echo", func(b *testing.B, s stack, m *meter) {
				for len(m.srv.conns) < conns {
					c, err := s.dial(m.addr())
					if err != nil {
						m.fatalf("dial %d: %v", len(m.srv.conns), err)
					}
					m.srv.conns = append(m.srv.conns, c)
					// One round trip: the server has the connection
					// before the timed section starts.
					if err := pingOnce(c, make([]byte, 64)); err != nil {
						m.fatalf("first round trip on connection %d: %v", len(m.srv.conns), err)
					}
				}
				var wg sync.WaitGroup
				errs := make(chan error, conns)
				m.start()
				for i, c := range m.srv.conns {
					n := b.N / conns
					if i < b.N%conns {
						n++
					}
					wg.Go(func() {
						buf := make([]byte, 64)
						for range n {
							if err := pingOnce(c, buf); err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				m.stop()
				close(errs)
				for err := range errs {
					m.fatalf("round trip: %v", err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
			})
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
