package integration

// The hardening cases: what a hostile NAD writer, a malicious pod or a
// failing switch could do to the plugin, each reproduced against the real
// OVS-DPDK with the real binary, and followed by a node-wide leak check.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/vpp"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// defaultSocketBase is the OVS engine's default socket directory, shared by
// everything on the node that runs the plugin with the notes' defaults.
const defaultSocketBase = "/var/lib/cni/vhostuser"

// usedID reports whether name is a container id this suite used, or one's
// first 12 characters.
func (hs *harness) usedID(name string) bool {
	found := false
	hs.ids.Range(func(k, _ any) bool {
		id := k.(string)
		found = id == name || len(id) > 12 && id[:12] == name
		return !found
	})
	return found
}

// live is an attachment a leak check expects to find healthy.
type live struct {
	list *libcni.NetworkConfigList
	rt   *libcni.RuntimeConf
	// connect, when set, is a socket that must accept a connection
	// ("unix" for vhost-user, "unixpacket" for memif).
	connect, network string
}

// leakCheck checks the whole node: no port, record, claim, IP allocation or
// per-pod directory that the live attachments do not own, and every live
// attachment still healthy (CHECK passes, its socket connects).
func leakCheck(t *testing.T, alive ...live) {
	t.Helper()
	ids := map[string]bool{}
	for _, a := range alive {
		ids[a.rt.ContainerID] = true
	}
	for _, row := range findRows(t, "Interface", "external_ids:userspace-cni/container-id!=\"\"", "name,external_ids") {
		if id := mapValue(row["external_ids"], "userspace-cni/container-id"); !ids[id] {
			t.Errorf("leak: port %s of container %s left on the switch", row["name"], id)
		}
	}
	st := vppState(t)
	for _, i := range st.Interfaces {
		if id, _, ok := vpp.ParseOwnerTag(i.Tag); ok && !ids[id] {
			t.Errorf("leak: VPP interface %s of container %s", i.Name, id)
		}
	}
	for _, b := range st.BridgeDomains {
		if b.Tag == vpp.BridgeTag && len(b.Members) == 0 {
			t.Errorf("leak: the plugin's bridge domain %d without members", b.ID)
		}
	}
	for id, file := range st.MemifSockets {
		used := id == 0 // VPP's own default socket
		for _, m := range st.Memifs {
			used = used || m.SocketID == id
		}
		if !used {
			t.Errorf("leak: VPP memif socket registration %d (%s) without a memif", id, file)
		}
	}
	for _, r := range records(t) {
		id, _, _ := strings.Cut(r, "@")
		if !ids[id] {
			t.Errorf("leak: record %s", r)
		}
	}
	claims, _ := os.ReadDir(filepath.Join(h.stateDir, "claims"))
	for _, c := range claims {
		data, err := os.Readlink(filepath.Join(h.stateDir, "claims", c.Name()))
		if err != nil || !ids[claimOwner([]byte(data))] {
			t.Errorf("leak: claim %s: %s", c.Name(), data)
		}
	}
	for path, owner := range allocations(t) {
		if !ids[owner] {
			t.Errorf("leak: IP allocation %s of container %s", path, owner)
		}
	}
	for _, base := range []string{defaultSocketBase, h.shared} {
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			owned := false
			for id := range ids {
				owned = owned || e.Name() == id || e.Name() == id[:12]
			}
			if base == defaultSocketBase && !h.usedID(e.Name()) {
				continue
			}
			if !owned && (len(e.Name()) == 64 || len(e.Name()) == 12) {
				t.Errorf("leak: per-pod directory %s/%s", base, e.Name())
			}
		}
	}
	for _, a := range alive {
		if err := h.cni.CheckNetworkList(ctx(), a.list, a.rt); err != nil {
			t.Errorf("CHECK of live attachment %s/%s: %v", a.rt.ContainerID[:12], a.rt.IfName, err)
		}
		if a.connect != "" {
			c, err := net.DialTimeout(a.network, a.connect, time.Second)
			if err != nil {
				t.Errorf("socket %s of live attachment %s/%s does not connect: %v", a.connect, a.rt.ContainerID[:12], a.rt.IfName, err)
				continue
			}
			_ = c.Close()
		}
	}
}

func claimOwner(data []byte) string {
	s := string(data)
	_, rest, ok := strings.Cut(s, `"containerID":"`)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, `"`)
	return id
}

