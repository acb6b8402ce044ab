package netcore_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"
)

// unixStack is one implementation of Listen and Dial: Go's net or netcore.
type unixStack struct {
	name   string
	listen func(address string) (net.Listener, error)
	dial   func(address string) (net.Conn, error)
}

var goAndNetcore = []unixStack{
	{"net", func(a string) (net.Listener, error) { return net.Listen("unix", a) },
		func(a string) (net.Conn, error) { return net.Dial("unix", a) }},
	{"netcore", func(a string) (net.Listener, error) { return netcore.Listen("unix", a) },
		func(a string) (net.Conn, error) { return netcore.Dial("unix", a) }},
}

// unixAddrs is what a user sees of one connection: the listener's address
// and both ends' addresses from both sides.
type unixAddrs struct {
	Listener, ClientLocal, ClientRemote, ServerLocal, ServerRemote string
}

func addrText(a net.Addr) string {
	if a == nil {
		return "<nil>"
	}
	return a.Network() + ":" + a.String()
}

// connectUnix listens on address with st, dials the listener's address,
// and reports the addresses, which must all be *net.UnixAddr.
func connectUnix(t *testing.T, st unixStack, address string) unixAddrs {
	t.Helper()
	l, err := st.listen(address)
	if err != nil {
		t.Fatalf("%s: Listen(unix, %q): %v", st.name, address, err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := st.dial(l.Addr().String())
	if err != nil {
		t.Fatalf("%s: Dial(unix, %q): %v", st.name, l.Addr(), err)
	}
	defer c.Close()
	s := testkit.WaitFor(t, accepted, st.name+" Accept")
	if s == nil {
		t.Fatalf("%s: Accept failed", st.name)
	}
	defer s.Close()
	for _, a := range []net.Addr{l.Addr(), c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr()} {
		if _, ok := a.(*net.UnixAddr); !ok {
			t.Errorf("%s: address %v is a %T, want *net.UnixAddr", st.name, a, a)
		}
	}
	got := unixAddrs{addrText(l.Addr()), addrText(c.LocalAddr()), addrText(c.RemoteAddr()), addrText(s.LocalAddr()), addrText(s.RemoteAddr())}
	if address == "" {
		// Autobind: the kernel's name differs per socket; its form is
		// what must agree.
		if !strings.HasPrefix(got.Listener, "unix:@") || got.Listener != got.ClientRemote || got.Listener != got.ServerLocal {
			t.Errorf("%s: autobind addresses %+v", st.name, got)
		}
		got.Listener, got.ClientRemote, got.ServerLocal = "auto", "auto", "auto"
	}
	return got
}

// TestUnixAsGoNet runs the same Unix-socket scenarios against Go's net and
// netcore and checks that a user sees the same: the addresses (paths,
// abstract names, autobind, the unnamed client shown as "@"), the socket
// file removed at Close unless SetUnlinkOnClose(false), and the errors of
// a path too long for sun_path, a missing socket, a path in use and an
// empty address.
func TestUnixAsGoNet(t *testing.T) {
	t.Run("addresses", func(t *testing.T) {
		for _, kind := range []string{"path", "abstract", "autobind"} {
			var want unixAddrs
			for i, st := range goAndNetcore {
				address := ""
				switch kind {
				case "path":
					address = testkit.UnixPath(t)
				case "abstract":
					address = testkit.AbstractName()
				}
				got := connectUnix(t, st, address)
				if kind != "autobind" {
					got = unixAddrs(replaceAll(got, address, "ADDR"))
				}
				if i == 0 {
					want = got
				} else if got != want {
					t.Errorf("%s: %s addresses %+v, Go's net %+v", kind, st.name, got, want)
				}
			}
		}
	})
	t.Run("unlink", func(t *testing.T) {
		for _, st := range goAndNetcore {
			for _, keep := range []bool{false, true} {
				path := testkit.UnixPath(t)
				l, err := st.listen(path)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("%s: the socket file is not there after Listen: %v", st.name, err)
				}
				if keep {
					l.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
				}
				if err := l.Close(); err != nil {
					t.Fatalf("%s: Close: %v", st.name, err)
				}
				_, err = os.Stat(path)
				if keep != (err == nil) {
					t.Errorf("%s: SetUnlinkOnClose(%v): after Close, Stat = %v", st.name, !keep, err)
				}
				if _, err := st.listen(path); keep && !errors.Is(err, syscall.EADDRINUSE) {
					t.Errorf("%s: Listen on a path left behind = %v, want EADDRINUSE", st.name, err)
				}
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		long := "/tmp/" + strings.Repeat("x", 103) // 108 bytes: no room for the NUL
		missing := testkit.UnixPath(t)
		inUse := testkit.Listen(t, "unix", testkit.UnixPath(t)).Addr().String()
		cases := []struct {
			name, op, address string
			want              error
		}{
			{"listen too long", "listen", long, syscall.EINVAL},
			{"dial too long", "dial", long, syscall.EINVAL},
			{"dial missing", "dial", missing, syscall.ENOENT},
			{"listen in use", "listen", inUse, syscall.EADDRINUSE},
			{"dial empty", "dial", "", nil},
		}
		for _, tc := range cases {
			for _, st := range goAndNetcore {
				var err error
				if tc.op == "listen" {
					var l net.Listener
					if l, err = st.listen(tc.address); err == nil {
						l.Close()
					}
				} else {
					var c net.Conn
					if c, err = st.dial(tc.address); err == nil {
						c.Close()
					}
				}
				var oe *net.OpError
				if !errors.As(err, &oe) || oe.Op != tc.op || oe.Net != "unix" {
					t.Errorf("%s: %s: %v (%T), want a *net.OpError for %s unix", tc.name, st.name, err, err, tc.op)
					continue
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("%s: %s: %v, want it to match %v", tc.name, st.name, err, tc.want)
				}
				if tc.address != "" && st.name == "netcore" && !strings.Contains(err.Error(), tc.address) {
					t.Errorf("%s: %s: %q does not quote the path", tc.name, st.name, err)
				}
			}
		}
	})
}

func replaceAll(a unixAddrs, old, new string) unixAddrs {
	r := strings.NewReplacer(old, new)
	return unixAddrs{r.Replace(a.Listener), r.Replace(a.ClientLocal), r.Replace(a.ClientRemote), r.Replace(a.ServerLocal), r.Replace(a.ServerRemote)}
}

// TestUnixNoLeaks: connections over path and abstract Unix sockets, in
// both modes, echo their bytes; afterwards every descriptor and goroutine
// is gone, and so is the socket file.
func TestUnixNoLeaks(t *testing.T) {
	checkLeaks(t)
	for _, blocking := range testkit.Modes {
		for _, address := range []string{testkit.UnixPath(t), testkit.AbstractName()} {
			lc := netcore.ListenConfig{Blocking: blocking}
			l, err := lc.Listen(context.Background(), "unix", address)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					c, err := l.AcceptConn()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						io.Copy(c, c)
						c.CloseWrite()
					}()
				}
			}()
			d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
			for range 20 {
				c, err := d.Dial("unix", address)
				if err != nil {
					t.Fatal(err)
				}
				testkit.CheckEcho(t, c, 64<<10)
				c.Close()
			}
			l.Close()
			testkit.WaitFor(t, done, "the accept loop's end")
			if _, err := os.Stat(address); address[0] == '/' && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the socket file %s is still there after Close: %v", testkit.ModeName(blocking), address, err)
			}
		}
	}
}

