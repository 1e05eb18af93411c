// Command userspace is the userspace CNI plugin: it gives pods vhost-user
// (and memif) interfaces on a host's userspace switch. This file is only the
// skel wiring; the verbs live in pkg/plugin.
package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/plugin"
)

// defaultNetworkName stands in for a missing "name": the application notes'
// configuration has none, and skel refuses an unnamed network.
const defaultNetworkName = "userspace"

func main() {
	// One invocation lives a few milliseconds and allocates little: garbage
	// collection would only cost time. The limit keeps a runaway bounded.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(256 << 20)
	if os.Getenv("CNI_COMMAND") != "" && os.Getenv("CNI_COMMAND") != "VERSION" {
		if err := nameNetwork(); err != nil {
			_ = types.NewError(types.ErrIOFailure, err.Error(), "").Print()
			os.Exit(1)
		}
	}
	skel.PluginMainFuncs(plugin.New().Funcs(), version.PluginSupports(netconf.SupportedVersions...),
		"CNI userspace plugin (vhost-user and memif on OVS-DPDK and VPP)")
}

// nameNetwork gives an unnamed configuration the default name before skel
// sees it. Anything that is not a JSON object is passed on untouched for
// skel and the parser to report.
func nameNetwork() error {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) == nil {
		var name string
		_ = json.Unmarshal(probe["name"], &name)
		if name == "" {
			probe["name"], _ = json.Marshal(defaultNetworkName)
			if patched, err := json.Marshal(probe); err == nil {
				data = patched
			}
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(w, bytes.NewReader(data))
		_ = w.Close()
	}()
	os.Stdin = r
	return nil
}
