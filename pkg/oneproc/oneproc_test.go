package oneproc_test

import (
	"runtime"
	"testing"

	_ "github.com/userspace-cni/userspace/pkg/oneproc"
)

func TestOneP(t *testing.T) {
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("GOMAXPROCS is %d after importing oneproc", n)
	}
}
