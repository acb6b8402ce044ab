package netcore

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package's tests on the Loop backend that
// NETCORE_TEST_LOOP_BACKEND names ("io_uring"; epoll if unset), for every
// Loop whose Backend is left at its default: `.ci/run` runs the suite once
// per backend. A test that concerns one backend's mechanics says so and
// skips on the other (epollOnly).
func TestMain(m *testing.M) {
	switch v := os.Getenv("NETCORE_TEST_LOOP_BACKEND"); v {
	case "", "epoll":
	case "io_uring":
		testBackend = BackendIOUring
	default:
		fmt.Fprintf(os.Stderr, "NETCORE_TEST_LOOP_BACKEND=%q: want epoll or io_uring\n", v)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// SuiteBackend returns the backend the suite runs Loops on.
func SuiteBackend() LoopBackend { return testBackend }
