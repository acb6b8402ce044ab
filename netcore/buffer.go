package netcore

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Buffers of the event loop come from pools of power-of-two slabs, from
// minSlab to maxSlab bytes; a bigger buffer is allocated exactly and
// dropped when empty. A connection holds a slab only while it has bytes
// buffered: an idle connection holds none.
const (
	minSlabShift = 9 // 512 B
	maxSlabShift = 22
	minSlab      = 1 << minSlabShift
	maxSlab      = 1 << maxSlabShift // 4 MiB
	numSlabs     = maxSlabShift - minSlabShift + 1
)

// slab is a pooled byte array; the pools hold *slab so that Get and Put
// allocate nothing.
type slab struct{ b []byte }

var slabPools [numSlabs]sync.Pool

// slabClass returns the pool index of the smallest slab that holds n bytes,
// or -1 if n is bigger than maxSlab.
func slabClass(n int) int {
	if n <= minSlab {
		return 0
	}
	if n > maxSlab {
		return -1
	}
	return bits.Len(uint(n-1)) - minSlabShift
}

// getSlab returns a slab of at least n bytes.
func getSlab(n int) *slab {
	c := slabClass(n)
	if c < 0 {
		return &slab{b: make([]byte, n)}
	}
	if s, ok := slabPools[c].Get().(*slab); ok {
		return s
	}
	return &slab{b: make([]byte, minSlab<<c)}
}

// putSlab gives s back to its pool (an oversized one is left to the GC).
func putSlab(s *slab) {
	n := len(s.b)
	if c := slabClass(n); c >= 0 && minSlab<<c == n {
		slabPools[c].Put(s)
	}
}

// buffer is a growable byte queue over pooled slabs: the bytes are
// s.b[r:w]. The zero buffer is empty and holds no memory. held, if set,
// counts the bytes of slab the buffer holds. A buffer is not safe for
// concurrent use.
type buffer struct {
	s    *slab
	r, w int
	held *atomic.Int64
}

// Len returns the number of buffered bytes.
func (b *buffer) Len() int { return b.w - b.r }

// Bytes returns the buffered bytes; they stay valid until the next change.
func (b *buffer) Bytes() []byte {
	if b.s == nil {
		return nil
	}
	return b.s.b[b.r:b.w]
}

// Cap returns the size of the slab held, 0 if none.
func (b *buffer) Cap() int {
	if b.s == nil {
		return 0
	}
	return len(b.s.b)
}

// Discard drops the first n bytes (all of them if n is larger). It keeps
// the slab even when the buffer becomes empty; Release frees it.
func (b *buffer) Discard(n int) {
	if n >= b.Len() {
		b.r, b.w = 0, 0
		return
	}
	b.r += n
}

// Release empties the buffer and gives its slab back to the pool.
func (b *buffer) Release() {
	if b.s != nil {
		if b.held != nil {
			b.held.Add(-int64(len(b.s.b)))
		}
		putSlab(b.s)
		b.s = nil
	}
	b.r, b.w = 0, 0
}

// ReleaseIfEmpty releases the slab of an empty buffer.
func (b *buffer) ReleaseIfEmpty() {
	if b.r == b.w {
		b.Release()
	}
}

// Write appends p, growing the buffer if needed. It never fails.
func (b *buffer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b.reserve(len(p))
	n := copy(b.s.b[b.w:], p)
	b.w += n
	return n, nil
}

// reserve makes room for n more bytes after w: it moves the bytes to the
// front of the slab if that is enough, and takes a bigger slab otherwise.
func (b *buffer) reserve(n int) {
	if b.s != nil && len(b.s.b)-b.w >= n {
		return
	}
	size := b.Len() + n
	if b.s != nil && len(b.s.b) >= size {
		copy(b.s.b, b.s.b[b.r:b.w])
		b.w -= b.r
		b.r = 0
		return
	}
	if b.s != nil {
		// Grow at least twofold, so that appending in small steps costs
		// amortised constant time.
		size = max(size, 2*len(b.s.b))
	}
	ns := getSlab(size)
	if b.held != nil {
		b.held.Add(int64(len(ns.b)))
	}
	w := 0
	if b.s != nil {
		w = copy(ns.b, b.s.b[b.r:b.w])
		if b.held != nil {
			b.held.Add(-int64(len(b.s.b)))
		}
		putSlab(b.s)
	}
	b.s, b.r, b.w = ns, 0, w
}

// Truncate keeps the first n buffered bytes and drops the rest.
func (b *buffer) Truncate(n int) {
	if n < b.Len() {
		b.w = b.r + max(n, 0)
	}
}
