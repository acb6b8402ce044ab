//go:build linux

package netcore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

func TestEchoByteExact(t *testing.T) {
	t.Parallel()
	nets := []struct{ name, listenNet, listenAddr, dialNet, dialHost string }{
		{"tcp4", "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1"},
		{"tcp6", "tcp6", "[::1]:0", "tcp6", "::1"},
		{"dual-stack/v4", "tcp", ":0", "tcp", "127.0.0.1"},
		{"dual-stack/v6", "tcp", ":0", "tcp", "::1"},
	}
	sizes := []int{0, 1, 64<<10 + 1, 16 << 20}
	for _, nt := range nets {
		for _, size := range sizes {
			t.Run(nt.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				t.Parallel()
				l := testkit.Listen(t, nt.listenNet, nt.listenAddr)
				errc := testkit.EchoOnce(l)
				addr := net.JoinHostPort(nt.dialHost, strconv.Itoa(int(l.Sockaddr().Port())))
				c, err := netcore.Dial(nt.dialNet, addr)
				if err != nil {
					if nt.dialHost == "::1" {
						t.Skipf("no IPv6 here: %v", err)
					}
					t.Fatalf("Dial(%q, %q): %v", nt.dialNet, addr, err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(testkit.Timeout))

				testkit.CheckEcho(t, c, size)
				if err := <-errc; err != nil {
					t.Fatalf("echo server: %v", err)
				}
			})
		}
	}
}

func TestAddressesAgree(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ network, address string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
	} {
		t.Run(tt.network, func(t *testing.T) {
			t.Parallel()
			client, server, _ := testkit.ModePair(t, false, tt.network, tt.address)
			if got, want := server.RemoteSockaddr(), client.LocalSockaddr(); got != want {
				t.Errorf("server sees the peer as %v, client's local address is %v", got, want)
			}
			if got, want := client.RemoteSockaddr(), server.LocalSockaddr(); got != want {
				t.Errorf("client sees the peer as %v, server's local address is %v", got, want)
			}
			if server.LocalSockaddr().Port() == 0 || client.LocalSockaddr().Port() == 0 {
				t.Errorf("a port 0 in %v / %v", server.LocalSockaddr(), client.LocalSockaddr())
			}
			if got, want := client.RemoteAddr().String(), client.RemoteSockaddr().String(); got != want {
				t.Errorf("RemoteAddr() = %q, RemoteSockaddr() = %q", got, want)
			}
			if _, ok := client.LocalAddr().(*net.TCPAddr); !ok {
				t.Errorf("LocalAddr() is a %T, want *net.TCPAddr", client.LocalAddr())
			}
			// getpeername agrees with what accept4 reported.
			var peer netcore.Sockaddr
			rc, _ := server.SyscallConn()
			rc.Control(func(fd uintptr) {
				usa, err := unix.Getpeername(int(fd))
				if err != nil {
					t.Errorf("getpeername: %v", err)
					return
				}
				peer, _ = netcore.SockaddrFromUnix(usa)
			})
			if peer != server.RemoteSockaddr() {
				t.Errorf("getpeername says %v, Accept said %v", peer, server.RemoteSockaddr())
			}
		})
	}
}