// TestUnixSetupFailuresLeakNothing: each system call of Listen and Dial
// failing on a Unix socket gives an error naming it, closes the socket and
// leaves no socket file; a failing unlink at Close is not an error (as in
// Go's net) and leaks nothing either.
func TestUnixSetupFailuresLeakNothing(t *testing.T) {
	checkLeaks(t)
	target := testkit.Listen(t, "unix", testkit.AbstractName())
	for _, op := range []sys.Op{sys.OpSocket, sys.OpBind, sys.OpListen, sys.OpGetsockname, sys.OpConnect, sys.OpGetsockopt, sys.OpFcntl} {
		for _, blocking := range testkit.Modes {
			path := testkit.UnixPath(t)
			restore := sys.SetFilter(func(c *sys.Call) error {
				if c.Op == op {
					return unix.EACCES
				}
				return nil
			})
			lc := netcore.ListenConfig{Blocking: blocking}
			l, lerr := lc.Listen(context.Background(), "unix", path)
			d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
			c, derr := d.Dial("unix", target.Addr().String())
			restore()
			if lerr == nil {
				l.Close()
			} else {
				if !errors.Is(lerr, unix.EACCES) || !strings.Contains(lerr.Error(), path) {
					t.Errorf("%s: Listen with %v failing: %v, want EACCES naming %s", testkit.ModeName(blocking), op, lerr, path)
				}
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: Listen with %v failing left the socket file: %v", testkit.ModeName(blocking), op, err)
				}
			}
			if derr == nil {
				c.Close()
			} else if !errors.Is(derr, unix.EACCES) {
				t.Errorf("%s: Dial with %v failing: %v, want EACCES", testkit.ModeName(blocking), op, derr)
			}
		}
	}
	path := testkit.UnixPath(t)
	l := testkit.Listen(t, "unix", path)
	setFilter(t, func(c *sys.Call) error {
		if c.Op == sys.OpUnlink {
			return unix.EACCES
		}
		return nil
	})
	if err := l.Close(); err != nil {
		t.Errorf("Close with unlink failing = %v, want nil (Go's net ignores it too)", err)
	}
	os.Remove(path)
	drainAccepts(target) // what the dials left in its queue
}