// allocations maps host-local's allocation files to the container ids
// holding them (each file holds "<id>\r\n<ifname>").
func allocations(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range ipamAllocations(t) {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\r\n")
		out[p] = strings.TrimSpace(id)
	}
	return out
}

// allocatedTo returns the address host-local holds for an attachment.
func allocatedTo(t *testing.T, id, ifName string) []string {
	t.Helper()
	var out []string
	for _, p := range ipamAllocations(t) {
		data, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(data)) == id+"\r\n"+ifName {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}

// within runs a verb with a deadline and reports how long it took.
func within(d time.Duration, f func(context.Context) error) (time.Duration, error) {
	c, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	err := f(c)
	return time.Since(start), err
}

// killStrays ends processes still running the test bed's plugin binary
// (by PID: the binary is this run's private build), as a plugin that calls
// itself leaves them.
func killStrays(t *testing.T) int {
	t.Helper()
	bin := filepath.Join(h.binDir, "userspace")
	n := 0
	for i := 0; i < 50; i++ {
		pids := procsRunning(bin)
		if len(pids) == 0 {
			return n
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("processes of %s still running", bin)
	return n
}

func procsRunning(exe string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && target == exe && testbed.ProcessRunning(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestIPAMRecursion (hardening 1): a configuration whose IPAM plugin is the
// plugin itself, under its own name or another, or an IPAM plugin that
// calls back into it, fails at once with a clear error, and starts no
// chain of processes holding locks.
func TestIPAMRecursion(t *testing.T) {
	loop := filepath.Join(h.binDir, "loop-ipam")
	script := "#!/bin/sh\nexec " + filepath.Join(h.binDir, "userspace") + "\n"
	if err := os.WriteFile(loop, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(h.binDir, "alias-ipam")
	if err := os.Symlink(filepath.Join(h.binDir, "userspace"), alias); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(loop); _ = os.Remove(alias) })
	t.Cleanup(func() { killStrays(t) })

	for _, tc := range []struct{ ipam, want string }{
		{"userspace", `ipam.type "userspace"`},
		{"alias-ipam", `ipam.type "alias-ipam"`},
		{"loop-ipam", "started by its own IPAM delegation"},
	} {
		t.Run(tc.ipam, func(t *testing.T) {
			conf := ovsExample("br-rec")
			conf["ipam"] = map[string]any{"type": tc.ipam, "subnet": "10.70.0.0/24"}
			list := confList(t, "1.0.0", "recursion", conf)
			p := newPod(t)
			d, err := within(20*time.Second, func(c context.Context) error {
				_, err := h.cni.AddNetworkList(c, list, p.rt("net1"))
				return err
			})
			if n := killStrays(t); n > 0 {
				t.Errorf("%d plugin processes were still running after ADD returned", n)
			}
			if err == nil {
				t.Fatal("ADD with the plugin as its own IPAM succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ADD error %q, want it to name %s", err, tc.want)
			}
			if d > 10*time.Second {
				t.Errorf("ADD took %v to refuse", d)
			}
			if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil && tc.ipam == "loop-ipam" {
				// DEL delegates to the same IPAM and is refused the same way;
				// what matters is that nothing was left behind.
				t.Logf("DEL: %v", err)
			}
			leakCheck(t)
		})
	}
	// The node is not blocked: a normal ADD works at once.
	list := confList(t, "1.0.0", "after-rec", ovsExample("br-rec"))
	p := newPod(t)
	if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Fatalf("ADD after the recursion attempts: %v", err)
	}
	leakCheck(t, live{list: list, rt: p.rt("net1")})
	if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Fatal(err)
	}
	leakCheck(t)
}

// TestAddDelRace (hardening 2): ADD and DEL of the same attachment at once,
// 20 times in each vhost mode. Whichever runs first, the other sees its
// outcome: when ADD's record survives, host-local holds exactly the address
// ADD reported and published; when it does not, no address is held.
func TestAddDelRace(t *testing.T) {
	for _, mode := range []string{"client", "server"} {
		t.Run(mode, func(t *testing.T) {
			conf := map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
				"vhost": map[string]any{"mode": mode}, "bridge": map[string]any{"bridgeName": "br-race"}},
				"ipam": hostLocal("10.71.0.0/24")}
			list := confList(t, "1.0.0", "race-"+mode, conf)
			survived := 0
			for i := 0; i < 20; i++ {
				p := newPod(t)
				rt := p.rt("net1")
				var wg sync.WaitGroup
				var res types.Result
				var addErr, delErr error
				wg.Add(2)
				go func() { defer wg.Done(); res, addErr = h.cni.AddNetworkList(ctx(), list, rt) }()
				go func() { defer wg.Done(); delErr = h.cni.DelNetworkList(ctx(), list, rt) }()
				wg.Wait()
				if delErr != nil {
					t.Fatalf("round %d: DEL: %v", i, delErr)
				}
				held := allocatedTo(t, p.id, "net1")
				rec := fileExists(filepath.Join(h.stateDir, "attachments", p.id+"@net1.json"))
				if addErr == nil && rec {
					survived++
					r, err := types100.GetResult(res)
					if err != nil || len(r.IPs) != 1 {
						t.Fatalf("round %d: result %v %v", i, res, err)
					}
					ip := r.IPs[0].Address.IP.String()
					if len(held) != 1 || held[0] != ip {
						t.Errorf("round %d: ADD reported %s, host-local holds %v for the attachment", i, ip, held)
					}
					cd := readConfigData(t, filepath.Join(defaultSocketBase, p.id), p.id, "net1")
					if got := cd.IPResult.IPs[0].Address.IP.String(); got != ip {
						t.Errorf("round %d: config data says %s, ADD reported %s", i, got, ip)
					}
				} else if len(held) != 0 {
					t.Errorf("round %d: no attachment (ADD %v, record %v) but host-local holds %v for it", i, addErr, rec, held)
				}
				if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
					t.Fatalf("round %d: final DEL: %v", i, err)
				}
			}
			t.Logf("%s mode: ADD came last in %d of 20 rounds", mode, survived)
			leakCheck(t)
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestHungOVSDB (hardening 3): with ovsdb-server hung (SIGSTOP) during an
// ADD, the node goes on: that ADD fails within seconds, and every other
// verb answers within 15 s, with a clear error where it needs the switch and
// success where it does not (a VPP attachment).
func TestHungOVSDB(t *testing.T) {
	list := confList(t, "1.1.0", "hung", ovsExample("br-hung"))
	// other is DELeted and checked is CHECKed while the switch hangs: two
	// attachments, or the CHECK could find the DEL already begun.
	other, checked := newPod(t), newPod(t)
	for _, p := range []*pod{other, checked} {
		if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Fatal(err)
		}
	}
	vppList := confList(t, "1.0.0", "hung-vpp", vppExample())
	resumed := false
	if err := h.ovs.PauseDB(); err != nil {
		t.Fatal(err)
	}
	resume := func() {
		if !resumed {
			resumed = true
			if err := h.ovs.ResumeDB(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)

	const bound = 15 * time.Second
	stuck := newPod(t)
	var wg sync.WaitGroup
	type outcome struct {
		verb string
		d    time.Duration
		err  error
	}
	results := make(chan outcome, 8)
	run := func(verb string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := within(2*time.Minute, f)
			results <- outcome{verb, d, err}
		}()
	}
	run("ADD on the hung switch", func(c context.Context) error {
		_, err := h.cni.AddNetworkList(c, list, stuck.rt("net1"))
		return err
	})
	time.Sleep(200 * time.Millisecond) // the ADD is inside its first switch call
	run("DEL of another attachment", func(c context.Context) error { return h.cni.DelNetworkList(c, list, other.rt("net1")) })
	run("CHECK of another attachment", func(c context.Context) error { return h.cni.CheckNetworkList(c, list, checked.rt("net1")) })
	run("STATUS", func(c context.Context) error { return h.cni.GetStatusNetworkList(c, list) })
	vppPod := newPod(t)
	run("ADD and DEL on VPP", func(c context.Context) error {
		if _, err := h.cni.AddNetworkList(c, vppList, vppPod.rt("net1")); err != nil {
			return err
		}
		return h.cni.DelNetworkList(c, vppList, vppPod.rt("net1"))
	})
	wg.Wait()
	close(results)
	for o := range results {
		if o.d > bound {
			t.Errorf("%s took %v with ovsdb-server hung, want under %v", o.verb, o.d, bound)
		}
		switch {
		case o.verb == "ADD and DEL on VPP":
			if o.err != nil {
				t.Errorf("%s failed: a hung OVS must not affect VPP: %v", o.verb, o.err)
			}
		case o.err == nil:
			t.Errorf("%s succeeded with ovsdb-server hung", o.verb)
		default:
			e := testbed.CNIError(o.err)
			if e == nil || e.Code != types.ErrPluginNotAvailable && e.Code != types.ErrTryAgainLater {
				t.Errorf("%s: %v, want CNI error 50 (or 11)", o.verb, o.err)
			} else if !strings.Contains(e.Msg, "OVSDB") && !strings.Contains(e.Msg, "ovs") {
				t.Errorf("%s: %q does not say the switch is at fault", o.verb, e.Msg)
			}
		}
		t.Logf("%s: %v after %v", o.verb, o.err, o.d.Round(time.Millisecond))
	}
	resume()
	// The runtime DELs the failed ADD; once the switch answers, all go.
	for _, p := range []*pod{stuck, other, checked} {
		if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Errorf("DEL after the switch came back: %v", err)
		}
	}
	leakCheck(t)
}

// TestSocketOwnership (hardening 4): an attachment removes only what it
// created. A NAD that fixes the socket name, added twice to one pod, and
// two sandboxes whose ids share their first 12 characters: the second ADD
// is refused up front, naming the first attachment, and neither its
// rollback nor the DEL the runtime sends next touches the first one's
// socket, config data or directory.
func TestSocketOwnership(t *testing.T) {
	t.Run("fixed socketfile", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			conf    map[string]any
			sock    func(p *pod) string
			network string
			// listen: the pod's app listens on the socket (OVS client mode).
			listen bool
		}{
			{"ovs server", map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
				"vhost": map[string]any{"mode": "server", "socketfile": "fixed.sock"}, "bridge": map[string]any{"bridgeName": "br-own"}}},
				func(p *pod) string { return filepath.Join("/var/lib/cni/vhostuser", p.id, "fixed.sock") }, "unix", false},
			{"ovs client", map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
				"vhost": map[string]any{"mode": "client", "socketfile": "fixed.sock"}, "bridge": map[string]any{"bridgeName": "br-own"}}},
				func(p *pod) string { return filepath.Join("/var/lib/cni/vhostuser", p.id, "fixed.sock") }, "unix", true},
			{"vpp memif", map[string]any{"host": map[string]any{"engine": "vpp", "iftype": "memif", "netType": "bridge",
				"memif": map[string]any{"role": "master", "mode": "ethernet", "socketfile": "fixed.sock"}, "bridge": map[string]any{"bridgeId": 41}}},
				func(*pod) string { return "/var/run/vpp/cni/shared/fixed.sock" }, "unixpacket", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				list := confList(t, "1.0.0", "own-"+strings.ReplaceAll(tc.name, " ", "-"), tc.conf)
				p := newPod(t)
				sock := tc.sock(p)
				if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err != nil {
					t.Fatal(err)
				}
				if tc.listen {
					ln, err := net.Listen("unix", sock)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = ln.Close() })
				}
				first := live{list: list, rt: p.rt("net1"), connect: sock, network: tc.network}
				_, err := h.cni.AddNetworkList(ctx(), list, p.rt("net2"))
				if err == nil {
					t.Fatal("a second attachment on the same socket was added")
				}
				if !strings.Contains(err.Error(), "interface net1") || !strings.Contains(err.Error(), sock) {
					t.Errorf("refusal %q should name the socket and the attachment that owns it", err)
				}
				if err := h.cni.DelNetworkList(ctx(), list, p.rt("net2")); err != nil {
					t.Errorf("DEL of the refused attachment: %v", err)
				}
				leakCheck(t, first)
				if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
					t.Fatal(err)
				}
				if tc.listen {
					// The app's socket went with its attachment.
					if fileExists(sock) {
						t.Errorf("DEL left %s", sock)
					}
				}
				leakCheck(t)
			})
		}
	})
	t.Run("container ids sharing 12 characters", func(t *testing.T) {
		conf := ovsExample("br-own")
		conf["sharedDir"] = h.shared
		list := confList(t, "1.0.0", "own-id12", conf)
		a, b := newPod(t), newPod(t)
		b.id = a.id[:12] + b.id[12:]
		if _, err := h.cni.AddNetworkList(ctx(), list, a.rt("net1")); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(h.shared, a.id[:12])
		cd := filepath.Join(dir, configdata.FileName(a.id, "net1"))
		_, err := h.cni.AddNetworkList(ctx(), list, b.rt("net1"))
		if err == nil {
			t.Fatal("a second sandbox was given the first one's directory")
		}
		if !strings.Contains(err.Error(), a.id) {
			t.Errorf("refusal %q should name container %s", err, a.id)
		}
		if err := h.cni.DelNetworkList(ctx(), list, b.rt("net1")); err != nil {
			t.Errorf("DEL of the refused sandbox: %v", err)
		}
		if !fileExists(cd) || !fileExists(dir) {
			t.Errorf("the refused sandbox's ADD or DEL removed %s or its config data", dir)
		}
		leakCheck(t, live{list: list, rt: a.rt("net1")})
		if err := h.cni.DelNetworkList(ctx(), list, a.rt("net1")); err != nil {
			t.Fatal(err)
		}
		leakCheck(t)
	})
}

