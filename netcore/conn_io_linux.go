package netcore

import (
	"errors"
	"io"
	"math"
	"net"
	"os"
	"syscall"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// The copies the kernel can do without the data passing through user
// memory (sendfile(2) from a file, splice(2) between sockets through a
// pipe) and the vectored write (writev(2)). Each is an operation value of
// its own (op_linux.go), run by the descriptor like Read and Write, so
// deadlines, Close and both I/O modes hold.

// pipeChunk is how much one splice moves through the pipe: its default
// capacity.
const pipeChunk = 64 << 10

// ReadFrom copies from r until EOF (or an error) and returns the number of
// bytes written; io.Copy uses it. When r is a regular *os.File (possibly
// inside an *io.LimitedReader, or handed over by (*os.File).WriteTo,
// which io.Copy calls first) the kernel sends the file with
// sendfile(2), from the file's current offset, which it advances; when r
// is another *Conn, splice(2) moves the bytes through a pipe without
// copying them to user memory. Anything else, or a file sendfile does not
// take, is copied through a buffer. Errors are *net.OpError with Op
// "readfrom", as Go's net reports them.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	limit := int64(math.MaxInt64)
	src := r
	lr, limited := r.(*io.LimitedReader)
	if limited {
		if lr.N <= 0 {
			return 0, nil
		}
		limit, src = lr.N, lr.R
	}
	var n int64
	var handled bool
	var err error
	switch src := src.(type) {
	case *Conn:
		if src != c {
			n, handled, err = c.spliceFrom(src, limit)
		}
	case file:
		n, handled, err = c.sendfile(src, limit)
	}
	if limited {
		lr.N -= n
	}
	if !handled && err == nil {
		var m int64
		m, err = io.Copy(writerOnly{c}, r)
		n += m
	}
	if err != nil {
		// As Go's net: every failure of ReadFrom, the buffered copy's
		// included, is an *OpError with Op "readfrom".
		err = c.opErr("readfrom", err)
	}
	return n, err
}

// file is what sendfile needs of a source: an *os.File, or the wrapper
// (*os.File).WriteTo hands to io.Copy, which hides WriteTo but keeps
// these.
type file interface {
	syscall.Conn
	Stat() (os.FileInfo, error)
}

// WriteTo copies from c until EOF and returns the number of bytes
// written to w; io.Copy uses it. When w is another *Conn the bytes move
// with splice(2) (see ReadFrom); otherwise through a buffer.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if dst, ok := w.(*Conn); ok && dst != c {
		return dst.ReadFrom(c)
	}
	return io.Copy(w, readerOnly{c})
}

// writerOnly and readerOnly hide Conn's ReadFrom and WriteTo from io.Copy,
// for the buffered fallback.
type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

// Writev writes every buffer of bufs, in order, with writev(2): a header
// and a body held apart go out in one system call, without first being
// copied together. Like Write, it writes everything or returns an error,
// looping over short writes (and over IOV_MAX buffers at a time); n is the
// number of bytes written. bufs itself is not modified.
func (c *Conn) Writev(bufs [][]byte) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	wv := &c.writeOps().wv
	wv.start(bufs)
	err := c.fd.run(&wv.op)
	wv.finish()
	return wv.done, c.opErr("write", err)
}

// sendfile sends up to limit bytes of f with sendfile(2). handled is false
// when f is not a regular file or the kernel refuses it before any byte
// has moved: the caller copies instead.
func (c *Conn) sendfile(f file, limit int64) (n int64, handled bool, err error) {
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, false, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	sf := &c.writeOps().sf
	var runErr error
	cerr := rc.Control(func(ffd uintptr) {
		sf.src = int(ffd)
		sf.start(limit)
		runErr = c.fd.run(&sf.op)
	})
	if cerr != nil {
		return 0, false, nil // the file was closed: the copy reports it
	}
	n = sf.done
	if n == 0 && unsupported(runErr) {
		return 0, false, nil
	}
	return n, true, runErr
}

// spliceFrom moves up to limit bytes from src to c with splice(2), through
// a pipe: src's read side fills it, c's write side drains it, each with
// its own deadline and I/O mode. Bytes already taken from src when writing
// to c fails are lost with the connection, as in Go's net.
func (c *Conn) spliceFrom(src *Conn, limit int64) (n int64, handled bool, err error) {
	var p [2]int
	if err := sys.Pipe2(&p, unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return 0, false, nil
	}
	defer closeFD(p[0])
	defer closeFD(p[1])
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := &c.writeOps().spliceWr
	for n < limit {
		got, err := src.spliceIn(p[1], int(min(limit-n, pipeChunk)))
		if err != nil {
			if n == 0 && unsupported(err) {
				return 0, false, nil
			}
			return n, true, err
		}
		if got == 0 {
			break // src's EOF
		}
		out.pipe = p[0]
		out.start(int64(got))
		err = c.fd.run(&out.op)
		n += out.done
		if err != nil {
			return n, true, err
		}
	}
	return n, true, nil
}

// spliceIn moves up to max bytes from c into the pipe's write end w: a
// Read that lands in a pipe. 0 bytes means EOF.
func (c *Conn) spliceIn(w, max int) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.spliceRd == nil {
		c.spliceRd = new(spliceOp)
		c.spliceRd.init(dirRead)
	}
	in := c.spliceRd
	in.pipe = w
	in.start(int64(max))
	err := c.fd.run(&in.op)
	if err != nil {
		return 0, c.opErr("read", err)
	}
	return int(in.done), nil
}

// unsupported reports whether err says the kernel cannot do this copy
// between these descriptors at all, so that a plain copy should be made.
func unsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EOPNOTSUPP)
}

var (
	_ io.ReaderFrom = (*Conn)(nil)
	_ io.WriterTo   = (*Conn)(nil)
	_ net.Conn      = (*Conn)(nil)
)
