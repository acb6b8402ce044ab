package netcore

import (
	"math"
	"time"
)

// LoopTimer is a function scheduled on a connection's loop by
// LoopConn.AfterFunc. Timers live in one binary heap per loop, ordered by
// when they are due; the loop sleeps in epoll_wait until the first is due
// and never wakes for a timer before that. A timer costs its 48-byte struct
// and an 8-byte heap slot, and no goroutine or runtime timer.
type LoopTimer struct {
	when       int64 // due, on the Loop's clock
	i          int   // index in the loop's heap; -1 when not scheduled
	fn         func(*LoopConn)
	c          *LoopConn
	prev, next *LoopTimer // the connection's scheduled timers (not its limit timer)
}

// AfterFunc runs fn on the connection's loop once d has passed, unless the
// connection closes first or the timer is stopped; fn may use every
// LoopConn method. A d of 0 or less runs fn in the loop's next iteration.
// Call AfterFunc and Stop on the loop only (from a callback, or inside
// Execute from another goroutine). On a closed connection the timer never
// runs.
func (c *LoopConn) AfterFunc(d time.Duration, fn func(*LoopConn)) *LoopTimer {
	t := &LoopTimer{i: -1, fn: fn, c: c}
	if c.closed || fn == nil {
		return t
	}
	l := c.l
	// After every timer due in this iteration: a timer that sets
	// another for 0 cannot keep the loop here.
	when := max(addSat(l.clock(), int64(max(d, 0))), l.now+1)
	t.next = c.timers
	if c.timers != nil {
		c.timers.prev = t
	}
	c.timers = t
	l.schedule(t, when)
	return t
}

// Stop cancels the timer. It returns true if that kept fn from running,
// false if fn has already run, the timer was stopped before, or its
// connection has closed. Call it on the loop only.
func (t *LoopTimer) Stop() bool {
	if t == nil || t.i < 0 {
		return false
	}
	t.c.l.unschedule(t)
	t.c.unlinkTimer(t)
	return true
}

// unlinkTimer takes t out of c's list of timers.
func (c *LoopConn) unlinkTimer(t *LoopTimer) {
	if t.prev != nil {
		t.prev.next = t.next
	} else if c.timers == t {
		c.timers = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next = nil, nil
}

// stopTimers unschedules every timer of c, its limit timer included.
func (l *eventLoop) stopTimers(c *LoopConn) {
	l.unschedule(&c.limit)
	for t := c.timers; t != nil; {
		next := t.next
		l.unschedule(t)
		t.prev, t.next = nil, nil
		t = next
	}
	c.timers = nil
}

// schedule sets t due at when, adding it to the heap or moving it there.
func (l *eventLoop) schedule(t *LoopTimer, when int64) {
	t.when = when
	if t.i >= 0 {
		l.heapFix(t.i)
		return
	}
	t.i = len(l.timers)
	l.timers = append(l.timers, t)
	l.heapUp(t.i)
}

// unschedule takes t out of the heap, if it is there.
func (l *eventLoop) unschedule(t *LoopTimer) {
	i := t.i
	if i < 0 {
		return
	}
	last := len(l.timers) - 1
	if i != last {
		l.heapSwap(i, last)
	}
	l.timers[last] = nil
	l.timers = l.timers[:last]
	t.i = -1
	if i != last {
		l.heapFix(i)
	}
	if len(l.timers) == 0 && cap(l.timers) > 1024 {
		l.timers = nil // after a burst of timers, give the slots back
	}
}

func (l *eventLoop) heapSwap(i, j int) {
	h := l.timers
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}

func (l *eventLoop) heapFix(i int) {
	if !l.heapDown(i) {
		l.heapUp(i)
	}
}

func (l *eventLoop) heapUp(i int) {
	h := l.timers
	for i > 0 {
		p := (i - 1) / 2
		if h[p].when <= h[i].when {
			return
		}
		l.heapSwap(i, p)
		i = p
	}
}

// heapDown moves h[i] down; it reports whether it moved.
func (l *eventLoop) heapDown(i int) bool {
	h := l.timers
	start := i
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h[r].when < h[c].when {
			c = r
		}
		if h[i].when <= h[c].when {
			break
		}
		l.heapSwap(i, c)
		i = c
	}
	return i > start
}

// runTimers runs every timer due by l.now, earliest first.
func (l *eventLoop) runTimers() {
	for len(l.timers) > 0 && l.timers[0].when <= l.now {
		t := l.timers[0]
		l.unschedule(t)
		c := t.c
		if c.closed {
			continue
		}
		if t.fn == nil {
			l.checkLimits(c)
			continue
		}
		c.unlinkTimer(t)
		if l.sync(c) {
			l.callbackFn(c, t.fn)
			l.after(c)
		}
	}
}

// checkLimits closes c if its deadline or idle timeout has passed, and
// otherwise sets its limit timer for the first that is still ahead. Activity
// only moves c.last: the timer finds out here, once per timeout at most.
func (l *eventLoop) checkLimits(c *LoopConn) {
	if c.deadline != 0 && c.deadline <= l.now {
		l.fail(c, errDeadline)
		return
	}
	var due int64
	if l.lim.idle > 0 {
		due = addSat(c.last, int64(l.lim.idle))
		if due <= l.now {
			l.fail(c, &LimitError{Limit: "IdleTimeout", Value: int64(l.lim.idle)})
			return
		}
	}
	if c.deadline != 0 && (due == 0 || c.deadline < due) {
		due = c.deadline
	}
	if due != 0 {
		l.schedule(&c.limit, due)
	}
}

// addSat returns a+d (d >= 0), saturating at math.MaxInt64.
func addSat(a, d int64) int64 {
	if a > math.MaxInt64-d {
		return math.MaxInt64
	}
	return a + d
}
