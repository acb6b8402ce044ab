package netcore

import (
	"errors"
	"fmt"
)

// FrameHandler serves a length-prefixed protocol on a Loop: its
// LoopHandler decodes the frames of Codec straight from the connection's
// input buffer and calls OnFrame once per complete frame, so that a
// request/response protocol on a Loop is one function:
//
//	lp := &netcore.Loop{Handler: (&netcore.FrameHandler{Codec: codec, OnFrame: serve}).LoopHandler()}
//
// It stops decoding while the connection's output is full (OutputFull), and
// the loop calls it again once the output has drained, so that a client
// pipelining requests with large answers is served with bounded memory. A
// frame whose header claims more than Codec.MaxPayload goes to OnFrameError
// (before any of it is buffered), which may write an answer; the connection
// is then closed once that answer is written, since the stream cannot be
// resynchronised.
//
// Loop.Serve refuses a FrameHandler whose largest frame (header included)
// does not fit the Loop's MaxInput, or whose Codec or OnFrame is missing.
// In steady state it allocates nothing per frame.
type FrameHandler struct {
	// Codec is the frame format (NewFrameCodec). Required.
	Codec FrameCodec
	// OnFrame is called once per complete frame, in order, with the
	// payload; the payload aliases the loop's input buffer and is valid
	// until OnFrame returns. OnFrame answers with c.Write (or a reply
	// frame built in place with c.BeginFrame), must not block, and must
	// not consume input itself (Next, Discard). Required.
	OnFrame func(c *LoopConn, payload []byte)
	// OnFrameError, if set, is called with a *FrameTooLargeError when a
	// frame's header claims more than Codec.MaxPayload; it may write an
	// answer. The connection is closed after it returns, once its output
	// is written. If nil, the connection is just closed.
	OnFrameError func(c *LoopConn, err error)
	// OnOpen, OnEOF and OnClose, if set, are called as LoopHandler's
	// methods of the same names are. At OnEOF, input left is an
	// incomplete frame that will never be completed.
	OnOpen  func(c *LoopConn)
	OnEOF   func(c *LoopConn)
	OnClose func(c *LoopConn, err error)
}

// check reports whether h can serve on a Loop whose MaxInput is maxInput.
func (h *FrameHandler) check(maxInput int) error {
	if h.Codec.HeaderSize() == 0 {
		return fmt.Errorf("netcore: FrameHandler.Codec: %w", ErrZeroFrameCodec)
	}
	if h.OnFrame == nil {
		return errors.New("netcore: FrameHandler.OnFrame is nil")
	}
	if largest := h.Codec.HeaderSize() + h.Codec.MaxPayload(); largest > maxInput {
		return fmt.Errorf("netcore: Loop.MaxInput (%d bytes) is smaller than FrameHandler.Codec's largest frame (%d bytes: a %d-byte header and MaxPayload %d); raise MaxInput or lower MaxPayload",
			maxInput, largest, h.Codec.HeaderSize(), h.Codec.MaxPayload())
	}
	return nil
}

// LoopHandler returns the LoopHandler that serves h's protocol. h must not
// change afterwards.
func (h *FrameHandler) LoopHandler() LoopHandler { return frameLoopHandler{h} }

// frameLoopHandler is the LoopHandler of a FrameHandler.
type frameLoopHandler struct{ h *FrameHandler }

// OnOpen calls h.OnOpen, if set.
func (fl frameLoopHandler) OnOpen(c *LoopConn) {
	h := fl.h
	if h.OnOpen != nil {
		h.OnOpen(c)
	}
}

// OnData calls OnFrame for every complete frame in c's input, until the
// input holds no complete frame or c's output is full.
func (fl frameLoopHandler) OnData(c *LoopConn) {
	h := fl.h
	for !c.OutputFull() {
		if c.closing() {
			c.Discard(-1) // after a bad frame, or Close from OnFrame: the rest is not served
			return
		}
		in := c.Peek(-1)
		payload, n, err := h.Codec.Decode(in)
		if err != nil {
			if h.OnFrameError != nil {
				h.OnFrameError(c, err)
			}
			c.Discard(-1)
			c.Close()
			return
		}
		if n > len(in) {
			return
		}
		h.OnFrame(c, payload)
		c.Discard(n)
	}
}

// OnEOF calls h.OnEOF, if set.
func (fl frameLoopHandler) OnEOF(c *LoopConn) {
	h := fl.h
	if h.OnEOF != nil {
		h.OnEOF(c)
	}
}

// OnClose calls h.OnClose, if set.
func (fl frameLoopHandler) OnClose(c *LoopConn, err error) {
	h := fl.h
	if h.OnClose != nil {
		h.OnClose(c, err)
	}
}

var _ LoopHandler = frameLoopHandler{}