// TestUnixPeerCred: both ends of a Unix connection, in both modes and on a
// Loop, see this process's pid, uid and gid; a TCP connection says it has
// none.
func TestUnixPeerCred(t *testing.T) {
	want := netcore.Ucred{PID: int32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	for _, blocking := range testkit.Modes {
		client, server, _ := testkit.ModePair(t, blocking, "unix", testkit.UnixPath(t))
		for _, c := range []*netcore.Conn{client, server} {
			if got, err := c.PeerCred(); err != nil || got != want {
				t.Errorf("%s: PeerCred() = %+v, %v; want %+v", testkit.ModeName(blocking), got, err, want)
			}
		}
		client.Close()
		if _, err := client.PeerCred(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("PeerCred after Close = %v, want net.ErrClosed", err)
		}
		tcp, _, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
		if _, err := tcp.PeerCred(); err == nil || !strings.Contains(err.Error(), "unix") {
			t.Errorf("PeerCred on TCP = %v, want an error saying it needs a unix socket", err)
		}
	}
	creds := make(chan netcore.Ucred, 1)
	lp := &netcore.Loop{Loops: 1, Handler: &loopFuncs{open: func(c *netcore.LoopConn) {
		cred, err := c.PeerCred()
		if err != nil {
			t.Errorf("LoopConn.PeerCred: %v", err)
		}
		creds <- cred
	}}}
	addr := serveLoopOn(t, lp, testkit.Listen(t, "unix", testkit.AbstractName()))
	c, err := netcore.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := testkit.WaitFor(t, creds, "OnOpen"); got != want {
		t.Errorf("LoopConn.PeerCred() = %+v, want %+v", got, want)
	}
}

// TestUnixServerAndLoop: a Server (both modes) and a Loop, on a netcore
// Unix listener and on one of Go's net, serve Unix clients: lines echo,
// and the connection's addresses are Unix addresses.
func TestUnixServerAndLoop(t *testing.T) {
	checkLeaks(t)
	lineEcho := netcore.HandlerFunc(func(ctx context.Context, c net.Conn) {
		if _, ok := c.RemoteAddr().(*net.UnixAddr); !ok {
			t.Errorf("handler's RemoteAddr is a %T", c.RemoteAddr())
		}
		io.Copy(c, c)
	})
	check := func(t *testing.T, addr string) {
		t.Helper()
		c, err := netcore.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testkit.Timeout))
		br := bufio.NewReader(c)
		for _, line := range []string{"one\n", strings.Repeat("x", 100<<10) + "\n"} {
			if _, err := c.Write([]byte(line)); err != nil {
				t.Fatal(err)
			}
			if got, err := br.ReadString('\n'); err != nil || got != line {
				t.Fatalf("echo of %d bytes: %d bytes, %v", len(line), len(got), err)
			}
		}
	}
	for _, blocking := range testkit.Modes {
		t.Run("Server/"+testkit.ModeName(blocking), func(t *testing.T) {
			lc := netcore.ListenConfig{Blocking: blocking}
			l, err := lc.Listen(context.Background(), "unix", testkit.UnixPath(t))
			if err != nil {
				t.Fatal(err)
			}
			srv := &netcore.Server{Handler: lineEcho, Logger: quietLogger()}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			check(t, l.Addr().String())
			srv.Close()
			if err := testkit.WaitFor(t, served, "Serve's return"); !errors.Is(err, netcore.ErrServerClosed) {
				t.Errorf("Serve = %v", err)
			}
		})
	}
	loopEchoLines := func() *netcore.Loop {
		return &netcore.Loop{Loops: 2, Handler: &loopFuncs{data: func(c *netcore.LoopConn) {
			if _, ok := c.RemoteAddr().(*net.UnixAddr); !ok {
				t.Errorf("LoopConn's RemoteAddr is a %T", c.RemoteAddr())
			}
			echoAll(c)
		}}}
	}
	t.Run("Loop/netcore", func(t *testing.T) {
		check(t, serveLoopOn(t, loopEchoLines(), testkit.Listen(t, "unix", testkit.UnixPath(t))))
	})
	t.Run("Loop/net.UnixListener", func(t *testing.T) {
		path := testkit.UnixPath(t)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		check(t, serveLoopOn(t, loopEchoLines(), l))
	})
}

