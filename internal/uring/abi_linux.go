package uring

// The io_uring ABI: the structures and constants of the kernel's
// include/uapi/linux/io_uring.h that netcore uses. golang.org/x/sys/unix
// (v0.50.0) has only the three system call numbers, so everything else is
// defined here, in this one file, with the kernel's values and layouts. Each
// is marked with the Linux release that brought it, which is what the
// fallbacks in New and the checks in Available go by. The layouts are
// checked against their C sizes in abi_linux_test.go.

// SQE is struct io_uring_sqe: one submission queue entry, 64 bytes. The C
// structure is a stack of unions; the fields here carry the names of the
// members netcore uses.
type SQE struct {
	Opcode   uint8  // IORING_OP_*
	Flags    uint8  // IOSQE_*
	Ioprio   uint16 // for ACCEPT and RECV/SEND: IORING_ACCEPT_*, IORING_RECV_* flags
	Fd       int32  // the descriptor the operation is on
	Off      uint64 // off / addr2
	Addr     uint64 // addr: a buffer, or for ASYNC_CANCEL the user_data to cancel
	Len      uint32
	OpFlags  uint32 // the union: msg_flags, accept_flags, cancel_flags, timeout_flags, rw_flags...
	UserData uint64 // given back in the completion
	BufGroup uint16 // buf_index / buf_group: the provided-buffer group with IOSQE_BUFFER_SELECT
	_        uint16 // personality
	FileIdx  uint32 // splice_fd_in / file_index
	Addr3    uint64
	_        uint64
}

// CQE is struct io_uring_cqe: one completion, 16 bytes (netcore does not
// ask for IORING_SETUP_CQE32).
type CQE struct {
	UserData uint64 // the submission's user_data
	Res      int32  // the result: what the system call would return, or -errno
	Flags    uint32 // IORING_CQE_F_*; the buffer id in the upper 16 bits
}

// sqringOffsets is struct io_sqring_offsets: where, in the SQ ring's
// mapping, each field lives.
type sqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, resv1 uint32
	UserAddr                                                        uint64 // resv2 before 6.5
}

// cqringOffsets is struct io_cqring_offsets.
type cqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, resv1 uint32
	UserAddr                                                        uint64
}

// params is struct io_uring_params (120 bytes), given to io_uring_setup
// and filled by it.
type params struct {
	SqEntries    uint32
	CqEntries    uint32
	Flags        uint32 // IORING_SETUP_*
	SqThreadCPU  uint32
	SqThreadIdle uint32
	Features     uint32 // IORING_FEAT_*, filled by the kernel
	WqFd         uint32
	resv         [3]uint32
	SqOff        sqringOffsets
	CqOff        cqringOffsets
}

// geteventsArg is struct io_uring_getevents_arg, io_uring_enter's argument
// with IORING_ENTER_EXT_ARG (5.11).
type geteventsArg struct {
	Sigmask     uint64
	SigmaskSz   uint32
	MinWaitUsec uint32 // pad before 6.12
	Ts          uint64 // a pointer to a struct __kernel_timespec (unix.Timespec on 64-bit)
}

// probeHeader is struct io_uring_probe without its flexible array of
// probeOp, for IORING_REGISTER_PROBE.
type probeHeader struct {
	LastOp uint8 // the highest opcode the kernel knows
	OpsLen uint8 // how many probeOp it filled
	_      uint16
	_      [3]uint32
}

// probeOp is struct io_uring_probe_op.
type probeOp struct {
	Op    uint8
	_     uint8
	Flags uint16 // IO_URING_OP_SUPPORTED
	_     uint32
}

// bufRingEntry is struct io_uring_buf: one slot of a provided buffer ring.
// The ring's tail is not a separate field: struct io_uring_buf_ring
// overlays it on the first slot's resv, the uint16 at byte 14.
type bufRingEntry struct {
	Addr uint64
	Len  uint32
	Bid  uint16
	resv uint16 // in slot 0: the ring's tail
}

// bufReg is struct io_uring_buf_reg, the argument of
// IORING_REGISTER_PBUF_RING and IORING_UNREGISTER_PBUF_RING.
type bufReg struct {
	RingAddr    uint64
	RingEntries uint32
	Bgid        uint16
	Flags       uint16 // pad before 6.4 (IOU_PBUF_RING_MMAP)
	resv        [3]uint64
}

// bufReg.Flags.
const IOU_PBUF_RING_INC = 2 // 6.12: buffers consumed incrementally

// Opcodes (enum io_uring_op), with the release each came in.
const (
	IORING_OP_NOP          = 0  // 5.1
	IORING_OP_READV        = 1  // 5.1
	IORING_OP_POLL_ADD     = 6  // 5.1; multishot 5.13
	IORING_OP_TIMEOUT      = 11 // 5.4
	IORING_OP_ACCEPT       = 13 // 5.5; multishot 5.19
	IORING_OP_ASYNC_CANCEL = 14 // 5.5; by fd, all: 5.19
	IORING_OP_LINK_TIMEOUT = 15 // 5.5
	IORING_OP_CLOSE        = 19 // 5.6
	IORING_OP_READ         = 22 // 5.6
	IORING_OP_WRITE        = 23 // 5.6
	IORING_OP_SEND         = 26 // 5.6
	IORING_OP_RECV         = 27 // 5.6; multishot 6.0
	IORING_OP_SHUTDOWN     = 34 // 5.11
	IORING_OP_MSG_RING     = 40 // 5.18
	IORING_OP_SOCKET       = 45 // 5.19, with multishot accept and PBUF_RING
	IORING_OP_SEND_ZC      = 47 // 6.0, with multishot receive
)

