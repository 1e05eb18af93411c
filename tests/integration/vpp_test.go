package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	vppmemif "go.fd.io/govpp/binapi/memif"
	"sigs.k8s.io/yaml"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/vpp"
	"github.com/userspace-cni/userspace/tests/testbed"
	"github.com/userspace-cni/userspace/tests/vppstub"
)

// The notes' VPP layout on the host.
const (
	vppBase      = "/var/run/vpp/cni"
	vppSharedDir = vppBase + "/shared"
)

// vppExample is the published VPP example, unchanged: memif master in
// bridge domain 4 (the deprecated bridgeId), the pod side a memif slave.
func vppExample() map[string]any {
	return map[string]any{
		"host": map[string]any{"engine": "vpp", "iftype": "memif", "netType": "bridge",
			"memif": map[string]any{"role": "master", "mode": "ethernet"}, "bridge": map[string]any{"bridgeId": 4}},
		"container": map[string]any{"engine": "vpp", "iftype": "memif", "netType": "interface",
			"memif": map[string]any{"role": "slave", "mode": "ethernet"}},
		"ipam": map[string]any{"type": "host-local", "subnet": "172.22.0.0/24", "rangeStart": "172.22.0.2",
			"rangeEnd": "172.22.0.254", "routes": []any{map[string]any{"dst": "0.0.0.0/0"}}, "gateway": "172.22.0.1",
			"dataDir": h.ipamDir},
	}
}

// vppIface returns the stand-in's interface tagged for the attachment.
func vppIface(t *testing.T, id, ifName string) (vppstub.Interface, bool) {
	t.Helper()
	tag := vpp.OwnerTag(id, ifName)
	for _, i := range h.vpp.Interfaces() {
		if i.Tag == tag {
			return i, true
		}
	}
	return vppstub.Interface{}, false
}

func vppBridge(id uint32) (vppstub.BridgeDomain, bool) {
	for _, b := range h.vpp.BridgeDomains() {
		if b.ID == id {
			return b, true
		}
	}
	return vppstub.BridgeDomain{}, false
}

// vppSnapshot is the stand-in's state that a failed call must leave as it
// found it.
func vppSnapshot() string {
	var b strings.Builder
	for _, i := range h.vpp.Interfaces() {
		fmt.Fprintf(&b, "if %d %s %q\n", i.SwIfIndex, i.Name, i.Tag)
	}
	for _, s := range h.vpp.SocketFiles() {
		fmt.Fprintf(&b, "sock %d %s\n", s.ID, s.Filename)
	}
	for _, d := range h.vpp.BridgeDomains() {
		fmt.Fprintf(&b, "bd %d %v\n", d.ID, d.Members)
	}
	return b.String()
}

// assertVPPClean checks nothing of the attachment is left: interface,
// socket registration, socket file, notes directory, record.
func assertVPPClean(t *testing.T, p *pod, ifName string) {
	t.Helper()
	if i, ok := vppIface(t, p.id, ifName); ok {
		t.Errorf("VPP interface left: %+v", i)
	}
	sock := filepath.Join(vppSharedDir, "memif-"+p.id[:12]+"-"+ifName+".sock")
	for _, s := range h.vpp.SocketFiles() {
		if s.Filename == sock {
			t.Errorf("memif socket registration left: %+v", s)
		}
	}
	for _, f := range []string{sock, filepath.Join(vppSharedDir, configdata.FileName(p.id, ifName))} {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", f, err)
		}
	}
	assertClean(t, p, filepath.Join(vppBase, p.id))
}

