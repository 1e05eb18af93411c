// Command userspace is the userspace CNI plugin: it gives pods vhost-user
// (and memif) interfaces on a host's userspace switch. This file is only the
// skel wiring; the verbs live in pkg/plugin.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/plugin"
	_ "github.com/userspace-cni/userspace/pkg/shortlived"
)

func main() {
	// One invocation lives a few milliseconds and allocates little: garbage
	// collection would only cost time. The limit keeps a runaway bounded.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(256 << 20)
	if cmd := os.Getenv("CNI_COMMAND"); cmd != "" && cmd != "VERSION" {
		stdin, err := preprocessStdin(os.Stdin)
		if err != nil {
			_ = asCNIError(err).Print()
			os.Exit(1)
		}
		os.Stdin = stdin
	}
	skel.PluginMainFuncs(plugin.New().Funcs(), version.PluginSupports(netconf.SupportedVersions...),
		"CNI userspace plugin (vhost-user and memif on OVS-DPDK and VPP)")
}

// preprocessStdin reads the network configuration and returns a stdin for
// skel holding it as netconf.Preprocess leaves it: a JSON object with a name.
func preprocessStdin(in io.Reader) (*os.File, error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("reading the network configuration from stdin: %w", err)
	}
	data, err = netconf.Preprocess(data)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("passing the network configuration on: %w", err)
	}
	// A pipe holds 64 KiB: write from a goroutine so a larger
	// configuration does not block before skel reads it.
	go func() {
		_, _ = w.Write(data)
		_ = w.Close()
	}()
	return r, nil
}

// asCNIError keeps a CNI error as it is and makes anything else one.
func asCNIError(err error) *types.Error {
	var e *types.Error
	if errors.As(err, &e) {
		return e
	}
	return types.NewError(types.ErrIOFailure, err.Error(), "")
}
