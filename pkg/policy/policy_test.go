package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envWith returns a getenv that knows only PathEnv=path.
func envWith(path string) func(string) string {
	return func(k string) string {
		if k == PathEnv {
			return path
		}
		return ""
	}
}

// writePolicy writes content to a policy file in a temporary directory.
func writePolicy(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadNoFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.json")
	p, err := Load(envWith(missing))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(p, Default()) {
		t.Errorf("Load without a file = %+v, want the defaults %+v", p, Default())
	}
}

func TestDefaults(t *testing.T) {
	d := Default()
	if err := d.validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	// The application notes' layouts must be allowed by default.
	for _, path := range []string{
		"/var/lib/cni/vhostuser/0123456789abcdef",
		"/var/run/vpp/cni/shared",
		"/var/lib/cni/usrspcni",
		"/usr/local/var/run/openvswitch/abc",
	} {
		if _, _, err := d.Match(SharedDir, path); err != nil {
			t.Errorf("default policy refuses sharedDir %q: %v", path, err)
		}
	}
	if d.OVSDBSocket != "unix:/var/run/openvswitch/db.sock" || d.StateDir != "/var/lib/cni/userspace" || d.ShortSocketDir != "/run/userspace-cni" {
		t.Errorf("defaults: ovsdb %q state %q short %q", d.OVSDBSocket, d.StateDir, d.ShortSocketDir)
	}
	// Default returns a fresh value each time.
	d.LogDirs[0] = "/changed"
	if Default().LogDirs[0] != "/var/log" {
		t.Error("Default shares its slices between calls")
	}
}

func TestLoadPartialFile(t *testing.T) {
	path := writePolicy(t, `{"logDirs": ["/srv/log"], "stateDir": "/srv/state", "ovsConfirmTimeoutMs": 250, "unknownKey": true}`)
	p, err := Load(envWith(path))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.LogDirs = []string{"/srv/log"}
	want.StateDir = "/srv/state"
	ms := 250
	want.OVSConfirmTimeoutMs = &ms
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Load = %+v, want %+v", p, want)
	}
	if got := p.OVSConfirmTimeout(); got != 250*time.Millisecond {
		t.Errorf("OVSConfirmTimeout = %v, want 250ms", got)
	}
}

