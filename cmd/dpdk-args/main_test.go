package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
)

const id = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"

func entry(ifName string) configdata.ConfigData {
	return configdata.ConfigData{ContainerID: id, IfName: ifName, Name: "userspace-ovs-net-1",
		Config: netconf.UserSpaceConf{Engine: "ovs-dpdk", IfType: "vhostuser", Vhost: netconf.VhostConf{Mode: "client", Socketfile: id[:12] + "-" + ifName}}}
}

func writeJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func runCmd(t *testing.T, args ...string) (string, string, []string, error) {
	t.Helper()
	var stdout, stderr strings.Builder
	var execed []string
	err := run(args, &stdout, &stderr, func(argv0 string, argv, env []string) error {
		execed = append([]string{argv0}, argv...)
		return nil
	})
	return stdout.String(), stderr.String(), execed, err
}

func TestPrintFromAnnotations(t *testing.T) {
	ann := filepath.Join(t.TempDir(), "annotations")
	list, _ := json.Marshal([]configdata.ConfigData{entry("net2"), entry("net1")})
	data := fmt.Sprintf("%s=%q\n%s=%q", configdata.AnnotationConfigData, list, configdata.AnnotationMappedDir, "/var/lib/cni/usrspcni")
	if err := os.WriteFile(ann, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, _, err := runCmd(t, "-annotations", ann, "-wait", "1s")
	want := "--vdev=virtio_user0,path=/var/lib/cni/usrspcni/3f9a1c2b4d5e-net1 --vdev=virtio_user1,path=/var/lib/cni/usrspcni/3f9a1c2b4d5e-net2\n"
	if err != nil || out != want {
		t.Errorf("dpdk-args = %q, %v; want %q", out, err, want)
	}
	if !strings.Contains(errOut, "port 1 is net2 (vhostuser, /var/lib/cni/usrspcni/3f9a1c2b4d5e-net2)") {
		t.Errorf("stderr = %q", errOut)
	}
	out, errOut, _, err = runCmd(t, "-annotations", ann, "-if", "net2", "-q")
	if err != nil || out != "--vdev=virtio_user0,path=/var/lib/cni/usrspcni/3f9a1c2b4d5e-net2\n" || errOut != "" {
		t.Errorf("-if net2 -q = %q, %q, %v", out, errOut, err)
	}
	if _, _, _, err := runCmd(t, "-annotations", ann, "-if", "net7", "-wait", "50ms"); err == nil || !strings.Contains(err.Error(), "no attachment for net7") {
		t.Errorf("-if net7: %v", err)
	}
}

// The notes' layout: /vhu/<sandbox id>/, the id read from mountinfo.
func TestSandboxDirAndExec(t *testing.T) {
	vhu := t.TempDir()
	dir := filepath.Join(vhu, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(dir, configdata.FileName(id, "net1")), entry("net1"))
	mi := filepath.Join(t.TempDir(), "mountinfo")
	line := fmt.Sprintf("1 0 8:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/%s/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n", id)
	if err := os.WriteFile(mi, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, _, err := runCmd(t, "-sandbox-dir", vhu, "-mountinfo", mi)
	if want := "--vdev=virtio_user0,path=" + dir + "/3f9a1c2b4d5e-net1\n"; err != nil || out != want {
		t.Errorf("-sandbox-dir = %q, %v; want %q", out, err, want)
	}
	_, _, execed, err := runCmd(t, "-sandbox-dir", vhu, "-mountinfo", mi, "exec", "--", "sh", "-l", "0", "--", "--auto-start")
	want := []string{"sh", "-l", "0", "--vdev=virtio_user0,path=" + dir + "/3f9a1c2b4d5e-net1", "--", "--auto-start"}
	if err != nil || len(execed) < 1 || !strings.HasSuffix(execed[0], "/sh") || !reflect.DeepEqual(execed[1:], want) {
		t.Errorf("exec = %q, %v; want %q", execed, err, want)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-sandbox-dir", vhu, "-mountinfo", "/nonexistent"}, "no such file"},
		{[]string{"-sandbox-dir", vhu, "-dir", dir}, "not both"},
		{[]string{"-dir", dir, "run"}, `unknown command "run"`},
		{[]string{"-dir", dir, "exec", "--"}, "no application"},
		{[]string{"-dir", dir, "exec", "--", "no-such-app-xyz"}, "executable file not found"},
		{[]string{"-bogus"}, "flag provided but not defined"},
	} {
		if _, _, _, err := runCmd(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("dpdk-args %q: %v; want %q", tt.args, err, tt.want)
		}
	}
}
