// Command plugin is the plugin's skel wiring as in cmd/userspace: the real
// binary's start-up, with whatever pkg/plugin links.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/plugin"
)

func main() {
	skel.PluginMainFuncs(plugin.New().Funcs(), version.PluginSupports(netconf.SupportedVersions...), "startup measurement")
}