func TestDualStackPeers(t *testing.T) {
	t.Parallel()
	for _, keep := range []bool{false, true} {
		t.Run("KeepMapped="+strconv.FormatBool(keep), func(t *testing.T) {
			t.Parallel()
			lc := netcore.ListenConfig{KeepMapped: keep}
			l, err := lc.Listen(context.Background(), "tcp", "[::]:0")
			if err != nil {
				t.Skipf("no dual-stack IPv6 here: %v", err)
			}
			defer l.Close()
			if !l.Sockaddr().Is6() || !l.Sockaddr().Addr().IsUnspecified() {
				t.Fatalf("Listen(tcp, [::]:0).Addr() = %v, want [::]:port", l.Sockaddr())
			}
			c, err := netcore.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(int(l.Sockaddr().Port())))
			if err != nil {
				t.Fatalf("Dial over IPv4 to a dual-stack listener: %v", err)
			}
			defer c.Close()
			l.SetDeadline(time.Now().Add(testkit.Timeout))
			s, err := l.AcceptConn()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			want := c.LocalSockaddr() // 127.0.0.1:port
			if keep {
				want = netcore.SockaddrFrom16(netip4in6(want), want.Port(), 0)
			}
			if got := s.RemoteSockaddr(); got != want {
				t.Errorf("peer = %v, want %v", got, want)
			}
			if got := s.LocalSockaddr(); got.Is4() == keep {
				t.Errorf("local address %v: Is4 = %v with KeepMapped %v", got, got.Is4(), keep)
			}
		})
	}
}

func netip4in6(sa netcore.Sockaddr) [16]byte { return sa.As16() }

func TestV6OnlyRefusesIPv4(t *testing.T) {
	t.Parallel()
	lc := netcore.ListenConfig{V6Only: true}
	l, err := lc.Listen(context.Background(), "tcp", "[::]:0")
	if err != nil {
		t.Skipf("no IPv6 here: %v", err)
	}
	defer l.Close()
	c, err := netcore.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(int(l.Sockaddr().Port())))
	if err == nil {
		c.Close()
		t.Fatal("an IPv4 dial reached a V6Only listener")
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("Dial error = %v, want ECONNREFUSED", err)
	}
}

func TestSourceAddress(t *testing.T) {
	t.Parallel()
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	for _, src := range []string{"127.0.0.2:0", "127.0.0.1:0"} {
		t.Run(src, func(t *testing.T) {
			d := netcore.Dialer{LocalAddr: netcore.MustParseSockaddr(src), Timeout: testkit.Timeout}
			accepted := make(chan *netcore.Conn, 1)
			go func() {
				s, err := l.AcceptConn()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- s
			}()
			c, err := d.Dial("tcp4", l.Addr().String())
			if err != nil {
				if errors.Is(err, unix.EADDRNOTAVAIL) {
					t.Skipf("cannot bind %s here: %v", src, err)
				}
				t.Fatalf("Dial from %s: %v", src, err)
			}
			defer c.Close()
			var s *netcore.Conn
			select {
			case s = <-accepted:
			case <-time.After(testkit.Timeout):
				t.Fatal("no connection accepted")
			}
			if s == nil {
				t.Fatal("Accept failed")
			}
			defer s.Close()
			if got, want := s.RemoteSockaddr().Addr(), d.LocalAddr.Addr(); got != want {
				t.Errorf("server sees the peer at %v, want source %v", got, want)
			}
			if s.RemoteSockaddr() != c.LocalSockaddr() || c.LocalSockaddr().Port() == 0 {
				t.Errorf("server sees %v, client's local address is %v", s.RemoteSockaddr(), c.LocalSockaddr())
			}
		})
	}
}

func TestSourceAddressWithPort(t *testing.T) {
	t.Parallel()
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	// Learn a free port by binding one, then use it as the source.
	probe := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	port := probe.Sockaddr().Port()
	probe.Close()
	d := netcore.Dialer{LocalAddr: netcore.SockaddrFrom4([4]byte{127, 0, 0, 1}, port), Timeout: testkit.Timeout}
	c, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatalf("Dial from %v: %v", d.LocalAddr, err)
	}
	defer c.Close()
	if got := c.LocalSockaddr(); got != d.LocalAddr {
		t.Errorf("LocalSockaddr() = %v, want %v", got, d.LocalAddr)
	}
}