// TestVPPLifecycleAllVersions runs the published VPP example through ADD,
// CHECK, STATUS, GC and DEL for every spec version against the stand-in,
// checking what VPP holds, the notes' files and that DEL leaves nothing.
func TestVPPLifecycleAllVersions(t *testing.T) {
	for _, v := range allVersions {
		t.Run(v, func(t *testing.T) {
			p := newPod(t)
			list := confList(t, v, "memif-network", vppExample())
			rt := p.rt("net1")
			res, err := h.cni.AddNetworkList(ctx(), list, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if res.Version() != v {
				t.Fatalf("result version %s, want %s", res.Version(), v)
			}
			sock := filepath.Join(vppSharedDir, "memif-"+p.id[:12]+"-net1.sock")
			r100, err := types100.NewResultFromResult(res)
			if err != nil {
				t.Fatal(err)
			}
			if len(r100.IPs) != 1 || !strings.HasPrefix(r100.IPs[0].Address.String(), "172.22.0.") {
				t.Errorf("result IPs %v, want one address from 172.22.0.0/24", r100.IPs)
			}
			if v == "1.1.0" {
				if len(r100.Interfaces) != 1 || r100.Interfaces[0].SocketPath != sock {
					t.Errorf("1.1.0 result interfaces %+v, want socketPath %s", r100.Interfaces, sock)
				}
			}

			// VPP: a tagged master memif on the socket, up, in bridge domain 4.
			i, ok := vppIface(t, p.id, "net1")
			if !ok {
				t.Fatalf("no VPP interface tagged %s: %+v", vpp.OwnerTag(p.id, "net1"), h.vpp.Interfaces())
			}
			if !i.AdminUp || !i.InBridgeDomain || i.BridgeDomain != 4 || i.DevType != "memif" {
				t.Errorf("VPP interface %+v: want an admin-up memif in bridge domain 4", i)
			}
			var m vppstub.Memif
			for _, mm := range h.vpp.Memifs() {
				if mm.SwIfIndex == i.SwIfIndex {
					m = mm
				}
			}
			if m.Role != vppmemif.MEMIF_ROLE_API_MASTER || m.Mode != vppmemif.MEMIF_MODE_API_ETHERNET {
				t.Errorf("memif %+v: want master/ethernet", m)
			}
			registered := false
			for _, s := range h.vpp.SocketFiles() {
				registered = registered || s.ID == m.SocketID && s.Filename == sock
			}
			if !registered {
				t.Errorf("memif socket id %d is not registered as %s: %+v", m.SocketID, sock, h.vpp.SocketFiles())
			}
			if bd, ok := vppBridge(4); !ok || !bd.Flood || !bd.UuFlood || !bd.Forward || !bd.Learn || bd.Tag != vpp.BridgeTag {
				t.Errorf("bridge domain 4 %+v (exists %v): want flood, uu-flood, forward, learn, tagged by the plugin", bd, ok)
			}
			fi, err := os.Stat(sock)
			if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o666 {
				t.Errorf("memif socket %s: %v (mode %v), want a 0666 socket", sock, err, fi)
			}

			// The pod's data: config data, and the notes' files.
			cd := readConfigData(t, vppSharedDir, p.id, "net1")
			if cd.Config.Memif.Role != "slave" || cd.Config.Memif.Mode != "ethernet" ||
				cd.Config.Memif.Socketfile != "memif-"+p.id[:12]+"-net1.sock" || cd.Name != "memif-network" {
				t.Errorf("config data container side %+v", cd.Config)
			}
			notesDir := filepath.Join(vppBase, p.id)
			var remote netconf.NetConf
			readJSON(t, filepath.Join(notesDir, "remote-net1.json"), &remote)
			if remote.IPAM.Type != "" || remote.Container.Memif.Role != "slave" || remote.Container.Memif.Socketfile != cd.Config.Memif.Socketfile {
				t.Errorf("remote-net1.json: IPAM type %q (want blank), container memif %+v", remote.IPAM.Type, remote.Container.Memif)
			}
			var add struct {
				ContainerID string           `json:"containerId"`
				IfName      string           `json:"ifName"`
				IPResult    *types100.Result `json:"ipResult"`
			}
			readJSON(t, filepath.Join(notesDir, "addData-net1.json"), &add)
			if add.ContainerID != p.id || add.IfName != "net1" || add.IPResult == nil || len(add.IPResult.IPs) != 1 ||
				add.IPResult.IPs[0].Address.String() != r100.IPs[0].Address.String() {
				t.Errorf("addData-net1.json %+v does not carry the attachment's address", add)
			}

			checkHealthy(t, v, list, rt, p, func() bool { _, ok := vppIface(t, p.id, "net1"); return ok })

			if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			assertVPPClean(t, p, "net1")
			if _, ok := vppBridge(4); ok {
				t.Errorf("bridge domain 4 was created by the plugin and is empty: it should be gone")
			}
			if a := ipamAllocations(t); len(a) != 0 {
				t.Errorf("IPAM allocations left: %v", a)
			}
			if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
				t.Fatalf("repeated DEL: %v", err)
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestVPPDataPath proves the socket and config data handed to the pod work:
// for each of two pods in bridge domain 4, a real dpdk-testpmd with the
// memif PMD is started from the published config data only (socket
// directory + socketfile, role, mode), connects to VPP's master memif and
// exchanges packets with the other pod through the bridge domain.
func TestVPPDataPath(t *testing.T) {
	list := confList(t, "1.0.0", "memif-network", vppExample())
	var apps []*testbed.TestPMD
	var ifaces []vppstub.Interface
	for i, mode := range []string{"txonly", "rxonly"} {
		p := newPod(t)
		rt := p.rt("net1")
		if _, err := h.cni.AddNetworkList(ctx(), list, rt); err != nil {
			t.Fatalf("ADD: %v", err)
		}
		t.Cleanup(func() {
			if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
				t.Errorf("DEL: %v", err)
			}
			assertVPPClean(t, p, "net1")
		})
		cd := readConfigData(t, vppSharedDir, p.id, "net1")
		if cd.Config.Memif.Mode != "ethernet" {
			t.Fatalf("config data mode %q", cd.Config.Memif.Mode)
		}
		// The pod reads the notes' files the plugin left for it.
		vdevs, err := testbed.DPDKArgs(h.binDir, "-notes-dir", filepath.Join(vppBase, p.id), "-notes-socket-dir", vppSharedDir)
		if err != nil {
			t.Fatal(err)
		}
		if want := "--vdev=net_memif0,role=client,socket=" + filepath.Join(vppSharedDir, cd.Config.Memif.Socketfile) + ",socket-abstract=no"; len(vdevs) != 1 || vdevs[0] != want {
			t.Errorf("dpdk-args = %q, want %q", vdevs, want)
		}
		app, err := testbed.StartTestPMD(testbed.TestPMDOptions{
			VDevs:       vdevs,
			ForwardMode: mode,
			NetNS:       p.ns.Path(),
		})
		if err != nil {
			t.Fatalf("testpmd %d: %v", i, err)
		}
		t.Cleanup(func() { _ = app.Stop() })
		apps = append(apps, app)
		vi, _ := vppIface(t, p.id, "net1")
		ifaces = append(ifaces, vi)
	}
	st, err := apps[1].WaitRx(1000, 30*time.Second)
	if err != nil {
		t.Fatalf("receiver got no packets through the VPP bridge domain: %v (sender %+v)\n%s", err, must(apps[0].Stats()), apps[1].Output())
	}
	tx, rx := h.vpp.Counters(ifaces[0].SwIfIndex), h.vpp.Counters(ifaces[1].SwIfIndex)
	if tx.RxPackets == 0 || rx.TxPackets == 0 {
		t.Errorf("VPP counters: sender-side rx %d, receiver-side tx %d: want both > 0", tx.RxPackets, rx.TxPackets)
	}
	t.Logf("receiver testpmd rx %d packets; VPP forwarded %d", st.RxPackets, rx.TxPackets)
}

func must(s testbed.PortStats, _ error) testbed.PortStats { return s }

// TestVPPInterfaceMode: netType "interface" puts the IPAM address on the
// host-side interface (the original never did) and joins no bridge domain.
func TestVPPInterfaceMode(t *testing.T) {
	conf := vppExample()
	conf["host"].(map[string]any)["netType"] = "interface"
	delete(conf["host"].(map[string]any), "bridge")
	conf["ipam"] = hostLocal("172.23.0.0/24")
	list := confList(t, "1.0.0", "memif-if", conf)
	p := newPod(t)
	res, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1"))
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	r, _ := types100.NewResultFromResult(res)
	i, ok := vppIface(t, p.id, "net1")
	if !ok || i.InBridgeDomain || len(i.Addresses) != 1 || i.Addresses[0].String() != r.IPs[0].Address.String() {
		t.Errorf("VPP interface %+v: want address %v and no bridge domain", i, r.IPs[0].Address.String())
	}
	if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertVPPClean(t, p, "net1")
}

// TestVPPVhostUser: vhost-user on VPP (a stub in the original), VPP as the
// server creating the socket in the pod's directory, in a bridge domain.
func TestVPPVhostUser(t *testing.T) {
	conf := map[string]any{
		"sharedDir": h.shared,
		"host": map[string]any{"engine": "vpp", "iftype": "vhostuser", "netType": "bridge",
			"vhost": map[string]any{"mode": "server"}, "bridge": map[string]any{"bridgeName": "7"}},
	}
	list := confList(t, "1.1.0", "vhost-vpp", conf)
	p := newPod(t)
	res, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1"))
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	sock := filepath.Join(h.shared, p.id[:12], p.id[:12]+"-net1")
	r, _ := types100.NewResultFromResult(res)
	if r.Interfaces[0].SocketPath != sock {
		t.Errorf("socketPath %q, want %q", r.Interfaces[0].SocketPath, sock)
	}
	i, ok := vppIface(t, p.id, "net1")
	if !ok || i.DevType != "vhost-user" || i.BridgeDomain != 7 || !i.AdminUp {
		t.Fatalf("VPP interface %+v: want an admin-up vhost-user in bridge domain 7", i)
	}
	found := false
	for _, v := range h.vpp.VhostUsers() {
		found = found || v.SwIfIndex == i.SwIfIndex && v.Server && v.Socket == sock
	}
	if !found {
		t.Errorf("vhost-user interfaces %+v: want server on %s", h.vpp.VhostUsers(), sock)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("VPP's server socket %s: %v", sock, err)
	}
	if err := h.cni.CheckNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	cd := readConfigData(t, filepath.Join(h.shared, p.id[:12]), p.id, "net1")
	if cd.Config.Vhost.Mode != "client" {
		t.Errorf("pod side vhost mode %q, want client", cd.Config.Vhost.Mode)
	}
	if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if _, ok := vppIface(t, p.id, "net1"); ok {
		t.Errorf("vhost-user interface left in VPP")
	}
	assertClean(t, p, filepath.Join(h.shared, p.id[:12]))
}

// TestVPPBadInput: each bad configuration gets a clear error naming the
// field and value, and leaves VPP, the files, records and IPAM untouched.
func TestVPPBadInput(t *testing.T) {
	type mod func(host map[string]any)
	cases := []struct {
		name string
		mod  mod
		want string
	}{
		{"non-numeric bridgeName", func(h map[string]any) { h["bridge"] = map[string]any{"bridgeName": "br-4"} }, `host.bridge.bridgeName "br-4"`},
		{"bridge domain 0", func(h map[string]any) { h["bridge"] = map[string]any{"bridgeName": "0"} }, `host.bridge.bridgeName "0"`},
		{"bridgeId 0", func(h map[string]any) { h["bridge"] = map[string]any{"bridgeId": 0} }, "host.bridge.bridgeId 0"},
		{"unknown mode", func(h map[string]any) { h["memif"] = map[string]any{"role": "master", "mode": "tun"} }, `host.memif.mode "tun"`},
		{"unknown role", func(h map[string]any) { h["memif"] = map[string]any{"role": "leader"} }, `host.memif.role "leader"`},
		{"long secret", func(h map[string]any) {
			h["memif"] = map[string]any{"role": "master", "secret": strings.Repeat("s", 25)}
		}, "host.memif.secret"},
		{"ring size", func(h map[string]any) { h["memif"] = map[string]any{"role": "master", "ringSize": 1000} }, "host.memif.ringSize 1000"},
		{"socketfile slash", func(h map[string]any) { h["memif"] = map[string]any{"socketfile": "../../etc/x"} }, `host.memif.socketfile "../../etc/x"`},
		{"socketfile dotdot", func(h map[string]any) { h["memif"] = map[string]any{"socketfile": "a..b"} }, `host.memif.socketfile "a..b"`},
		{"api socket outside policy", func(h map[string]any) { h["vppApiSocket"] = "/tmp/evil.sock" }, `host.vppApiSocket "/tmp/evil.sock"`},
	}
	before := vppSnapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := vppExample()
			c.mod(conf["host"].(map[string]any))
			p := newPod(t)
			_, err := h.cni.AddNetworkList(ctx(), confList(t, "1.0.0", "memif-bad", conf), p.rt("net1"))
			e := cniError(t, err)
			if !strings.Contains(e.Msg, c.want) {
				t.Errorf("error %q does not name %s", e.Msg, c.want)
			}
			assertVPPClean(t, p, "net1")
			if a := ipamAllocations(t); len(a) != 0 {
				t.Errorf("IPAM allocations left: %v", a)
			}
		})
	}
	if after := vppSnapshot(); after != before {
		t.Errorf("bad input changed VPP:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// TestVPPUnavailable: VPP down, or a VPP that does not speak the messages
// the plugin uses, fails ADD with a clear error (CNI 50 for STATUS), and
// nothing is left behind.
func TestVPPUnavailable(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		withPolicy(t, func(p *policy.Policy) { p.VPPAPISocket = filepath.Join(h.root, "no-vpp.sock") })
		p := newPod(t)
		list := confList(t, "1.1.0", "memif-down", vppExample())
		e := cniError(t, func() error { _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); return err }())
		if !strings.Contains(e.Msg, "no-vpp.sock") || e.Code != types.ErrPluginNotAvailable {
			t.Errorf("ADD with VPP down: code %d %q, want 50 naming the socket", e.Code, e.Msg)
		}
		assertVPPClean(t, p, "net1")
		if a := ipamAllocations(t); len(a) != 0 {
			t.Errorf("IPAM allocations left: %v", a)
		}
		if e := cniError(t, h.cni.GetStatusNetworkList(ctx(), list)); e.Code != types.ErrPluginNotAvailable {
			t.Errorf("STATUS with VPP down: code %d, want 50", e.Code)
		}
	})
	t.Run("incompatible", func(t *testing.T) {
		sock := filepath.Join(h.root, "old-vpp.sock")
		old, err := vppstub.Start(vppstub.Options{Socket: sock, Incompatible: []string{"memif_create_v2", "memif_dump"}})
		if err != nil {
			t.Fatal(err)
		}
		defer old.Stop()
		withPolicy(t, func(p *policy.Policy) { p.VPPAPISocket = sock })
		p := newPod(t)
		list := confList(t, "1.1.0", "memif-old", vppExample())
		e := cniError(t, func() error { _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); return err }())
		if !strings.Contains(e.Msg, "memif_create_v2") || !strings.Contains(e.Msg, "memif_dump") {
			t.Errorf("ADD against an incompatible VPP: %q does not name the messages", e.Msg)
		}
		if len(old.Interfaces()) != 1 || len(old.BridgeDomains()) > 1 {
			t.Errorf("incompatible VPP was changed: %+v %+v", old.Interfaces(), old.BridgeDomains())
		}
		assertVPPClean(t, p, "net1")
		if e := cniError(t, h.cni.GetStatusNetworkList(ctx(), list)); e.Code != types.ErrPluginNotAvailable || !strings.Contains(e.Msg, "memif_create_v2") {
			t.Errorf("STATUS against an incompatible VPP: %d %q", e.Code, e.Msg)
		}
	})
}

