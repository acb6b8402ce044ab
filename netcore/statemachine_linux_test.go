package netcore_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"pgregory.net/rapid"
)

// end is one side of a connection pair in the model: the bytes the peer
// wrote that this side has not read yet, and who has half-closed.
type end struct {
	c            *netcore.Conn
	unread       []byte // written by the peer, not yet read here
	wroteEOF     bool   // this side called CloseWrite
	peerWroteEOF bool
}

// quietWait bounds a Read that the model says must time out: long enough
// for anything in flight on loopback to show up, short enough to be run
// many times.
const quietWait = 15 * time.Millisecond

// TestConnStateMachine drives a connection pair with random writes, reads,
// half-closes and expired deadlines, and checks it against a model: every
// byte arrives once and in order, and EOF and deadline errors come exactly
// when the model says.
func TestConnStateMachine(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking), func(t *testing.T) {
			t.Parallel()
			l := testkit.ListenMode(t, blocking)
			rapid.Check(t, func(rt *rapid.T) {
				client, server := connect(rt, l, blocking)
				defer client.c.Close()
				defer server.c.Close()
				sides := map[string][2]*end{"client": {client, server}, "server": {server, client}}
				actions := map[string]func(*rapid.T){}
				for name, s := range sides {
					self, peer := s[0], s[1]
					actions["write/"+name] = func(rt *rapid.T) { modelWrite(rt, self, peer) }
					actions["read/"+name] = func(rt *rapid.T) { modelRead(rt, self) }
					actions["closewrite/"+name] = func(rt *rapid.T) {
						if self.wroteEOF {
							rt.Skip("already half-closed")
						}
						if err := self.c.CloseWrite(); err != nil {
							rt.Fatalf("CloseWrite: %v", err)
						}
						self.wroteEOF, peer.peerWroteEOF = true, true
					}
					actions["expire/"+name] = func(rt *rapid.T) {
						self.c.SetReadDeadline(time.Now().Add(-time.Second))
						n, err := self.c.Read(make([]byte, 16))
						if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
							rt.Fatalf("Read with an expired deadline = %d, %v; want 0, os.ErrDeadlineExceeded", n, err)
						}
					}
				}
				rt.Repeat(actions)
				// Drain: after both half-close, each side reads exactly
				// what the model still holds, then EOF.
				for _, e := range []*end{client, server} {
					if !e.wroteEOF {
						e.c.CloseWrite()
					}
				}
				for name, e := range map[string]*end{"client": client, "server": server} {
					e.c.SetReadDeadline(time.Now().Add(testkit.Timeout))
					rest, err := io.ReadAll(e.c)
					if err != nil || !bytes.Equal(rest, e.unread) {
						rt.Fatalf("%s drained %d bytes (%v), model says %d", name, len(rest), err, len(e.unread))
					}
				}
			})
		})
	}
}

func connect(rt *rapid.T, l *netcore.Listener, blocking bool) (client, server *end) {
	accepted := make(chan *netcore.Conn, 1)
	go func() {
		s, _ := l.AcceptConn()
		accepted <- s
	}()
	d := netcore.Dialer{Blocking: blocking, Timeout: testkit.Timeout}
	c, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		rt.Fatalf("Dial: %v", err)
	}
	s := <-accepted
	if s == nil {
		c.Close()
		rt.Fatalf("Accept failed")
	}
	return &end{c: c}, &end{c: s}
}

func modelWrite(rt *rapid.T, self, peer *end) {
	if self.wroteEOF {
		rt.Skip("half-closed for writing")
	}
	// Keep what is in flight well below the socket buffers, so a write
	// never waits for the peer to read.
	if len(peer.unread) > 128<<10 {
		rt.Skip("enough in flight")
	}
	data := rapid.SliceOfN(rapid.Byte(), 0, 16<<10).Draw(rt, "data")
	self.c.SetWriteDeadline(time.Now().Add(testkit.Timeout))
	n, err := self.c.Write(data)
	if n != len(data) || err != nil {
		rt.Fatalf("Write(%d bytes) = %d, %v", len(data), n, err)
	}
	peer.unread = append(peer.unread, data...)
}

func modelRead(rt *rapid.T, self *end) {
	size := rapid.IntRange(1, 32<<10).Draw(rt, "size")
	buf := make([]byte, size)
	switch {
	case len(self.unread) > 0:
		self.c.SetReadDeadline(time.Now().Add(testkit.Timeout))
		n, err := self.c.Read(buf)
		if err != nil || n == 0 {
			rt.Fatalf("Read with %d bytes pending = %d, %v", len(self.unread), n, err)
		}
		if n > len(self.unread) || !bytes.Equal(buf[:n], self.unread[:n]) {
			rt.Fatalf("Read returned %d bytes that are not the next %d of the stream", n, len(self.unread))
		}
		self.unread = self.unread[n:]
	case self.peerWroteEOF:
		self.c.SetReadDeadline(time.Now().Add(testkit.Timeout))
		if n, err := self.c.Read(buf); n != 0 || err != io.EOF {
			rt.Fatalf("Read after the peer's CloseWrite with nothing pending = %d, %v; want 0, EOF", n, err)
		}
	default:
		self.c.SetReadDeadline(time.Now().Add(quietWait))
		if n, err := self.c.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			rt.Fatalf("Read with nothing sent = %d, %v; want a deadline error", n, err)
		}
	}
}

// TestConcurrentReadWriteClose: a reader, a writer and a closer on one
// connection at once (run it under -race): both calls return errors that
// say the connection was closed, and nothing panics.
func TestConcurrentReadWriteClose(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		for range 20 {
			c, _, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			errs := make(chan error, 2)
			go func() {
				buf := make([]byte, 1024)
				for {
					if _, err := c.Read(buf); err != nil {
						errs <- err
						return
					}
				}
			}()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						errs <- err
						return
					}
				}
			}()
			go c.Close()
			for range 2 {
				select {
				case err := <-errs:
					if !errors.Is(err, net.ErrClosed) {
						t.Fatalf("blocking=%v: call racing Close = %v, want net.ErrClosed", blocking, err)
					}
				case <-time.After(testkit.Timeout):
					t.Fatalf("blocking=%v: a call racing Close did not return", blocking)
				}
			}
		}
	}
}

// TestCloseWakesBlockedCalls: Close wakes a blocked Read, Write or Accept
// in both modes, with net.ErrClosed.
func TestCloseWakesBlockedCalls(t *testing.T) {
	t.Parallel()
	for _, blocking := range testkit.Modes {
		t.Run(testkit.ModeName(blocking)+"/Read", func(t *testing.T) {
			t.Parallel()
			client, _, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			client.SetDeadline(time.Time{})
			expectClosedAfterClose(t, client, func() error { _, err := client.Read(make([]byte, 1)); return err })
		})
		t.Run(testkit.ModeName(blocking)+"/Write", func(t *testing.T) {
			t.Parallel()
			client, server, _ := testkit.ModePair(t, blocking, "tcp4", "127.0.0.1:0")
			client.SetDeadline(time.Time{})
			client.SetWriteBuffer(4096)
			server.SetReadBuffer(4096)
			expectClosedAfterClose(t, client, func() error { _, err := client.Write(make([]byte, 64<<20)); return err })
		})
		t.Run(testkit.ModeName(blocking)+"/Accept", func(t *testing.T) {
			t.Parallel()
			l := testkit.ListenMode(t, blocking)
			expectClosedAfterClose(t, l, func() error {
				c, err := l.Accept()
				if c != nil {
					c.Close()
				}
				return err
			})
		})
	}
}