func TestDevice(t *testing.T) {
	t.Parallel()
	lc := netcore.ListenConfig{Device: "lo"}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("SO_BINDTODEVICE needs CAP_NET_RAW: %v", err)
		}
		t.Fatalf("Listen with Device lo: %v", err)
	}
	defer l.Close()
	errc := testkit.EchoOnce(l)
	d := netcore.Dialer{Device: "lo", Timeout: testkit.Timeout}
	c, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatalf("Dial with Device lo: %v", err)
	}
	defer c.Close()
	rc, _ := c.SyscallConn()
	var dev string
	rc.Control(func(fd uintptr) { dev, err = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE) })
	if err != nil || dev != "lo" {
		t.Errorf("SO_BINDTODEVICE = %q, %v; want lo", dev, err)
	}
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	c.Write([]byte("ping"))
	c.CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != "ping" {
		t.Errorf("echo over lo = %q, %v", got, err)
	}
	if err := <-errc; err != nil {
		t.Error(err)
	}
	lc = netcore.ListenConfig{Device: "no-such-if0"}
	if l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Error("Listen with an unknown device succeeded")
	}
}

// TestReuseAddrAfterTimeWait restarts a server on its port while the
// connection it closed first sits in TIME_WAIT.
func TestReuseAddrAfterTimeWait(t *testing.T) {
	t.Parallel()
	l, err := netcore.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	c, err := netcore.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.SetDeadline(time.Now().Add(testkit.Timeout))
	s, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the server closes first: its side goes to TIME_WAIT
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client Read after the server closed = %v, want EOF", err)
	}
	c.Close()
	l.Close()
	l2, err := netcore.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("Listen again on %s with a connection in TIME_WAIT: %v", addr, err)
	}
	l2.Close()
}

func TestReusePort(t *testing.T) {
	t.Parallel()
	lc := netcore.ListenConfig{ReusePort: true}
	l1, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := lc.Listen(context.Background(), "tcp4", l1.Addr().String())
	if err != nil {
		t.Fatalf("second ReusePort listener on %v: %v", l1.Addr(), err)
	}
	l2.Close()
	// Without SO_REUSEPORT the port is taken.
	l3, err := netcore.Listen("tcp4", l1.Addr().String())
	if err == nil {
		l3.Close()
		t.Fatal("a second listener without ReusePort bound a port in use")
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("Listen on a port in use: %v, want EADDRINUSE", err)
	}
}

func TestListenBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct{ network, address string }{
		{"udp", "127.0.0.1:0"},
		{"tcp", "127.0.0.1"},
		{"tcp", "127.0.0.1:65536"},
		{"tcp", "127.0.0.1:-1"},
		{"tcp", "300.1.1.1:0"},
		{"tcp6", "127.0.0.1:0"},
		{"tcp4", "192.0.2.1:0"}, // not an address of this machine
	}
	for _, tt := range tests {
		t.Run(tt.network+"/"+tt.address, func(t *testing.T) {
			l, err := netcore.Listen(tt.network, tt.address)
			if err == nil {
				l.Close()
				t.Fatalf("Listen(%q, %q) succeeded", tt.network, tt.address)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "listen" {
				t.Errorf("Listen(%q, %q) error %v is not a listen *net.OpError", tt.network, tt.address, err)
			}
		})
	}
	for _, tt := range tests[:6] {
		if c, err := netcore.Dial(tt.network, tt.address); err == nil {
			c.Close()
			t.Errorf("Dial(%q, %q) succeeded", tt.network, tt.address)
		} else if !bytes.Contains([]byte(err.Error()), []byte(tt.address)) && tt.network != "tcp6" {
			t.Errorf("Dial(%q, %q) error %q does not name the address", tt.network, tt.address, err)
		}
	}
}

