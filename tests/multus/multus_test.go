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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/vpp"
	"github.com/userspace-cni/userspace/tests/kubetest"
	"github.com/userspace-cni/userspace/tests/testbed"
)

const mapped = "/var/lib/cni/usrspcni"

// TestOVSExampleAnnotations: the published OVS-DPDK example as a NAD
// (no name: Multus injects the NAD's), a pod with a hostPath shared-dir
// volume and a MAC in its selection, networked by the real Multus. The pod
// gets the plugin's config data in its annotations, and Multus's
// network-status the device-info the plugin published; CHECK passes; DEL
// through Multus takes back exactly that.
func TestOVSExampleAnnotations(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-ovs", ovsNAD(bed.kube.PluginKubeconfig, "br-mt")); err != nil {
		t.Fatal(err)
	}
	// A deviceID in the selection is what makes Multus name a
	// CNIDeviceInfoFile for a delegate (it does so only for a device).
	s := newPod(t, "default", `[{"name": "userspace-ovs", "mac": "02:00:00:00:00:42", "deviceID": "vhu-net1"}]`, "hostPath", mapped)
	s.multusAdd(t)
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
	if e.IPResult == nil || len(e.IPResult.Interfaces) != 1 || e.IPResult.Interfaces[0].Mac != "02:00:00:00:00:42" ||
		e.IPResult.Interfaces[0].Sandbox != s.ns.Path() {
		t.Errorf("config-data ipResult %+v: want net1 in the sandbox with the selection's MAC", e.IPResult)
	}
	if _, err := os.Stat(filepath.Join(volume, configdata.FileName(s.id, "net1"))); err != nil {
		t.Errorf("config-data file in the volume: %v", err)
	}

	// What only the real Multus shows: its network-status for the pod, the
	// cluster network first, then net1 with the MAC from the selection and
	// the plugin's device-info, read from the file Multus named.
	st := s.networkStatus(t)
	checkCluster(t, st)
	n, ok := st["default/userspace-ovs"]
	if !ok || n.Interface != "net1" || n.MAC != "02:00:00:00:00:42" || n.Default {
		t.Errorf("network-status entry of default/userspace-ovs %+v, want net1 with the selection's MAC (all: %+v)", n, st)
	}
	di := n.DeviceInfo
	if di == nil || di.Type != "vhost-user" || di.Version != "1.1.0" || di.VhostUser == nil || di.VhostUser.Mode != "server" ||
		di.VhostUser.Path != filepath.Join(mapped, sockName) {
		t.Errorf("network-status device-info %+v, want vhost-user server at %s", di, filepath.Join(mapped, sockName))
	}
	// Multus names it by "<namespace>/<NAD>", the slash made a dash.
	devPath := filepath.Join(multusDevInfoDir, "default-userspace-ovs-"+s.id+"_net1")
	if _, err := os.Stat(devPath); err != nil {
		t.Errorf("the device-info file Multus named: %v", err)
	}
	if !multusCacheEntry(s.id) {
		t.Errorf("Multus cached no delegates for the sandbox in %s", bed.multusCache)
	}
	s.multusCheck(t)

	s.multusDel(t)
	if entries, _ := s.annotation(t); len(entries) != 0 {
		t.Errorf("DEL left config-data entries %+v", entries)
	}
	if _, err := os.Stat(filepath.Join(volume, configdata.FileName(s.id, "net1"))); !os.IsNotExist(err) {
		t.Errorf("DEL left the config-data file: %v", err)
	}
	checkMultusDelClean(t, s, devPath)
}

