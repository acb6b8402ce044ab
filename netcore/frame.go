package netcore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// FrameCodec is a length-prefixed frame format: a header of 1, 2, 4 or 8
// bytes holding the payload's length in a given byte order, then the
// payload. The book's protocol is NewFrameCodec(4, binary.LittleEndian, 4096).
//
// A FrameCodec is a small value, safe for concurrent use; it knows nothing
// of sockets, so it decodes from a Conn (through FrameReader) and from an
// event loop's input buffer (through Decode) alike. The zero FrameCodec is
// not valid: its methods return ErrZeroFrameCodec.
type FrameCodec struct {
	header int // 1, 2, 4 or 8; 0 in the zero value
	order  binary.ByteOrder
	max    int
}

// ErrZeroFrameCodec is returned by the methods of a FrameCodec that was not
// made by NewFrameCodec.
var ErrZeroFrameCodec = errors.New("netcore: FrameCodec not initialised (use NewFrameCodec)")

// ErrFrameTooLarge is matched (errors.Is) by every *FrameTooLargeError.
var ErrFrameTooLarge = errors.New("netcore: frame too large")

// FrameTooLargeError reports a frame whose length is over the codec's
// maximum payload size. Decoding returns it as soon as the header is read,
// before any buffer of that size is allocated.
type FrameTooLargeError struct {
	Length uint64 // the length in the header (or of the payload to encode)
	Max    int    // the codec's maximum payload size
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("netcore: frame length %d exceeds the limit of %d bytes", e.Length, e.Max)
}

// Is reports whether target is ErrFrameTooLarge.
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }

// NewFrameCodec returns the codec for frames with a header of headerSize
// bytes (1, 2, 4 or 8) in the given byte order, and payloads of at most
// maxPayload bytes. maxPayload must be representable in the header (at most
// 255 for a 1-byte header, 65535 for 2 bytes) and at most math.MaxInt-8.
func NewFrameCodec(headerSize int, order binary.ByteOrder, maxPayload int) (FrameCodec, error) {
	var limit uint64
	switch headerSize {
	case 1:
		limit = math.MaxUint8
	case 2:
		limit = math.MaxUint16
	case 4:
		limit = math.MaxUint32
	case 8:
		limit = math.MaxUint64
	default:
		return FrameCodec{}, fmt.Errorf("netcore: frame header size %d: want 1, 2, 4 or 8", headerSize)
	}
	if order == nil {
		return FrameCodec{}, errors.New("netcore: frame byte order is nil")
	}
	if maxPayload < 0 || uint64(maxPayload) > limit || maxPayload > math.MaxInt-8 {
		return FrameCodec{}, fmt.Errorf("netcore: frame maximum payload %d: want 0 to %d for a %d-byte header",
			maxPayload, min(limit, math.MaxInt-8), headerSize)
	}
	return FrameCodec{header: headerSize, order: order, max: maxPayload}, nil
}

// HeaderSize returns the size of the length header in bytes (0 for the zero
// FrameCodec).
func (c FrameCodec) HeaderSize() int { return c.header }

// MaxPayload returns the largest payload the codec accepts.
func (c FrameCodec) MaxPayload() int { return c.max }

// Order returns the byte order of the length header.
func (c FrameCodec) Order() binary.ByteOrder { return c.order }

// length reads the header at the start of b, which holds at least c.header
// bytes.
func (c FrameCodec) length(b []byte) uint64 {
	switch c.header {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(c.order.Uint16(b))
	case 4:
		return uint64(c.order.Uint32(b))
	default:
		return c.order.Uint64(b)
	}
}

// Decode decodes the frame at the start of buf, reading no byte beyond it.
// n is the size of that frame, header included, as far as buf shows it:
//
//   - n <= len(buf): the frame is complete; payload is buf[HeaderSize():n]
//     (it aliases buf) and the next frame starts at buf[n:].
//   - n > len(buf): the frame is incomplete and payload is nil; at least
//     n-len(buf) more bytes are needed (exactly that many once the header is
//     complete; while it is not, n is the header size).
//
// A length over MaxPayload is a *FrameTooLargeError, returned as soon as the
// header is complete, whatever follows it. Decode never allocates.
func (c FrameCodec) Decode(buf []byte) (payload []byte, n int, err error) {
	if c.header == 0 {
		return nil, 0, ErrZeroFrameCodec
	}
	if len(buf) < c.header {
		return nil, c.header, nil
	}
	l := c.length(buf)
	if l > uint64(c.max) {
		return nil, 0, &FrameTooLargeError{Length: l, Max: c.max}
	}
	n = c.header + int(l) // no overflow: max <= MaxInt-8
	if n > len(buf) {
		return nil, n, nil
	}
	return buf[c.header:n:n], n, nil
}

// AppendHeader appends the header of a frame whose payload is n bytes long.
// The caller then appends the payload itself; this lets a payload be built in
// place, after its header.
func (c FrameCodec) AppendHeader(dst []byte, n int) ([]byte, error) {
	if c.header == 0 {
		return dst, ErrZeroFrameCodec
	}
	if n < 0 || n > c.max {
		return dst, &FrameTooLargeError{Length: uint64(n), Max: c.max}
	}
	l := len(dst)
	dst = append(dst, make([]byte, c.header)...) // does not allocate beyond growing dst
	c.putHeader(dst[l:], n)
	return dst, nil
}

// PutHeader writes the header of a frame whose payload is n bytes long
// into b[:HeaderSize()]: the way to fill a header reserved before the
// payload's length was known.
func (c FrameCodec) PutHeader(b []byte, n int) error {
	if c.header == 0 {
		return ErrZeroFrameCodec
	}
	if len(b) < c.header {
		return fmt.Errorf("netcore: PutHeader: %d-byte buffer for a %d-byte header", len(b), c.header)
	}
	if n < 0 || n > c.max {
		return &FrameTooLargeError{Length: uint64(n), Max: c.max}
	}
	c.putHeader(b, n)
	return nil
}

