package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"sigs.k8s.io/yaml"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/vpp"
	"github.com/userspace-cni/userspace/tests/testbed"
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

// vppState reads what the host VPP holds, over its API.
func vppState(t *testing.T) *testbed.VPPState {
	t.Helper()
	st, err := h.vpp.State()
	if err != nil {
		t.Fatalf("reading the host VPP: %v", err)
	}
	return st
}

// vppIface returns the host VPP's interface tagged for the attachment.
func vppIface(t *testing.T, id, ifName string) (testbed.VPPInterface, bool) {
	t.Helper()
	return vppState(t).ByTag(vpp.OwnerTag(id, ifName))
}

func vppBridge(t *testing.T, id uint32) (testbed.VPPBridgeDomain, bool) {
	t.Helper()
	return vppState(t).Bridge(id)
}

// vppSnapshot is the host VPP's state that a failed call must leave as it
// found it.
func vppSnapshot(t *testing.T) string {
	t.Helper()
	return vppState(t).String()
}

// memifSock is where the notes put a pod's memif socket.
func memifSock(p *pod, ifName string) string {
	return filepath.Join(vppSharedDir, "memif-"+p.id[:12]+"-"+ifName+".sock")
}

// assertVPPClean checks nothing of the attachment is left: interface,
// socket registration, socket file, notes directory, record.
func assertVPPClean(t *testing.T, p *pod, ifName string) {
	t.Helper()
	st := vppState(t)
	if i, ok := st.ByTag(vpp.OwnerTag(p.id, ifName)); ok {
		t.Errorf("VPP interface left: %+v", i)
	}
	sock := memifSock(p, ifName)
	for id, f := range st.MemifSockets {
		if f == sock {
			t.Errorf("memif socket registration %d left: %s", id, f)
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
// CHECK, STATUS, GC and DEL for every spec version against a real VPP,
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
			st := vppState(t)
			i, ok := st.ByTag(vpp.OwnerTag(p.id, "net1"))
			if !ok {
				t.Fatalf("no VPP interface tagged %s:\n%s", vpp.OwnerTag(p.id, "net1"), st)
			}
			if !i.AdminUp || i.BridgeDomain != 4 || i.DevType != "memif" {
				t.Errorf("VPP interface %+v: want an admin-up memif in bridge domain 4", i)
			}
			m, ok := st.Memif(i.SwIfIndex)
			if !ok || !m.Master || !m.Ethernet {
				t.Errorf("memif %+v (found %v): want master/ethernet", m, ok)
			}
			if st.MemifSockets[m.SocketID] != sock {
				t.Errorf("memif socket id %d is registered as %q, want %s", m.SocketID, st.MemifSockets[m.SocketID], sock)
			}
			if bd, ok := st.Bridge(4); !ok || !bd.Flood || !bd.UuFlood || !bd.Forward || !bd.Learn || bd.Tag != vpp.BridgeTag {
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
			if _, ok := vppBridge(t, 4); ok {
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
	var ifaces []testbed.VPPInterface
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
	// VPP's own counters ("show interface"): it received from the sender's
	// memif and sent out of the receiver's.
	c, err := h.vpp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	tx, rx := c[ifaces[0].Name], c[ifaces[1].Name]
	if tx["rx packets"] == 0 || rx["tx packets"] == 0 {
		t.Errorf("VPP counters: sender side %v, receiver side %v: want rx packets and tx packets > 0", tx, rx)
	}
	t.Logf("receiver testpmd rx %d packets; VPP forwarded %d", st.RxPackets, rx["tx packets"])
}

func must(s testbed.PortStats, _ error) testbed.PortStats { return s }

// startPodVPP starts a pod's own VPP in the pod's network namespace.
func startPodVPP(t *testing.T, p *pod) *testbed.VPP {
	t.Helper()
	v, err := testbed.StartVPP(testbed.VPPOptions{BaseDir: h.root, NetNS: p.ns.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil {
			t.Errorf("stopping the pod's VPP: %v", err)
		}
	})
	return v
}

func vppctl(t *testing.T, v *testbed.VPP, args ...string) string {
	t.Helper()
	out, err := v.Vppctl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitMemifUp waits until VPP v's memif named name has its link up.
func waitMemifUp(t *testing.T, v *testbed.VPP, name string) {
	t.Helper()
	if err := v.WaitMemifUp(name, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

func vppctlOrErr(v *testbed.VPP, args ...string) string {
	out, err := v.Vppctl(args...)
	if err != nil {
		return err.Error()
	}
	return out
}

// TestVPPInterfaceMode: netType "interface" puts the IPAM address on the
// host-side interface (the original never did) and joins no bridge domain;
// the pod's side (its own VPP, a memif slave on the published socket with an
// address of its own) reaches that address with ping.
func TestVPPInterfaceMode(t *testing.T) {
	conf := vppExample()
	conf["host"].(map[string]any)["netType"] = "interface"
	delete(conf["host"].(map[string]any), "bridge")
	conf["ipam"] = map[string]any{"type": "host-local", "subnet": "172.23.0.0/24", "rangeStart": "172.23.0.2",
		"rangeEnd": "172.23.0.99", "dataDir": h.ipamDir}
	list := confList(t, "1.0.0", "memif-if", conf)
	p := newPod(t)
	res, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1"))
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	addr := resultAddr(t, res)
	i, ok := vppIface(t, p.id, "net1")
	if !ok || i.BridgeDomain != 0 || len(i.Addresses) != 1 || i.Addresses[0] != addr {
		t.Errorf("VPP interface %+v: want address %v and no bridge domain", i, addr)
	}

	pv := startPodVPP(t, p)
	vppctl(t, pv, "create", "memif", "socket", "id", "1", "filename", memifSock(p, "net1"))
	vppctl(t, pv, "create", "interface", "memif", "socket-id", "1", "id", "0", "slave")
	vppctl(t, pv, "set", "interface", "ip", "address", "memif1/0", "172.23.0.200/24")
	vppctl(t, pv, "set", "interface", "state", "memif1/0", "up")
	waitMemifUp(t, pv, "memif1/0")
	sent, received, out, err := pv.Ping(addr.Addr(), 5)
	if err != nil || received == 0 {
		t.Errorf("ping %s from the pod's VPP: %d of %d answered, %v\n%s", addr.Addr(), received, sent, err, out)
	}
	t.Logf("ping %s from the pod's side: %d of %d answered", addr.Addr(), received, sent)
	if err := pv.Stop(); err != nil {
		t.Error(err)
	}

	if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertVPPClean(t, p, "net1")
}

// TestVPPVhostUser: vhost-user on VPP (a stub in the original) in both
// modes, in a bridge domain: VPP as the server creating the socket in the
// pod's directory, or as the client of the pod app's socket. Two pods each
// run dpdk-testpmd with a virtio-user port set up from the published config
// data, and packets cross VPP's bridge domain.
func TestVPPVhostUser(t *testing.T) {
	for _, tc := range []struct {
		mode, podMode, bd string
	}{{"server", "client", "7"}, {"client", "server", "8"}} {
		t.Run(tc.mode, func(t *testing.T) {
			conf := map[string]any{
				"sharedDir": h.shared,
				"host": map[string]any{"engine": "vpp", "iftype": "vhostuser", "netType": "bridge",
					"vhost": map[string]any{"mode": tc.mode}, "bridge": map[string]any{"bridgeName": tc.bd}},
			}
			list := confList(t, "1.1.0", "vhost-vpp-"+tc.mode, conf)
			pods := newPods(t, 2)
			var names []string
			for _, p := range pods {
				rt := p.rt("net1")
				res, err := h.cni.AddNetworkList(ctx(), list, rt)
				if err != nil {
					t.Fatalf("ADD: %v", err)
				}
				dir := filepath.Join(h.shared, p.id[:12])
				t.Cleanup(func() {
					if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
						t.Errorf("DEL: %v", err)
					}
					if _, ok := vppIface(t, p.id, "net1"); ok {
						t.Errorf("vhost-user interface left in VPP")
					}
					assertClean(t, p, dir)
				})
				sock := filepath.Join(dir, p.id[:12]+"-net1")
				r, _ := types100.NewResultFromResult(res)
				if r.Interfaces[0].SocketPath != sock {
					t.Errorf("socketPath %q, want %q", r.Interfaces[0].SocketPath, sock)
				}
				st := vppState(t)
				i, ok := st.ByTag(vpp.OwnerTag(p.id, "net1"))
				if !ok || fmt.Sprint(i.BridgeDomain) != tc.bd || !i.AdminUp {
					t.Fatalf("VPP interface %+v: want an admin-up interface in bridge domain %s\n%s", i, tc.bd, st)
				}
				found := false
				for _, v := range st.Vhosts {
					found = found || v.SwIfIndex == i.SwIfIndex && v.Server == (tc.mode == "server") && v.Socket == sock
				}
				if !found {
					t.Errorf("vhost-user interfaces %+v: want %s on %s", st.Vhosts, tc.mode, sock)
				}
				if tc.mode == "server" {
					if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
						t.Errorf("VPP's server socket %s: %v", sock, err)
					}
				}
				if err := h.cni.CheckNetworkList(ctx(), list, rt); err != nil {
					t.Errorf("CHECK: %v", err)
				}
				if cd := readConfigData(t, dir, p.id, "net1"); cd.Config.Vhost.Mode != tc.podMode {
					t.Errorf("pod side vhost mode %q, want %s", cd.Config.Vhost.Mode, tc.podMode)
				}
				names = append(names, i.Name)
			}
			// The pods' apps, from the config data only: a virtio-user port
			// on the socket, as client or server.
			var apps []*testbed.TestPMD
			for i, mode := range []string{"rxonly", "txonly"} {
				vdevs, err := testbed.DPDKArgs(h.binDir, "-dir", filepath.Join(h.shared, pods[i].id[:12]), "-if", "net1")
				if err != nil {
					t.Fatal(err)
				}
				app, err := testbed.StartTestPMD(testbed.TestPMDOptions{VDevs: vdevs, ForwardMode: mode, NetNS: pods[i].ns.Path(), NoWait: true})
				if err != nil {
					t.Fatalf("testpmd %q: %v", vdevs, err)
				}
				t.Cleanup(func() { _ = app.Stop() })
				apps = append(apps, app)
			}
			for _, app := range apps {
				if err := app.WaitReady(60 * time.Second); err != nil {
					t.Fatalf("%v\nVPP:\n%s", err, vppctlOrErr(h.vpp, "show", "vhost-user"))
				}
			}
			if _, err := apps[0].WaitRx(1, 60*time.Second); err != nil {
				t.Fatalf("no packets crossed VPP's bridge domain %s: %v\nsender:\n%s", tc.bd, err, apps[1].Output())
			}
			c, err := h.vpp.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if c[names[1]]["rx packets"] == 0 || c[names[0]]["tx packets"] == 0 {
				t.Errorf("VPP counters: sender side %v, receiver side %v", c[names[1]], c[names[0]])
			}
		})
	}
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
	before := vppSnapshot(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := vppExample()
			c.mod(conf["host"].(map[string]any))
			p := newPod(t)
			_, err := h.cni.AddNetworkList(ctx(), confList(t, "1.0.0", "memif-bad", conf), p.rt("net1"))
			e := testbed.WantCNIError(t, err)
			if !strings.Contains(e.Msg, c.want) {
				t.Errorf("error %q does not name %s", e.Msg, c.want)
			}
			assertVPPClean(t, p, "net1")
			if a := ipamAllocations(t); len(a) != 0 {
				t.Errorf("IPAM allocations left: %v", a)
			}
		})
	}
	if after := vppSnapshot(t); after != before {
		t.Errorf("bad input changed VPP:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// TestVPPUnavailable: VPP down, or a VPP that does not speak the messages
// the plugin uses (a real VPP without its memif plugin), fails ADD with a
// clear error (CNI 50 for STATUS), and nothing is left behind.
func TestVPPUnavailable(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		withPolicy(t, func(p *policy.Policy) { testbed.WithVPP(p, filepath.Join(h.root, "no-vpp.sock")) })
		p := newPod(t)
		list := confList(t, "1.1.0", "memif-down", vppExample())
		e := testbed.WantCNIError(t, func() error { _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); return err }())
		if !strings.Contains(e.Msg, "no-vpp.sock") || e.Code != types.ErrPluginNotAvailable {
			t.Errorf("ADD with VPP down: code %d %q, want 50 naming the socket", e.Code, e.Msg)
		}
		assertVPPClean(t, p, "net1")
		if a := ipamAllocations(t); len(a) != 0 {
			t.Errorf("IPAM allocations left: %v", a)
		}
		if e := testbed.WantCNIError(t, h.cni.GetStatusNetworkList(ctx(), list)); e.Code != types.ErrPluginNotAvailable {
			t.Errorf("STATUS with VPP down: code %d, want 50", e.Code)
		}
	})
	t.Run("incompatible", func(t *testing.T) {
		old, err := testbed.StartVPP(testbed.VPPOptions{BaseDir: h.root, Plugins: []string{"ping_plugin.so"}})
		if err != nil {
			t.Fatal(err)
		}
		defer old.Stop()
		show := func() string {
			return vppctlOrErr(old, "show", "interface") + vppctlOrErr(old, "show", "bridge-domain")
		}
		before := show()
		withPolicy(t, func(p *policy.Policy) { testbed.WithVPP(p, old.APISocket) })
		p := newPod(t)
		list := confList(t, "1.1.0", "memif-old", vppExample())
		e := testbed.WantCNIError(t, func() error { _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); return err }())
		if !strings.Contains(e.Msg, "memif_create_v2") || !strings.Contains(e.Msg, "memif_dump") {
			t.Errorf("ADD against an incompatible VPP: %q does not name the messages", e.Msg)
		}
		if after := show(); after != before {
			t.Errorf("incompatible VPP was changed:\n%s\n%s", before, after)
		}
		assertVPPClean(t, p, "net1")
		if e := testbed.WantCNIError(t, h.cni.GetStatusNetworkList(ctx(), list)); e.Code != types.ErrPluginNotAvailable || !strings.Contains(e.Msg, "memif_create_v2") {
			t.Errorf("STATUS against an incompatible VPP: %d %q", e.Code, e.Msg)
		}
	})
}

// TestVPPHung: a VPP that stops answering (SIGSTOP) fails ADD, CHECK, DEL,
// STATUS and GC within seconds with CNI error 50, naming its socket, instead
// of holding its sandbox's lock for the verb's whole budget. Once VPP answers
// again (SIGCONT), DEL removes whatever VPP committed and nothing is left.
func TestVPPHung(t *testing.T) {
	// Each exchange with VPP is bounded at 3 s; the bound here leaves room
	// for a busy machine and still fails a plugin that waits for VPP.
	const bound = 15 * time.Second
	list := confList(t, "1.1.0", "memif-network", vppExample())
	kept, failed := newPod(t), newPod(t)
	if _, err := h.cni.AddNetworkList(ctx(), list, kept.rt("net1")); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if err := h.vpp.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	resume := func() {
		if paused {
			paused = false
			if err := h.vpp.Resume(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(resume)
	timed := func(verb string, call func() error) {
		t.Helper()
		start := time.Now()
		err := call()
		if d := time.Since(start); d > bound {
			t.Errorf("%s against a hung VPP took %v", verb, d)
		}
		want := "VPP at " + h.vppSock + " did not answer within"
		if verb == "GC" {
			// libcni joins GC's error with its own words: no CNI error.
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("GC against a hung VPP: %v, want it to say %s", err, want)
			}
			return
		}
		if e := testbed.WantCNIError(t, err); !strings.Contains(e.Msg, want) || e.Code != types.ErrPluginNotAvailable {
			t.Errorf("%s against a hung VPP: code %d %q, want 50 saying %s", verb, e.Code, e.Msg, want)
		}
	}
	timed("ADD", func() error { _, err := h.cni.AddNetworkList(ctx(), list, failed.rt("net1")); return err })
	timed("CHECK", func() error { return h.cni.CheckNetworkList(ctx(), list, kept.rt("net1")) })
	timed("STATUS", func() error { return h.cni.GetStatusNetworkList(ctx(), list) })
	timed("DEL", func() error { return h.cni.DelNetworkList(ctx(), list, kept.rt("net1")) })
	timed("GC", func() error {
		return h.cni.GCNetworkList(ctx(), list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: kept.id, IfName: "net1"}}})
	})

	resume()
	for _, p := range []*pod{failed, kept} {
		if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Fatalf("DEL once VPP answers: %v", err)
		}
		assertVPPClean(t, p, "net1")
	}
	if _, ok := vppBridge(t, 4); ok {
		t.Errorf("bridge domain 4 left")
	}
	if a := ipamAllocations(t); len(a) != 0 {
		t.Errorf("IPAM allocations left: %v", a)
	}
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
	if _, err := os.Lstat(memifSock(p, "net1")); err != nil {
		t.Fatalf("a killed VPP leaves its memif socket files (tests rely on it to show DEL removes them): %v", err)
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
	st := vppState(t)
	for _, m := range st.Memifs {
		ids[m.SocketID] = true
	}
	if bd, _ := st.Bridge(4); len(bd.Members) != n || len(ids) < n {
		t.Errorf("bridge domain 4 has %d members and %d distinct socket ids, want %d", len(bd.Members), len(ids), n)
	}
	run("DEL", func(p *pod) error { return h.cni.DelNetworkList(ctx(), list, p.rt("net1")) })
	for _, p := range pods {
		assertVPPClean(t, p, "net1")
	}
	if _, ok := vppBridge(t, 4); ok {
		t.Errorf("bridge domain 4 left after the last DEL")
	}
}

// TestVPPBridgeChurn: with no node lock, one pod's DEL (the bridge
// domain's last member leaving) races another's ADD into the same domain.
// Whichever wins, the new pod ends up in the domain the plugin made (with
// its tag, so the last DEL removes it), and the domain goes with the last
// member.
func TestVPPBridgeChurn(t *testing.T) {
	list := confList(t, "1.0.0", "memif-network", vppExample())
	prev := newPod(t)
	if _, err := h.cni.AddNetworkList(ctx(), list, prev.rt("net1")); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 10; round++ {
		next := newPod(t)
		var wg sync.WaitGroup
		var addErr, delErr error
		wg.Add(2)
		go func() { defer wg.Done(); _, addErr = h.cni.AddNetworkList(ctx(), list, next.rt("net1")) }()
		go func() { defer wg.Done(); delErr = h.cni.DelNetworkList(ctx(), list, prev.rt("net1")) }()
		wg.Wait()
		if addErr != nil || delErr != nil {
			t.Fatalf("round %d: ADD %v, DEL %v", round, addErr, delErr)
		}
		bd, ok := vppBridge(t, 4)
		i, found := vppIface(t, next.id, "net1")
		if !ok || !found || bd.Tag != vpp.BridgeTag || !slices.Contains(bd.Members, i.SwIfIndex) {
			t.Fatalf("round %d: bridge domain 4 %+v (present %v), the new pod's interface %+v (present %v): want it a member of the plugin's tagged domain",
				round, bd, ok, i, found)
		}
		prev = next
	}
	if err := h.cni.DelNetworkList(ctx(), list, prev.rt("net1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := vppBridge(t, 4); ok {
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

// TestVPPManySockets: 200 attachments in one bridge domain, far more memif
// sockets than the original survived (it crashed at the 21st), each its own
// registration, all removed again.
func TestVPPManySockets(t *testing.T) {
	const n = 200
	list := confList(t, "1.0.0", "memif-network", vppExample())
	pods := newPods(t, n)
	for i := range pods {
		if _, err := h.cni.AddNetworkList(ctx(), list, pods[i].rt("net1")); err != nil {
			t.Fatalf("ADD %d: %v", i+1, err)
		}
	}
	ids := map[uint32]bool{}
	st := vppState(t)
	for id, f := range st.MemifSockets {
		if strings.HasPrefix(f, vppSharedDir+"/memif-") {
			ids[id] = true
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct memif socket registrations, want %d", len(ids), n)
	}
	if bd, _ := st.Bridge(4); len(bd.Members) != n {
		t.Errorf("bridge domain 4 has %d members, want %d", len(bd.Members), n)
	}
	for _, p := range pods {
		if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		assertVPPClean(t, p, "net1")
	}
}
