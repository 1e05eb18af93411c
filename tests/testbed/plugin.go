package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/userspace-cni/userspace/pkg/policy"
)

// Binaries the test bed builds: the plugin and the reference host-local
// IPAM plugin (pinned in go.mod as a tool).
var Binaries = map[string]string{
	"userspace":  "github.com/userspace-cni/userspace/cmd/userspace",
	"host-local": "github.com/containernetworking/plugins/plugins/ipam/host-local",
}

// BuildBinaries builds Binaries into dir, stripped as a release build is,
// so timings reflect what a node runs.
func BuildBinaries(dir string) error {
	for out, pkg := range Binaries {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, out), pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", pkg, err, b)
		}
	}
	return nil
}

// PluginPolicy is a node policy for a plugin driving this switch, with its
// state and short socket links under dir.
func (o *OVS) PluginPolicy(dir string) *policy.Policy {
	p := policy.Default()
	p.OVSDBSocketDirs = []string{o.Dir}
	p.OVSDBSocket = o.DBEndpoint()
	p.OVSRunDir = o.RunDir
	p.StateDir = filepath.Join(dir, "state")
	p.ShortSocketDir = filepath.Join(dir, "s")
	p.LogDirs = []string{filepath.Join(dir, "log")}
	return p
}

// WritePolicy writes p where the plugin will read it (policy.PathEnv is
// set for this process and the plugins it runs).
func WritePolicy(p *policy.Policy, path string) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	return os.Setenv(policy.PathEnv, path)
}
