package sys

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Op names a system call.
type Op uint8

// The calls netcore makes.
const (
	OpSocket Op = iota
	OpBind
	OpListen
	OpAccept
	OpConnect
	OpRead
	OpWrite
	OpWritev
	OpShutdown
	OpClose
	OpGetsockopt
	OpSetsockopt
	OpGetsockname
	OpGetpeername
	OpPoll
	OpFcntl
	OpTgkill
	OpSendfile
	OpSplice
	OpPipe
	OpEpollCreate // epoll_create1
	OpEpollCtl
	OpEpollWait // epoll_pwait, as epoll_wait
	OpEventfd
	OpOpen // openat, for the reserve descriptor
	OpWake // write(2) of 1 to an eventfd
	OpIoctl
	OpUnlink // unlinkat, for a Unix listener's socket file
	OpIoUringSetup
	OpIoUringEnter
	OpIoUringRegister
	OpMmap // mmap of an io_uring's rings, or anonymous memory for its buffers
	OpMunmap
	NumOps
)

var opNames = [NumOps]string{"socket", "bind", "listen", "accept4", "connect", "read", "write", "writev",
	"shutdown", "close", "getsockopt", "setsockopt", "getsockname", "getpeername", "poll", "fcntl", "tgkill",
	"sendfile", "splice", "pipe2",
	"epoll_create1", "epoll_ctl", "epoll_wait", "eventfd2", "openat", "write", "ioctl", "unlinkat",
	"io_uring_setup", "io_uring_enter", "io_uring_register", "mmap", "munmap"}

// String returns the system call's name, as os.NewSyscallError wants it.
func (o Op) String() string {
	if o < NumOps {
		return opNames[o]
	}
	return "op?"
}

// Call is a system call about to be made, as a Filter sees it.
type Call struct {
	Op    Op
	FD    int // the socket; -1 for socket(2) and poll(2)
	Len   int // read, write, writev: bytes asked for; a Filter may lower it to force a short transfer
	Level int // getsockopt, setsockopt
	Name  int // getsockopt, setsockopt
}

// A Filter sees every call before it is made. A non-nil error fails the call
// with that error, without making it. Otherwise the call is made, with Len
// lowered if the Filter lowered it (never raised). Filters run concurrently
// from many goroutines and must be safe for that.
type Filter func(c *Call) error

// counter is one shard of a call counter, on a cache line of its own.
type counter struct {
	atomic.Uint64
	_ [56]byte
}

// shards spreads each counter over cache lines by descriptor number, so
// that connections served on different cores do not all bump one line.
const shards = 16

var (
	filter atomic.Pointer[Filter]
	counts [NumOps][shards]counter
)

// SetFilter installs f (nil removes the filter) and returns a function that
// restores the previous one. Tests that install a filter must not run in
// parallel with other tests that make sockets.
func SetFilter(f Filter) (restore func()) {
	var p *Filter
	if f != nil {
		p = &f
	}
	old := filter.Swap(p)
	return func() { filter.Store(old) }
}

// Count returns how many times op has been called (including calls a Filter
// failed) since the process started.
func Count(op Op) (n uint64) {
	for i := range counts[op] {
		n += counts[op][i].Load()
	}
	return n
}

// Counts returns every counter.
func Counts() (c [NumOps]uint64) {
	for op := range c {
		c[op] = Count(Op(op))
	}
	return c
}

// Total sums the counters.
func Total() (n uint64) {
	for op := range NumOps {
		n += Count(op)
	}
	return n
}

// enter counts c and asks the Filter about it. It returns the length to
// use (c.Len, or less if the Filter lowered it). c is passed by value and
// copied to the heap only when a Filter is installed, so the common path
// allocates nothing.
func enter(c Call) (int, error) {
	counts[c.Op][c.FD&(shards-1)].Add(1)
	f := filter.Load()
	if f == nil {
		return c.Len, nil
	}
	return consult(*f, c)
}

func consult(f Filter, c Call) (int, error) {
	limit := c.Len
	cp := c
	if err := f(&cp); err != nil {
		return 0, err
	}
	if cp.Len > limit || cp.Len < 0 {
		return limit, nil
	}
	return cp.Len, nil
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// Socket wraps socket(2).
func Socket(domain, typ, proto int) (int, error) {
	if _, err := enter(Call{Op: OpSocket, FD: -1}); err != nil {
		return -1, err
	}
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(domain), uintptr(typ), uintptr(proto))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Bind wraps bind(2); sa holds the raw bytes of a struct sockaddr.
func Bind(fd int, sa []byte) error {
	if _, err := enter(Call{Op: OpBind, FD: fd}); err != nil {
		return err
	}
	_, _, e := unix.RawSyscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(sa))), uintptr(len(sa)))
	return errnoErr(e)
}

