package sys

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EpollCreate1 wraps epoll_create1(2).
func EpollCreate1(flags int) (int, error) {
	if _, err := enter(Call{Op: OpEpollCreate, FD: -1}); err != nil {
		return -1, err
	}
	r, _, e := unix.RawSyscall(unix.SYS_EPOLL_CREATE1, uintptr(flags), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// EpollCtl wraps epoll_ctl(2). A Filter sees the descriptor being added,
// changed or removed as FD and the operation (unix.EPOLL_CTL_ADD, ...) as
// Name.
func EpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	if _, err := enter(Call{Op: OpEpollCtl, FD: fd, Name: op}); err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// EpollWait wraps epoll_pwait(2) with no signal mask, which is
// epoll_wait(2) (not every Linux architecture has the latter). msec < 0
// waits without a bound. A Filter sees the epoll descriptor as FD and
// len(events) as Len; lowering Len lowers how many events may come back.
func EpollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	n, err := enter(Call{Op: OpEpollWait, FD: epfd, Len: len(events)})
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		// epoll_wait rejects a zero-length array; one event is the least
		// a Filter can ask for.
		n = min(1, len(events))
	}
	var p unsafe.Pointer
	if len(events) > 0 {
		p = unsafe.Pointer(&events[0])
	}
	var r uintptr
	var e unix.Errno
	if msec == 0 {
		r, _, e = unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(p), uintptr(n), 0, 0, 0)
	} else {
		r, _, e = unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(p), uintptr(n), uintptr(msec), 0, 0)
	}
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Eventfd wraps eventfd2(2).
func Eventfd(initval uint, flags int) (int, error) {
	if _, err := enter(Call{Op: OpEventfd, FD: -1}); err != nil {
		return -1, err
	}
	r, _, e := unix.RawSyscall(unix.SYS_EVENTFD2, uintptr(initval), uintptr(flags), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Open wraps openat(2) relative to the working directory.
func Open(path string, flags int, mode uint32) (int, error) {
	if _, err := enter(Call{Op: OpOpen, FD: -1}); err != nil {
		return -1, err
	}
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	dirfd := unix.AT_FDCWD
	r, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags),
		uintptr(mode), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Wake adds 1 to an eventfd's counter: a write(2) of 8 bytes, counted as
// OpWake (not OpWrite, so that a Filter shortening writes leaves it alone).
func Wake(fd int) error {
	if _, err := enter(Call{Op: OpWake, FD: fd}); err != nil {
		return err
	}
	var one [8]byte // eventfd takes a uint64 in host order
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&one[0])), 8)
	return errnoErr(e)
}

// Gettid wraps gettid(2): the calling thread's id. It is not counted and
// no Filter sees it: the Loop asks it only to learn whether Shutdown was
// called from one of its own threads.
func Gettid() int { return unix.Gettid() }
