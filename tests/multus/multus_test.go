package multus

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/deviceinfo"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/vpp"
	"github.com/userspace-cni/userspace/tests/kubetest"
	"github.com/userspace-cni/userspace/tests/testbed"
)

const mapped = "/var/lib/cni/usrspcni"

// TestOVSExampleAnnotations: the published OVS-DPDK example as a NAD
// (no name: Multus injects the NAD's), a pod with a hostPath shared-dir
// volume and a MAC in its selection. The pod gets its config data in the
// annotations, Multus its device-info, and DEL takes back exactly that.
func TestOVSExampleAnnotations(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-ovs", ovsNAD(bed.kube.PluginKubeconfig, "br-mt")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", `[{"name": "userspace-ovs", "mac": "02:00:00:00:00:42"}]`, "hostPath", mapped)
	res := s.add(t)
	r, err := types100.NewResultFromResult(res[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "net1" || r.Interfaces[0].Mac != "02:00:00:00:00:42" || r.Interfaces[0].Sandbox != s.ns.Path() {
		t.Errorf("result interfaces %+v: want net1 in the sandbox with the selection's MAC", r.Interfaces)
	}
	volume := filepath.Join(bed.shared, s.pod.Name)
	sockName := s.id[:12] + "-net1"
	if ovsPorts(t, s.id) != 1 {
		t.Fatalf("want one port on the switch")
	}
	out, _ := bed.ovs.Vsctl("--bare", "--columns=options", "find", "Interface", "external_ids:userspace-cni/container-id="+s.id)
	if !strings.Contains(out, filepath.Join(volume, sockName)) {
		t.Errorf("OVS connects to %s, want the socket in the pod's volume %s", out, volume)
	}

	entries, mappedDir := s.annotation(t)
	if mappedDir != mapped {
		t.Errorf("%s = %q, want the volume's mount path %q", configdata.AnnotationMappedDir, mappedDir, mapped)
	}
	if len(entries) != 1 {
		t.Fatalf("want one config-data entry, got %+v", entries)
	}
	e := entries[0]
	if e.ContainerID != s.id || e.IfName != "net1" || e.Name != "userspace-ovs" || e.Config.IfType != "vhostuser" ||
		e.Config.Vhost.Mode != "server" || e.Config.Vhost.Socketfile != sockName || e.Config.Engine != "ovs-dpdk" {
		t.Errorf("config-data entry %+v", e)
	}
	if e.IPResult == nil || len(e.IPResult.Interfaces) != 1 || e.IPResult.Interfaces[0].Mac != "02:00:00:00:00:42" {
		t.Errorf("config-data ipResult %+v", e.IPResult)
	}
	if _, err := os.Stat(filepath.Join(volume, configdata.FileName(s.id, "net1"))); err != nil {
		t.Errorf("config-data file in the volume: %v", err)
	}

	devPath := filepath.Join(bed.devInfoDir, "userspace-ovs-"+s.id+"_net1")
	di, err := deviceinfo.Read(&policy.Policy{DeviceInfoDirs: []string{bed.devInfoDir}}, devPath)
	if err != nil {
		t.Fatalf("device-info: %v", err)
	}
	if di.Type != "vhost-user" || di.Version != "1.1.0" || di.VhostUser == nil || di.VhostUser.Mode != "server" ||
		di.VhostUser.Path != filepath.Join(mapped, sockName) {
		t.Errorf("device-info %+v (%+v), want vhost-user server at %s", di, di.VhostUser, filepath.Join(mapped, sockName))
	}

	s.del(t)
	if entries, _ := s.annotation(t); len(entries) != 0 {
		t.Errorf("DEL left config-data entries %+v", entries)
	}
	if _, err := os.Stat(devPath); !os.IsNotExist(err) {
		t.Errorf("DEL left the device-info file: %v", err)
	}
	if ovsPorts(t, s.id) != 0 || len(records(t, s.id)) != 0 {
		t.Errorf("DEL left a port or a record")
	}
}

// TestVPPExampleAnnotations: the published VPP example as a NAD; the memif
// socket lands in the pod's volume, the annotation carries the slave side
// and the IPAM address, device-info the memif role, path and mode.
func TestVPPExampleAnnotations(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "memif-network", vppNAD(bed.kube.PluginKubeconfig)); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", "memif-network", "hostPath", mapped)
	res := s.add(t)
	r, _ := types100.NewResultFromResult(res[0])
	sockName := "memif-" + s.id[:12] + "-net1.sock"
	sock := filepath.Join(bed.shared, s.pod.Name, sockName)
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("memif socket %s in the pod's volume: %v", sock, err)
	}
	st, err := bed.vpp.State()
	if err != nil {
		t.Fatal(err)
	}
	if i, ok := st.ByTag(vpp.OwnerTag(s.id, "net1")); !ok || i.BridgeDomain != 4 || i.DevType != "memif" {
		t.Errorf("no tagged memif in bridge domain 4 (%+v):\n%s", i, st)
	}
	entries, mappedDir := s.annotation(t)
	if len(entries) != 1 || mappedDir != mapped {
		t.Fatalf("entries %+v, mapped dir %q", entries, mappedDir)
	}
	e := entries[0]
	if e.Name != "memif-network" || e.Config.IfType != "memif" || e.Config.Memif.Role != "slave" || e.Config.Memif.Mode != "ethernet" ||
		e.Config.Memif.Socketfile != sockName || e.Config.NetType != "interface" {
		t.Errorf("config-data entry config %+v", e.Config)
	}
	if e.IPResult == nil || len(e.IPResult.IPs) != 1 || e.IPResult.IPs[0].Address.String() != r.IPs[0].Address.String() ||
		!strings.HasPrefix(r.IPs[0].Address.String(), "172.22.0.") {
		t.Errorf("config-data ipResult %+v, result IPs %v", e.IPResult, r.IPs)
	}
	di, err := deviceinfo.Read(&policy.Policy{DeviceInfoDirs: []string{bed.devInfoDir}}, filepath.Join(bed.devInfoDir, "memif-network-"+s.id+"_net1"))
	if err != nil || di.Memif == nil || di.Memif.Role != "slave" || di.Memif.Mode != "ethernet" || di.Memif.Path != filepath.Join(mapped, sockName) {
		t.Errorf("device-info %+v (%v)", di, err)
	}
	s.del(t)
	if entries, _ := s.annotation(t); len(entries) != 0 {
		t.Errorf("DEL left config-data entries %+v", entries)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("DEL left the memif socket: %v", err)
	}
	if len(records(t, s.id)) != 0 {
		t.Errorf("DEL left a record")
	}
}

