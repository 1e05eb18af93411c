package shortlived_test

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/shortlived"
)

func TestOneP(t *testing.T) {
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("GOMAXPROCS is %d after importing shortlived", n)
	}
}

// resident counts the resident pages of [start, end).
func resident(t *testing.T, start, end uintptr) int {
	t.Helper()
	page := uintptr(os.Getpagesize())
	vec := make([]byte, (end-start+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, start, end-start, uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestPopulate populates a fresh anonymous mapping, none of whose pages
// were touched: all of them must be present afterwards, and zero.
func TestPopulate(t *testing.T) {
	const size = 1 << 20
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Munmap(mem) }()
	start := uintptr(unsafe.Pointer(&mem[0]))
	if n := resident(t, start, start+size); n != 0 {
		t.Fatalf("%d pages resident before populating", n)
	}
	if err := shortlived.Populate(start, start+size); err != nil {
		t.Fatalf("Populate: %v (MADV_POPULATE_WRITE needs Linux 5.14)", err)
	}
	if n, all := resident(t, start, start+size), size/os.Getpagesize(); n != all {
		t.Fatalf("%d of %d pages resident after populating", n, all)
	}
	for i, b := range mem {
		if b != 0 {
			t.Fatalf("byte %d is %d after populating", i, b)
		}
	}
}

// TestPopulateKeepsContents: populating pages already written leaves what
// they hold, so populating the runtime's heap under it changes nothing.
func TestPopulateKeepsContents(t *testing.T) {
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	start := uintptr(unsafe.Pointer(&buf[0]))
	page := uintptr(os.Getpagesize())
	if err := shortlived.Populate(start&^(page-1), (start+uintptr(len(buf))+page-1)&^(page-1)); err != nil {
		t.Fatal(err)
	}
	for i, b := range buf {
		if b != byte(i*7+1) {
			t.Fatalf("byte %d changed to %d", i, b)
		}
	}
}

// TestHeapRange: the range populated at start begins at a page of the
// heap, lies inside one private read-write mapping, and its pages are
// resident.
func TestHeapRange(t *testing.T) {
	start, end := shortlived.HeapRange()
	if end <= start || end-start > shortlived.PrefaultBytes || start%uintptr(os.Getpagesize()) != 0 {
		t.Fatalf("range %#x-%#x: not page-aligned, empty or more than %d bytes", start, end, shortlived.PrefaultBytes)
	}
	perms, err := mappingOf(start, end)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(perms, "rw") || perms[3] != 'p' {
		t.Fatalf("the range %#x-%#x is in a %q mapping, not a private read-write one", start, end, perms)
	}
	if n, all := resident(t, start, end), int(end-start)/os.Getpagesize(); n != all {
		t.Fatalf("%d of the range's %d pages are resident after package initialisation", n, all)
	}
}

// mappingOf returns the permissions of the mapping of /proc/self/maps that
// holds [start, end) whole.
func mappingOf(start, end uintptr) (string, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var lo, hi uintptr
		var perms string
		if _, err := fmt.Sscanf(sc.Text(), "%x-%x %s", &lo, &hi, &perms); err != nil {
			continue
		}
		if lo <= start && end <= hi {
			return perms, nil
		}
	}
	return "", fmt.Errorf("no single mapping holds %#x-%#x", start, end)
}
