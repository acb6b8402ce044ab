package netcore_test

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
)

// BenchmarkLoopEcho is 64-byte echo round trips over many connections at
// once: the server is a Loop (impl=loop), or a goroutine per connection
// on Go's net or on netcore's Listener (impl=net, impl=netcore), the
// clients are goroutines in the same process. One op is one round trip.
// Besides cpu-ns/op (the whole process) it reports, for netcore's stacks,
// syscalls/op and the event loop's share: epoll_wait/op and epoll_ctl/op.
// In-process numbers favour no one reliably (both ends share one runtime);
// the cross-process comparison lives in benchmarks/. impl=loop-tls and
// impl=net-tls are the Loop (ServeTLS) and Go's net with crypto/tls, with
// crypto/tls clients.
func BenchmarkLoopEcho(b *testing.B) {
	for _, conns := range []int{1, 64, 1000} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			for _, impl := range []string{"loop", "netcore", "net", "loop-tls", "net-tls"} {
				b.Run("impl="+impl, func(b *testing.B) { benchLoopEcho(b, impl, conns) })
			}
		})
	}
}

func benchLoopEcho(b *testing.B, impl string, conns int) {
	b.ReportAllocs()
	var addr string
	var pki *testkit.PKI
	if strings.HasSuffix(impl, "-tls") {
		pki = testkit.NewPKI(b)
	}
	switch impl {
	case "loop", "loop-tls":
		l, err := netcore.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lp := &netcore.Loop{Handler: loopEcho(nil), Logger: quietLogger()}
		if pki != nil {
			go lp.ServeTLS(l, pki.ServerConfig())
		} else {
			go lp.Serve(l)
		}
		defer lp.Close()
		addr = l.Addr().String()
	default:
		listen := func() (net.Listener, error) { return net.Listen("tcp4", "127.0.0.1:0") }
		if impl == "netcore" {
			listen = func() (net.Listener, error) { return netcore.Listen("tcp4", "127.0.0.1:0") }
		}
		l, err := listen()
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		var wg sync.WaitGroup
		defer wg.Wait()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				if pki != nil {
					c = tls.Server(c, pki.ServerConfig())
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					testkit.Echo(c, 64)
				}()
			}
		}()
		addr = l.Addr().String()
	}
	clients := make([]net.Conn, conns)
	for i := range clients {
		var c net.Conn
		var err error
		if impl == "net" || pki != nil {
			c, err = net.Dial("tcp4", addr)
		} else {
			c, err = netcore.Dial("tcp4", addr)
		}
		if err != nil {
			b.Fatal(err)
		}
		if pki != nil {
			c = tls.Client(c, pki.ClientConfig())
		}
		defer c.Close()
		clients[i] = c
		buf := make([]byte, 64)
		c.Write(buf)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	calls0, waits0, ctls0 := sys.Total(), sys.Count(sys.OpEpollWait), sys.Count(sys.OpEpollCtl)
	cpu0 := testkit.CPUTime(b)
	b.ResetTimer()
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
	ops := float64(b.N)
	b.ReportMetric(ops/b.Elapsed().Seconds(), "rt/s")
	b.ReportMetric(float64(testkit.CPUTime(b)-cpu0)/ops, "cpu-ns/op")
	if impl == "loop" || impl == "netcore" || impl == "loop-tls" {
		b.ReportMetric(float64(sys.Total()-calls0)/ops, "syscalls/op")
	}
	if impl == "loop" || impl == "loop-tls" {
		b.ReportMetric(float64(sys.Count(sys.OpEpollWait)-waits0)/ops, "epoll_wait/op")
		b.ReportMetric(float64(sys.Count(sys.OpEpollCtl)-ctls0)/ops, "epoll_ctl/op")
	}
}

// A round trip through a Loop allocates nothing in steady state, on either
// end (the client is a netcore Conn, itself allocation-free).
func TestLoopZeroAllocsPerRequest(t *testing.T) {
	checkLeaks(t)
	addr := serveLoop(t, &netcore.Loop{Handler: loopEcho(nil), Loops: 1})
	c := dialLoop(t, addr)
	buf := make([]byte, 64)
	roundTrip := func() {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		roundTrip() // warm the pools
	}
	if n := testing.AllocsPerRun(1000, roundTrip); n != 0 {
		t.Errorf("a round trip through a Loop allocates %v times, want 0", n)
	}
}
