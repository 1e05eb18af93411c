package deviceinfo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/userspace-cni/userspace/pkg/policy"
)

func TestJSONShape(t *testing.T) {
	for _, tc := range []struct {
		d    *DeviceInfo
		want string
	}{
		{NewVhostUser("server", "/var/lib/cni/usrspcni/0123456789ab-net1"),
			`{"type":"vhost-user","version":"1.1.0","vhost-user":{"mode":"server","path":"/var/lib/cni/usrspcni/0123456789ab-net1"}}`},
		{NewMemif("slave", "/run/vpp/memif-0123456789ab-net1.sock", "ethernet"),
			`{"type":"memif","version":"1.1.0","memif":{"role":"slave","path":"/run/vpp/memif-0123456789ab-net1.sock","mode":"ethernet"}}`},
		{NewMemif("master", "/s.sock", "inject-punt"),
			`{"type":"memif","version":"1.1.0","memif":{"role":"master","path":"/s.sock","mode":"punt"}}`},
	} {
		got, err := json.Marshal(tc.d)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
		if err := tc.d.Validate(); err != nil {
			t.Errorf("Validate(%s): %v", got, err)
		}
	}
}

func TestValidateRefuses(t *testing.T) {
	for name, d := range map[string]*DeviceInfo{
		"nil":            nil,
		"version":        {Type: TypeVhostUser, Version: "1.0.0", VhostUser: &VhostUser{Mode: "client", Path: "/s"}},
		"type":           {Type: "pci", Version: Version},
		"vhost mode":     NewVhostUser("both", "/s"),
		"vhost relative": NewVhostUser("client", "s"),
		"vhost missing":  {Type: TypeVhostUser, Version: Version},
		"memif role":     NewMemif("primary", "/s", "ethernet"),
		"memif mode":     NewMemif("slave", "/s", "l3"),
		"both":           {Type: TypeMemif, Version: Version, Memif: &Memif{Role: "slave", Path: "/s", Mode: "ip"}, VhostUser: &VhostUser{}},
	} {
		if err := d.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, d)
		}
	}
}

func TestWriteReadRemove(t *testing.T) {
	base := filepath.Join(t.TempDir(), "devinfo")
	bases := []string{base}
	p := filepath.Join(base, "cni", "memif-network-0123456789abcdef_net1")
	d := NewMemif("slave", "/var/run/vpp/cni/shared/memif-0123456789ab-net1.sock", "ethernet")
	if err := Write(pol(bases), p, d); err != nil {
		t.Fatal(err)
	}
	got, err := Read(pol(bases), p)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Memif != *d.Memif || got.Type != d.Type || got.Version != Version {
		t.Errorf("read back %+v, wrote %+v", got, d)
	}
	// Overwrite in place; no temporary file is left behind.
	d2 := NewVhostUser("client", "/x/y")
	if err := Write(pol(bases), p, d2); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 || entries[0].Name() != filepath.Base(p) {
		t.Errorf("directory holds %v, want only the device info file", entries)
	}
	if got, _ := Read(pol(bases), p); got == nil || got.VhostUser == nil || *got.VhostUser != *d2.VhostUser {
		t.Errorf("after overwrite read %+v", got)
	}
	if err := Remove(pol(bases), p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("file still there after Remove: %v", err)
	}
	if err := Remove(pol(bases), p); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	absent := filepath.Join(t.TempDir(), "absent")
	if err := Remove(pol([]string{absent}), filepath.Join(absent, "x")); err != nil {
		t.Errorf("Remove under a missing base: %v", err)
	}
}

func TestWriteRefusesEscapes(t *testing.T) {
	tmp := t.TempDir()
	base := filepath.Join(tmp, "devinfo")
	outside := filepath.Join(tmp, "outside")
	for _, d := range []string{base, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A directory link inside the base that leads out of it.
	if err := os.Symlink(outside, filepath.Join(base, "cni")); err != nil {
		t.Fatal(err)
	}
	d := NewVhostUser("client", "/s")
	err := Write(pol([]string{base}), filepath.Join(base, "cni", "x"), d)
	if err == nil {
		t.Fatal("Write followed a symbolic link out of the base")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("files written outside the base: %v", entries)
	}
	if err := Write(pol([]string{base}), "/etc/x", d); err == nil || !strings.Contains(err.Error(), "not under") {
		t.Errorf("Write outside the bases: %v", err)
	}
	if err := Write(pol([]string{base}), filepath.Join(base, "y"), &DeviceInfo{Type: "pci", Version: Version}); err == nil {
		t.Error("Write accepted an invalid device info")
	}
}

// pol is a node policy that allows device-info files under dirs.
func pol(dirs []string) *policy.Policy { return &policy.Policy{DeviceInfoDirs: dirs} }
