package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Locks are per pod sandbox (container id), not per node: every verb on
// one sandbox is serialized from its first side effect (IPAM included) to
// its last, while verbs on other sandboxes, and on other switches, never
// wait for it. A sandbox's attachments share its socket directory, so the
// sandbox is the natural unit; runtimes and Multus handle one sandbox's
// attachments one after another anyway.
//
// A lock is an flock on a file in locks/, released by the kernel if the
// process dies. The holder unlinks the file as it unlocks, so lock files do
// not pile up; a waiter that then gets the lock on the unlinked file sees
// that the path no longer names it and tries again.

// LockSandbox takes the lock of a sandbox, waiting until ctx is done.
func (s *Store) LockSandbox(ctx context.Context, containerID string) (unlock func(), err error) {
	path, err := s.lockPath(containerID)
	if err != nil {
		return nil, err
	}
	for {
		f, err := openLockFile(path)
		if err != nil {
			return nil, err
		}
		if err := flockContext(ctx, f, path); err != nil {
			return nil, err
		}
		if current(f, path) {
			return unlocker(f, path), nil
		}
		_ = f.Close()
	}
}

// TryLockSandbox takes the lock of a sandbox if nobody holds it; ok is false
// when another verb holds it.
func (s *Store) TryLockSandbox(containerID string) (unlock func(), ok bool, err error) {
	path, err := s.lockPath(containerID)
	if err != nil {
		return nil, false, err
	}
	for {
		f, err := openLockFile(path)
		if err != nil {
			return nil, false, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			_ = f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("taking lock %s: %w", path, err)
		}
		if current(f, path) {
			return unlocker(f, path), true, nil
		}
		_ = f.Close()
	}
}

func (s *Store) lockPath(containerID string) (string, error) {
	dir := filepath.Join(s.dir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating lock directory: %w", err)
	}
	return filepath.Join(dir, fileKey(containerID)), nil
}

func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	return f, nil
}

// flockContext blocks in flock (woken as soon as the holder releases) on a
// goroutine, so the deadline can still end the wait.
func flockContext(ctx context.Context, f *os.File, path string) error {
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("taking lock %s: %w", path, err)
		}
		return nil
	case <-ctx.Done():
		// Closing the descriptor would not interrupt the pending flock (the
		// kernel holds its own reference to the open file), so close once it
		// returns: that releases the lock it may then have taken.
		go func() { <-done; _ = f.Close() }()
		return fmt.Errorf("timed out waiting for lock %s (another verb on this sandbox is running): %w", path, ctx.Err())
	}
}

// current reports whether path still names the locked file.
func current(f *os.File, path string) bool {
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Lstat(path, &now) != nil {
		return false
	}
	return held.Dev == now.Dev && held.Ino == now.Ino
}

func unlocker(f *os.File, path string) func() {
	return func() {
		// Unlinked while still held: a waiter on this file retries, a newcomer
		// creates a fresh one.
		_ = os.Remove(path)
		_ = f.Close()
	}
}