// TestVPPExampleAnnotations: the published VPP example as a NAD, through
// the real Multus; the memif socket lands in the pod's volume, the
// annotation carries the slave side and the IPAM address, Multus's
// network-status the address and the memif role, path and mode. DEL
// through Multus releases the address and leaves nothing.
func TestVPPExampleAnnotations(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "memif-network", vppNAD(bed.kube.PluginKubeconfig)); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", `[{"name": "memif-network", "deviceID": "memif-net1"}]`, "hostPath", mapped)
	s.multusAdd(t)
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
	leases := allocations(filepath.Join(bed.root, "ipam"), "memif-network")
	if len(leases) != 1 || !strings.HasPrefix(leases[0], "172.22.0.") {
		t.Fatalf("host-local leases %v, want one address of 172.22.0.0/24", leases)
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
	if e.IPResult == nil || len(e.IPResult.IPs) != 1 || e.IPResult.IPs[0].Address.IP.String() != leases[0] {
		t.Errorf("config-data ipResult %+v, want the leased address %s", e.IPResult, leases[0])
	}
	ns := s.networkStatus(t)
	checkCluster(t, ns)
	n := ns["default/memif-network"]
	if n.Interface != "net1" || len(n.IPs) != 1 || n.IPs[0] != leases[0] {
		t.Errorf("network-status entry %+v, want net1 with the leased address %s (all: %+v)", n, leases[0], ns)
	}
	if di := n.DeviceInfo; di == nil || di.Type != "memif" || di.Memif == nil || di.Memif.Role != "slave" || di.Memif.Mode != "ethernet" ||
		di.Memif.Path != filepath.Join(mapped, sockName) {
		t.Errorf("network-status device-info %+v, want the memif slave at %s", di, filepath.Join(mapped, sockName))
	}
	s.multusCheck(t)
	s.multusDel(t)
	if entries, _ := s.annotation(t); len(entries) != 0 {
		t.Errorf("DEL left config-data entries %+v", entries)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("DEL left the memif socket: %v", err)
	}
	if a := allocations(filepath.Join(bed.root, "ipam"), "memif-network"); len(a) != 0 {
		t.Errorf("DEL left host-local leases %v", a)
	}
	if st, err := bed.vpp.State(); err != nil {
		t.Fatal(err)
	} else if i, ok := st.ByTag(vpp.OwnerTag(s.id, "net1")); ok {
		t.Errorf("DEL left the memif in VPP: %+v", i)
	}
	checkMultusDelClean(t, s, filepath.Join(multusDevInfoDir, "default-memif-network-"+s.id+"_net1"))
}

// TestTenConcurrentAttachments: ten attachments of one pod added at once
// from ten plugin processes all end up in the annotation (no lost
// updates); DEL of one removes exactly its entry. Direct calls: Multus
// runs a pod's delegates one after another, so it cannot make the plugin
// processes race each other for the pod's annotation.
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
// container id and network namespace, same interface) and the old DEL has
// not run yet: the new ADD through Multus replaces the old entry instead of
// adding a second one, and the old sandbox's DEL, coming late, leaves the
// new one's entry.
func TestStaleSandboxEntryReplaced(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-stale", ovsNAD(bed.kube.PluginKubeconfig, "br-stale")); err != nil {
		t.Fatal(err)
	}
	old := newPod(t, "default", "userspace-stale", "hostPath", mapped)
	old.multusAdd(t)
	s := old.newSandbox(t)
	s.multusAdd(t)
	entries, _ := s.annotation(t)
	if len(entries) != 1 || entries[0].ContainerID != s.id {
		t.Errorf("entries %+v: want only the new sandbox's", entries)
	}
	old.multusDel(t)
	if entries, _ := s.annotation(t); len(entries) != 1 || entries[0].ContainerID != s.id {
		t.Errorf("the old sandbox's DEL changed the new one's entry: %+v", entries)
	}
	if ovsPorts(t, old.id) != 0 || ovsPorts(t, s.id) != 1 {
		t.Errorf("after the old sandbox's DEL: %d ports of the old, %d of the new, want 0 and 1", ovsPorts(t, old.id), ovsPorts(t, s.id))
	}
	s.multusDel(t)
	if entries, _ := s.annotation(t); len(entries) != 0 {
		t.Errorf("entries left: %+v", entries)
	}
	checkMultusDelClean(t, old)
	checkMultusDelClean(t, s)
}

