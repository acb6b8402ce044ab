package uring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// A multishot receive that finds the buffer ring empty ends with -ENOBUFS
// (no F_MORE), the bytes it could not take stay in the socket, and once
// buffers are recycled a new receive takes them, in order, byte-exact. A
// connection with nothing to read holds no buffer.
func TestENOBUFSAndRecovery(t *testing.T) {
	checkNoFDLeak(t)
	r := newRing(t, 8, Options{})
	br, err := r.NewBufRing(3, 2, 4) // two buffers of 4 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	a, b := tcpPair(t)
	if _, err := unix.Write(a, []byte("abcdefghijkl")); err != nil {
		t.Fatal(err)
	}
	r.PrepRecvMultishot(b, br.Group(), 0, 1)
	var data []string
	var bids []uint16
	ended := false
	for !ended {
		for _, c := range waitFor(t, r, 1) {
			switch {
			case c.res > 0:
				bid, ok := BufferID(c.flags)
				if !ok || !More(c.flags) {
					t.Fatalf("a receive of %d bytes: flags %#x, want a buffer and F_MORE", c.res, c.flags)
				}
				data = append(data, string(br.Buf(bid, int(c.res))))
				bids = append(bids, bid)
			case c.res == -int32(unix.ENOBUFS):
				if More(c.flags) {
					t.Fatal("-ENOBUFS with F_MORE: the receive should have ended")
				}
				ended = true
			default:
				t.Fatalf("completion %+v, want data or -ENOBUFS", c)
			}
		}
	}
	if strings.Join(data, "|") != "abcd|efgh" {
		t.Fatalf("received %q before ENOBUFS, want abcd|efgh", data)
	}
	for _, bid := range bids {
		br.Recycle(bid)
	}
	// Re-armed: "ijkl" takes one buffer; then the connection is idle with
	// one buffer still in the ring, which "mn" takes when it comes.
	r.PrepRecvMultishot(b, br.Group(), 0, 2)
	c := waitFor(t, r, 1)[0]
	bid, _ := BufferID(c.flags)
	if c.res != 4 || !More(c.flags) || string(br.Buf(bid, 4)) != "ijkl" {
		t.Fatalf("after recycling: %+v, want ijkl with F_MORE", c)
	}
	br.Recycle(bid)
	if _, err := unix.Write(a, []byte("mn")); err != nil {
		t.Fatal(err)
	}
	c = waitFor(t, r, 1)[0]
	bid, _ = BufferID(c.flags)
	if c.res != 2 || string(br.Buf(bid, 2)) != "mn" {
		t.Fatalf("then: %+v, want mn", c)
	}
	br.Recycle(bid)
	r.PrepCancel(2, 3)
	waitFor(t, r, 2)
}