// TestLostReply (hardening 5): the reply to the transaction that adds the
// port is lost after ovsdb-server committed it. ADD finds out by ownership,
// removes the port, and fails: no port without an owner is left.
func TestLostReply(t *testing.T) {
	proxy, err := testbed.StartOVSDBProxy(filepath.Join(h.ovs.Dir, "proxy.sock"), h.ovs.DBSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	withPolicy(t, func(p *policy.Policy) { p.OVSDBSocket = "unix:" + proxy.Socket })
	for _, mode := range []string{"client", "server"} {
		t.Run(mode, func(t *testing.T) {
			rule := proxy.Add(&testbed.ReplyRule{Match: testbed.TransactInserts("Interface"), Drop: true, Times: 1})
			t.Cleanup(proxy.Clear)
			conf := map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
				"vhost": map[string]any{"mode": mode}, "bridge": map[string]any{"bridgeName": "br-lost"}},
				"ipam": hostLocal("10.72.0.0/24")}
			list := confList(t, "1.0.0", "lost-"+mode, conf)
			p := newPod(t)
			d, err := within(time.Minute, func(c context.Context) error {
				_, err := h.cni.AddNetworkList(c, list, p.rt("net1"))
				return err
			})
			if rule.Hits() != 1 {
				t.Fatalf("the proxy dropped %d replies, want 1", rule.Hits())
			}
			if err == nil {
				t.Fatal("ADD succeeded though the switch never answered its transaction")
			}
			t.Logf("ADD: %v after %v", err, d.Round(time.Millisecond))
			if rows := interfacesOf(t, p.id); len(rows) != 0 {
				t.Errorf("the port committed without a reply is still on the switch: %v", rows)
			}
			if bridgeExists(t, "br-lost") {
				t.Errorf("the bridge the lost transaction created is still there")
			}
			if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
				t.Errorf("DEL: %v", err)
			}
			leakCheck(t)
		})
	}
}

