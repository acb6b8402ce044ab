//go:build linux

package sys_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// The epoll calls work, are counted, and a Filter can fail them or lower
// how many events epoll_wait returns.
func TestEpollEventfdWake(t *testing.T) {
	before := sys.Counts()
	ep, err := sys.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(ep)
	efd, err := sys.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(efd)
	a, b := socketpair(t)
	for i, fd := range []int{efd, a} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd), Pad: int32(i)}
		if err := sys.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			t.Fatalf("epoll_ctl ADD %d: %v", fd, err)
		}
	}
	events := make([]unix.EpollEvent, 8)
	if n, err := sys.EpollWait(ep, events, 0); n != 0 || err != nil {
		t.Fatalf("EpollWait on nothing ready = %d, %v", n, err)
	}
	if err := sys.Wake(efd); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Write(b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Wake adds 1 to the counter: two wake-ups read back as 2.
	sys.Wake(efd)
	var cnt [8]byte
	if n, err := sys.Read(efd, cnt[:]); n != 8 || err != nil || binary.NativeEndian.Uint64(cnt[:]) != 2 {
		t.Fatalf("reading the eventfd = %d, %v, counter %d; want 8 bytes, counter 2", n, err, binary.NativeEndian.Uint64(cnt[:]))
	}
	sys.Wake(efd)
	restore := sys.SetFilter(func(c *sys.Call) error {
		if c.Op == sys.OpEpollWait {
			c.Len = 1
		}
		return nil
	})
	n, err := sys.EpollWait(ep, events, 1000)
	restore()
	if n != 1 || err != nil {
		t.Fatalf("EpollWait with a Filter lowering Len to 1 = %d, %v; want 1 event", n, err)
	}
	if n, err := sys.EpollWait(ep, events, 1000); n != 2 || err != nil {
		t.Fatalf("EpollWait = %d, %v; want both descriptors ready", n, err)
	}
	restore = sys.SetFilter(func(c *sys.Call) error {
		if c.Op == sys.OpEpollWait {
			return unix.EINTR
		}
		return nil
	})
	_, err = sys.EpollWait(ep, events, -1)
	restore()
	if !errors.Is(err, unix.EINTR) {
		t.Fatalf("EpollWait under a Filter = %v, want the injected EINTR", err)
	}
	if err := sys.EpollCtl(ep, unix.EPOLL_CTL_DEL, a, nil); err != nil {
		t.Fatalf("epoll_ctl DEL: %v", err)
	}
	after := sys.Counts()
	for _, want := range []struct {
		op sys.Op
		n  uint64
	}{{sys.OpEpollCreate, 1}, {sys.OpEventfd, 1}, {sys.OpEpollCtl, 3}, {sys.OpEpollWait, 4}, {sys.OpWake, 3}} {
		if got := after[want.op] - before[want.op]; got < want.n {
			t.Errorf("%v counted %d times, want at least %d", want.op, got, want.n)
		}
	}
}

func TestOpen(t *testing.T) {
	fd, err := sys.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("Open(/dev/null) = %v", err)
	}
	sys.Close(fd)
	if _, err := sys.Open("/nonexistent/netcore", unix.O_RDONLY, 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Open of a missing file = %v, want ENOENT", err)
	}
}
