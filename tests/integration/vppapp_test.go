package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/podvpp"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// podVPP is a VPP client pod: its own VPP in its network namespace and a
// mount table that names its sandbox the way containerd's does, for
// {sandbox}.
type podVPP struct {
	*pod
	vpp       *testbed.VPP
	mountinfo string
}

func newPodVPP(t *testing.T) *podVPP {
	t.Helper()
	p := newPod(t)
	v := startPodVPP(t, p)
	mi := filepath.Join(v.Dir, "mountinfo")
	line := fmt.Sprintf("1033 1021 8:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/%s/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw\n", p.id)
	if err := os.WriteFile(mi, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return &podVPP{pod: p, vpp: v, mountinfo: mi}
}

// vppApp runs the real vpp-app binary in the pod the way the notes' pods
// do: it reads the files the plugin left in /var/run/vpp/cni/<sandbox id>/.
func (p *podVPP) vppApp(t *testing.T, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-api-socket", p.vpp.APISocket, "-mountinfo", p.mountinfo,
		"-notes-dir", vppBase + "/{sandbox}", "-wait", "10s"}, extra...)
	out, err := exec.CommandContext(ctx, filepath.Join(h.binDir, "vpp-app"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vpp-app: %v\n%s", err, out)
	}
	return string(out)
}

func (p *podVPP) state(t *testing.T) *testbed.VPPState {
	t.Helper()
	st, err := p.vpp.State()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestVPPAppPodSide replays the notes' VPP scenario: two pods on the
// memif network, each running vpp-app against its own VPP (in the pod's
// network namespace), then vppctl ping from one to the other across the
// host VPP's bridge domain 4 over real memif connections.
func TestVPPAppPodSide(t *testing.T) {
	list := confList(t, "0.3.1", "memif-network", vppExample())
	pods := []*podVPP{newPodVPP(t), newPodVPP(t)}
	addrs := make([]netip.Prefix, len(pods))
	for i, p := range pods {
		rt := p.rt("net1")
		res, err := h.cni.AddNetworkList(ctx(), list, rt)
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		t.Cleanup(func() {
			if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
				t.Errorf("DEL: %v", err)
			}
			assertVPPClean(t, p.pod, "net1")
		})
		addrs[i] = resultAddr(t, res)
	}

	memifs := make([]string, len(pods))
	for i, p := range pods {
		out := p.vppApp(t)
		sock := memifSock(p.pod, "net1")
		for _, want := range []string{"net1: created memif", "memif slave/ethernet on " + sock,
			"addresses " + addrs[i].String(), "routes 0.0.0.0/0 via 172.22.0.1"} {
			if !strings.Contains(out, want) {
				t.Errorf("vpp-app printed %q, want %q in it", out, want)
			}
		}
		// The API calls' effect on the pod's VPP: one memif slave on the
		// published socket, tagged, up, with the IPAM address and route.
		st := p.state(t)
		if len(st.Memifs) != 1 || st.Memifs[0].Master || !st.Memifs[0].Ethernet {
			t.Fatalf("pod %d memifs = %+v", i, st.Memifs)
		}
		m := st.Memifs[0]
		memifs[i] = m.Name
		if st.MemifSockets[m.SocketID] != sock {
			t.Errorf("pod %d memif socket = %q, want %q", i, st.MemifSockets[m.SocketID], sock)
		}
		iface, ok := st.ByTag(podvpp.Tag(p.id, "net1"))
		if !ok || iface.SwIfIndex != m.SwIfIndex || !iface.AdminUp || !slices.Contains(iface.Addresses, addrs[i]) {
			t.Errorf("pod %d interface = %+v, want it tagged, up, with address %s", i, iface, addrs[i])
		}
		routes, err := p.vpp.Routes()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range routes {
			found = found || r.Prefix.String() == "0.0.0.0/0" && r.NextHop.String() == "172.22.0.1" && r.SwIfIndex == m.SwIfIndex
		}
		if !found {
			t.Errorf("pod %d has no route 0.0.0.0/0 via 172.22.0.1 on its memif: %+v", i, routes)
		}
	}

	// Both memif connections come up: the pod's slave and the host's
	// master see each other.
	for i, p := range pods {
		waitMemifUp(t, p.vpp, memifs[i])
		host, ok := vppIface(t, p.id, "net1")
		if !ok {
			t.Fatalf("host interface of pod %d gone", i)
		}
		waitMemifUp(t, h.vpp, host.Name)
	}

	// vppctl ping <other pod's address>, from pod 0's VPP.
	sent, received, out, err := pods[0].vpp.Ping(addrs[1].Addr(), 5)
	if err != nil || received == 0 {
		t.Fatalf("ping %s from pod 0: %d of %d answered, %v\n%s", addrs[1].Addr(), received, sent, err, out)
	}
	host0, _ := vppIface(t, pods[0].id, "net1")
	host1, _ := vppIface(t, pods[1].id, "net1")
	c, err := h.vpp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	c0, c1 := c[host0.Name], c[host1.Name]
	if c0["rx packets"] == 0 || c1["tx packets"] == 0 || c1["rx packets"] == 0 || c0["tx packets"] == 0 {
		t.Errorf("host bridge domain counters: pod 0 side %v, pod 1 side %v: want frames both ways", c0, c1)
	}
	t.Logf("ping %s -> %s: %d of %d answered; host VPP forwarded %d and %d frames", addrs[0].Addr(), addrs[1].Addr(), received, sent, c1["tx packets"], c0["tx packets"])

	// vpp-app restarted: nothing is created twice.
	before := pods[0].state(t).String()
	out = pods[0].vppApp(t)
	if !strings.Contains(out, "net1: kept memif") {
		t.Errorf("second vpp-app run printed %q", out)
	}
	if after := pods[0].state(t).String(); after != before {
		t.Errorf("a second vpp-app run changed the pod's VPP:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// TestVPPAppWaitsAndRefuses: vpp-app waits for config data that is not
// there yet, and says which interface it waited for; it fails without VPP.
func TestVPPAppWaitsAndRefuses(t *testing.T) {
	p := newPodVPP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	out, err := exec.CommandContext(ctx, filepath.Join(h.binDir, "vpp-app"), "-api-socket", p.vpp.APISocket,
		"-dir", dir, "-if", "net1", "-wait", "300ms").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no attachment for net1 in "+dir+" after 300ms") {
		t.Errorf("vpp-app without config data: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, filepath.Join(h.binDir, "vpp-app"), "-api-socket", filepath.Join(dir, "absent.sock"),
		"-dir", dir, "-wait", "300ms").CombinedOutput()
	if err == nil {
		t.Errorf("vpp-app without VPP succeeded: %s", out)
	}
	if st := p.state(t); len(st.Memifs) != 0 {
		t.Errorf("pod VPP has memifs %+v", st.Memifs)
	}
}

// resultAddr is the IPAM address of a CNI result.
func resultAddr(t *testing.T, res types.Result) netip.Prefix {
	t.Helper()
	r, err := types100.NewResultFromResult(res)
	if err != nil || len(r.IPs) == 0 {
		t.Fatalf("result %v: %v", res, err)
	}
	addr, _ := netip.AddrFromSlice(r.IPs[0].Address.IP)
	ones, _ := r.IPs[0].Address.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones)
}
