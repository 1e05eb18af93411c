// Package configdata is the contract between the plugin and the apps in the
// pod: what one attachment's configuration looks like to the pod (the
// original plugin's format), where it is published, and under which names.
package configdata

import (
	"encoding/json"
	"fmt"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/netconf"
)

// Pod annotation keys and defaults of the original plugin.
const (
	AnnotationConfigData = "userspace/configuration-data"
	AnnotationMappedDir  = "userspace/mapped-dir"
	// DefaultMappedDir is where pods mount the shared directory when the
	// pod does not say otherwise.
	DefaultMappedDir = "/var/lib/cni/usrspcni"
)

// Where the plugin puts sockets when neither the pod's volume nor the
// configuration says otherwise, and where the switches' APIs are: the
// original plugin's and the application notes' defaults, which the pods'
// manifests name.
const (
	// DefaultOVSSocketBase holds one directory per pod (named by its
	// container id) for OVS-DPDK's vhost-user sockets.
	DefaultOVSSocketBase = "/var/lib/cni/vhostuser"
	// DefaultVPPBase holds the notes' VPP layout: a directory per pod for
	// its data files, and DefaultNotesSocketDir for the memif sockets.
	DefaultVPPBase = "/var/run/vpp/cni"
	// DefaultVPPAPISocket is VPP's API socket, on the node and in a pod.
	DefaultVPPAPISocket = "/run/vpp/api.sock"
)

// The application notes' VPP layout: every pod's memif sockets are in
// DefaultNotesSocketDir; the plugin writes each pod's remote-<ifName>.json
// and addData-<ifName>.json into DefaultVPPBase/<containerID>, and the pod
// copies them into its data directory (DefaultNotesDataDir in the notes).
const (
	DefaultNotesSocketDir = DefaultVPPBase + "/shared"
	DefaultNotesDataDir   = DefaultVPPBase + "/data"
)

// NotesRemoteFile is the notes' file with the network configuration whose
// container side the pod applies.
func NotesRemoteFile(ifName string) string { return notesRemotePrefix + ifName + notesSuffix }

// NotesAddDataFile is the notes' file with the attachment's addresses.
func NotesAddDataFile(ifName string) string { return notesAddDataPrefix + ifName + notesSuffix }

const (
	notesRemotePrefix  = "remote-"
	notesAddDataPrefix = "addData-"
	notesSuffix        = ".json"
)

// NotesAddData is the content of the notes' addData-<ifName>.json.
type NotesAddData struct {
	ContainerID string           `json:"containerId"`
	IfName      string           `json:"ifName"`
	IPResult    *types100.Result `json:"ipResult"`
}

// ShortID is the container id as the original plugin shortened it in
// names: its first 12 characters. Unlike the original, a shorter id is
// used whole instead of panicking.
func ShortID(containerID string) string {
	if len(containerID) > 12 {
		return containerID[:12]
	}
	return containerID
}

// DefaultSocketName is the socket file name of an attachment whose
// configuration names none: the original plugin's names, which the notes'
// commands build (/vhu/${ID}/${ID:0:12}-net1).
func DefaultSocketName(ifType, containerID, ifName string) string {
	if ifType == netconf.IfTypeMemif {
		return fmt.Sprintf("memif-%s-%s.sock", ShortID(containerID), ifName)
	}
	return ShortID(containerID) + "-" + ifName
}

// ConfigData is one attachment as the pod sees it.
type ConfigData struct {
	ContainerID string `json:"containerId"`
	IfName      string `json:"ifName"`
	Name        string `json:"name"`
	// Config is the container side: iftype, role or mode and socketfile
	// filled in for the pod.
	Config netconf.UserSpaceConf `json:"config"`
	// IPResult holds the IPAM addresses (and the interface) as a CNI result.
	IPResult *types100.Result `json:"ipResult"`
}

// FileName is the config-data file's name in the socket directory.
func FileName(containerID, ifName string) string {
	return fmt.Sprintf("configData-%s-%s.json", ShortID(containerID), ifName)
}

// AtomicWriter writes a whole file or nothing (sockdir.Layout, confined to
// the socket directory).
type AtomicWriter interface {
	WriteFileAtomic(name string, data []byte) error
}

// Write publishes the config data as a file in the socket directory,
// atomically, and returns the file's name.
func Write(l AtomicWriter, d *ConfigData) (string, error) {
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding config data: %w", err)
	}
	name := FileName(d.ContainerID, d.IfName)
	if err := l.WriteFileAtomic(name, append(data, '\n')); err != nil {
		return "", err
	}
	return name, nil
}