// TestVPPRestart: VPP restarted and lost its state; CHECK reports it, DEL
// still succeeds and removes the socket file VPP left behind, and a new ADD
// on the same path works.
func TestVPPRestart(t *testing.T) {
	list := confList(t, "1.1.0", "memif-network", vppExample())
	p := newPod(t)
	rt := p.rt("net1")
	if _, err := h.cni.AddNetworkList(ctx(), list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if err := h.vpp.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := h.cni.CheckNetworkList(ctx(), list, rt); err == nil || !strings.Contains(err.Error(), "no interface tagged") {
		t.Errorf("CHECK after VPP lost the interface: %v, want a clear failure", err)
	}
	sock := filepath.Join(vppSharedDir, "memif-"+p.id[:12]+"-net1.sock")
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("the stand-in should leave the socket file after a restart, like VPP: %v", err)
	}
	if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
		t.Fatalf("DEL after VPP restart: %v", err)
	}
	assertVPPClean(t, p, "net1")
	if _, err := h.cni.AddNetworkList(ctx(), list, rt); err != nil {
		t.Fatalf("ADD again after restart: %v", err)
	}
	if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertVPPClean(t, p, "net1")
}

// TestVPPConcurrentAdds: concurrent ADDs into one bridge domain all
// succeed with distinct sockets (the original failed a third of them with
// duplicate socket ids), then concurrent DELs leave nothing.
func TestVPPConcurrentAdds(t *testing.T) {
	const n = 8
	list := confList(t, "1.0.0", "memif-network", vppExample())
	pods := newPods(t, n)
	run := func(verb string, f func(*pod) error) { concurrently(t, verb, pods, f) }
	run("ADD", func(p *pod) error { _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); return err })
	ids := map[uint32]bool{}
	for _, m := range h.vpp.Memifs() {
		ids[m.SocketID] = true
	}
	if bd, _ := vppBridge(4); len(bd.Members) != n || len(ids) < n {
		t.Errorf("bridge domain 4 has %d members and %d distinct socket ids, want %d", len(bd.Members), len(ids), n)
	}
	run("DEL", func(p *pod) error { return h.cni.DelNetworkList(ctx(), list, p.rt("net1")) })
	for _, p := range pods {
		assertVPPClean(t, p, "net1")
	}
	if _, ok := vppBridge(4); ok {
		t.Errorf("bridge domain 4 left after the last DEL")
	}
}