// TestTenConcurrentAttachments: ten attachments of one pod added at once
// from ten plugin processes all end up in the annotation (no lost
// updates); DEL of one removes exactly its entry.
func TestTenConcurrentAttachments(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-ten", ovsNAD(bed.kube.PluginKubeconfig, "br-ten")); err != nil {
		t.Fatal(err)
	}
	var sels []string
	for i := 1; i <= 10; i++ {
		sels = append(sels, fmt.Sprintf(`{"name": "userspace-ten", "interface": "vhu%d"}`, i))
	}
	s := newPod(t, "default", "["+strings.Join(sels, ",")+"]", "hostPath", mapped)
	ds := s.delegates(t)
	var wg sync.WaitGroup
	errs := make(chan error, len(ds))
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := bed.cni.AddNetwork(ctx(), d.net, d.rt); err != nil {
				errs <- fmt.Errorf("ADD %s: %w", d.rt.IfName, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries, _ := s.annotation(t)
	got := map[string]bool{}
	for _, e := range entries {
		if e.ContainerID == s.id {
			got[e.IfName] = true
		}
	}
	if len(got) != 10 || len(entries) != 10 {
		t.Fatalf("annotation holds %d entries (%v), want all 10", len(entries), got)
	}
	if err := bed.cni.DelNetwork(ctx(), ds[2].net, ds[2].rt); err != nil {
		t.Fatal(err)
	}
	entries, _ = s.annotation(t)
	for _, e := range entries {
		if e.IfName == "vhu3" {
			t.Errorf("DEL of vhu3 left its entry")
		}
	}
	if len(entries) != 9 {
		t.Errorf("DEL of one attachment left %d entries, want 9", len(entries))
	}
	s.del(t)
	if entries, _ := s.annotation(t); len(entries) != 0 {
		t.Errorf("entries left: %+v", entries)
	}
	if ovsPorts(t, s.id) != 0 {
		t.Errorf("ports left on the switch")
	}
}

// TestStaleSandboxEntryReplaced: a pod's sandbox is recreated (new
// container id, same interface) without the old DEL reaching the API: the
// new ADD replaces the old entry instead of adding a second one.
func TestStaleSandboxEntryReplaced(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-stale", ovsNAD(bed.kube.PluginKubeconfig, "br-stale")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", "userspace-stale", "hostPath", mapped)
	s.add(t)
	old := *s
	s.id = randomID()
	s.add(t)
	entries, _ := s.annotation(t)
	if len(entries) != 1 || entries[0].ContainerID != s.id {
		t.Errorf("entries %+v: want only the new sandbox's", entries)
	}
	s.del(t)
	old.del(t)
	if ovsPorts(t, old.id)+ovsPorts(t, s.id) != 0 {
		t.Errorf("ports left")
	}
}

