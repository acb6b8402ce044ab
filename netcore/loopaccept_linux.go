package netcore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// A serving is one Serve call: its listener, watched by an acceptor on
// every loop. Each loop accepts the connections it will own, so that a new
// connection costs no hand-off between threads. Either every loop's epoll
// instance watches the one listening socket with EPOLLEXCLUSIVE (the
// kernel wakes one loop waiting, not all of them), or, with
// Loop.ReusePort, each loop has a listening socket of its own in an
// SO_REUSEPORT group (the kernel spreads connections among them by a hash
// of their addresses).
type serving struct {
	l       net.Listener // closed when the last acceptor is removed
	members []*acceptor  // one per loop, in the loops' order
	shared  bool         // the members watch one socket (not ReusePort)
	tls     *tls.Config  // ServeTLS's: every connection does a handshake first

	mu       sync.Mutex
	left     int   // members not removed yet
	err      error // what Serve returns
	stopping bool  // a member failed: the others were asked to stop
	done     chan error
}

// newServing prepares the acceptors for l, one per loop (siblings of l on
// its address with ReusePort); the caller holds lp.state.mu.
func (lp *Loop) newServing(l net.Listener, rc syscall.RawConn, addr Sockaddr, config *tls.Config) (*serving, error) {
	st := &lp.state
	g := &serving{l: l, tls: config, left: len(st.loops), done: make(chan error, 1)}
	var local Sockaddr
	if !addr.Addr().IsUnspecified() {
		local = addr
	}
	network := l.Addr().Network()
	// Edge-triggered: a loop that leaves the new connections to another
	// must not be told again and again that they wait.
	events := uint32(unix.EPOLLIN | unix.EPOLLET)
	g.shared = len(st.loops) > 1 && !lp.ReusePort
	if g.shared {
		events |= unix.EPOLLEXCLUSIVE
	}
	var sibs []*Listener
	if lp.ReusePort && len(st.loops) > 1 {
		var err error
		if sibs, err = reusePortSiblings(l, rc, addr, len(st.loops)-1); err != nil {
			return nil, err
		}
	}
	for i, loop := range st.loops {
		a := &acceptor{g: g, l: l, rc: rc, addr: addr, local: local, network: network, events: events,
			loop: loop, removed: make(chan struct{}), settled: make(chan struct{})}
		if i > 0 && sibs != nil {
			a.own = sibs[i-1]
			a.l = a.own
			a.rc, _ = a.own.SyscallConn() // a *Listener's never fails
		}
		a.fn = a.acceptOnce
		a.pos = len(g.members)
		g.members = append(g.members, a)
	}
	return g, nil
}

// reusePortSiblings opens n more listening sockets on l's address, in l's
// SO_REUSEPORT group: l must have SO_REUSEPORT set. Each takes l's options
// that the kernel can report (inherited), so that a connection gets the
// same options whichever socket accepts it; the backlog cannot be read
// back, and the siblings have the system's maximum.
func reusePortSiblings(l net.Listener, rc syscall.RawConn, addr Sockaddr, n int) ([]*Listener, error) {
	if addr.IsUnix() {
		return nil, fmt.Errorf("netcore: Loop.ReusePort: listener %s is a Unix socket; SO_REUSEPORT groups are TCP's (leave ReusePort off: the loops share the socket)", addr)
	}
	var reuse, v6only int
	var device string
	var opts []inherited
	var serr error
	if cerr := rc.Control(func(fd uintptr) {
		s := int(fd)
		if reuse, serr = getInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT); serr != nil {
			return
		}
		if addr.Is6() {
			if v6only, serr = getInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); serr != nil {
				return
			}
		}
		if device, serr = getDevice(s); serr != nil {
			return
		}
		opts, serr = readInherited(s)
	}); cerr != nil {
		serr = cerr
	}
	if serr != nil {
		return nil, fmt.Errorf("netcore: Loop.Serve: the options of listener %s: %w", addr, serr)
	}
	if reuse == 0 {
		return nil, fmt.Errorf("netcore: Loop.ReusePort: listener %s does not have SO_REUSEPORT set (listen with ListenConfig{ReusePort: true})", addr)
	}
	lc := ListenConfig{ReusePort: true, V6Only: v6only == 1, Device: device,
		Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) { err = writeInherited(int(fd), opts) }); cerr != nil {
				return cerr
			}
			return err
		}}
	sibs := make([]*Listener, 0, n)
	for range n {
		s, err := lc.listen("tcp", addr, "")
		if err != nil {
			for _, s := range sibs {
				s.Close()
			}
			return nil, fmt.Errorf("netcore: Loop.ReusePort: another listening socket on %s: %w", addr, err)
		}
		sibs = append(sibs, s)
	}
	return sibs, nil
}