func TestDialLocalhostName(t *testing.T) {
	t.Parallel()
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	errc := testkit.EchoOnce(l)
	c, err := netcore.Dial("tcp", "localhost:"+strconv.Itoa(int(l.Sockaddr().Port())))
	if err != nil {
		t.Fatalf("Dial(localhost): %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	c.Write([]byte("hi"))
	c.CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != "hi" {
		t.Errorf("echo = %q, %v; want \"hi\"", got, err)
	}
	if err := <-errc; err != nil {
		t.Error(err)
	}
}

// fullListener returns the address of a listener whose accept queue is
// full, so that a new connect(2) stays in progress (the kernel drops its
// SYNs) until it is cancelled.
func fullListener(t *testing.T) string {
	t.Helper()
	lc := netcore.ListenConfig{Backlog: 1}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	// The queue takes Backlog+1 connections; a few more to be sure.
	for range 4 {
		d := netcore.Dialer{Timeout: 200 * time.Millisecond}
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			break // the queue is full already
		}
		t.Cleanup(func() { c.Close() })
	}
	return l.Addr().String()
}

func TestDialTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	addr := fullListener(t)
	for _, blocking := range []bool{false, true} {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			t.Parallel()
			d := netcore.Dialer{Timeout: 100 * time.Millisecond, Blocking: blocking}
			c, err := d.Dial("tcp4", addr)
			if err == nil {
				c.Close()
				t.Skip("the kernel completed a connect to a full accept queue (SYN cookies?): cannot test a timeout here")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Dial with Timeout to a full queue: %v, want context.DeadlineExceeded", err)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("Dial timeout error %v is not a net.Error with Timeout()", err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				d := netcore.Dialer{Blocking: blocking}
				c, err := d.DialContext(ctx, "tcp4", addr)
				if err == nil {
					c.Close()
				}
				done <- err
			}()
			cancel()
			if err := testkit.WaitFor(t, done, "the cancelled dial returning"); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled DialContext: %v, want context.Canceled", err)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			t.Parallel()
			client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			client.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, err := client.Read(make([]byte, 1))
			if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read past its deadline = %d, %v; want os.ErrDeadlineExceeded", n, err)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("deadline error %v is not a net.Error with Timeout()", err)
			}
			// The connection still works after a deadline passed, and
			// with the deadline removed Read waits again.
			client.SetReadDeadline(time.Time{})
			if _, err := server.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if n, err := client.Read(make([]byte, 1)); n != 1 || err != nil {
				t.Fatalf("Read after removing the deadline = %d, %v", n, err)
			}

			// A write deadline bounds a Write that cannot finish: the peer
			// reads nothing and the buffers are small.
			client.SetWriteBuffer(4096)
			server.SetReadBuffer(4096)
			client.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			n, err = client.Write(make([]byte, 8<<20))
			if !errors.Is(err, os.ErrDeadlineExceeded) || n >= 8<<20 {
				t.Fatalf("Write of 8 MiB to a peer that does not read = %d, %v; want os.ErrDeadlineExceeded", n, err)
			}
			// A deadline in the past fails at once, even with data waiting.
			server.Write([]byte("y"))
			client.SetReadDeadline(time.Now().Add(-time.Second))
			if _, err := client.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Read with a past deadline = %v, want os.ErrDeadlineExceeded", err)
			}

			l := testkit.ListenMode(t, blocking)
			l.SetDeadline(time.Now().Add(20 * time.Millisecond))
			if c, err := l.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("Accept past its deadline = %v, want os.ErrDeadlineExceeded", err)
			}
		})
	}
}

func TestClosedConn(t *testing.T) {
	t.Parallel()
	client, _, _ := testkit.ModePair(t, false, "tcp4", "127.0.0.1:0")
	if err := client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := client.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	checks := map[string]error{}
	_, checks["Read"] = client.Read(make([]byte, 1))
	_, checks["Write"] = client.Write([]byte("x"))
	checks["SetDeadline"] = client.SetDeadline(time.Now())
	checks["CloseWrite"] = client.CloseWrite()
	checks["SetNoDelay"] = client.SetNoDelay(true)
	_, checks["SyscallConn"] = client.SyscallConn()
	for name, err := range checks {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close = %v, want net.ErrClosed", name, err)
		}
	}
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	l.Close()
	if err := l.Close(); err != nil {
		t.Errorf("second Listener.Close = %v, want nil", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

func TestHalfClose(t *testing.T) {
	t.Parallel()
	client, server, _ := testkit.ModePair(t, false, "tcp4", "127.0.0.1:0")
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("server Read after client CloseWrite = %d, %v; want 0, EOF", n, err)
	}
	// The other direction still works.
	if _, err := server.Write([]byte("late")); err != nil {
		t.Fatalf("server Write after the client's CloseWrite: %v", err)
	}
	buf := make([]byte, 8)
	if n, err := io.ReadFull(client, buf[:4]); n != 4 || err != nil || string(buf[:4]) != "late" {
		t.Fatalf("client Read = %q, %v; want \"late\"", buf[:n], err)
	}
	if err := server.CloseRead(); err != nil {
		t.Errorf("CloseRead: %v", err)
	}
}

func getsockopt(t *testing.T, c *netcore.Conn, level, name int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), level, name) })
	if err != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, name, err)
	}
	return v
}

