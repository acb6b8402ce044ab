package netcore_test

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/internal/uring"
	"github.com/netcore-dev/netcore/netcore"
	"golang.org/x/sys/unix"
)

// openFDs counts this process's open descriptors (/proc/self/fd).
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("reading /proc/self/fd: %v", err)
	}
	return len(ents) - 1 // the directory's own descriptor
}

// checkLeaks records the descriptors and goroutines now and, when the test
// ends, fails it unless both are back to that baseline within testkit.Timeout.
// Only sequential (non-parallel) tests may call it: the counts are the
// whole process's.
func checkLeaks(t *testing.T) {
	t.Helper()
	fds, gs := openFDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(testkit.Timeout)
		for {
			nfd, ng := openFDs(t), runtime.NumGoroutine()
			if nfd <= fds && ng <= gs {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: %d descriptors (baseline %d), %d goroutines (baseline %d)\n%s", nfd, fds, ng, gs, buf)
				return
			}
			runtime.Gosched()
			time.Sleep(5 * time.Millisecond) // polling a count, not standing in for synchronisation
		}
	})
}

// drainAccepts accepts and closes what waits in l's queue, until it has
// been empty for 50 ms.
func drainAccepts(l *netcore.Listener) {
	l.SetDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// A sockopt is an integer socket option: level, name, value.
type sockopt struct{ level, name, value int }

// A controlFunc is a Control function, of the signature net's and
// netcore's ListenConfig and Dialer share.
type controlFunc = func(network, address string, c syscall.RawConn) error

// sockoptControl is a Control function that sets opts on the socket.
func sockoptControl(opts ...sockopt) controlFunc {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			for _, o := range opts {
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), o.level, o.name, o.value)
				}
			}
		}); err != nil {
			return err
		}
		return serr
	}
}

// loopWaits counts the calls loops wait in, every loop of the process:
// epoll_wait, or io_uring_enter when the suite runs on io_uring.
func loopWaits() uint64 { return sys.Count(sys.OpEpollWait) + sys.Count(sys.OpIoUringEnter) }

// onUring reports whether the suite's Loops run on io_uring: Loops left
// at BackendDefault follow netcore.BackendEnv, which .ci/run sets to
// io_uring for its second run of the suite.
func onUring() bool {
	switch os.Getenv(netcore.BackendEnv) {
	case "io_uring":
		return true
	case "best":
		return uring.Available() == nil
	}
	return false
}

// epollOnly skips a test of the epoll backend's own mechanics (its system
// calls, injected through the seam) when the suite runs on io_uring.
func epollOnly(t *testing.T, what string) {
	t.Helper()
	if onUring() {
		t.Skipf("the epoll backend's %s; the suite runs on io_uring (%s)", what, netcore.BackendEnv)
	}
}
