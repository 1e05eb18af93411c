package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Listen replaces only a dead socket: a live agent's is refused, and so is
// any file that is not a socket (left as it is).
func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "podapi.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	ln, err = Listen(path)
	if err != nil {
		t.Fatalf("Listen over a dead socket: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("closing the listener left the socket: %v", err)
	}
	if err := os.WriteFile(path, []byte("planted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "planted" {
		t.Error("Listen touched a file that is not a socket")
	}
}
