package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring calls take and fill the kernel's structures as raw memory, as
// Bind and Connect take a struct sockaddr's bytes: the structures and
// constants are defined once, in internal/uring/abi_linux.go. What a Filter
// sees of each call is documented on it.

// IoUringSetup wraps io_uring_setup(2): p points to a struct
// io_uring_params (120 bytes), which the kernel reads (flags, cq_entries)
// and fills (sizes, features, ring offsets). A Filter sees FD -1, the
// entries asked for as Len and the setup flags as Name; it can fail the call
// (EPERM for a seccomp filter, ENOSYS, EINVAL for a flag the kernel lacks,
// ENOMEM), and lowering Len does nothing.
func IoUringSetup(entries uint32, p unsafe.Pointer) (fd int, err error) {
	flags := *(*uint32)(unsafe.Add(p, 8)) // io_uring_params.flags
	if _, err := enter(Call{Op: OpIoUringSetup, FD: -1, Len: int(entries), Name: int(flags)}); err != nil {
		return -1, err
	}
	r, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(p), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// IoUringEnter wraps io_uring_enter(2): submit toSubmit entries from the
// submission queue and, with IORING_ENTER_GETEVENTS in flags, wait until
// minComplete completions are in the completion queue. arg and argSize are
// the sigset, or with IORING_ENTER_EXT_ARG a struct io_uring_getevents_arg
// (a bounded wait). It returns how many entries were submitted. A Filter
// sees the ring as FD, toSubmit as Len, minComplete as Level and the enter
// flags as Name; it can fail the call (EINTR, EBUSY, EAGAIN...), and
// lowering Len does nothing.
func IoUringEnter(fd int, toSubmit, minComplete uint32, flags uint32, arg unsafe.Pointer, argSize uintptr) (int, error) {
	if _, err := enter(Call{Op: OpIoUringEnter, FD: fd, Len: int(toSubmit), Level: int(minComplete), Name: int(flags)}); err != nil {
		return 0, err
	}
	var r uintptr
	var e unix.Errno
	if toSubmit == 0 && minComplete == 0 {
		// Nothing to send and no wait: only deferred completions to run.
		r, _, e = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), 0, 0, uintptr(flags), uintptr(arg), argSize)
	} else {
		// Sending (a large send may copy for a while) or waiting: the
		// scheduler must know.
		r, _, e = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete),
			uintptr(flags), uintptr(arg), argSize)
	}
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// IoUringRegister wraps io_uring_register(2). A Filter sees the ring as FD,
// the opcode as Name and nr as Len.
func IoUringRegister(fd int, opcode uint32, arg unsafe.Pointer, nr uint32) error {
	if _, err := enter(Call{Op: OpIoUringRegister, FD: fd, Len: int(nr), Name: int(opcode)}); err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(fd), uintptr(opcode), uintptr(arg), uintptr(nr), 0, 0)
	return errnoErr(e)
}

// Mmap wraps mmap(2) with no address hint: fd -1 with MAP_ANONYMOUS for
// plain memory, or a ring's descriptor and one of its magic offsets. The
// memory is outside Go's heap: the garbage collector neither scans nor
// moves it, so the kernel may keep its address. A Filter sees fd as FD and
// length as Len (lowering it does nothing).
func Mmap(fd int, offset int64, length int, prot, flags int) (unsafe.Pointer, error) {
	if _, err := enter(Call{Op: OpMmap, FD: fd, Len: length}); err != nil {
		return nil, err
	}
	r, _, e := unix.RawSyscall6(unix.SYS_MMAP, 0, uintptr(length), uintptr(prot), uintptr(flags), uintptr(fd), uintptr(offset))
	if e != 0 {
		return nil, e
	}
	// r is an address outside Go's heap; reading it through a pointer to
	// a uintptr turns it into a pointer without vet's uintptr-to-pointer
	// warning (the conversion is sound: nothing can move it).
	return *(*unsafe.Pointer)(unsafe.Pointer(&r)), nil
}

// Munmap wraps munmap(2) of memory Mmap returned. A Filter sees length as
// Len.
func Munmap(p unsafe.Pointer, length int) error {
	if _, err := enter(Call{Op: OpMunmap, FD: -1, Len: length}); err != nil {
		return err
	}
	_, _, e := unix.RawSyscall(unix.SYS_MUNMAP, uintptr(p), uintptr(length), 0)
	return errnoErr(e)
}
