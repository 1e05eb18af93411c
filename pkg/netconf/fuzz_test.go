package netconf

import (
	"encoding/json"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// checkParsed asserts the invariants of a configuration Parse accepted.
func checkParsed(t *testing.T, c *NetConf) {
	t.Helper()
	if !slices.Contains(SupportedVersions, c.CNIVersion) {
		t.Errorf("accepted cniVersion %q", c.CNIVersion)
	}
	if c.Type != "" && c.Type != "userspace" {
		t.Errorf("accepted type %q", c.Type)
	}
	h, ct := c.Host, c.Container
	if h.Engine != EngineOVSDPDK && h.Engine != EngineVPP {
		t.Errorf("accepted host.engine %q", h.Engine)
	}
	if ct.Engine != EngineOVSDPDK && ct.Engine != EngineVPP {
		t.Errorf("accepted container.engine %q", ct.Engine)
	}
	if h.IfType != IfTypeVhostUser && h.IfType != IfTypeMemif {
		t.Errorf("accepted host.iftype %q", h.IfType)
	}
	if ct.IfType != h.IfType {
		t.Errorf("container.iftype %q differs from host.iftype %q", ct.IfType, h.IfType)
	}
	validNet := []string{NetTypeBridge, NetTypeInterface, NetTypeNone}
	if !slices.Contains(validNet, h.NetType) {
		t.Errorf("accepted host.netType %q", h.NetType)
	}
	if ct.NetType != "" && !slices.Contains(validNet, ct.NetType) {
		t.Errorf("accepted container.netType %q", ct.NetType)
	}
	switch h.IfType {
	case IfTypeVhostUser:
		inverse := map[string]string{VhostClient: VhostServer, VhostServer: VhostClient}
		if _, ok := inverse[h.Vhost.Mode]; !ok {
			t.Errorf("host.vhost.mode %q", h.Vhost.Mode)
		}
		if ct.Vhost.Mode != inverse[h.Vhost.Mode] {
			t.Errorf("container.vhost.mode %q is not the inverse of host's %q", ct.Vhost.Mode, h.Vhost.Mode)
		}
	case IfTypeMemif:
		inverse := map[string]string{MemifMaster: MemifSlave, MemifSlave: MemifMaster}
		if _, ok := inverse[h.Memif.Role]; !ok {
			t.Errorf("host.memif.role %q", h.Memif.Role)
		}
		if ct.Memif.Role != inverse[h.Memif.Role] {
			t.Errorf("container.memif.role %q is not the inverse of host's %q", ct.Memif.Role, h.Memif.Role)
		}
		if !slices.Contains([]string{MemifEthernet, MemifIP, MemifInjectPunt}, h.Memif.Mode) || ct.Memif.Mode != h.Memif.Mode {
			t.Errorf("memif modes host %q container %q", h.Memif.Mode, ct.Memif.Mode)
		}
	}
	for _, s := range []string{h.Vhost.Socketfile, h.Memif.Socketfile, ct.Vhost.Socketfile, ct.Memif.Socketfile} {
		if s == "" {
			continue
		}
		if err := ValidateSocketfile(s); err != nil {
			t.Errorf("accepted socketfile %q: %v", s, err)
		}
		if strings.Contains(s, "/") || strings.Contains(s, "..") {
			t.Errorf("accepted socketfile %q", s)
		}
	}
	for _, side := range []UserSpaceConf{h, ct} {
		if side.Bridge.VlanID < 0 || side.Bridge.VlanID > 4095 {
			t.Errorf("accepted vlanId %d", side.Bridge.VlanID)
		}
	}
	switch h.Engine {
	case EngineOVSDPDK:
		if h.IfType != IfTypeVhostUser || h.NetType != NetTypeBridge {
			t.Errorf("ovs-dpdk accepted iftype %q netType %q", h.IfType, h.NetType)
		}
		if n := h.Bridge.BridgeName; n == "" || len(n) > 15 || strings.ContainsAny(n, "/ \x00") {
			t.Errorf("accepted OVS bridge name %q", n)
		}
	case EngineVPP:
		if h.NetType == NetTypeBridge {
			if id, err := h.BridgeDomainID(); err != nil || id == 0 {
				t.Errorf("accepted VPP bridge domain %d: %v", id, err)
			}
		}
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > MaxMTU) {
		t.Errorf("accepted mtu %d", c.MTU)
	}
	for _, m := range []string{c.MAC, c.RuntimeConfig.MAC, c.Args.CNI.MAC} {
		if m == "" {
			continue
		}
		hw, err := net.ParseMAC(m)
		if err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			t.Errorf("accepted MAC %q", m)
		}
	}
	if !logLevels[c.LogLevel] {
		t.Errorf("accepted logLevel %q", c.LogLevel)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		vppExample,
		ovsExample,
		notesExample,
		ovsConf(`,"vhost":{"mode":"client","socketfile":"s1","group":"hugetlbfs"},"bridge":{"vlanId":100}`, `,"vhost":{"socketfile":"s1"}`),
		vppConf(`,"netType":"bridge","bridge":{"bridgeName":"7","bridgeId":4},"memif":{"role":"slave","mode":"ip"}`, ``),
		topConf(`,"mtu":9000,"mac":"02:00:00:00:00:01","runtimeConfig":{"mac":"02:00:00:00:00:02"},"args":{"cni":{"mac":"02:00:00:00:00:03"}}`),
		topConf(`,"sharedDir":"/var/lib/cni/vhostuser/x","logFile":"/var/log/userspace/a.log","kubeconfig":"/etc/cni/net.d/kc"`),
		topConf(`,"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]}`),
		// Bad ones.
		ovsConf(`,"vhost":{"socketfile":"../../etc/passwd"}`, ``),
		ovsConf(`,"bridge":{"vlanId":"10"}`, ``),
		ovsConf(`,"bridge":{"vlanId":4096}`, ``),
		ovsConf(`,"vhost":{"mode":"client"}`, `,"vhost":{"mode":"client"}`),
		vppConf(`,"netType":"bridge","bridge":{"bridgeName":"0"}`, ``),
		topConf(`,"logFile":"/var/log/userspace/../../../etc/shadow"`),
		topConf(`,"sharedDir":"/var/lib/cni/vhostuserx"`),
		`{"cniVersion":"0.2.0"}`,
		`{`,
		``,
		// JSON values that are not objects: null once panicked the binary.
		`null`,
		`1`,
		`-0.5e3`,
		`"x"`,
		`[]`,
		`[{"cniVersion":"1.0.0"}]`,
		`true`,
		`false`,
		" \n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a configuration and error %v", err)
			}
			e, ok := err.(*types.Error)
			if !ok {
				t.Fatalf("error %v is a %T, not a *types.Error", err, err)
			}
			switch e.Code {
			case types.ErrDecodingFailure, types.ErrInvalidNetworkConfig, types.ErrIncompatibleCNIVersion:
			default:
				t.Fatalf("unexpected error code %d: %v", e.Code, e)
			}
			if e.Msg == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkParsed(t, c)
		// What Parse produces is itself a valid configuration with the same
		// host side: the container side the plugin passes on stays valid.
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("normalized configuration %s does not parse: %v", out, err)
		}
		if c2.Host != c.Host {
			t.Fatalf("host side changed on re-parse: %+v -> %+v", c.Host, c2.Host)
		}
		if c.MACFor(&Args{}) != c2.MACFor(&Args{}) {
			t.Fatalf("MAC changed on re-parse")
		}
	})
}

