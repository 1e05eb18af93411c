package testbed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/pkg/policy"
)

// Binaries the test bed builds: the plugin, the pod-side helpers and the
// reference host-local IPAM plugin (pinned in go.mod as a tool).
var Binaries = map[string]string{
	"userspace": "github.com/userspace-cni/userspace/cmd/userspace",
	// The plugin runs it from its own directory for the Kubernetes API.
	"userspace-kube": "github.com/userspace-cni/userspace/cmd/userspace-kube",
	"dpdk-args":      "github.com/userspace-cni/userspace/cmd/dpdk-args",
	"vpp-app":        "github.com/userspace-cni/userspace/cmd/vpp-app",
	"host-local":     "github.com/containernetworking/plugins/plugins/ipam/host-local",
	// Built on demand only (BuildBinary): the node agent's fault tests.
	"userspace-agent": "github.com/userspace-cni/userspace/cmd/userspace-agent",
}

// BinaryNames are the names of Binaries, in the order the demo builds them.
var BinaryNames = []string{"userspace", "userspace-kube", "dpdk-args", "vpp-app", "host-local"}

// BuildBinaries builds Binaries into dir, stripped as a release build is,
// so timings reflect what a node runs.
func BuildBinaries(dir string) error {
	for _, name := range BinaryNames {
		if err := BuildBinary(dir, name); err != nil {
			return err
		}
	}
	return nil
}