// TestPlantedSymlink (hardening 6): after ADD, a pod that sees the shared
// base replaces its per-pod directory with a symlink out of the base. DEL
// and GC treat the directory as gone, finish, delete the record, and touch
// nothing outside.
func TestPlantedSymlink(t *testing.T) {
	for _, verb := range []string{"DEL", "GC"} {
		t.Run(verb, func(t *testing.T) {
			list := confList(t, "1.1.0", "planted-"+strings.ToLower(verb), ovsExample("br-plant"))
			p := newPod(t)
			if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("/var/lib/cni/vhostuser", p.id)
			outside := t.TempDir()
			canaries := []string{p.id[:12] + "-net1", configdata.FileName(p.id, "net1")}
			for _, c := range canaries {
				if err := os.WriteFile(filepath.Join(outside, c), []byte("not the plugin's"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Rename(dir, dir+".moved"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir + ".moved") })
			if err := os.Symlink(outside, dir); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Remove(dir) })
			if verb == "DEL" {
				if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
					t.Fatalf("DEL with the directory replaced: %v", err)
				}
			} else {
				if err := h.cni.GCNetworkList(ctx(), list, &libcni.GCArgs{}); err != nil {
					t.Fatalf("GC with the directory replaced: %v", err)
				}
			}
			for _, c := range canaries {
				if !fileExists(filepath.Join(outside, c)) {
					t.Errorf("%s removed %s outside the base", verb, filepath.Join(outside, c))
				}
			}
			if target, err := os.Readlink(dir); err != nil || target != outside {
				t.Errorf("%s changed the planted link: %q %v", verb, target, err)
			}
			_ = os.Remove(dir)
			leakCheck(t)
		})
	}
}

