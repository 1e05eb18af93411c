package plugin

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
)

const layoutID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// layoutInv is an ADD invocation of conf (JSON) under pol, logging to log.
func layoutInv(t *testing.T, conf string, pol *policy.Policy, log *bytes.Buffer) *invocation {
	t.Helper()
	c, err := netconf.Parse([]byte(conf))
	if err == nil {
		err = pol.Admit(c)
	}
	if err != nil {
		t.Fatalf("Parse(%s): %v", conf, err)
	}
	return &invocation{args: &skel.CmdArgs{ContainerID: layoutID, IfName: "net1"}, conf: c, pol: pol,
		log: slog.New(slog.NewTextHandler(log, nil))}
}

// TestSocketLayoutIsolation: each layout's socket directory, who creates the
// socket, what other pods mount to see it (warned about), and strict
// isolation refusing every layout but the pod's own emptyDir volume.
func TestSocketLayoutIsolation(t *testing.T) {
	const (
		notes     = `{"cniVersion":"0.3.0","type":"userspace","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`
		ovsClient = `{"cniVersion":"1.0.0","host":{"engine":"ovs-dpdk","iftype":"vhostuser","vhost":{"mode":"client"}}}`
		vppNotes  = `{"cniVersion":"1.0.0","host":{"engine":"vpp","iftype":"memif","bridge":{"bridgeId":4}}}`
		vppSlave  = `{"cniVersion":"1.0.0","host":{"engine":"vpp","iftype":"memif","memif":{"role":"slave"},"bridge":{"bridgeId":4}}}`
		shared    = `{"cniVersion":"1.0.0","sharedDir":"/var/lib/cni/usrspcni","host":{"engine":"ovs-dpdk","iftype":"vhostuser","vhost":{"mode":"client"}}}`
	)
	emptyDir := &podContext{dir: "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/shared-dir", mappedDir: "/vhu", emptyDir: true}
	hostPath := &podContext{dir: "/var/lib/cni/usrspcni/pod-a", mappedDir: "/vhu"}
	for _, tc := range []struct {
		name                string
		conf                string
		pc                  *podContext
		dir                 string
		own, shared, create bool
		unlisted, seenBy    string // seenBy: "" for the pod's own volume
	}{
		{"notes, OVS server", notes, nil, filepath.Join(configdata.DefaultOVSSocketBase, layoutID), true, false, false, configdata.DefaultOVSSocketBase, configdata.DefaultOVSSocketBase},
		{"notes, OVS client", ovsClient, nil, filepath.Join(configdata.DefaultOVSSocketBase, layoutID), true, false, true, configdata.DefaultOVSSocketBase, configdata.DefaultOVSSocketBase},
		{"notes, VPP master", vppNotes, nil, configdata.DefaultNotesSocketDir, false, true, false, configdata.DefaultVPPBase, configdata.DefaultVPPBase},
		{"notes, VPP slave", vppSlave, nil, configdata.DefaultNotesSocketDir, false, true, true, configdata.DefaultVPPBase, configdata.DefaultVPPBase},
		{"sharedDir", shared, nil, "/var/lib/cni/usrspcni/0123456789ab", true, false, true, "", "/var/lib/cni/usrspcni"},
		{"hostPath volume", ovsClient, hostPath, hostPath.dir, false, false, true, "", "hostPath"},
		{"emptyDir volume", ovsClient, emptyDir, emptyDir.dir, false, false, true, "", ""},
		{"emptyDir volume, VPP", vppNotes, emptyDir, emptyDir.dir, false, false, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			inv := layoutInv(t, tc.conf, policy.Default(), &log)
			l, err := socketLayout(inv, tc.pc)
			if err != nil {
				t.Fatalf("socketLayout: %v", err)
			}
			if l.Dir != tc.dir || l.OwnDir != tc.own || l.Shared != tc.shared || l.PodCreates != tc.create || l.Unlisted != tc.unlisted {
				t.Errorf("layout %+v, want dir %s own %v shared %v podCreates %v unlisted %q", l, tc.dir, tc.own, tc.shared, tc.create, tc.unlisted)
			}
			warned := strings.Contains(log.String(), "level=WARN") && strings.Contains(log.String(), "visible to other pods")
			if tc.seenBy == "" && warned {
				t.Errorf("warned about the pod's own volume: %s", log.String())
			}
			if tc.seenBy != "" && (!warned || !strings.Contains(log.String(), tc.seenBy) || !strings.Contains(log.String(), l.Dir)) {
				t.Errorf("no warning naming %s and %s: %q", l.Dir, tc.seenBy, log.String())
			}

			strict := policy.Default()
			strict.Isolation = policy.IsolationStrict
			log.Reset()
			inv = layoutInv(t, tc.conf, strict, &log)
			l, err = socketLayout(inv, tc.pc)
			if tc.seenBy == "" {
				if err != nil {
					t.Errorf("strict isolation refused the pod's own volume: %v", err)
				}
				return
			}
			var ce *types.Error
			if l != nil || !errors.As(err, &ce) || ce.Code != types.ErrInvalidNetworkConfig ||
				!strings.Contains(ce.Msg, `isolation "strict"`) || !strings.Contains(ce.Msg, tc.dir) || !strings.Contains(ce.Msg, `"shared-dir"`) {
				t.Errorf("strict isolation: %v, want a configuration error naming the policy's isolation, %s and the volume", err, tc.dir)
			}
		})
	}
}

