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
	"syscall"
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

// TestVhostGroupRefused: a vhost.group the node cannot resolve, or a
// numeric one outside the gids chown can set, is refused before anything is
// created, with an error naming the field and the value. Before the fix an
// unknown group left a 0700 per-pod directory behind, and 4294967297 became
// gid 1 (4294967296 root): strconv.Atoi, then a 32-bit truncation in chown.
func TestVhostGroupRefused(t *testing.T) {
	for _, mode := range []string{"server", "client"} {
		for _, c := range []struct {
			group string
			code  uint
		}{
			{"nosuchgroup", types.ErrInvalidNetworkConfig},
			{"4294967296", types.ErrInvalidNetworkConfig},
			{"4294967297", types.ErrInvalidNetworkConfig},
			{"4294967295", types.ErrInvalidNetworkConfig},
			{"9999999999", types.ErrInvalidNetworkConfig},
		} {
			t.Run(mode+"/"+c.group, func(t *testing.T) {
				allocs := len(ipamAllocations(t))
				for _, layout := range []string{"notes", "sharedDir"} {
					host := map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
						"vhost": map[string]any{"mode": mode, "group": c.group}, "bridge": map[string]any{"bridgeName": "br-grp-bad"}}
					conf := map[string]any{"cniVersion": "1.0.0", "name": "grp", "type": "userspace", "host": host,
						"ipam": hostLocal("10.58.0.0/24")}
					p := newPod(t)
					dir := filepath.Join("/var/lib/cni/vhostuser", p.id)
					if layout == "sharedDir" {
						conf["sharedDir"] = h.shared
						dir = filepath.Join(h.shared, p.id[:12])
					}
					stdin, _ := json.Marshal(conf)
					inv := runBinary(t, "ADD", stdin, p, "net1")
					if inv.exit == 0 {
						// Accepted: take it back, then fail.
						t.Cleanup(func() { runBinary(t, "DEL", stdin, p, "net1") })
					}
					e := cniErrorOut(t, inv)
					if e.Code != c.code {
						t.Errorf("%s: code %d, want %d: %s", layout, e.Code, c.code, e.Msg)
					}
					if want := fmt.Sprintf("host.vhost.group %q", c.group); !strings.Contains(e.Msg, want) {
						t.Errorf("%s: message %q does not name %s", layout, e.Msg, want)
					}
					assertClean(t, p, dir)
					if n := len(ipamAllocations(t)); n != allocs {
						t.Errorf("%s: IPAM allocations changed from %d to %d", layout, allocs, n)
					}
				}
				if bridgeExists(t, "br-grp-bad") {
					t.Errorf("a refused configuration created its bridge")
				}
			})
		}
	}
}

// TestVhostGroupHighestGID: the largest gid chown can set is accepted and
// applied as it is, not truncated.
func TestVhostGroupHighestGID(t *testing.T) {
	list := confList(t, "1.0.0", "grp-max", map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
		"vhost": map[string]any{"group": "4294967294"}, "bridge": map[string]any{"bridgeName": "br-grp-max"}}})
	p := newPod(t)
	attach(t, list, p, "net1")
	dir := filepath.Join("/var/lib/cni/vhostuser", p.id)
	for _, path := range []string{dir, filepath.Join(dir, p.id[:12]+"-net1")} {
		if gid := statGID(t, path); gid != 4294967294 {
			t.Errorf("%s: gid %d, want 4294967294", path, gid)
		}
	}
}

// TestVPPBridgeDomainRange: VPP keeps bridge domain ids in 24 bits; a
// larger one is refused up front, naming the field, not sent to VPP.
func TestVPPBridgeDomainRange(t *testing.T) {
	before := vppSnapshot(t)
	for _, c := range []struct {
		bridge map[string]any
		want   string
	}{
		{map[string]any{"bridgeId": 16777216}, "host.bridge.bridgeId 16777216"},
		{map[string]any{"bridgeId": 4294967297}, "host.bridge.bridgeId 4294967297"},
		{map[string]any{"bridgeName": "16777216"}, `host.bridge.bridgeName "16777216"`},
		{map[string]any{"bridgeName": "4294967297"}, `host.bridge.bridgeName "4294967297"`},
	} {
		t.Run(c.want, func(t *testing.T) {
			conf := vppExample()
			conf["host"].(map[string]any)["bridge"] = c.bridge
			delete(conf, "ipam")
			conf["cniVersion"], conf["name"], conf["type"] = "1.0.0", "bd-range", "userspace"
			stdin, _ := json.Marshal(conf)
			p := newPod(t)
			e := cniErrorOut(t, runBinary(t, "ADD", stdin, p, "net1"))
			if e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, c.want) {
				t.Errorf("error %d %q, want code %d naming %s", e.Code, e.Msg, types.ErrInvalidNetworkConfig, c.want)
			}
			assertVPPClean(t, p, "net1")
		})
	}
	if after := vppSnapshot(t); after != before {
		t.Errorf("VPP changed:\n%s\nwas:\n%s", after, before)
	}
}

func statGID(t *testing.T, path string) uint32 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Gid
}
