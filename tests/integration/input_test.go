package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// invocation is one run of the plugin binary: what it printed and how it
// exited.
type invocation struct {
	stdout, stderr []byte
	exit           int
}

// runBinary runs the plugin binary with exactly stdin for one CNI command,
// the CNI_* variables set as a runtime sets them, and reports its exit
// status instead of interpreting it.
func runBinary(t *testing.T, command string, stdin []byte, p *pod, ifName string) invocation {
	t.Helper()
	cmd := exec.Command(filepath.Join(h.binDir, "userspace"))
	cmd.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+p.id, "CNI_NETNS="+p.ns.Path(),
		"CNI_IFNAME="+ifName, "CNI_PATH="+h.binDir,
		"CNI_ARGS=IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-"+p.id[:8])
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	inv := invocation{stdout: out.Bytes(), stderr: errOut.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		inv.exit = exitErr.ExitCode()
	default:
		t.Fatalf("running the plugin: %v", err)
	}
	return inv
}

// cniErrorOut decodes the CNI error the binary printed on stdout: stdout
// must hold that error and nothing else.
func cniErrorOut(t *testing.T, inv invocation) *types.Error {
	t.Helper()
	var e types.Error
	dec := json.NewDecoder(bytes.NewReader(inv.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() {
		t.Fatalf("stdout is not one CNI error (%v): %q\nstderr: %s", err, inv.stdout, inv.stderr)
	}
	if e.Code == 0 || e.Msg == "" {
		t.Fatalf("CNI error without code or message: %q", inv.stdout)
	}
	return &e
}

// TestScalarConfigs feeds the binary network configurations that are valid
// JSON but not objects, and empty input, for every verb that reads one.
// Before the fix `null` panicked (assignment to entry in nil map, exit 2):
// each must be a CNI decoding error on stdout, naming what is wrong, with
// exit status 1, and leave nothing behind.
func TestScalarConfigs(t *testing.T) {
	cases := []struct {
		stdin string
		want  string // in the message
	}{
		{`null`, "null"},
		{`1`, "number"},
		{`-0.5e3`, "number"},
		{`"x"`, "string"},
		{`[]`, "array"},
		{`[{"cniVersion":"1.0.0"}]`, "array"},
		{`true`, "boolean"},
		{`false`, "boolean"},
		{``, "empty"},
		{" \n\t", "empty"},
		{`{`, "malformed"},
		{`{"cniVersion":"1.0.0"} {}`, "malformed"},
		{"\xef\xbb\xbf{}", "malformed"},
	}
	for _, verb := range []string{"ADD", "DEL", "CHECK", "GC", "STATUS"} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%q", verb, c.stdin), func(t *testing.T) {
				p := newPod(t)
				inv := runBinary(t, verb, []byte(c.stdin), p, "net1")
				if inv.exit != 1 {
					t.Errorf("exit status %d, want 1 (a CNI error)\nstdout: %s\nstderr: %s", inv.exit, inv.stdout, inv.stderr)
				}
				if bytes.Contains(inv.stderr, []byte("panic")) || bytes.Contains(inv.stderr, []byte("goroutine ")) {
					t.Errorf("the plugin panicked:\n%s", inv.stderr)
				}
				e := cniErrorOut(t, inv)
				if e.Code != types.ErrDecodingFailure {
					t.Errorf("code %d, want %d (decoding failure): %s", e.Code, types.ErrDecodingFailure, e.Msg)
				}
				if !strings.Contains(e.Msg, "network configuration") || !strings.Contains(e.Msg, c.want) {
					t.Errorf("message %q does not say the network configuration is %s", e.Msg, c.want)
				}
				assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
			})
		}
	}
}
