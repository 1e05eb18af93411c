// Package integration drives the real userspace plugin binary, as a CNI
// runtime does (libcni), on real network namespaces against a real, private
// OVS-DPDK (ovsdb-server + ovs-vswitchd-dpdk, no hugepages), a real, private
// VPP 25.10 (no hugepages, no DPDK) and real dpdk-testpmd and VPP "pods".
// Run as root; a missing prerequisite (VPP included) fails the run.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// h is the shared test bed: one switch and one plugin build per run.
var h *harness

type harness struct {
	root     string // private temp dir (short: unix socket paths count)
	binDir   string
	ovs      *testbed.OVS
	policy   string
	stateDir string
	shortDir string
	shared   string // an allowed sharedDir
	ipamDir  string
	cni      *libcni.CNIConfig
	vpp      *testbed.VPP // the host's VPP
	vppSock  string
	// ids holds every container id this suite gave the plugin: the
	// default socket directory is the node's, where other suites and the
	// demo may be creating and removing pods of their own meanwhile, so a
	// leak there is one of this suite's directories.
	ids sync.Map
}

func TestMain(m *testing.M) { testbed.Main(m, "integration", run) }

func run(m *testing.M) (int, error) {
	root, cleanup, err := testbed.Prepare("usp-it-")
	if err != nil {
		return 0, err
	}
	defer cleanup()
	hs := &harness{root: root, binDir: filepath.Join(root, "bin"), stateDir: filepath.Join(root, "state"),
		shortDir: filepath.Join(root, "s"), shared: filepath.Join(root, "shared"), ipamDir: filepath.Join(root, "ipam")}
	// (stateDir and shortDir match what OVS.PluginPolicy derives from root.)
	ovs, v, stop, err := testbed.StartSwitches(root, testbed.OVSOptions{})
	if err != nil {
		return 0, err
	}
	defer stop()
	hs.ovs, hs.vpp, hs.vppSock = ovs, v, v.APISocket
	if err := hs.writePolicy(nil); err != nil {
		return 0, err
	}
	hs.cni = libcni.NewCNIConfigWithCacheDir([]string{hs.binDir}, filepath.Join(root, "cache"), nil)
	h = hs
	return m.Run(), nil
}

// writePolicy writes the node policy the plugin reads (via policy.PathEnv),
// allowing the test bed's switch and directories; mutate may adjust it.
func (hs *harness) writePolicy(mutate func(*policy.Policy)) error {
	hs.policy = filepath.Join(hs.root, "policy.json")
	return testbed.WritePolicy(hs.ovs.NodePolicy(hs.root, hs.vppSock, hs.shared), mutate, hs.policy)
}

// withPolicy runs a test with an adjusted policy and restores it after.
func withPolicy(t *testing.T, mutate func(*policy.Policy)) {
	t.Helper()
	if err := h.writePolicy(mutate); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.writePolicy(nil); err != nil {
			t.Error(err)
		}
	})
}

// pod is a sandbox: a container id and a real network namespace.
type pod struct {
	id string
	ns *testbed.NetNS
}

func newPod(t *testing.T) *pod {
	t.Helper()
	ns, err := testbed.NewNetNS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	id := testbed.SandboxID()
	h.ids.Store(id, true)
	return &pod{id: id, ns: ns}
}

func newPods(t *testing.T, n int) []*pod {
	t.Helper()
	pods := make([]*pod, n)
	for i := range pods {
		pods[i] = newPod(t)
	}
	return pods
}

