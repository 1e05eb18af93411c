// Package policy holds the node administrator's settings for the plugin: the
// host locations a network configuration may name (log files, kubeconfigs,
// shared socket directories, switch API sockets) and the plugin's own
// directories.
//
// A NetworkAttachmentDefinition can be written by any namespace user, so none
// of these may come from the network configuration itself: they are read from
// a file on the node (DefaultPath, or the file named by the PathEnv
// environment variable, which only the container runtime sets).
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/userspace-cni/userspace/pkg/configdata"
)

// DefaultPath is where the administrator's policy file lives.
const DefaultPath = "/etc/cni/userspace/policy.json"

// PathEnv names the environment variable that overrides DefaultPath. The
// environment of a CNI plugin is set by the container runtime, not by the
// network configuration.
const PathEnv = "USERSPACE_CNI_POLICY"

// Kubernetes' defaults: the pod volume that holds a pod's sockets, and the
// kubelet's --root-dir, under which emptyDir volumes are.
const (
	DefaultSharedDirVolume = "shared-dir"
	DefaultKubeletRoot     = "/var/lib/kubelet"
)

// Kind names a class of host path that a network configuration may set.
type Kind string

// The classes of configurable host paths.
const (
	LogFile     Kind = "logFile"
	Kubeconfig  Kind = "kubeconfig"
	SharedDir   Kind = "sharedDir"
	OVSDBSocket Kind = "ovsdbSocket"
	// VPPAPISocket is VPP's binary API socket.
	VPPAPISocket Kind = "vppApiSocket"
	// DeviceInfoFile is Multus's CNIDeviceInfoFile.
	DeviceInfoFile Kind = "deviceInfoFile"
)

// strict reports whether a path of this kind must already be clean and lie
// strictly below an allowed directory: the device-info file's name is
// Multus's, and a path that only resolves to an allowed one is not the one
// it meant.
func (k Kind) strict() bool { return k == DeviceInfoFile }

// Policy is the administrator's policy for this node.
type Policy struct {
	// LogDirs are the directories under which logFile may be created.
	LogDirs []string `json:"logDirs"`
	// KubeconfigDirs are the directories a kubeconfig may be read from.
	KubeconfigDirs []string `json:"kubeconfigDirs"`
	// SharedDirs are the directories under which socket directories may be
	// created (sharedDir and the engines' defaults must be under one).
	SharedDirs []string `json:"sharedDirs"`
	// OVSDBSocketDirs are the directories an OVSDB unix socket may be in.
	OVSDBSocketDirs []string `json:"ovsdbSocketDirs"`

	// VPPAPISocketDirs are the directories VPP's API socket may be in.
	VPPAPISocketDirs []string `json:"vppApiSocketDirs"`
	// VPPAPISocket is VPP's API socket when the network configuration
	// names none.
	VPPAPISocket string `json:"vppApiSocket"`

	// OVSDBSocket is the switch's database socket when the network
	// configuration names none.
	OVSDBSocket string `json:"ovsdbSocket"`
	// OVSRunDir is where ovs-vswitchd creates the sockets of dpdkvhostuser
	// ports (its run directory plus other_config:vhost-sock-dir). Empty means
	// the directory of the OVSDB socket.
	OVSRunDir string `json:"ovsRunDir"`
	// StateDir holds the plugin's attachment records, claims and sandbox
	// locks. It must not be shared with pods.
	StateDir string `json:"stateDir"`
	// OVSConfirmTimeoutMs, when above 0, makes ADD wait up to that long for
	// ovs-vswitchd to apply a new client-mode port and fail with the
	// switch's error if it refuses it. 0 (the default) returns at once;
	// CHECK still reports a port the switch refused. Server-mode ports always
	// wait: their socket exists only once the switch applied them.
	OVSConfirmTimeoutMs *int `json:"ovsConfirmTimeoutMs,omitempty"`
	// KubeletRoot is the kubelet's --root-dir: emptyDir volumes are under
	// its pods directory.
	KubeletRoot string `json:"kubeletRoot"`
	// SharedDirVolume names the pod volume that holds the pod's sockets.
	SharedDirVolume string `json:"sharedDirVolume"`
	// DeviceInfoDirs are where Multus's CNIDeviceInfoFile may be.
	DeviceInfoDirs []string `json:"deviceInfoDirs"`
	// ShortSocketDir holds short symbolic links to socket directories whose
	// paths are too long for a unix socket address (sun_path).
	ShortSocketDir string `json:"shortSocketDir"`
	// Isolation is IsolationCompatible (the default; also when empty) or
	// IsolationStrict, with which ADD refuses any attachment whose socket
	// directory is not the pod's own volume.
	Isolation string `json:"isolation"`
}

