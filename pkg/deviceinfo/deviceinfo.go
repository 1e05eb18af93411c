// Package deviceinfo writes the Network Plumbing Working Group's device
// information (spec version 1.1.0) for an attachment to the file Multus names
// in runtimeConfig.CNIDeviceInfoFile; Multus copies it into the pod's
// k8s.v1.cni.cncf.io/network-status annotation. The types are defined here:
// Multus's own libraries cannot be fetched.
//
// The path comes from the network configuration's runtimeConfig, which the
// author of a NetworkAttachmentDefinition can also write, so it is confined
// to the node policy's device-info directories and written through an
// os.Root, which refuses symbolic links out of them.
package deviceinfo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/userspace-cni/userspace/pkg/policy"
)

// Version is the device-info spec version written.
const Version = "1.1.0"

// Device types of the spec that the plugin produces.
const (
	TypeVhostUser = "vhost-user"
	TypeMemif     = "memif"
)

// Values of the spec's vhost-user and memif fields.
const (
	VhostModeClient = "client"
	VhostModeServer = "server"

	MemifRoleMaster   = "master"
	MemifRoleSlave    = "slave"
	MemifModeEthernet = "ethernet"
	MemifModeIP       = "ip"
	MemifModePunt     = "punt"
)

// DeviceInfo is one attachment's device information.
type DeviceInfo struct {
	Type      string     `json:"type"`
	Version   string     `json:"version"`
	VhostUser *VhostUser `json:"vhost-user,omitempty"`
	Memif     *Memif     `json:"memif,omitempty"`
}

// VhostUser describes a vhost-user socket; Mode is the role the pod's
// application takes on it.
type VhostUser struct {
	Mode string `json:"mode"`
	Path string `json:"path"`
}

// Memif describes a memif socket; Role is the pod application's role.
type Memif struct {
	Role string `json:"role"`
	Path string `json:"path"`
	Mode string `json:"mode"`
}

// NewVhostUser describes a vhost-user socket at path for an application in
// mode ("client" or "server").
func NewVhostUser(mode, path string) *DeviceInfo {
	return &DeviceInfo{Type: TypeVhostUser, Version: Version, VhostUser: &VhostUser{Mode: mode, Path: path}}
}

// NewMemif describes a memif socket at path for an application with role
// ("master" or "slave") in mode. The network configuration's mode
// "inject-punt" is the spec's "punt".
func NewMemif(role, path, mode string) *DeviceInfo {
	if mode == "inject-punt" {
		mode = MemifModePunt
	}
	return &DeviceInfo{Type: TypeMemif, Version: Version, Memif: &Memif{Role: role, Path: path, Mode: mode}}
}

// Validate checks that d is a complete vhost-user or memif description.
func (d *DeviceInfo) Validate() error {
	if d == nil {
		return errors.New("device info is nil")
	}
	if d.Version != Version {
		return fmt.Errorf("device info version %q: want %q", d.Version, Version)
	}
	switch d.Type {
	case TypeVhostUser:
		v := d.VhostUser
		if v == nil || d.Memif != nil {
			return errors.New(`device info of type "vhost-user" needs the vhost-user field alone`)
		}
		if v.Mode != VhostModeClient && v.Mode != VhostModeServer {
			return fmt.Errorf("device info vhost-user mode %q: want client or server", v.Mode)
		}
		return checkSocketPath(v.Path)
	case TypeMemif:
		m := d.Memif
		if m == nil || d.VhostUser != nil {
			return errors.New(`device info of type "memif" needs the memif field alone`)
		}
		if m.Role != MemifRoleMaster && m.Role != MemifRoleSlave {
			return fmt.Errorf("device info memif role %q: want master or slave", m.Role)
		}
		if m.Mode != MemifModeEthernet && m.Mode != MemifModeIP && m.Mode != MemifModePunt {
			return fmt.Errorf("device info memif mode %q: want ethernet, ip or punt", m.Mode)
		}
		return checkSocketPath(m.Path)
	}
	return fmt.Errorf("device info type %q: want vhost-user or memif", d.Type)
}

func checkSocketPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("device info socket path %q: not an absolute path", p)
	}
	return nil
}

// Write stores d at path (checked against the policy) atomically:
// a temporary file in the same directory, synced, then renamed over path.
// Missing directories below the base are created.
func Write(pol *policy.Policy, path string, d *DeviceInfo) error {
	base, rel, err := match(pol, path)
	if err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("device info file %s: %w", path, err)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("device info file %s: encoding: %w", path, err)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("device info file %s: %w", path, err)
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return fmt.Errorf("device info file %s: %w", path, err)
	}
	defer root.Close()
	if dir := filepath.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("device info file %s: creating its directory: %w", path, err)
		}
	}
	tmp := tempName(rel)
	if err := writeSynced(root, tmp, data); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("device info file %s: %w", path, err)
	}
	if err := root.Rename(tmp, rel); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("device info file %s: %w", path, err)
	}
	return nil
}

// Remove deletes the file at path (checked against the policy).
// A file or base directory that does not exist is success: DEL may repeat.
func Remove(pol *policy.Policy, path string) error {
	base, rel, err := match(pol, path)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing device info file %s: %w", path, err)
	}
	defer root.Close()
	if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing device info file %s: %w", path, err)
	}
	return nil
}

// Read returns the device info stored at path (checked against the policy).
func Read(pol *policy.Policy, path string) (*DeviceInfo, error) {
	base, rel, err := match(pol, path)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return nil, fmt.Errorf("reading device info file %s: %w", path, err)
	}
	defer root.Close()
	data, err := root.ReadFile(rel)
	if err != nil {
		return nil, fmt.Errorf("reading device info file %s: %w", path, err)
	}
	d := &DeviceInfo{}
	if err := json.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("device info file %s: %w", path, err)
	}
	return d, nil
}

// match confines path to the policy's device-info directories.
func match(pol *policy.Policy, path string) (base, rel string, err error) {
	base, rel, err = pol.Match(policy.DeviceInfoFile, path)
	if err != nil {
		return "", "", fmt.Errorf("device info file %q: %w", path, err)
	}
	return base, rel, nil
}

// tempName is a temporary name beside rel. Its randomness only avoids
// collisions (the file is created O_EXCL): math/rand/v2's runtime-seeded
// source, not crypto/rand, whose DRBG and AES packages every plugin start
// would initialise for nothing else.
func tempName(rel string) string {
	return filepath.Join(filepath.Dir(rel), fmt.Sprintf(".%s.tmp-%012x", filepath.Base(rel), rand.Uint64()>>16))
}

func writeSynced(root *os.Root, name string, data []byte) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
