package netcore_test

// A model of one Loop connection's output order. Every way a reply can be
// produced (a Write in OnData, Send from another goroutine, Execute, a
// worker that Holds, AfterFunc, AfterFunc set from Execute) is an action;
// the actions happen one after another in real time, so the LoopConn's
// contract ("bytes leave in the order the calls that produced them were
// made") fixes the whole byte stream, and the model is that stream.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/netcore-dev/netcore/internal/testkit"
	"github.com/netcore-dev/netcore/netcore"
	"pgregory.net/rapid"
)

// Requests the client sends to the model's handler: a kind byte, a delay
// in microseconds (4 bytes, big-endian), the token's length (4 bytes,
// big-endian), the token.
const (
	reqWrite = 'w' // OnData writes the token
	reqHold  = 'h' // OnData holds; a worker Sends the token, then releases
	reqTimer = 't' // OnData sets AfterFunc(delay), which writes the token
)

const modelReqHeader = 9

// modelEOF is what OnEOF writes after the client's half-close.
const modelEOF = "<eof>"

// modelConn is the handler's state for one connection; the test attaches
// it with Execute before the client's first request.
type modelConn struct {
	// done gets one report per handler-side action, once the token has
	// been written (OnData, AfterFunc) or Send has returned (worker).
	done chan error
	// errs gets the errors of writes nothing waits for (Execute).
	errs chan error
}

func (st *modelConn) report(ch chan error, err error) {
	select {
	case ch <- err:
	default: // the test has a report pending already; one is enough
	}
}

// modelHandler serves the model's requests; every connection it opens is
// reported on opened.
func modelHandler(opened chan *netcore.LoopConn) *loopFuncs {
	return &loopFuncs{
		open: func(c *netcore.LoopConn) { opened <- c },
		data: func(c *netcore.LoopConn) {
			// Execute attached the state before the client sent
			// anything, and functions queued with Execute run before
			// the callbacks that follow.
			st := c.UserData().(*modelConn)
			for c.Buffered() >= modelReqHeader {
				hdr := c.Peek(modelReqHeader)
				kind := hdr[0]
				delay := time.Duration(binary.BigEndian.Uint32(hdr[1:])) * time.Microsecond
				n := int(binary.BigEndian.Uint32(hdr[5:]))
				if c.Buffered() < modelReqHeader+n {
					return
				}
				token := c.Next(modelReqHeader + n)[modelReqHeader:]
				switch kind {
				case reqWrite:
					_, err := c.Write(token)
					st.report(st.done, err)
				case reqHold:
					token := bytes.Clone(token)
					c.Hold()
					go func() {
						err := c.Send(token)
						st.report(st.done, err)
						c.Release()
					}()
				case reqTimer:
					token := bytes.Clone(token)
					c.AfterFunc(delay, func(c *netcore.LoopConn) {
						_, err := c.Write(token)
						st.report(st.done, err)
					})
				default:
					panic(fmt.Sprintf("model request of unknown kind %q", kind))
				}
			}
		},
		eof: func(c *netcore.LoopConn) {
			c.Write([]byte(modelEOF))
		},
	}
}

// loopModel is the state machine: the client, the server's LoopConn, and
// the model — every byte the client must read, in order.
type loopModel struct {
	client *netcore.Conn
	lc     *netcore.LoopConn
	st     *modelConn
	want   []byte // the model: the whole expected byte stream
	read   int    // how much of want the client has read and checked
	seq    int
}

// maxUnread bounds what the model lets pile up unread: well below the
// Loop's OutputHighWater, so that the loop never stops reading the requests
// whose handling the test waits for.
const maxUnread = 128 << 10

// token draws the next token: its sequence number and kind, some drawn
// bytes, and a filler of drawn length, so that replies range from a few
// bytes to tens of kilobytes.
func (m *loopModel) token(t *rapid.T, kind string) []byte {
	m.seq++
	label := rapid.SliceOfN(rapid.Byte(), 0, 16).Draw(t, "label")
	fill := rapid.OneOf(rapid.IntRange(0, 64), rapid.IntRange(0, 32<<10)).Draw(t, "filler")
	tok := fmt.Appendf(nil, "<%d%s|", m.seq, kind)
	tok = append(tok, label...)
	for i := range fill {
		tok = append(tok, byte('a'+(m.seq+i)%26))
	}
	return append(tok, '>')
}

// add appends tok to the model.
func (m *loopModel) add(tok []byte) {
	m.want = append(m.want, tok...)
}

// room reads what is unread if it has grown past maxUnread.
func (m *loopModel) room(t *rapid.T) {
	if len(m.want)-m.read > maxUnread {
		m.Read(t)
	}
}

// request sends one request and waits for the handler's report.
func (m *loopModel) request(t *rapid.T, kind byte, delay time.Duration, tok []byte) {
	req := []byte{kind}
	req = binary.BigEndian.AppendUint32(req, uint32(delay/time.Microsecond))
	req = binary.BigEndian.AppendUint32(req, uint32(len(tok)))
	req = append(req, tok...)
	if _, err := m.client.Write(req); err != nil {
		t.Fatalf("writing request %q: %v", kind, err)
	}
	m.wait(t, fmt.Sprintf("the handler's report on request %q", kind))
}

func (m *loopModel) wait(t *rapid.T, what string) {
	select {
	case err := <-m.st.done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(testkit.Timeout):
		t.Fatalf("%s did not come within %v", what, testkit.Timeout)
	}
}

// WriteInOnData: (a) the handler writes the token in OnData.
func (m *loopModel) WriteInOnData(t *rapid.T) {
	m.room(t)
	tok := m.token(t, "w")
	m.request(t, reqWrite, 0, tok)
	m.add(tok)
}