// IORING_POLL_ADD_MULTI, in a POLL_ADD's len: the poll stays armed and
// completes at every wake-up of the file (5.13).
const IORING_POLL_ADD_MULTI = 1 << 0

// sqe.flags (IOSQE_*).
const (
	IOSQE_FIXED_FILE       = 1 << 0
	IOSQE_IO_DRAIN         = 1 << 1
	IOSQE_IO_LINK          = 1 << 2
	IOSQE_IO_HARDLINK      = 1 << 3
	IOSQE_ASYNC            = 1 << 4
	IOSQE_BUFFER_SELECT    = 1 << 5 // 5.7
	IOSQE_CQE_SKIP_SUCCESS = 1 << 6 // 5.17
)

// io_uring_setup flags (IORING_SETUP_*).
const (
	IORING_SETUP_IOPOLL        = 1 << 0
	IORING_SETUP_SQPOLL        = 1 << 1
	IORING_SETUP_CQSIZE        = 1 << 3  // 5.5
	IORING_SETUP_CLAMP         = 1 << 4  // 5.6
	IORING_SETUP_R_DISABLED    = 1 << 6  // 5.10
	IORING_SETUP_SUBMIT_ALL    = 1 << 7  // 5.18
	IORING_SETUP_COOP_TASKRUN  = 1 << 8  // 5.19
	IORING_SETUP_TASKRUN_FLAG  = 1 << 9  // 5.19
	IORING_SETUP_SINGLE_ISSUER = 1 << 12 // 6.0
	IORING_SETUP_DEFER_TASKRUN = 1 << 13 // 6.1
)

// io_uring_params.features (IORING_FEAT_*).
const (
	IORING_FEAT_SINGLE_MMAP = 1 << 0  // 5.4
	IORING_FEAT_NODROP      = 1 << 1  // 5.5
	IORING_FEAT_FAST_POLL   = 1 << 5  // 5.7
	IORING_FEAT_EXT_ARG     = 1 << 8  // 5.11
	IORING_FEAT_CQE_SKIP    = 1 << 11 // 5.17
	IORING_FEAT_MIN_TIMEOUT = 1 << 15 // 6.12: geteventsArg.MinWaitUsec
)

// io_uring_enter flags (IORING_ENTER_*).
const (
	IORING_ENTER_GETEVENTS = 1 << 0
	IORING_ENTER_EXT_ARG   = 1 << 3 // 5.11
)

// The SQ ring's flags word (IORING_SQ_*), written by the kernel.
const (
	IORING_SQ_NEED_WAKEUP = 1 << 0
	IORING_SQ_CQ_OVERFLOW = 1 << 1 // completions wait in the kernel's overflow list
	IORING_SQ_TASKRUN     = 1 << 2
)

// cqe.flags (IORING_CQE_F_*).
const (
	IORING_CQE_F_BUFFER        = 1 << 0 // the upper 16 bits are the provided buffer's id
	IORING_CQE_F_MORE          = 1 << 1 // a multishot request stays armed: more completions follow
	IORING_CQE_F_SOCK_NONEMPTY = 1 << 2
	IORING_CQE_F_BUF_MORE      = 1 << 4 // 6.12: an incremental buffer was not used up; more of it follows
	IORING_CQE_BUFFER_SHIFT    = 16
)

// Per-operation flags.
const (
	IORING_ACCEPT_MULTISHOT  = 1 << 0 // sqe.ioprio of ACCEPT, 5.19
	IORING_RECV_MULTISHOT    = 1 << 1 // sqe.ioprio of RECV, 6.0
	IORING_NOP_INJECT_RESULT = 1 << 0 // sqe.nop_flags of NOP: complete with sqe.len as res, 6.10

	IORING_ASYNC_CANCEL_ALL = 1 << 0 // sqe.cancel_flags, 5.19: every match, not only the first
	IORING_ASYNC_CANCEL_FD  = 1 << 1 // match on sqe.fd instead of user_data
	IORING_ASYNC_CANCEL_ANY = 1 << 2
)

// mmap offsets of a ring's three parts.
const (
	IORING_OFF_SQ_RING = 0
	IORING_OFF_CQ_RING = 0x8000000
	IORING_OFF_SQES    = 0x10000000
)

// io_uring_register opcodes.
const (
	IORING_REGISTER_PROBE       = 8  // 5.6
	IORING_REGISTER_PBUF_RING   = 22 // 5.19
	IORING_UNREGISTER_PBUF_RING = 23 // 5.19
	IO_URING_OP_SUPPORTED       = 1 << 0
	maxBufRingEntries           = 1 << 15 // the kernel's limit on a buffer ring
)