func TestLoadFullFile(t *testing.T) {
	path := writePolicy(t, `{
		"logDirs": ["/l"], "kubeconfigDirs": ["/k"], "sharedDirs": ["/s1", "/s2/"],
		"ovsdbSocketDirs": ["/o"], "ovsdbSocket": "unix:/o/db.sock", "ovsRunDir": "/o/run",
		"stateDir": "/st", "ovsConfirmTimeoutMs": 0, "shortSocketDir": "/sh",
		"vppApiSocketDirs": ["/v"], "vppApiSocket": "/v/api.sock",
		"kubeletRoot": "/kl", "sharedDirVolume": "sd", "deviceInfoDirs": ["/di"], "isolation": "strict"}`)
	p, err := Load(envWith(path))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	zero := 0
	want := &Policy{
		LogDirs: []string{"/l"}, KubeconfigDirs: []string{"/k"}, SharedDirs: []string{"/s1", "/s2/"},
		OVSDBSocketDirs: []string{"/o"}, OVSDBSocket: "unix:/o/db.sock", OVSRunDir: "/o/run",
		StateDir: "/st", OVSConfirmTimeoutMs: &zero, ShortSocketDir: "/sh",
		VPPAPISocketDirs: []string{"/v"}, VPPAPISocket: "/v/api.sock",
		KubeletRoot: "/kl", SharedDirVolume: "sd", DeviceInfoDirs: []string{"/di"}, Isolation: IsolationStrict,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Load = %+v, want %+v", p, want)
	}
	if got := p.OVSConfirmTimeout(); got != 0 {
		t.Errorf("OVSConfirmTimeout = %v, want 0 (explicit)", got)
	}
	// A trailing slash in an allowed dir does not change what it allows.
	if _, rel, err := p.Match(SharedDir, "/s2/x"); err != nil || rel != "x" {
		t.Errorf("Match under /s2/ = %q, %v", rel, err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		subs    []string
	}{
		{"malformed", `{"logDirs": [`, []string{"parsing"}},
		{"wrong type", `{"logDirs": "/var/log"}`, []string{"parsing"}},
		{"not an object", `[]`, []string{"parsing"}},
		{"empty file", ``, []string{"parsing"}},
		{"relative log dir", `{"logDirs": ["var/log"]}`, []string{"logDirs", `"var/log"`, "absolute"}},
		{"dotdot shared dir", `{"sharedDirs": ["/var/run/vpp/../../etc"]}`, []string{"sharedDirs", ".."}},
		{"empty kubeconfig dir", `{"kubeconfigDirs": [""]}`, []string{"kubeconfigDirs", "empty"}},
		{"relative ovsdb dir", `{"ovsdbSocketDirs": ["run/ovs"]}`, []string{"ovsdbSocketDirs"}},
		{"relative state dir", `{"stateDir": "state"}`, []string{"stateDir", `"state"`}},
		{"empty state dir", `{"stateDir": ""}`, []string{"stateDir", "empty"}},
		{"dotdot short dir", `{"shortSocketDir": "/run/../tmp"}`, []string{"shortSocketDir", ".."}},
		{"relative ovs run dir", `{"ovsRunDir": "run"}`, []string{"ovsRunDir", `"run"`}},
		{"negative timeout", `{"ovsConfirmTimeoutMs": -1}`, []string{"ovsConfirmTimeoutMs", "-1"}},
		{"huge timeout", `{"ovsConfirmTimeoutMs": 60001}`, []string{"ovsConfirmTimeoutMs", "60001"}},
		{"NUL byte", `{"logDirs": ["/var/log\u0000x"]}`, []string{"logDirs", "NUL"}},
		{"unknown isolation", `{"isolation": "paranoid"}`, []string{"isolation", `"paranoid"`, `"strict"`}},
		{"isolation in capitals", `{"isolation": "STRICT"}`, []string{"isolation", `"STRICT"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writePolicy(t, tt.content)
			p, err := Load(envWith(path))
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", tt.content, p)
			}
			if p != nil {
				t.Errorf("Load returned a policy with error %v", err)
			}
			msg := err.Error()
			for _, s := range append(tt.subs, path) {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not mention %q", msg, s)
				}
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	// A directory in place of the file is an error, not the defaults.
	dir := t.TempDir()
	if _, err := Load(envWith(dir)); err == nil || !strings.Contains(err.Error(), "reading") {
		t.Errorf("Load of a directory = %v, want a reading error", err)
	}
}

func TestLoadPathEnv(t *testing.T) {
	path := writePolicy(t, `{"stateDir": "/from/env"}`)
	var asked []string
	getenv := func(k string) string {
		asked = append(asked, k)
		return envWith(path)(k)
	}
	p, err := Load(getenv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if p.StateDir != "/from/env" {
		t.Errorf("StateDir = %q: the file named by %s was not read", p.StateDir, PathEnv)
	}
	if len(asked) == 0 || asked[0] != PathEnv {
		t.Errorf("Load asked for %q, want %q", asked, PathEnv)
	}
	if PathEnv != "USERSPACE_CNI_POLICY" || DefaultPath != "/etc/cni/userspace/policy.json" {
		t.Errorf("PathEnv %q DefaultPath %q", PathEnv, DefaultPath)
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{
		LogDirs:         []string{"/var/log", "/srv/logs/"},
		KubeconfigDirs:  []string{"/etc/cni/net.d"},
		SharedDirs:      []string{"/var/lib/cni/vhostuser", "/run/vpp"},
		OVSDBSocketDirs: []string{"/run/openvswitch"},
	}
	tests := []struct {
		kind     Kind
		path     string
		wantBase string
		wantRel  string
		wantErr  string
	}{
		{LogFile, "/var/log/u.log", "/var/log", "u.log", ""},
		{LogFile, "/var/log/a/b/u.log", "/var/log", "a/b/u.log", ""},
		{LogFile, "/var/log", "/var/log", ".", ""},
		{LogFile, "/var/log/", "/var/log", ".", ""},
		{LogFile, "/var/log/./x//y", "/var/log", "x/y", ""},
		{LogFile, "/var/log/..x", "/var/log", "..x", ""},
		{LogFile, "/srv/logs/x.log", "/srv/logs/", "x.log", ""},
		{LogFile, "/var/logger/x", "", "", "not under"},
		{LogFile, "/var/logx", "", "", "not under"},
		{LogFile, "/var", "", "", "not under"},
		{LogFile, "/", "", "", "not under"},
		{LogFile, "/var/log/../etc/passwd", "", "", ".."},
		{LogFile, "/var/log/..", "", "", ".."},
		{LogFile, "var/log/x", "", "", "absolute"},
		{LogFile, "./var/log/x", "", "", "absolute"},
		{LogFile, "", "", "", "empty"},
		{LogFile, "/var/log/x\x00y", "", "", "NUL"},
		{Kubeconfig, "/etc/cni/net.d/multus.d/multus.kubeconfig", "/etc/cni/net.d", "multus.d/multus.kubeconfig", ""},
		{Kubeconfig, "/var/log/kc", "", "", "kubeconfig"},
		{SharedDir, "/run/vpp/cni", "/run/vpp", "cni", ""},
		{SharedDir, "/var/lib/cni/vhostuser", "/var/lib/cni/vhostuser", ".", ""},
		{SharedDir, "/var/lib/cni/vhostuser2/x", "", "", "not under"},
		{OVSDBSocket, "/run/openvswitch/db.sock", "/run/openvswitch", "db.sock", ""},
		{OVSDBSocket, "/run/openvswitchd/db.sock", "", "", "not under"},
		{Kind("other"), "/var/log/x", "", "", "not under"},
	}
	for _, tt := range tests {
		base, rel, err := p.Match(tt.kind, tt.path)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Match(%s, %q) = %q, %q, %v; want error mentioning %q", tt.kind, tt.path, base, rel, err, tt.wantErr)
			}
			if base != "" || rel != "" {
				t.Errorf("Match(%s, %q) returned %q, %q with an error", tt.kind, tt.path, base, rel)
			}
			continue
		}
		if err != nil || base != tt.wantBase || rel != tt.wantRel {
			t.Errorf("Match(%s, %q) = %q, %q, %v; want %q, %q", tt.kind, tt.path, base, rel, err, tt.wantBase, tt.wantRel)
		}
		if err == nil && filepath.Join(base, rel) != filepath.Clean(tt.path) {
			t.Errorf("Match(%s, %q): base+rel = %q", tt.kind, tt.path, filepath.Join(base, rel))
		}
	}
}

func TestMatchEmptyPolicy(t *testing.T) {
	p := &Policy{}
	if _, _, err := p.Match(LogFile, "/var/log/x"); err == nil {
		t.Error("a policy without log dirs allowed a log file")
	}
}

func TestOVSConfirmTimeout(t *testing.T) {
	ms := func(v int) *int { return &v }
	tests := []struct {
		set  *int
		want time.Duration
	}{
		{nil, DefaultOVSConfirmTimeout},
		{ms(0), 0},
		{ms(1500), 1500 * time.Millisecond},
		{ms(60000), time.Minute},
	}
	for _, tt := range tests {
		p := &Policy{OVSConfirmTimeoutMs: tt.set}
		if got := p.OVSConfirmTimeout(); got != tt.want {
			t.Errorf("OVSConfirmTimeout(%v) = %v, want %v", tt.set, got, tt.want)
		}
	}
	if DefaultOVSConfirmTimeout < 0 || DefaultOVSConfirmTimeout > time.Minute {
		t.Errorf("DefaultOVSConfirmTimeout = %v, outside what a policy file may set", DefaultOVSConfirmTimeout)
	}
	// Absent from the file: the default; present: the file's value.
	p, err := Load(envWith(writePolicy(t, `{}`)))
	if err != nil || p.OVSConfirmTimeout() != DefaultOVSConfirmTimeout {
		t.Errorf("OVSConfirmTimeout without the key = %v, %v", p.OVSConfirmTimeout(), err)
	}
	p, err = Load(envWith(writePolicy(t, `{"ovsConfirmTimeoutMs": 1234}`)))
	if err != nil || p.OVSConfirmTimeout() != 1234*time.Millisecond {
		t.Errorf("OVSConfirmTimeout with 1234ms = %v, %v", p.OVSConfirmTimeout(), err)
	}
}

func TestIsolation(t *testing.T) {
	if Default().StrictIsolation() || Default().Isolation != IsolationCompatible {
		t.Errorf("default isolation %q, want %q", Default().Isolation, IsolationCompatible)
	}
	for content, strict := range map[string]bool{
		`{"isolation": "strict"}`:     true,
		`{"isolation": "compatible"}`: false,
		`{"isolation": ""}`:           false,
		`{"logDirs": ["/var/log"]}`:   false,
	} {
		p, err := Load(envWith(writePolicy(t, content)))
		if err != nil {
			t.Fatalf("Load(%s): %v", content, err)
		}
		if p.StrictIsolation() != strict {
			t.Errorf("Load(%s): strict %v, want %v", content, p.StrictIsolation(), strict)
		}
	}
}

func TestMatchDeviceInfoFile(t *testing.T) {
	def := Default()
	ok := map[string]string{
		"/var/run/k8s.cni.cncf.io/devinfo/cni/net1-abc_net1": "cni/net1-abc_net1",
		"/run/k8s.cni.cncf.io/devinfo/cni/x":                 "cni/x",
		"/run/k8s.cni.cncf.io/devinfo/x":                     "x",
	}
	for p, wantRel := range ok {
		_, rel, err := def.Match(DeviceInfoFile, p)
		if err != nil || rel != wantRel {
			t.Errorf("Match(DeviceInfoFile, %q) = %q, %v; want %q", p, rel, err, wantRel)
		}
	}
	bad := []string{
		"",
		"cni/x",
		"/etc/cni/net.d/evil",
		"/var/run/k8s.cni.cncf.io/devinfo",
		"/var/run/k8s.cni.cncf.io/devinfo/",
		"/var/run/k8s.cni.cncf.io/devinfo/cni/../../../../etc/passwd",
		"/var/run/k8s.cni.cncf.io/devinfo/../devinfo/x",
		"/var/run/k8s.cni.cncf.io/devinfo//x",
		"/var/run/k8s.cni.cncf.io/devinfo/./x",
		"/var/run/k8s.cni.cncf.io/devinfoX/x",
		"/var/run/k8s.cni.cncf.io/devinfo/x\x00y",
	}
	for _, p := range bad {
		if _, _, err := def.Match(DeviceInfoFile, p); err == nil {
			t.Errorf("Match(DeviceInfoFile, %q) accepted", p)
		}
	}
	if _, _, err := (&Policy{DeviceInfoDirs: []string{"/srv/devinfo"}}).Match(DeviceInfoFile, "/srv/devinfo/a"); err != nil {
		t.Errorf("configured base refused: %v", err)
	}
	if _, _, err := (&Policy{DeviceInfoDirs: []string{"/srv/devinfo"}}).Match(DeviceInfoFile, "/run/k8s.cni.cncf.io/devinfo/a"); err == nil {
		t.Error("a default base was accepted although the node configured others")
	}
}
