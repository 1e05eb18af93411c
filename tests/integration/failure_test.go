package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// TestVswitchdDown: with ovs-vswitchd stopped the database still accepts
// ports, but nobody would create them. ADD's pre-flight must see that (nobody
// holds the switch's OVSDB lock) and fail at once with code 50, rolling back
// everything including the IP allocation; STATUS reports 50 too.
func TestVswitchdDown(t *testing.T) {
	conf := ovsExample("br-down")
	conf["ipam"] = hostLocal("10.58.0.0/24")
	list := confList(t, "1.1.0", "down", conf)
	p := newPod(t)
	allocs := len(ipamAllocations(t))

	if err := h.ovs.StopVswitchd(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.ovs.StartVswitchd(); err != nil {
			t.Fatalf("restarting ovs-vswitchd: %v", err)
		}
	})
	// ovsdb-server releases the dead switch's lock when it notices the
	// closed connection, a moment after the process is gone: wait for
	// STATUS to see it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := h.cni.GetStatusNetworkList(ctx(), list)
		e := testbed.CNIError(err)
		if e != nil && e.Code == types.ErrPluginNotAvailable && strings.Contains(e.Msg, "ovs-vswitchd") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("STATUS still %v 5 s after ovs-vswitchd stopped; want code 50 naming ovs-vswitchd", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	res, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1"))
	if err == nil {
		_ = h.cni.DelNetworkList(ctx(), list, p.rt("net1"))
		t.Fatalf("ADD succeeded with ovs-vswitchd stopped: %v", res)
	}
	e := testbed.WantCNIError(t, err)
	if !strings.Contains(e.Msg, "ovs-vswitchd") || e.Code != types.ErrPluginNotAvailable {
		t.Errorf("error %d %q should blame ovs-vswitchd with code 50", e.Code, e.Msg)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("ADD took %v to notice the switch is down", d)
	}
	assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
	if n := len(ipamAllocations(t)); n != allocs {
		t.Errorf("failed ADD kept its IP allocation (%d -> %d)", allocs, n)
	}
	if bridgeExists(t, "br-down") {
		t.Errorf("failed ADD left the bridge it created")
	}
}

// TestSwitchRejectsPort makes ovs-vswitchd fail to create a server-mode
// port (its socket path is taken by a directory): ADD reports the switch's
// Interface.error and rolls back.
func TestSwitchRejectsPort(t *testing.T) {
	p := newPod(t)
	blocker := filepath.Join(h.ovs.RunDir, p.id[:12]+"-net1")
	if err := os.Mkdir(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(blocker)
	list := confList(t, "1.0.0", "reject", map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
		"bridge": map[string]any{"bridgeName": "br-rej"}}})
	_, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1"))
	e := testbed.WantCNIError(t, err)
	if !strings.Contains(e.Msg, "rejected") && !strings.Contains(e.Msg, "could not open") {
		t.Errorf("error %q should carry the switch's verdict", e.Msg)
	}
	assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
}

// TestSwitchUnreachable: no OVSDB at the configured socket. ADD and STATUS
// fail fast with code 50; DEL of an existing attachment keeps its record
// (so the retry knows what to remove) and succeeds once the switch is back.
func TestSwitchUnreachable(t *testing.T) {
	conf := ovsExample("br-unr")
	conf["ipam"] = hostLocal("10.61.0.0/24")
	list := confList(t, "1.1.0", "unreach", conf)
	allocs := len(ipamAllocations(t))
	p := newPod(t)
	rt := p.rt("net1")
	if _, err := h.cni.AddNetworkList(ctx(), list, rt); err != nil {
		t.Fatal(err)
	}
	withPolicy(t, func(pol *policy.Policy) { pol.OVSDBSocket = "unix:" + filepath.Join(h.ovs.Dir, "missing.sock") })

	other := newPod(t)
	start := time.Now()
	e := testbed.WantCNIError(t, func() error { _, err := h.cni.AddNetworkList(ctx(), list, other.rt("net1")); return err }())
	if e.Code != types.ErrPluginNotAvailable || !strings.Contains(e.Msg, "missing.sock") {
		t.Errorf("ADD error %d %q: want code 50 naming the socket", e.Code, e.Msg)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("ADD took %v to find the switch unreachable", d)
	}
	assertClean(t, other, filepath.Join("/var/lib/cni/vhostuser", other.id))

	e = testbed.WantCNIError(t, h.cni.GetStatusNetworkList(ctx(), list))
	if e.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS code %d, want 50: %s", e.Code, e.Msg)
	}

	if err := h.cni.DelNetworkList(ctx(), list, rt); err == nil {
		t.Errorf("DEL succeeded although the port could not be removed")
	}
	if len(records(t)) == 0 || len(interfacesOf(t, p.id)) != 1 {
		t.Fatalf("a failed DEL must keep the record and cannot have removed the port")
	}
	if n := len(ipamAllocations(t)); n != allocs {
		t.Errorf("DEL must release IPAM even when the switch is unreachable (%d -> %d allocations)", allocs, n)
	}
	if err := h.writePolicy(nil); err != nil {
		t.Fatal(err)
	}
	if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
		t.Fatalf("retried DEL: %v", err)
	}
	assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
}

