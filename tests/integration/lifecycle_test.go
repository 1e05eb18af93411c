package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/configdata"
)

// TestLifecycleAllVersions runs ADD, CHECK, GC, STATUS and DEL with the
// published OVS-DPDK example (plus host-local IPAM) for every spec version,
// checking the result's version and shape, the port on the real switch, the
// published config data, and that DEL leaves nothing behind.
func TestLifecycleAllVersions(t *testing.T) {
	for _, v := range allVersions {
		t.Run(v, func(t *testing.T) {
			p := newPod(t)
			conf := ovsExample("br-life")
			conf["ipam"] = hostLocal("10.56.0.0/24")
			list := confList(t, v, "ovs-life", conf)
			rt := p.rt("net1")

			res, err := h.cni.AddNetworkList(ctx(), list, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if res.Version() != v {
				t.Fatalf("result version %s, want %s", res.Version(), v)
			}
			sockDir := filepath.Join(defaultSocketBase, p.id)
			sock := filepath.Join(sockDir, p.id[:12]+"-net1")
			checkResult(t, res, v, p, sock)

			rows := interfacesOf(t, p.id)
			if len(rows) != 1 {
				t.Fatalf("want 1 interface on the switch, got %v", rows)
			}
			r := rows[0]
			if r["type"] != "dpdkvhostuserclient" || mapValue(r["options"], "vhost-server-path") != sock {
				t.Errorf("interface %v: want dpdkvhostuserclient connecting to %s", r, sock)
			}
			waitApplied(t, p.id)
			ids := r["external_ids"]
			for k, want := range map[string]string{"userspace-cni/ifname": "net1", "userspace-cni/pod-namespace": "default",
				"userspace-cni/pod-name": "pod-" + p.id[:8], "userspace-cni/pod-uid": "uid-" + p.id[:8], "userspace-cni/network": "ovs-life"} {
				if got := mapValue(ids, k); got != want {
					t.Errorf("external_ids %s = %q, want %q", k, got, want)
				}
			}

			cd := readConfigData(t, sockDir, p.id, "net1")
			if cd.Config.Vhost.Mode != "server" || cd.Config.Vhost.Socketfile != p.id[:12]+"-net1" || cd.Name != "ovs-life" {
				t.Errorf("config data container side %+v", cd.Config)
			}
			if cd.IPResult == nil || len(cd.IPResult.IPs) != 1 || !strings.HasPrefix(cd.IPResult.IPs[0].Address.String(), "10.56.0.") {
				t.Errorf("config data ipResult %+v lacks the IPAM address", cd.IPResult)
			}
			fi, err := os.Stat(sockDir)
			if err != nil || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
				t.Errorf("socket directory mode %v (err %v), want sticky 0777 for a non-root pod app", fi.Mode(), err)
			}
			if len(ipamAllocations(t)) != 1 {
				t.Errorf("want one IPAM allocation, got %v", ipamAllocations(t))
			}

			checkHealthy(t, v, list, rt, p, func() bool { return len(interfacesOf(t, p.id)) == 1 })

			if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			assertClean(t, p, sockDir)
			if a := ipamAllocations(t); len(a) != 0 {
				t.Errorf("IPAM allocations left: %v", a)
			}
			if bridgeExists(t, "br-life") {
				t.Errorf("the plugin created br-life and its last port is gone: it should be removed")
			}
			// DEL again (runtimes retry) succeeds and changes nothing.
			if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
				t.Fatalf("repeated DEL: %v", err)
			}
		})
	}
}

// checkHealthy runs the verbs a healthy attachment must pass in spec
// version v: CHECK (0.4.0 on), STATUS, and a GC that lists the attachment
// as valid and must leave it (1.1.0); present tells whether it is still on
// the switch.
func checkHealthy(t *testing.T, v string, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, p *pod, present func() bool) {
	t.Helper()
	if v >= "0.4.0" {
		if err := h.cni.CheckNetworkList(ctx(), list, rt); err != nil {
			t.Errorf("CHECK of a healthy attachment: %v", err)
		}
	}
	if v != "1.1.0" {
		return
	}
	if err := h.cni.GetStatusNetworkList(ctx(), list); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	gc := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: p.id, IfName: rt.IfName}}}
	if err := h.cni.GCNetworkList(ctx(), list, gc); err != nil {
		t.Errorf("GC: %v", err)
	}
	if !present() {
		t.Errorf("GC removed a valid attachment")
	}
}