// TestUnixOptionsSkipped: the options of TCP and IP (keep-alive, Nagle,
// V6Only, ReusePort, Device) are skipped on Unix sockets, as Go's net
// skips keep-alive there: Listen and Dial work and so do the Conn setters.
func TestUnixOptionsSkipped(t *testing.T) {
	lc := netcore.ListenConfig{KeepAlive: 1, Nagle: true, V6Only: true, ReusePort: true, Device: "lo"}
	l, err := lc.Listen(context.Background(), "unix", testkit.AbstractName())
	if err != nil {
		t.Fatalf("Listen with TCP options: %v", err)
	}
	defer l.Close()
	d := netcore.Dialer{KeepAlive: 1, Device: "lo", Timeout: testkit.Timeout}
	c, err := d.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatalf("Dial with TCP options: %v", err)
	}
	defer c.Close()
	for name, err := range map[string]error{"SetNoDelay": c.SetNoDelay(false), "SetKeepAlive": c.SetKeepAlive(true), "SetKeepAlivePeriod": c.SetKeepAlivePeriod(1)} {
		if err != nil {
			t.Errorf("%s on a Unix Conn = %v, want nil (skipped)", name, err)
		}
	}
	d.LocalAddr = netcore.MustParseSockaddr("127.0.0.1:0")
	if _, err := d.Dial("unix", l.Addr().String()); err == nil || !strings.Contains(err.Error(), "family") {
		t.Errorf("Dial unix from an IPv4 source address = %v, want an error about the family", err)
	}
	if _, err := netcore.Listen("unixpacket", "@x"); err == nil || !strings.Contains(err.Error(), "unixpacket") {
		t.Errorf("Listen(unixpacket) = %v, want an error naming the network", err)
	}
}

// TestUnixSockaddrAsKernel: for random abstract names, the bytes
// MarshalBinary gives are those the kernel reports for a socket bound
// through x/sys with that name, and they decode back to the same address.
func TestUnixSockaddrAsKernel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		name := "@" + string(rapid.SliceOfN(rapid.Byte(), 1, 107).Draw(rt, "bytes"))
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			rt.Fatal(err)
		}
		defer unix.Close(s)
		if err := unix.Bind(s, &unix.SockaddrUnix{Name: name}); err != nil {
			if errors.Is(err, unix.EADDRINUSE) {
				rt.Skip("name in use")
			}
			rt.Fatalf("bind %q: %v", name, err)
		}
		var buf [unix.SizeofSockaddrAny]byte
		n, err := sys.Getsockname(s, buf[:])
		if err != nil {
			rt.Fatal(err)
		}
		sa, err := netcore.SockaddrFromUnixPath(name)
		if err != nil {
			rt.Fatal(err)
		}
		if b, _ := sa.MarshalBinary(); string(b) != string(buf[:n]) {
			rt.Fatalf("SockaddrFromUnixPath(%q).MarshalBinary() = %x, the kernel's %x", name, b, buf[:n])
		}
		var back netcore.Sockaddr
		if err := back.UnmarshalBinary(buf[:n]); err != nil || back != sa {
			rt.Fatalf("UnmarshalBinary(%x) = %v, %v; want %v", buf[:n], back, err, sa)
		}
	})
}

// TestUnixAcceptSkipsUnrepresentablePeer: a client bound to a path that
// fills sun_path (108 bytes, no NUL: the kernel takes it, Go's net cannot
// name it) is dropped at Accept, as a connection reset in the queue is,
// and Accept goes on to the next client instead of failing, in both modes.
func TestUnixAcceptSkipsUnrepresentablePeer(t *testing.T) {
	for _, blocking := range testkit.Modes {
		lc := netcore.ListenConfig{Blocking: blocking}
		l, err := lc.Listen(context.Background(), "unix", testkit.AbstractName())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		dir, err := os.MkdirTemp("", "nc")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		long := dir + "/" + strings.Repeat("p", 108-len(dir)-1)
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(s)
		raw := append([]byte{byte(unix.AF_UNIX), 0}, long...) // little-endian family, no NUL
		if netcore.Htons(1) == 1 {
			raw[0], raw[1] = 0, byte(unix.AF_UNIX)
		}
		if err := sys.Bind(s, raw); err != nil {
			t.Skipf("the kernel refuses a 108-byte path: %v", err)
		}
		if err := unix.Connect(s, &unix.SockaddrUnix{Name: l.Addr().String()}); err != nil {
			t.Fatal(err)
		}
		good, err := netcore.Dial("unix", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer good.Close()
		l.SetDeadline(time.Now().Add(testkit.Timeout))
		c, err := l.AcceptConn()
		if err != nil {
			t.Fatalf("%s: Accept after a client it cannot name = %v, want the next client", testkit.ModeName(blocking), err)
		}
		if got := c.RemoteSockaddr(); got != good.LocalSockaddr() {
			t.Errorf("%s: accepted %v, want the second client %v", testkit.ModeName(blocking), got, good.LocalSockaddr())
		}
		c.Close()
	}
}