// Cancelling a multishot receive, by its user_data or by its descriptor,
// ends it with -ECANCELED and no F_MORE, and consumes nothing: bytes that
// arrive afterwards are still in the socket for whoever reads next.
func TestCancelMultishotRecv(t *testing.T) {
	checkNoFDLeak(t)
	r := newRing(t, 8, Options{})
	br, err := r.NewBufRing(5, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	a, b := tcpPair(t)
	for _, byFD := range []bool{false, true} {
		r.PrepRecvMultishot(b, br.Group(), 0, 10)
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		if byFD {
			r.PrepCancelFD(b, 11)
		} else {
			r.PrepCancel(10, 11)
		}
		var recv, cancel *cqe
		for _, c := range waitFor(t, r, 2) {
			switch c.userData {
			case 10:
				recv = &c
			case 11:
				cancel = &c
			}
		}
		if recv == nil || recv.res != -int32(unix.ECANCELED) || More(recv.flags) {
			t.Fatalf("byFD %v: the receive ended with %+v, want -ECANCELED without F_MORE", byFD, recv)
		}
		wantCancel := int32(0) // by user_data: found and cancelled
		if byFD {
			wantCancel = 1 // by descriptor, all: how many
		}
		if cancel == nil || cancel.res != wantCancel {
			t.Fatalf("byFD %v: the cancel completed with %+v, want res %d", byFD, cancel, wantCancel)
		}
	}
	if _, err := unix.Write(a, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	fds := []unix.PollFd{{Fd: int32(b), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds, 5000); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, err := unix.Read(b, buf)
	if err != nil || string(buf[:n]) != "still here" {
		t.Fatalf("read after the cancel = %q, %v; want \"still here\"", buf[:n], err)
	}
}

// Preparing, submitting, waiting for and reaping a completion allocates
// nothing.
func TestNoAllocsPerCycle(t *testing.T) {
	r := newRing(t, 8, Options{})
	var sum int64
	allocs := testing.AllocsPerRun(200, func() {
		r.PrepNop(5)
		if _, err := r.SubmitAndWait(1, time.Second); err != nil {
			t.Fatal(err)
		}
		r.ForEachCQE(func(ud uint64, res int32, flags uint32) { sum += int64(ud) })
	})
	if allocs != 0 {
		t.Errorf("%v allocations per submit/complete cycle, want 0", allocs)
	}
	if sum != 5*201 {
		t.Errorf("reaped user_data summing to %d, want %d (one per cycle)", sum, 5*201)
	}
}

// Available is nil here (a 6.18 kernel with io_uring allowed), and says
// exactly why when the seam makes io_uring unavailable.
func TestAvailable(t *testing.T) {
	checkNoFDLeak(t)
	if err := Available(); err != nil {
		t.Fatalf("Available() = %v on this machine", err)
	}
	sysctl := func(v string) {
		p := filepath.Join(t.TempDir(), "io_uring_disabled")
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := disabledPath
		disabledPath = p
		t.Cleanup(func() { disabledPath = old })
	}
	failing := func(op sys.Op, name int, errno unix.Errno) func() {
		return sys.SetFilter(func(c *sys.Call) error {
			if c.Op == op && (name < 0 || c.Name == name) {
				return errno
			}
			return nil
		})
	}
	for _, c := range []struct {
		name    string
		sysctl  string
		op      sys.Op
		opName  int
		errno   unix.Errno
		want    string // the whole message, or a part of it
		isErrno error
	}{
		{"sysctl 2", "2", sys.OpIoUringSetup, -1, unix.EPERM,
			"io_uring is disabled (kernel.io_uring_disabled = 2)", unix.EPERM},
		{"seccomp", "0", sys.OpIoUringSetup, -1, unix.EPERM,
			"io_uring_setup: operation not permitted (a seccomp filter, as container runtimes install by default, or a security module)", unix.EPERM},
		{"sysctl 1", "1", sys.OpIoUringSetup, -1, unix.EPERM,
			"io_uring_setup: operation not permitted (kernel.io_uring_disabled = 1 and this process is neither privileged nor in kernel.io_uring_group)", unix.EPERM},
		{"ENOSYS", "0", sys.OpIoUringSetup, -1, unix.ENOSYS,
			"io_uring_setup: function not implemented (a kernel older than 5.1 or built without CONFIG_IO_URING, or a seccomp filter answering ENOSYS)", unix.ENOSYS},
		{"ENOMEM", "0", sys.OpIoUringSetup, -1, unix.ENOMEM,
			"io_uring_setup: cannot allocate memory (RLIMIT_MEMLOCK", unix.ENOMEM},
		{"no probe", "0", sys.OpIoUringRegister, IORING_REGISTER_PROBE, unix.EINVAL,
			"the kernel lacks IORING_REGISTER_PROBE (Linux 5.6 or later needed)", unix.EINVAL},
		{"no buffer rings", "0", sys.OpIoUringRegister, IORING_REGISTER_PBUF_RING, unix.EINVAL,
			"the kernel lacks IORING_REGISTER_PBUF_RING, provided buffer rings (Linux 5.19 or later needed)", unix.EINVAL},
	} {
		t.Run(c.name, func(t *testing.T) {
			sysctl(c.sysctl)
			setups := sys.Count(sys.OpIoUringSetup)
			restore := failing(c.op, c.opName, c.errno)
			err := Available()
			restore()
			var ue *UnavailableError
			if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), c.want) || !errors.Is(err, c.isErrno) {
				t.Fatalf("Available() = %v (%T), want %q wrapping %v", err, err, c.want, c.isErrno)
			}
			if c.sysctl == "2" && sys.Count(sys.OpIoUringSetup) != setups {
				t.Error("io_uring_setup called though the sysctl says io_uring is disabled")
			}
		})
	}
}

// A kernel whose probe lacks an opcode the Loop needs is named with the
// release that brought it.
func TestProbeMissing(t *testing.T) {
	r := newRing(t, 4, Options{})
	p, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range needs {
		if !p.Supports(n.op) {
			t.Errorf("this kernel lacks opcode %d (%s)", n.op, n.what)
		}
	}
	if err := p.missing(); err != nil {
		t.Fatal(err)
	}
	old := *p
	p.ops[IORING_OP_RECV] = false
	if err := p.missing(); err == nil || err.Error() != "the kernel lacks IORING_OP_RECV (Linux 5.6 or later needed)" {
		t.Errorf("without RECV: %v", err)
	}
	*p = old
	p.ops[IORING_OP_SEND_ZC] = false
	if err := p.missing(); err == nil || !strings.HasPrefix(err.Error(), "the kernel lacks multishot receive") ||
		!strings.HasSuffix(err.Error(), "(Linux 6.0 or later needed)") {
		t.Errorf("a 5.19 kernel: %v", err)
	}
}

// A multishot poll completes at each wake-up of the file while it stays
// armed: two writes into a socket pair, two completions with POLLIN, then
// a cancel ends it with -ECANCELED and no F_MORE.
func TestPollMultishot(t *testing.T) {
	checkNoFDLeak(t)
	r := newRing(t, 8, Options{})
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if !r.PrepPollMultishot(fds[1], unix.POLLIN, 5) {
		t.Fatal("PrepPollMultishot = false")
	}
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		unix.Write(fds[0], []byte("x"))
		got := waitFor(t, r, 1)
		if got[0].userData != 5 || got[0].res&unix.POLLIN == 0 || !More(got[0].flags) {
			t.Fatalf("wake-up %d: completion %+v, want user_data 5, POLLIN, F_MORE", i, got[0])
		}
	}
	if !r.PrepCancel(5, 6) {
		t.Fatal("PrepCancel = false")
	}
	got := waitFor(t, r, 2)
	for _, c := range got {
		if c.userData == 5 && (c.res != -int32(unix.ECANCELED) || More(c.flags)) {
			t.Fatalf("the cancelled poll ended with %+v, want -ECANCELED without F_MORE", c)
		}
	}
}