// checkResult checks the CNI result in the version the runtime asked for.
func checkResult(t *testing.T, res types.Result, v string, p *pod, sock string) {
	t.Helper()
	if v < "1.0.0" {
		r, err := types040.GetResult(res)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "net1" || r.Interfaces[0].Sandbox != p.ns.Path() {
			t.Errorf("interfaces %+v", r.Interfaces)
		}
		if len(r.IPs) != 1 || r.IPs[0].Interface == nil || *r.IPs[0].Interface != 0 {
			t.Errorf("ips %+v: want one address on interface 0", r.IPs)
		}
		return
	}
	r, err := types100.GetResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "net1" || r.Interfaces[0].Sandbox != p.ns.Path() {
		t.Fatalf("interfaces %+v", r.Interfaces)
	}
	want := ""
	if v == "1.1.0" {
		want = sock
	}
	if r.Interfaces[0].SocketPath != want {
		t.Errorf("socketPath %q, want %q", r.Interfaces[0].SocketPath, want)
	}
	if len(r.IPs) != 1 || r.IPs[0].Interface == nil || *r.IPs[0].Interface != 0 {
		t.Errorf("ips %+v: want one address on interface 0", r.IPs)
	}
	// The printed JSON carries socketPath only for 1.1.0.
	raw, _ := json.Marshal(r)
	if strings.Contains(string(raw), "socketPath") != (v == "1.1.0") {
		t.Errorf("result JSON %s: socketPath presence wrong for %s", raw, v)
	}
}

func readConfigData(t *testing.T, dir, id, ifName string) *configdata.ConfigData {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, configdata.FileName(id, ifName)))
	if err != nil {
		t.Fatalf("config data: %v", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"containerId", "ifName", "name", "config", "ipResult"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("config data lacks the original key %q: %s", k, data)
		}
	}
	cd := &configdata.ConfigData{}
	if err := json.Unmarshal(data, cd); err != nil {
		t.Fatal(err)
	}
	if cd.ContainerID != id || cd.IfName != ifName {
		t.Errorf("config data identifies %s/%s, want %s/%s", cd.ContainerID, cd.IfName, id, ifName)
	}
	return cd
}

// TestNotesConfigVerbatim feeds the application notes' complete config, byte
// for byte, to the binary (no name, cniVersion 0.3.0, no bridge, no vhost
// mode; libcni would refuse the missing name, so the binary is executed
// directly): OVS is the vhost-user server on bridge br0, and the socket is
// where the notes' pods look for it: /var/lib/cni/vhostuser/<ID>/<ID:0:12>-net1.
func TestNotesConfigVerbatim(t *testing.T) {
	notes := []byte(`{"cniVersion": "0.3.0", "type": "userspace", "host": {"engine": "ovs-dpdk", "iftype": "vhostuser"}}`)
	p := newPod(t)
	res, err := execPlugin(t, "ADD", notes, p, "net1")
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if res.Version() != "0.3.0" {
		t.Errorf("result version %s, want 0.3.0", res.Version())
	}
	sockDir := filepath.Join(defaultSocketBase, p.id)
	sock := filepath.Join(sockDir, p.id[:12]+"-net1")
	if len(sock) != 105 {
		t.Errorf("socket path %s is %d bytes, the notes' layout gives 105", sock, len(sock))
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no socket at the notes' path %s: %v", sock, err)
	}
	if fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %v: a non-root pod app could not connect", fi.Mode().Perm())
	}
	rows := interfacesOf(t, p.id)
	if len(rows) != 1 || rows[0]["type"] != "dpdkvhostuser" {
		t.Fatalf("want one dpdkvhostuser interface (OVS as server), got %v", rows)
	}
	// The pod's path is the switch's own socket (a link, never a move).
	sw, err := os.Stat(filepath.Join(h.ovs.RunDir, rows[0]["name"]))
	if err != nil || !os.SameFile(sw, fi) {
		t.Errorf("pod socket is not the switch's socket file: %v", err)
	}
	if !bridgeExists(t, "br0") {
		t.Errorf("default bridge br0 not created")
	}
	cd := readConfigData(t, sockDir, p.id, "net1")
	if cd.Config.Vhost.Mode != "client" || cd.Name != "userspace" {
		t.Errorf("config data: container vhost mode %q (want client), name %q", cd.Config.Vhost.Mode, cd.Name)
	}
	if _, err := execPlugin(t, "DEL", notes, p, "net1"); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertClean(t, p, sockDir)
	if bridgeExists(t, "br0") {
		t.Errorf("br0, created by the plugin, should go with its last port")
	}
}

// execPlugin runs the plugin binary with exactly the given stdin, as a
// runtime's exec does, and returns its result (nil for DEL).
func execPlugin(t *testing.T, command string, stdin []byte, p *pod, ifName string) (types.Result, error) {
	t.Helper()
	args := &invoke.Args{Command: command, ContainerID: p.id, NetNS: p.ns.Path(), IfName: ifName,
		PluginArgsStr: "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-" + p.id[:8], Path: h.binDir}
	path := filepath.Join(h.binDir, "userspace")
	if command == "ADD" {
		return invoke.ExecPluginWithResult(ctx(), path, stdin, args, nil)
	}
	return nil, invoke.ExecPluginWithoutResult(ctx(), path, stdin, args, nil)
}
