package testbed

import (
	"fmt"
	"io"
	"time"
)

// Progress writes "still <what> (N s)" to w every interval until the
// returned function is called, so that a step that takes minutes the first
// time (apt-get, a build) does not look hung. It does nothing for
// io.Discard.
func Progress(w io.Writer, what string, every time.Duration) (stop func()) {
	if w == io.Discard {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "still %s (%d s)\n", what, int(time.Since(start).Seconds()))
			}
		}
	}()
	return func() { close(done); <-exited }
}