// concurrently runs f for every pod at once and reports each failure.
func concurrently(t *testing.T, verb string, pods []*pod, f func(*pod) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(pods))
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(p); err != nil {
				errs <- fmt.Errorf("%s %s: %w", verb, p.id[:12], err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (p *pod) rt(ifName string) *libcni.RuntimeConf {
	h.ids.Store(p.id, true)
	return &libcni.RuntimeConf{
		ContainerID: p.id,
		NetNS:       p.ns.Path(),
		IfName:      ifName,
		// What Multus sends a delegate: its keys, then the runtime's again.
		Args: [][2]string{
			{"IgnoreUnknown", "true"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "pod-" + p.id[:8]},
			{"K8S_POD_INFRA_CONTAINER_ID", p.id}, {"K8S_POD_UID", "uid-" + p.id[:8]},
			{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "pod-" + p.id[:8]},
		},
	}
}

// confList wraps one userspace plugin configuration in a network list.
func confList(t *testing.T, version, name string, plugin map[string]any) *libcni.NetworkConfigList {
	t.Helper()
	plugin["type"] = "userspace"
	data, err := json.Marshal(map[string]any{"cniVersion": version, "name": name, "plugins": []any{plugin}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		t.Fatalf("conflist: %v", err)
	}
	return list
}

// ovsExample is the published OVS-DPDK example: OVS is the vhost-user
// client, the pod app the server.
func ovsExample(bridge string) map[string]any {
	return map[string]any{
		"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
			"vhost": map[string]any{"mode": "client"}, "bridge": map[string]any{"bridgeName": bridge}},
		"container": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface",
			"vhost": map[string]any{"mode": "server"}},
	}
}

func hostLocal(subnet string) map[string]any {
	return map[string]any{"type": "host-local", "subnet": subnet, "dataDir": h.ipamDir}
}

var allVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

func ctx() context.Context { return context.Background() }

// iface is one OVS Interface row as ovs-vsctl reports it: an independent
// view of the switch, not the plugin's own code.
type iface map[string]string

// interfacesOf lists the Interfaces the plugin tagged with a container id.
func interfacesOf(t *testing.T, containerID string) []iface {
	t.Helper()
	return findRows(t, "Interface", "external_ids:userspace-cni/container-id="+containerID,
		"name,type,options,ofport,error,mtu_request,external_ids")
}

func findRows(t *testing.T, table, cond, cols string) []iface {
	t.Helper()
	out, err := h.ovs.Vsctl("--format=json", "--columns="+cols, "find", table, cond)
	if err != nil {
		t.Fatalf("ovs-vsctl find %s %s: %v", table, cond, err)
	}
	var doc struct {
		Headings []string `json:"headings"`
		Data     [][]any  `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("ovs-vsctl output %q: %v", out, err)
	}
	var rows []iface
	for _, d := range doc.Data {
		r := iface{}
		for i, hd := range doc.Headings {
			r[hd] = render(d[i])
		}
		rows = append(rows, r)
	}
	return rows
}

// render flattens an OVSDB JSON value: atoms as text, sets as
// space-separated atoms, maps as k=v pairs.
func render(v any) string {
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		return fmt.Sprint(v)
	}
	switch arr[0] {
	case "set":
		var parts []string
		for _, e := range arr[1].([]any) {
			parts = append(parts, render(e))
		}
		return strings.Join(parts, " ")
	case "map":
		var parts []string
		for _, e := range arr[1].([]any) {
			kv := e.([]any)
			parts = append(parts, render(kv[0])+"="+render(kv[1]))
		}
		return strings.Join(parts, " ")
	case "uuid", "named-uuid":
		return fmt.Sprint(arr[1])
	}
	return fmt.Sprint(v)
}

// mapValue reads a key from a rendered map column.
func mapValue(rendered, key string) string {
	for _, kv := range strings.Fields(rendered) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// bridgeExists reports whether the switch has the bridge.
func bridgeExists(t *testing.T, name string) bool {
	t.Helper()
	return len(findRows(t, "Bridge", "name="+name, "name")) > 0
}

// records lists the plugin's attachment records.
func records(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.stateDir, "attachments"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// ipamAllocations lists host-local's allocations (files named by address).
func ipamAllocations(t *testing.T) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(h.ipamDir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), "last_reserved_ip") && fi.Name() != "lock" {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// assertClean checks that nothing of a pod remains: no switch interface, no
// record, no socket directory.
func assertClean(t *testing.T, p *pod, dirs ...string) {
	t.Helper()
	if rows := interfacesOf(t, p.id); len(rows) != 0 {
		t.Errorf("interfaces left on the switch: %v", rows)
	}
	for _, r := range records(t) {
		if strings.HasPrefix(r, p.id) {
			t.Errorf("record left behind: %s", r)
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			entries, _ := os.ReadDir(d)
			t.Errorf("socket directory %s left behind (%d entries)", d, len(entries))
		}
	}
}

// waitApplied waits until the switch has applied the pod's interface (ADD
// does not wait for it) and checks it did so cleanly.
func waitApplied(t *testing.T, containerID string) iface {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := interfacesOf(t, containerID)
		if len(rows) == 1 && rows[0]["ofport"] != "" {
			if strings.HasPrefix(rows[0]["ofport"], "-") || rows[0]["error"] != "" {
				t.Fatalf("the switch refused the port: %v", rows[0])
			}
			return rows[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the switch did not apply the port within 10s: %v\n%s", rows, h.ovs.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