// TestSwitchWithoutDPDK points the plugin at a switch whose vswitchd runs
// without DPDK: ADD refuses before touching the database; STATUS says 50.
func TestSwitchWithoutDPDK(t *testing.T) {
	plain, err := testbed.StartOVS(testbed.OVSOptions{BaseDir: h.root, NoDPDK: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := plain.Stop(); err != nil {
			t.Error(err)
		}
	})
	withPolicy(t, func(p *policy.Policy) {
		p.OVSDBSocketDirs = append(p.OVSDBSocketDirs, plain.Dir)
		p.OVSDBSocket = plain.DBEndpoint()
	})
	list := confList(t, "1.1.0", "nodpdk", ovsExample("br-nodpdk"))
	p := newPod(t)
	e := testbed.WantCNIError(t, func() error { _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); return err }())
	if !strings.Contains(e.Msg, "dpdk_initialized") || e.Code != types.ErrPluginNotAvailable {
		t.Errorf("ADD error %d %q: want code 50 explaining DPDK is not initialised", e.Code, e.Msg)
	}
	out, err := plain.Vsctl("list-br")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("the non-DPDK switch was modified: %q %v", out, err)
	}
	e = testbed.WantCNIError(t, h.cni.GetStatusNetworkList(ctx(), list))
	if e.Code != types.ErrPluginNotAvailable || !strings.Contains(e.Msg, "DPDK") {
		t.Errorf("STATUS %d %q: want 50 naming DPDK", e.Code, e.Msg)
	}
	assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
}

// TestDelTolerance: DEL succeeds when the network namespace is gone, when
// the record is lost (the port is found by ownership), when the port was
// removed behind the plugin's back, and when nothing was ever added.
func TestDelTolerance(t *testing.T) {
	list := confList(t, "1.0.0", "tolerant", ovsExample("br-tol"))
	add := func(t *testing.T) (*pod, func()) {
		p := newPod(t)
		rt := p.rt("net1")
		if _, err := h.cni.AddNetworkList(ctx(), list, rt); err != nil {
			t.Fatal(err)
		}
		return p, func() {
			if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
		}
	}
	t.Run("netns gone", func(t *testing.T) {
		p, del := add(t)
		if err := p.ns.Close(); err != nil {
			t.Fatal(err)
		}
		del()
	})
	t.Run("record lost", func(t *testing.T) {
		p, del := add(t)
		if err := os.Remove(filepath.Join(h.stateDir, "attachments", p.id+"@net1.json")); err != nil {
			t.Fatal(err)
		}
		del()
	})
	t.Run("port removed out of band", func(t *testing.T) {
		p, del := add(t)
		if _, err := h.ovs.Vsctl("del-port", p.id[:12]+"-net1"); err != nil {
			t.Fatal(err)
		}
		del()
	})
	t.Run("never added", func(t *testing.T) {
		p := newPod(t)
		if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Fatalf("DEL of an unknown attachment: %v", err)
		}
	})
	if bridgeExists(t, "br-tol") {
		t.Errorf("br-tol left behind")
	}
}

// TestCheckDetectsDrift: CHECK passes on a healthy attachment and fails once
// the port is changed or removed behind the plugin's back.
func TestCheckDetectsDrift(t *testing.T) {
	conf := ovsExample("br-chk")
	conf["bridge"] = nil
	conf["host"].(map[string]any)["bridge"] = map[string]any{"bridgeName": "br-chk", "vlanId": 100}
	conf["mtu"] = 2000
	list := confList(t, "1.0.0", "check", conf)
	p := newPod(t)
	attach(t, list, p, "net1")
	rt := p.rt("net1")
	rows := findRows(t, "Port", "external_ids:userspace-cni/container-id="+p.id, "name,tag")
	if len(rows) != 1 || rows[0]["tag"] != "100" {
		t.Fatalf("port %v: want VLAN tag 100", rows)
	}
	if r := interfacesOf(t, p.id); len(r) != 1 || r[0]["mtu_request"] != "2000" {
		t.Fatalf("interface %v: want mtu_request 2000", r)
	}
	if err := h.cni.CheckNetworkList(ctx(), list, rt); err != nil {
		t.Fatalf("CHECK of a healthy attachment: %v", err)
	}
	name := rows[0]["name"]
	if _, err := h.ovs.Vsctl("set", "Port", name, "tag=200"); err != nil {
		t.Fatal(err)
	}
	if err := h.cni.CheckNetworkList(ctx(), list, rt); err == nil || !strings.Contains(err.Error(), "VLAN") {
		t.Errorf("CHECK after the tag changed: %v", err)
	}
	if _, err := h.ovs.Vsctl("del-port", name); err != nil {
		t.Fatal(err)
	}
	if err := h.cni.CheckNetworkList(ctx(), list, rt); err == nil {
		t.Errorf("CHECK passed with the port gone")
	}
}

