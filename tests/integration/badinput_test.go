package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/tests/testbed"
)

// TestBadInput feeds invalid configurations to the binary and checks each
// gets a CNI error naming the field and value, and leaves nothing behind:
// no port, socket directory, record or IP allocation.
func TestBadInput(t *testing.T) {
	base := func(mut func(host, conf map[string]any)) []byte {
		host := map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
			"vhost": map[string]any{"mode": "client"}, "bridge": map[string]any{"bridgeName": "br-bad"}}
		conf := map[string]any{"cniVersion": "1.0.0", "name": "bad", "type": "userspace", "host": host,
			"ipam": hostLocal("10.57.0.0/24")}
		mut(host, conf)
		data, err := json.Marshal(conf)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	set := func(path string, v any) func(host, conf map[string]any) {
		return func(host, conf map[string]any) {
			target := conf
			parts := strings.Split(path, ".")
			for _, p := range parts[:len(parts)-1] {
				next, ok := target[p].(map[string]any)
				if !ok {
					next = map[string]any{}
					target[p] = next
				}
				target = next
			}
			target[parts[len(parts)-1]] = v
		}
	}
	cases := []struct {
		name  string
		stdin []byte
		code  uint
		want  []string // substrings of the message
	}{
		{"unknown engine", base(set("host.engine", "ovs")), types.ErrInvalidNetworkConfig, []string{"host.engine", `"ovs"`}},
		{"unknown iftype", base(set("host.iftype", "tap")), types.ErrInvalidNetworkConfig, []string{"host.iftype", `"tap"`}},
		{"unknown netType", base(set("host.netType", "vxlan")), types.ErrInvalidNetworkConfig, []string{"host.netType", `"vxlan"`}},
		{"netType interface on OVS", base(set("host.netType", "interface")), types.ErrInvalidNetworkConfig, []string{"host.netType", `"interface"`}},
		{"unknown vhost mode", base(set("host.vhost.mode", "both")), types.ErrInvalidNetworkConfig, []string{"host.vhost.mode", `"both"`}},
		{"unknown memif role", base(set("host.memif.role", "boss")), types.ErrInvalidNetworkConfig, []string{"host.memif.role", `"boss"`}},
		{"unknown memif mode", base(set("host.memif.mode", "bogus")), types.ErrInvalidNetworkConfig, []string{"host.memif.mode", `"bogus"`}},
		{"socketfile with slash", base(set("host.vhost.socketfile", "a/b")), types.ErrInvalidNetworkConfig, []string{"host.vhost.socketfile", `"a/b"`}},
		{"socketfile with dotdot", base(set("host.vhost.socketfile", "..")), types.ErrInvalidNetworkConfig, []string{"host.vhost.socketfile", `".."`}},
		{"socketfile escaping", base(set("host.vhost.socketfile", "../../etc/x")), types.ErrInvalidNetworkConfig, []string{"host.vhost.socketfile"}},
		{"bridge name with space", base(set("host.bridge.bridgeName", "br 0")), types.ErrInvalidNetworkConfig, []string{"host.bridge.bridgeName", `"br 0"`}},
		{"bridge name too long", base(set("host.bridge.bridgeName", "bridge-name-too-long")), types.ErrInvalidNetworkConfig, []string{"host.bridge.bridgeName", `"bridge-name-too-long"`}},
		{"vlan too big", base(set("host.bridge.vlanId", 4096)), types.ErrInvalidNetworkConfig, []string{"host.bridge.vlanId", "4096"}},
		{"vlan negative", base(set("host.bridge.vlanId", -1)), types.ErrInvalidNetworkConfig, []string{"host.bridge.vlanId", "-1"}},
		{"vlan as string", base(set("host.bridge.vlanId", "10")), types.ErrDecodingFailure, []string{"vlanId"}},
		{"mtu too small", base(set("mtu", 20)), types.ErrInvalidNetworkConfig, []string{"mtu", "20"}},
		{"multicast mac", base(set("mac", "01:00:5e:00:00:01")), types.ErrInvalidNetworkConfig, []string{"mac", `"01:00:5e:00:00:01"`}},
		{"sharedDir not allowed", base(set("sharedDir", "/etc")), types.ErrInvalidNetworkConfig, []string{"sharedDir", `"/etc"`}},
		{"sharedDir escaping", base(set("sharedDir", "/var/lib/cni/vhostuser/../../../etc")), types.ErrInvalidNetworkConfig, []string{"sharedDir"}},
		{"logFile not allowed", base(set("logFile", "/etc/cron.d/evil")), types.ErrInvalidNetworkConfig, []string{"logFile", `"/etc/cron.d/evil"`}},
		{"kubeconfig not allowed", base(set("kubeconfig", "/root/.kube/config")), types.ErrInvalidNetworkConfig, []string{"kubeconfig", `"/root/.kube/config"`}},
		{"ovsdb socket not allowed", base(set("host.ovsdbSocket", "unix:/tmp/x.sock")), types.ErrInvalidNetworkConfig, []string{"ovsdbSocket", `"unix:/tmp/x.sock"`}},
		{"ovsdb socket over tcp", base(set("host.ovsdbSocket", "tcp:127.0.0.1:6640")), types.ErrInvalidNetworkConfig, []string{"host.ovsdbSocket", `"tcp:127.0.0.1:6640"`}},
		{"contradicting container mode", base(set("container.vhost.mode", "client")), types.ErrInvalidNetworkConfig, []string{"container.vhost.mode", `"client"`}},
		{"unsupported cniVersion", base(set("cniVersion", "0.2.0")), types.ErrIncompatibleCNIVersion, []string{"0.2.0"}},
		{"malformed JSON", []byte(`{"cniVersion": "1.0.0", "name": "bad", "type": "userspace", "host": {`), types.ErrDecodingFailure, nil},
		{"missing engine", base(func(host, _ map[string]any) { delete(host, "engine") }), types.ErrInvalidNetworkConfig, []string{"host.engine"}},
	}
	allocs := len(ipamAllocations(t))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(t)
			_, err := execPlugin(t, "ADD", tc.stdin, p, "net1")
			e := testbed.WantCNIError(t, err)
			if e.Code != tc.code {
				t.Errorf("code %d, want %d (%s)", e.Code, tc.code, e.Msg)
			}
			for _, w := range tc.want {
				if text := e.Msg + " " + e.Details; !strings.Contains(text, w) {
					t.Errorf("error %q does not name %s", text, w)
				}
			}
			assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
			if n := len(ipamAllocations(t)); n != allocs {
				t.Errorf("IPAM allocations changed from %d to %d", allocs, n)
			}
			if _, err := os.Stat("/etc/x"); err == nil {
				t.Errorf("a socketfile escaped the socket directory")
			}
		})
	}
	if bridgeExists(t, "br-bad") {
		t.Errorf("a refused configuration created its bridge")
	}
}