// TestDelAfterPodDeleted: the pod object is gone before DEL (the usual
// order on a node); DEL still removes everything on the node.
func TestDelAfterPodDeleted(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-gone", ovsNAD(bed.kube.PluginKubeconfig, "br-gone")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", "userspace-gone", "hostPath", mapped)
	ds := s.delegates(t)
	s.add(t)
	if err := bed.kube.DeletePod(ctx(), "default", s.pod.Name); err != nil {
		t.Fatal(err)
	}
	if err := bed.cni.DelNetwork(ctx(), ds[0].net, ds[0].rt); err != nil {
		t.Fatalf("DEL after the pod was deleted: %v", err)
	}
	if ovsPorts(t, s.id) != 0 || len(records(t, s.id)) != 0 {
		t.Errorf("DEL left a port or record")
	}
}

// deadKubeconfig is the plugin's kubeconfig pointing at a port where no
// API server listens.
func deadKubeconfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(bed.kube.PluginKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	server := bed.kube.Admin.Host
	dead := strings.Replace(string(data), server, "https://127.0.0.1:1", 1)
	if dead == string(data) {
		t.Fatalf("server %s not found in the kubeconfig", server)
	}
	dir := filepath.Join(bed.root, "kc")
	_ = os.MkdirAll(dir, 0o700)
	path := filepath.Join(dir, "dead.kubeconfig")
	if err := os.WriteFile(path, []byte(dead), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAPIUnreachable: ADD fails clearly (CNI 11, try again later) and
// leaves nothing; DEL does not need the API.
func TestAPIUnreachable(t *testing.T) {
	dead := deadKubeconfig(t)
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-dead", ovsNAD(dead, "br-dead")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", "userspace-dead", "hostPath", mapped)
	ds := s.delegates(t)
	_, err := bed.cni.AddNetwork(ctx(), ds[0].net, ds[0].rt)
	e := testbed.WantCNIError(t, err)
	if e.Code != types.ErrTryAgainLater || !strings.Contains(e.Msg, "unreachable") || !strings.Contains(e.Msg, s.pod.Name) {
		t.Errorf("ADD with the API down: code %d %q, want 11 naming the pod and the API", e.Code, e.Msg)
	}
	if ovsPorts(t, s.id) != 0 || len(records(t, s.id)) != 0 {
		t.Errorf("failed ADD left a port or record")
	}

	// DEL with the API down: add through a live API, then delete through
	// the dead one.
	live := newPod(t, "default", "userspace-dead", "hostPath", mapped)
	good, err := libcni.NetworkPluginConfFromBytes([]byte(strings.Replace(ovsNAD(bed.kube.PluginKubeconfig, "br-dead"), `"type"`, `"name": "userspace-dead", "type"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rt := live.runtimeConf("net1", nil)
	if _, err := bed.cni.AddNetwork(ctx(), good, rt); err != nil {
		t.Fatal(err)
	}
	ldel := live.delegates(t)
	ldel[0].rt.CapabilityArgs = nil
	if err := bed.cni.DelNetwork(ctx(), ldel[0].net, ldel[0].rt); err != nil {
		t.Fatalf("DEL with the API unreachable: %v", err)
	}
	if ovsPorts(t, live.id) != 0 || len(records(t, live.id)) != 0 {
		t.Errorf("DEL with the API down left a port or record")
	}
}

// TestUIDMismatch: the runtime's K8S_POD_UID names another pod than the
// one by that name now: ADD refuses, naming both.
func TestUIDMismatch(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-uid", ovsNAD(bed.kube.PluginKubeconfig, "br-uid")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", "userspace-uid", "hostPath", mapped)
	s.uid = "00000000-1111-2222-3333-444444444444"
	ds := s.delegates(t)
	_, err := bed.cni.AddNetwork(ctx(), ds[0].net, ds[0].rt)
	e := testbed.WantCNIError(t, err)
	if !strings.Contains(e.Msg, s.uid) || !strings.Contains(e.Msg, string(s.pod.UID)) {
		t.Errorf("UID mismatch error %q does not name both UIDs", e.Msg)
	}
	if ovsPorts(t, s.id) != 0 || len(records(t, s.id)) != 0 {
		t.Errorf("failed ADD left a port or record")
	}
}

// TestRBACDenied: an identity without the ClusterRole gets a clear error.
func TestRBACDenied(t *testing.T) {
	kc, err := bed.kube.UserKubeconfig("no-permissions")
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-rbac", ovsNAD(kc, "br-rbac")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", "userspace-rbac", "hostPath", mapped)
	ds := s.delegates(t)
	_, err = bed.cni.AddNetwork(ctx(), ds[0].net, ds[0].rt)
	e := testbed.WantCNIError(t, err)
	if !strings.Contains(e.Msg, "RBAC") || !strings.Contains(e.Msg, s.pod.Name) {
		t.Errorf("RBAC denial: %q", e.Msg)
	}
	if ovsPorts(t, s.id) != 0 {
		t.Errorf("failed ADD left a port")
	}
}

// TestEmptyDirVolume: an emptyDir shared-dir lives under the kubelet's pod
// directory, too long for a unix socket address: the socket is reached
// through a short link, removed with the attachment.
func TestEmptyDirVolume(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-empty", ovsNAD(bed.kube.PluginKubeconfig, "br-empty")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", "userspace-empty", "emptyDir", "/vhu")
	s.add(t)
	dir := filepath.Join(bed.kubeletRoot, "pods", string(s.pod.UID), "volumes", "kubernetes.io~empty-dir", "shared-dir")
	full := filepath.Join(dir, s.id[:12]+"-net1")
	if len(full) <= 107 {
		t.Fatalf("test set-up: %s is short enough not to need a link", full)
	}
	out, _ := bed.ovs.Vsctl("--bare", "--columns=options", "find", "Interface", "external_ids:userspace-cni/container-id="+s.id)
	var path string
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "vhost-server-path="); ok {
			path = strings.Trim(v, `"`)
		}
	}
	if path == "" || len(path) > 107 {
		t.Fatalf("OVS connects to %q, want a short path", path)
	}
	if target, err := os.Readlink(filepath.Dir(path)); err != nil || target != dir {
		t.Errorf("short link %s -> %q (%v), want %s", filepath.Dir(path), target, err, dir)
	}
	if _, mappedDir := s.annotation(t); mappedDir != "/vhu" {
		t.Errorf("mapped dir %q, want /vhu", mappedDir)
	}
	s.del(t)
	if _, err := os.Lstat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("DEL left the short link %s", filepath.Dir(path))
	}
}

// TestExampleNADs: every NetworkAttachmentDefinition under examples/ is
// accepted by the API server (the CRD from deploy/) and its config by the
// plugin's parser under the default node policy.
func TestExampleNADs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(bed.kube.RepoRoot, "examples", "nad-*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("example NADs: %v %v", files, err)
	}
	if err := bed.kube.CreateNamespace(ctx(), "examples"); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		objs, err := kubetest.LoadManifests(f)
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s: %d objects, %v", f, len(objs), err)
		}
		config, _, _ := unstructured.NestedString(objs[0].Object, "spec", "config")
		if err := bed.kube.CreateNAD(ctx(), "examples", objs[0].GetName(), config); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		stored, err := bed.kube.NADConfig(ctx(), "examples", objs[0].GetName())
		if err != nil {
			t.Fatal(err)
		}
		c, err := netconf.Parse([]byte(stored))
		if err == nil {
			err = policy.Default().Admit(c)
		}
		if err != nil {
			t.Errorf("%s: the plugin refuses its config: %v", f, err)
		}
	}
}
