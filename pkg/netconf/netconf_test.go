package netconf

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/userspace-cni/userspace/internal/cnitest"
)

// The published examples of the compatibility contract, as users have them.
const (
	vppExample = `{
  "cniVersion": "0.3.1",
  "type": "userspace",
  "name": "memif-network",
  "host": {
    "engine": "vpp",
    "iftype": "memif",
    "netType": "bridge",
    "memif": {"role": "master", "mode": "ethernet"},
    "bridge": {"bridgeId": 4}
  },
  "container": {
    "engine": "vpp",
    "iftype": "memif",
    "netType": "interface",
    "memif": {"role": "slave", "mode": "ethernet"}
  },
  "ipam": {
    "type": "host-local",
    "subnet": "172.22.0.0/24",
    "rangeStart": "172.22.0.2",
    "rangeEnd": "172.22.0.254",
    "routes": [{"dst": "0.0.0.0/0"}],
    "gateway": "172.22.0.1"
  }
}`

	ovsExample = `{
  "cniVersion": "0.3.1",
  "type": "userspace",
  "name": "userspace-ovs-net-1",
  "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
  "logFile": "/var/log/userspace-ovs-net-1-cni.log",
  "logLevel": "debug",
  "host": {
    "engine": "ovs-dpdk",
    "iftype": "vhostuser",
    "netType": "bridge",
    "vhost": {"mode": "client"},
    "bridge": {"bridgeName": "br-4"}
  },
  "container": {
    "engine": "ovs-dpdk",
    "iftype": "vhostuser",
    "netType": "interface",
    "vhost": {"mode": "server"}
  }
}`

	// The application notes' complete OVS-DPDK configuration.
	notesExample = `{"cniVersion": "0.3.0", "type": "userspace", "host": {"engine": "ovs-dpdk", "iftype": "vhostuser"}}`
)

// ovsConf is a valid OVS-DPDK configuration; hostExtra and containerExtra
// are appended to the host and container objects (each starting with ",").
func ovsConf(hostExtra, containerExtra string) string {
	return `{"cniVersion":"1.0.0","type":"userspace","name":"net",` +
		`"host":{"engine":"ovs-dpdk","iftype":"vhostuser"` + hostExtra + `},` +
		`"container":{"engine":"ovs-dpdk"` + containerExtra + `}}`
}

// vppConf is a valid VPP memif configuration without a bridge; hostExtra and
// containerExtra are appended as in ovsConf.
func vppConf(hostExtra, containerExtra string) string {
	return `{"cniVersion":"1.0.0","type":"userspace","name":"net",` +
		`"host":{"engine":"vpp","iftype":"memif"` + hostExtra + `},` +
		`"container":{"engine":"vpp"` + containerExtra + `}}`
}

// topConf is a valid OVS-DPDK configuration with extra top-level fields
// (starting with ",").
func topConf(extra string) string {
	return `{"cniVersion":"1.0.0","type":"userspace","name":"net",` +
		`"host":{"engine":"ovs-dpdk","iftype":"vhostuser"}` + extra + `}`
}

