package podvpp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/binapi/interface_types"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/tests/testbed"

	interfaces "go.fd.io/govpp/binapi/interface"
)

const cid = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"

// The pod's VPP is a real VPP (tests/testbed); its memif sockets go in a
// directory of their own.
func startVPP(t *testing.T, opts testbed.VPPOptions) (*testbed.VPP, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "podvpp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	v, err := testbed.StartVPP(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil {
			t.Errorf("stopping VPP: %v", err)
		}
	})
	return v, dir
}

func connect(t *testing.T, v *testbed.VPP) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, v.APISocket, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// attachment is the notes' VPP scenario as the pod reads it: memif slave,
// ethernet, host-local 172.22.0.0/24 with a default route via .1.
func attachment(sock string) *configdata.Attachment {
	zero := 0
	return &configdata.Attachment{
		ConfigData: configdata.ConfigData{
			ContainerID: cid, IfName: "net1", Name: "memif-network",
			Config: netconf.UserSpaceConf{Engine: "vpp", IfType: "memif", NetType: "interface",
				Memif: netconf.MemifConf{Role: "slave", Mode: "ethernet", Socketfile: filepath.Base(sock)}},
			IPResult: &types100.Result{
				CNIVersion: "1.0.0",
				Interfaces: []*types100.Interface{{Name: "net1", Sandbox: "/var/run/netns/x"}},
				IPs: []*types100.IPConfig{
					{Interface: &zero, Address: net.IPNet{IP: net.ParseIP("172.22.0.2").To4(), Mask: net.CIDRMask(24, 32)}, Gateway: net.ParseIP("172.22.0.1")},
					{Interface: &zero, Address: net.IPNet{IP: net.ParseIP("2001:db8::2"), Mask: net.CIDRMask(64, 128)}},
				},
				Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}},
			},
		},
		SocketPath: sock,
	}
}

func TestApplyCreatesAndIsIdempotent(t *testing.T) {
	s, dir := startVPP(t, testbed.VPPOptions{})
	sock := filepath.Join(dir, "memif-3f9a1c2b4d5e-net1.sock")
	a := attachment(sock)

	c := connect(t, s)
	got, err := c.Apply(a)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created || got.Role != "slave" || got.Mode != "ethernet" || got.SocketPath != sock || !strings.HasPrefix(got.VPPName, "memif") {
		t.Errorf("Apply = %+v", got)
	}
	wantAddrs := []netip.Prefix{netip.MustParsePrefix("172.22.0.2/24"), netip.MustParsePrefix("2001:db8::2/64")}
	if !slices.Equal(got.Addresses, wantAddrs) || len(got.Routes) != 1 || got.Routes[0].String() != "0.0.0.0/0 via 172.22.0.1" {
		t.Errorf("Apply addresses %v routes %v", got.Addresses, got.Routes)
	}
	line := got.String()
	for _, want := range []string{"net1: created memif", "memif slave/ethernet on " + sock, "addresses 172.22.0.2/24 2001:db8::2/64", "routes 0.0.0.0/0 via 172.22.0.1"} {
		if !strings.Contains(line, want) {
			t.Errorf("String() = %q, want %q in it", line, want)
		}
	}
	checkState(t, s, got.SwIfIndex, sock)

	// vpp-app restarted: a new connection finds everything in place and
	// creates nothing.
	before := vppState(t, s).String()
	again, err := connect(t, s).Apply(a)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.SwIfIndex != got.SwIfIndex || !strings.Contains(again.String(), "net1: kept memif") {
		t.Errorf("second Apply = %+v", again)
	}
	if after := vppState(t, s).String(); after != before {
		t.Errorf("second Apply changed VPP:\nbefore\n%s\nafter\n%s", before, after)
	}
	checkState(t, s, got.SwIfIndex, sock)
}

