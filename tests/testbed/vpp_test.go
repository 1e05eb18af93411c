package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func startVPP(t *testing.T, opts VPPOptions) *VPP {
	t.Helper()
	v, err := StartVPP(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil {
			t.Errorf("stopping VPP: %v", err)
		}
	})
	return v
}

// TestVPPSideBySide: two VPPs run at once, each with its own sockets and
// shared memory; each loads the three plugins; Stop leaves nothing.
func TestVPPSideBySide(t *testing.T) {
	a, b := startVPP(t, VPPOptions{}), startVPP(t, VPPOptions{})
	for _, v := range []*VPP{a, b} {
		out, err := v.Vppctl("show", "plugins")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range VPPPlugins {
			if !strings.Contains(out, p) {
				t.Errorf("VPP %s did not load %s:\n%s", v.Dir, p, out)
			}
		}
	}
	if _, err := a.Vppctl("create", "bridge-domain", "9"); err != nil {
		t.Fatal(err)
	}
	sa, err := a.State()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.State()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sa.Bridge(9); !ok {
		t.Errorf("bridge domain 9 missing in the first VPP: %s", sa)
	}
	if _, ok := sb.Bridge(9); ok {
		t.Errorf("bridge domain 9 leaked into the second VPP")
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	shm, _ := filepath.Glob("/dev/shm/" + a.Prefix + "-*")
	if _, err := os.Stat(a.Dir); !os.IsNotExist(err) || len(shm) != 0 {
		t.Errorf("after Stop: dir %v, shared memory %v", err, shm)
	}
}

// TestVPPRestartAndPause: a restart loses the configuration and serves on
// the same sockets; a paused VPP comes back after Resume.
func TestVPPRestartAndPause(t *testing.T) {
	v := startVPP(t, VPPOptions{})
	if _, err := v.Vppctl("create", "bridge-domain", "9"); err != nil {
		t.Fatal(err)
	}
	pid := v.PID()
	if err := v.Restart(); err != nil {
		t.Fatal(err)
	}
	if v.PID() == pid || ProcessRunning(pid) {
		t.Errorf("restart kept pid %d", pid)
	}
	st, err := v.State()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Bridge(9); ok || st.String() != "" {
		t.Errorf("a restarted VPP still holds %s", st)
	}
	if err := v.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := v.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.State(); err != nil {
		t.Errorf("after resume: %v", err)
	}
}

// TestVPPInNetNS: a pod's VPP runs in the pod's network namespace.
func TestVPPInNetNS(t *testing.T) {
	ns, err := NewNetNS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	v := startVPP(t, VPPOptions{NetNS: ns.Path()})
	assertInNetNS(t, v.PID(), ns.Path())
}

func TestParseShowInterface(t *testing.T) {
	out := `              Name               Idx    State  MTU (L3/IP4/IP6/MPLS)     Counter          Count     
local0                            0     down          0/0/0/0       
memif5/0                          1      up          9000/0/0/0     rx packets                     5
                                                                    rx bytes                     420
                                                                    tx packets                     7
                                                                    drops                          2`
	c := parseShowInterface(out)
	if c["memif5/0"]["rx packets"] != 5 || c["memif5/0"]["tx packets"] != 7 || c["memif5/0"]["drops"] != 2 || len(c["local0"]) != 0 {
		t.Errorf("parsed %v", c)
	}
}
