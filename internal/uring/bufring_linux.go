package uring

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/netcore-dev/netcore/internal/sys"
	"golang.org/x/sys/unix"
)

// BufRing is a provided buffer ring (IORING_REGISTER_PBUF_RING, 5.19): a
// group of equal buffers the kernel picks from when a receive with
// IOSQE_BUFFER_SELECT has data to deliver, so that a connection holds a
// buffer only from the arrival of its bytes until the program recycles it.
// Both the ring and the buffers are anonymous mappings, page-aligned and
// outside Go's heap.
//
// Layout and ordering. The ring is an array of struct io_uring_buf (addr,
// len, bid, resv: 16 bytes). The program adds buffers at its tail; the
// kernel takes them at its head, which it keeps to itself. The tail is a
// uint16 overlaid on the first slot's resv (bytes 14-15 of the ring). The
// program writes a slot's addr, len and bid (never resv: in slot 0 it is
// the tail) and then publishes the new tail with a store-release, so the
// slot is complete before the kernel, which load-acquires the tail, can
// take it. sync/atomic has no 16-bit store: the tail is stored with the
// aligned 32-bit word at byte 12, whose other half is slot 0's bid, which
// only the program writes; the kernel reads the two halves as separate
// fields, and an aligned 32-bit store is seen whole.
type BufRing struct {
	r        *Ring
	bgid     uint16
	entries  uint32
	size     int
	ring     unsafe.Pointer
	ringLen  int
	bufs     unsafe.Pointer
	bufsLen  int
	slots    []bufRingEntry
	tailWord *uint32 // bytes 12-15: slot 0's bid, then the tail
	tail     uint16  // ours, published by publish
	used     []int   // incremental: how much of each buffer completions have used
}

// NewBufRing registers buffer group bgid with entries buffers (a power of
// two up to 32768) of size bytes each, all of them given to the kernel.
func (r *Ring) NewBufRing(bgid uint16, entries uint32, size int) (*BufRing, error) {
	return r.newBufRing(bgid, entries, size, 0)
}

// NewBufRingIncremental is NewBufRing with incremental consumption
// (IOU_PBUF_RING_INC, 6.12): a receive takes only the bytes it needs from
// the buffer at the ring's head, and the next receive, of any connection,
// goes on in the same buffer. So a ring of a few large buffers serves a
// great many small arrivals at once. Use Completed, not Buf. A kernel
// without it refuses the registration with EINVAL.
func (r *Ring) NewBufRingIncremental(bgid uint16, entries uint32, size int) (*BufRing, error) {
	return r.newBufRing(bgid, entries, size, IOU_PBUF_RING_INC)
}

func (r *Ring) newBufRing(bgid uint16, entries uint32, size int, flags uint16) (*BufRing, error) {
	if entries == 0 || entries&(entries-1) != 0 || entries > maxBufRingEntries || size <= 0 {
		return nil, fmt.Errorf("uring: buffer ring of %d buffers of %d bytes (want a power of two up to %d, size > 0)",
			entries, size, maxBufRingEntries)
	}
	b := &BufRing{r: r, bgid: bgid, entries: entries, size: size}
	page := os.Getpagesize()
	b.ringLen = (int(entries)*int(unsafe.Sizeof(bufRingEntry{})) + page - 1) / page * page
	b.bufsLen = int(entries) * size
	var err error
	const prot = unix.PROT_READ | unix.PROT_WRITE
	if b.ring, err = sys.Mmap(-1, 0, b.ringLen, prot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	if b.bufs, err = sys.Mmap(-1, 0, b.bufsLen, prot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		sys.Munmap(b.ring, b.ringLen)
		return nil, os.NewSyscallError("mmap", err)
	}
	b.slots = unsafe.Slice((*bufRingEntry)(b.ring), entries)
	b.tailWord = (*uint32)(unsafe.Add(b.ring, 12))
	reg := bufReg{RingAddr: uint64(uintptr(b.ring)), RingEntries: entries, Bgid: bgid, Flags: flags}
	if err := sys.IoUringRegister(r.fd, IORING_REGISTER_PBUF_RING, unsafe.Pointer(&reg), 1); err != nil {
		sys.Munmap(b.bufs, b.bufsLen)
		sys.Munmap(b.ring, b.ringLen)
		return nil, os.NewSyscallError("io_uring_register", err)
	}
	if flags&IOU_PBUF_RING_INC != 0 {
		b.used = make([]int, entries)
	}
	for bid := range entries {
		b.add(uint16(bid))
	}
	b.publish()
	return b, nil
}

// Group is the buffer group id, for PrepRecvMultishot.
func (b *BufRing) Group() uint16 { return b.bgid }

// Size is each buffer's size.
func (b *BufRing) Size() int { return b.size }

// Buf is the first n bytes of buffer bid, as a completion that used it
// reports them (n is its res). They are valid until Recycle(bid).
func (b *BufRing) Buf(bid uint16, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(b.bufs, int(bid)*b.size)), b.size)[:n]
}

