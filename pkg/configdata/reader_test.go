package configdata

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/pkg/netconf"
)

// kubeletFormat writes annotations the way the kubelet's downward-API
// volume does: sorted keys, key=%q per line, no newline after the last.
func kubeletFormat(m map[string]string) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%v=%q\n", k, m[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func entries(t *testing.T, ds ...*ConfigData) string {
	t.Helper()
	data, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func memifSample(ifName, sock string) *ConfigData {
	d := sample()
	d.IfName = ifName
	d.Config = netconf.UserSpaceConf{
		Engine: netconf.EngineVPP, IfType: netconf.IfTypeMemif, NetType: netconf.NetTypeInterface,
		Memif: netconf.MemifConf{Role: netconf.MemifSlave, Mode: netconf.MemifEthernet, Socketfile: sock},
	}
	return d
}

func TestParseAnnotationsKubeletFile(t *testing.T) {
	// A file as the kubelet wrote it, escapes and all.
	file := `k8s.v1.cni.cncf.io/network-status="[{\n    \"name\": \"default/x\"\n}]"
kubernetes.io/config.seen="2026-11-22T10:00:00.000000000Z"
odd="tab\there \u00e9 \\ \x01 end"
userspace/mapped-dir="/var/lib/cni/usrspcni"`
	got, err := ParseAnnotations([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"k8s.v1.cni.cncf.io/network-status": "[{\n    \"name\": \"default/x\"\n}]",
		"kubernetes.io/config.seen":         "2026-11-22T10:00:00.000000000Z",
		"odd":                               "tab\there é \\ \x01 end",
		"userspace/mapped-dir":              "/var/lib/cni/usrspcni",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseAnnotations = %q, want %q", got, want)
	}
	// Round trip through the kubelet's own formatting.
	back, err := ParseAnnotations([]byte(kubeletFormat(want) + "\r\n"))
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("round trip = %q, %v", back, err)
	}
}

func TestParseAnnotationsErrors(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"novalue", `line 1: want key="value"`},
		{`=“x”`, `line 1: want key="value"`},
		{"a=\"x\"\nb=plain", `line 2: value of "b" is not a quoted string`},
		{`a="unterminated`, `value of "a" is not a quoted string`},
		{`a='x'`, `value of "a" is not a quoted string`},
		{"a=\"1\"\na=\"2\"", `annotation "a" appears twice`},
		{`a="x" trailing`, `value of "a" is not a quoted string`},
	} {
		_, err := ParseAnnotations([]byte(tt.file))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseAnnotations(%q) = %v, want %q", tt.file, err, tt.want)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReadAnnotationsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "annotations")
	vhost := sample()
	memif := memifSample("net2", "memif-0123456789ab-net2.sock")
	for _, tt := range []struct {
		name   string
		ann    map[string]string
		socket []string
	}{
		{"mapped-dir", map[string]string{AnnotationMappedDir: "/vhu", AnnotationConfigData: entries(t, memif, vhost)},
			[]string{"/vhu/0123456789ab-net1", "/vhu/memif-0123456789ab-net2.sock"}},
		// The original joined without a slash: "/vhu" + "sock".
		{"mapped-dir with a trailing slash", map[string]string{AnnotationMappedDir: "/vhu/", AnnotationConfigData: entries(t, vhost)},
			[]string{"/vhu/0123456789ab-net1"}},
		{"hand-written legacy key", map[string]string{AnnotationMappedDirLegacy: "/var/lib/cni/mine", AnnotationConfigData: entries(t, vhost)},
			[]string{"/var/lib/cni/mine/0123456789ab-net1"}},
		{"no mapped-dir", map[string]string{AnnotationConfigData: entries(t, vhost)},
			[]string{DefaultMappedDir + "/0123456789ab-net1"}},
		{"not annotated yet", map[string]string{"other": "x"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, file, kubeletFormat(tt.ann))
			atts, err := ReadAnnotationsFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range atts {
				got = append(got, a.SocketPath)
				if a.Source != file {
					t.Errorf("source = %q", a.Source)
				}
			}
			if !reflect.DeepEqual(got, tt.socket) {
				t.Errorf("sockets = %q, want %q", got, tt.socket)
			}
		})
	}
	writeFile(t, file, kubeletFormat(map[string]string{AnnotationConfigData: entries(t, memif, vhost)}))
	atts, err := ReadAnnotationsFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 || atts[0].IfName != "net1" || atts[1].IfName != "net2" || atts[1].Config.Memif.Role != netconf.MemifSlave ||
		atts[0].IPResult == nil || atts[0].IPResult.IPs[0].Address.String() != "172.22.0.2/24" || atts[0].Name != "userspace-ovs-net-1" {
		t.Errorf("attachments = %+v", atts)
	}
	if _, err := ReadAnnotationsFile(filepath.Join(dir, "absent")); !os.IsNotExist(err) {
		t.Errorf("absent file: %v", err)
	}
}

