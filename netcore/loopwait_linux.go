package netcore

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
)

// How a loop waits for events.
//
// A loop blocked in epoll_wait(2) holds an OS thread in the kernel: Go's
// scheduler takes its P away after 20 us (sysmon), and every wake-up must
// get one back, waking threads with futexes on the way. Instead, a loop
// with nothing ready parks its goroutine in Go's own poller, where the
// loop's epoll descriptor is registered like a socket: the thread that
// runs Go's netpoll wakes up once and runs the loop at once, as it does
// for a goroutine blocked in a net.Conn's Read. Before parking, the loop
// asks its epoll instance once more without waiting (epoll_wait with a
// zero timeout): under load there is nearly always something, and the
// loop goes on without sleeping at all.
//
// The parked wait is edge-triggered on the epoll descriptor (Go's poller
// registers descriptors so): it reports when events arrive, not that some
// are left. That is why the loop only parks after an epoll_wait that found
// nothing: from then on any event makes the descriptor readable anew.
type loopWaiter struct {
	pw     *os.File // the epoll descriptor on Go's poller; nil: block in epoll_wait
	prc    syscall.RawConn
	waitFn func(uintptr) bool
	wn     int
	werr   error
	pwDue  int64 // the read deadline set on pw, on the Loop's clock; -1 none
}

// blockInEpoll makes loops block in epoll_wait on locked threads, as they
// did before they parked in Go's poller; NETCORE_LOOP_WAIT=block, for
// comparison.
var blockInEpoll = os.Getenv("NETCORE_LOOP_WAIT") == "block"

// initWait puts the loop's epoll descriptor on Go's poller; on failure
// the loop blocks in epoll_wait instead.
func (l *eventLoop) initWait() {
	l.pwDue = -1
	if blockInEpoll {
		return
	}
	if err := sys.SetNonblock(l.epfd, true); err != nil {
		return
	}
	f := os.NewFile(uintptr(l.epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return
	}
	l.pw, l.prc = f, rc
	l.waitFn = func(fd uintptr) bool {
		l.wn, l.werr = sys.EpollWait(int(fd), l.events, 0)
		return l.wn > 0 || l.werr != nil
	}
}

// wait returns the loop's next events: at once if some are ready, else
// when some arrive or the loop's deadline comes (0 events then).
func (l *eventLoop) wait() (int, error) {
	due := l.deadline()
	if l.pw == nil {
		return sys.EpollWait(l.epfd, l.events, l.msecUntil(due))
	}
	if due >= 0 && due <= l.clock() {
		return sys.EpollWait(l.epfd, l.events, 0)
	}
	if due != l.pwDue {
		t := time.Time{}
		if due >= 0 {
			t = l.lp.state.start.Add(time.Duration(due))
		}
		if err := l.pw.SetReadDeadline(t); err != nil {
			return 0, err
		}
		l.pwDue = due
	}
	l.wn, l.werr = 0, nil
	if err := l.prc.Read(l.waitFn); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		return 0, err
	}
	return l.wn, l.werr
}

// msecUntil is epoll_wait's timeout for a wake-up at due: -1 for never,
// rounded up to a millisecond.
func (l *eventLoop) msecUntil(due int64) int {
	if due < 0 {
		return -1
	}
	d := due - l.clock()
	if d <= 0 {
		return 0
	}
	return int(min((d+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<30))
}

// closeEpoll closes the loop's epoll descriptor.
func (l *eventLoop) closeEpoll() {
	if l.pw != nil {
		l.pw.Close()
		l.pw = nil
	} else if l.epfd >= 0 {
		closeFD(l.epfd)
	}
	l.epfd = -1
}

// goid returns the calling goroutine's id, from the first line of its
// stack trace ("goroutine 42 [running]:"); 0 if that cannot be read.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0
	}
	var id uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
