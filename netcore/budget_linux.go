package netcore

import (
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/netcore-dev/netcore/internal/sys"
)

// The blocking-mode budget. A blocking-mode socket (the fast path) pins an
// OS thread while a call on it waits in the kernel, and Go's runtime
// aborts the process past its thread limit (debug.SetMaxThreads, 10,000 by
// default): 10,200 idle clients of a blocking-mode Server would crash it.
// So the blocking-mode sockets open at once are counted against a budget;
// past it, new sockets (accepted or dialed) are made in the default mode,
// on the runtime poller, where a waiting call costs no thread. They work
// the same, only without the fast path's speed.
var blockingBudget struct {
	once      sync.Once
	budget    atomic.Int64 // 0 until derived or set
	inUse     atomic.Int64
	fallbacks atomic.Int64
	off       string // why blocking mode cannot work here; "" if it can
}

// SetBlockingBudget sets how many blocking-mode sockets (ListenConfig and
// Dialer with Blocking set) may be open at once in this process; n <= 0
// restores the default, three quarters of the runtime's thread limit when
// it is first needed (7,500 with Go's default of 10,000). Sockets made
// past the budget are made in the default mode instead. It returns the
// budget before the call. Call it again after lowering
// debug.SetMaxThreads once blocking-mode sockets exist.
func SetBlockingBudget(n int) int {
	prev := budgetValue()
	if n <= 0 {
		n = defaultBlockingBudget()
	}
	blockingBudget.budget.Store(int64(n))
	return prev
}

// BlockingBudgetStats reports the blocking-mode sockets open now, the
// budget, and how many sockets were made in the default mode because the
// budget was spent.
// The budget is 0 where blocking mode cannot work at all (SIGURG ignored,
// or the process's threads unreadable in /proc: see ListenConfig.Blocking).
func BlockingBudgetStats() (inUse, budget, fellBack int64) {
	budget = int64(budgetValue())
	if blockingBudget.off != "" {
		budget = 0
	}
	return blockingBudget.inUse.Load(), budget, blockingBudget.fallbacks.Load()
}

// budgetValue returns the budget, derived from the runtime's thread limit
// on first use.
func budgetValue() int {
	blockingBudget.once.Do(func() {
		if blockingBudget.budget.Load() == 0 {
			blockingBudget.budget.CompareAndSwap(0, int64(defaultBlockingBudget()))
		}
		if why := blockingWakeProblem(taskDir); why != "" {
			blockingBudget.off = why
			slog.Default().Warn("netcore: blocking mode cannot wake blocked calls in this process; blocking-mode sockets are made in the default mode",
				"reason", why)
		}
	})
	return int(blockingBudget.budget.Load())
}

// taskDir is where the fast path finds the process's threads.
var taskDir = "/proc/self/task"

// blockingWakeProblem says why the fast path could not wake a blocked
// call in this process, "" if it can: a deadline moved earlier or a Close
// interrupts the call by finding its thread under dir and sending it
// SIGURG. A process that is not dumpable (it dropped privileges) cannot
// read its threads' syscall files; a process that ignores SIGURG is never
// interrupted. Either way, every Close of a blocked socket would wait a
// second and every deadline change go unseen, so blocking mode is off.
func blockingWakeProblem(dir string) string {
	if signal.Ignored(syscall.SIGURG) {
		return "SIGURG is ignored"
	}
	path := dir + "/" + strconv.Itoa(sys.Gettid()) + "/syscall"
	b, err := os.ReadFile(path)
	if err != nil {
		return "cannot read " + path + ": " + err.Error()
	}
	if len(b) == 0 {
		return path + " is empty"
	}
	return ""
}

// defaultBlockingBudget is three quarters of the runtime's thread limit:
// the rest is for the runtime's own threads and other blocking calls.
// debug.SetMaxThreads is the only way to read the limit; setting it that
// high for a moment is harmless.
func defaultBlockingBudget() int {
	limit := debug.SetMaxThreads(1 << 30)
	debug.SetMaxThreads(limit)
	return max(limit*3/4, 1)
}

// takeBlockingSlot counts a new blocking-mode socket against the budget;
// false means the budget is spent and the socket must be made in the
// default mode.
func takeBlockingSlot() bool {
	b := int64(budgetValue())
	if blockingBudget.off != "" {
		blockingBudget.fallbacks.Add(1)
		return false
	}
	for {
		n := blockingBudget.inUse.Load()
		if n >= b {
			blockingBudget.fallbacks.Add(1)
			return false
		}
		if blockingBudget.inUse.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// closeBlockingRaw closes a blocking-mode socket's descriptor and gives
// its slot back.
func closeBlockingRaw(s int) {
	closeFD(s)
	blockingBudget.inUse.Add(-1)
}