func TestOptions(t *testing.T) {
	t.Parallel()
	client, server, _ := testkit.ModePair(t, false, "tcp4", "127.0.0.1:0")
	for name, c := range map[string]*netcore.Conn{"client": client, "server": server} {
		if getsockopt(t, c, unix.IPPROTO_TCP, unix.TCP_NODELAY) == 0 {
			t.Errorf("%s: TCP_NODELAY is off by default, want on (as in Go's net)", name)
		}
	}
	steps := []struct {
		name        string
		set         func() error
		level, opt  int
		check       func(int) bool
		description string
	}{
		{"NoDelay off", func() error { return client.SetNoDelay(false) }, unix.IPPROTO_TCP, unix.TCP_NODELAY, func(v int) bool { return v == 0 }, "0"},
		{"KeepAlive", func() error { return client.SetKeepAlive(true) }, unix.SOL_SOCKET, unix.SO_KEEPALIVE, func(v int) bool { return v == 1 }, "1"},
		{"KeepAlivePeriod", func() error { return client.SetKeepAlivePeriod(1500 * time.Millisecond) }, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, func(v int) bool { return v == 2 }, "2 (rounded up)"},
		{"ReadBuffer", func() error { return client.SetReadBuffer(64 << 10) }, unix.SOL_SOCKET, unix.SO_RCVBUF, func(v int) bool { return v >= 64<<10 }, ">= 64 KiB"},
		{"WriteBuffer", func() error { return client.SetWriteBuffer(64 << 10) }, unix.SOL_SOCKET, unix.SO_SNDBUF, func(v int) bool { return v >= 64<<10 }, ">= 64 KiB"},
	}
	for _, s := range steps {
		if err := s.set(); err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if v := getsockopt(t, client, s.level, s.opt); !s.check(v) {
			t.Errorf("%s: option reads %d, want %s", s.name, v, s.description)
		}
	}
	if err := client.SetLinger(3); err != nil {
		t.Fatal(err)
	}
	rc, _ := client.SyscallConn()
	var lg *unix.Linger
	var err error
	rc.Control(func(fd uintptr) { lg, err = unix.GetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER) })
	if err != nil || lg.Onoff != 1 || lg.Linger != 3 {
		t.Errorf("SO_LINGER = %+v, %v; want on, 3", lg, err)
	}
}