// Completed returns the bytes a completion with a buffer (BufferID) brought,
// valid until Recycle(bid), and whether the buffer is to be recycled once
// they have been used. Without incremental consumption that is always so.
// With it, the bytes start where the buffer's previous completion ended
// (the kernel uses a buffer in order, and completions come in that order),
// and the buffer is recycled only with its last completion, the one
// without IORING_CQE_F_BUF_MORE; a completion without bytes (res <= 0)
// used none of it.
func (b *BufRing) Completed(bid uint16, res int32, flags uint32) (p []byte, recycle bool) {
	if b.used == nil {
		return b.Buf(bid, int(max(res, 0))), true
	}
	if res <= 0 {
		return nil, false
	}
	off := b.used[bid]
	p = unsafe.Slice((*byte)(unsafe.Add(b.bufs, int(bid)*b.size+off)), int(res))
	if flags&IORING_CQE_F_BUF_MORE != 0 {
		b.used[bid] = off + int(res)
		return p, false
	}
	b.used[bid] = 0
	return p, true
}

// Recycle gives buffer bid back to the kernel.
func (b *BufRing) Recycle(bid uint16) {
	b.add(bid)
	b.publish()
}

// add writes buffer bid into the slot at the tail, not yet published.
func (b *BufRing) add(bid uint16) {
	s := &b.slots[uint32(b.tail)&(b.entries-1)]
	s.Addr = uint64(uintptr(b.bufs)) + uint64(bid)*uint64(b.size)
	s.Len = uint32(b.size)
	s.Bid = bid // not s.resv, nor the whole slot: in slot 0 that is the tail
	b.tail++
}

// publish stores the tail with a store-release (see BufRing).
func (b *BufRing) publish() {
	var w [2]uint16 // bytes 12-13 and 14-15, in memory order on any endianness
	w[0] = b.slots[0].Bid
	w[1] = b.tail
	atomic.StoreUint32(b.tailWord, *(*uint32)(unsafe.Pointer(&w)))
}

// Close unregisters the group (if the ring is still open) and unmaps its
// memory. Requests still using the group must have completed.
func (b *BufRing) Close() error {
	if b.ring == nil {
		return nil
	}
	var first error
	if b.r.fd >= 0 {
		reg := bufReg{Bgid: b.bgid}
		if err := sys.IoUringRegister(b.r.fd, IORING_UNREGISTER_PBUF_RING, unsafe.Pointer(&reg), 1); err != nil {
			first = os.NewSyscallError("io_uring_register", err)
		}
	}
	if err := sys.Munmap(b.bufs, b.bufsLen); err != nil && first == nil {
		first = os.NewSyscallError("munmap", err)
	}
	if err := sys.Munmap(b.ring, b.ringLen); err != nil && first == nil {
		first = os.NewSyscallError("munmap", err)
	}
	b.ring, b.bufs, b.slots, b.tailWord = nil, nil, nil, nil
	return first
}
