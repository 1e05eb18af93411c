package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecureTightensAndCreates(t *testing.T) {
	base := t.TempDir()
	wide := filepath.Join(base, "wide")
	if err := os.Mkdir(wide, 0o755); err != nil {
		t.Fatal(err)
	}
	// os.Mkdir is subject to the umask: set the mode a hostPath volume gives.
	if err := os.Chmod(wide, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{wide, filepath.Join(base, "new", "state")} {
		if err := New(dir).Secure(); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %#o after Secure, want 0700", dir, fi.Mode().Perm())
		}
	}
}

func TestSecureRefusesNonDirectory(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	err := New(link).Secure()
	if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Secure on a symbolic link: %v", err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o755 {
		t.Errorf("the link's target changed to %#o", fi.Mode().Perm())
	}
}
