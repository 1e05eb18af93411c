package sandboxid

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const sandbox = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"

// The fixtures are mount tables as each runtime sets up a pod's app
// container; each also mounts paths named after the app container itself,
// which must not be taken for the sandbox.
var cases = []struct{ file, want, err string }{
	{"containerd.mountinfo", sandbox, ""},
	{"crio.mountinfo", sandbox, ""},
	{"docker.mountinfo", sandbox, ""},
	{"resolvonly.mountinfo", sandbox, ""},
	{"host.mountinfo", "", "no sandbox id"},
}

func TestFromFile(t *testing.T) {
	for _, tt := range cases {
		got, err := FromFile(filepath.Join("testdata", tt.file))
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: FromFile = %q, %v; want %q, %q", tt.file, got, err, tt.want, tt.err)
		}
	}
	if _, err := FromFile("testdata/absent"); !os.IsNotExist(err) {
		t.Errorf("absent file: %v", err)
	}
}

// The shell drop-in for the notes' get-prefix.sh agrees with the package
// on every fixture.
func TestGetPrefixScript(t *testing.T) {
	script, err := filepath.Abs("../../deploy/get-prefix.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range cases {
		cmd := exec.Command("sh", script)
		cmd.Env = append(os.Environ(), "MOUNTINFO="+filepath.Join("testdata", tt.file))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		got := strings.TrimSpace(string(out))
		if tt.err == "" && (err != nil || got != tt.want || string(out) != tt.want+"\n") {
			t.Errorf("%s: get-prefix.sh = %q, %v, stderr %q; want %q", tt.file, out, err, stderr.String(), tt.want)
		}
		if tt.err != "" && (err == nil || got != "" || !strings.Contains(stderr.String(), tt.err)) {
			t.Errorf("%s: get-prefix.sh = %q, %v, stderr %q; want failure with %q", tt.file, out, err, stderr.String(), tt.err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`: "/a b", `/a\011b\012c\134d`: "/a\tb\nc\\d", `/plain`: "/plain", `/x\04`: `/x\04`, `/x\089`: `/x\089`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpand(t *testing.T) {
	mi := filepath.Join("testdata", "crio.mountinfo")
	a, b, c := "/var/run/vpp/cni/{sandbox}", "/vhu/fixed", ""
	if err := Expand(mi, &a, &b, &c); err != nil || a != "/var/run/vpp/cni/"+sandbox || b != "/vhu/fixed" || c != "" {
		t.Errorf("Expand = %q %q %q, %v", a, b, c, err)
	}
	fixed := "/vhu/fixed"
	if err := Expand("/nonexistent", &fixed); err != nil || fixed != "/vhu/fixed" {
		t.Errorf("Expand without placeholder = %q, %v", fixed, err)
	}
	p := "/x/{sandbox}"
	if err := Expand(filepath.Join("testdata", "host.mountinfo"), &p); err == nil {
		t.Error("Expand without a sandbox mount succeeded")
	}
}