// memifWith is a memif entry changed by f, as annotation text.
func memifWith(t *testing.T, f func(m *netconf.MemifConf)) string {
	d := memifSample("net1", "memif-0123456789ab-net1.sock")
	f(&d.Config.Memif)
	return entries(t, d)
}

func TestHostileValues(t *testing.T) {
	file := filepath.Join(t.TempDir(), "annotations")
	with := func(f func(d *ConfigData)) string {
		d := sample()
		f(d)
		return entries(t, d)
	}
	for _, tt := range []struct {
		name string
		ann  map[string]string
		want string
	}{
		{"socketfile climbs", map[string]string{AnnotationConfigData: with(func(d *ConfigData) { d.Config.Vhost.Socketfile = "../../etc/shadow" })},
			`config.vhost.socketfile "../../etc/shadow": must be a file name without "/" or ".."`},
		{"socketfile with a slash", map[string]string{AnnotationConfigData: with(func(d *ConfigData) { d.Config.Vhost.Socketfile = "a/b" })},
			`config.vhost.socketfile "a/b"`},
		{"socketfile empty", map[string]string{AnnotationConfigData: with(func(d *ConfigData) { d.Config.Vhost.Socketfile = "" })},
			`config.vhost.socketfile ""`},
		{"memif socketfile absolute", map[string]string{AnnotationConfigData: entries(t, memifSample("net1", "/etc/passwd"))},
			`config.memif.socketfile "/etc/passwd"`},
		// Sizes that would wrap around in VPP's and DPDK's narrower types.
		{"memif buffer size beyond 16 bits", map[string]string{AnnotationConfigData: memifWith(t, func(m *netconf.MemifConf) { m.BufferSize = 65536 })},
			`config.memif.bufferSize 65536`},
		{"memif queues beyond 8 bits", map[string]string{AnnotationConfigData: memifWith(t, func(m *netconf.MemifConf) { m.Queues = 256 })},
			`config.memif.queues 256`},
		{"memif ring size beyond VPP's", map[string]string{AnnotationConfigData: memifWith(t, func(m *netconf.MemifConf) { m.RingSize = 1 << 32 })},
			`config.memif.ringSize 4294967296`},
		{"memif negative buffer size", map[string]string{AnnotationConfigData: memifWith(t, func(m *netconf.MemifConf) { m.BufferSize = -1 })},
			`config.memif.bufferSize -1`},
		{"unknown iftype", map[string]string{AnnotationConfigData: with(func(d *ConfigData) { d.Config.IfType = "veth" })},
			`config.iftype "veth"`},
		{"ifName with a slash", map[string]string{AnnotationConfigData: with(func(d *ConfigData) { d.IfName = "../net1" })},
			`ifName "../net1"`},
		{"ifName too long", map[string]string{AnnotationConfigData: with(func(d *ConfigData) { d.IfName = "net1234567890abcdef" })},
			`ifName "net1234567890abcdef"`},
		{"relative mapped-dir", map[string]string{AnnotationMappedDir: "vhu", AnnotationConfigData: entries(t, sample())},
			`annotation userspace/mapped-dir: "vhu" must be an absolute, clean path`},
		{"dotted mapped-dir", map[string]string{AnnotationMappedDir: "/vhu/../etc", AnnotationConfigData: entries(t, sample())},
			`"/vhu/../etc" must be an absolute, clean path`},
		{"not a list", map[string]string{AnnotationConfigData: `{"containerId":"x"}`},
			`annotation userspace/configuration-data is not a JSON list of attachments`},
		{"two entries for one interface", map[string]string{AnnotationConfigData: entries(t, sample(), sample())},
			`two attachments for interface net1`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, file, kubeletFormat(tt.ann))
			atts, err := ReadAnnotationsFile(file)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadAnnotationsFile = %+v, %v; want an error with %q", atts, err, tt.want)
			}
			if !strings.Contains(err.Error(), file) {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
	big := filepath.Join(t.TempDir(), "annotations")
	writeFile(t, big, "a=\""+strings.Repeat("x", maxInput)+"\"")
	if _, err := ReadAnnotationsFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestReadDir(t *testing.T) {
	l := layout(t)
	if atts, err := ReadDir(l.Dir); err != nil || len(atts) != 0 {
		t.Fatalf("empty directory = %v, %v", atts, err)
	}
	for _, d := range []*ConfigData{sample(), memifSample("net2", "memif-0123456789ab-net2.sock")} {
		if _, err := Write(l, d); err != nil {
			t.Fatal(err)
		}
	}
	atts, err := ReadDir(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 || atts[0].SocketPath != filepath.Join(l.Dir, "0123456789ab-net1") ||
		atts[1].SocketPath != filepath.Join(l.Dir, "memif-0123456789ab-net2.sock") ||
		atts[1].Source != filepath.Join(l.Dir, FileName(sample().ContainerID, "net2")) {
		t.Errorf("attachments = %+v", atts)
	}
	bad := sample()
	bad.IfName = "net3"
	bad.Config.Vhost.Socketfile = ".."
	if _, err := Write(l, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDir(l.Dir); err == nil || !strings.Contains(err.Error(), `config.vhost.socketfile ".."`) {
		t.Errorf("hostile socketfile: %v", err)
	}
	if _, err := ReadDir("relative/dir"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative directory: %v", err)
	}
	if _, err := ReadDir(filepath.Join(l.Dir, "absent")); !os.IsNotExist(err) {
		t.Errorf("absent directory: %v", err)
	}
}

func TestReadNotesDir(t *testing.T) {
	data := t.TempDir()
	d := memifSample("net1", "memif-0123456789ab-net1.sock")
	remote := map[string]any{
		"cniVersion": "0.3.1", "type": "userspace", "name": "memif-network",
		"host":      map[string]any{"engine": "vpp", "iftype": "memif", "netType": "bridge", "memif": map[string]any{"role": "master", "mode": "ethernet"}, "bridge": map[string]any{"bridgeId": 4}},
		"container": d.Config,
		"ipam":      map[string]any{"type": "", "subnet": "172.22.0.0/24"},
	}
	add := map[string]any{"containerId": d.ContainerID, "ifName": "net1", "ipResult": d.IPResult}
	for name, v := range map[string]any{"remote-net1.json": remote, "addData-net1.json": add} {
		b, _ := json.Marshal(v)
		writeFile(t, filepath.Join(data, name), string(b))
	}
	atts, err := ReadNotesDir(data, DefaultNotesSocketDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 1 || atts[0].SocketPath != "/var/run/vpp/cni/shared/memif-0123456789ab-net1.sock" || atts[0].Name != "memif-network" ||
		atts[0].ContainerID != d.ContainerID || atts[0].Config != d.Config || atts[0].IPResult.IPs[0].Address.String() != "172.22.0.2/24" {
		t.Errorf("attachments = %+v", atts)
	}
	// An addData whose remote half was not copied is an error naming it.
	writeFile(t, filepath.Join(data, "addData-net2.json"), `{"containerId":"x","ifName":"net2"}`)
	if _, err := ReadNotesDir(data, DefaultNotesSocketDir); err == nil || !strings.Contains(err.Error(), "remote-net2.json") {
		t.Errorf("missing remote file: %v", err)
	}
	writeFile(t, filepath.Join(data, "addData-net2.json"), `{"containerId":"x","ifName":"net9"}`)
	if _, err := ReadNotesDir(data, DefaultNotesSocketDir); err == nil || !strings.Contains(err.Error(), `ifName "net9" does not match`) {
		t.Errorf("mismatched ifName: %v", err)
	}
}

func TestLoadWaits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "annotations")
	ctx := context.Background()
	// The kubelet has not written the entry yet: Load waits for it.
	go func() {
		time.Sleep(150 * time.Millisecond)
		writeFile(t, file, kubeletFormat(map[string]string{"other": "1"}))
		time.Sleep(150 * time.Millisecond)
		writeFile(t, file, kubeletFormat(map[string]string{AnnotationConfigData: entries(t, sample())}))
	}()
	start := time.Now()
	atts, err := Load(ctx, Options{AnnotationsFile: file, Wait: 10 * time.Second, Poll: 20 * time.Millisecond})
	if err != nil || len(atts) != 1 || atts[0].IfName != "net1" {
		t.Fatalf("Load = %+v, %v", atts, err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("Load returned after %s, before the entry was written", waited)
	}

	// Waiting for a named interface that never comes ends in an error
	// naming it; the ones present are not enough.
	_, err = Load(ctx, Options{AnnotationsFile: file, IfNames: []string{"net1", "net2"}, Wait: 100 * time.Millisecond, Poll: 10 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no attachment for net2 in "+file) {
		t.Errorf("missing net2: %v", err)
	}
	atts, err = Load(ctx, Options{AnnotationsFile: file, IfNames: []string{"net1"}, Wait: time.Second})
	if err != nil || len(atts) != 1 {
		t.Errorf("net1 only = %+v, %v", atts, err)
	}

	// A malformed file is reported at once, not waited on.
	writeFile(t, file, "garbage")
	start = time.Now()
	if _, err := Load(ctx, Options{AnnotationsFile: file, Wait: 5 * time.Second}); err == nil || time.Since(start) > time.Second {
		t.Errorf("malformed file: %v after %s", err, time.Since(start))
	}
	// An absent file, after the wait, says so.
	absent := filepath.Join(t.TempDir(), "none")
	if _, err := Load(ctx, Options{AnnotationsFile: absent, Wait: 50 * time.Millisecond}); err == nil || !os.IsNotExist(errorsUnwrapAll(err)) {
		t.Errorf("absent file: %v", err)
	}
	if _, err := Load(ctx, Options{Wait: time.Second}); err == nil || !strings.Contains(err.Error(), "no source") {
		t.Errorf("no source: %v", err)
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestLoadDirAndNotes(t *testing.T) {
	l := layout(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = Write(l, sample())
	}()
	atts, err := Load(context.Background(), Options{Dir: l.Dir, IfNames: []string{"net1"}, Wait: 5 * time.Second, Poll: 10 * time.Millisecond})
	if err != nil || len(atts) != 1 || atts[0].SocketPath != filepath.Join(l.Dir, "0123456789ab-net1") {
		t.Fatalf("Load(dir) = %+v, %v", atts, err)
	}
	data := t.TempDir()
	_, err = Load(context.Background(), Options{NotesDataDir: data, NotesSocketDir: "/sock", Wait: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no attachments in "+data) {
		t.Errorf("empty notes dir: %v", err)
	}
}