// putHeader writes a valid length n into b[:c.header].
func (c FrameCodec) putHeader(b []byte, n int) {
	_ = b[c.header-1]
	switch c.header {
	case 1:
		b[0] = byte(n)
	case 2:
		c.order.PutUint16(b, uint16(n))
	case 4:
		c.order.PutUint32(b, uint32(n))
	default:
		c.order.PutUint64(b, uint64(n))
	}
}

// Append appends payload as one frame (header, then payload) to dst and
// returns the extended slice. A payload over MaxPayload is a
// *FrameTooLargeError and dst is returned unchanged.
func (c FrameCodec) Append(dst, payload []byte) ([]byte, error) {
	dst, err := c.AppendHeader(dst, len(payload))
	if err != nil {
		return dst, err
	}
	return append(dst, payload...), nil
}

// FrameReader reads frames from an io.Reader, for code that serves a
// connection from its own goroutine. It reads ahead as far as one Read
// call gives (so pipelined frames cost one system call between them) into
// one buffer that it reuses: once the buffer has grown to hold the largest
// frame seen, reading a frame allocates nothing.
//
// The buffer grows only as bytes arrive, never to the length a header
// claims: it starts at 4 KiB (or one largest frame, if that is smaller)
// and doubles only when it is full of bytes not yet returned, so it is
// never larger than the greater of 4 KiB and twice the most bytes it has
// held at once. A header claiming a gigabyte followed by a few bytes and
// the end of the stream costs 4 KiB.
//
// Bytes read ahead stay in the FrameReader; Ready tells whether the next
// frame is already buffered, which is the moment to flush replies batched so
// far before Next blocks in Read.
type FrameReader struct {
	r     io.Reader
	codec FrameCodec
	buf   []byte
	start int // next frame begins at buf[start]
	end   int // buf[start:end] is read but not yet returned
	err   error
}

// initialFrameBuffer is the FrameReader's first buffer size (or the
// codec's largest frame, if smaller); the buffer doubles from there as
// bytes arrive, up to the codec's largest frame.
const initialFrameBuffer = 4096

// NewFrameReader returns a FrameReader that reads frames in codec's format
// from r.
func NewFrameReader(r io.Reader, codec FrameCodec) *FrameReader {
	return &FrameReader{r: r, codec: codec}
}

// Ready reports whether a complete frame (or a decoding error) is already
// buffered, so that Next will return without calling Read.
func (fr *FrameReader) Ready() bool {
	if fr.err != nil {
		return true
	}
	_, n, err := fr.codec.Decode(fr.buf[fr.start:fr.end])
	return err != nil || n <= fr.end-fr.start
}

// Buffered returns the number of bytes read from the underlying reader but
// not yet returned in a frame.
func (fr *FrameReader) Buffered() int { return fr.end - fr.start }

// Next returns the next frame's payload. The slice aliases the reader's
// buffer and is valid until the next call to Next.
//
// At the end of the stream, Next returns io.EOF if it fell between frames,
// and io.ErrUnexpectedEOF if it cut a frame short. A length over the codec's
// maximum is a *FrameTooLargeError, returned before a buffer of that size is
// allocated. Errors are sticky: once Next has failed it keeps failing the
// same way.
func (fr *FrameReader) Next() ([]byte, error) {
	if fr.err != nil {
		return nil, fr.err
	}
	for {
		payload, n, err := fr.codec.Decode(fr.buf[fr.start:fr.end])
		if err != nil {
			fr.err = err
			return nil, err
		}
		if n <= fr.end-fr.start {
			fr.start += n
			if fr.start == fr.end {
				fr.start, fr.end = 0, 0
			}
			return payload, nil
		}
		if err := fr.fill(n); err != nil {
			if err == io.EOF && fr.end > fr.start {
				err = io.ErrUnexpectedEOF
			}
			fr.err = err
			return nil, err
		}
	}
}

// fill reads once, after making room for more of the frame of n bytes
// that starts at buf[start] (n > end-start). If that frame does not fit in
// buf from start, the buffered bytes move to the front of buf; if buf is
// then full, a buffer twice as large (at least initialFrameBuffer, at most
// one largest frame) replaces it. The Read gets all the free space after
// end. Growth follows the bytes that arrived, never n itself.
func (fr *FrameReader) fill(n int) error {
	if fr.start+n > len(fr.buf) {
		if fr.start > 0 {
			fr.end = copy(fr.buf, fr.buf[fr.start:fr.end])
			fr.start = 0
		}
		if fr.end == len(fr.buf) {
			// end < n <= header+max, so size > len(buf): there is room.
			size := max(2*len(fr.buf), initialFrameBuffer)
			size = min(size, fr.codec.header+fr.codec.max)
			nb := make([]byte, size)
			copy(nb, fr.buf[:fr.end])
			fr.buf = nb
		}
	}
	for range maxEmptyReads {
		m, err := fr.r.Read(fr.buf[fr.end:])
		if m < 0 || m > len(fr.buf)-fr.end {
			return fmt.Errorf("netcore: reader returned an invalid count %d", m)
		}
		fr.end += m
		if m > 0 {
			return nil // a Read's error is met again on the next call
		}
		if err != nil {
			return err
		}
		// (0, nil): io.Reader discourages it; try again, a few times.
	}
	return io.ErrNoProgress
}

// maxEmptyReads bounds the (0, nil) results a FrameReader accepts in a row,
// as bufio does.
const maxEmptyReads = 100
