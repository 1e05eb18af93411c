package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// A claim says which attachment owns a host path the plugin creates files
// at: a socket, a config-data file, a per-pod socket directory. Claims are
// taken before anything is created, atomically (O_EXCL), so two attachments
// can never be given one path, and they are what decides, at rollback, DEL
// and GC, whether a file at a path is this attachment's to remove: a file an
// attachment does not own is never unlinked, even when its configuration
// names the same path. A directory is claimed by a sandbox (IfName empty):
// all of a pod's attachments share it.

// Claim is the owner of one path.
type Claim struct {
	// Path is not stored: the claim's file name is its digest.
	Path        string `json:"-"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName,omitempty"`
}

func (c *Claim) owner() string {
	if c.IfName == "" {
		return "container " + c.ContainerID
	}
	return fmt.Sprintf("container %s interface %s", c.ContainerID, c.IfName)
}

// ErrCorruptClaim marks a claim that is not one the plugin wrote (not a
// symbolic link, or not its JSON): whose the path is cannot be known.
var ErrCorruptClaim = errors.New("corrupt claim")

// ConflictError reports a path another live attachment owns.
type ConflictError struct {
	Path  string
	Owner Claim
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is already used by %s", e.Path, e.Owner.owner())
}

func (s *Store) claimPath(path string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(path)))
	return filepath.Join(s.dir, "claims", hex.EncodeToString(sum[:20]))
}

// ClaimPath makes the attachment (or, with ifName empty, the sandbox) the
// owner of path. Claiming a path one already owns succeeds. A path owned by
// another attachment is refused with a *ConflictError, unless that owner is
// stale: it has no record and no verb of its sandbox is running (an ADD that
// died half-way), in which case the claim passes to the caller.
func (s *Store) ClaimPath(path, containerID, ifName string) error {
	want := Claim{Path: filepath.Clean(path), ContainerID: containerID, IfName: ifName}
	data, err := json.Marshal(want)
	if err != nil {
		return err
	}
	file := s.claimPath(path)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("creating claims directory: %w", err)
	}
	for attempt := 0; ; attempt++ {
		err := writeExclusive(file, data)
		if err == nil || !errors.Is(err, fs.ErrExist) {
			return err
		}
		have, err := s.claimOf(path)
		if err != nil {
			return err
		}
		if have == nil {
			continue // released meanwhile
		}
		if *have == want {
			return nil
		}
		if attempt > 0 {
			return &ConflictError{Path: want.Path, Owner: *have}
		}
		taken, err := s.takeOver(path, have, data)
		if err != nil || taken {
			return err
		}
		return &ConflictError{Path: want.Path, Owner: *have}
	}
}

// takeOver replaces a stale owner's claim. The owner's sandbox lock is held
// meanwhile, so its ADD cannot start using the path while it changes hands.
func (s *Store) takeOver(path string, owner *Claim, data []byte) (bool, error) {
	if s.ownerAlive(owner) {
		return false, nil
	}
	unlock, ok, err := s.TryLockSandbox(owner.ContainerID)
	if err != nil || !ok {
		return false, err
	}
	defer unlock()
	again, err := s.claimOf(path)
	if err != nil {
		return false, err
	}
	if again == nil || *again != *owner || s.ownerAlive(owner) {
		return false, nil
	}
	return true, writeReplace(s.claimPath(path), data)
}

// ownerAlive reports whether a claim's owner still has a record.
func (s *Store) ownerAlive(c *Claim) bool {
	if c.IfName != "" {
		r, err := s.Load(c.ContainerID, c.IfName)
		return r != nil || err != nil // an unreadable record still counts
	}
	has, err := s.HasRecords(c.ContainerID)
	return has || err != nil
}

// Owner returns the claim on path, nil when nobody claims it.
func (s *Store) Owner(path string) (*Claim, error) {
	return s.claimOf(path)
}

// Owns reports whether the attachment (or sandbox) owns path.
func (s *Store) Owns(path, containerID, ifName string) (bool, error) {
	c, err := s.claimOf(path)
	if err != nil || c == nil {
		return false, err
	}
	return c.ContainerID == containerID && c.IfName == ifName, nil
}

// ReleasePath gives up a claim the attachment (or sandbox) holds; another
// owner's claim, or none, is left alone.
func (s *Store) ReleasePath(path, containerID, ifName string) error {
	own, err := s.Owns(path, containerID, ifName)
	if err != nil || !own {
		return err
	}
	if err := os.Remove(s.claimPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("releasing claim on %s: %w", path, err)
	}
	return nil
}

// A claim is a symbolic link whose target is the claim's JSON: symlink(2)
// creates it with its content in one atomic step (failing if the name is
// taken), and readlink(2) reads it in one, so a claim costs a system call
// or two, and no reader ever sees one half-written.

func (s *Store) readClaim(file string) (*Claim, error) {
	target, err := os.Readlink(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil, fmt.Errorf("claim %s is not a symbolic link: %w", file, ErrCorruptClaim)
	}
	if err != nil {
		return nil, fmt.Errorf("reading claim %s: %w", file, err)
	}
	c := &Claim{}
	if err := json.Unmarshal([]byte(target), c); err != nil {
		return nil, fmt.Errorf("claim %s: %w: %w", file, ErrCorruptClaim, err)
	}
	return c, nil
}

// claimOf reads the claim on path, with its path set.
func (s *Store) claimOf(path string) (*Claim, error) {
	c, err := s.readClaim(s.claimPath(path))
	if c != nil {
		c.Path = filepath.Clean(path)
	}
	return c, err
}

// writeExclusive creates the claim file with data, failing with
// fs.ErrExist if it is there.
func writeExclusive(file string, data []byte) error {
	if err := os.Symlink(string(data), file); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("writing claim %s: %w", file, err)
	}
	return nil
}

// writeReplace replaces the claim file atomically.
func writeReplace(file string, data []byte) error {
	tmp := fmt.Sprintf("%s.%d.tmp", file, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(string(data), tmp); err != nil {
		return fmt.Errorf("writing claim %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing claim %s: %w", file, err)
	}
	return nil
}
