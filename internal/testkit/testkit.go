package testkit

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Timeout bounds every blocking step of a loopback test.
const Timeout = 10 * time.Second

// WaitFor waits for ch to deliver (or close) within Timeout.
func WaitFor[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Timeout):
		t.Fatalf("%s did not happen within %v", what, Timeout)
		var zero T
		return zero
	}
}

// Modes are netcore's two I/O modes: the runtime poller (false) and the
// blocking fast path (true).
var Modes = []bool{false, true}

// ModeName names an I/O mode of Modes, for subtest names and messages.
func ModeName(blocking bool) string {
	if blocking {
		return "blocking"
	}
	return "poller"
}

// UnixPath returns a fresh path for a Unix socket, in a short directory of
// its own under os.TempDir (t.TempDir's paths can pass the 107 bytes
// sun_path holds), removed when the test ends.
func UnixPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

var abstractSeq atomic.Int64

// AbstractName returns a name in the Linux abstract namespace that no
// other test, nor another run of this one, uses.
func AbstractName() string {
	return fmt.Sprintf("@netcore-test-%d-%d", os.Getpid(), abstractSeq.Add(1))
}

// RandomBytes returns n random bytes.
func RandomBytes(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return p
}

// A SyncBuffer is a bytes.Buffer safe for a logger and a test at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
