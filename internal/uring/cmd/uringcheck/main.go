//go:build linux

// Command uringcheck says whether the Loop's io_uring backend
// (Loop.Backend io_uring) can run here: it prints uring.Available's
// verdict, with the kernel's release, and exits 1 when io_uring cannot be
// used. .ci/run runs it to decide whether to run the test suite on
// io_uring as well, and to say why not when it does not.
//
//	go run ./internal/uring/cmd/uringcheck
package main

import (
	"fmt"
	"os"

	"github.com/netcore-dev/netcore/internal/uring"
	"golang.org/x/sys/unix"
)

func main() {
	release := "unknown"
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		release = unix.ByteSliceToString(u.Release[:])
	}
	if err := uring.Available(); err != nil {
		fmt.Printf("io_uring cannot be used here (Linux %s): %v\n", release, err)
		os.Exit(1)
	}
	fmt.Printf("io_uring can be used here (Linux %s)\n", release)
}
