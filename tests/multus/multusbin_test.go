package multus

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userspace-cni/userspace/pkg/deviceinfo"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// multusDevInfoDir is where Multus names the CNIDeviceInfoFile of a
// delegate with a device id (fixed in its NAD client library).
const multusDevInfoDir = "/var/run/k8s.cni.cncf.io/devinfo/cni"

// The cluster network Multus delegates to first: the reference bridge
// plugin (no gateway: nothing changes in the host's routing or forwarding)
// with host-local, on a bridge named per run.
const clusterSubnet = "10.250.0.0/24"

// multusAssets is the folder hack/node-assets.sh --multus prints (the real
// Multus thin plugin and the bridge and host-local reference plugins, built
// from the module proxy and cached by version), named by
// USERSPACE_MULTUS_ASSETS or got by running the script: a missing binary
// fails the suite, it never skips.
func multusAssets() (string, error) {
	dir := os.Getenv("USERSPACE_MULTUS_ASSETS")
	if dir == "" {
		script := filepath.Join(bed.kube.RepoRoot, "hack", "node-assets.sh")
		cmd := exec.Command(script, "--multus")
		cmd.Stderr = os.Stderr // build progress
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("%s --multus: %w", script, err)
		}
		dir = strings.TrimSpace(string(out))
	}
	for _, b := range []string{"multus", "bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("USERSPACE_MULTUS_ASSETS=%s: %w", dir, err)
		}
	}
	return dir, nil
}

// setupMultus installs the real Multus as a runtime would find it: its
// binary and the cluster network's plugins in a CNI bin directory, an
// identity with the ClusterRole Multus's own deployment grants it, and its
// thin-plugin configuration with a bridge + host-local cluster network.
// The returned func removes what the test bed made outside its folder.
func setupMultus() (func(), error) {
	assets, err := multusAssets()
	if err != nil {
		return nil, err
	}
	bed.multusBin = filepath.Join(bed.root, "multus-bin")
	if err := os.MkdirAll(bed.multusBin, 0o755); err != nil {
		return nil, err
	}
	for _, b := range []string{"multus", "bridge", "host-local"} {
		if err := os.Symlink(filepath.Join(assets, b), filepath.Join(bed.multusBin, b)); err != nil {
			return nil, err
		}
	}
	kc, err := multusKubeconfig()
	if err != nil {
		return nil, err
	}
	bed.clusterBridge = "uspmt" + testbed.SandboxID()[:8]
	bed.clusterIPAM = filepath.Join(bed.root, "ipam-cluster")
	bed.multusCache = filepath.Join(bed.root, "multus")
	bed.multusLog = filepath.Join(bed.root, "log", "multus.log")
	if err := os.MkdirAll(filepath.Dir(bed.multusLog), 0o755); err != nil {
		return nil, err
	}
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
		"kubeconfig": kc, "cniDir": bed.multusCache, "binDir": bed.multusBin,
		"logFile": bed.multusLog, "logLevel": "verbose", "logToStderr": false,
		"delegates": []any{map[string]any{
			"cniVersion": "1.0.0", "name": "cluster",
			"plugins": []any{map[string]any{
				"type": "bridge", "bridge": bed.clusterBridge,
				"ipam": map[string]any{"type": "host-local", "subnet": clusterSubnet, "dataDir": bed.clusterIPAM},
			}},
		}},
	}
	data, _ := json.Marshal(conf)
	if bed.multusConf, err = libcni.NetworkPluginConfFromBytes(data); err != nil {
		return nil, err
	}
	// Multus finds its delegates in binDir, then in the runtime's CNI_PATH:
	// the plugin and its host-local IPAM are in the test bed's bin.
	bed.runtime = libcni.NewCNIConfigWithCacheDir([]string{bed.multusBin, bed.bin}, filepath.Join(bed.root, "runtime-cache"), nil)

	// The directory Multus names device-info files in is fixed on the host:
	// made if missing and removed after if it was (only if empty: another
	// suite on the machine may be using it).
	var made []string
	for d := multusDevInfoDir; d != "/var/run"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			made = append(made, d)
		}
	}
	if err := os.MkdirAll(multusDevInfoDir, 0o755); err != nil {
		return nil, err
	}
	return func() {
		for _, d := range made {
			_ = os.Remove(d)
		}
		// The bridge plugin leaves its bridge on DEL, as on a node.
		_ = exec.Command("ip", "link", "del", bed.clusterBridge).Run()
	}, nil
}

// multusKubeconfig is a user with the rules of Multus's own ClusterRole
// (deployments/multus-daemonset.yml): NADs, pods and pods/status, events.
func multusKubeconfig() (string, error) {
	c := bed.kube.Clientset.RbacV1().ClusterRoles()
	if _, err := c.Create(ctx(), &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "multus"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"k8s.cni.cncf.io"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		{APIGroups: []string{""}, Resources: []string{"pods", "pods/status"}, Verbs: []string{"get", "list", "update", "watch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}}, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("creating the multus ClusterRole: %w", err)
	}
	kc, err := bed.kube.UserKubeconfig("multus")
	if err != nil {
		return "", err
	}
	if err := bed.kube.BindUser(ctx(), "multus", "multus", "multus", "update"); err != nil {
		return "", err
	}
	return kc, nil
}

// multusRT is how the runtime (containerd) calls Multus for the sandbox.
func (s *sandbox) multusRT() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: s.id, NetNS: s.ns.Path(), IfName: "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", s.pod.Namespace}, {"K8S_POD_NAME", s.pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", s.id}, {"K8S_POD_UID", s.uid},
		},
	}
}