// Isolation settings.
const (
	// IsolationCompatible accepts every layout, including the application
	// notes' shared ones, where other pods can see a pod's socket directory
	// (the plugin logs a warning for each such attachment).
	IsolationCompatible = "compatible"
	// IsolationStrict accepts only a socket directory that is the pod's own
	// emptyDir volume (SharedDirVolume, found through a kubeconfig).
	IsolationStrict = "strict"
)

// StrictIsolation reports whether only pods' own volumes may hold sockets.
func (p *Policy) StrictIsolation() bool { return p.Isolation == IsolationStrict }

// DefaultOVSConfirmTimeout is how long ADD waits for the switch to apply a
// client-mode port by default: not at all. The pre-flight (DPDK initialised,
// ovs-vswitchd running, socket unique, directory present, path short enough)
// rules out the failures the switch would report, and waiting would make ADD
// as slow as the switch's reconfiguration, which grows with its port count.
// CHECK confirms the port (ofport > 0, no Interface.error).
const DefaultOVSConfirmTimeout = 0

// OVSConfirmTimeout is the bound on ADD's wait for the switch.
func (p *Policy) OVSConfirmTimeout() time.Duration {
	if p.OVSConfirmTimeoutMs == nil {
		return DefaultOVSConfirmTimeout
	}
	return time.Duration(*p.OVSConfirmTimeoutMs) * time.Millisecond
}

// Default returns the policy used when the node has no policy file.
func Default() *Policy {
	return &Policy{
		LogDirs:        []string{"/var/log"},
		KubeconfigDirs: []string{"/etc/cni/net.d"},
		SharedDirs: []string{
			configdata.DefaultOVSSocketBase,
			configdata.DefaultMappedDir,
			"/var/lib/userspace-cni",
			"/var/run/vpp",
			"/run/vpp",
			"/var/run/openvswitch",
			"/run/openvswitch",
			"/usr/local/var/run/openvswitch",
			// Pods' emptyDir volumes named by SharedDirVolume.
			"/var/lib/kubelet/pods",
		},
		OVSDBSocketDirs:  []string{"/var/run/openvswitch", "/run/openvswitch", "/usr/local/var/run/openvswitch"},
		OVSDBSocket:      "unix:/var/run/openvswitch/db.sock",
		VPPAPISocketDirs: []string{"/run/vpp", "/var/run/vpp"},
		VPPAPISocket:     configdata.DefaultVPPAPISocket,
		StateDir:         "/var/lib/cni/userspace",
		KubeletRoot:      DefaultKubeletRoot,
		SharedDirVolume:  DefaultSharedDirVolume,
		DeviceInfoDirs:   []string{"/var/run/k8s.cni.cncf.io/devinfo", "/run/k8s.cni.cncf.io/devinfo"},
		ShortSocketDir:   "/run/userspace-cni",
		Isolation:        IsolationCompatible,
	}
}

// Load reads the policy from the file named by PathEnv, else DefaultPath.
// A missing file means the defaults; fields absent from the file keep their
// defaults. A malformed file is an error: silently falling back to defaults
// would widen what the administrator meant to restrict.
func Load(getenv func(string) string) (*Policy, error) {
	path := DefaultPath
	if p := getenv(PathEnv); p != "" {
		path = p
	}
	p := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading node policy %s: %w", path, err)
	}
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("parsing node policy %s: %w", path, err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("node policy %s: %w", path, err)
	}
	return p, nil
}

