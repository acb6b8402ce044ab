package netcore

import (
	"testing"
	"time"
)

// Steering's choice: a loop woken for new connections on a shared
// listener leaves them to the first earlier loop that watches it and is
// not busy (its last window's load under busyLoad, not awake for
// busyStretch); otherwise it accepts them itself. Never with ReusePort.
func TestSteeringPreference(t *testing.T) {
	lp := &Loop{}
	lp.state.start = time.Now().Add(-time.Hour)
	newServing := func(shared bool) *serving {
		g := &serving{shared: shared}
		for i := range 3 {
			a := &acceptor{g: g, pos: i, loop: &eventLoop{lp: lp}}
			a.open.Store(true)
			g.members = append(g.members, a)
		}
		return g
	}
	g := newServing(true)
	m := g.members
	if p := g.preferred(m[0]); p != nil {
		t.Errorf("the first loop left its connections to member %d; it has no earlier loop", p.pos)
	}
	if p := g.preferred(m[2]); p != m[0] {
		t.Errorf("an idle first loop: the third loop chose %v, want the first", p)
	}
	m[0].loop.load.Store(busyLoad)
	if p := g.preferred(m[2]); p != m[1] {
		t.Errorf("a busy first loop (load %d): the third loop chose %v, want the second", busyLoad, p)
	}
	m[1].loop.awake.Store(m[1].loop.clock() - int64(2*busyStretch) + 1)
	if p := g.preferred(m[2]); p != nil {
		t.Errorf("the second loop awake for %v, the first busy: the third loop chose %v, want none (accept itself)", 2*time.Duration(busyStretch), p)
	}
	m[1].loop.awake.Store(0)
	m[1].open.Store(false) // backing off
	if p := g.preferred(m[2]); p != nil {
		t.Errorf("the second loop not watching the listener: the third loop chose %v, want none", p)
	}
	m[0].loop.load.Store(busyLoad - 1)
	if p := g.preferred(m[1]); p != m[0] {
		t.Errorf("the first loop just under busyLoad: the second loop chose %v, want the first", p)
	}
	if r := newServing(false); r.preferred(r.members[2]) != nil {
		t.Errorf("ReusePort (each loop its own socket): a loop left its connections to another")
	}
}
