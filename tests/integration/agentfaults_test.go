package integration

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/userspace-cni/userspace/pkg/state"
	"github.com/userspace-cni/userspace/pkg/vpp"
	"github.com/userspace-cni/userspace/tests/testbed"
)

var buildAgent = sync.OnceValue(func() error { return testbed.BuildBinary(h.binDir, "userspace-agent") })

// runAgentBinary starts bin/userspace-agent on the suite's policy, without
// the Kubernetes API; the test's end kills it if it still runs.
func runAgentBinary(t *testing.T) *testbed.Agent {
	t.Helper()
	if err := buildAgent(); err != nil {
		t.Fatal(err)
	}
	a, err := testbed.StartAgent(filepath.Join(h.binDir, "userspace-agent"), h.policy,
		"-probe-interval", "100ms", "-resync", "2s", "-log-level", "warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Kill)
	return a
}

// serverAttachments adds n server-mode OVS-DPDK attachments, deleted when
// the test ends.
func serverAttachments(t *testing.T, n int) []live {
	t.Helper()
	list := confList(t, "1.0.0", "faults", map[string]any{"host": map[string]any{"engine": "ovs-dpdk",
		"iftype": "vhostuser", "bridge": map[string]any{"bridgeName": "br-faults"}}})
	var alive []live
	for range n {
		p := newPod(t)
		rt := p.rt("net1")
		addForTest(t, list, rt)
		rec, err := state.New(h.stateDir).Load(p.id, "net1")
		if err != nil || rec == nil {
			t.Fatalf("record: %v", err)
		}
		alive = append(alive, live{list: list, rt: rt, connect: rec.Layout.ConnectPath(), network: "unix"})
	}
	return alive
}

// waitAllBack waits until every attachment passes CHECK and its socket
// connects.
func waitAllBack(t *testing.T, alive []live, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var errs []string
		for _, a := range alive {
			if err := h.cni.CheckNetworkList(ctx(), a.list, a.rt); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			if c, err := net.DialTimeout("unix", a.connect, time.Second); err != nil {
				errs = append(errs, err.Error())
			} else {
				_ = c.Close()
			}
		}
		if len(errs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d attachments not back within %v: %v", len(errs), len(alive), timeout, errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertOnePortEach checks the switch has exactly one port per attachment.
func assertOnePortEach(t *testing.T, alive []live) {
	t.Helper()
	for _, a := range alive {
		if rows := interfacesOf(t, a.rt.ContainerID); len(rows) != 1 {
			t.Errorf("container %s has %d ports on the switch, want 1: %v", a.rt.ContainerID[:12], len(rows), rows)
		}
	}
}

func restartVswitchd(t *testing.T) {
	t.Helper()
	if err := h.ovs.KillVswitchd(); err != nil {
		t.Fatal(err)
	}
	if err := h.ovs.StartVswitchd(); err != nil {
		t.Fatal(err)
	}
}

// TestAgentUnderFaults runs the agent binary against the real OVS-DPDK with
// six server-mode attachments and a corrupt record, through faults of its
// own and of the switch.
func TestAgentUnderFaults(t *testing.T) {
	t.Cleanup(func() { leakCheck(t) })
	alive := serverAttachments(t, 6)
	corrupt := filepath.Join(h.stateDir, "attachments", strings.Repeat("f", 64)+"@net1.json")
	if err := os.WriteFile(corrupt, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(corrupt) })
	repairOVSOnFailure(t)
	restored := `userspace_cni_restores_total{engine="ovs-dpdk",result="restored"}`
	binds := vswitchdBindFailures(t)

	t.Run("corrupt record", func(t *testing.T) {
		// Logged and skipped; the others are restored.
		a := runAgentBinary(t)
		restartVswitchd(t)
		waitAllBack(t, alive, 30*time.Second)
		if n := a.Metric(`userspace_cni_agent_errors_total{op="read_record"}`); n < 1 {
			t.Errorf("read_record errors = %v, want the corrupt record reported", n)
		}
		if n := a.Metric(restored); n != float64(len(alive)) {
			t.Errorf("%s = %v, want %d", restored, n, len(alive))
		}
		a.Kill()
		assertOnePortEach(t, alive)
	})

	t.Run("agent killed during a restore", func(t *testing.T) {
		a := runAgentBinary(t)
		backs := `userspace_cni_switch_restarts_total{endpoint="` + h.ovs.DBEndpoint() + `",engine="ovs-dpdk"}`
		restartVswitchd(t)
		// Killed as soon as it saw the switch back: its pass over the six
		// attachments has begun, or is about to.
		deadline := time.Now().Add(30 * time.Second)
		for a.Metric(backs) < 1 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		a.Kill()
		back := 0
		for _, l := range alive {
			if h.cni.CheckNetworkList(ctx(), l.list, l.rt) == nil {
				back++
			}
		}
		t.Logf("killed with %d of %d attachments back", back, len(alive))
		b := runAgentBinary(t)
		waitAllBack(t, alive, 30*time.Second)
		assertOnePortEach(t, alive)
		if n := b.Metric(`userspace_cni_restores_total{engine="ovs-dpdk",result="failed"}`); n != 0 {
			t.Errorf("the restarted agent failed %v restores", n)
		}
		b.Kill()
	})

	t.Run("switch flapping", func(t *testing.T) {
		a := runAgentBinary(t)
		for i := range 10 {
			start := time.Now()
			restartVswitchd(t)
			if i == 4 {
				// A CHECK by the runtime meanwhile answers, one way or the other.
				_ = h.cni.CheckNetworkList(ctx(), alive[0].list, alive[0].rt)
			}
			time.Sleep(time.Second - min(time.Second, time.Since(start)))
		}
		waitAllBack(t, alive, 60*time.Second)
		assertOnePortEach(t, alive)
		if n := a.Metric(restored); n < float64(len(alive)) {
			t.Errorf("%s = %v, want %d at least", restored, n, len(alive))
		}
		a.Kill()
	})

	if n := vswitchdBindFailures(t) - binds; n != 0 {
		t.Errorf("the restarted switch failed %d times to bind a socket a killed one left", n)
	}
	if err := os.Remove(corrupt); err != nil {
		t.Error(err)
	}
	leakCheck(t, alive...)
}

// memifAttachments adds n VPP memif attachments, deleted when the test ends.
func memifAttachments(t *testing.T, n int) []live {
	t.Helper()
	list := confList(t, "1.0.0", "memif-network", vppExample())
	var alive []live
	for range n {
		alive = append(alive, attachMemif(t, list, newPod(t)))
	}
	return alive
}

// attachMemif adds p's net1 to list, deleted when the test ends and then
// checked gone from VPP, and returns it with the socket its app connects to.
func attachMemif(t *testing.T, list *libcni.NetworkConfigList, p *pod) live {
	t.Helper()
	rt := p.rt("net1")
	purgeMemifLeak(t, memifSock(p, "net1"))
	t.Cleanup(func() { assertVPPClean(t, p, "net1") }) // after the DEL
	addForTest(t, list, rt)
	cd := readConfigData(t, vppSharedDir, p.id, "net1")
	return live{list: list, rt: rt, connect: filepath.Join(vppSharedDir, cd.Config.Memif.Socketfile), network: "unixpacket"}
}

// TestAgentVPPFlapping restarts VPP again and again while the agent
// restores its memifs: no memif or socket registration is duplicated or
// leaked, and every attachment is back in the end.
func TestAgentVPPFlapping(t *testing.T) {
	t.Cleanup(func() { leakCheck(t) })
	alive := memifAttachments(t, 3)
	repairSwitchesOnFailure(t)
	a := runAgentBinary(t)
	for range 6 {
		start := time.Now()
		if err := h.vpp.Restart(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second - min(time.Second, time.Since(start)))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var errs []string
		for _, l := range alive {
			if err := h.cni.CheckNetworkList(ctx(), l.list, l.rt); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back within 60 s: %v", errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := vppState(t)
	memifs := map[string]int{}
	for _, i := range st.Interfaces {
		if i.DevType == "memif" {
			memifs[i.Tag]++
		}
	}
	for _, l := range alive {
		if n := memifs[vpp.OwnerTag(l.rt.ContainerID, l.rt.IfName)]; n != 1 {
			t.Errorf("container %s has %d memifs", l.rt.ContainerID[:12], n)
		}
	}
	if len(st.Memifs) != len(alive) {
		t.Errorf("VPP has %d memifs, want %d: %+v", len(st.Memifs), len(alive), st.Memifs)
	}
	if got := len(st.MemifSockets) - 1; got != len(alive) { // id 0 is VPP's own
		t.Errorf("VPP has %d memif socket registrations of ours, want %d: %v", got, len(alive), st.MemifSockets)
	}
	a.Kill()
	leakCheck(t, alive...)
}

// purgeMemifLeak runs after an attachment's DEL: a socket registration
// for its socket still on the host VPP is reported, then deleted (with the
// file) so that the tests after this one start from a clean VPP. Seen after
// VPP restarts under the agent: a registration a restore asked for, that
// VPP carried out late, after the DEL.
func purgeMemifLeak(t *testing.T, socket string) {
	t.Cleanup(func() {
		st, err := h.vpp.State()
		if err != nil {
			t.Errorf("reading the host VPP: %v", err)
			return
		}
		for id, file := range st.MemifSockets {
			if id == 0 || file != socket {
				continue
			}
			t.Errorf("leak after DEL: memif socket registration %d (%s); removed now", id, file)
			if out, err := h.vpp.Vppctl("delete", "memif", "socket", "id", strconv.FormatUint(uint64(id), 10)); err != nil {
				t.Errorf("removing it: %v: %s", err, out)
			}
			_ = os.Remove(file)
		}
	})
}
