package policy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/internal/cnitest"
	"github.com/userspace-cni/userspace/pkg/netconf"
)

// topConf is a valid OVS-DPDK configuration with extra top-level fields
// (starting with ",").
func topConf(extra string) string {
	return `{"cniVersion":"1.0.0","type":"userspace","name":"net",` +
		`"host":{"engine":"ovs-dpdk","iftype":"vhostuser"}` + extra + `}`
}

func ovsConf(hostExtra string) string {
	return `{"cniVersion":"1.0.0","type":"userspace","name":"net",` +
		`"host":{"engine":"ovs-dpdk","iftype":"vhostuser"` + hostExtra + `},"container":{"engine":"ovs-dpdk"}}`
}

// admit parses conf and admits it under p, as the plugin does.
func admit(t *testing.T, p *Policy, conf string) (*netconf.NetConf, error) {
	t.Helper()
	c, err := netconf.Parse([]byte(conf))
	if err != nil {
		t.Fatalf("Parse(%s): %v", conf, err)
	}
	return c, p.Admit(c)
}

func TestAdmitDefaultPolicy(t *testing.T) {
	const invalid = types.ErrInvalidNetworkConfig
	for _, tt := range []struct {
		name, conf string
		subs       []string
	}{
		{"logFile outside", topConf(`,"logFile":"/tmp/u.log"`), []string{"logFile", `"/tmp/u.log"`}},
		{"logFile sibling prefix", topConf(`,"logFile":"/var/logger/u.log"`), []string{"logFile", `"/var/logger/u.log"`}},
		{"logFile dotdot", topConf(`,"logFile":"/var/log/../../etc/passwd"`), []string{"logFile", `"/var/log/../../etc/passwd"`, ".."}},
		{"logFile relative", topConf(`,"logFile":"var/log/u.log"`), []string{"logFile", `"var/log/u.log"`, "absolute"}},
		{"kubeconfig outside", topConf(`,"kubeconfig":"/root/.kube/config"`), []string{"kubeconfig", `"/root/.kube/config"`}},
		{"kubeconfig dotdot", topConf(`,"kubeconfig":"/etc/cni/net.d/../../shadow"`), []string{"kubeconfig", ".."}},
		{"kubeconfig relative", topConf(`,"kubeconfig":"kc"`), []string{"kubeconfig", `"kc"`}},
		{"sharedDir outside", topConf(`,"sharedDir":"/tmp/shared"`), []string{"sharedDir", `"/tmp/shared"`}},
		{"sharedDir dotdot", topConf(`,"sharedDir":"/var/run/vpp/../../etc"`), []string{"sharedDir", ".."}},
		{"sharedDir relative", topConf(`,"sharedDir":"./vpp"`), []string{"sharedDir", `"./vpp"`}},
		{"vppApiSocket outside", `{"cniVersion":"1.0.0","name":"n","host":{"engine":"vpp","iftype":"memif","netType":"interface","vppApiSocket":"/tmp/api.sock"}}`,
			[]string{"host.vppApiSocket", `"/tmp/api.sock"`}},
		{"device info outside", topConf(`,"runtimeConfig":{"CNIDeviceInfoFile":"/etc/passwd"}`),
			[]string{"runtimeConfig.CNIDeviceInfoFile", `"/etc/passwd"`}},
		{"device info not clean", topConf(`,"runtimeConfig":{"CNIDeviceInfoFile":"/run/k8s.cni.cncf.io/devinfo//a"}`),
			[]string{"runtimeConfig.CNIDeviceInfoFile", "clean"}},
		{"device info the directory", topConf(`,"runtimeConfig":{"CNIDeviceInfoFile":"/run/k8s.cni.cncf.io/devinfo"}`),
			[]string{"runtimeConfig.CNIDeviceInfoFile"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := admit(t, Default(), tt.conf)
			cnitest.CheckError(t, err, invalid, tt.subs...)
		})
	}
	ok := topConf(`,"logFile":"/var/log/u.log","kubeconfig":"/etc/cni/net.d/kc","sharedDir":"/var/run/vpp",` +
		`"runtimeConfig":{"CNIDeviceInfoFile":"/var/run/k8s.cni.cncf.io/devinfo/cni/net-id_net1"}`)
	if _, err := admit(t, Default(), ok); err != nil {
		t.Errorf("Admit of paths the default policy allows: %v", err)
	}
}

func TestAdmitRestrictivePolicy(t *testing.T) {
	pol := &Policy{
		LogDirs:        []string{"/srv/logs"},
		KubeconfigDirs: []string{"/srv/kube"},
		SharedDirs:     []string{"/srv/shared"},
	}
	if _, err := admit(t, pol, topConf(`,"logFile":"/srv/logs/a/b.log","kubeconfig":"/srv/kube/kc","sharedDir":"/srv/shared"`)); err != nil {
		t.Fatalf("Admit with paths under the policy's dirs: %v", err)
	}
	// The default locations are refused by a policy that does not list them.
	for _, f := range []struct{ field, path string }{
		{"logFile", "/var/log/u.log"},
		{"kubeconfig", "/etc/cni/net.d/kc"},
		{"sharedDir", "/var/lib/cni/vhostuser"},
	} {
		_, err := admit(t, pol, topConf(`,"`+f.field+`":"`+f.path+`"`))
		cnitest.CheckError(t, err, types.ErrInvalidNetworkConfig, f.field, f.path)
	}
}

