package netcore

import (
	"io"
	"os"
	"syscall"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// The I/O operations. Each kind of call a socket makes is its own small
// value that describes it: which system call, which descriptors besides
// the socket, which buffers, how far it has got. Nothing is borrowed or
// mutated between kinds: a Conn holds one value per kind, bound once, so
// running one allocates nothing. A descriptor runs any of them with the
// one retry loop (op.try); a completion-based mode would read the same
// value to submit it instead of making the call.
//
//	readOp      read(2) into buf                        Read
//	writeOp     write(2) of buf                         Write
//	writevOp    writev(2) of bufs                       Writev
//	sendfileOp  sendfile(2) from the file src           ReadFrom a file
//	spliceOp    splice(2) between the socket and pipe   ReadFrom/WriteTo another Conn
//	acceptOp    accept4(2), decoding the peer's address Listener.Accept

// An op is the state the retry loop keeps for one operation value: its
// direction (whose deadline bounds it), the call's name for errors, the
// outcome of the last run, and the callback the runtime poller calls.
type op struct {
	dir    direction
	name   string // the system call, for os.NewSyscallError
	accept bool   // errors are classified as accept4's
	owner  attempter
	err    error              // the error that ended the last run, if any
	pollFn func(uintptr) bool // try, as the runtime poller calls it; bound on first use
}

// An attempter makes an op's system call once, keeping what it returned in
// its own fields. done reports whether the op is complete: a write may
// need more calls after a short one.
type attempter interface {
	attempt(o *op, s int) (done bool, err error)
}

func (o *op) init(d direction, name string, accept bool, owner attempter) {
	o.dir, o.name, o.accept, o.owner = d, name, accept, owner
}

// try is netcore's one retry loop around a system call. It calls attempt
// until the op completes or fails (the result is in o.err, and try
// returns true) or the socket is not ready (false: wait, then call try
// again). A call interrupted by a signal (EINTR) is made again at once,
// unless interruptible is set: then it returns false too, so that a
// blocking-mode caller looks at its deadline and at Close before calling
// again, since netcore interrupts its own blocked calls to make them do
// exactly that.
func (o *op) try(s int, interruptible bool) bool {
	for {
		done, err := o.owner.attempt(o, s)
		switch classify(err, o.accept) {
		case interrupted:
			if interruptible {
				return false
			}
			continue
		case retry:
			if interruptible {
				return false
			}
			continue
		case wait:
			return false
		}
		if err != nil || done {
			if errno, ok := err.(syscall.Errno); ok {
				err = os.NewSyscallError(o.name, errno)
			}
			o.err = err
			return true
		}
		if interruptible {
			// Progress, not done (a short write): back to the caller,
			// which looks at the deadline before the next call, since
			// each call starts a fresh kernel timeout.
			return false
		}
	}
}

func (o *op) pollTry(s uintptr) bool { return o.try(int(s), false) }

// progress is how far a transfer that may take several calls has got:
// done bytes moved, left still to move.
type progress struct {
	done, left int64
}

func (p *progress) start(n int64) { p.done, p.left = 0, n }

// advance records a call that moved n of the bytes left, and reports
// whether none are left. A call that moved nothing while bytes were left
// cannot make progress: the transfer ends with io.ErrUnexpectedEOF.
func (p *progress) advance(n int) (bool, error) {
	if n == 0 {
		return true, io.ErrUnexpectedEOF
	}
	p.done += int64(n)
	p.left -= int64(n)
	return p.left == 0, nil
}

// acceptOp is one accept4(2) with the mode's flags: nfd and peer are the
// connection it took.
type acceptOp struct {
	op
	flags int
	sabuf sockaddrBuf
	nfd   int
	peer  Sockaddr
}

func (a *acceptOp) init(flags int) {
	a.flags = flags
	a.op.init(dirRead, "accept4", true, a)
}

func (a *acceptOp) attempt(_ *op, s int) (bool, error) {
	nfd, n, err := sys.Accept4(s, a.sabuf[:], a.flags)
	if err != nil {
		return false, err
	}
	peer, err := decodeSockaddr(a.sabuf[:n])
	if err != nil {
		// A peer whose address netcore cannot hold (a Unix socket bound
		// to a path that fills sun_path, or starts with "@"): dropped,
		// as a connection reset in the queue is, and the next one
		// taken. Failing Accept would stop a Server.
		closeFD(nfd)
		return false, nil
	}
	a.nfd, a.peer = nfd, peer
	return true, nil
}

// readOp is one read(2) into buf; n is what it read, 0 at EOF.
type readOp struct {
	op
	buf []byte
	n   int
}

func (r *readOp) init() { r.op.init(dirRead, "read", false, r) }

func (r *readOp) attempt(_ *op, s int) (bool, error) {
	n, err := sys.Read(s, r.buf)
	if err != nil {
		return false, err
	}
	r.n = n
	return true, nil
}

// writeOp is write(2) of all of buf, over as many calls as it takes.
type writeOp struct {
	op
	buf []byte
	progress
}

func (w *writeOp) init() { w.op.init(dirWrite, "write", false, w) }

func (w *writeOp) attempt(_ *op, s int) (bool, error) {
	if w.left == 0 {
		return true, nil
	}
	n, err := sys.Write(s, w.buf[w.done:])
	if err != nil {
		return false, err
	}
	return w.advance(n)
}

// iovMax is IOV_MAX: the most iovecs one writev takes.
const iovMax = 1024

// writevOp is writev(2) of every buffer of bufs in order, over as many
// calls as it takes (and IOV_MAX buffers at a time). bufs itself is never
// modified: vi and voff say where the next call starts.
type writevOp struct {
	op
	bufs [][]byte
	vi   int          // the first buffer not wholly written
	voff int          // how much of it is
	iov  []unix.Iovec // the last call's iovecs, kept for the next call
	progress
}

func (w *writevOp) init() { w.op.init(dirWrite, "writev", false, w) }

// start sets w up to write bufs.
func (w *writevOp) start(bufs [][]byte) {
	var total int64
	for _, b := range bufs {
		total += int64(len(b))
	}
	w.bufs, w.vi, w.voff = bufs, 0, 0
	w.progress.start(total)
}

// finish drops w's references to the caller's buffers.
func (w *writevOp) finish() {
	w.bufs = nil
	clear(w.iov)
}

func (w *writevOp) attempt(_ *op, s int) (bool, error) {
	if w.left == 0 {
		return true, nil
	}
	iov := w.iov[:0]
	for i := w.vi; i < len(w.bufs) && len(iov) < iovMax; i++ {
		b := w.bufs[i]
		if i == w.vi {
			b = b[w.voff:]
		}
		if len(b) == 0 {
			continue
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	w.iov = iov
	n, err := sys.Writev(s, iov)
	if err != nil {
		return false, err
	}
	done, err := w.advance(n)
	for n > 0 {
		left := len(w.bufs[w.vi]) - w.voff
		if n < left {
			w.voff += n
			break
		}
		n -= left
		w.vi, w.voff = w.vi+1, 0
	}
	return done, err
}

// maxChunk bounds one sendfile call, as Go's net does: a call returns
// after at most this much, so a deadline or Close is looked at between
// chunks.
const maxChunk = 4 << 20

// sendfileOp is sendfile(2) of up to left bytes from the file src, from
// its current offset (which the kernel advances), over as many calls as
// it takes; it ends early at the end of the file.
type sendfileOp struct {
	op
	src int
	progress
}

func (f *sendfileOp) init() { f.op.init(dirWrite, "sendfile", false, f) }

func (f *sendfileOp) attempt(_ *op, s int) (bool, error) {
	if f.left == 0 {
		return true, nil
	}
	n, err := sys.Sendfile(s, f.src, int(min(f.left, maxChunk)))
	if err != nil {
		return false, err
	}
	if n == 0 {
		return true, nil // end of file
	}
	return f.advance(n)
}

// spliceOp is splice(2) between the socket and a pipe. Reading (dirRead)
// it is one call that moves up to left bytes from the socket into pipe,
// the pipe's write end (done is what it moved, 0 at EOF); writing, it
// moves all left bytes from pipe, the read end, into the socket, over as
// many calls as it takes.
type spliceOp struct {
	op
	pipe int
	progress
}

func (p *spliceOp) init(d direction) { p.op.init(d, "splice", false, p) }

const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

func (p *spliceOp) attempt(_ *op, s int) (bool, error) {
	if p.dir == dirRead {
		n, err := sys.Splice(s, s, p.pipe, int(p.left), spliceFlags)
		if err != nil {
			return false, err
		}
		p.done = int64(n)
		return true, nil
	}
	if p.left == 0 {
		return true, nil
	}
	n, err := sys.Splice(s, p.pipe, s, int(p.left), spliceFlags)
	if err != nil {
		return false, err
	}
	return p.advance(n)
}