// BuildBinaryArgs is the go command that builds Binaries[name] into dir,
// static as `make build` and the installer image build them (without cgo
// the process start skips the dynamic loader).
func BuildBinaryArgs(dir, name string) []string {
	return []string{"env", "CGO_ENABLED=0", "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, name), Binaries[name]}
}

// BuildBinary builds Binaries[name] into dir.
func BuildBinary(dir, name string) error {
	if _, ok := Binaries[name]; !ok {
		return fmt.Errorf("no binary %q in testbed.Binaries", name)
	}
	args := BuildBinaryArgs(dir, name)
	cmd := exec.Command(args[0], args[1:]...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", Binaries[name], err, b)
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

// NodePolicy is the node policy of a suite's plugin: this switch, the VPP
// at vppSock, state and short links under root, and the extra shared
// directories.
func (o *OVS) NodePolicy(root, vppSock string, shared ...string) *policy.Policy {
	p := WithVPP(o.PluginPolicy(root), vppSock)
	p.SharedDirs = append(p.SharedDirs, shared...)
	return p
}

// WritePolicy writes p, changed by mutate if set, where the plugin will read
// it (policy.PathEnv is set for this process and the plugins it runs).
func WritePolicy(p *policy.Policy, mutate func(*policy.Policy), path string) error {
	if mutate != nil {
		mutate(p)
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	return os.Setenv(policy.PathEnv, path)
}

// BinaryEnv, when set, names a plugin build that replaces the one
// BuildBinaries makes (an older commit, say), for A/B benchmark runs on the
// same test bed.
const BinaryEnv = "USERSPACE_BENCH_BINARY"

// Prepare is how every suite that runs the plugin binary starts: it checks
// for root, installs missing Debian packages, makes a private directory
// under /tmp (short: unix socket paths count) named by prefix, and builds
// the binaries into its "bin". cleanup removes the directory.
func Prepare(prefix string) (root string, cleanup func(), err error) {
	if os.Geteuid() != 0 {
		return "", nil, fmt.Errorf("the test bed needs root (network namespaces, OVS-DPDK)")
	}
	if err := EnsurePackages(RequiredPackages()...); err != nil {
		return "", nil, err
	}
	root, err = os.MkdirTemp("/tmp", prefix)
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(root) }
	if err := BuildBinaries(filepath.Join(root, "bin")); err != nil {
		cleanup()
		return "", nil, err
	}
	if other := os.Getenv(BinaryEnv); other != "" {
		data, err := os.ReadFile(other)
		if err == nil {
			err = os.WriteFile(filepath.Join(root, "bin", "userspace"), data, 0o755)
		}
		if err != nil {
			cleanup()
			return "", nil, fmt.Errorf("%s: %w", BinaryEnv, err)
		}
	}
	return root, cleanup, nil
}

// WithVPP points a node policy at a VPP API socket (a test bed VPP's), the
// only socket the configuration may then name.
func WithVPP(p *policy.Policy, socket string) *policy.Policy {
	p.VPPAPISocketDirs = []string{filepath.Dir(socket)}
	p.VPPAPISocket = socket
	return p
}

// RunPlugin runs the plugin binary once as a runtime does, with the CNI_*
// variables in env (added to this process's environment), and returns its
// wall time and what it wrote to stderr (its logs). A failure carries
// stdout, where the plugin prints its CNI error.
func RunPlugin(bin string, env []string, stdin []byte) (time.Duration, []byte, error) {
	start := time.Now()
	_, errOut, err := RunPluginOutput(bin, env, stdin)
	return time.Since(start), errOut, err
}

// RunPluginOutput is RunPlugin returning stdout (the CNI result) and
// stderr instead of the wall time.
func RunPluginOutput(bin string, env []string, stdin []byte) (stdout, stderr []byte, err error) {
	stdout, stderr, _, err = runPlugin(bin, env, stdin)
	return stdout, stderr, err
}

// Usage is what one plugin process cost: its wall time, the CPU time it
// spent (user and system) and its minor page faults (the memory it
// touched). The last two are blurred much less than wall time by the
// machine's load.
type Usage struct {
	Wall, CPU time.Duration
	MinFlt    int64
}

// RunPluginUsage is RunPlugin returning the process's Usage instead of its
// stderr.
func RunPluginUsage(bin string, env []string, stdin []byte) (Usage, error) {
	start := time.Now()
	_, _, ps, err := runPlugin(bin, env, stdin)
	u := Usage{Wall: time.Since(start)}
	if err != nil {
		return u, err
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return u, fmt.Errorf("no resource usage for %s", bin)
	}
	u.CPU, u.MinFlt = ps.UserTime()+ps.SystemTime(), ru.Minflt
	return u, nil
}

func runPlugin(bin string, env []string, stdin []byte) (stdout, stderr []byte, ps *os.ProcessState, err error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.Bytes(), errOut.Bytes(), cmd.ProcessState, fmt.Errorf("%v: %s %s", err, out.String(), errOut.String())
	}
	return out.Bytes(), errOut.Bytes(), cmd.ProcessState, nil
}

// DPDKArgs runs the pod-side helper dpdk-args (built into binDir) with args
// and returns the --vdev arguments it printed, for an app's EAL.
func DPDKArgs(binDir string, args ...string) ([]string, error) {
	cmd := exec.Command(filepath.Join(binDir, "dpdk-args"), append([]string{"-q", "-wait", "10s"}, args...)...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("dpdk-args %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return strings.Fields(string(out)), nil
}

// PolicyGetenv is os.Getenv with the plugin's policy variable
// (policy.PathEnv) set to path: the environment of a plugin or agent run in
// the test process on that policy.
func PolicyGetenv(path string) func(string) string {
	return func(k string) string {
		if k == policy.PathEnv {
			return path
		}
		return os.Getenv(k)
	}
}

// StartSwitches starts the two switches a suite's plugin attaches to under
// root: an OVS-DPDK (o, its BaseDir set to root) and a VPP. stop stops both.
func StartSwitches(root string, o OVSOptions) (ovs *OVS, vpp *VPP, stop func(), err error) {
	o.BaseDir = root
	if ovs, err = StartOVS(o); err != nil {
		return nil, nil, nil, fmt.Errorf("starting OVS-DPDK: %w", err)
	}
	if vpp, err = StartVPP(VPPOptions{BaseDir: root}); err != nil {
		_ = ovs.Stop()
		return nil, nil, nil, fmt.Errorf("starting VPP: %w", err)
	}
	return ovs, vpp, func() { _ = vpp.Stop(); _ = ovs.Stop() }, nil
}

// Main runs a suite whose test bed setup brings up (and, when m.Run
// returns, tears down) and exits with m.Run's code; a setup that fails
// exits 1, naming the suite.
func Main(m *testing.M, suite string, setup func(*testing.M) (int, error)) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, suite+" test bed:", err)
		os.Exit(1)
	}
	os.Exit(code)
}