func vppState(t *testing.T, v *testbed.VPP) *testbed.VPPState {
	t.Helper()
	st, err := v.State()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkState asserts the pod's VPP holds exactly one memif: slave, on the
// published socket, tagged, up, with the addresses from ipResult. A slave
// connects: VPP creates no socket file for it.
func checkState(t *testing.T, v *testbed.VPP, sw uint32, sock string) {
	t.Helper()
	st := vppState(t, v)
	if len(st.Memifs) != 1 || st.Memifs[0].SwIfIndex != sw || st.Memifs[0].Master || !st.Memifs[0].Ethernet || st.Memifs[0].ID != 0 {
		t.Fatalf("memifs = %+v", st.Memifs)
	}
	if f := st.MemifSockets[st.Memifs[0].SocketID]; f != sock {
		t.Errorf("memif socket %d is %q, want %s", st.Memifs[0].SocketID, f, sock)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("a slave memif made a socket file %s (%v)", sock, err)
	}
	i, ok := st.ByTag(Tag(cid, "net1"))
	if !ok || i.SwIfIndex != sw || !i.AdminUp || i.BridgeDomain != 0 {
		t.Errorf("interface = %+v (found %v)", i, ok)
	}
	want := []netip.Prefix{netip.MustParsePrefix("172.22.0.2/24"), netip.MustParsePrefix("2001:db8::2/64")}
	for _, p := range want {
		if !slices.Contains(i.Addresses, p) {
			t.Errorf("addresses = %v, want %v among them", i.Addresses, want)
		}
	}
	routes, err := v.Routes()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range routes {
		found = found || r.Prefix.String() == "0.0.0.0/0" && r.NextHop.String() == "172.22.0.1" && r.SwIfIndex == sw
	}
	if !found {
		t.Errorf("no route 0.0.0.0/0 via 172.22.0.1 on %d: %+v", sw, routes)
	}
}

// A run that stopped after creating the memif but before tagging it: the
// next run adopts the memif instead of making a second one.
func TestApplyAdoptsUntagged(t *testing.T) {
	s, dir := startVPP(t, testbed.VPPOptions{})
	sock := filepath.Join(dir, "m.sock")
	c := connect(t, s)
	first, err := c.Apply(attachment(sock))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ch.SendRequest(&interfaces.SwInterfaceTagAddDel{SwIfIndex: interface_types.InterfaceIndex(first.SwIfIndex)}).ReceiveReply(&interfaces.SwInterfaceTagAddDelReply{}); err != nil {
		t.Fatal(err)
	}
	again, err := c.Apply(attachment(sock))
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.SwIfIndex != first.SwIfIndex {
		t.Errorf("Apply after a lost tag = %+v, first %+v", again, first)
	}
	checkState(t, s, first.SwIfIndex, sock)
}

// The published socket changed (the plugin re-added the pod): the stale
// memif goes and a new one is made on the new socket.
func TestApplyReplacesStale(t *testing.T) {
	s, dir := startVPP(t, testbed.VPPOptions{})
	c := connect(t, s)
	if _, err := c.Apply(attachment(filepath.Join(dir, "old.sock"))); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "new.sock")
	got, err := c.Apply(attachment(sock))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created {
		t.Errorf("Apply on a new socket kept the old memif: %+v", got)
	}
	checkState(t, s, got.SwIfIndex, sock)
}

func TestApplyRefuses(t *testing.T) {
	s, dir := startVPP(t, testbed.VPPOptions{})
	c := connect(t, s)
	sock := filepath.Join(dir, "m.sock")
	for _, tt := range []struct {
		edit func(a *configdata.Attachment)
		want string
	}{
		{func(a *configdata.Attachment) { a.Config.IfType = "vhostuser" }, `interface net1: config.iftype "vhostuser": vpp-app sets up memif interfaces`},
		{func(a *configdata.Attachment) { a.Config.Memif.Role = "peer" }, `unknown memif role "peer"`},
		{func(a *configdata.Attachment) { a.Config.Memif.Secret = strings.Repeat("s", 25) }, "memif secret is 25 bytes"},
		{func(a *configdata.Attachment) { a.IPResult.Interfaces[0].Mac = "zz" }, `memif MAC "zz"`},
		{func(a *configdata.Attachment) {
			a.IPResult.Routes[0].GW = net.ParseIP("2001:db8::1")
		}, "mixes address families"},
	} {
		a := attachment(sock)
		tt.edit(a)
		if got, err := c.Apply(a); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Apply = %+v, %v; want an error with %q", got, err, tt.want)
		}
		if m := vppState(t, s).Memifs; len(m) != 0 {
			t.Fatalf("a refused Apply left memifs %+v", m)
		}
	}
}

func TestConnectFailures(t *testing.T) {
	// A real VPP without its memif plugin lacks the memif messages.
	s, _ := startVPP(t, testbed.VPPOptions{Plugins: []string{"ping_plugin.so"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Connect(ctx, s.APISocket, nil); err == nil || !strings.Contains(err.Error(), "missing or changed messages: memif_") {
		t.Errorf("incompatible VPP: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	absent := filepath.Join(t.TempDir(), "api.sock")
	if _, err := Connect(ctx, absent, nil); err == nil || !strings.Contains(err.Error(), "VPP API socket "+absent+" did not appear") {
		t.Errorf("no VPP: %v", err)
	}
}