// Listen wraps listen(2).
func Listen(fd, backlog int) error {
	if _, err := enter(Call{Op: OpListen, FD: fd}); err != nil {
		return err
	}
	_, _, e := unix.RawSyscall(unix.SYS_LISTEN, uintptr(fd), uintptr(backlog), 0)
	return errnoErr(e)
}

// Accept4 wraps accept4(2). The peer's address is written into sa (which
// should hold at least 28 bytes); n is how many bytes of it the kernel
// filled.
func Accept4(fd int, sa []byte, flags int) (nfd, n int, err error) {
	if _, err := enter(Call{Op: OpAccept, FD: fd}); err != nil {
		return -1, 0, err
	}
	l := uint32(len(sa))
	r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(sa))),
		uintptr(unsafe.Pointer(&l)), uintptr(flags), 0, 0)
	if e != 0 {
		return -1, 0, e
	}
	return int(r), int(min(l, uint32(len(sa)))), nil
}

// Connect wraps connect(2); sa holds the raw bytes of a struct sockaddr.
func Connect(fd int, sa []byte) error {
	if _, err := enter(Call{Op: OpConnect, FD: fd}); err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(sa))), uintptr(len(sa)))
	return errnoErr(e)
}

// Read wraps read(2).
func Read(fd int, p []byte) (int, error) {
	n, err := enter(Call{Op: OpRead, FD: fd, Len: len(p)})
	if err != nil {
		return -1, err
	}
	r, _, e := unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(n))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Write wraps write(2).
func Write(fd int, p []byte) (int, error) {
	n, err := enter(Call{Op: OpWrite, FD: fd, Len: len(p)})
	if err != nil {
		return -1, err
	}
	r, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(n))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Writev wraps writev(2). A Filter's Len limits the total: iovecs past it
// are dropped and the last one is cut.
func Writev(fd int, iov []unix.Iovec) (int, error) {
	total := 0
	for i := range iov {
		total += int(iov[i].Len)
	}
	n, err := enter(Call{Op: OpWritev, FD: fd, Len: total})
	if err != nil {
		return -1, err
	}
	if n < total {
		iov = cutIovecs(iov, n)
	}
	r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// cutIovecs returns a copy of iov that holds only its first n bytes.
func cutIovecs(iov []unix.Iovec, n int) []unix.Iovec {
	out := make([]unix.Iovec, 0, len(iov))
	for _, v := range iov {
		if n <= 0 {
			break
		}
		if int(v.Len) > n {
			v.SetLen(n)
		}
		n -= int(v.Len)
		out = append(out, v)
	}
	return out
}

// Shutdown wraps shutdown(2).
func Shutdown(fd, how int) error {
	if _, err := enter(Call{Op: OpShutdown, FD: fd}); err != nil {
		return err
	}
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errnoErr(e)
}

// Close wraps close(2). netcore calls it for a descriptor the runtime does
// not own; for one it does, netcore calls CountClose and lets
// (*os.File).Close do the work. It is an ordinary system call, not a raw
// one: with SO_LINGER set, close blocks, and the scheduler must know.
func Close(fd int) error {
	if _, err := enter(Call{Op: OpClose, FD: fd}); err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}

// Sendfile wraps sendfile(2) from the current offset of file descriptor
// in (a nil offset: the kernel advances it) to out, at most n bytes. A
// Filter's Len lowers n.
func Sendfile(out, in, n int) (int, error) {
	n, err := enter(Call{Op: OpSendfile, FD: out, Len: n})
	if err != nil {
		return -1, err
	}
	r, _, e := unix.Syscall6(unix.SYS_SENDFILE, uintptr(out), uintptr(in), 0, uintptr(n), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Splice wraps splice(2) between descriptors in and out (one of them a
// pipe), at most n bytes, with no offsets. FD is the socket end, fd.
// A Filter's Len lowers n.
func Splice(fd, in, out, n, flags int) (int, error) {
	n, err := enter(Call{Op: OpSplice, FD: fd, Len: n})
	if err != nil {
		return -1, err
	}
	r, _, e := unix.Syscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), uintptr(flags))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Pipe2 wraps pipe2(2): p[0] is the read end, p[1] the write end.
func Pipe2(p *[2]int, flags int) error {
	if _, err := enter(Call{Op: OpPipe, FD: -1}); err != nil {
		return err
	}
	var fds [2]int32
	_, _, e := unix.RawSyscall(unix.SYS_PIPE2, uintptr(unsafe.Pointer(&fds)), uintptr(flags), 0)
	if e != 0 {
		return e
	}
	p[0], p[1] = int(fds[0]), int(fds[1])
	return nil
}

// Tgkill wraps tgkill(2): it sends sig to thread tid of process pid.
// netcore uses it to interrupt its own calls blocked on a socket.
func Tgkill(pid, tid int, sig unix.Signal) error {
	if _, err := enter(Call{Op: OpTgkill, FD: -1}); err != nil {
		return err
	}
	_, _, e := unix.RawSyscall(unix.SYS_TGKILL, uintptr(pid), uintptr(tid), uintptr(sig))
	return errnoErr(e)
}

// CountClose records a close(2) that the runtime makes on netcore's behalf.
func CountClose() { counts[OpClose][0].Add(1) }

// Getsockopt wraps getsockopt(2); val is the option's buffer and n the
// length the kernel filled.
func Getsockopt(fd, level, name int, val []byte) (n int, err error) {
	if _, err := enter(Call{Op: OpGetsockopt, FD: fd, Level: level, Name: name}); err != nil {
		return 0, err
	}
	l := uint32(len(val))
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name),
		uintptr(unsafe.Pointer(unsafe.SliceData(val))), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return int(l), nil
}

// Setsockopt wraps setsockopt(2); val is the option's bytes.
func Setsockopt(fd, level, name int, val []byte) error {
	if _, err := enter(Call{Op: OpSetsockopt, FD: fd, Level: level, Name: name}); err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name),
		uintptr(unsafe.Pointer(unsafe.SliceData(val))), uintptr(len(val)), 0)
	return errnoErr(e)
}

