package state

import (
	"fmt"
	"io/fs"
	"os"
)

// dirMode is the state directory's mode: the records and locks are root's.
const dirMode fs.FileMode = 0o700

// Secure makes the store's directory exist with mode 0700, tightening a
// directory that someone else created wider: a DaemonSet's hostPath volume
// of type DirectoryOrCreate makes it 0755, which lets every local user read
// the records (pod names, socket paths, configurations). A path that is not
// a directory (a symbolic link included) is refused.
func (s *Store) Secure() error {
	if err := os.MkdirAll(s.dir, dirMode); err != nil {
		return fmt.Errorf("creating the state directory %s: %w", s.dir, err)
	}
	fi, err := os.Lstat(s.dir)
	if err != nil {
		return fmt.Errorf("the state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the state directory %s is not a directory (mode %v)", s.dir, fi.Mode())
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(s.dir, dirMode); err != nil {
		return fmt.Errorf("making the state directory %s 0700 (it is %#o): %w", s.dir, fi.Mode().Perm(), err)
	}
	return nil
}
