//go:build linux

package sys_test

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// The io_uring calls are counted, and a Filter sees their arguments and
// can fail them before the kernel is asked.
func TestIoUringCallsCountedAndFiltered(t *testing.T) {
	var p [120]byte // struct io_uring_params, zero: no flags
	before := sys.Counts()
	fd, err := sys.IoUringSetup(4, unsafe.Pointer(&p))
	if err != nil {
		t.Skipf("io_uring_setup: %v", err)
	}
	defer sys.Close(fd)
	// io_uring_enter with nothing to submit and no wait returns 0.
	if n, err := sys.IoUringEnter(fd, 0, 0, 0, nil, 0); n != 0 || err != nil {
		t.Fatalf("IoUringEnter(nothing) = %d, %v", n, err)
	}
	// An unknown register opcode is refused by the kernel, not the seam.
	if err := sys.IoUringRegister(fd, 255, nil, 0); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("IoUringRegister(255) = %v, want EINVAL", err)
	}
	m, err := sys.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	*(*byte)(m) = 1 // the memory is usable
	if err := sys.Munmap(m, 4096); err != nil {
		t.Fatal(err)
	}
	after := sys.Counts()
	for _, op := range []sys.Op{sys.OpIoUringSetup, sys.OpIoUringEnter, sys.OpIoUringRegister, sys.OpMmap, sys.OpMunmap} {
		if after[op]-before[op] != 1 {
			t.Errorf("%v counted %d times, want 1", op, after[op]-before[op])
		}
	}

	var seen sys.Call
	restore := sys.SetFilter(func(c *sys.Call) error {
		switch c.Op {
		case sys.OpIoUringSetup, sys.OpIoUringEnter:
			seen = *c
			return unix.EPERM
		}
		return nil
	})
	defer restore()
	*(*uint32)(unsafe.Pointer(&p[8])) = 1 << 12 // io_uring_params.flags
	if _, err := sys.IoUringSetup(8, unsafe.Pointer(&p)); !errors.Is(err, unix.EPERM) {
		t.Fatalf("IoUringSetup under a Filter failing it = %v, want EPERM", err)
	}
	if seen.FD != -1 || seen.Len != 8 || seen.Name != 1<<12 {
		t.Errorf("the Filter saw setup as %+v, want FD -1, Len 8 (entries), Name 0x1000 (flags)", seen)
	}
	if _, err := sys.IoUringEnter(fd, 3, 1, 1, nil, 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("IoUringEnter under a Filter failing it = %v, want EPERM", err)
	}
	if seen.FD != fd || seen.Len != 3 || seen.Level != 1 || seen.Name != 1 {
		t.Errorf("the Filter saw enter as %+v, want FD %d, Len 3, Level 1, Name 1", seen, fd)
	}
}