// Getsockname wraps getsockname(2), writing the address into sa.
func Getsockname(fd int, sa []byte) (n int, err error) {
	return sockname(OpGetsockname, unix.SYS_GETSOCKNAME, fd, sa)
}

// Getpeername wraps getpeername(2), writing the address into sa.
func Getpeername(fd int, sa []byte) (n int, err error) {
	return sockname(OpGetpeername, unix.SYS_GETPEERNAME, fd, sa)
}

func sockname(op Op, trap uintptr, fd int, sa []byte) (int, error) {
	if _, err := enter(Call{Op: op, FD: fd}); err != nil {
		return 0, err
	}
	l := uint32(len(sa))
	_, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(sa))), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return 0, e
	}
	return int(min(l, uint32(len(sa)))), nil
}

// Poll wraps ppoll(2), as poll(2) with a timeout in nanoseconds (negative:
// wait without a bound). Every Linux architecture has ppoll; not all have
// poll.
func Poll(fds []unix.PollFd, timeoutNs int64) (int, error) {
	if _, err := enter(Call{Op: OpPoll, FD: -1}); err != nil {
		return 0, err
	}
	var ts *unix.Timespec
	if timeoutNs >= 0 {
		t := unix.NsecToTimespec(timeoutNs)
		ts = &t
	}
	r, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(unsafe.SliceData(fds))), uintptr(len(fds)),
		uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// SetNonblock turns O_NONBLOCK on or off with fcntl(2) (F_GETFL, F_SETFL;
// counted as two fcntl calls).
func SetNonblock(fd int, nonblocking bool) error {
	if _, err := enter(Call{Op: OpFcntl, FD: fd}); err != nil {
		return err
	}
	flags, _, e := unix.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_GETFL, 0)
	if e != 0 {
		return e
	}
	if nonblocking {
		flags |= unix.O_NONBLOCK
	} else {
		flags &^= unix.O_NONBLOCK
	}
	if _, err := enter(Call{Op: OpFcntl, FD: fd}); err != nil {
		return err
	}
	_, _, e = unix.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_SETFL, flags)
	return errnoErr(e)
}

// Unread wraps ioctl(2) SIOCINQ (FIONREAD): the bytes waiting in a
// socket's receive queue.
func Unread(fd int) (int, error) {
	if _, err := enter(Call{Op: OpIoctl, FD: fd}); err != nil {
		return 0, err
	}
	var n int32
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCINQ, uintptr(unsafe.Pointer(&n)))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// Unlink wraps unlinkat(2) with AT_FDCWD (unlink(2) for a path relative to
// the working directory): it removes a Unix listener's socket file.
func Unlink(path string) error {
	if _, err := enter(Call{Op: OpUnlink, FD: -1}); err != nil {
		return err
	}
	return unix.Unlinkat(unix.AT_FDCWD, path, 0)
}
