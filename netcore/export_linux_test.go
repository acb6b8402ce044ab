package netcore

// Exported for the tests of package netcore_test only (a _test.go file of
// package netcore): the io_uring backend's fault-injection knobs
// (loopuring_linux.go).

// URingFaults sets the io_uring backend's fault-injection knobs. The zero
// value is the backend as it runs outside tests.
type URingFaults struct {
	// Entries is the submission queue's size (0: the default, 1024); a
	// small one has the loops find it full (eventLoop.prep).
	Entries uint32
	// RecvMax > 0: every receive is a single one of at most RecvMax
	// bytes. SendMax > 0: every send offers at most SendMax bytes.
	RecvMax, SendMax int
	// Fault, if set, is asked before each receive (kind URingRecv) and
	// each send (URingSend) is queued; when it returns ok, that request is
	// replaced by a no-op completing with res (-errno, say). It is called
	// from the loops' goroutines, concurrently.
	Fault func(kind uint8) (res int32, ok bool)
	// NoRecvLimit has the loops act as on a kernel that cannot end a
	// multishot receive at a byte count: every receive is a single one.
	NoRecvLimit bool
	// WholeBuffers has the loops act as on a kernel without incremental
	// buffer consumption: a buffer serves one receive.
	WholeBuffers bool
}

// The kinds of request URingFaults.Fault is asked about.
const (
	URingRecv uint8 = udRecv
	URingSend uint8 = udSend
)

// SetURingFaults sets the knobs, for the Loops started from now on (a
// running Loop reads them too: set them before Serve and restore them
// after Shutdown returns), and returns a function that restores the
// previous ones.
func SetURingFaults(f URingFaults) (restore func()) {
	entries, recvMax, sendMax, fault, recvLimit, inc := uringEntries, uringRecvMax, uringSendMax, uringFault, uringRecvLimit, uringIncremental
	if f.Entries != 0 {
		uringEntries = f.Entries
	}
	uringRecvMax, uringSendMax, uringFault, uringRecvLimit, uringIncremental = f.RecvMax, f.SendMax, f.Fault, !f.NoRecvLimit, !f.WholeBuffers
	return func() {
		uringEntries, uringRecvMax, uringSendMax, uringFault, uringRecvLimit, uringIncremental = entries, recvMax, sendMax, fault, recvLimit, inc
	}
}
