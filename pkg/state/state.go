// Package state keeps the plugin's node-local state: one record per
// attachment (so DEL, CHECK and GC never depend on the pod or the network
// configuration still existing), the claims that say which attachment owns
// which host path, and the per-sandbox locks that serialize verbs.
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
	"strings"
	"time"

	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// recordVersion is bumped when Record changes. Version 2 records were
// written with claims on their paths (see ClaimPath); a version 1 record's
// paths are its own by the record alone. Version 3 records carry what a
// restore and a teardown without the runtime need (NetConf, CNIPath, Args,
// IPs) and the Deleting mark; older records stay readable, and are only
// never restored.
const recordVersion = 3

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
	// Incomplete marks the record ADD writes before its first side effect
	// and replaces once it succeeds: should ADD die half-way, DEL and GC
	// still know what it may have created.
	Incomplete bool `json:"incomplete,omitempty"`
	// Deleting marks a record whose DEL (or GC) has begun: whatever happens
	// to that DEL, the attachment is never restored.
	Deleting bool `json:"deleting,omitempty"`

	// NetConf is the network configuration ADD was given (its stdin), and
	// CNIPath and Args its CNI_PATH and CNI_ARGS: with them the node agent
	// restores the attachment on the same switch, and tears down an orphan
	// exactly as DEL would, IPAM included, with no runtime to ask.
	NetConf json.RawMessage `json:"netConf,omitempty"`
	CNIPath string          `json:"cniPath,omitempty"`
	Args    string          `json:"args,omitempty"`
	// IPs are the IPAM addresses (CIDR notation) the host side was given
	// (VPP's netType "interface").
	IPs []string `json:"ips,omitempty"`
}

// Restorable reports whether the node agent may restore the attachment: a
// completed ADD, no DEL begun, and a record that says how.
func (r *Record) Restorable() bool {
	return !r.Incomplete && !r.Deleting && len(r.NetConf) > 0 && r.Layout != nil
}

// Store holds records, claims and locks in one directory that pods never see.
type Store struct {
	dir string
}

// New returns a store in dir (created on first write).
func New(dir string) *Store { return &Store{dir: dir} }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// path is the record's file: readable ("<containerID>@<ifName>.json",
// unambiguous because container ids cannot contain '@') for the ids runtimes
// use, hashed for anything long or odd, so that no container id a runtime
// passes can make a record impossible to write, read or delete.
func (s *Store) path(containerID, ifName string) string {
	return filepath.Join(s.dir, "attachments", fileKey(containerID+"@"+ifName)+".json")
}

// maxKeyLen bounds a readable file name built from an id; longer ids are
// hashed (NAME_MAX is 255, and ADD refuses container ids over 128).
const maxKeyLen = 160

// maxIfNameLen is the longest interface name (IFNAMSIZ less the NUL).
const maxIfNameLen = 15

// fileKey is a file name for an id: the id itself when it is short and made
// only of characters container ids may have, otherwise a digest.
func fileKey(id string) string {
	if len(id) > 0 && len(id) <= maxKeyLen && id[0] != '.' && strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '@')
	}) < 0 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "h-" + hex.EncodeToString(sum[:20])
}

// HasRecords reports whether any attachment of the sandbox has a record.
func (s *Store) HasRecords(containerID string) (bool, error) {
	names, err := s.IfNames(containerID)
	return len(names) > 0, err
}

// IfNames lists the interfaces of the sandbox that have records.
func (s *Store) IfNames(containerID string) ([]string, error) {
	if len(containerID)+1+maxIfNameLen <= maxKeyLen && fileKey(containerID) == containerID && !strings.Contains(containerID, "@") {
		// Readable names: one glob instead of reading every record (such ids
		// hold no glob metacharacters, and with any interface name the
		// record's name is not hashed).
		m, err := filepath.Glob(filepath.Join(s.dir, "attachments", containerID+"@*.json"))
		var out []string
		for _, f := range m {
			if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() {
				out = append(out, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), containerID+"@"), ".json"))
			}
		}
		return out, err
	}
	records, err := s.List()
	var out []string
	for _, r := range records {
		if r.ContainerID == containerID {
			out = append(out, r.IfName)
		}
	}
	return out, err
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
