//go:build linux

package sys_test

import (
	"errors"
	"testing"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// socketpair gives two connected stream sockets, closed when the test ends.
func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func TestFilterInjectsAndShortens(t *testing.T) {
	a, b := socketpair(t)
	injected := 0
	restore := sys.SetFilter(func(c *sys.Call) error {
		if c.FD != a {
			return nil
		}
		switch c.Op {
		case sys.OpWrite:
			if injected == 0 {
				injected++
				return unix.EINTR
			}
			c.Len = 3 // a short write
		case sys.OpRead:
			c.Len = 100 // a filter may not raise the length
		}
		return nil
	})
	defer restore()

	before := sys.Count(sys.OpWrite)
	if _, err := sys.Write(a, []byte("hello")); !errors.Is(err, unix.EINTR) {
		t.Fatalf("first Write = %v, want the injected EINTR", err)
	}
	n, err := sys.Write(a, []byte("hello"))
	if err != nil || n != 3 {
		t.Fatalf("Write through a filter that shortens to 3 = %d, %v; want 3, nil", n, err)
	}
	if got := sys.Count(sys.OpWrite) - before; got != 2 {
		t.Errorf("write counted %d times, want 2 (the failed call counts too)", got)
	}
	buf := make([]byte, 2)
	if n, err := sys.Read(b, buf); err != nil || string(buf[:n]) != "he" {
		t.Fatalf("Read = %q, %v; want \"he\"", buf[:n], err)
	}
	restore()
	// Without the filter the call goes through whole.
	if n, err := sys.Write(a, []byte("abc")); n != 3 || err != nil {
		t.Fatalf("Write after restore = %d, %v", n, err)
	}
	big := make([]byte, 16)
	n, err = sys.Read(b, big)
	if err != nil || string(big[:n]) != "labc" {
		t.Fatalf("Read = %q, %v; want \"labc\"", big[:n], err)
	}
}

func TestOpNames(t *testing.T) {
	for op := range sys.NumOps {
		if name := op.String(); name == "" || name == "op?" {
			t.Errorf("Op %d has no name", op)
		}
	}
	if sys.OpAccept.String() != "accept4" {
		t.Errorf("OpAccept.String() = %q, want accept4", sys.OpAccept.String())
	}
}

func TestSetNonblockAndPoll(t *testing.T) {
	a, b := socketpair(t)
	if err := sys.SetNonblock(a, true); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Read(a, make([]byte, 1)); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Read on an empty non-blocking socket = %v, want EAGAIN", err)
	}
	fds := []unix.PollFd{{Fd: int32(a), Events: unix.POLLIN}}
	if n, err := sys.Poll(fds, 0); n != 0 || err != nil {
		t.Fatalf("Poll with nothing to read = %d, %v; want 0", n, err)
	}
	unix.Write(b, []byte("x"))
	if n, err := sys.Poll(fds, -1); n != 1 || err != nil || fds[0].Revents&unix.POLLIN == 0 {
		t.Fatalf("Poll with a byte waiting = %d, %v, revents %#x", n, err, fds[0].Revents)
	}
}