// A bounded multishot receive ends by itself once it has taken its limit
// (a kernel without the limit refuses it, and RecvLimit says so), and a
// one-shot receive takes no more than its max: in both cases the bytes
// not taken stay in the socket, in order, for the next receive.
func TestRecvBounded(t *testing.T) {
	checkNoFDLeak(t)
	r := newRing(t, 8, Options{})
	limited, err := r.RecvLimit(7)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the kernel ends a multishot receive at a byte count: %v", limited)
	br, err := r.NewBufRing(3, 16, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	a, b := tcpPair(t)
	sent := make([]byte, 10000)
	for i := range sent {
		sent[i] = byte(i * 7)
	}
	if _, err := unix.Write(a, sent); err != nil {
		t.Fatal(err)
	}
	var got []byte
	take := func(c cqe) {
		if c.res <= 0 {
			t.Fatalf("receive failed: res %d", c.res)
		}
		bid, ok := BufferID(c.flags)
		if !ok {
			t.Fatalf("completion without a buffer: %+v", c)
		}
		got = append(got, br.Buf(bid, int(c.res))...)
		br.Recycle(bid)
	}
	r.PrepRecv(b, br.Group(), 300, 1)
	for _, c := range waitFor(t, r, 1) {
		take(c)
		if c.res != 300 || More(c.flags) {
			t.Fatalf("one-shot receive of at most 300 bytes: res %d, more %v", c.res, More(c.flags))
		}
	}
	r.PrepRecvMultishot(b, br.Group(), 2500, 2)
	if !limited {
		if cs := waitFor(t, r, 1); cs[0].res != -int32(unix.EINVAL) {
			t.Fatalf("a kernel without the limit: res %d, want -EINVAL", cs[0].res)
		}
		return
	}
	for ended := false; !ended; {
		for _, c := range waitFor(t, r, 1) {
			take(c)
			ended = !More(c.flags)
		}
	}
	if n := len(got) - 300; n < 2500 || n > 2500+999 {
		t.Fatalf("the receive limited to 2500 bytes took %d", n)
	}
	r.PrepRecvMultishot(b, br.Group(), 0, 3) // the rest
	for len(got) < len(sent) {
		for _, c := range waitFor(t, r, 1) {
			take(c)
		}
	}
	if !bytes.Equal(got, sent) {
		t.Fatal("the bytes received differ from those sent")
	}
}

// With incremental consumption, receives of several connections share a
// buffer: each completion's bytes start where the previous one's ended,
// the buffer is recycled with its last completion (without F_BUF_MORE),
// and every connection gets its bytes in order, byte-exact, through far
// more bytes than the ring holds.
func TestBufRingIncremental(t *testing.T) {
	checkNoFDLeak(t)
	r := newRing(t, 16, Options{})
	br, err := r.NewBufRingIncremental(5, 2, 64)
	if errors.Is(err, unix.EINVAL) {
		t.Skipf("the kernel lacks incremental buffer rings (6.12): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	const conns = 3
	var cli, srv [conns]int
	for i := range conns {
		cli[i], srv[i] = tcpPair(t)
		r.PrepRecvMultishot(srv[i], br.Group(), 0, uint64(i))
	}
	var sent, got [conns][]byte
	more := 0
	for round := range 40 {
		for i := range conns {
			msg := bytes.Repeat([]byte{byte('a' + i), byte(round)}, 1+(round*7+i*3)%9)
			if _, err := unix.Write(cli[i], msg); err != nil {
				t.Fatal(err)
			}
			sent[i] = append(sent[i], msg...)
		}
		for n := 0; n < conns; {
			for _, c := range waitFor(t, r, 1) {
				bid, ok := BufferID(c.flags)
				if c.res <= 0 || !ok || !More(c.flags) {
					t.Fatalf("completion %+v: want bytes in a buffer, the receive still armed", c)
				}
				p, recycle := br.Completed(bid, c.res, c.flags)
				got[c.userData] = append(got[c.userData], p...)
				if recycle {
					br.Recycle(bid)
				} else {
					more++
				}
				if len(got[c.userData]) == len(sent[c.userData]) {
					n++
				}
			}
		}
	}
	for i := range conns {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("connection %d received %q, want %q", i, got[i], sent[i])
		}
	}
	if more == 0 {
		t.Fatal("no completion left its buffer for the next: consumption was not incremental")
	}
	t.Logf("%d bytes through 2 buffers of 64 bytes, %d completions with F_BUF_MORE", len(sent[0])*conns, more)
}