func TestParsePublishedExamples(t *testing.T) {

	t.Run("vpp", func(t *testing.T) {
		c, err := Parse([]byte(vppExample))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if c.CNIVersion != "0.3.1" || c.Name != "memif-network" || c.Type != "userspace" {
			t.Errorf("top level = %q %q %q", c.CNIVersion, c.Name, c.Type)
		}
		if c.IPAM.Type != "host-local" {
			t.Errorf("ipam.type = %q, want host-local", c.IPAM.Type)
		}
		h := c.Host
		if h.Engine != EngineVPP || h.IfType != IfTypeMemif || h.NetType != NetTypeBridge {
			t.Errorf("host = %+v", h)
		}
		if h.Memif.Role != MemifMaster || h.Memif.Mode != MemifEthernet {
			t.Errorf("host memif = %+v, want master/ethernet", h.Memif)
		}
		if h.Bridge.BridgeID != 4 || h.Bridge.BridgeName != "" {
			t.Errorf("host bridge = %+v, want bridgeId 4", h.Bridge)
		}
		id, err := h.BridgeDomainID()
		if err != nil || id != 4 {
			t.Errorf("BridgeDomainID = %d, %v; want 4", id, err)
		}
		ct := c.Container
		if ct.Engine != EngineVPP || ct.IfType != IfTypeMemif || ct.NetType != NetTypeInterface {
			t.Errorf("container = %+v", ct)
		}
		if ct.Memif.Role != MemifSlave || ct.Memif.Mode != MemifEthernet {
			t.Errorf("container memif = %+v, want slave/ethernet", ct.Memif)
		}
	})

	t.Run("ovs", func(t *testing.T) {
		c, err := Parse([]byte(ovsExample))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		h := c.Host
		if h.Engine != EngineOVSDPDK || h.IfType != IfTypeVhostUser || h.NetType != NetTypeBridge {
			t.Errorf("host = %+v", h)
		}
		if h.Vhost.Mode != VhostClient {
			t.Errorf("host vhost mode = %q, want client", h.Vhost.Mode)
		}
		if h.Bridge.BridgeName != "br-4" {
			t.Errorf("host bridge = %q, want br-4", h.Bridge.BridgeName)
		}
		ct := c.Container
		if ct.Engine != EngineOVSDPDK || ct.IfType != IfTypeVhostUser || ct.NetType != NetTypeInterface {
			t.Errorf("container = %+v", ct)
		}
		if ct.Vhost.Mode != VhostServer {
			t.Errorf("container vhost mode = %q, want server", ct.Vhost.Mode)
		}
		if c.LogLevel != "debug" || c.LogFile != "/var/log/userspace-ovs-net-1-cni.log" ||
			c.KubeConfig != "/etc/cni/net.d/multus.d/multus.kubeconfig" {
			t.Errorf("top level paths = %q %q %q", c.LogLevel, c.LogFile, c.KubeConfig)
		}
	})

	t.Run("application notes", func(t *testing.T) {
		c, err := Parse([]byte(notesExample))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if c.CNIVersion != "0.3.0" || c.Name != "" {
			t.Errorf("cniVersion %q name %q", c.CNIVersion, c.Name)
		}
		h := c.Host
		if h.NetType != NetTypeBridge {
			t.Errorf("host netType = %q, want bridge", h.NetType)
		}
		if h.Bridge.BridgeName != DefaultOVSBridge || DefaultOVSBridge != "br0" {
			t.Errorf("host bridge = %q, want br0", h.Bridge.BridgeName)
		}
		if h.Vhost.Mode != VhostServer {
			t.Errorf("host vhost mode = %q, want server", h.Vhost.Mode)
		}
		ct := c.Container
		if ct.Vhost.Mode != VhostClient {
			t.Errorf("container vhost mode = %q, want client", ct.Vhost.Mode)
		}
		if ct.Engine != EngineOVSDPDK || ct.IfType != IfTypeVhostUser {
			t.Errorf("container = %+v, want engine and iftype copied from host", ct)
		}
		if ct.Bridge.BridgeName != "" {
			t.Errorf("container bridge = %q: the host default must not be copied", ct.Bridge.BridgeName)
		}
		if c.MTU != 0 || c.MAC != "" || c.SharedDir != "" {
			t.Errorf("unexpected extensions set: mtu %d mac %q sharedDir %q", c.MTU, c.MAC, c.SharedDir)
		}
	})
}

