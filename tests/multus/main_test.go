// Package multus runs the plugin under the real Multus thin plugin (v4,
// built from the module proxy by hack/node-assets.sh --multus) against a
// real kube-apiserver, on real network namespaces, the real OVS-DPDK test bed
// and a real VPP: the test calls Multus as the runtime would (ADD, CHECK,
// DEL for a sandbox), Multus reads the pod's k8s.v1.cni.cncf.io/networks
// selection and the NADs, runs its bridge + host-local cluster network and
// delegates to the plugin, and writes the pod's network-status. The plugin
// uses an RBAC-limited identity bound to the deploy/ manifests' ClusterRole,
// Multus one with the rules of Multus's own ClusterRole.
//
// Some tests call the plugin directly, imitating Multus's delegate call
// (delegates, below), where Multus cannot express the case or hides what
// the test asserts; each says why.
package multus

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/kubetest"
	"github.com/userspace-cni/userspace/tests/testbed"
)

var bed struct {
	root, bin, policy string
	shared            string // hostPath volumes of the test pods
	kubeletRoot       string
	devInfoDir        string
	stateDir          string
	ovs               *testbed.OVS
	vpp               *testbed.VPP
	vppSock           string
	kube              *kubetest.Env
	cni               *libcni.CNIConfig // direct delegate calls

	// The real Multus (multusbin_test.go).
	multusBin     string // Multus and the cluster network's plugins
	multusConf    *libcni.NetworkConfig
	multusCache   string // Multus's cniDir
	multusLog     string
	clusterBridge string
	clusterIPAM   string            // the cluster network's host-local dataDir
	runtime       *libcni.CNIConfig // the runtime calling Multus
}

func TestMain(m *testing.M) { testbed.Main(m, "multus", setup) }

func setup(m *testing.M) (int, error) {
	root, cleanup, err := testbed.Prepare("usp-mt-")
	if err != nil {
		return 0, err
	}
	defer cleanup()
	bed.root, bed.bin = root, filepath.Join(root, "bin")
	bed.shared, bed.kubeletRoot, bed.devInfoDir = filepath.Join(root, "vol"), filepath.Join(root, "kubelet"), filepath.Join(root, "devinfo")
	bed.stateDir = filepath.Join(root, "state")
	o, v, stop, err := testbed.StartSwitches(root, testbed.OVSOptions{})
	if err != nil {
		return 0, err
	}
	defer stop()
	bed.ovs, bed.vpp, bed.vppSock = o, v, v.APISocket
	k, err := kubetest.Start()
	if err != nil {
		return 0, err
	}
	defer k.Stop()
	bed.kube = k
	if err := writePolicy(nil); err != nil {
		return 0, err
	}
	bed.cni = libcni.NewCNIConfigWithCacheDir([]string{bed.bin}, filepath.Join(root, "cache"), nil)
	undo, err := setupMultus()
	if err != nil {
		return 0, err
	}
	defer undo()
	return m.Run(), nil
}

// nodePolicy is the suite's node policy.
func nodePolicy() *policy.Policy {
	p := bed.ovs.NodePolicy(bed.root, bed.vppSock, bed.shared, filepath.Join(bed.kubeletRoot, "pods"))
	p.KubeconfigDirs = []string{bed.kube.Dir(), filepath.Join(bed.root, "kc")}
	p.KubeletRoot = bed.kubeletRoot
	p.DeviceInfoDirs = []string{bed.devInfoDir, multusDevInfoDir}
	return p
}

func writePolicy(mutate func(*policy.Policy)) error {
	bed.policy = filepath.Join(bed.root, "policy.json")
	return testbed.WritePolicy(nodePolicy(), mutate, bed.policy)
}

func ctx() context.Context { return context.Background() }

// The published examples as NADs, with the kubeconfig the plugin uses.
func ovsNAD(kubeconfig, bridge string) string {
	return fmt.Sprintf(`{"cniVersion": "0.3.1", "type": "userspace", "kubeconfig": %q, "capabilities": {"mac": true, "CNIDeviceInfoFile": true},
 "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge", "vhost": {"mode": "client"}, "bridge": {"bridgeName": %q}},
 "container": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": "server"}}}`, kubeconfig, bridge)
}

func vppNAD(kubeconfig string) string {
	return fmt.Sprintf(`{"cniVersion": "0.3.1", "type": "userspace", "name": "memif-network", "kubeconfig": %q, "capabilities": {"CNIDeviceInfoFile": true},
 "host": {"engine": "vpp", "iftype": "memif", "netType": "bridge", "memif": {"role": "master", "mode": "ethernet"}, "bridge": {"bridgeId": 4}},
 "container": {"engine": "vpp", "iftype": "memif", "netType": "interface", "memif": {"role": "slave", "mode": "ethernet"}},
 "ipam": {"type": "host-local", "subnet": "172.22.0.0/24", "rangeStart": "172.22.0.2", "rangeEnd": "172.22.0.254",
  "routes": [{"dst": "0.0.0.0/0"}], "gateway": "172.22.0.1", "dataDir": %q}}`, kubeconfig, filepath.Join(bed.root, "ipam"))
}

// sandbox is a pod as the runtime sees it: the API object, a sandbox id and
// a real network namespace.
type sandbox struct {
	pod *corev1.Pod
	id  string
	ns  *testbed.NetNS
	uid string // K8S_POD_UID the runtime passes
}

