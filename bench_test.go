//go:build linux

package netcore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// A stack is one implementation under test: Go's net, netcore in its
// default mode, or netcore's blocking fast path. Every workload runs for
// each as sibling sub-benchmarks named impl=..., so one benchstat run
// compares them (benchstat -col /impl).
type stack struct {
	name     string
	counted  bool // netcore: syscalls/op come from the seam's counters
	listen   func() (net.Listener, error)
	dial     func(addr string) (net.Conn, error)
	blocking bool
}

var stacks = []stack{
	{
		name:   "net",
		listen: func() (net.Listener, error) { return net.Listen("tcp4", "127.0.0.1:0") },
		dial:   func(addr string) (net.Conn, error) { return net.Dial("tcp4", addr) },
	},
	{
		name:    "netcore",
		counted: true,
		listen:  func() (net.Listener, error) { return netcore.Listen("tcp4", "127.0.0.1:0") },
		dial:    func(addr string) (net.Conn, error) { return netcore.Dial("tcp4", addr) },
	},
	{
		name:     "netcore-blocking",
		counted:  true,
		blocking: true,
		listen: func() (net.Listener, error) {
			lc := netcore.ListenConfig{Blocking: true}
			return lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		},
		dial: func(addr string) (net.Conn, error) {
			d := netcore.Dialer{Blocking: true}
			return d.Dial("tcp4", addr)
		},
	},
}

// forEachStack runs body as a sub-benchmark per stack. body calls
// start() where it would call b.ResetTimer. From then on the process's CPU
// time (user + system, both ends of every connection, every thread) is
// reported as cpu-ns/op, which is far steadier on a VM than wall-clock
// time; for netcore, the system calls made are reported as syscalls/op.
func forEachStack(b *testing.B, body func(b *testing.B, s stack, start func())) {
	for _, s := range stacks {
		b.Run("impl="+s.name, func(b *testing.B) {
			b.ReportAllocs()
			var calls uint64
			var cpu time.Duration
			start := func() {
				calls, cpu = sys.Total(), cpuTime(b)
				b.ResetTimer()
			}
			body(b, s, start)
			if b.N == 0 {
				return
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
			if s.counted {
				b.ReportMetric(float64(sys.Total()-calls)/float64(b.N), "syscalls/op")
			}
		})
	}
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAccept measures sequential connection set-up and tear-down: the
// client dials and waits for EOF, the server accepts and closes. One op is
// one whole connection.
func BenchmarkAccept(b *testing.B) {
	forEachStack(b, func(b *testing.B, s stack, start func()) {
		l, err := s.listen()
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		served := make(chan error, 1)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						err = nil
					}
					served <- err
					return
				}
				c.Close()
			}
		}()
		addr := l.Addr().String()
		var buf [1]byte
		start()
		for range b.N {
			c, err := s.dial(addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf[:]); err != io.EOF {
				b.Fatalf("client Read = %v, want EOF", err)
			}
			c.Close()
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		l.Close()
		if err := <-served; err != nil {
			b.Fatal(err)
		}
	})
}

// connPair dials a connection to a fresh listener of s and returns both
// ends; cleanup closes everything.
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
	server = <-accepted
	if server == nil {
		b.Fatal("accept failed")
	}
	return client, server, func() {
		client.Close()
		server.Close()
		l.Close()
	}
}

// echo copies fixed-size messages back until the connection ends.
func echo(c net.Conn, size int) {
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// BenchmarkPingPong measures one connection's round trip: a 64-byte
// request and its 64-byte echo. ns/op is one round trip; p50-ns and p99-ns
// are its percentiles.
func BenchmarkPingPong(b *testing.B) {
	forEachStack(b, func(b *testing.B, s stack, start func()) {
		client, server, cleanup := connPair(b, s)
		defer cleanup()
		go echo(server, 64)
		msg := make([]byte, 64)
		reply := make([]byte, 64)
		lat := make([]int64, b.N)
		b.SetBytes(64)
		start()
		for i := range b.N {
			t0 := time.Now()
			if _, err := client.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(client, reply); err != nil {
				b.Fatal(err)
			}
			lat[i] = int64(time.Since(t0))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
	})
}

// BenchmarkThroughput measures one direction of one connection: writes of
// the given size, read by the peer into a 1 MiB buffer and dropped. The
// timer stops when the reader has every byte.
func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 64 << 10, 1 << 20} {
		b.Run("size="+sizeName(size), func(b *testing.B) {
			forEachStack(b, func(b *testing.B, s stack, start func()) {
				client, server, cleanup := connPair(b, s)
				defer cleanup()
				want := int64(b.N) * int64(size)
				got := make(chan int64, 1)
				go func() {
					buf := make([]byte, 1<<20)
					var n int64
					for n < want {
						m, err := server.Read(buf)
						n += int64(m)
						if err != nil {
							break
						}
					}
					got <- n
				}()
				msg := make([]byte, size)
				b.SetBytes(int64(size))
				start()
				for range b.N {
					if _, err := client.Write(msg); err != nil {
						b.Fatal(err)
					}
				}
				if n := <-got; n != want {
					b.Fatalf("reader got %d bytes, want %d", n, want)
				}
			})
		})
	}
}

// BenchmarkEchoScale measures many connections at once, each doing 64-byte
// round trips to its own echo goroutine: ns/op is per round trip across
// all of them, rt/s the aggregate rate.
func BenchmarkEchoScale(b *testing.B) {
	for _, conns := range []int{64, 1000} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			forEachStack(b, func(b *testing.B, s stack, start func()) {
				l, err := s.listen()
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				clients := make([]net.Conn, conns)
				for i := range clients {
					accepted := make(chan net.Conn, 1)
					go func() {
						c, _ := l.Accept()
						accepted <- c
					}()
					c, err := s.dial(l.Addr().String())
					if err != nil {
						b.Fatal(err)
					}
					srv := <-accepted
					if srv == nil {
						b.Fatal("accept failed")
					}
					go echo(srv, 64)
					defer srv.Close()
					defer c.Close()
					clients[i] = c
				}
				var wg sync.WaitGroup
				errs := make(chan error, conns)
				start()
				for i, c := range clients {
					n := b.N / conns
					if i < b.N%conns {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						buf := make([]byte, 64)
						for range n {
							if _, err := c.Write(buf); err != nil {
								errs <- err
								return
							}
							if _, err := io.ReadFull(c, buf); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				close(errs)
				for err := range errs {
					b.Fatal(err)
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
