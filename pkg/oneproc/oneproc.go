// Package oneproc, imported for its side effect, runs the importing
// process on one P (GOMAXPROCS=1) from the start of package initialisation.
//
// A CNI plugin process lives tens of milliseconds and does one thing at a
// time. With more Ps the goroutines it starts (I/O readers, timers) run on
// a second P, whose allocation cache takes fresh spans of every size class
// it allocates, and the scheduler wakes and spins idle threads at each
// hand-off. On the 2-core VMs this was measured on (issue 13) that cost
// 20 to 60 page faults per call (about a tenth) and more CPU than any
// parallelism saved. The package imports nothing but runtime, so it is
// initialised among the first packages, before the heavy ones allocate.
package oneproc

import "runtime"

func init() { runtime.GOMAXPROCS(1) }
