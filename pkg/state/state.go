// Package state keeps the plugin's node-local state: one record per
// attachment (so DEL, CHECK and GC never depend on the pod or the network
// configuration still existing) and the node lock that serializes changes.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// recordVersion is bumped when Record changes incompatibly.
const recordVersion = 1

// Record is what ADD created for one attachment.
type Record struct {
	Version      int    `json:"version"`
	ContainerID  string `json:"containerID"`
	IfName       string `json:"ifName"`
	Network      string `json:"network,omitempty"`
	Netns        string `json:"netns,omitempty"`
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
	PodUID       string `json:"podUID,omitempty"`
	Engine       string `json:"engine"`
	// Layout is where the socket and config data are.
	Layout *sockdir.Layout `json:"layout"`
	// ConfigDataFile is the config-data file's name in Layout.Dir.
	ConfigDataFile string `json:"configDataFile,omitempty"`
	// NotesLayout and NotesFiles are the application notes' per-pod files
	// (VPP's default layout), when written.
	NotesLayout *sockdir.Layout `json:"notesLayout,omitempty"`
	NotesFiles  []string        `json:"notesFiles,omitempty"`
	// Annotated says the pod's configuration-data annotation has an entry
	// for the attachment; DeviceInfoFile is the device-info file written.
	Annotated      bool   `json:"annotated,omitempty"`
	DeviceInfoFile string `json:"deviceInfoFile,omitempty"`
	// IPAM is the IPAM plugin type used, if any.
	IPAM string `json:"ipam,omitempty"`
	// EngineData is the engine's own record of what it created.
	EngineData json.RawMessage `json:"engineData,omitempty"`
	Created    time.Time       `json:"created"`
}

// Store holds records and the node lock in one directory that pods never see.
type Store struct {
	dir string
}

// New returns a store in dir (created on first write).
func New(dir string) *Store { return &Store{dir: dir} }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// recordName is unambiguous because container ids cannot contain '@'.
func (s *Store) path(containerID, ifName string) string {
	return filepath.Join(s.dir, "attachments", containerID+"@"+ifName+".json")
}

// Lock takes the node-wide lock, waiting until ctx is done. The lock is an
// flock, so it is released even if the process dies.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening node lock: %w", err)
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		return func() { _ = f.Close() }, nil
	}
	// Contended: block in flock (woken as soon as the holder releases) on a
	// goroutine, so a deadline can still end the wait.
	done := make(chan error, 1)
	go func() { done <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("taking node lock: %w", err)
		}
		return func() { _ = f.Close() }, nil
	case <-ctx.Done():
		// Closing the descriptor would not interrupt the pending flock (the
		// kernel holds its own reference to the open file), so leave the
		// goroutine waiting and close once it returns: that releases the
		// lock it may then have taken. Process exit releases it too.
		go func() { <-done; _ = f.Close() }()
		return nil, fmt.Errorf("timed out waiting for the node lock %s: %w", filepath.Join(s.dir, "lock"), ctx.Err())
	}
}

// Save writes a record atomically (write, then rename). It does not fsync:
// a record lost or torn by a power cut costs nothing, because DEL and GC
// also find the attachment on the switch by ownership.
func (s *Store) Save(r *Record) error {
	r.Version = recordVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, "attachments")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating record directory: %w", err)
	}
	final := s.path(r.ContainerID, r.IfName)
	tmp, err := os.CreateTemp(dir, ".record-*")
	if err != nil {
		return fmt.Errorf("writing record: %w", err)
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), final)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing record %s: %w", final, werr)
	}
	return nil
}

// Load returns the record of an attachment, or nil if there is none.
func (s *Store) Load(containerID, ifName string) (*Record, error) {
	return s.load(s.path(containerID, ifName))
}

func (s *Store) load(path string) (*Record, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading record: %w", err)
	}
	r := &Record{}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("record %s is corrupt: %w", path, err)
	}
	return r, nil
}

// Delete removes a record; a missing record is not an error.
func (s *Store) Delete(containerID, ifName string) error {
	err := os.Remove(s.path(containerID, ifName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing record: %w", err)
	}
	return nil
}

// List returns every record. Unreadable records are reported in the error
// but do not hide the others.
func (s *Store) List() ([]*Record, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "attachments"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing records: %w", err)
	}
	var out []*Record
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := s.load(filepath.Join(s.dir, "attachments", e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}