func TestParseDefaultsAndDerivation(t *testing.T) {
	tests := []struct {
		name  string
		conf  string
		check func(t *testing.T, c *NetConf)
	}{
		{
			name: "vhost host client gives container server",
			conf: ovsConf(`,"vhost":{"mode":"client","group":"hugetlbfs","socketfile":"sock-1"}`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Container.Vhost.Mode != VhostServer {
					t.Errorf("container mode %q", c.Container.Vhost.Mode)
				}
				if c.Container.Vhost.Group != "hugetlbfs" {
					t.Errorf("container group %q, want copied from host", c.Container.Vhost.Group)
				}
			},
		},
		{
			name: "explicit consistent container vhost",
			conf: ovsConf(`,"vhost":{"mode":"server","socketfile":"s1"}`, `,"iftype":"vhostuser","vhost":{"mode":"client","socketfile":"s1","group":"123"}`),
			check: func(t *testing.T, c *NetConf) {
				if c.Container.Vhost.Mode != VhostClient || c.Container.Vhost.Group != "123" {
					t.Errorf("container vhost %+v", c.Container.Vhost)
				}
			},
		},
		{
			name: "memif host slave gives container master and copies mode",
			conf: vppConf(`,"netType":"interface","memif":{"role":"slave","mode":"ip"}`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Container.Memif.Role != MemifMaster || c.Container.Memif.Mode != MemifIP {
					t.Errorf("container memif %+v", c.Container.Memif)
				}
				if c.Container.NetType != NetTypeInterface {
					t.Errorf("container netType %q, want copied interface", c.Container.NetType)
				}
			},
		},
		{
			name: "memif defaults master ethernet",
			conf: vppConf(`,"netType":"none"`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Host.Memif.Role != MemifMaster || c.Host.Memif.Mode != MemifEthernet {
					t.Errorf("host memif %+v", c.Host.Memif)
				}
				if c.Container.Memif.Role != MemifSlave || c.Container.Memif.Mode != MemifEthernet {
					t.Errorf("container memif %+v", c.Container.Memif)
				}
			},
		},
		{
			name: "memif inject-punt",
			conf: vppConf(`,"netType":"interface","memif":{"mode":"inject-punt","socketfile":"memif-1.sock"}`, `,"memif":{"mode":"inject-punt"}`),
			check: func(t *testing.T, c *NetConf) {
				if c.Container.Memif.Mode != MemifInjectPunt || c.Host.Memif.Socketfile != "memif-1.sock" {
					t.Errorf("memif host %+v container %+v", c.Host.Memif, c.Container.Memif)
				}
			},
		},
		{
			name: "container bridge copied from host as written",
			conf: ovsConf(`,"bridge":{"bridgeName":"br-x","vlanId":7}`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Container.Bridge != (BridgeConf{BridgeName: "br-x", VlanID: 7}) {
					t.Errorf("container bridge %+v", c.Container.Bridge)
				}
			},
		},
		{
			name: "vlan 0 accepted",
			conf: ovsConf(`,"bridge":{"vlanId":0}`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Host.Bridge.VlanID != 0 {
					t.Errorf("vlan %d", c.Host.Bridge.VlanID)
				}
			},
		},
		{
			name: "vlan 4095 accepted",
			conf: ovsConf(`,"bridge":{"vlanId":4095}`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Host.Bridge.VlanID != 4095 {
					t.Errorf("vlan %d", c.Host.Bridge.VlanID)
				}
			},
		},
		{
			name: "15-byte OVS bridge name accepted",
			conf: ovsConf(`,"bridge":{"bridgeName":"br_0123456789.-"}`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Host.Bridge.BridgeName != "br_0123456789.-" {
					t.Errorf("bridge %q", c.Host.Bridge.BridgeName)
				}
			},
		},
		{
			name: "deprecated bridgeId accepted for VPP",
			conf: vppConf(`,"netType":"bridge","bridge":{"bridgeId":12}`, ``),
			check: func(t *testing.T, c *NetConf) {
				if id, err := c.Host.BridgeDomainID(); err != nil || id != 12 {
					t.Errorf("BridgeDomainID = %d, %v", id, err)
				}
			},
		},
		{
			name: "VPP bridgeName wins over bridgeId",
			conf: vppConf(`,"netType":"bridge","bridge":{"bridgeName":"7","bridgeId":4}`, ``),
			check: func(t *testing.T, c *NetConf) {
				if id, err := c.Host.BridgeDomainID(); err != nil || id != 7 {
					t.Errorf("BridgeDomainID = %d, %v; want 7", id, err)
				}
			},
		},
		{
			name: "VPP interface mode needs no bridge domain",
			conf: vppConf(`,"netType":"interface"`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Host.NetType != NetTypeInterface {
					t.Errorf("netType %q", c.Host.NetType)
				}
			},
		},
		{
			name: "VPP with vhostuser",
			conf: `{"cniVersion":"0.4.0","host":{"engine":"vpp","iftype":"vhostuser","netType":"interface","vhost":{"mode":"client"}}}`,
			check: func(t *testing.T, c *NetConf) {
				if c.Container.Vhost.Mode != VhostServer || c.Container.Engine != EngineVPP {
					t.Errorf("container %+v", c.Container)
				}
			},
		},
		{
			name: "extensions and paths",
			conf: topConf(`,"mtu":9000,"mac":"02:00:00:00:00:01","sharedDir":"/var/lib/cni/vhostuser","logFile":"/var/log/sub/u.log","kubeconfig":"/etc/cni/net.d/kc","logLevel":"verbose"`),
			check: func(t *testing.T, c *NetConf) {
				if c.MTU != 9000 || c.MAC != "02:00:00:00:00:01" || c.SharedDir != "/var/lib/cni/vhostuser" {
					t.Errorf("got mtu %d mac %q sharedDir %q", c.MTU, c.MAC, c.SharedDir)
				}
			},
		},
		{
			name: "mtu bounds accepted",
			conf: topConf(`,"mtu":68`),
			check: func(t *testing.T, c *NetConf) {
				if c.MTU != 68 {
					t.Errorf("mtu %d", c.MTU)
				}
			},
		},
		{
			name: "max mtu accepted",
			conf: topConf(`,"mtu":9710`),
			check: func(t *testing.T, c *NetConf) {
				if c.MTU != MaxMTU {
					t.Errorf("mtu %d", c.MTU)
				}
			},
		},
		{
			name: "ovsdbSocket accepted in both forms",
			conf: ovsConf(`,"ovsdbSocket":"unix:/run/openvswitch/db.sock"`, ``),
			check: func(t *testing.T, c *NetConf) {
				if c.Host.OVSDBSocket != "unix:/run/openvswitch/db.sock" {
					t.Errorf("ovsdbSocket %q", c.Host.OVSDBSocket)
				}
			},
		},
		{
			name: "prevResult parsed",
			conf: topConf(`,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"net1"}],"ips":[{"address":"10.1.0.2/24"}]}`),
			check: func(t *testing.T, c *NetConf) {
				if c.PrevResult == nil {
					t.Fatal("prevResult not parsed")
				}
			},
		},
		{
			name: "unknown fields ignored",
			conf: topConf(`,"somethingNew":{"a":1}`),
			check: func(t *testing.T, c *NetConf) {
				if c.Host.Engine != EngineOVSDPDK {
					t.Errorf("engine %q", c.Host.Engine)
				}
			},
		},
	}
	for _, v := range SupportedVersions {
		tests = append(tests, struct {
			name  string
			conf  string
			check func(t *testing.T, c *NetConf)
		}{
			name: "cniVersion " + v,
			conf: `{"cniVersion":"` + v + `","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`,
			check: func(t *testing.T, c *NetConf) {
				if c.CNIVersion != v {
					t.Errorf("cniVersion %q", c.CNIVersion)
				}
			},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.conf))
			if err != nil {
				t.Fatalf("Parse(%s): %v", tt.conf, err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseErrors(t *testing.T) {
	const (
		decode  = types.ErrDecodingFailure
		invalid = types.ErrInvalidNetworkConfig
		version = types.ErrIncompatibleCNIVersion
	)
	tooLongSock := strings.Repeat("s", 65)
	tests := []struct {
		name string
		conf string
		code uint
		subs []string
	}{
		// Decoding.
		{"empty input", ``, decode, []string{"empty network configuration"}},
		{"blank input", " \n\t\r", decode, []string{"empty network configuration"}},
		{"null", `null`, decode, []string{"must be a JSON object, not null"}},
		{"null with spaces", " null ", decode, []string{"must be a JSON object, not null"}},
		{"number", `1`, decode, []string{"must be a JSON object, not a number"}},
		{"string", `"x"`, decode, []string{"must be a JSON object, not a string"}},
		{"boolean", `true`, decode, []string{"must be a JSON object, not a boolean"}},
		{"NUL byte", "\x00", decode, []string{"malformed"}},
		{"truncated JSON", `{"cniVersion":"1.0.0"`, decode, []string{"malformed"}},
		{"trailing garbage", topConf(``) + ` x`, decode, []string{"malformed"}},
		{"array", `[]`, decode, []string{"must be a JSON object, not an array"}},
		{"vlanId string", ovsConf(`,"bridge":{"vlanId":"10"}`, ``), decode, []string{"host.bridge.vlanId", "string"}},
		{"bridgeId string", vppConf(`,"bridge":{"bridgeId":"4"}`, ``), decode, []string{"host.bridge.bridgeId"}},
		{"mtu string", topConf(`,"mtu":"1500"`), decode, []string{"mtu"}},
		{"mtu fraction", topConf(`,"mtu":1500.5`), decode, []string{"mtu"}},
		{"host not an object", `{"cniVersion":"1.0.0","host":"ovs"}`, decode, []string{"host"}},
		{"engine number", `{"cniVersion":"1.0.0","host":{"engine":1}}`, decode, []string{"host.engine"}},
		{"cniVersion number", `{"cniVersion":1.0,"host":{"engine":"vpp"}}`, decode, []string{"cniVersion"}},
		{"container vhost not object", ovsConf(``, `,"vhost":"server"`), decode, []string{"container.vhost"}},
		{"bad prevResult", topConf(`,"prevResult":{"cniVersion":"1.0.0","ips":"x"}`), decode, []string{"prevResult"}},

		// Versions.
		{"missing cniVersion", `{"type":"userspace","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`, version, []string{"cniVersion"}},
		{"old cniVersion", `{"cniVersion":"0.2.0","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`, version, []string{"cniVersion", `"0.2.0"`}},
		{"future cniVersion", `{"cniVersion":"2.0.0","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`, version, []string{"cniVersion", `"2.0.0"`}},

		// Top level.
		{"wrong type", `{"cniVersion":"1.0.0","type":"bridge","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`, invalid, []string{"type", `"bridge"`}},
		{"bad logLevel", topConf(`,"logLevel":"trace"`), invalid, []string{"logLevel", `"trace"`}},
		{"mtu too small", topConf(`,"mtu":67`), invalid, []string{"mtu", "67"}},
		{"mtu negative", topConf(`,"mtu":-1`), invalid, []string{"mtu", "-1"}},
		{"mtu too large", topConf(`,"mtu":9711`), invalid, []string{"mtu", "9711"}},
		{"mac invalid", topConf(`,"mac":"zz:00:00:00:00:01"`), invalid, []string{"mac", `"zz:00:00:00:00:01"`}},
		{"mac multicast", topConf(`,"mac":"01:00:5e:00:00:01"`), invalid, []string{"mac", `"01:00:5e:00:00:01"`, "multicast"}},
		{"mac EUI-64", topConf(`,"mac":"02:00:00:00:00:00:00:01"`), invalid, []string{"mac", "48-bit"}},
		{"runtimeConfig mac invalid", topConf(`,"runtimeConfig":{"mac":"nope"}`), invalid, []string{"runtimeConfig.mac", `"nope"`}},
		{"runtimeConfig mac multicast", topConf(`,"runtimeConfig":{"mac":"ff:ff:ff:ff:ff:ff"}`), invalid, []string{"runtimeConfig.mac", `"ff:ff:ff:ff:ff:ff"`}},
		{"args cni mac invalid", topConf(`,"args":{"cni":{"mac":"00:11:22"}}`), invalid, []string{"args.cni.mac", `"00:11:22"`}},
		{"args cni mac multicast", topConf(`,"args":{"cni":{"mac":"03:00:00:00:00:01"}}`), invalid, []string{"args.cni.mac", `"03:00:00:00:00:01"`}},

		// Host side.
		{"missing engine", `{"cniVersion":"1.0.0","host":{"iftype":"vhostuser"}}`, invalid, []string{"host.engine"}},
		{"unknown engine", `{"cniVersion":"1.0.0","host":{"engine":"bess","iftype":"vhostuser"}}`, invalid, []string{"host.engine", `"bess"`}},
		{"missing iftype", `{"cniVersion":"1.0.0","host":{"engine":"vpp"}}`, invalid, []string{"host.iftype"}},
		{"unknown iftype", `{"cniVersion":"1.0.0","host":{"engine":"vpp","iftype":"tap"}}`, invalid, []string{"host.iftype", `"tap"`}},
		{"unknown netType", ovsConf(`,"netType":"l2"`, ``), invalid, []string{"host.netType", `"l2"`}},
		{"ovs with memif", `{"cniVersion":"1.0.0","host":{"engine":"ovs-dpdk","iftype":"memif"}}`, invalid, []string{"host.iftype", `"memif"`}},
		{"ovs netType interface", ovsConf(`,"netType":"interface"`, ``), invalid, []string{"host.netType", `"interface"`}},
		{"unknown vhost mode", ovsConf(`,"vhost":{"mode":"both"}`, ``), invalid, []string{"host.vhost.mode", `"both"`}},
		{"unknown memif role", vppConf(`,"netType":"none","memif":{"role":"peer"}`, ``), invalid, []string{"host.memif.role", `"peer"`}},
		{"unknown memif mode", vppConf(`,"netType":"none","memif":{"mode":"tun"}`, ``), invalid, []string{"host.memif.mode", `"tun"`}},
		{"socketfile with slash", ovsConf(`,"vhost":{"socketfile":"a/b"}`, ``), invalid, []string{"host.vhost.socketfile", `"a/b"`}},
		{"socketfile dotdot", ovsConf(`,"vhost":{"socketfile":".."}`, ``), invalid, []string{"host.vhost.socketfile", `".."`}},
		{"socketfile embedded dotdot", ovsConf(`,"vhost":{"socketfile":"a..b"}`, ``), invalid, []string{"host.vhost.socketfile", `"a..b"`}},
		{"socketfile traversal", ovsConf(`,"vhost":{"socketfile":"../../etc/x"}`, ``), invalid, []string{"host.vhost.socketfile", `"../../etc/x"`}},
		{"socketfile hidden", ovsConf(`,"vhost":{"socketfile":".s"}`, ``), invalid, []string{"host.vhost.socketfile", `".s"`}},
		{"socketfile too long", ovsConf(`,"vhost":{"socketfile":"`+tooLongSock+`"}`, ``), invalid, []string{"host.vhost.socketfile", tooLongSock}},
		{"socketfile space", ovsConf(`,"vhost":{"socketfile":"a b"}`, ``), invalid, []string{"host.vhost.socketfile", `"a b"`}},
		{"memif socketfile slash", vppConf(`,"netType":"none","memif":{"socketfile":"/run/x.sock"}`, ``), invalid, []string{"host.memif.socketfile", `"/run/x.sock"`}},
		{"bad group", ovsConf(`,"vhost":{"group":"Bad Group"}`, ``), invalid, []string{"host.vhost.group", `"Bad Group"`}},
		// A gid chown would truncate to 32 bits (4294967297 is gid 1,
		// 4294967296 root) or take as "no change".
		{"gid 2^32", ovsConf(`,"vhost":{"group":"4294967296"}`, ``), invalid, []string{`host.vhost.group "4294967296"`, "between 0 and 4294967294"}},
		{"gid 2^32+1", ovsConf(`,"vhost":{"group":"4294967297"}`, ``), invalid, []string{`host.vhost.group "4294967297"`, "between 0 and 4294967294"}},
		{"gid -1 as unsigned", ovsConf(`,"vhost":{"group":"4294967295"}`, ``), invalid, []string{`host.vhost.group "4294967295"`, "no change"}},
		{"gid of 10 digits", ovsConf(`,"vhost":{"group":"9999999999"}`, ``), invalid, []string{`host.vhost.group "9999999999"`}},
		{"gid beyond 64 bits", ovsConf(`,"vhost":{"group":"99999999999999999999999"}`, ``), invalid, []string{`host.vhost.group "99999999999999999999999"`, "between 0 and"}},
		{"container gid 2^32", ovsConf(``, `,"vhost":{"group":"4294967296"}`), invalid, []string{`container.vhost.group "4294967296"`}},
		{"bridge name too long", ovsConf(`,"bridge":{"bridgeName":"br-0123456789abc"}`, ``), invalid, []string{"host.bridge.bridgeName", `"br-0123456789abc"`}},
		{"bridge name space", ovsConf(`,"bridge":{"bridgeName":"br 0"}`, ``), invalid, []string{"host.bridge.bridgeName", `"br 0"`}},
		{"bridge name slash", ovsConf(`,"bridge":{"bridgeName":"br/0"}`, ``), invalid, []string{"host.bridge.bridgeName", `"br/0"`}},
		{"bridge name leading dash", ovsConf(`,"bridge":{"bridgeName":"-br"}`, ``), invalid, []string{"host.bridge.bridgeName", `"-br"`}},
		{"vlan -1", ovsConf(`,"bridge":{"vlanId":-1}`, ``), invalid, []string{"host.bridge.vlanId", "-1"}},
		{"vlan 4096", ovsConf(`,"bridge":{"vlanId":4096}`, ``), invalid, []string{"host.bridge.vlanId", "4096"}},
		{"negative bridgeId", ovsConf(`,"bridge":{"bridgeId":-3}`, ``), invalid, []string{"host.bridge.bridgeId", "-3"}},
		{"ovsdbSocket tcp", ovsConf(`,"ovsdbSocket":"tcp:127.0.0.1:6640"`, ``), invalid, []string{"host.ovsdbSocket", `"tcp:127.0.0.1:6640"`}},
		{"ovsdbSocket relative", ovsConf(`,"ovsdbSocket":"unix:db.sock"`, ``), invalid, []string{"host.ovsdbSocket", `"unix:db.sock"`}},
		{"vpp non-numeric bridge", vppConf(`,"netType":"bridge","bridge":{"bridgeName":"br4"}`, ``), invalid, []string{"host.bridge.bridgeName", `"br4"`}},
		{"vpp signed bridge", vppConf(`,"netType":"bridge","bridge":{"bridgeName":"-4"}`, ``), invalid, []string{"host.bridge.bridgeName", `"-4"`}},
		{"vpp bridge domain 0 by name", vppConf(`,"netType":"bridge","bridge":{"bridgeName":"0"}`, ``), invalid, []string{"host.bridge.bridgeName", `"0"`}},
		{"vpp bridge domain 0 by id", vppConf(`,"netType":"bridge","bridge":{"bridgeId":0}`, ``), invalid, []string{"host.bridge.bridgeId", "0"}},
		{"vpp default netType needs domain", vppConf(``, ``), invalid, []string{"host.bridge.bridgeId"}},
		{"vpp bridge domain too large", vppConf(`,"netType":"bridge","bridge":{"bridgeName":"4294967296"}`, ``), invalid, []string{"host.bridge.bridgeName", `"4294967296"`}},
		{"vpp bridgeId too large", vppConf(`,"netType":"bridge","bridge":{"bridgeId":4294967296}`, ``), invalid, []string{"host.bridge.bridgeId", "4294967296"}},

		// Container side.
		{"container vhost mode equal to host", ovsConf(`,"vhost":{"mode":"client"}`, `,"vhost":{"mode":"client"}`), invalid, []string{"container.vhost.mode", `"client"`}},
		{"container vhost mode equal to default host", ovsConf(``, `,"vhost":{"mode":"server"}`), invalid, []string{"container.vhost.mode", `"server"`}},
		{"container vhost mode unknown", ovsConf(``, `,"vhost":{"mode":"any"}`), invalid, []string{"container.vhost.mode", `"any"`}},
		{"container iftype differs", ovsConf(``, `,"iftype":"memif"`), invalid, []string{"container.iftype", `"memif"`}},
		{"container iftype unknown", ovsConf(``, `,"iftype":"tap"`), invalid, []string{"container.iftype", `"tap"`}},
		{"container engine unknown", ovsConf(``, `,"engine":"bess"`), invalid, []string{"container.engine", `"bess"`}},
		{"container netType unknown", ovsConf(``, `,"netType":"l3"`), invalid, []string{"container.netType", `"l3"`}},
		{"container socketfile escapes", ovsConf(``, `,"vhost":{"socketfile":"../x"}`), invalid, []string{"container.vhost.socketfile", `"../x"`}},
		{"container socketfile differs", ovsConf(`,"vhost":{"socketfile":"a"}`, `,"vhost":{"socketfile":"b"}`), invalid, []string{"container.vhost.socketfile", `"b"`}},
		{"container memif role equal to host", vppConf(`,"netType":"none"`, `,"memif":{"role":"master"}`), invalid, []string{"container.memif.role", `"master"`}},
		{"container memif role unknown", vppConf(`,"netType":"none"`, `,"memif":{"role":"x"}`), invalid, []string{"container.memif.role", `"x"`}},
		{"container memif mode differs", vppConf(`,"netType":"none","memif":{"mode":"ip"}`, `,"memif":{"mode":"ethernet"}`), invalid, []string{"container.memif.mode", `"ethernet"`}},
		{"container memif mode unknown", vppConf(`,"netType":"none"`, `,"memif":{"mode":"tun"}`), invalid, []string{"container.memif.mode", `"tun"`}},
		{"container group invalid", ovsConf(``, `,"vhost":{"group":"a b"}`), invalid, []string{"container.vhost.group", `"a b"`}},
		{"container vlan out of range", ovsConf(``, `,"bridge":{"vlanId":4096}`), invalid, []string{"container.bridge.vlanId", "4096"}},
		{"container negative bridgeId", ovsConf(``, `,"bridge":{"bridgeId":-1}`), invalid, []string{"container.bridge.bridgeId", "-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.conf))
			if c != nil {
				t.Errorf("Parse returned a configuration with error %v", err)
			}
			cnitest.CheckError(t, err, tt.code, tt.subs...)
		})
	}
}

func TestValidateSocketfile(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"0123456789ab-net1", true},
		{"memif-0123456789ab-net1.sock", true},
		{"a", true},
		{"A_b.c-d", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"/", false},
		{"a/b", false},
		{"..", false},
		{"a..b", false},
		{".", false},
		{".hidden", false},
		{"-dash", false},
		{"_under", false},
		{"a b", false},
		{"a\x00b", false},
		{"a*", false},
		{"sock\n", false},
		{"ü", false},
	}
	for _, tt := range tests {
		err := ValidateSocketfile(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateSocketfile(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestValidateMAC(t *testing.T) {
	tests := []struct {
		mac string
		ok  bool
	}{
		{"02:00:00:00:00:01", true},
		{"00:1B:21:3A:4C:5D", true},
		{"00-1b-21-3a-4c-5d", true},
		{"001b.213a.4c5d", true},
		{"fe:ff:ff:ff:ff:ff", true},
		{"01:00:5e:00:00:01", false},
		{"ff:ff:ff:ff:ff:ff", false},
		{"33:33:00:00:00:01", false},
		{"02:00:00:00:00:00:00:01", false},
		{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", false},
		{"", false},
		{"02:00:00:00:00", false},
		{"02:00:00:00:00:0g", false},
		{"0200.0000.0001.", false},
	}
	for _, tt := range tests {
		err := ValidateMAC(tt.mac)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateMAC(%q) = %v, want ok=%v", tt.mac, err, tt.ok)
		}
	}
}

func TestBridgeDomainID(t *testing.T) {
	tests := []struct {
		name    string
		bridge  BridgeConf
		want    uint32
		wantErr string
	}{
		{"name", BridgeConf{BridgeName: "4"}, 4, ""},
		{"name with leading zero", BridgeConf{BridgeName: "010"}, 10, ""},
		{"name max", BridgeConf{BridgeName: "16777215"}, 16777215, ""},
		{"id max", BridgeConf{BridgeID: 16777215}, 16777215, ""},
		{"name above VPP's 24 bits", BridgeConf{BridgeName: "16777216"}, 0, `host.bridge.bridgeName "16777216": must be between 1 and 16777215`},
		{"id above VPP's 24 bits", BridgeConf{BridgeID: 16777216}, 0, "host.bridge.bridgeId 16777216: must be between 1 and 16777215"},
		{"name beyond 64 bits", BridgeConf{BridgeName: "99999999999999999999999"}, 0, "must be between 1 and 16777215"},
		{"id", BridgeConf{BridgeID: 9}, 9, ""},
		{"name wins", BridgeConf{BridgeName: "5", BridgeID: 9}, 5, ""},
		{"bad name even with id", BridgeConf{BridgeName: "br", BridgeID: 9}, 0, "host.bridge.bridgeName"},
		{"zero name", BridgeConf{BridgeName: "0"}, 0, "bridge domain 0"},
		{"name overflow", BridgeConf{BridgeName: "4294967297"}, 0, `host.bridge.bridgeName "4294967297": must be between`},
		{"name with sign", BridgeConf{BridgeName: "+4"}, 0, "host.bridge.bridgeName"},
		{"none", BridgeConf{}, 0, "host.bridge.bridgeId"},
		{"negative id", BridgeConf{BridgeID: -1}, 0, "host.bridge.bridgeId"},
		{"id overflow", BridgeConf{BridgeID: 1<<32 + 1}, 0, "host.bridge.bridgeId 4294967297: must be between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &UserSpaceConf{Engine: EngineVPP, Bridge: tt.bridge}
			got, err := h.BridgeDomainID()
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("BridgeDomainID = %d, %v; want %d", got, err, tt.want)
				}
				return
			}
			if got != 0 {
				t.Errorf("BridgeDomainID = %d with an error", got)
			}
			cnitest.CheckError(t, err, types.ErrInvalidNetworkConfig, tt.wantErr)
		})
	}
}

func TestMACPrecedence(t *testing.T) {
	const (
		rc   = "02:00:00:00:00:01"
		cni  = "02:00:00:00:00:02"
		env  = "02:00:00:00:00:03"
		conf = "02:00:00:00:00:04"
	)
	tests := []struct {
		name               string
		rc, cni, env, conf string
		want               string
	}{
		{"all set: runtimeConfig", rc, cni, env, conf, rc},
		{"args.cni next", "", cni, env, conf, cni},
		{"CNI_ARGS next", "", "", env, conf, env},
		{"conf last", "", "", "", conf, conf},
		{"none", "", "", "", "", ""},
		{"runtimeConfig over conf", rc, "", "", conf, rc},
		{"args.cni over conf", "", cni, "", conf, cni},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.conf != "" {
				extra += `,"mac":"` + tt.conf + `"`
			}
			if tt.rc != "" {
				extra += `,"runtimeConfig":{"mac":"` + tt.rc + `"}`
			}
			if tt.cni != "" {
				extra += `,"args":{"cni":{"mac":"` + tt.cni + `"}}`
			}
			c, err := Parse([]byte(topConf(extra)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			envArgs := "K8S_POD_NAME=p"
			if tt.env != "" {
				envArgs += ";MAC=" + tt.env
			}
			a, err := ParseArgs(envArgs)
			if err != nil {
				t.Fatalf("ParseArgs: %v", err)
			}
			if got := c.MACFor(a); got != tt.want {
				t.Errorf("MACFor = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseResultReparses checks that a parsed, normalized configuration is
// itself a valid configuration (the plugin hands the container side on).
func TestParseResultReparses(t *testing.T) {
	for _, in := range []string{vppExample, ovsExample, notesExample} {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-Parse(%s): %v", out, err)
		}
		if c2.Host != c.Host {
			t.Errorf("host changed on re-parse: %+v -> %+v", c.Host, c2.Host)
		}
	}
}

// TestNetConfMarshalJSON guards against the embedded types.PluginConf's
// MarshalJSON being promoted: it would encode only the PluginConf fields.
func TestNetConfMarshalJSON(t *testing.T) {
	c, err := Parse([]byte(ovsExample))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c.MTU = 9000
	c.RuntimeConfig.MAC = "02:00:00:00:00:09"
	wrapped := struct {
		Ptr *NetConf `json:"ptr"`
		Val NetConf  `json:"val"`
	}{c, *c}
	for name, v := range map[string]any{"pointer": c, "value": *c, "nested": wrapped} {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			docs := []map[string]any{}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if name == "nested" {
				docs = append(docs, m["ptr"].(map[string]any), m["val"].(map[string]any))
			} else {
				docs = append(docs, m)
			}
			for _, d := range docs {
				for _, key := range []string{"cniVersion", "name", "type", "kubeconfig", "logFile", "logLevel", "host", "container", "mtu", "runtimeConfig"} {
					if _, ok := d[key]; !ok {
						t.Errorf("encoding %s lacks %q", data, key)
					}
				}
				host, _ := d["host"].(map[string]any)
				if host["engine"] != "ovs-dpdk" {
					t.Errorf("host.engine = %v in %s", host["engine"], data)
				}
			}
		})
	}
}

// TestGroupRange: every gid chown can set is accepted as written, and a
// group name is left for the node to resolve.
func TestGroupRange(t *testing.T) {
	for _, g := range []string{"0", "1", "00001", "65534", "4294967294", "hugetlbfs", "_vhost$"} {
		c, err := Parse([]byte(ovsConf(`,"vhost":{"group":"`+g+`"}`, ``)))
		if err != nil {
			t.Errorf("group %q: %v", g, err)
			continue
		}
		if c.Host.Vhost.Group != g {
			t.Errorf("group %q became %q", g, c.Host.Vhost.Group)
		}
	}
}

func TestParseGID(t *testing.T) {
	for _, tt := range []struct {
		in      string
		gid     int
		numeric bool
		ok      bool
	}{
		{"0", 0, true, true},
		{"007", 7, true, true},
		{"4294967294", 4294967294, true, true},
		{"4294967295", 0, true, false},
		{"4294967297", 0, true, false},
		{"", 0, false, true},
		{"daemon", 0, false, true},
		{"12a", 0, false, true},
		{"-1", 0, false, true},
		{"+1", 0, false, true},
	} {
		gid, numeric, err := ParseGID(tt.in)
		if gid != tt.gid || numeric != tt.numeric || (err == nil) != tt.ok {
			t.Errorf("ParseGID(%q) = %d, %v, %v; want %d, %v, ok=%v", tt.in, gid, numeric, err, tt.gid, tt.numeric, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "4294967294") {
			t.Errorf("ParseGID(%q): error %q does not give the range", tt.in, err)
		}
	}
}

// TestParseErrorNamesFieldDeterministically: a configuration with two
// invalid fields that validateCommon checks in one loop names the same one
// on every run (the vhost socketfile, checked first). Ranging over a map,
// as the loop once did, named either at random.
func TestParseErrorNamesFieldDeterministically(t *testing.T) {
	conf := []byte(ovsConf(`,"vhost":{"socketfile":"a/b"},"memif":{"socketfile":"c/d"}`, ``))
	const runs = 200
	for i := range runs {
		_, err := Parse(conf)
		var e *types.Error
		if !errors.As(err, &e) {
			t.Fatalf("run %d: Parse = %v, want a CNI error", i, err)
		}
		if !strings.Contains(e.Msg, "host.vhost.socketfile") || strings.Contains(e.Msg, "memif") {
			t.Fatalf("run %d of %d: the error names another field: %s", i+1, runs, e.Msg)
		}
	}
}