func (p *Policy) validate() error {
	// Slices, not maps: with several bad entries, the error names the
	// same one on every run.
	for _, l := range []struct {
		name string
		dirs []string
	}{
		{"logDirs", p.LogDirs}, {"kubeconfigDirs", p.KubeconfigDirs}, {"sharedDirs", p.SharedDirs},
		{"ovsdbSocketDirs", p.OVSDBSocketDirs}, {"vppApiSocketDirs", p.VPPAPISocketDirs}, {"deviceInfoDirs", p.DeviceInfoDirs},
	} {
		for _, d := range l.dirs {
			if err := CheckAbs(d); err != nil {
				return fmt.Errorf("%s entry %q: %w", l.name, d, err)
			}
		}
	}
	for _, f := range []struct{ name, dir string }{
		{"stateDir", p.StateDir}, {"shortSocketDir", p.ShortSocketDir}, {"kubeletRoot", p.KubeletRoot},
	} {
		if err := CheckAbs(f.dir); err != nil {
			return fmt.Errorf("%s %q: %w", f.name, f.dir, err)
		}
	}
	if p.OVSConfirmTimeoutMs != nil && (*p.OVSConfirmTimeoutMs < 0 || *p.OVSConfirmTimeoutMs > 60000) {
		return fmt.Errorf("ovsConfirmTimeoutMs %d: must be between 0 and 60000", *p.OVSConfirmTimeoutMs)
	}
	switch p.Isolation {
	case "", IsolationCompatible, IsolationStrict:
	default:
		return fmt.Errorf("isolation %q: must be %q or %q", p.Isolation, IsolationCompatible, IsolationStrict)
	}
	if p.OVSRunDir != "" {
		if err := CheckAbs(p.OVSRunDir); err != nil {
			return fmt.Errorf("ovsRunDir %q: %w", p.OVSRunDir, err)
		}
	}
	return nil
}

// dirs returns the allowed directories for a kind of path.
func (p *Policy) dirs(k Kind) []string {
	switch k {
	case LogFile:
		return p.LogDirs
	case Kubeconfig:
		return p.KubeconfigDirs
	case SharedDir:
		return p.SharedDirs
	case OVSDBSocket:
		return p.OVSDBSocketDirs
	case VPPAPISocket:
		return p.VPPAPISocketDirs
	case DeviceInfoFile:
		return p.DeviceInfoDirs
	}
	return nil
}

// Match is the plugin's one check of a host path: absolute, no ".." element,
// under one of the directories allowed for its kind (strictly below it for a
// device-info file). It returns that directory and the path relative to it, so callers
// can confine file operations beneath it (see os.OpenRoot) even if a
// component is later replaced by a symlink.
func (p *Policy) Match(k Kind, path string) (base, rel string, err error) {
	if err := CheckAbs(path); err != nil {
		return "", "", err
	}
	strict := k.strict()
	clean := filepath.Clean(path)
	if strict && clean != path {
		return "", "", fmt.Errorf("not a clean path (%q)", clean)
	}
	for _, d := range p.dirs(k) {
		r, err := filepath.Rel(d, clean)
		if err != nil || r == ".." || strings.HasPrefix(r, "../") || strict && r == "." {
			continue
		}
		return d, r, nil
	}
	return "", "", fmt.Errorf("not under a directory the node policy allows for %s (%s)", k, strings.Join(p.dirs(k), ", "))
}

// CheckAbs refuses relative paths, NUL bytes and any ".." element, whatever
// it would resolve to. Match applies it to every host path; it is exported
// for paths that are not the node's to allow, such as a mount path in a pod
// spec.
func CheckAbs(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	if !filepath.IsAbs(path) {
		return errors.New("not an absolute path")
	}
	if strings.ContainsRune(path, 0) {
		return errors.New("contains a NUL byte")
	}
	for _, el := range strings.Split(path, "/") {
		if el == ".." {
			return errors.New(`contains a ".." element`)
		}
	}
	return nil
}