// An inherited option is one a listening socket passes on to the
// connections it accepts, read back from it.
type inherited struct{ level, name, value int }

// inheritedOptions are what readInherited reads: keep-alive and its
// timing, Nagle, the buffer sizes (the kernel reports twice what was set,
// and doubles what is set: halved back), TCP_DEFER_ACCEPT.
var inheritedOptions = []struct{ level, name, div int }{
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
	{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 1},
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 1},
	{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 1},
	{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	{unix.SOL_SOCKET, unix.SO_RCVBUF, 2},
	{unix.SOL_SOCKET, unix.SO_SNDBUF, 2},
	{unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1},
}

func readInherited(s int) ([]inherited, error) {
	opts := make([]inherited, 0, len(inheritedOptions))
	for _, o := range inheritedOptions {
		v, err := getInt(s, o.level, o.name)
		if err != nil {
			return nil, err
		}
		opts = append(opts, inherited{o.level, o.name, v / o.div})
	}
	return opts, nil
}

func writeInherited(s int, opts []inherited) error {
	for _, o := range opts {
		if err := setInt(s, o.level, o.name, o.value); err != nil {
			return err
		}
	}
	return nil
}

// removed takes note that a stopped accepting, for reason err: the first
// error other than ErrLoopClosed is what Serve returns, and stops the
// other members too. The last member closes the listener and ends Serve.
func (g *serving) removed(a *acceptor, err error) {
	g.mu.Lock()
	if g.err == nil || (errors.Is(g.err, ErrLoopClosed) && !errors.Is(err, ErrLoopClosed)) {
		g.err = err
	}
	stop := !errors.Is(err, ErrLoopClosed) && !g.stopping
	if stop {
		g.stopping = true
	}
	g.left--
	last := g.left == 0
	g.mu.Unlock()
	if stop {
		for _, m := range g.members {
			if m != a {
				// A loop that has exited released its member already.
				m.loop.post(task{kind: taskUnlisten, a: m})
			}
		}
	}
	if last {
		g.l.Close()
		g.done <- g.err
	}
}

// acceptor is one loop's watch on a serving's listening socket. Everything
// in it belongs to that loop.
type acceptor struct {
	g       *serving
	l       net.Listener // the socket this loop accepts on: g.l, or own
	own     *Listener    // with ReusePort: this loop's own listening socket
	rc      syscall.RawConn
	addr    Sockaddr // the listener's address
	network string
	events  uint32 // EPOLLIN|EPOLLET, with EPOLLEXCLUSIVE when the loops share the socket
	// open is true while the loop's epoll instance watches the listener
	// (not backing off, not removed): only then may another loop leave
	// new connections to it.
	open    atomic.Bool
	queued  bool // in the loop's acceptQ: connections may be left to accept
	loop    *eventLoop
	pos     int // in g.members
	idx     int
	local   Sockaddr // the listener's address, unless it is a wildcard
	fn      func(uintptr)
	sa      sockaddrBuf
	nfd     int
	salen   int
	err     error
	backoff time.Duration
	rearmAt int64  // while backing off: when to watch the listener again
	nextLog int64  // when the next resource-limit message may be logged
	lfd     int    // the listening socket's descriptor (io_uring watches it)
	gen     uint32 // io_uring: which watch of the listener is current, modulo genMask+1
	removed chan struct{}
	ended   bool
	// settled is closed once the loop has watched the listener or given
	// up: Serve registers the loops one after the other, so that the
	// kernel's exclusive wake-up tries them in the loops' order.
	settled     chan struct{}
	settledOnce sync.Once
}

func (a *acceptor) settle() { a.settledOnce.Do(func() { close(a.settled) }) }

