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
	vppmemif "go.fd.io/govpp/binapi/memif"

	"github.com/userspace-cni/userspace/pkg/podvpp"
	"github.com/userspace-cni/userspace/tests/vppstub"
)

// podVPP is a VPP client pod: its own VPP (a stand-in) and a mount table
// that names its sandbox the way containerd's does, for {sandbox}.
type podVPP struct {
	*pod
	vpp       *vppstub.Server
	mountinfo string
}

func newPodVPP(t *testing.T) *podVPP {
	t.Helper()
	p := newPod(t)
	dir, err := os.MkdirTemp("/tmp", "usp-podvpp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := vppstub.Start(vppstub.Options{Socket: filepath.Join(dir, "api.sock"), Seed: int64(len(p.id))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	mi := filepath.Join(dir, "mountinfo")
	line := fmt.Sprintf("1033 1021 8:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/%s/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw\n", p.id)
	if err := os.WriteFile(mi, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return &podVPP{pod: p, vpp: s, mountinfo: mi}
}

// vppApp runs the real vpp-app binary in the pod the way the notes' pods
// do: it reads the files the plugin left in /var/run/vpp/cni/<sandbox id>/.
func (p *podVPP) vppApp(t *testing.T, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-api-socket", p.vpp.SocketPath(), "-mountinfo", p.mountinfo,
		"-notes-dir", vppBase + "/{sandbox}", "-wait", "10s"}, extra...)
	out, err := exec.CommandContext(ctx, filepath.Join(h.binDir, "vpp-app"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vpp-app: %v\n%s", err, out)
	}
	return string(out)
}

// TestVPPAppPodSide replays the notes' VPP scenario: two pods on the
// memif network, each running vpp-app against its own VPP, then a ping
// from one to the other across the host VPP's bridge domain 4 over real
// memif connections.
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

	for i, p := range pods {
		out := p.vppApp(t)
		sock := filepath.Join(vppSharedDir, fmt.Sprintf("memif-%s-net1.sock", p.id[:12]))
		for _, want := range []string{"net1: created memif", "memif slave/ethernet on " + sock,
			"addresses " + addrs[i].String(), "routes 0.0.0.0/0 via 172.22.0.1"} {
			if !strings.Contains(out, want) {
				t.Errorf("vpp-app printed %q, want %q in it", out, want)
			}
		}
		// The API calls' effect on the pod's VPP: one memif slave on the
		// published socket, tagged, up, with the IPAM address and route.
		mems := p.vpp.Memifs()
		if len(mems) != 1 || mems[0].Role != vppmemif.MEMIF_ROLE_API_SLAVE || mems[0].Mode != vppmemif.MEMIF_MODE_API_ETHERNET {
			t.Fatalf("pod %d memifs = %+v", i, mems)
		}
		var file string
		for _, f := range p.vpp.SocketFiles() {
			if f.ID == mems[0].SocketID {
				file = f.Filename
			}
		}
		if file != sock {
			t.Errorf("pod %d memif socket = %q, want %q", i, file, sock)
		}
		iface := podIface(t, p.vpp, mems[0].SwIfIndex)
		if iface.Tag != podvpp.Tag(p.id, "net1") || !iface.AdminUp || !slices.Equal(iface.Addresses, []netip.Prefix{addrs[i]}) {
			t.Errorf("pod %d interface = %+v, want address %s", i, iface, addrs[i])
		}
		routes := p.vpp.Routes()
		if len(routes) != 1 || routes[0].Prefix.String() != "0.0.0.0/0" || routes[0].NextHop.String() != "172.22.0.1" || routes[0].SwIfIndex != mems[0].SwIfIndex {
			t.Errorf("pod %d routes = %+v", i, routes)
		}
	}

	// Both memif connections come up: the pod's slave and the host's
	// master see each other.
	deadline := time.Now().Add(20 * time.Second)
	for {
		up := 0
		for _, p := range pods {
			if m := p.vpp.Memifs(); len(m) == 1 && m[0].Connected {
				if hi, ok := vppIface(t, p.id, "net1"); ok && hi.LinkUp {
					up++
				}
			}
		}
		if up == len(pods) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("memif connections not up after 20s: %d of %d", up, len(pods))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// vppctl ping <other pod's address>, from pod 0's VPP.
	a, _ := podIfaceIndex(pods[0].vpp)
	replies, err := pods[0].vpp.Ping(a, addrs[1].Addr(), 5, 10*time.Second)
	if err != nil || replies == 0 {
		t.Fatalf("ping %s from pod 0: %d replies, %v", addrs[1].Addr(), replies, err)
	}
	host0, _ := vppIface(t, pods[0].id, "net1")
	host1, _ := vppIface(t, pods[1].id, "net1")
	c0, c1 := h.vpp.Counters(host0.SwIfIndex), h.vpp.Counters(host1.SwIfIndex)
	if c0.RxPackets == 0 || c1.TxPackets == 0 || c1.RxPackets == 0 || c0.TxPackets == 0 {
		t.Errorf("host bridge domain counters: pod 0 side %+v, pod 1 side %+v: want frames both ways", c0, c1)
	}
	t.Logf("ping %s -> %s: %d of 5 replies; host VPP forwarded %d and %d frames", addrs[0].Addr(), addrs[1].Addr(), replies, c1.TxPackets, c0.TxPackets)

	// vpp-app restarted: nothing is created twice.
	pods[0].vpp.ResetCalls()
	out := pods[0].vppApp(t)
	if !strings.Contains(out, "net1: kept memif") {
		t.Errorf("second vpp-app run printed %q", out)
	}
	if calls := pods[0].vpp.Calls(); calls["memif_create_v2"] != 0 || calls["sw_interface_add_del_address"] != 0 {
		t.Errorf("second run created again: %v", calls)
	}
	if m := pods[0].vpp.Memifs(); len(m) != 1 {
		t.Errorf("after a second run the pod's VPP has %d memifs", len(m))
	}
}

func podIface(t *testing.T, s *vppstub.Server, sw uint32) vppstub.Interface {
	t.Helper()
	for _, i := range s.Interfaces() {
		if i.SwIfIndex == sw {
			return i
		}
	}
	t.Fatalf("no interface %d", sw)
	return vppstub.Interface{}
}

func podIfaceIndex(s *vppstub.Server) (uint32, bool) {
	m := s.Memifs()
	if len(m) != 1 {
		return 0, false
	}
	return m[0].SwIfIndex, true
}

// TestVPPAppWaitsAndRefuses: vpp-app waits for config data that is not
// there yet, and says which interface it waited for; it refuses a
// vhost-user attachment, which a VPP client pod cannot use.
func TestVPPAppWaitsAndRefuses(t *testing.T) {
	p := newPodVPP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	out, err := exec.CommandContext(ctx, filepath.Join(h.binDir, "vpp-app"), "-api-socket", p.vpp.SocketPath(),
		"-dir", dir, "-if", "net1", "-wait", "300ms").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no attachment for net1 in "+dir+" after 300ms") {
		t.Errorf("vpp-app without config data: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, filepath.Join(h.binDir, "vpp-app"), "-api-socket", filepath.Join(dir, "absent.sock"),
		"-dir", dir, "-wait", "300ms").CombinedOutput()
	if err == nil {
		t.Errorf("vpp-app without VPP succeeded: %s", out)
	}
	if m := p.vpp.Memifs(); len(m) != 0 {
		t.Errorf("pod VPP has memifs %+v", m)
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