// TestConfirmOption: with ovsConfirmTimeoutMs set by the administrator, ADD
// returns only once the switch has applied the port (ofport already set).
func TestConfirmOption(t *testing.T) {
	confirm := 3000
	withPolicy(t, func(p *policy.Policy) { p.OVSConfirmTimeoutMs = &confirm })
	list := confList(t, "1.0.0", "confirm", ovsExample("br-cfm"))
	p := newPod(t)
	attach(t, list, p, "net1")
	rows := interfacesOf(t, p.id)
	if len(rows) != 1 || rows[0]["ofport"] == "" || strings.HasPrefix(rows[0]["ofport"], "-") {
		t.Fatalf("ADD returned before the switch applied the port: %v", rows)
	}
}

// TestRepeatedAdd: a second ADD of the same attachment without a DEL (a
// runtime bug, or a retry after a lost reply) replaces the first, in both
// vhost-user modes, and one DEL removes everything.
func TestRepeatedAdd(t *testing.T) {
	for _, mode := range []string{"client", "server"} {
		t.Run(mode, func(t *testing.T) {
			conf := ovsExample("br-rep")
			conf["host"].(map[string]any)["vhost"] = map[string]any{"mode": mode}
			delete(conf, "container")
			list := confList(t, "1.0.0", "repeat", conf)
			p := newPod(t)
			rt := p.rt("net1")
			for i := 0; i < 2; i++ {
				if _, err := h.cni.AddNetworkList(ctx(), list, rt); err != nil {
					t.Fatalf("ADD #%d: %v", i+1, err)
				}
			}
			if rows := interfacesOf(t, p.id); len(rows) != 1 {
				t.Fatalf("want exactly one interface after a repeated ADD, got %v", rows)
			}
			if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
				t.Fatal(err)
			}
			assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
		})
	}
}

// TestRollbackLateFailure makes ADD fail after the port, socket directory
// and IP allocation exist (the config data or the record cannot be
// written) and checks the undo steps remove all of them.
func TestRollbackLateFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block func(p *pod) string // creates an obstacle, returns what to remove after
	}{
		{"config data unwritable", func(p *pod) string {
			dir := filepath.Join("/var/lib/cni/vhostuser", p.id)
			// A directory where the config data file goes: the rename fails.
			if err := os.MkdirAll(filepath.Join(dir, "configData-"+p.id[:12]+"-net1.json"), 0o755); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"record unwritable", func(p *pod) string {
			rec := filepath.Join(h.stateDir, "attachments", p.id+"@net1.json")
			if err := os.MkdirAll(filepath.Join(rec, "x"), 0o755); err != nil {
				t.Fatal(err)
			}
			return rec
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := ovsExample("br-late")
			conf["ipam"] = hostLocal("10.60.0.0/24")
			list := confList(t, "1.0.0", "late", conf)
			p := newPod(t)
			obstacle := tc.block(p)
			defer os.RemoveAll(obstacle)
			allocs := len(ipamAllocations(t))
			if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err == nil {
				t.Fatal("ADD succeeded despite the obstacle")
			}
			if rows := interfacesOf(t, p.id); len(rows) != 0 {
				t.Errorf("rollback left the port: %v", rows)
			}
			if n := len(ipamAllocations(t)); n != allocs {
				t.Errorf("rollback left the IP allocation (%d -> %d)", allocs, n)
			}
			if _, err := os.Lstat(filepath.Join("/var/lib/cni/vhostuser", p.id, p.id[:12]+"-net1")); !os.IsNotExist(err) {
				t.Errorf("rollback left the socket path: %v", err)
			}
			if bridgeExists(t, "br-late") {
				t.Errorf("rollback left the bridge it created")
			}
		})
	}
}
