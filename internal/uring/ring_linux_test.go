package uring

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// The ABI structures have the kernel's sizes.
func TestABISizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"io_uring_sqe", unsafe.Sizeof(SQE{}), 64},
		{"io_uring_cqe", unsafe.Sizeof(CQE{}), 16},
		{"io_uring_params", unsafe.Sizeof(params{}), 120},
		{"io_uring_getevents_arg", unsafe.Sizeof(geteventsArg{}), 24},
		{"io_uring_probe", unsafe.Sizeof(probeHeader{}), 16},
		{"io_uring_probe_op", unsafe.Sizeof(probeOp{}), 8},
		{"io_uring_buf", unsafe.Sizeof(bufRingEntry{}), 16},
		{"io_uring_buf_reg", unsafe.Sizeof(bufReg{}), 40},
		{"sqe.user_data offset", unsafe.Offsetof(SQE{}.UserData), 32},
		{"sqe.buf_group offset", unsafe.Offsetof(SQE{}.BufGroup), 40},
		{"sqe.addr3 offset", unsafe.Offsetof(SQE{}.Addr3), 48},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
}

// fdCount is how many descriptors the process has open.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// checkNoFDLeak fails the test if it ends with more descriptors open than
// it started with.
func checkNoFDLeak(t *testing.T) {
	t.Helper()
	before := fdCount(t)
	t.Cleanup(func() {
		if after := fdCount(t); after != before {
			t.Errorf("%d descriptors open after the test, %d before", after, before)
		}
	})
}

