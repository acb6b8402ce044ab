package netcore

import (
	"errors"
	"net"
)

// LoopFrame is a reply frame being built in place in a LoopConn's output
// buffer: BeginFrame reserved its header, the payload is what is written
// after it, and End fills the header in. It is a small value; building a
// frame allocates nothing beyond the output buffer's growth.
type LoopFrame struct {
	c     *LoopConn
	codec FrameCodec
	at    int // the header's offset in c's output
}

// BeginFrame starts a frame of codec's format in c's output: it reserves
// the header, so that the payload can be written straight into the output
// (Write, in as many pieces as suits) with no scratch buffer, and End then
// fills in its length. Begin and End a frame in the same callback, on the
// loop. Errors are Write's, or ErrZeroFrameCodec.
func (c *LoopConn) BeginFrame(codec FrameCodec) (LoopFrame, error) {
	if codec.header == 0 {
		return LoopFrame{}, ErrZeroFrameCodec
	}
	var hdr [8]byte
	if _, err := c.Write(hdr[:codec.header]); err != nil {
		return LoopFrame{}, err
	}
	c.framing++
	return LoopFrame{c: c, codec: codec, at: c.out.Len() - codec.header}, nil
}

// End writes the length of the payload written since BeginFrame into the
// frame's header. A payload over the codec's MaxPayload is a
// *FrameTooLargeError, and the whole frame is taken back out of the output.
// After the connection has closed it returns net.ErrClosed.
func (f LoopFrame) End() error {
	c := f.c
	if c == nil {
		return errors.New("netcore: LoopFrame.End on a frame BeginFrame did not return")
	}
	if c.framing > 0 {
		c.framing--
	}
	if c.closed || c.closeErr != nil {
		return net.ErrClosed
	}
	if f.at+f.codec.header > c.out.Len() {
		return errors.New("netcore: LoopFrame.End: the output has been written out since BeginFrame (Begin and End a frame in one callback)")
	}
	out := c.out.Bytes()
	n := len(out) - f.at - f.codec.header
	if err := f.codec.PutHeader(out[f.at:], n); err != nil {
		c.out.Truncate(f.at)
		c.outN.Store(int64(c.out.Len()))
		return err
	}
	return nil
}