// TestVPPGC: GC removes attachments not in the valid list: one with a
// record, and an orphan VPP interface whose record was lost.
func TestVPPGC(t *testing.T) {
	list := confList(t, "1.1.0", "memif-network", vppExample())
	keep, stale, orphan := newPod(t), newPod(t), newPod(t)
	for _, p := range []*pod{keep, stale, orphan} {
		if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Fatalf("ADD: %v", err)
		}
	}
	if err := os.Remove(filepath.Join(h.stateDir, "attachments", orphan.id+"@net1.json")); err != nil {
		t.Fatal(err)
	}
	gc := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: keep.id, IfName: "net1"}}}
	if err := h.cni.GCNetworkList(ctx(), list, gc); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, ok := vppIface(t, keep.id, "net1"); !ok {
		t.Errorf("GC removed the valid attachment")
	}
	for _, p := range []*pod{stale, orphan} {
		if _, ok := vppIface(t, p.id, "net1"); ok {
			t.Errorf("GC left the stale attachment of %s", p.id[:12])
		}
		if _, err := os.Lstat(filepath.Join(vppSharedDir, "memif-"+p.id[:12]+"-net1.sock")); !os.IsNotExist(err) {
			t.Errorf("GC left the socket of %s", p.id[:12])
		}
	}
	if err := h.cni.DelNetworkList(ctx(), list, keep.rt("net1")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*pod{keep, stale} {
		assertVPPClean(t, p, "net1")
	}
	// The orphan's notes directory had no record to say it was the plugin's.
	_ = os.RemoveAll(filepath.Join(vppBase, orphan.id))
	h.ipamCleanup(t)
}