// TestLongContainerID (hardening 7): container ids too long for the
// plugin's file names are refused at ADD with a clear error, and DEL of
// them succeeds, so nothing can be left that DEL cannot remove.
func TestLongContainerID(t *testing.T) {
	list := confList(t, "1.0.0", "longid", ovsExample("br-long"))
	for _, n := range []int{129, 246, 300} {
		p := newPod(t)
		p.id = strings.Repeat("a", n-len(p.id)) + p.id
		_, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1"))
		if err == nil {
			t.Fatalf("ADD with a %d-character container id succeeded", n)
		}
		if !strings.Contains(err.Error(), "CNI_CONTAINERID") {
			t.Errorf("ADD error %q should name CNI_CONTAINERID", err)
		}
		if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Errorf("DEL of a %d-character container id: %v", n, err)
		}
	}
	leakCheck(t)
}

// TestCheckAfterVswitchdKilled (hardening 9): CHECK sees what STATUS sees:
// with ovs-vswitchd dead, no port works, whatever the database still says.
func TestCheckAfterVswitchdKilled(t *testing.T) {
	lists := map[string]*libcni.NetworkConfigList{}
	pods := map[string]*pod{}
	for _, mode := range []string{"client", "server"} {
		lists[mode] = confList(t, "1.0.0", "killed-"+mode, map[string]any{"host": map[string]any{"engine": "ovs-dpdk",
			"iftype": "vhostuser", "vhost": map[string]any{"mode": mode}, "bridge": map[string]any{"bridgeName": "br-kill"}}})
		pods[mode] = newPod(t)
		if _, err := h.cni.AddNetworkList(ctx(), lists[mode], pods[mode].rt("net1")); err != nil {
			t.Fatal(err)
		}
		waitApplied(t, pods[mode].id)
		if err := h.cni.CheckNetworkList(ctx(), lists[mode], pods[mode].rt("net1")); err != nil {
			t.Fatalf("CHECK before the kill: %v", err)
		}
	}
	if err := h.ovs.KillVswitchd(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A killed switch leaves its server-mode sockets: remove them so the
		// restarted one can bind, as an operator would.
		entries, _ := os.ReadDir(h.ovs.RunDir)
		for _, e := range entries {
			if e.Type()&os.ModeSocket != 0 && strings.HasSuffix(e.Name(), "-net1") {
				_ = os.Remove(filepath.Join(h.ovs.RunDir, e.Name()))
			}
		}
		if err := h.ovs.StartVswitchd(); err != nil {
			t.Fatalf("restarting ovs-vswitchd: %v", err)
		}
	})
	for _, mode := range []string{"client", "server"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := h.cni.CheckNetworkList(ctx(), lists[mode], pods[mode].rt("net1"))
			if err != nil && strings.Contains(err.Error(), "ovs-vswitchd") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s mode: CHECK with ovs-vswitchd killed = %v, want an error naming ovs-vswitchd", mode, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := h.cni.DelNetworkList(ctx(), lists[mode], pods[mode].rt("net1")); err != nil {
			t.Errorf("%s mode: DEL: %v", mode, err)
		}
	}
	leakCheck(t)
}

// TestGCReleasesIPAM (hardening 12): GC releases the address of each
// attachment it collects (host-local has no GC of its own), so the same
// attachment can be added again.
func TestGCReleasesIPAM(t *testing.T) {
	conf := ovsExample("br-gcipam")
	conf["ipam"] = hostLocal("10.73.0.0/24")
	list := confList(t, "1.1.0", "gcipam", conf)
	p := newPod(t)
	if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Fatal(err)
	}
	if len(allocatedTo(t, p.id, "net1")) != 1 {
		t.Fatal("no address allocated")
	}
	if err := h.cni.GCNetworkList(ctx(), list, &libcni.GCArgs{}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if held := allocatedTo(t, p.id, "net1"); len(held) != 0 {
		t.Errorf("GC collected the attachment but host-local still holds %v for it", held)
	}
	leakCheck(t)
	if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Fatalf("ADD of the collected attachment again: %v", err)
	}
	if err := h.cni.DelNetworkList(ctx(), list, p.rt("net1")); err != nil {
		t.Fatal(err)
	}
	leakCheck(t)
}