func TestOVSDBEndpointOf(t *testing.T) {
	tests := []struct {
		name     string
		socket   string // host.ovsdbSocket in the configuration
		policy   string // policy's default endpoint ("" keeps Default's)
		want     string
		wantErrs []string
	}{
		{"policy default", "", "", "unix:/var/run/openvswitch/db.sock", nil},
		{"unix form", "unix:/run/openvswitch/db.sock", "", "unix:/run/openvswitch/db.sock", nil},
		{"path form", "/usr/local/var/run/openvswitch/db.sock", "", "unix:/usr/local/var/run/openvswitch/db.sock", nil},
		{"outside allowed dirs", "unix:/tmp/db.sock", "", "", []string{"host.ovsdbSocket", `"unix:/tmp/db.sock"`}},
		{"sibling prefix", "/var/run/openvswitchx/db.sock", "", "", []string{"host.ovsdbSocket", `"/var/run/openvswitchx/db.sock"`}},
		{"dotdot", "unix:/run/openvswitch/../../etc/db.sock", "", "", []string{"host.ovsdbSocket", ".."}},
		{"policy default outside", "", "unix:/tmp/db.sock", "", []string{"node policy ovsdbSocket", `"unix:/tmp/db.sock"`}},
		{"policy default tcp", "", "tcp:127.0.0.1:6640", "", []string{"node policy ovsdbSocket", `"tcp:127.0.0.1:6640"`, "unix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Default()
			if tt.policy != "" {
				p.OVSDBSocket = tt.policy
			}
			extra := ""
			if tt.socket != "" {
				extra = `,"ovsdbSocket":"` + tt.socket + `"`
			}
			c, err := netconf.Parse([]byte(ovsConf(extra)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := p.OVSDBEndpointOf(c)
			if tt.wantErrs == nil {
				if err != nil || got != tt.want {
					t.Errorf("OVSDBEndpointOf = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if got != "" {
				t.Errorf("OVSDBEndpointOf = %q with an error", got)
			}
			cnitest.CheckError(t, err, types.ErrInvalidNetworkConfig, tt.wantErrs...)
		})
	}
	// Non-unix endpoints are refused even on a NetConf that did not come
	// from Parse.
	c := &netconf.NetConf{Host: netconf.UserSpaceConf{OVSDBSocket: "tcp:1.2.3.4:6640"}}
	_, err := Default().OVSDBEndpointOf(c)
	cnitest.CheckError(t, err, types.ErrInvalidNetworkConfig, "host.ovsdbSocket", `"tcp:1.2.3.4:6640"`)
}

// underDir reports whether path is dir or lies beneath it, computed
// independently of Match.
func underDir(path string, dirs []string) bool {
	if !filepath.IsAbs(path) || slices.Contains(strings.Split(path, "/"), "..") || strings.ContainsRune(path, 0) {
		return false
	}
	clean := filepath.Clean(path)
	for _, d := range dirs {
		d = filepath.Clean(d)
		if clean == d || strings.HasPrefix(clean, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// FuzzAdmit: whatever a configuration says, what Admit accepts lies under
// the directories the policy allows for it.
func FuzzAdmit(f *testing.F) {
	for _, seed := range []string{
		topConf(`,"sharedDir":"/var/lib/cni/vhostuser/x","logFile":"/var/log/userspace/a.log","kubeconfig":"/etc/cni/net.d/kc"`),
		topConf(`,"logFile":"/var/log/userspace/../../../etc/shadow"`),
		topConf(`,"sharedDir":"/var/lib/cni/vhostuserx"`),
		topConf(`,"sharedDir":"/run/vpp//x/./y"`),
		topConf(`,"runtimeConfig":{"CNIDeviceInfoFile":"/run/k8s.cni.cncf.io/devinfo/a"}`),
		`{"cniVersion":"1.0.0","name":"n","host":{"engine":"vpp","iftype":"memif","netType":"interface","vppApiSocket":"/run/vpp/api.sock"}}`,
	} {
		f.Add([]byte(seed))
	}
	p := Default()
	p.LogDirs = []string{"/var/log/userspace"}
	p.SharedDirs = []string{"/var/lib/cni/vhostuser", "/run/vpp"}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := netconf.Parse(data)
		if err != nil {
			return
		}
		if err := p.Admit(c); err != nil {
			if _, ok := err.(*types.Error); !ok {
				t.Fatalf("error %v is a %T, not a *types.Error", err, err)
			}
			return
		}
		for _, f := range []struct {
			field, value string
			dirs         []string
		}{
			{"sharedDir", c.SharedDir, p.SharedDirs},
			{"logFile", c.LogFile, p.LogDirs},
			{"kubeconfig", c.KubeConfig, p.KubeconfigDirs},
			{"host.vppApiSocket", c.Host.VPPAPISocket, p.VPPAPISocketDirs},
			{"runtimeConfig.CNIDeviceInfoFile", c.RuntimeConfig.CNIDeviceInfoFile, p.DeviceInfoDirs},
		} {
			if f.value != "" && !underDir(f.value, f.dirs) {
				t.Errorf("admitted %s %q outside %v", f.field, f.value, f.dirs)
			}
		}
	})
}