// TestDelAfterPodDeleted: the pod object is gone before DEL (the usual
// order on a node); Multus finds no pod, deletes from its cache and the
// plugin still removes everything on the node.
func TestDelAfterPodDeleted(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-gone", ovsNAD(bed.kube.PluginKubeconfig, "br-gone")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", `[{"name": "userspace-gone", "deviceID": "vhu-net1"}]`, "hostPath", mapped)
	s.multusAdd(t)
	if ovsPorts(t, s.id) != 1 {
		t.Fatalf("want one port after ADD")
	}
	if err := bed.kube.DeletePod(ctx(), "default", s.pod.Name); err != nil {
		t.Fatal(err)
	}
	s.multusDel(t)
	checkMultusDelClean(t, s, filepath.Join(multusDevInfoDir, "default-userspace-gone-"+s.id+"_net1"))
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
// leaves nothing; DEL does not need the API. Direct calls: Multus reports
// a delegate's failure under its own error code, and it caches the NAD's
// config at ADD, so it cannot delete with another kubeconfig than it
// added with. Through Multus, the plugin's message reaches the runtime
// and Multus's rollback leaves nothing either.
func TestAPIUnreachable(t *testing.T) {
	dead := deadKubeconfig(t)
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-dead", ovsNAD(dead, "br-dead")); err != nil {
		t.Fatal(err)
	}
	t.Run("through Multus", func(t *testing.T) {
		s := newPod(t, "default", "userspace-dead", "hostPath", mapped)
		_, err := s.tryMultusAdd()
		if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), s.pod.Name) {
			t.Errorf("Multus ADD with the plugin's API down: %v, want the plugin's error naming the pod and the API", err)
		}
		if ovsPorts(t, s.id) != 0 || len(records(t, s.id)) != 0 {
			t.Errorf("failed ADD left a port or record")
		}
		if a := allocations(bed.clusterIPAM, "cluster"); len(a) != 0 {
			t.Errorf("Multus's rollback left cluster-network leases %v", a)
		}
		// The runtime deletes a sandbox whose ADD failed.
		s.multusDel(t)
		checkMultusDelClean(t, s)
	})
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
// one by that name now: ADD refuses, naming both. Direct call: Multus
// makes the same check before it calls any delegate (shown first), so the
// plugin's own check, for other runtimes and for a pod replaced between
// Multus's read and the plugin's, is reached only directly.
func TestUIDMismatch(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-uid", ovsNAD(bed.kube.PluginKubeconfig, "br-uid")); err != nil {
		t.Fatal(err)
	}
	t.Run("Multus refuses first", func(t *testing.T) {
		s := newPod(t, "default", "userspace-uid", "hostPath", mapped)
		s.uid = "00000000-1111-2222-3333-444444444444"
		_, err := s.tryMultusAdd()
		if err == nil || !strings.Contains(err.Error(), "expected pod UID") {
			t.Errorf("Multus ADD with another pod's UID: %v, want Multus's UID error", err)
		}
		if ovsPorts(t, s.id) != 0 || len(allocations(bed.clusterIPAM, "cluster")) != 0 {
			t.Errorf("Multus called a delegate despite the UID mismatch")
		}
		s.multusDel(t)
	})
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

// TestRBACDenied: an identity without the ClusterRole gets a clear error
// (its CNI code, which Multus would replace, hence a direct call).
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
// through a short link, removed with the attachment by DEL through Multus.
func TestEmptyDirVolume(t *testing.T) {
	if err := bed.kube.CreateNAD(ctx(), "default", "userspace-empty", ovsNAD(bed.kube.PluginKubeconfig, "br-empty")); err != nil {
		t.Fatal(err)
	}
	s := newPod(t, "default", "userspace-empty", "emptyDir", "/vhu")
	s.multusAdd(t)
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
	s.multusDel(t)
	if _, err := os.Lstat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("DEL left the short link %s", filepath.Dir(path))
	}
	checkMultusDelClean(t, s)
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