// ipamCleanup releases host-local allocations a test left on purpose.
func (hs *harness) ipamCleanup(t *testing.T) {
	t.Helper()
	for _, a := range ipamAllocations(t) {
		_ = os.Remove(a)
	}
}

// TestVPPNotesVerbatim: the application notes' VPP network exactly as
// examples/nad-vpp-memif.yaml carries it (host-local with its default data
// directory), through libcni as a runtime drives it: the socket and the
// pod's files land where the notes' pods look for them.
func TestVPPNotesVerbatim(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	config, err := kubeManifest(filepath.Join(root, "examples", "nad-vpp-memif.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	net, err := libcni.NetworkPluginConfFromBytes([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	p := newPod(t)
	rt := p.rt("net1")
	res, err := h.cni.AddNetwork(ctx(), net, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if res.Version() != "0.3.1" {
		t.Errorf("result version %s", res.Version())
	}
	sock := filepath.Join(vppSharedDir, "memif-"+p.id[:12]+"-net1.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("memif socket %s: %v", sock, err)
	}
	for _, f := range []string{"remote-net1.json", "addData-net1.json"} {
		if _, err := os.Stat(filepath.Join(vppBase, p.id, f)); err != nil {
			t.Errorf("notes file: %v", err)
		}
	}
	if i, ok := vppIface(t, p.id, "net1"); !ok || i.BridgeDomain != 4 {
		t.Errorf("VPP interface %+v (found %v)", i, ok)
	}
	if err := h.cni.DelNetwork(ctx(), net, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertVPPClean(t, p, "net1")
	if entries, _ := os.ReadDir("/var/lib/cni/networks/memif-network"); len(entries) > 2 {
		t.Errorf("host-local allocations left in /var/lib/cni/networks/memif-network: %d entries", len(entries))
	}
}

// kubeManifest returns a NetworkAttachmentDefinition file's spec.config.
func kubeManifest(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var nad struct {
		Spec struct {
			Config string `json:"config"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &nad); err != nil || nad.Spec.Config == "" {
		return "", fmt.Errorf("%s: no spec.config (%v)", path, err)
	}
	return nad.Spec.Config, nil
}

// TestVPPManySockets: more memif sockets than the original survived (it
// crashed at the 21st), each its own registration, all removed again.
func TestVPPManySockets(t *testing.T) {
	const n = 30
	list := confList(t, "1.0.0", "memif-network", vppExample())
	pods := newPods(t, n)
	for i := range pods {
		if _, err := h.cni.AddNetworkList(ctx(), list, pods[i].rt("net1")); err != nil {
			t.Fatalf("ADD %d: %v", i+1, err)
		}
	}
	ids := map[uint32]bool{}
	for _, s := range h.vpp.SocketFiles() {
		if strings.HasPrefix(s.Filename, vppSharedDir+"/memif-") {
			ids[s.ID] = true
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct memif socket registrations, want %d", len(ids), n)
	}
	for _, p := range pods {
		if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		assertVPPClean(t, p, "net1")
	}
}