// The notes' own directories are made unlistable only where the policy
// gives the plugin the directory: never above a policy entry.
func TestSocketLayoutUnlistedWithinPolicy(t *testing.T) {
	pol := policy.Default()
	pol.SharedDirs = []string{configdata.DefaultNotesSocketDir, filepath.Join(configdata.DefaultOVSSocketBase, layoutID)}
	for _, conf := range []string{
		`{"cniVersion":"1.0.0","host":{"engine":"vpp","iftype":"memif","bridge":{"bridgeId":4}}}`,
		`{"cniVersion":"1.0.0","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`,
	} {
		var log bytes.Buffer
		l, err := socketLayout(layoutInv(t, conf, pol, &log), nil)
		if err != nil {
			t.Fatal(err)
		}
		if l.Unlisted != "" {
			t.Errorf("%s: unlisted %q above the policy's base %s", conf, l.Unlisted, l.Base)
		}
		if !strings.Contains(log.String(), "visible to other pods") {
			t.Errorf("%s: no warning", conf)
		}
	}
}

// The notes' VPP per-pod directory (remote-/addData- files) is the
// plugin's own, and its base is made unlistable too.
func TestNotesLayoutUnlisted(t *testing.T) {
	var log bytes.Buffer
	inv := layoutInv(t, `{"cniVersion":"1.0.0","host":{"engine":"vpp","iftype":"memif","bridge":{"bridgeId":4}}}`, policy.Default(), &log)
	l, err := notesLayout(inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Dir != filepath.Join(configdata.DefaultVPPBase, layoutID) || !l.OwnDir || l.PodCreates || l.Unlisted != configdata.DefaultVPPBase {
		t.Errorf("notes layout %+v", l)
	}
}

// A sharedDir other pods can list is pointed out: they can find this pod's
// directory there.
func TestSocketLayoutListableWarning(t *testing.T) {
	for mode, want := range map[os.FileMode]bool{0o755: true, 0o711: false} {
		dir := t.TempDir()
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		pol := policy.Default()
		pol.SharedDirs = []string{dir}
		var log bytes.Buffer
		conf := `{"cniVersion":"1.0.0","sharedDir":"` + dir + `","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`
		if _, err := socketLayout(layoutInv(t, conf, pol, &log), nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(log.String(), "listable="); got != want {
			t.Errorf("sharedDir mode %v: listable pointed out %v, want %v: %s", mode, got, want, log.String())
		}
	}
}