// newPod creates a pod with the networks annotation and, unless volume is
// "", a shared-dir volume ("hostPath" or "emptyDir") mounted at mount.
func newPod(t testing.TB, namespace, networks, volume, mount string) *sandbox {
	t.Helper()
	name := "pod-" + testbed.SandboxID()[:10]
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
		Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": networks}}}
	c := corev1.Container{Name: "app", Image: "dpdk-app:latest"}
	switch volume {
	case "hostPath":
		pod.Spec.Volumes = []corev1.Volume{{Name: "shared-dir", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(bed.shared, name)}}}}
	case "emptyDir":
		pod.Spec.Volumes = []corev1.Volume{{Name: "shared-dir", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}
	if volume != "" {
		c.VolumeMounts = []corev1.VolumeMount{{Name: "shared-dir", MountPath: mount}}
	}
	pod.Spec.Containers = []corev1.Container{c}
	p, err := bed.kube.CreatePod(ctx(), pod)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := testbed.NewNetNS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ns.Close()
		_ = bed.kube.DeletePod(ctx(), namespace, name)
	})
	return &sandbox{pod: p, id: testbed.SandboxID(), ns: ns, uid: string(p.UID)}
}

// selection is one element of k8s.v1.cni.cncf.io/networks.
type selection struct {
	Name      string         `json:"name"`
	Namespace string         `json:"namespace,omitempty"`
	Interface string         `json:"interface,omitempty"`
	MAC       string         `json:"mac,omitempty"`
	CNIArgs   map[string]any `json:"cni-args,omitempty"`
}

// delegate is one call Multus would make for a selection.
type delegate struct {
	net *libcni.NetworkConfig
	rt  *libcni.RuntimeConf
}

// delegates imitates the calls Multus makes for a pod, for the tests that
// call the plugin directly: the selections from
// its annotation, each NAD's config from the API server (its name injected
// when missing), Multus's CNI_ARGS, net<N> interface names (net0 is the
// cluster network), cni-args and the capabilities the NAD declares.
func (s *sandbox) delegates(t *testing.T) []delegate {
	t.Helper()
	var sels []selection
	ann := s.pod.Annotations["k8s.v1.cni.cncf.io/networks"]
	if err := json.Unmarshal([]byte(ann), &sels); err != nil {
		for _, n := range strings.Split(ann, ",") {
			sels = append(sels, selection{Name: strings.TrimSpace(n)})
		}
	}
	var out []delegate
	for i, sel := range sels {
		ns := sel.Namespace
		if ns == "" {
			ns = s.pod.Namespace
		}
		raw, err := bed.kube.NADConfig(ctx(), ns, sel.Name)
		if err != nil {
			t.Fatal(err)
		}
		var conf map[string]any
		if err := json.Unmarshal([]byte(raw), &conf); err != nil {
			t.Fatal(err)
		}
		if _, ok := conf["name"]; !ok {
			conf["name"] = sel.Name
		}
		if sel.CNIArgs != nil {
			conf["args"] = map[string]any{"cni": sel.CNIArgs}
		}
		data, _ := json.Marshal(conf)
		nc, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			t.Fatal(err)
		}
		ifName := sel.Interface
		if ifName == "" {
			ifName = fmt.Sprintf("net%d", i+1)
		}
		caps := map[string]any{}
		if sel.MAC != "" {
			caps["mac"] = sel.MAC
		}
		caps["CNIDeviceInfoFile"] = filepath.Join(bed.devInfoDir, fmt.Sprintf("%s-%s_%s", sel.Name, s.id, ifName))
		out = append(out, delegate{net: nc, rt: s.runtimeConf(ifName, caps)})
	}
	return out
}

func (s *sandbox) runtimeConf(ifName string, caps map[string]any) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: s.id, NetNS: s.ns.Path(), IfName: ifName, CapabilityArgs: caps,
		Args: [][2]string{
			{"IgnoreUnknown", "true"}, {"K8S_POD_NAMESPACE", s.pod.Namespace}, {"K8S_POD_NAME", s.pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", s.id}, {"K8S_POD_UID", s.uid},
			{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", s.pod.Namespace}, {"K8S_POD_NAME", s.pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", s.id},
		},
	}
}

// del runs every delegate's DEL in reverse order (libcni passes the cached
// result as prevResult, as Multus does from its cache).
func (s *sandbox) del(t *testing.T) {
	t.Helper()
	ds := s.delegates(t)
	for i := len(ds) - 1; i >= 0; i-- {
		if err := bed.cni.DelNetwork(ctx(), ds[i].net, ds[i].rt); err != nil {
			t.Fatalf("DEL %s: %v", ds[i].rt.IfName, err)
		}
	}
}

// annotation reads the pod's configuration-data entries.
func (s *sandbox) annotation(t *testing.T) ([]configdata.ConfigData, string) {
	t.Helper()
	p, err := bed.kube.Clientset.CoreV1().Pods(s.pod.Namespace).Get(ctx(), s.pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var entries []configdata.ConfigData
	if v, ok := p.Annotations[configdata.AnnotationConfigData]; ok {
		if err := json.Unmarshal([]byte(v), &entries); err != nil {
			t.Fatalf("annotation %s is not a JSON array of config data: %v\n%s", configdata.AnnotationConfigData, err, v)
		}
	}
	return entries, p.Annotations[configdata.AnnotationMappedDir]
}

// ovsPorts counts the switch's interfaces owned by a sandbox.
func ovsPorts(t *testing.T, id string) int {
	t.Helper()
	out, err := bed.ovs.Vsctl("--bare", "--columns=name", "find", "Interface", "external_ids:userspace-cni/container-id="+id)
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Fields(out))
}

func records(t *testing.T, id string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(bed.stateDir, "attachments"))
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), id) {
			out = append(out, e.Name())
		}
	}
	return out
}
