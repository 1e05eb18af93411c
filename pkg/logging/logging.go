// Package logging sets up the plugin's structured log (log/slog): stderr by
// default, or a file in a directory the node policy allows. stdout is
// reserved for the CNI result.
package logging

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/policy"
)

// Level maps the original plugin's log levels to slog's.
func Level(name string) slog.Level {
	switch name {
	case "panic", "error":
		return slog.LevelError
	case "info":
		return slog.LevelInfo
	case "debug", "verbose":
		return slog.LevelDebug
	default: // "warning" and unset
		return slog.LevelWarn
	}
}

// Open returns a logger writing to file (if set) or stderr at level, and a
// function that closes the file. The file is opened beneath the allowed
// directory it matched, never through a symlink.
func Open(file, level string, pol *policy.Policy, stderr io.Writer) (*slog.Logger, func(), error) {
	opts := &slog.HandlerOptions{Level: Level(level)}
	if file == "" {
		return slog.New(slog.NewTextHandler(stderr, opts)), func() {}, nil
	}
	base, rel, err := pol.Match(policy.LogFile, file)
	if err != nil {
		return nil, nil, fmt.Errorf("logFile %q: %w", file, err)
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return nil, nil, fmt.Errorf("logFile %q: %w", file, err)
	}
	defer root.Close()
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o750); err != nil {
			return nil, nil, fmt.Errorf("logFile %q: %w", file, err)
		}
	}
	f, err := openLog(root, rel)
	if err != nil {
		return nil, nil, fmt.Errorf("logFile %q: %w", file, err)
	}
	return slog.New(slog.NewTextHandler(f, opts)), func() { _ = f.Close() }, nil
}

// openLog opens rel beneath root for appending, creating it if needed.
// os.Root ignores O_NOFOLLOW for a final symlink that stays beneath the root
// (it follows it), so the name is checked before and the opened file after:
// it must be the regular file rel names, not a symlink's target.
func openLog(root *os.Root, rel string) (*os.File, error) {
	if fi, err := root.Lstat(rel); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (mode %v)", fi.Mode())
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		var lfi fs.FileInfo
		if lfi, err = root.Lstat(rel); err == nil && (!lfi.Mode().IsRegular() || !os.SameFile(fi, lfi)) {
			err = errors.New("replaced by a symbolic link or another file while opening")
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}
