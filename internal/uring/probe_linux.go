package uring

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// Probe is the kernel's answer to IORING_REGISTER_PROBE (5.6): which
// opcodes it supports.
type Probe struct {
	lastOp uint8
	ops    [256]bool
}

// Probe asks the kernel which opcodes it supports.
func (r *Ring) Probe() (*Probe, error) {
	var buf struct {
		h   probeHeader
		ops [256]probeOp
	}
	if err := sys.IoUringRegister(r.fd, IORING_REGISTER_PROBE, unsafe.Pointer(&buf), uint32(len(buf.ops))); err != nil {
		return nil, os.NewSyscallError("io_uring_register", err)
	}
	p := &Probe{lastOp: buf.h.LastOp}
	for _, op := range buf.ops[:buf.h.OpsLen] {
		p.ops[op.Op] = op.Flags&IO_URING_OP_SUPPORTED != 0
	}
	return p, nil
}

// Supports reports whether the kernel supports opcode op.
func (p *Probe) Supports(op uint8) bool { return p.ops[op] }

// need is a kernel capability the Loop's io_uring backend relies on, with
// how it is recognised.
type need struct {
	op      uint8  // an opcode the probe must list
	what    string // what is missing, for the error
	release string // the first Linux release with it
}

// needs are checked in order; the first missing one is the error. Flags
// of an opcode have no probe bit: multishot accept and buffer rings came
// in 5.19 with IORING_OP_SOCKET, multishot receive in 6.0 with
// IORING_OP_SEND_ZC, so those opcodes stand for them.
var needs = [...]need{
	{IORING_OP_NOP, "IORING_OP_NOP", "5.1"},
	{IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD", "5.1"},
	{IORING_OP_ACCEPT, "IORING_OP_ACCEPT", "5.5"},
	{IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL", "5.5"},
	{IORING_OP_CLOSE, "IORING_OP_CLOSE", "5.6"},
	{IORING_OP_READ, "IORING_OP_READ", "5.6"},
	{IORING_OP_SEND, "IORING_OP_SEND", "5.6"},
	{IORING_OP_RECV, "IORING_OP_RECV", "5.6"},
	{IORING_OP_SOCKET, "multishot accept, provided buffer rings and cancellation by descriptor (IORING_OP_SOCKET, from the same release, is missing)", "5.19"},
	{IORING_OP_SEND_ZC, "multishot receive (IORING_OP_SEND_ZC, from the same release, is missing)", "6.0"},
}

// missing returns what the Loop needs that p lacks, as an error, or nil.
func (p *Probe) missing() error {
	for _, n := range needs {
		if !p.Supports(n.op) {
			return &UnavailableError{Reason: fmt.Sprintf("the kernel lacks %s (Linux %s or later needed)", n.what, n.release)}
		}
	}
	return nil
}

// UnavailableError says why io_uring cannot be used. It wraps the errno
// behind it, if any.
type UnavailableError struct {
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string { return e.Reason }
func (e *UnavailableError) Unwrap() error { return e.Err }

// disabledPath is the sysctl kernel.io_uring_disabled (6.6): 0 allowed, 1
// only for the group kernel.io_uring_group (and root), 2 disabled. Tests
// point it elsewhere.
var disabledPath = "/proc/sys/kernel/io_uring_disabled"

// ioUringDisabled reads kernel.io_uring_disabled, -1 when unknown (a kernel
// without it, or no /proc).
func ioUringDisabled() int {
	fd, err := sys.Open(disabledPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	defer sys.Close(fd)
	var b [16]byte
	n, err := sys.Read(fd, b[:])
	if err != nil || n <= 0 {
		return -1
	}
	v, err := strconv.Atoi(string(bytes.TrimSpace(b[:n])))
	if err != nil {
		return -1
	}
	return v
}

// Available reports whether the Loop's io_uring backend can run here, and
// if not, exactly why, as an *UnavailableError: io_uring disabled by
// sysctl, io_uring_setup refused (EPERM from a seccomp filter or the
// sysctl, ENOSYS, ENOMEM), or a kernel without an opcode or feature the
// backend needs. It makes and closes a small ring with the options the
// Loop uses, on the calling goroutine's thread.
func Available() error {
	disabled := ioUringDisabled()
	if disabled == 2 {
		return &UnavailableError{Reason: "io_uring is disabled (kernel.io_uring_disabled = 2)", Err: unix.EPERM}
	}
	runtime.LockOSThread() // SINGLE_ISSUER: setup and registrations on one thread
	defer runtime.UnlockOSThread()
	r, err := New(4, Options{})
	if err != nil {
		return setupError(err, disabled)
	}
	defer r.Close()
	switch {
	case r.features&IORING_FEAT_SINGLE_MMAP == 0:
		return &UnavailableError{Reason: "the kernel lacks IORING_FEAT_SINGLE_MMAP (Linux 5.4 or later needed)"}
	case r.features&IORING_FEAT_NODROP == 0:
		return &UnavailableError{Reason: "the kernel lacks IORING_FEAT_NODROP (Linux 5.5 or later needed)"}
	case r.features&IORING_FEAT_EXT_ARG == 0:
		return &UnavailableError{Reason: "the kernel lacks IORING_FEAT_EXT_ARG, bounded waits (Linux 5.11 or later needed)"}
	}
	p, err := r.Probe()
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return &UnavailableError{Reason: "the kernel lacks IORING_REGISTER_PROBE (Linux 5.6 or later needed)", Err: err}
		}
		return &UnavailableError{Reason: "io_uring probe: " + err.Error(), Err: err}
	}
	if err := p.missing(); err != nil {
		return err
	}
	b, err := r.NewBufRing(0, 1, 1)
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return &UnavailableError{Reason: "the kernel lacks IORING_REGISTER_PBUF_RING, provided buffer rings (Linux 5.19 or later needed)", Err: err}
		}
		return &UnavailableError{Reason: "io_uring buffer ring: " + err.Error(), Err: err}
	}
	return b.Close()
}

// setupError explains a failed io_uring_setup.
func setupError(err error, disabled int) error {
	var why string
	switch {
	case errors.Is(err, unix.EPERM) && disabled == 1:
		why = "kernel.io_uring_disabled = 1 and this process is neither privileged nor in kernel.io_uring_group"
	case errors.Is(err, unix.EPERM):
		why = "a seccomp filter, as container runtimes install by default, or a security module"
	case errors.Is(err, unix.ENOSYS):
		why = "a kernel older than 5.1 or built without CONFIG_IO_URING, or a seccomp filter answering ENOSYS"
	case errors.Is(err, unix.ENOMEM):
		why = "RLIMIT_MEMLOCK too low for the rings, as kernels before 5.12 count them, or memory exhausted"
	case errors.Is(err, unix.EINVAL):
		why = "the kernel refuses even the oldest setup flags"
	default:
		return &UnavailableError{Reason: err.Error(), Err: err}
	}
	return &UnavailableError{Reason: err.Error() + " (" + why + ")", Err: err}
}