// Control has net's signature: code written for net.ListenConfig.Control
// and net.Dialer.Control runs unchanged, and gets what Go's net passes
// (the network with its family, the address, a RawConn on the socket
// before bind or connect).
// The address Control gets on a wildcard or empty host is spelled as Go's
// net spells it.
func TestListenConfigControlAddress(t *testing.T) {
	t.Parallel()
	type call struct{ Network, Address string }
	record := func(got *[]call) func(string, string, syscall.RawConn) error {
		return func(network, address string, _ syscall.RawConn) error {
			*got = append(*got, call{network, address})
			return nil
		}
	}
	for _, tc := range []struct{ network, address string }{
		{"tcp", ":0"}, {"tcp", "0.0.0.0:0"}, {"tcp", "[::]:0"}, {"tcp", "127.0.0.1:0"},
		{"tcp4", ":0"}, {"tcp4", "0.0.0.0:0"}, {"tcp6", ":0"}, {"unix", ""},
	} {
		var netL, ncL []call
		nl, err := (&net.ListenConfig{Control: record(&netL)}).Listen(context.Background(), tc.network, tc.address)
		if err != nil {
			t.Logf("net cannot listen on %s %q here: %v", tc.network, tc.address, err)
			continue
		}
		nl.Close()
		l, err := (&netcore.ListenConfig{Control: record(&ncL)}).Listen(context.Background(), tc.network, tc.address)
		if err != nil {
			t.Errorf("Listen(%q, %q): %v (net's works)", tc.network, tc.address, err)
			continue
		}
		l.Close()
		if diff := cmp.Diff(netL, ncL); diff != "" {
			t.Errorf("Listen(%q, %q): Control's arguments differ (-net +netcore):\n%s", tc.network, tc.address, diff)
		}
	}
}

func TestDialerAndListenConfigControl(t *testing.T) {
	t.Parallel()
	type call struct {
		Network, Address string
		FDOK, ReadOK     bool
	}
	record := func(got *[]call) func(string, string, syscall.RawConn) error {
		return func(network, address string, c syscall.RawConn) error {
			var fd int = -1
			if err := c.Control(func(s uintptr) { fd = int(s) }); err != nil {
				return err
			}
			rerr := c.Read(func(uintptr) bool { return true })
			*got = append(*got, call{network, address, fd > 2, rerr == nil})
			return nil
		}
	}
	for _, tc := range []struct{ network, address string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
		{"unix", "@netcore-control-" + strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.network, func(t *testing.T) {
			var netL, ncL, netD, ncD []call
			nl, err := (&net.ListenConfig{Control: record(&netL)}).Listen(context.Background(), tc.network, tc.address)
			if err != nil {
				if tc.network == "tcp6" {
					t.Skipf("no IPv6 here: %v", err)
				}
				t.Fatal(err)
			}
			defer nl.Close()
			address := tc.address
			if tc.network == "unix" {
				address += "-netcore" // net's listener has the first name
			}
			l, err := (&netcore.ListenConfig{Control: record(&ncL)}).Listen(context.Background(), tc.network, address)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if c, err := (&net.Dialer{Control: record(&netD)}).Dial(tc.network, nl.Addr().String()); err != nil {
				t.Fatal(err)
			} else {
				c.Close()
			}
			if c, err := (&netcore.Dialer{Control: record(&ncD)}).Dial(tc.network, l.Addr().String()); err != nil {
				t.Fatal(err)
			} else {
				c.Close()
			}
			// The addresses differ (two listeners); the rest must not.
			norm := func(cs []call) []call {
				for i := range cs {
					cs[i].Address = ""
				}
				return cs
			}
			if len(ncL) != 1 || ncL[0].Address != address {
				t.Errorf("netcore ListenConfig.Control calls: %+v, want one with address %q", ncL, address)
			}
			if len(ncD) != 1 || ncD[0].Address != l.Addr().String() {
				t.Errorf("netcore Dialer.Control calls: %+v, want one with the destination %q", ncD, l.Addr())
			}
			if diff := cmp.Diff(norm(netL), norm(ncL)); diff != "" {
				t.Errorf("ListenConfig.Control: net and netcore differ (-net +netcore):\n%s", diff)
			}
			if diff := cmp.Diff(norm(netD), norm(ncD)); diff != "" {
				t.Errorf("Dialer.Control: net and netcore differ (-net +netcore):\n%s", diff)
			}
		})
	}
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	boom := errors.New("boom")
	fail := func(string, string, syscall.RawConn) error { return boom }
	if _, err := (&netcore.Dialer{Control: fail}).Dial("tcp4", l.Addr().String()); !errors.Is(err, boom) {
		t.Errorf("Dial with a failing Control = %v, want it to wrap %v", err, boom)
	}
	if _, err := (&netcore.ListenConfig{Control: fail}).Listen(context.Background(), "tcp4", "127.0.0.1:0"); !errors.Is(err, boom) {
		t.Errorf("Listen with a failing Control = %v, want it to wrap %v", err, boom)
	}
}

