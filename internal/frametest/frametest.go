// Package frametest is the reference that netcore's framing tests compare
// FrameCodec, FrameReader and FrameHandler with: a decoder of
// length-prefixed frames written as the plain loop a C programmer writes,
// a byte at a time, using neither netcore nor encoding/binary, and a
// reader that hands a stream out in chunks. The root tests, netcore's own
// and the fuzz targets share it, so there is one reference, not a copy per
// package.
package frametest

import "io"

// Decode decodes whole frames (a header of header bytes holding the
// payload's length, big-endian or little-endian, then the payload) from
// the start of data and reports where it stopped: rest is the undecoded
// tail (an incomplete frame, or the frame that is too large); bad is set
// when a header claims more than max bytes, and tooLarge is that length.
func Decode(data []byte, header int, bigEndian bool, max uint64) (frames [][]byte, rest []byte, tooLarge uint64, bad bool) {
	for {
		if len(data) < header {
			return frames, data, 0, false
		}
		var l uint64
		for i := 0; i < header; i++ {
			b := uint64(data[i])
			if bigEndian {
				l = l<<8 | b
			} else {
				l |= b << (8 * i)
			}
		}
		if l > max {
			return frames, data, l, true
		}
		if uint64(len(data)-header) < l {
			return frames, data, 0, false
		}
		frames = append(frames, data[header:header+int(l)])
		data = data[header+int(l):]
	}
}

// ChunkReader returns its chunks one Read at a time (a Read may return
// less when p is smaller), then io.EOF.
type ChunkReader struct {
	Chunks [][]byte
}

func (r *ChunkReader) Read(p []byte) (int, error) {
	if len(r.Chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.Chunks[0])
	if r.Chunks[0] = r.Chunks[0][n:]; len(r.Chunks[0]) == 0 {
		r.Chunks = r.Chunks[1:]
	}
	return n, nil
}
