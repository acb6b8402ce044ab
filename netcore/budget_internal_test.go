//go:build linux

package netcore

import (
	"strings"
	"testing"
)

// The fast path's wake-up needs the threads' syscall files: where they
// cannot be read (a process that is not dumpable), blocking mode is found
// unusable up front, with the reason.
func TestBlockingWakeProblem(t *testing.T) {
	if why := blockingWakeProblem(taskDir); why != "" {
		t.Fatalf("blockingWakeProblem(%q) = %q, want none on this machine", taskDir, why)
	}
	dir := t.TempDir() + "/no-such-dir"
	if why := blockingWakeProblem(dir); !strings.Contains(why, "cannot read "+dir) {
		t.Errorf("blockingWakeProblem(%q) = %q, want it to name the file it cannot read", dir, why)
	}
}
