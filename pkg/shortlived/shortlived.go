// Package shortlived, imported for its side effect, sets the Go runtime up
// for a process that lives tens of milliseconds, such as one CNI verb (the
// plugin and its Kubernetes helper import it). From its package
// initialisation on, the process runs on one P, and the heap pages it is
// about to use are populated in one system call.
//
// One P: with two, the goroutines the plugin starts (I/O readers, timers)
// ran on the second P, whose allocation cache took fresh spans of every size
// class it allocated, and the scheduler woke and spun idle threads at each
// hand-off. On the 2-core VMs of issue 13 that cost 20 to 60 page faults per
// call and more CPU than any parallelism saved.
//
// Populated heap: a verb's heap and goroutine stacks grow to about 1.2 MB,
// and each 4 KiB page touched for the first time is a page fault. On those
// VMs a fault costs about 0.1 ms (fitted from start-up times and fault
// counts of three binaries; perf puts most of it in the paravirtualised
// kernel's fault path), which made faults the larger part of a verb's time.
// Populating the pages the verb will use with one
// madvise(MADV_POPULATE_WRITE) costs a fraction of that. The kernel fills
// the pages with zeros, as a fault would, and skips the ones already
// present, so the runtime sees nothing different. A kernel without
// MADV_POPULATE_WRITE (before Linux 5.14) refuses the call, and the pages
// are then faulted in one by one as before.
//
// The package imports nothing but the runtime, syscall and unsafe, so it is
// initialised early (13th of the plugin's 61 packages), before the heavy
// ones allocate.
package shortlived

import (
	"runtime"
	"syscall"
	"unsafe"
)

const (
	// PrefaultBytes is how much of the heap is populated at start, at most:
	// a verb's heap and stacks reach 0.9 to 1.2 MB (HeapInuse plus
	// StackInuse at exit, measured on every verb), a VERSION's 0.9 MB.
	PrefaultBytes = 2 << 20
	// heapChunk is the unit, aligned to its size, in which the Go runtime
	// maps heap memory read-write (its palloc chunk, runtime/mpagealloc.go),
	// so the chunk that holds a heap object is mapped whole.
	heapChunk = 4 << 20
	// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14).
	madvPopulateWrite = 0x17
)

func init() {
	runtime.GOMAXPROCS(1)
	start, end := HeapRange()
	_ = Populate(start, end)
}

// HeapRange is the range Populate is given at start: PrefaultBytes from the
// page of a new small heap object, up to the end of the heap chunk that
// holds it (the next chunk is not mapped yet). At package initialisation
// such an object lies 0.6 to 1.3 MB below the first free pages of the heap
// (measured with a large allocation right after it), within the pages the
// runtime's per-P caches hold: the range covers those and the heap's next
// megabyte or so. Since Go 1.26 the heap starts at a random page of its
// first chunk, so the range is shorter when that page is near the chunk's
// end (under 1.2 MB in 3 of 10 starts measured).
func HeapRange() (start, end uintptr) {
	obj := heapObject()
	start = obj &^ (uintptr(syscall.Getpagesize()) - 1)
	end = min(start+PrefaultBytes, obj&^(heapChunk-1)+heapChunk)
	return start, end
}

// heapObject is the address of a new heap object. A value sent on a
// channel escapes, so the compiler allocates it on the heap rather than on
// this goroutine's stack (go build -gcflags=-m says so).
func heapObject() uintptr {
	ch := make(chan *int64, 1)
	ch <- new(int64)
	return uintptr(unsafe.Pointer(<-ch))
}

// Populate makes the pages of [start, end) present and writable, as writing
// to each would, in one system call. The range must lie in a private
// anonymous read-write mapping.
func Populate(start, end uintptr) error {
	if end <= start {
		return nil
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvPopulateWrite); errno != 0 {
		return errno
	}
	return nil
}
