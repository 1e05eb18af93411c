package multus

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// isoNAD is the published OVS-DPDK example with the plugin's kubeconfig,
// host vhost mode and group, logging warnings to logFile.
func isoNAD(mode, group, logFile string) string {
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "type": "userspace", "kubeconfig": %q, "logFile": %q, "logLevel": "warning",
 "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge", "vhost": {"mode": %q, "group": %q}, "bridge": {"bridgeName": "br-iso"}}}`,
		bed.kube.PluginKubeconfig, logFile, mode, group)
}

// TestIsolationPodVolume: the recommended layout (a kubeconfig and the
// pod's own emptyDir shared-dir volume) under the node policy's strict
// isolation, against the real API server and OVS-DPDK. The socket and its
// config data are in the pod's volume and nowhere other pods look, with the
// volume's own permissions, no warning, and with vhost.group the switch's
// socket is the group's. A hostPath shared-dir volume, which other pods can
// mount too, is refused, naming the policy field, and leaves nothing. The
// emptyDir cases run through the real Multus; the refusal is a direct call
// for its CNI code (7), which Multus would replace.
func TestIsolationPodVolume(t *testing.T) {
	if err := writePolicy(func(p *policy.Policy) { p.Isolation = policy.IsolationStrict }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := writePolicy(nil); err != nil {
			t.Error(err)
		}
	})
	grp, err := user.LookupGroup("daemon")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(grp.Gid)
	logFile := filepath.Join(bed.root, "log", "isolation.log")
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ nad, mode, group string }{
		{"userspace-iso-client", "client", ""},
		{"userspace-iso-server", "server", "daemon"},
	} {
		if err := bed.kube.CreateNAD(ctx(), "default", c.nad, isoNAD(c.mode, c.group, logFile)); err != nil {
			t.Fatal(err)
		}
		t.Run("emptyDir/"+c.mode, func(t *testing.T) {
			s := newPod(t, "default", c.nad, "emptyDir", "/vhu")
			vol := filepath.Join(bed.kubeletRoot, "pods", string(s.pod.UID), "volumes", "kubernetes.io~empty-dir", "shared-dir")
			// The kubelet creates an emptyDir 0777 before the sandbox.
			if err := os.MkdirAll(vol, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(vol, 0o777); err != nil {
				t.Fatal(err)
			}
			_ = os.Remove(logFile)
			s.multusAdd(t)
			sock := filepath.Join(vol, s.id[:12]+"-net1")
			out, _ := bed.ovs.Vsctl("--bare", "--columns=options", "find", "Interface", "external_ids:userspace-cni/container-id="+s.id)
			if c.mode == "client" {
				var path string
				for _, f := range strings.Fields(out) {
					if v, ok := strings.CutPrefix(f, "vhost-server-path="); ok {
						path = strings.Trim(v, `"`)
					}
				}
				if real, err := filepath.EvalSymlinks(filepath.Dir(path)); err != nil || real != vol {
					t.Errorf("OVS connects to %q (%q, %v), want a socket in the pod's volume %s", path, real, err, vol)
				}
			} else {
				fi, err := os.Lstat(sock)
				if err != nil || fi.Mode() != os.ModeSocket|0o660 || fi.Sys().(*syscall.Stat_t).Gid != uint32(gid) {
					t.Errorf("the switch's socket in the pod's volume: %v (%v), want mode 0660 of group %d", fi, err, gid)
				}
			}
			if _, err := os.Stat(filepath.Join(vol, configdata.FileName(s.id, "net1"))); err != nil {
				t.Errorf("config data not in the pod's volume: %v", err)
			}
			if fi, err := os.Stat(vol); err != nil || fi.Mode().Perm() != 0o777 {
				t.Errorf("the pod's volume changed mode: %v %v", fi, err)
			}
			// Nothing of the pod where other pods look: even a process that
			// may list every directory the policy lets pods share (root in
			// a pod, the worst case) finds no trace of it.
			for _, d := range sharedBases() {
				_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
					if err == nil && strings.Contains(e.Name(), s.id[:12]) {
						t.Errorf("%s is where other pods can see it", path)
					}
					return nil
				})
			}
			if data, _ := os.ReadFile(logFile); strings.Contains(string(data), "level=WARN") {
				t.Errorf("a warning for the pod's own volume:\n%s", data)
			}
			s.multusDel(t)
			checkMultusDelClean(t, s)
		})
	}
	t.Run("hostPath refused", func(t *testing.T) {
		s := newPod(t, "default", "userspace-iso-client", "hostPath", mapped)
		d := s.delegates(t)[0]
		_, err := bed.cni.AddNetwork(ctx(), d.net, d.rt)
		vol := filepath.Join(bed.shared, s.pod.Name)
		e := testbed.WantCNIError(t, err)
		if e.Code != 7 || !strings.Contains(e.Msg, `isolation "strict"`) || !strings.Contains(e.Msg, vol) || !strings.Contains(e.Msg, "hostPath") {
			t.Errorf("error %d %q, want code 7 naming the policy's isolation, the volume %s and that it is a hostPath", e.Code, e.Msg, vol)
		}
		if ovsPorts(t, s.id) != 0 || len(records(t, s.id)) != 0 {
			t.Errorf("the refused ADD left a port or a record")
		}
		if entries, _ := s.annotation(t); len(entries) != 0 {
			t.Errorf("the refused ADD annotated the pod: %+v", entries)
		}
		if names, _ := os.ReadDir(vol); len(names) != 0 {
			t.Errorf("the refused ADD left %d files in the volume", len(names))
		}
		if err := bed.cni.DelNetwork(ctx(), d.net, d.rt); err != nil {
			t.Errorf("DEL after the refused ADD: %v", err)
		}
	})
}

// sharedBases are the directories the test bed's policy lets pods share,
// except the kubelet's pods directory, which holds each pod's own volumes
// and no pod mounts.
func sharedBases() []string {
	pol, err := policy.Load(os.Getenv)
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range pol.SharedDirs {
		if d != filepath.Join(pol.KubeletRoot, "pods") {
			out = append(out, d)
		}
	}
	return out
}
