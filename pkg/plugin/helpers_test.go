package plugin_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/state"
)

// cniPath holds the IPAM plugins the verbs delegate to: the real host-local
// and two scripts. The delegation takes the CNI_* variables from the verb's
// arguments, so verbs may run concurrently in one test process.
var cniPath string

// kubeHelper is cmd/userspace-kube, built for the tests: ADD and DEL with a
// kubeconfig run it, as the installed plugin does.
var kubeHelper string

// ipamLog is where the recording-ipam script logs its invocations.
var ipamLog string

// failingIPAM fails every command with a CNI error, as a real plugin does.
const failingIPAM = `#!/bin/sh
cat >/dev/null
echo '{"cniVersion":"1.0.0","code":11,"msg":"failing-ipam: address pool exhausted","details":"injected by the test"}'
exit 1
`

// recordingIPAM logs "COMMAND CONTAINERID IFNAME" and the stdin (one line)
// of each invocation and hands out one fixed address.
const recordingIPAM = `#!/bin/sh
in=$(cat)
printf '%s %s %s\n' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" >>"LOG"
printf '%s\n' "$in" | tr -d '\n' >>"LOG.stdin"
printf '\n' >>"LOG.stdin"
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","ips":[{"address":"10.99.0.7/24","gateway":"10.99.0.1"}]}'
fi
exit 0
`

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "userspace-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cniPath = filepath.Join(dir, "bin")
	ipamLog = filepath.Join(dir, "ipam.log")
	if err := os.MkdirAll(cniPath, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			fmt.Fprintln(os.Stderr, "no go command to build host-local:", err)
			return 1
		}
	}
	kubeHelper = filepath.Join(dir, "helper", "userspace-kube")
	for out, pkg := range map[string]string{
		filepath.Join(cniPath, "host-local"): "github.com/containernetworking/plugins/plugins/ipam/host-local",
		kubeHelper:                           "github.com/userspace-cni/userspace/cmd/userspace-kube",
	} {
		build := exec.Command(gobin, "build", "-o", out, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg+":", err)
			return 1
		}
	}
	for name, script := range map[string]string{
		"failing-ipam":   failingIPAM,
		"recording-ipam": strings.ReplaceAll(recordingIPAM, "LOG", ipamLog),
	} {
		if err := os.WriteFile(filepath.Join(cniPath, name), []byte(script), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	os.Setenv("CNI_PATH", cniPath)
	return m.Run()
}

// syncBuffer is the plugin's Stderr; goroutines may log at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testEnv is one node: a policy whose directories are all temporary, a
// fake switch and a Plugin wired to both.
type testEnv struct {
	t          *testing.T
	root       string
	shared     string
	stateDir   string
	shortDir   string
	ipamDir    string
	policyPath string
	pol        *policy.Policy
	sw         *fakeSwitch
	stderr     *syncBuffer
	p          *plugin.Plugin
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	root := t.TempDir()
	e := &testEnv{
		t:        t,
		root:     root,
		shared:   filepath.Join(root, "shared"),
		stateDir: filepath.Join(root, "state"),
		shortDir: filepath.Join(root, "short"),
		ipamDir:  filepath.Join(root, "ipam"),
		sw:       newFakeSwitch(),
		stderr:   &syncBuffer{},
	}
	pol := map[string]any{
		"logDirs":         []string{filepath.Join(root, "log")},
		"kubeconfigDirs":  []string{filepath.Join(root, "kube")},
		"sharedDirs":      []string{e.shared},
		"ovsdbSocketDirs": []string{filepath.Join(root, "ovs")},
		"ovsdbSocket":     "unix:" + filepath.Join(root, "ovs", "db.sock"),
		"stateDir":        e.stateDir,
		"shortSocketDir":  e.shortDir,
		"deviceInfoDirs":  []string{filepath.Join(root, "devinfo")},
	}
	data, err := json.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	e.policyPath = filepath.Join(root, "policy.json")
	if err := os.WriteFile(e.policyPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == policy.PathEnv {
			return e.policyPath
		}
		return ""
	}
	if e.pol, err = policy.Load(getenv); err != nil {
		t.Fatal(err)
	}
	e.p = &plugin.Plugin{Getenv: getenv, Stderr: e.stderr, OpenEngine: e.sw.open, KubeHelper: kubeHelper}
	if err := os.WriteFile(ipamLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(ipamLog + ".stdin")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin stderr:\n%s", e.stderr.String())
		}
	})
	return e
}

// confMod changes a configuration before it is encoded.
type confMod func(map[string]any)

func withName(name string) confMod { return func(c map[string]any) { c["name"] = name } }
func withoutIPAM() confMod         { return func(c map[string]any) { delete(c, "ipam") } }
func withIPAM(typ string) confMod {
	return func(c map[string]any) { c["ipam"] = map[string]any{"type": typ} }
}
func withSharedDir(d string) confMod { return func(c map[string]any) { c["sharedDir"] = d } }
func withValid(pairs ...string) confMod {
	return func(c map[string]any) {
		var v []map[string]string
		for i := 0; i+1 < len(pairs); i += 2 {
			v = append(v, map[string]string{"containerID": pairs[i], "ifname": pairs[i+1]})
		}
		c["cni.dev/valid-attachments"] = v
	}
}
func withPrevResult(prev json.RawMessage) confMod {
	return func(c map[string]any) { c["prevResult"] = prev }
}