// Send: (b) the test goroutine Sends the token.
func (m *loopModel) Send(t *rapid.T) {
	m.room(t)
	tok := m.token(t, "s")
	if err := m.lc.Send(tok); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m.add(tok)
}

// Execute: (c) the test goroutine Executes a function that writes the
// token; nothing waits for it to run.
func (m *loopModel) Execute(t *rapid.T) {
	m.room(t)
	tok := m.token(t, "x")
	st := m.st
	err := m.lc.Execute(func(c *netcore.LoopConn) {
		if _, err := c.Write(tok); err != nil {
			st.report(st.errs, fmt.Errorf("Write in an Executed function: %w", err))
		}
	})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	m.add(tok)
}

// HoldAndSend: (d) the handler Holds and hands the token to a worker,
// which Sends it and then Releases; the test waits until Send returned.
func (m *loopModel) HoldAndSend(t *rapid.T) {
	m.room(t)
	tok := m.token(t, "h")
	m.request(t, reqHold, 0, tok)
	m.add(tok)
}

// AfterFunc: (e) the handler sets a timer of a drawn delay that writes the
// token; the test waits until it has.
func (m *loopModel) AfterFunc(t *rapid.T) {
	m.room(t)
	delay := time.Duration(rapid.IntRange(0, 3000).Draw(t, "delay-µs")) * time.Microsecond
	tok := m.token(t, "t")
	m.request(t, reqTimer, delay, tok)
	m.add(tok)
}

// ExecuteAfterFunc: (f) an Executed function sets AfterFunc(0), which
// writes the token; the test waits until it has.
func (m *loopModel) ExecuteAfterFunc(t *rapid.T) {
	m.room(t)
	tok := m.token(t, "f")
	st := m.st
	err := m.lc.Execute(func(c *netcore.LoopConn) {
		c.AfterFunc(0, func(c *netcore.LoopConn) {
			_, err := c.Write(tok)
			st.report(st.done, err)
		})
	})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	m.wait(t, "the timer set by an Executed function")
	m.add(tok)
}

// Read reads exactly what the model says is unread, and compares.
func (m *loopModel) Read(t *rapid.T) {
	want := m.want[m.read:]
	got := make([]byte, len(want))
	if n, err := io.ReadFull(m.client, got); err != nil {
		t.Fatalf("read %d of %d expected bytes: %v\ngot  %s\nwant %s", n, len(want), err, brief(got[:n]), brief(want[:n]))
	}
	if !bytes.Equal(got, want) {
		i := firstDiff(got, want)
		t.Fatalf("the byte stream differs from the model at byte %d of this read (%d of the stream)\ngot  %s\nwant %s",
			i, m.read+i, brief(got[i:]), brief(want[i:]))
	}
	m.read = len(m.want)
}

// Check: no write that nothing waited for has failed.
func (m *loopModel) Check(t *rapid.T) {
	select {
	case err := <-m.st.errs:
		t.Fatal(err)
	default:
	}
}

// finish ends the connection in a drawn way, and checks that the client
// reads exactly the rest of the model, then EOF (or, if the client just
// closes, the rest of the model).
func (m *loopModel) finish(t *rapid.T) {
	switch ending := rapid.SampledFrom([]string{"client-closes", "client-half-closes", "server-closes-write"}).Draw(t, "ending"); ending {
	case "client-closes":
		m.Read(t)
		return
	case "client-half-closes":
		// The server answers the FIN in OnEOF, after everything before.
		if err := m.client.CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
		m.add([]byte(modelEOF))
	case "server-closes-write":
		tok := m.token(t, "c")
		st := m.st
		err := m.lc.Execute(func(c *netcore.LoopConn) {
			if _, err := c.Write(tok); err != nil {
				st.report(st.errs, err)
			}
			if err := c.CloseWrite(); err != nil {
				st.report(st.errs, err)
			}
		})
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		m.add(tok)
	}
	rest, err := io.ReadAll(m.client)
	if err != nil {
		t.Fatalf("reading to EOF: %v (after %d bytes)", err, len(rest))
	}
	if want := m.want[m.read:]; !bytes.Equal(rest, want) {
		i := firstDiff(rest, want)
		t.Fatalf("to EOF: %d bytes, want %d; they differ at byte %d\ngot  %s\nwant %s", len(rest), len(want), i, brief(rest[i:]), brief(want[min(i, len(want)):]))
	}
	m.read = len(m.want)
	m.Check(t)
}

// brief quotes the start of p.
func brief(p []byte) string {
	if len(p) > 48 {
		return fmt.Sprintf("%q... (%d bytes)", p[:48], len(p))
	}
	return fmt.Sprintf("%q", p)
}

func TestLoopOrderModel(t *testing.T) {
	checkLeaks(t)
	for _, loops := range []int{1, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
			opened := make(chan *netcore.LoopConn, 1)
			addr := serveLoop(t, &netcore.Loop{Handler: modelHandler(opened), Loops: loops})
			rapid.Check(t, func(t *rapid.T) {
				client, err := netcore.Dial("tcp4", addr)
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer client.Close()
				client.SetDeadline(time.Now().Add(testkit.Timeout))
				var lc *netcore.LoopConn
				select {
				case lc = <-opened:
				case <-time.After(testkit.Timeout):
					t.Fatalf("OnOpen did not come within %v", testkit.Timeout)
				}
				st := &modelConn{done: make(chan error, 1), errs: make(chan error, 1)}
				if err := lc.Execute(func(c *netcore.LoopConn) { c.SetUserData(st) }); err != nil {
					t.Fatalf("Execute: %v", err)
				}
				m := &loopModel{client: client, lc: lc, st: st}
				t.Repeat(rapid.StateMachineActions(m))
				m.finish(t)
			})
		})
	}
}
