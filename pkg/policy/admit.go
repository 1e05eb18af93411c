package policy

import (
	"path/filepath"

	"github.com/userspace-cni/userspace/pkg/netconf"
)

// Admit checks every host path a network configuration names against the
// node's policy. netconf checks the configuration's shape; what it may
// reach on this node is decided here, with errors that name the field.
func (p *Policy) Admit(c *netconf.NetConf) error {
	for _, f := range []struct {
		field string
		kind  Kind
		value string
	}{
		{"logFile", LogFile, c.LogFile},
		{"kubeconfig", Kubeconfig, c.KubeConfig},
		{"sharedDir", SharedDir, c.SharedDir},
		{"host.vppApiSocket", VPPAPISocket, c.Host.VPPAPISocket},
		{"runtimeConfig.CNIDeviceInfoFile", DeviceInfoFile, c.RuntimeConfig.CNIDeviceInfoFile},
	} {
		if f.value == "" {
			continue
		}
		if _, _, err := p.Match(f.kind, f.value); err != nil {
			return netconf.FieldError(f.field, f.value, err.Error())
		}
	}
	return nil
}

// VPPAPISocketOf returns the VPP API socket the configuration's host side
// uses (the node's default when it names none), checked against the policy.
func (p *Policy) VPPAPISocketOf(c *netconf.NetConf) (string, error) {
	path, field := c.Host.VPPAPISocket, "host.vppApiSocket"
	if path == "" {
		path, field = p.VPPAPISocket, "node policy vppApiSocket"
	}
	if _, _, err := p.Match(VPPAPISocket, path); err != nil {
		return "", netconf.FieldError(field, path, err.Error())
	}
	return filepath.Clean(path), nil
}

// OVSDBEndpointOf returns the OVSDB endpoint the configuration's host side
// uses (the node's default when it names none), checked against the policy.
func (p *Policy) OVSDBEndpointOf(c *netconf.NetConf) (string, error) {
	endpoint, field := c.Host.OVSDBSocket, "host.ovsdbSocket"
	if endpoint == "" {
		endpoint, field = p.OVSDBSocket, "node policy ovsdbSocket"
	}
	path, err := netconf.OVSDBPath(endpoint)
	if err != nil {
		return "", netconf.FieldError(field, endpoint, err.Error())
	}
	if _, _, err := p.Match(OVSDBSocket, path); err != nil {
		return "", netconf.FieldError(field, endpoint, err.Error())
	}
	return "unix:" + path, nil
}