// argsModel is an independent reading of CNI_ARGS for the keys the plugin
// uses: the last value of each key wins.
func argsModel(s string) map[string]string {
	m := map[string]string{}
	for _, pair := range strings.Split(s, ";") {
		if k, v, ok := strings.Cut(pair, "="); ok {
			m[k] = v
		}
	}
	return m
}

func FuzzParseArgs(f *testing.F) {
	for _, seed := range []string{
		"",
		"IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u;IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u",
		"MAC=02:00:00:00:00:01;IP=10.0.0.2/24,fd00::2",
		"K8S_POD_NAME=p;",
		"K8S_POD_NAME=p;;garbage",
		"MAC=01:00:5e:00:00:01",
		"IP=10.0.0.1,",
		"IP=1.2.3.4;IP=5.6.7.8",
		"=;==;K8S_POD_UID==",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		b, err2 := ParseArgs(s)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(a, b) {
			t.Fatalf("ParseArgs(%q) is not deterministic: %+v, %v / %+v, %v", s, a, err, b, err2)
		}
		if err != nil {
			if a != nil {
				t.Fatalf("ParseArgs returned %+v and error %v", a, err)
			}
			e, ok := err.(*types.Error)
			if !ok || e.Code != types.ErrInvalidEnvironmentVariables {
				t.Fatalf("error %v (%T) is not a CNI invalid-environment error", err, err)
			}
			return
		}
		if a == nil {
			t.Fatal("nil Args without an error")
		}
		if a.MAC != "" {
			if err := ValidateMAC(a.MAC); err != nil {
				t.Fatalf("accepted MAC %q: %v", a.MAC, err)
			}
		}
		for _, ip := range a.IPs {
			if net.ParseIP(ip) == nil {
				if _, _, err := net.ParseCIDR(ip); err != nil {
					t.Fatalf("accepted IP %q", ip)
				}
			}
		}
		m := argsModel(s)
		for key, got := range map[string]string{
			"K8S_POD_NAMESPACE":          a.PodNamespace,
			"K8S_POD_NAME":               a.PodName,
			"K8S_POD_UID":                a.PodUID,
			"K8S_POD_INFRA_CONTAINER_ID": a.PodInfraContainerID,
			"MAC":                        a.MAC,
		} {
			if got != m[key] {
				t.Fatalf("ParseArgs(%q): %s = %q, want the last value %q", s, key, got, m[key])
			}
		}
		if v, ok := m["IP"]; ok && len(a.IPs) != len(strings.Split(v, ",")) {
			t.Fatalf("ParseArgs(%q): IPs %q from %q", s, a.IPs, v)
		}
	})
}