// multusErr adds the end of Multus's log to a failure.
func multusErr(verb string, err error) error {
	log, _ := os.ReadFile(bed.multusLog)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	lines = lines[max(0, len(lines)-15):]
	return fmt.Errorf("multus %s: %w\nmultus.log:\n%s", verb, err, strings.Join(lines, "\n"))
}

// tryMultusAdd runs the real Multus ADD for the sandbox, as the runtime does.
func (s *sandbox) tryMultusAdd() (types.Result, error) {
	return bed.runtime.AddNetwork(ctx(), bed.multusConf, s.multusRT())
}

// multusAdd runs Multus ADD and fails the test on an error.
func (s *sandbox) multusAdd(t *testing.T) types.Result {
	t.Helper()
	r, err := s.tryMultusAdd()
	if err != nil {
		t.Fatal(multusErr("ADD", err))
	}
	return r
}

// multusCheck runs Multus CHECK (the runtime passes the cached result).
func (s *sandbox) multusCheck(t *testing.T) {
	t.Helper()
	if err := bed.runtime.CheckNetwork(ctx(), bed.multusConf, s.multusRT()); err != nil {
		t.Fatal(multusErr("CHECK", err))
	}
}

// multusDel runs Multus DEL.
func (s *sandbox) multusDel(t *testing.T) {
	t.Helper()
	if err := bed.runtime.DelNetwork(ctx(), bed.multusConf, s.multusRT()); err != nil {
		t.Fatal(multusErr("DEL", err))
	}
}

// netStatus is one entry of k8s.v1.cni.cncf.io/network-status as Multus
// writes it.
type netStatus struct {
	Name       string                 `json:"name"`
	Interface  string                 `json:"interface"`
	IPs        []string               `json:"ips"`
	MAC        string                 `json:"mac"`
	Default    bool                   `json:"default"`
	DeviceInfo *deviceinfo.DeviceInfo `json:"device-info"`
}

// networkStatus reads the pod's network-status annotation, by network name.
func (s *sandbox) networkStatus(t *testing.T) map[string]netStatus {
	t.Helper()
	p, err := bed.kube.Clientset.CoreV1().Pods(s.pod.Namespace).Get(ctx(), s.pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, ok := p.Annotations["k8s.v1.cni.cncf.io/network-status"]
	if !ok {
		return nil
	}
	var list []netStatus
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		t.Fatalf("network-status is not a list of network statuses: %v\n%s", err, v)
	}
	out := map[string]netStatus{}
	for _, e := range list {
		out[e.Name] = e
	}
	return out
}

// checkCluster asserts the cluster network's entry: Multus's default
// network, eth0 with an address from the bridge's host-local range.
func checkCluster(t *testing.T, st map[string]netStatus) {
	t.Helper()
	c, ok := st["cluster"]
	if !ok || !c.Default || c.Interface != "eth0" || len(c.IPs) != 1 || !strings.HasPrefix(c.IPs[0], "10.250.0.") {
		t.Errorf("network-status has no default cluster entry on eth0 with an address of %s: %+v", clusterSubnet, st)
		return
	}
	// The lease and Multus's cache entry exist, so that their absence
	// after DEL (checkMultusDelClean) means something.
	if a := allocations(bed.clusterIPAM, "cluster"); !slices.Contains(a, strings.Split(c.IPs[0], "/")[0]) {
		t.Errorf("cluster-network leases %v do not hold the pod's %s", a, c.IPs[0])
	}
}

// allocations lists host-local's leases in dataDir/network (files named by
// address; its lock and last-reserved files are not leases).
func allocations(dataDir, network string) []string {
	entries, _ := os.ReadDir(filepath.Join(dataDir, network))
	var out []string
	for _, e := range entries {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			out = append(out, n)
		}
	}
	return out
}

// multusCacheEntry reports whether Multus still caches the sandbox's
// delegates (removed by its DEL).
func multusCacheEntry(id string) bool {
	_, err := os.Stat(filepath.Join(bed.multusCache, id))
	return err == nil
}

// checkMultusDelClean asserts what a DEL through Multus must leave: no
// device-info file, no cluster-network lease, no Multus cache entry, no
// switch port or record of the sandbox. Multus v4 leaves its own
// network-status on DEL (the next ADD replaces it; the pod's deletion ends
// it); the plugin's annotation entries are checked by each test while the
// pod exists.
func checkMultusDelClean(t *testing.T, s *sandbox, devinfo ...string) {
	t.Helper()
	for _, p := range devinfo {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("DEL left the device-info file %s: %v", p, err)
		}
	}
	if a := allocations(bed.clusterIPAM, "cluster"); len(a) != 0 {
		t.Errorf("DEL left cluster-network leases %v", a)
	}
	if multusCacheEntry(s.id) {
		t.Errorf("DEL left Multus's cache entry for the sandbox")
	}
	if ovsPorts(t, s.id) != 0 || len(records(t, s.id)) != 0 {
		t.Errorf("DEL left a port or a record: %v", records(t, s.id))
	}
}

// newSandbox is the pod's sandbox recreated by the runtime: a new id and
// network namespace.
func (s *sandbox) newSandbox(t *testing.T) *sandbox {
	t.Helper()
	ns, err := testbed.NewNetNS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	return &sandbox{pod: s.pod, id: testbed.SandboxID(), ns: ns, uid: s.uid}
}