func TestRefusedErrorShape(t *testing.T) {
	t.Parallel()
	// A port just closed, which another test process may take before the
	// dial (then the dial succeeds): another port, a few times at most.
	var addr string
	var err error
	for range 10 {
		l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
		addr = l.Addr().String()
		l.Close()
		var c *netcore.Conn
		if c, err = netcore.Dial("tcp4", addr); err == nil {
			c.Close()
			continue
		}
		break
	}
	var oe *net.OpError
	var se *os.SyscallError
	if !errors.As(err, &oe) || oe.Op != "dial" || !errors.As(err, &se) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial to a closed port = %#v, want *net.OpError{Op: dial} around *os.SyscallError(ECONNREFUSED)", err)
	}
	if oe.Addr == nil || oe.Addr.String() != addr {
		t.Errorf("OpError.Addr = %v, want %s", oe.Addr, addr)
	}
}

// TestSocketFlags: every socket is close-on-exec; in the default mode it
// is non-blocking (the poller's), in the fast path blocking.
func TestSocketFlags(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			t.Parallel()
			client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			l := testkit.ListenMode(t, blocking)
			for name, rc := range map[string]syscall.RawConn{"client": testkit.MustRaw(t, client), "server": testkit.MustRaw(t, server), "listener": testkit.MustRaw(t, l)} {
				var fdFlags, flFlags int
				var err1, err2 error
				rc.Control(func(fd uintptr) {
					fdFlags, err1 = unix.FcntlInt(fd, unix.F_GETFD, 0)
					flFlags, err2 = unix.FcntlInt(fd, unix.F_GETFL, 0)
				})
				if err1 != nil || err2 != nil {
					t.Fatalf("%s: fcntl: %v, %v", name, err1, err2)
				}
				if fdFlags&unix.FD_CLOEXEC == 0 {
					t.Errorf("%s: FD_CLOEXEC is off", name)
				}
				if nonblock := flFlags&unix.O_NONBLOCK != 0; nonblock == blocking {
					t.Errorf("%s: O_NONBLOCK = %v in %s mode", name, nonblock, testkit.ModeName(blocking))
				}
			}
		})
	}
}

// TestDialerOptions: KeepAlive and a port-0 source address reach the
// socket (SO_KEEPALIVE with its period, IP_BIND_ADDRESS_NO_PORT).
func TestDialerOptions(t *testing.T) {
	t.Parallel()
	l := testkit.Listen(t, "tcp4", "127.0.0.1:0")
	d := netcore.Dialer{KeepAlive: 7 * time.Second, LocalAddr: netcore.MustParseSockaddr("127.0.0.1:0"), Timeout: testkit.Timeout}
	c, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 7},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 7},
		{"IP_BIND_ADDRESS_NO_PORT", unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1},
	} {
		if got := getsockopt(t, c, o.level, o.opt); got != o.want {
			t.Errorf("%s = %d, want %d", o.name, got, o.want)
		}
	}
}

// TestSteadyStateAllocations: once a connection is set up, Read and Write
// allocate nothing, in either mode.
func TestSteadyStateAllocations(t *testing.T) {
	for _, blocking := range testkit.Modes {
		client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
		msg, buf := make([]byte, 64), make([]byte, 64)
		roundTrip := func() {
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(server, buf); err != nil {
				t.Fatal(err)
			}
		}
		roundTrip() // the first call binds the callbacks
		if n := testing.AllocsPerRun(200, roundTrip); n != 0 {
			t.Errorf("%s: a Write and a Read allocate %v times, want 0", testkit.ModeName(blocking), n)
		}
	}
}