// conf is the published OVS-DPDK example (OVS the vhost-user client) with a
// shared directory under the test's root, an MTU and host-local IPAM whose
// allocations are files under the test's root.
func (e *testEnv) conf(version string, mods ...confMod) []byte {
	e.t.Helper()
	c := map[string]any{
		"cniVersion": version,
		"name":       "net1",
		"type":       "userspace",
		"logLevel":   "debug",
		"sharedDir":  e.shared,
		"mtu":        9000,
		"host": map[string]any{
			"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
			"vhost": map[string]any{"mode": "client"}, "bridge": map[string]any{"bridgeName": "br-4"},
		},
		"ipam": map[string]any{"type": "host-local", "subnet": "10.56.217.0/24", "dataDir": e.ipamDir},
	}
	for _, m := range mods {
		m(c)
	}
	data, err := json.Marshal(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return data
}

// containerID is a runtime-style 64-hex id derived from a name.
func containerID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// multusArgs is CNI_ARGS as Multus passes them: its own keys, then the
// runtime's again.
func multusArgs(id string) string {
	own := fmt.Sprintf("IgnoreUnknown=true;K8S_POD_NAMESPACE=tenant-a;K8S_POD_NAME=pod-%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=uid-%s", id[:6], id, id[:8])
	return own + ";" + strings.Replace(own, "IgnoreUnknown=true", "IgnoreUnknown=1", 1)
}

func (e *testEnv) args(id, ifName string, conf []byte) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: id,
		Netns:       "/var/run/netns/pod-" + id[:8],
		IfName:      ifName,
		Args:        multusArgs(id),
		Path:        cniPath,
		StdinData:   conf,
	}
}

// run calls a verb the way skel would: with the CNI_* variables of the
// invocation in the environment (the IPAM delegation inherits them), and
// stdout captured.
func run(t *testing.T, verb func(*skel.CmdArgs) error, a *skel.CmdArgs) (string, error) {
	t.Helper()
	setCNIEnv(a)
	var err error
	out := captureStdout(t, func() { err = verb(a) })
	return out, err
}

func setCNIEnv(a *skel.CmdArgs) {
	os.Setenv("CNI_CONTAINERID", a.ContainerID)
	os.Setenv("CNI_IFNAME", a.IfName)
	os.Setenv("CNI_NETNS", a.Netns)
	os.Setenv("CNI_ARGS", a.Args)
	os.Setenv("CNI_PATH", a.Path)
}

// captureStdout runs f with os.Stdout redirected to a pipe and returns what
// f wrote there.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	old := os.Stdout
	os.Stdout = w
	func() {
		defer func() { os.Stdout = old }()
		f()
	}()
	w.Close()
	out := <-done
	r.Close()
	return string(out)
}

// add runs a successful ADD and returns what it printed.
func (e *testEnv) add(id, ifName string, conf []byte) string {
	e.t.Helper()
	out, err := run(e.t, e.p.Add, e.args(id, ifName, conf))
	if err != nil {
		e.t.Fatalf("ADD %s/%s: %v", id[:12], ifName, err)
	}
	return out
}

// cniCode returns the CNI error code of err, or 0 if it is no CNI error.
func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// --- what is on disk ---

func (e *testEnv) sockDir(id string) string { return filepath.Join(e.shared, configdata.ShortID(id)) }

func (e *testEnv) configDataPath(id, ifName string) string {
	return filepath.Join(e.sockDir(id), configdata.FileName(id, ifName))
}

func (e *testEnv) recordPath(id, ifName string) string {
	return filepath.Join(e.stateDir, "attachments", id+"@"+ifName+".json")
}

func (e *testEnv) store() *state.Store { return state.New(e.stateDir) }

func (e *testEnv) loadRecord(id, ifName string) *state.Record {
	e.t.Helper()
	r, err := e.store().Load(id, ifName)
	if err != nil {
		e.t.Fatalf("loading record: %v", err)
	}
	return r
}

// allocations lists host-local's address files of a network.
func (e *testEnv) allocations(network string) []string {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.ipamDir, network))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		n := en.Name()
		if n == "lock" || strings.HasPrefix(n, "last_reserved_ip.") {
			continue
		}
		out = append(out, n)
	}
	return out
}

// ipamCalls returns the recording-ipam log lines.
func ipamCalls(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(ipamLog)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if l != "" {
			out = append(out, strings.ReplaceAll(l, " ", "|"))
		}
	}
	return out
}

func ipamStdin(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(ipamLog + ".stdin")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// dirEntries lists a directory's names (nil when it does not exist).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	sort.Strings(out)
	return out
}

// assertClosedOnce checks every connection the verb opened was closed
// exactly once.
func (e *testEnv) assertClosedOnce() {
	e.t.Helper()
	for i, n := range e.sw.closeCounts() {
		if n != 1 {
			e.t.Errorf("engine connection %d closed %d times, want exactly once", i, n)
		}
	}
}

// assertNoUseAfterClose checks no engine method ran on a closed connection.
func (e *testEnv) assertNoUseAfterClose() {
	e.t.Helper()
	e.sw.mu.Lock()
	defer e.sw.mu.Unlock()
	for _, c := range e.sw.calls {
		if c.closed {
			e.t.Errorf("%s called on connection %d after it was closed", c.method, c.conn)
		}
	}
}