// acceptOnce is the accept callback: one accept4(2), retried on EINTR and
// on the errors that concern only the connection being accepted.
func (a *acceptor) acceptOnce(s uintptr) {
	for {
		nfd, n, err := sys.Accept4(int(s), a.sa[:], unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if again(err, true) {
			continue
		}
		a.nfd, a.salen, a.err = nfd, n, err
		return
	}
}

// release ends a's part: its own socket closed, its removal reported.
func (a *acceptor) release(err error) {
	if !a.ended {
		a.ended = true
		a.settle()
		if a.own != nil {
			a.own.Close()
		}
		close(a.removed)
		a.g.removed(a, err)
	}
}

func (a *acceptor) opErr(err error) error {
	return opError("accept", a.network, a.addr, Sockaddr{}, err)
}

// listen starts watching a's listener (edge-triggered: see newServing).
func (l *eventLoop) listen(a *acceptor) {
	if a.ended {
		return // stopped before it started: Serve registers the loops one by one, and Shutdown may come in between
	}
	if l.forcing || l.draining {
		a.release(ErrLoopClosed)
		return
	}
	a.idx = -1
	for i, x := range l.accs {
		if x == nil {
			a.idx = i
			break
		}
	}
	if a.idx < 0 {
		a.idx = len(l.accs)
		l.accs = append(l.accs, nil)
	}
	var err error
	cerr := a.rc.Control(func(s uintptr) {
		// Serve owns the listener: a blocking-mode one becomes
		// non-blocking, as a loop needs.
		if err = sys.SetNonblock(int(s), true); err != nil {
			err = os.NewSyscallError("fcntl", err)
		}
		a.lfd = int(s)
	})
	if cerr != nil {
		err = cerr
	}
	if err == nil {
		err = l.watchListener(a, true)
	}
	if err != nil {
		a.release(a.opErr(err))
		return
	}
	l.accs[a.idx] = a
	l.naccs++
	if l.reserve < 0 {
		l.openReserve()
	}
	a.settle()
}

// watchListener adds a's listener to the loop's epoll instance, or removes
// it (while backing off, or for good). EPOLLEXCLUSIVE allows no
// EPOLL_CTL_MOD: a pause is a removal.
func (l *eventLoop) watchListener(a *acceptor, on bool) error {
	if a.open.Load() == on {
		return nil
	}
	if l.ur != nil {
		l.watchUring(a, a.lfd, on)
		a.open.Store(on)
		return nil
	}
	op := unix.EPOLL_CTL_ADD
	if !on {
		op = unix.EPOLL_CTL_DEL
	}
	ev := unix.EpollEvent{Events: a.events, Fd: int32(a.idx), Pad: tagListener}
	var err error
	if cerr := a.rc.Control(func(s uintptr) { err = sys.EpollCtl(l.epfd, op, int(s), &ev) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	a.open.Store(on)
	return nil
}

// unlisten stops watching a's listener and reports a's removal with err.
func (l *eventLoop) unlisten(a *acceptor, err error) {
	if a.ended {
		return
	}
	if a.idx >= 0 && a.idx < len(l.accs) && l.accs[a.idx] == a {
		l.watchListener(a, false)
		l.accs[a.idx] = nil
		l.naccs--
	}
	a.release(err)
}

// rewatchAfter has the member after a register the shared listener again,
// which has the next one do the same, and so on: after a member's
// registration moved to the end of the listener's wait queue (a back-off
// removes and re-adds it, as EPOLLEXCLUSIVE allows no EPOLL_CTL_MOD),
// this puts the registrations back in the loops' order.
func (g *serving) rewatchAfter(a *acceptor) {
	if g.shared && a.pos+1 < len(g.members) {
		m := g.members[a.pos+1]
		m.loop.post(task{kind: taskRewatch, a: m})
	}
}

// rewatch registers a's listener again (if it is watched), then passes
// the turn on.
func (l *eventLoop) rewatch(a *acceptor) {
	if a.ended {
		return
	}
	if a.open.Load() {
		l.pauseListener(a, true)
		l.pauseListener(a, false)
	}
	a.g.rewatchAfter(a)
}

// pauseListener stops watching a's listener until a.rearmAt, or watches it
// again.
func (l *eventLoop) pauseListener(a *acceptor, pause bool) {
	if err := l.watchListener(a, !pause); err != nil {
		l.lp.logger().Error("netcore: cannot watch the listener; stopped serving it", "err", err)
		l.unlisten(a, a.opErr(err))
	}
}

func (l *eventLoop) openReserve() {
	fd, err := sys.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fd = -1
	}
	l.reserve = fd
}

// A loop counts as busy when its load (permille of the last window spent
// outside epoll_wait) is busyLoad or more, or when it has not waited for
// busyStretch (a long callback, or a great many events): new connections
// on a shared listener go to the first loop that is not busy.
const (
	busyLoad    = 750
	busyStretch = int64(time.Millisecond)
)

// preferred returns the member of a's serving on the first loop, in the
// loops' order, that is not busy and comes before a's own; nil if there
// is none, or if the members do not share one socket.
func (g *serving) preferred(a *acceptor) *acceptor {
	if !g.shared {
		return nil
	}
	now := a.loop.clock()
	for _, m := range g.members {
		if m == a {
			return nil
		}
		if !m.open.Load() || m.loop.load.Load() >= busyLoad {
			continue
		}
		if since := m.loop.awake.Load(); since != 0 && now-since >= busyStretch {
			continue
		}
		return m
	}
	return nil
}

// accept takes up to acceptBudget connections from a's listener and opens
// them on this loop; with steer, it first leaves them to an earlier loop
// that is not busy. So a light load stays on the first loops, each waking
// up for many connections' events at a time, and the next loops take new
// connections as the first ones fill up.
func (l *eventLoop) accept(a *acceptor, steer bool) {
	if steer {
		if p := a.g.preferred(a); p != nil && p.loop.post(task{kind: taskAccept, a: p}) {
			return
		}
	}
	st := &l.lp.state
	for range acceptBudget {
		a.nfd, a.salen, a.err = -1, 0, nil
		if err := a.rc.Control(a.fn); err != nil {
			// Someone closed the listener under us.
			l.unlisten(a, a.opErr(err))
			return
		}
		if a.err != nil {
			if classify(a.err, true) == wait {
				return
			}
			if isResourceLimit(a.err) {
				if l.acceptLimit(a) {
					l.acceptLater(a)
				}
				return
			}
			err := a.opErr(os.NewSyscallError("accept4", a.err))
			l.lp.logger().Error("netcore: accept failed; stopped serving the listener", "err", err)
			l.unlisten(a, err)
			return
		}
		a.backoff = 0
		st.accepted.Add(1)
		s := a.nfd
		if err := transportOf(a.addr).acceptedOptions(s); err != nil {
			// The connection is already dead (the option never fails
			// on a live TCP socket): skip it, as for ECONNABORTED.
			closeFD(s)
			continue
		}
		peer, err := decodeSockaddr(a.sa[:a.salen])
		if err != nil {
			closeFD(s)
			continue
		}
		l.open(s, peer.Unmap(), a.local, a.g.tls)
	}
	// The budget is spent and more may wait: edge-triggered, nothing
	// would say so again.
	l.acceptLater(a)
}

// acceptLater has the loop accept on a again once this round of events is
// dispatched (and, if more remain, in the next iteration, which does not
// wait).
func (l *eventLoop) acceptLater(a *acceptor) {
	if !a.queued {
		a.queued = true
		l.acceptQ.add(a)
	}
}

// acceptQueued accepts on the listeners left with connections waiting.
func (l *eventLoop) acceptQueued() {
	q := l.acceptQ.take()
	for _, a := range q {
		a.queued = false
		if !a.ended && a.open.Load() {
			l.accept(a, false)
		}
	}
	l.acceptQ.done(q)
}

// acceptLimit handles accept4 failing for lack of descriptors (EMFILE,
// ENFILE) or memory: with the reserve descriptor freed, it accepts the
// waiting connection and closes it at once, so that clients get a prompt
// close instead of hanging in the backlog; without one (or for memory) it
// stops watching the listener for a back-off (5 ms doubling to 1 s). It
// logs at most once per back-off period. It returns true when more
// connections may wait to be accepted at once.
func (l *eventLoop) acceptLimit(a *acceptor) bool {
	st := &l.lp.state
	st.acceptLimits.Add(1)
	cause := a.opErr(os.NewSyscallError("accept4", a.err))
	if l.reserve >= 0 && (errors.Is(a.err, unix.EMFILE) || errors.Is(a.err, unix.ENFILE)) {
		closeFD(l.reserve)
		l.reserve = -1
		a.nfd, a.err = -1, nil
		cerr := a.rc.Control(a.fn)
		switch {
		case cerr == nil && a.err == nil && a.nfd >= 0:
			a.backoff = nextBackoff(a.backoff)
			l.logLimit(a, "netcore: accept failed; closed a waiting connection with the reserve descriptor",
				"err", cause, "log_backoff", a.backoff)
			closeFD(a.nfd)
			l.openReserve()
			return true
		case cerr == nil && classify(a.err, true) == wait:
			// accept4 checks for a free descriptor before it looks at
			// the queue: nobody was waiting. The next connection
			// wakes us.
			l.openReserve()
			return false
		}
		l.openReserve()
	}
	a.backoff = nextBackoff(a.backoff)
	a.rearmAt = l.now + int64(a.backoff)
	l.pauseListener(a, true)
	l.logLimit(a, "netcore: accept failed; backing off", "err", cause, "backoff", a.backoff)
	return false
}

// logLimit logs a resource-limit message at most once per back-off period.
func (l *eventLoop) logLimit(a *acceptor, msg string, args ...any) {
	if l.now >= a.nextLog {
		a.nextLog = l.now + int64(a.backoff)
		l.lp.logger().Warn(msg, args...)
	}
}
