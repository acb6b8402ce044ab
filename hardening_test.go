//go:build linux

package netcore_test

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// freeEphemeralPort returns an even port of the ephemeral range on
// 127.0.0.1 with nothing listening on it. Even, because Linux gives
// connect(2) even source ports (and bind(2) odd ones): that is where a
// dial's source can collide with its destination.
func freeEphemeralPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port &^ 1
		l.Close()
		if even, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			even.Close()
			return port
		}
	}
	t.Fatal("no free even port found in 100 tries")
	return 0
}

// Dialing a free port of the ephemeral range thousands of times never
// yields a connection: without a check, the kernel sooner or later picks
// that very port as the source and TCP's simultaneous open connects the
// socket to itself (then it holds the port a server wants). Go's net
// retries such a dial; so does netcore, in both modes.
func TestDialNeverConnectsToItself(t *testing.T) {
	const attempts = 30000 // two cycles of the even ports of the ephemeral range
	dialers := map[string]func(addr string) (net.Conn, error){
		"net": func(addr string) (net.Conn, error) { return net.Dial("tcp4", addr) },
		"netcore": func(addr string) (net.Conn, error) {
			return netcore.Dial("tcp4", addr)
		},
		"netcore-blocking": func(addr string) (net.Conn, error) {
			d := netcore.Dialer{Blocking: true}
			return d.Dial("tcp4", addr)
		},
	}
	for _, name := range []string{"net", "netcore", "netcore-blocking"} {
		t.Run(name, func(t *testing.T) {
			if testing.Short() {
				t.Skip("thousands of dials")
			}
			checkLeaks(t)
			addr := fmt.Sprintf("127.0.0.1:%d", freeEphemeralPort(t))
			for i := range attempts {
				c, err := dialers[name](addr)
				if err == nil {
					c.Close()
					t.Fatalf("attempt %d: Dial(%q) connected (local %v): nothing listens there", i, addr, c.LocalAddr())
				}
				if !errors.Is(err, unix.ECONNREFUSED) {
					t.Fatalf("attempt %d: Dial(%q) = %v, want ECONNREFUSED", i, addr, err)
				}
			}
		})
	}
}