// newRing locks the test's goroutine to its thread (SINGLE_ISSUER) and
// makes a ring closed when the test ends.
func newRing(t *testing.T, entries uint32, opts Options) *Ring {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	r, err := New(entries, opts)
	if err != nil {
		t.Fatalf("New(%d): %v", entries, err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// waitFor submits, then reaps until n completions have come, failing the
// test after 5 seconds.
func waitFor(t *testing.T, r *Ring, n int) []cqe {
	t.Helper()
	var got []cqe
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%d completions after 5s, want %d: %+v", len(got), n, got)
		}
		if _, err := r.SubmitAndWait(1, left); err != nil {
			t.Fatalf("SubmitAndWait: %v", err)
		}
		r.ForEachCQE(func(u uint64, res int32, f uint32) { got = append(got, cqe{u, res, f}) })
	}
	return got
}

// A NOP goes round the ring: its user_data comes back with res 0, and the
// ring runs with the flags that cut cost on this kernel.
func TestNopRoundTrip(t *testing.T) {
	checkNoFDLeak(t)
	r := newRing(t, 8, Options{})
	t.Logf("flags %#x, features %#x, sq %d, cq %d", r.Flags(), r.Features(), r.SQEntries(), r.CQEntries())
	if !r.PrepNop(42) {
		t.Fatal("PrepNop on an empty ring = false")
	}
	got := waitFor(t, r, 1)
	if len(got) != 1 || got[0].userData != 42 || got[0].res != 0 {
		t.Fatalf("completions %+v, want one with user_data 42, res 0", got)
	}
	if r.CQEntries() != 4*r.SQEntries() {
		t.Errorf("CQ %d entries, want 4 × SQ's %d", r.CQEntries(), r.SQEntries())
	}
}

// A full submission queue refuses the next entry instead of overwriting
// one; after Submit there is room again, and every entry completes once.
func TestFullSQ(t *testing.T) {
	r := newRing(t, 4, Options{})
	n := r.SQEntries()
	for i := range n {
		if !r.PrepNop(uint64(i)) {
			t.Fatalf("PrepNop %d of %d = false", i, n)
		}
	}
	if r.SQSpace() != 0 || r.PrepNop(99) {
		t.Fatalf("a full SQ took another entry (space %d)", r.SQSpace())
	}
	if got, err := r.Submit(); err != nil || got != int(n) {
		t.Fatalf("Submit = %d, %v; want %d", got, err, n)
	}
	if !r.PrepNop(uint64(n)) {
		t.Fatal("PrepNop after Submit = false")
	}
	got := waitFor(t, r, int(n)+1)
	seen := map[uint64]int{}
	for _, c := range got {
		seen[c.userData]++
	}
	for i := range uint64(n) + 1 {
		if seen[i] != 1 {
			t.Errorf("user_data %d completed %d times, want once (all: %+v)", i, seen[i], got)
		}
	}
}

// A bounded wait with nothing in flight returns, without error, once the
// timeout has passed.
func TestBoundedWait(t *testing.T) {
	r := newRing(t, 4, Options{})
	start := time.Now()
	if _, err := r.SubmitAndWait(1, 20*time.Millisecond); err != nil {
		t.Fatalf("SubmitAndWait with nothing in flight: %v", err)
	}
	if el := time.Since(start); el < 15*time.Millisecond || el > 5*time.Second {
		t.Errorf("a 20ms wait took %v", el)
	}
	if r.CQReady() != 0 {
		t.Errorf("%d completions from nothing", r.CQReady())
	}
}

// eventfdBuf is where TestEventfdWake's read lands: package memory, not a
// local array, since the kernel writes it after PrepRead returns.
var eventfdBuf = new([8]byte)

// Another goroutine wakes a ring waiting without a bound by writing to the
// eventfd the ring is reading.
func TestEventfdWake(t *testing.T) {
	checkNoFDLeak(t)
	r := newRing(t, 4, Options{})
	efd, err := sys.Eventfd(0, unix.EFD_CLOEXEC) // blocking: io_uring waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(efd)
	buf := eventfdBuf
	if !r.PrepRead(efd, buf[:], 7) {
		t.Fatal("PrepRead = false")
	}
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	go sys.Wake(efd)
	got := waitFor(t, r, 1)
	if got[0].userData != 7 || got[0].res != 8 || buf[0] != 1 {
		t.Fatalf("completion %+v, buf %v; want user_data 7, res 8, the counter 1", got[0], buf)
	}
}

// An interrupted io_uring_enter loses nothing: the submission goes in with
// the next call. EBUSY comes back as an error, and the submission too
// survives it.
func TestEnterErrors(t *testing.T) {
	r := newRing(t, 4, Options{})
	for _, errno := range []unix.Errno{unix.EINTR, unix.EBUSY, unix.EAGAIN} {
		restore := sys.SetFilter(func(c *sys.Call) error {
			if c.Op == sys.OpIoUringEnter && c.FD == r.Fd() {
				return errno
			}
			return nil
		})
		r.PrepNop(uint64(errno))
		_, err := r.SubmitAndWait(1, time.Second)
		restore()
		if errno == unix.EINTR && err != nil {
			t.Errorf("SubmitAndWait interrupted = %v, want nil (a wake-up with no completions)", err)
		}
		if errno != unix.EINTR && !errors.Is(err, errno) {
			t.Errorf("SubmitAndWait = %v, want %v", err, errno)
		}
		if got := waitFor(t, r, 1); got[0].userData != uint64(errno) {
			t.Errorf("after %v, completion %+v, want user_data %d", errno, got[0], errno)
		}
	}
}

// The kernel answering EINVAL to the newest setup flags makes New drop
// them, newest first, and say which it kept; a ring that cannot be made
// at all leaves no descriptor open.
func TestSetupFallback(t *testing.T) {
	checkNoFDLeak(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var asked []uint32
	restore := sys.SetFilter(func(c *sys.Call) error {
		if c.Op == sys.OpIoUringSetup {
			asked = append(asked, uint32(c.Name))
			if c.Name&(IORING_SETUP_DEFER_TASKRUN|IORING_SETUP_SINGLE_ISSUER) != 0 {
				return unix.EINVAL // a 5.19 kernel
			}
		}
		return nil
	})
	r, err := New(8, Options{})
	restore()
	if err != nil {
		t.Fatalf("New on a kernel without SINGLE_ISSUER: %v", err)
	}
	defer r.Close()
	if len(asked) != 3 {
		t.Errorf("io_uring_setup tried %d times (%#x), want 3", len(asked), asked)
	}
	if f := r.Flags(); f&(IORING_SETUP_DEFER_TASKRUN|IORING_SETUP_SINGLE_ISSUER) != 0 ||
		f&(IORING_SETUP_COOP_TASKRUN|IORING_SETUP_SUBMIT_ALL) != IORING_SETUP_COOP_TASKRUN|IORING_SETUP_SUBMIT_ALL {
		t.Errorf("Flags() = %#x: want COOP_TASKRUN and SUBMIT_ALL kept, SINGLE_ISSUER and DEFER_TASKRUN dropped", f)
	}
	r.PrepNop(1)
	if got := waitFor(t, r, 1); got[0].userData != 1 {
		t.Errorf("the fallback ring's NOP came back as %+v", got[0])
	}

	for _, errno := range []unix.Errno{unix.EINVAL, unix.EPERM} {
		asked = asked[:0]
		restore = sys.SetFilter(func(c *sys.Call) error {
			if c.Op == sys.OpIoUringSetup {
				asked = append(asked, uint32(c.Name))
				return errno
			}
			return nil
		})
		_, err := New(8, Options{})
		restore()
		if !errors.Is(err, errno) {
			t.Errorf("New when setup fails with %v = %v", errno, err)
		}
		want := 1 // EPERM is not a missing flag: no retry
		if errno == unix.EINVAL {
			want = 1 + len(setupFallbacks)
		}
		if len(asked) != want {
			t.Errorf("setup failing with %v tried %d times, want %d", errno, len(asked), want)
		}
	}
}

// A failed mmap of any of the three mappings undoes the others and closes
// the ring's descriptor.
func TestMmapFailureUndone(t *testing.T) {
	checkNoFDLeak(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for fail := 1; fail <= 2; fail++ { // SINGLE_MMAP: two mappings
		mmaps := 0
		restore := sys.SetFilter(func(c *sys.Call) error {
			if c.Op == sys.OpMmap {
				if mmaps++; mmaps == fail {
					return unix.ENOMEM
				}
			}
			return nil
		})
		before := sys.Count(sys.OpMunmap)
		_, err := New(8, Options{})
		restore()
		if !errors.Is(err, unix.ENOMEM) {
			t.Fatalf("New with mmap %d failing = %v, want ENOMEM", fail, err)
		}
		if got := int(sys.Count(sys.OpMunmap) - before); got != fail-1 {
			t.Errorf("mmap %d failing: %d munmaps, want %d", fail, got, fail-1)
		}
	}
}

// A no-op with an injected result completes with that result: the Loop's
// fault-injection tests put it in the place of a receive or a send.
func TestNopResult(t *testing.T) {
	r := newRing(t, 4, Options{})
	r.PrepNopResult(-int32(unix.ENOBUFS), 7)
	got := waitFor(t, r, 1)
	if got[0].userData != 7 || got[0].res != -int32(unix.ENOBUFS) {
		t.Fatalf("completion %+v, want user_data 7 and res -ENOBUFS", got[0])
	}
}
