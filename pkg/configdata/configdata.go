// Package configdata is the contract between the plugin and the apps in the
// pod: what one attachment's configuration looks like to the pod (the
// original plugin's format), where it is published, and under which names.
package configdata

import (
	"encoding/json"
	"fmt"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// Pod annotation keys and defaults of the original plugin.
const (
	AnnotationConfigData = "userspace/configuration-data"
	AnnotationMappedDir  = "userspace/mapped-dir"
	// DefaultMappedDir is where pods mount the shared directory when the
	// pod does not say otherwise.
	DefaultMappedDir = "/var/lib/cni/usrspcni"
)

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
	return fmt.Sprintf("configData-%s-%s.json", sockdir.ID12(containerID), ifName)
}

// Write publishes the config data as a file in the socket directory,
// atomically, and returns the file's name.
func Write(l *sockdir.Layout, d *ConfigData) (string, error) {
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
