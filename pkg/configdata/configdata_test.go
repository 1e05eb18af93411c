package configdata

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/netconf"
)

func TestFileName(t *testing.T) {
	tests := []struct{ id, ifName, want string }{
		{"0123456789abcdef0123", "net1", "configData-0123456789ab-net1.json"},
		{"0123456789ab", "net2", "configData-0123456789ab-net2.json"},
		{"abc", "net1", "configData-abc-net1.json"},
		{"", "eth0", "configData--eth0.json"},
		{strings.Repeat("f", 64), "net1", "configData-ffffffffffff-net1.json"},
	}
	for _, tt := range tests {
		if got := FileName(tt.id, tt.ifName); got != tt.want {
			t.Errorf("FileName(%q, %q) = %q, want %q", tt.id, tt.ifName, got, tt.want)
		}
	}
}

func TestConstants(t *testing.T) {
	if AnnotationConfigData != "userspace/configuration-data" || AnnotationMappedDir != "userspace/mapped-dir" ||
		DefaultMappedDir != "/var/lib/cni/usrspcni" {
		t.Errorf("constants changed: %q %q %q", AnnotationConfigData, AnnotationMappedDir, DefaultMappedDir)
	}
}

// dirWriter writes whole files into Dir, as the plugin's socket-directory
// layout does (which lives on the node side and is tested there).
type dirWriter struct{ Dir string }

func (w dirWriter) WriteFileAtomic(name string, data []byte) error {
	tmp := filepath.Join(w.Dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(w.Dir, name))
}

func layout(t *testing.T) dirWriter {
	t.Helper()
	return dirWriter{Dir: t.TempDir()}
}

func sample() *ConfigData {
	ifIdx := 0
	return &ConfigData{
		ContainerID: "0123456789abcdef0123456789abcdef",
		IfName:      "net1",
		Name:        "userspace-ovs-net-1",
		Config: netconf.UserSpaceConf{
			Engine:  netconf.EngineOVSDPDK,
			IfType:  netconf.IfTypeVhostUser,
			NetType: netconf.NetTypeInterface,
			Vhost:   netconf.VhostConf{Mode: netconf.VhostServer, Socketfile: "0123456789ab-net1"},
		},
		IPResult: &types100.Result{
			CNIVersion: "1.0.0",
			Interfaces: []*types100.Interface{{Name: "net1", Mac: "02:00:00:00:00:01", Sandbox: "/var/run/netns/x"}},
			IPs: []*types100.IPConfig{{
				Interface: &ifIdx,
				Address:   net.IPNet{IP: net.ParseIP("172.22.0.2").To4(), Mask: net.CIDRMask(24, 32)},
				Gateway:   net.ParseIP("172.22.0.1").To4(),
			}},
		},
	}
}

func TestWrite(t *testing.T) {
	l := layout(t)
	d := sample()
	name, err := Write(l, d)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if name != "configData-0123456789ab-net1.json" {
		t.Errorf("name = %q", name)
	}
	data, err := os.ReadFile(filepath.Join(l.Dir, name))
	if err != nil {
		t.Fatal(err)
	}

	// Exactly the original plugin's keys.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatalf("config data is not a JSON object: %v\n%s", err, data)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := []string{"config", "containerId", "ifName", "ipResult", "name"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	var config map[string]any
	if err := json.Unmarshal(top["config"], &config); err != nil {
		t.Fatal(err)
	}
	if config["engine"] != "ovs-dpdk" || config["iftype"] != "vhostuser" || config["netType"] != "interface" {
		t.Errorf("config = %v", config)
	}
	vhost, _ := config["vhost"].(map[string]any)
	if vhost["mode"] != "server" || vhost["socketfile"] != "0123456789ab-net1" {
		t.Errorf("config.vhost = %v", vhost)
	}
	for _, absent := range []string{"memif", "bridge", "ovsdbSocket"} {
		if _, ok := config[absent]; ok {
			t.Errorf("config has unset %q: %v", absent, config)
		}
	}
	var ipResult map[string]any
	if err := json.Unmarshal(top["ipResult"], &ipResult); err != nil {
		t.Fatal(err)
	}
	ips, _ := ipResult["ips"].([]any)
	if len(ips) != 1 || ips[0].(map[string]any)["address"] != "172.22.0.2/24" {
		t.Errorf("ipResult.ips = %v", ipResult["ips"])
	}

	// Round trip.
	var back ConfigData
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	if back.ContainerID != d.ContainerID || back.IfName != d.IfName || back.Name != d.Name || back.Config != d.Config {
		t.Errorf("round trip = %+v, want %+v", back, *d)
	}
	if back.IPResult == nil || len(back.IPResult.IPs) != 1 || back.IPResult.IPs[0].Address.String() != "172.22.0.2/24" ||
		!back.IPResult.IPs[0].Gateway.Equal(net.ParseIP("172.22.0.1")) || back.IPResult.Interfaces[0].Mac != "02:00:00:00:00:01" {
		t.Errorf("round trip ipResult = %+v", back.IPResult)
	}

	// Rewriting replaces the file and leaves no temporary file.
	d.Name = "renamed"
	if _, err := Write(l, d); err != nil {
		t.Fatalf("second Write: %v", err)
	}
	entries, _ := os.ReadDir(l.Dir)
	if len(entries) != 1 {
		t.Errorf("socket directory holds %d entries, want 1", len(entries))
	}
	data, _ = os.ReadFile(filepath.Join(l.Dir, name))
	if !strings.Contains(string(data), `"renamed"`) || !strings.HasSuffix(string(data), "}\n") {
		t.Errorf("rewritten file = %s", data)
	}
}

func TestWriteWithoutIPAM(t *testing.T) {
	l := layout(t)
	d := sample()
	d.IPResult = nil
	d.Config = netconf.UserSpaceConf{
		Engine: netconf.EngineVPP, IfType: netconf.IfTypeMemif, NetType: netconf.NetTypeInterface,
		Memif: netconf.MemifConf{Role: netconf.MemifSlave, Mode: netconf.MemifEthernet, Socketfile: "memif-0123456789ab-net1.sock"},
	}
	name, err := Write(l, d)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(l.Dir, name))
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if len(top) != 5 || string(top["ipResult"]) != "null" {
		t.Errorf("config data without IPAM = %s", data)
	}
	var back ConfigData
	if err := json.Unmarshal(data, &back); err != nil || back.Config != d.Config {
		t.Errorf("round trip = %+v, %v", back.Config, err)
	}
}

func TestWriteMissingDir(t *testing.T) {
	base := t.TempDir()
	l := dirWriter{Dir: filepath.Join(base, "absent")}
	if name, err := Write(l, sample()); err == nil {
		t.Errorf("Write without a directory = %q", name)
	}
	if _, err := os.Stat(l.Dir); err == nil {
		t.Error("Write created the socket directory")
	}
}

func TestShortID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{"0123456789a", "0123456789a"},
		{"0123456789ab", "0123456789ab"},
		{"0123456789abc", "0123456789ab"},
		{strings.Repeat("f", 64), strings.Repeat("f", 12)},
	}
	for _, tt := range tests {
		if got := ShortID(tt.in); got != tt.want {
			t.Errorf("ShortID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
