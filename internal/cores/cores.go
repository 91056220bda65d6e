// Package cores says how many cores lookout plans its work for, and gives
// the Go scheduler room for the threads that sit in ONNX Runtime calls.
//
// A worker's ONNX Runtime run is a cgo call that holds its P (the scheduler
// slot a thread needs to run Go code) in the syscall state. When every P
// is so held, the runtime's monitor takes them away after 20 µs and hands
// them to other threads; each run's end then finds its P gone, parks its
// thread and wakes another one. With two workers on two cores that churn
// cost a third of the second worker's throughput (docs/CAPACITY.md,
// "Workers and intra-op threads"). One extra P per worker leaves idle Ps,
// so the monitor lets runs keep theirs. Go code never gets more running
// threads than it could before: the extra Ps stand for threads that are
// busy in C.
package cores

import (
	"os"
	"runtime"
)

// n is GOMAXPROCS as the process started: $GOMAXPROCS, else the cores the
// runtime found (its default respects cgroup CPU limits).
var n = runtime.GOMAXPROCS(0)

// N is the number of cores lookout plans for: worker counts, intra-op
// threads and preprocessing fan-out derive from it, never from a GOMAXPROCS
// that Reserve raised.
func N() int { return n }

// Reserve sets GOMAXPROCS to N() plus one P per inference worker and
// returns the value in force. It changes nothing when $GOMAXPROCS is set
// (the operator's choice wins) or when workers is not positive.
func Reserve(workers int) int {
	if os.Getenv("GOMAXPROCS") != "" || workers <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	runtime.GOMAXPROCS(n + workers)
	return n + workers
}
