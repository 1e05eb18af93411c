package vpp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	vppmemif "go.fd.io/govpp/binapi/memif"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/vpp"
	"github.com/userspace-cni/userspace/pkg/vppapi"
)

const (
	cidHex   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cidOther = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	// firstSocketID is the first id VPP allocates for a socket (~0).
	firstSocketID = 1013904223
	bd            = 7
)

// Request names, as the fake logs them.
const (
	reqSockAddDel = "memif_socket_filename_add_del_v2"
	reqMemifAdd   = "memif_create_v2"
	reqMemifDel   = "memif_delete"
	reqMemifDump  = "memif_dump"
	reqSockDump   = "memif_socket_filename_dump"
	reqBDAddDel   = "bridge_domain_add_del_v2"
	reqBDDump     = "bridge_domain_dump"
	reqL2Bridge   = "sw_interface_set_l2_bridge"
	reqFlags      = "sw_interface_set_flags"
	reqTag        = "sw_interface_tag_add_del"
	reqAddr       = "sw_interface_add_del_address"
	reqIfDump     = "sw_interface_dump"
	reqVhostAdd   = "create_vhost_user_if_v2"
	reqVhostDel   = "delete_vhost_user_if"
	reqVhostDump  = "sw_interface_vhost_user_dump"
)

// testEnv is a fake VPP and a socket directory base for attachments.
type testEnv struct {
	t   *testing.T
	f   *fakeVPP
	pol *policy.Policy
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	tmp := t.TempDir()
	return &testEnv{t: t, f: newFakeVPP(t), pol: &policy.Policy{
		SharedDirs:     []string{filepath.Join(tmp, "shared")},
		ShortSocketDir: filepath.Join(tmp, "s"),
	}}
}

// engine connects a new engine, as one CNI invocation does.
func (v *testEnv) engine(ifType string) *vpp.Engine {
	v.t.Helper()
	e, err := vpp.Connect(context.Background(), vpp.Config{Socket: "/fake/api.sock", IfType: ifType, Adapter: v.f.newConn()})
	if err != nil {
		v.t.Fatalf("Connect: %v", err)
	}
	v.t.Cleanup(e.Close)
	if n := e.RoundTrips(); n != 1 {
		v.t.Errorf("RoundTrips after connecting = %d, want 1", n)
	}
	return e
}

func (v *testEnv) layout(cid, ifName, socketName string) *sockdir.Layout {
	v.t.Helper()
	l, err := sockdir.Plan(v.pol, filepath.Join(v.pol.SharedDirs[0], configdata.ShortID(cid)+"-"+ifName), true, socketName)
	if err != nil {
		v.t.Fatal(err)
	}
	if err := l.Prepare(""); err != nil {
		v.t.Fatal(err)
	}
	return l
}

// memifAtt is a memif master in bridge domain 7 unless changed.
func (v *testEnv) memifAtt(cid, ifName string, change ...func(*engine.Attachment)) *engine.Attachment {
	a := &engine.Attachment{
		ContainerID: cid, IfName: ifName, Network: "net", PodNamespace: "ns", PodName: "pod",
		Host: netconf.UserSpaceConf{
			Engine: "vpp", IfType: netconf.IfTypeMemif, NetType: netconf.NetTypeBridge,
			Memif:  netconf.MemifConf{Role: netconf.MemifMaster, Mode: netconf.MemifEthernet},
			Bridge: netconf.BridgeConf{BridgeName: strconv.Itoa(bd)},
		},
		Layout: v.layout(cid, ifName, configdata.DefaultSocketName(netconf.IfTypeMemif, cid, ifName)),
	}
	for _, c := range change {
		c(a)
	}
	return a
}

func (v *testEnv) vhostAtt(cid, ifName, mode string) *engine.Attachment {
	return &engine.Attachment{
		ContainerID: cid, IfName: ifName,
		Host: netconf.UserSpaceConf{
			Engine: "vpp", IfType: netconf.IfTypeVhostUser, NetType: netconf.NetTypeBridge,
			Vhost:  netconf.VhostConf{Mode: mode},
			Bridge: netconf.BridgeConf{BridgeID: bd},
		},
		Layout: v.layout(cid, ifName, configdata.ShortID(cid)+"-"+ifName),
	}
}

func (v *testEnv) attach(e *vpp.Engine, a *engine.Attachment) json.RawMessage {
	v.t.Helper()
	data, err := e.Attach(context.Background(), a)
	if err != nil {
		v.t.Fatalf("Attach: %v", err)
	}
	return data
}

// leftovers is what VPP holds beyond a fresh start.
func (v *testEnv) leftovers() string {
	var out string
	v.f.with(func(s *fakeState) { out = s.leftovers() })
	return out
}

func wantRequests(t *testing.T, f *fakeVPP, want ...string) {
	t.Helper()
	if got := f.takeRequests(); !slices.Equal(got, want) {
		t.Errorf("requests:\n got %v\nwant %v", got, want)
	}
}

func wantTrips(t *testing.T, e *vpp.Engine, want int) {
	t.Helper()
	if got := e.RoundTrips(); got != want {
		t.Errorf("RoundTrips = %d, want %d", got, want)
	}
}

func socketMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("socket file: %v", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		t.Fatalf("%s is %v, not a socket", path, fi.Mode())
	}
	return fi.Mode().Perm()
}

func TestAttachMemifMasterInBridge(t *testing.T) {
	v := newEnv(t)
	e := v.engine(netconf.IfTypeMemif)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(e, a)

	// Socket registration, then the memif, then tag, bridge domain,
	// membership and admin up: three round trips.
	wantRequests(t, v.f, reqSockAddDel, reqMemifAdd, reqTag, reqBDAddDel, reqL2Bridge, reqFlags)
	wantTrips(t, e, 1+3)

	tag := vpp.OwnerTag(cidHex, "net1")
	want := fmt.Sprintf(`{"tag":%q,"swIfIndex":1,"socketId":%d,"bridgeDomain":7,"createdBridge":true}`, tag, firstSocketID)
	if string(data) != want {
		t.Errorf("record:\n got %s\nwant %s", data, want)
	}

	v.f.with(func(s *fakeState) {
		i := s.byTag(tag)
		if i == nil {
			t.Fatalf("no interface tagged %s: %s", tag, s.leftovers())
		}
		if i.index != 1 || i.name != fmt.Sprintf("memif%d/0", firstSocketID) || !i.adminUp {
			t.Errorf("interface %d %s up=%v", i.index, i.name, i.adminUp)
		}
		if m := i.memif; m.role != vppmemif.MEMIF_ROLE_API_MASTER || m.mode != vppmemif.MEMIF_MODE_API_ETHERNET || m.socketID != firstSocketID || m.id != 0 {
			t.Errorf("memif %+v", *m)
		}
		if got := s.sockets[firstSocketID].path; got != a.Layout.ConnectPath() {
			t.Errorf("socket registered as %q, want %q", got, a.Layout.ConnectPath())
		}
		b := s.bds[bd]
		if b == nil {
			t.Fatal("bridge domain 7 not created")
		}
		if b.tag != vpp.BridgeTag || !b.flood || !b.uuFlood || !b.forward || !b.learn || !slices.Equal(b.members, []uint32{1}) {
			t.Errorf("bridge domain %+v", *b)
		}
	})
	// VPP created the listening socket as root: the pod's app may use it.
	if m := socketMode(t, a.Layout.SocketPath()); m != 0o666 {
		t.Errorf("socket mode %v, want 0666", m)
	}
	if err := e.Check(context.Background(), a, data); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestAttachMemifOptions(t *testing.T) {
	v := newEnv(t)
	e := v.engine(netconf.IfTypeMemif)
	a := v.memifAtt(cidHex, "net1", func(a *engine.Attachment) {
		a.Host.Memif = netconf.MemifConf{Role: netconf.MemifSlave, Mode: netconf.MemifEthernet,
			RingSize: 2048, BufferSize: 4096, Queues: 2, Secret: "s3cret", MAC: "02:00:00:00:00:2a"}
	})
	v.attach(e, a)
	v.f.with(func(s *fakeState) {
		i := s.byTag(vpp.OwnerTag(cidHex, "net1"))
		m := i.memif
		if m.role != vppmemif.MEMIF_ROLE_API_SLAVE || m.ring != 2048 || m.buffer != 4096 || m.queues != 2 || m.secret != "s3cret" {
			t.Errorf("memif %+v", *m)
		}
		if i.mac.String() != "02:00:00:00:00:2a" {
			t.Errorf("MAC %s", i.mac)
		}
	})
	// A slave connects to the pod's socket: VPP creates no file.
	if _, err := os.Lstat(a.Layout.SocketPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file of a slave: %v", err)
	}
	if err := e.Check(context.Background(), a, nil); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestAttachNetTypes(t *testing.T) {
	ip4 := net.IPNet{IP: net.IPv4(10, 1, 2, 3).To4(), Mask: net.CIDRMask(24, 32)}
	ip6 := net.IPNet{IP: net.ParseIP("fd00::3"), Mask: net.CIDRMask(64, 128)}
	t.Run("interface", func(t *testing.T) {
		v := newEnv(t)
		e := v.engine(netconf.IfTypeMemif)
		a := v.memifAtt(cidHex, "net1", func(a *engine.Attachment) {
			a.Host.NetType = netconf.NetTypeInterface
			a.Host.Bridge = netconf.BridgeConf{}
			a.IPs = []net.IPNet{ip4, ip6}
		})
		data := v.attach(e, a)
		wantRequests(t, v.f, reqSockAddDel, reqMemifAdd, reqTag, reqAddr, reqAddr, reqFlags)
		wantTrips(t, e, 1+3)
		if strings.Contains(string(data), "bridge") {
			t.Errorf("record names a bridge: %s", data)
		}
		v.f.with(func(s *fakeState) {
			i := s.byTag(vpp.OwnerTag(cidHex, "net1"))
			if !slices.Equal(i.addrs, []string{"10.1.2.3/24", "fd00::3/64"}) || !i.adminUp {
				t.Errorf("addresses %v up %v", i.addrs, i.adminUp)
			}
			if len(s.bds) != 0 {
				t.Errorf("bridge domains: %s", s.leftovers())
			}
		})
		if err := e.Check(context.Background(), a, data); err != nil {
			t.Errorf("Check: %v", err)
		}
		wantRequests(t, v.f, reqIfDump, reqMemifDump, reqSockDump)
		if err := e.Detach(context.Background(), a, data); err != nil {
			t.Fatal(err)
		}
		wantRequests(t, v.f, reqIfDump, reqSockDump, reqMemifDel, reqSockAddDel)
		if l := v.leftovers(); l != "" {
			t.Errorf("left behind: %s", l)
		}
	})
	t.Run("none", func(t *testing.T) {
		v := newEnv(t)
		e := v.engine(netconf.IfTypeMemif)
		a := v.memifAtt(cidHex, "net1", func(a *engine.Attachment) {
			a.Host.NetType = netconf.NetTypeNone
			a.IPs = []net.IPNet{ip4} // only netType "interface" uses them
		})
		v.attach(e, a)
		wantRequests(t, v.f, reqSockAddDel, reqMemifAdd, reqTag, reqFlags)
		v.f.with(func(s *fakeState) {
			if i := s.byTag(vpp.OwnerTag(cidHex, "net1")); len(i.addrs) != 0 || len(s.bds) != 0 {
				t.Errorf("addresses %v, %s", i.addrs, s.leftovers())
			}
		})
	})
}

func TestAttachInvalid(t *testing.T) {
	v := newEnv(t)
	e := v.engine(netconf.IfTypeMemif)
	cases := map[string]struct {
		att  *engine.Attachment
		want string
	}{
		"no layout": {v.memifAtt(cidHex, "net1", func(a *engine.Attachment) { a.Layout = nil }), "no socket layout"},
		"iftype":    {v.memifAtt(cidHex, "net1", func(a *engine.Attachment) { a.Host.IfType = "tap" }), `"tap" is not supported`},
		"mac":       {v.memifAtt(cidHex, "net1", func(a *engine.Attachment) { a.Host.Memif.MAC = "nope" }), "not a 48-bit MAC"},
		"role":      {v.memifAtt(cidHex, "net1", func(a *engine.Attachment) { a.Host.Memif.Role = "boss" }), "unknown memif role"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := e.Attach(context.Background(), c.att); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Attach error %v, want %q", err, c.want)
			}
			// Refused before anything reached VPP.
			wantRequests(t, v.f)
		})
	}
}

func TestAttachJoinsExistingBridge(t *testing.T) {
	v := newEnv(t)
	var foreign uint32
	v.f.with(func(s *fakeState) {
		s.bds[bd] = &fakeBD{id: bd, flood: true}
		foreign = s.addForeignMemif("/run/other.sock", "someone-else", bd).index
	})
	e := v.engine(netconf.IfTypeMemif)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(e, a)
	if strings.Contains(string(data), "createdBridge") {
		t.Errorf("an existing domain is recorded as created: %s", data)
	}
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, data); err != nil {
		t.Fatal(err)
	}
	v.f.with(func(s *fakeState) {
		b := s.bds[bd]
		if b == nil || b.tag != "" || !slices.Equal(b.members, []uint32{foreign}) {
			t.Errorf("the domain the plugin joined changed: %s", s.leftovers())
		}
	})

	// Not the plugin's, so kept even once empty.
	v.f.with(func(s *fakeState) { s.memifDelete(foreign) })
	data = v.attach(v.engine(netconf.IfTypeMemif), a)
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, data); err != nil {
		t.Fatal(err)
	}
	v.f.with(func(s *fakeState) {
		if s.bds[bd] == nil {
			t.Error("Detach deleted a bridge domain the plugin did not create")
		}
	})
}

func TestDetachSharedBridge(t *testing.T) {
	v := newEnv(t)
	e := v.engine(netconf.IfTypeMemif)
	a, b := v.memifAtt(cidHex, "net1"), v.memifAtt(cidOther, "net1")
	dataA := v.attach(e, a)
	dataB := v.attach(e, b)
	if !strings.Contains(string(dataA), `"createdBridge":true`) || strings.Contains(string(dataB), "createdBridge") {
		t.Errorf("records: %s %s", dataA, dataB)
	}

	// The domain the plugin created stays while b is in it...
	e2 := v.engine(netconf.IfTypeMemif)
	if err := e2.Detach(context.Background(), a, dataA); err != nil {
		t.Fatal(err)
	}
	wantTrips(t, e2, 1+2)
	v.f.with(func(s *fakeState) {
		if s.bds[bd] == nil || len(s.bds[bd].members) != 1 {
			t.Errorf("after detaching a: %s", s.leftovers())
		}
	})
	// ...and goes with the last member, whoever created it.
	v.f.takeRequests()
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), b, dataB); err != nil {
		t.Fatal(err)
	}
	// The record's interface still carries b's tag: only it is read.
	wantRequests(t, v.f, reqIfDump, reqBDDump, reqSockDump, reqMemifDel, reqSockAddDel, reqBDAddDel)
	if l := v.leftovers(); l != "" {
		t.Errorf("left behind: %s", l)
	}
}

func TestDetachBridgeJoinedMeanwhile(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(v.engine(netconf.IfTypeMemif), a)
	// Another ADD joins the domain between Detach's read and its delete:
	// VPP refuses with BD_IN_USE, which is not an error.
	v.f.beforeNth(reqBDAddDel, 1, func(s *fakeState) { s.addForeignMemif("/run/late.sock", "", bd) })
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, data); err != nil {
		t.Fatal(err)
	}
	v.f.with(func(s *fakeState) {
		if s.bds[bd] == nil || len(s.bds[bd].members) != 1 || s.byTag(vpp.OwnerTag(cidHex, "net1")) != nil {
			t.Errorf("state: %s", s.leftovers())
		}
	})
}

// rollbackCase injects a failure into one step of an ADD.
type rollbackCase struct {
	name   string
	req    string
	nth    int
	change func(*engine.Attachment)
	want   string
}

func TestAttachRollback(t *testing.T) {
	interfaceNet := func(a *engine.Attachment) {
		a.Host.NetType = netconf.NetTypeInterface
		a.IPs = []net.IPNet{
			{IP: net.IPv4(10, 1, 2, 3).To4(), Mask: net.CIDRMask(24, 32)},
			{IP: net.ParseIP("fd00::3"), Mask: net.CIDRMask(64, 128)},
		}
	}
	cases := []rollbackCase{
		{"socket register", reqSockAddDel, 1, nil, "registering memif socket"},
		{"bridge add", reqBDAddDel, 1, nil, "creating bridge domain 7"},
		{"memif create", reqMemifAdd, 1, nil, "creating memif"},
		{"tag", reqTag, 1, nil, "tagging the interface"},
		{"l2 bridge", reqL2Bridge, 1, nil, "adding the interface to bridge domain 7"},
		{"flags up", reqFlags, 1, nil, "setting the interface up"},
		{"first address", reqAddr, 1, interfaceNet, "setting address 10.1.2.3/24"},
		{"second address", reqAddr, 2, interfaceNet, "setting address fd00::3/64"},
	}
	const retval = int32(api.UNSPECIFIED)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newEnv(t)
			e := v.engine(netconf.IfTypeMemif)
			a := v.memifAtt(cidHex, "net1")
			if c.change != nil {
				c.change(a)
			}
			v.f.failNth(c.req, c.nth, retval)
			_, err := e.Attach(context.Background(), a)
			if err == nil {
				t.Fatal("Attach succeeded")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "rollback") {
				t.Errorf("error %q, want it to name %q and no rollback failure", err, c.want)
			}
			if !vppapi.IsRetval(err, retval) {
				t.Errorf("error %v does not carry VPP's retval", err)
			}
			if l := v.leftovers(); l != "" {
				t.Errorf("left behind: %s", l)
			}
		})
	}

	t.Run("socket permissions", func(t *testing.T) {
		v := newEnv(t)
		a := v.memifAtt(cidHex, "net1", func(a *engine.Attachment) { a.Host.Vhost.Group = "no-such-group-userspace-cni" })
		_, err := v.engine(netconf.IfTypeMemif).Attach(context.Background(), a)
		if err == nil || !strings.Contains(err.Error(), "setting permissions") {
			t.Fatalf("Attach error %v", err)
		}
		if l := v.leftovers(); l != "" {
			t.Errorf("left behind: %s", l)
		}
	})

	t.Run("existing bridge kept", func(t *testing.T) {
		v := newEnv(t)
		v.f.with(func(s *fakeState) { s.bds[bd] = &fakeBD{id: bd, tag: vpp.BridgeTag} })
		v.f.failNth(reqFlags, 1, retval)
		if _, err := v.engine(netconf.IfTypeMemif).Attach(context.Background(), v.memifAtt(cidHex, "net1")); err == nil {
			t.Fatal("Attach succeeded")
		}
		v.f.with(func(s *fakeState) {
			if s.bds[bd] == nil || len(s.ifs) != 1 || len(s.sockets) != 1 {
				t.Errorf("state: %s", s.leftovers())
			}
		})
	})

	t.Run("bridge rollback fails", func(t *testing.T) {
		v := newEnv(t)
		v.f.failNth(reqFlags, 1, retval)
		v.f.failNth(reqBDAddDel, 2, retval)
		_, err := v.engine(netconf.IfTypeMemif).Attach(context.Background(), v.memifAtt(cidHex, "net1"))
		if err == nil || !strings.Contains(err.Error(), "rollback: deleting bridge domain 7") {
			t.Fatalf("Attach error %v", err)
		}
		v.f.with(func(s *fakeState) {
			if len(s.ifs) != 1 || len(s.sockets) != 1 || s.bds[bd] == nil {
				t.Errorf("state: %s", s.leftovers())
			}
		})
	})

	t.Run("rollback fails", func(t *testing.T) {
		v := newEnv(t)
		a := v.memifAtt(cidHex, "net1")
		v.f.failNth(reqFlags, 1, retval)
		v.f.failNth(reqMemifDel, 1, retval)
		_, err := v.engine(netconf.IfTypeMemif).Attach(context.Background(), a)
		if err == nil || !strings.Contains(err.Error(), "setting the interface up") || !strings.Contains(err.Error(), "rollback: deleting interface 1") {
			t.Fatalf("Attach error %v", err)
		}
		// What the rollback could not remove, DEL (without a record) does.
		if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, nil); err != nil {
			t.Fatal(err)
		}
		if l := v.leftovers(); l != "" {
			t.Errorf("left behind: %s", l)
		}
	})
}

func TestDetach(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(v.engine(netconf.IfTypeMemif), a)
	v.f.takeRequests()

	e := v.engine(netconf.IfTypeMemif)
	if err := e.Detach(context.Background(), a, data); err != nil {
		t.Fatal(err)
	}
	// One read of the recorded interface (its tag checked) and the bridge
	// domain, one batch of deletes.
	wantRequests(t, v.f, reqIfDump, reqBDDump, reqSockDump, reqMemifDel, reqSockAddDel, reqBDAddDel)
	wantTrips(t, e, 1+2)
	if l := v.leftovers(); l != "" {
		t.Errorf("left behind: %s", l)
	}
	// VPP leaves the master's socket file: the caller removes it.
	socketMode(t, a.Layout.SocketPath())

	// Again: nothing to do, no error, only reads: the recorded interface
	// is gone, so everything is read to find it by tag.
	if err := e.Detach(context.Background(), a, data); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	wantRequests(t, v.f, reqIfDump, reqBDDump, reqSockDump, reqIfDump, reqMemifDump, reqSockDump)
	wantTrips(t, e, 1+2+2)
}

func TestDetachReportsFailures(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(v.engine(netconf.IfTypeMemif), a)
	v.f.failNth(reqMemifDel, 1, int32(api.UNSPECIFIED))
	err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, data)
	// The memif stays, so its socket is still in use (-74); the domain still
	// has a member, which is fine (-120).
	name := fmt.Sprintf("memif%d/0", firstSocketID)
	if err == nil || !strings.Contains(err.Error(), "deleting interface "+name+" (1)") ||
		!strings.Contains(err.Error(), fmt.Sprintf("unregistering memif socket %d", firstSocketID)) || strings.Contains(err.Error(), "bridge") {
		t.Fatalf("Detach error %v", err)
	}
	// A retry finishes the job.
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, data); err != nil {
		t.Fatal(err)
	}
	if l := v.leftovers(); l != "" {
		t.Errorf("left behind: %s", l)
	}
}

func TestDetachWithoutRecord(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	v.attach(v.engine(netconf.IfTypeMemif), a)
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
	if l := v.leftovers(); l != "" {
		t.Errorf("left behind: %s", l)
	}
}

func TestDetachRecordBridgeWins(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(v.engine(netconf.IfTypeMemif), a)
	// The configuration changed since ADD: the record's domain is removed.
	a.Host.Bridge.BridgeName = "8"
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, data); err != nil {
		t.Fatal(err)
	}
	if l := v.leftovers(); l != "" {
		t.Errorf("left behind: %s", l)
	}
}

func TestDetachAfterRestart(t *testing.T) {
	v := newEnv(t)
	a, b := v.memifAtt(cidHex, "net1"), v.memifAtt(cidOther, "net1")
	old := v.engine(netconf.IfTypeMemif)
	dataA := v.attach(old, a)
	v.f.restart()

	// The connection made before the restart is dead: an error, not a hang.
	if err := old.Detach(context.Background(), a, dataA); err == nil {
		t.Error("Detach over a dead connection succeeded")
	}
	if err := old.Check(context.Background(), a, dataA); err == nil || !strings.Contains(err.Error(), "reading VPP state") {
		t.Errorf("Check over a dead connection: %v", err)
	}
	if _, err := old.ListOwned(context.Background()); err == nil {
		t.Error("ListOwned over a dead connection succeeded")
	}

	// After the restart VPP hands out the same index and socket id again.
	dataB := v.attach(v.engine(netconf.IfTypeMemif), b)
	var recA, recB map[string]any
	_ = json.Unmarshal(dataA, &recA)
	_ = json.Unmarshal(dataB, &recB)
	if recA["swIfIndex"] != recB["swIfIndex"] || recA["socketId"] != recB["socketId"] {
		t.Fatalf("records %s and %s: the fake should reuse ids after a restart", dataA, dataB)
	}
	v.f.takeRequests()

	// Detaching a finds nothing of a's and leaves b alone.
	e := v.engine(netconf.IfTypeMemif)
	if err := e.Detach(context.Background(), a, dataA); err != nil {
		t.Fatal(err)
	}
	// The recorded index now holds b (another tag): everything is read;
	// the plugin's bridge domain is asked to go, and VPP keeps it for b.
	wantRequests(t, v.f, reqIfDump, reqBDDump, reqSockDump, reqIfDump, reqMemifDump, reqSockDump, reqBDAddDel)
	if err := e.Check(context.Background(), b, dataB); err != nil {
		t.Errorf("b after detaching a: %v", err)
	}
}

func TestDetachConcurrentRemoval(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(v.engine(netconf.IfTypeMemif), a)
	// Everything goes between Detach's read and its deletes (another DEL, a
	// restart): VPP answers -2 for the memif, INVALID_ARGUMENT for the
	// socket id and NO_SUCH_ENTRY for the domain. All mean "already gone".
	v.f.beforeNth(reqMemifDel, 1, func(s *fakeState) {
		i := s.byTag(vpp.OwnerTag(cidHex, "net1"))
		s.memifDelete(i.index)
		delete(s.sockets, firstSocketID)
		delete(s.bds, bd)
	})
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, data); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if l := v.leftovers(); l != "" {
		t.Errorf("left behind: %s", l)
	}
}

func TestDetachHalfFailedAdd(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	// ADD failed at memif create, and its rollback could not unregister the
	// socket: the registration is all that is left.
	v.f.failNth(reqMemifAdd, 1, int32(api.UNSPECIFIED))
	v.f.failNth(reqSockAddDel, 2, int32(api.UNSPECIFIED))
	_, err := v.engine(netconf.IfTypeMemif).Attach(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "rollback: unregistering memif socket") {
		t.Fatalf("Attach error %v", err)
	}
	var others []uint32
	v.f.with(func(s *fakeState) {
		if len(s.sockets) != 2 || len(s.ifs) != 1 {
			t.Fatalf("state before Detach: %s", s.leftovers())
		}
		// Registrations that are not this attachment's.
		id, _ := s.socketAddDel(&vppmemif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: 99, SocketFilename: "/run/unused.sock"})
		others = append(others, id, s.addForeignMemif(a.Layout.ConnectPath()+".x", "x", 0).memif.socketID)
		// Someone else's memif registered on the same path: in use, kept.
		others = append(others, s.addForeignMemif(a.Layout.ConnectPath(), "y", 0).memif.socketID)
	})
	v.f.takeRequests()
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, v.f, reqIfDump, reqMemifDump, reqSockDump, reqBDDump, reqSockAddDel)
	v.f.with(func(s *fakeState) {
		if s.sockets[firstSocketID] != nil || len(s.sockets) != 4 || s.sockets[others[0]] == nil || s.sockets[others[1]] == nil || s.sockets[others[2]] == nil {
			t.Errorf("sockets after Detach: %s", s.leftovers())
		}
	})
}

func TestDetachLeavesOthersAlone(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(v.engine(netconf.IfTypeMemif), a)
	var keep []uint32
	v.f.with(func(s *fakeState) {
		for _, tag := range []string{"", "someone-else", vpp.OwnerTag(cidHex, "net2"), vpp.OwnerTag(cidOther, "net1"), vpp.OwnerTag(cidHex, "net1") + "x"} {
			keep = append(keep, s.addForeignMemif(fmt.Sprintf("/run/other-%d.sock", len(keep)), tag, bd).index)
		}
	})
	if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, data); err != nil {
		t.Fatal(err)
	}
	v.f.with(func(s *fakeState) {
		if s.byTag(vpp.OwnerTag(cidHex, "net1")) != nil {
			t.Error("own interface still there")
		}
		for _, idx := range keep {
			if s.ifs[idx] == nil || !slices.Contains(s.bds[bd].members, idx) {
				t.Errorf("interface %d removed: %s", idx, s.leftovers())
			}
		}
		if len(s.sockets) != 1+len(keep) {
			t.Errorf("sockets: %s", s.leftovers())
		}
	})
}

func TestCheck(t *testing.T) {
	tag := vpp.OwnerTag(cidHex, "net1")
	cases := []struct {
		name    string
		breakIt func(*fakeVPP)
		want    string
	}{
		{"good", nil, ""},
		{"missing", func(f *fakeVPP) { f.restart() }, "no interface tagged " + tag},
		{"admin down", func(f *fakeVPP) { f.with(func(s *fakeState) { s.byTag(tag).adminUp = false }) }, "administratively down"},
		{"socket", func(f *fakeVPP) {
			f.with(func(s *fakeState) { s.sockets[firstSocketID].path = "/elsewhere.sock" })
		}, `uses socket "/elsewhere.sock"`},
		{"role", func(f *fakeVPP) {
			f.with(func(s *fakeState) { s.byTag(tag).memif.role = vppmemif.MEMIF_ROLE_API_SLAVE })
		}, "is slave/ethernet, want master/ethernet"},
		{"mode", func(f *fakeVPP) {
			f.with(func(s *fakeState) { s.byTag(tag).memif.mode = vppmemif.MEMIF_MODE_API_IP })
		}, "is master/ip, want master/ethernet"},
		{"not a memif", func(f *fakeVPP) {
			f.with(func(s *fakeState) {
				s.byTag(tag).tag = ""
				i := s.newIf("tap0")
				i.tag, i.adminUp = tag, true
			})
		}, "is not a memif"},
		{"not in bridge", func(f *fakeVPP) { f.with(func(s *fakeState) { s.bds[bd].members = nil }) }, "is not in bridge domain 7"},
		{"no bridge", func(f *fakeVPP) { f.with(func(s *fakeState) { delete(s.bds, bd) }) }, "bridge domain 7 does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newEnv(t)
			a := v.memifAtt(cidHex, "net1")
			data := v.attach(v.engine(netconf.IfTypeMemif), a)
			if c.breakIt != nil {
				c.breakIt(v.f)
			}
			err := v.engine(netconf.IfTypeMemif).Check(context.Background(), a, data)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Check error %v, want %q", err, c.want)
			}
		})
	}
}

func TestListOwned(t *testing.T) {
	v := newEnv(t)
	e := v.engine(netconf.IfTypeMemif)
	a := v.memifAtt(cidHex, "net1")
	b := v.memifAtt("short-id", "net2", func(a *engine.Attachment) { a.Host.NetType = netconf.NetTypeNone })
	long := strings.Repeat("not-hex-", 10)
	v.attach(e, a)
	v.attach(e, b)
	v.f.with(func(s *fakeState) {
		s.addForeignMemif("/run/x.sock", "someone-else", 0)
		s.addForeignMemif("/run/y.sock", "", 0)
		// The plugin's, but its owner cannot be named from the tag.
		s.addForeignMemif("/run/z.sock", vpp.OwnerTag(long, "net1"), 0)
		s.addForeignMemif("/run/w.sock", "u0:no-interface-name", 0)
	})
	got, err := e.ListOwned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].ContainerID < got[j].ContainerID })
	want := []engine.Owned{
		{ContainerID: cidHex, IfName: "net1", SocketPath: a.Layout.ConnectPath()},
		{ContainerID: "short-id", IfName: "net2", SocketPath: b.Layout.ConnectPath()},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListOwned:\n got %+v\nwant %+v", got, want)
	}
}

func TestVhostUser(t *testing.T) {
	for _, mode := range []string{netconf.VhostServer, netconf.VhostClient} {
		t.Run(mode, func(t *testing.T) {
			v := newEnv(t)
			e := v.engine(netconf.IfTypeVhostUser)
			a := v.vhostAtt(cidHex, "net1", mode)
			data := v.attach(e, a)
			// The interface (the tag comes with the create), then bridge
			// domain, membership and admin up.
			wantRequests(t, v.f, reqVhostAdd, reqBDAddDel, reqL2Bridge, reqFlags)
			wantTrips(t, e, 1+2)
			tag := vpp.OwnerTag(cidHex, "net1")
			v.f.with(func(s *fakeState) {
				i := s.byTag(tag)
				if i == nil || i.vhost == nil {
					t.Fatalf("no vhost-user interface tagged %s: %s", tag, s.leftovers())
				}
				if i.vhost.server != (mode == netconf.VhostServer) || i.vhost.path != a.Layout.ConnectPath() || !i.adminUp {
					t.Errorf("interface %+v %+v", *i, *i.vhost)
				}
				if b := s.bds[bd]; b == nil || b.tag != vpp.BridgeTag || !slices.Equal(b.members, []uint32{i.index}) {
					t.Errorf("bridge domain: %s", s.leftovers())
				}
			})
			if mode == netconf.VhostServer {
				if m := socketMode(t, a.Layout.SocketPath()); m != 0o666 {
					t.Errorf("socket mode %v, want 0666", m)
				}
			} else if _, err := os.Lstat(a.Layout.SocketPath()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("VPP as client created a socket file: %v", err)
			}
			if err := e.Check(context.Background(), a, data); err != nil {
				t.Errorf("Check: %v", err)
			}
			owned, err := e.ListOwned(context.Background())
			if err != nil || len(owned) != 1 || owned[0].SocketPath != a.Layout.ConnectPath() || owned[0].ContainerID != cidHex {
				t.Errorf("ListOwned %+v, %v", owned, err)
			}

			v.f.takeRequests()
			e2 := v.engine(netconf.IfTypeVhostUser)
			if err := e2.Detach(context.Background(), a, data); err != nil {
				t.Fatal(err)
			}
			wantRequests(t, v.f, reqIfDump, reqBDDump, reqVhostDel, reqBDAddDel)
			wantTrips(t, e2, 1+2)
			if l := v.leftovers(); l != "" {
				t.Errorf("left behind: %s", l)
			}
			// VPP removes a server's socket itself.
			if _, err := os.Lstat(a.Layout.SocketPath()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket file after Detach: %v", err)
			}
		})
	}
}

func TestVhostUserDeadConnection(t *testing.T) {
	v := newEnv(t)
	e := v.engine(netconf.IfTypeVhostUser)
	a := v.vhostAtt(cidHex, "net1", netconf.VhostClient)
	data := v.attach(e, a)
	v.f.restart()
	if err := e.Detach(context.Background(), a, data); err == nil || !strings.Contains(err.Error(), "reading VPP state") {
		t.Errorf("Detach over a dead connection: %v", err)
	}
}

func TestVhostUserGroup(t *testing.T) {
	v := newEnv(t)
	a := v.vhostAtt(cidHex, "net1", netconf.VhostServer)
	gid := os.Getgid()
	a.Host.Vhost.Group = strconv.Itoa(gid)
	v.attach(v.engine(netconf.IfTypeVhostUser), a)
	if m := socketMode(t, a.Layout.SocketPath()); m != 0o660 {
		t.Errorf("socket mode %v, want 0660", m)
	}
	fi, _ := os.Lstat(a.Layout.SocketPath())
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Gid) != gid {
		t.Errorf("socket group: %+v", fi.Sys())
	}
}

func TestVhostUserCheck(t *testing.T) {
	tag := vpp.OwnerTag(cidHex, "net1")
	for name, c := range map[string]struct {
		breakIt func(*fakeState)
		want    string
	}{
		"mode":   {func(s *fakeState) { s.byTag(tag).vhost.server = false }, "wrong mode (server=false)"},
		"socket": {func(s *fakeState) { s.byTag(tag).vhost.path = "/x" }, `uses socket "/x"`},
		"type": {func(s *fakeState) {
			i := s.byTag(tag)
			_ = i.vhost.ln.Close()
			i.vhost = nil
		}, "is not a vhost-user interface"},
	} {
		t.Run(name, func(t *testing.T) {
			v := newEnv(t)
			e := v.engine(netconf.IfTypeVhostUser)
			a := v.vhostAtt(cidHex, "net1", netconf.VhostServer)
			data := v.attach(e, a)
			v.f.with(c.breakIt)
			if err := e.Check(context.Background(), a, data); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Check error %v, want %q", err, c.want)
			}
		})
	}
}

func TestVhostUserRollback(t *testing.T) {
	const retval = int32(api.UNSPECIFIED)
	for _, c := range []rollbackCase{
		{"create", reqVhostAdd, 1, nil, "creating vhost-user interface"},
		{"bridge add", reqBDAddDel, 1, nil, "creating bridge domain 7"},
		{"l2 bridge", reqL2Bridge, 1, nil, "adding the interface to bridge domain 7"},
		{"flags up", reqFlags, 1, nil, "setting the interface up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newEnv(t)
			a := v.vhostAtt(cidHex, "net1", netconf.VhostServer)
			v.f.failNth(c.req, c.nth, retval)
			_, err := v.engine(netconf.IfTypeVhostUser).Attach(context.Background(), a)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "rollback") {
				t.Fatalf("Attach error %v, want %q", err, c.want)
			}
			if l := v.leftovers(); l != "" {
				t.Errorf("left behind: %s", l)
			}
		})
	}
	t.Run("both fail", func(t *testing.T) {
		v := newEnv(t)
		v.f.failNth(reqBDAddDel, 1, retval)
		v.f.failNth(reqVhostAdd, 1, retval)
		_, err := v.engine(netconf.IfTypeVhostUser).Attach(context.Background(), v.vhostAtt(cidHex, "net1", netconf.VhostServer))
		if err == nil || !strings.Contains(err.Error(), "creating vhost-user interface") {
			t.Fatalf("Attach error %v", err)
		}
		if l := v.leftovers(); l != "" {
			t.Errorf("left behind: %s", l)
		}
	})
}

func TestConcurrentAttach(t *testing.T) {
	v := newEnv(t)
	const conns, each = 4, 3
	var atts []*engine.Attachment
	for i := range conns * each {
		atts = append(atts, v.memifAtt(fmt.Sprintf("pod%d", i), "net1"))
	}
	records := make([]json.RawMessage, len(atts))
	errs := make([]error, len(atts))
	var wg sync.WaitGroup
	// Several CNI invocations at once, each with its own connection.
	for c := range conns {
		e := v.engine(netconf.IfTypeMemif)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < len(atts); i += conns {
				records[i], errs[i] = e.Attach(context.Background(), atts[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, r := range records {
		if strings.Contains(string(r), "createdBridge") {
			created++
		}
	}
	v.f.with(func(s *fakeState) {
		if created != 1 || len(s.bds[bd].members) != len(atts) {
			t.Errorf("created %d times, domain %s", created, s.leftovers())
		}
	})
	for i, a := range atts {
		if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, records[i]); err != nil {
			t.Fatal(err)
		}
	}
	if l := v.leftovers(); l != "" {
		t.Errorf("left behind: %s", l)
	}
}

func TestStatus(t *testing.T) {
	v := newEnv(t)
	if err := v.engine(netconf.IfTypeMemif).Status(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestMessagesCRC pins the CRCs observed identical in VPP 23.06 to 26.10:
// the bundled binapi must keep speaking them.
func TestMessagesCRC(t *testing.T) {
	common := map[string]string{
		"bridge_domain_add_del_v2": "600b7170", "sw_interface_set_l2_bridge": "d0678b13", "sw_interface_set_flags": "f5aec1b8",
		"sw_interface_dump": "aa610c27", "sw_interface_details": "6c221fc7", "sw_interface_add_del_address": "5463d73b",
	}
	perType := map[string]map[string]string{
		netconf.IfTypeMemif: {
			"memif_socket_filename_add_del_v2": "34223bdf", "memif_create_v2": "8c7de5f7", "memif_delete": "f9e6675e",
			"memif_dump": "51077d14", "memif_details": "da34feb9",
			"memif_socket_filename_details": "7ff326f7", "sw_interface_tag_add_del": "426f8bc1",
		},
		netconf.IfTypeVhostUser: {
			"create_vhost_user_if_v2": "dba1cc1d", "delete_vhost_user_if": "f9e6675e",
			"sw_interface_vhost_user_details": "0cee1e53",
		},
	}
	for ifType, want := range perType {
		got := map[string]string{}
		for _, m := range vpp.Messages(ifType) {
			got[m.GetMessageName()] = m.GetCrcString()
		}
		for name, crc := range common {
			want[name] = crc
		}
		for name, crc := range want {
			if got[name] != crc {
				t.Errorf("%s: %s CRC %q, want %s", ifType, name, got[name], crc)
			}
		}
	}
}

func TestConnectIncompatible(t *testing.T) {
	t.Run("memif engine", func(t *testing.T) {
		f := newFakeVPP(t)
		f.breakCRC("memif_create_v2", "sw_interface_dump")
		_, err := vpp.Connect(context.Background(), vpp.Config{Socket: "/x/api.sock", IfType: netconf.IfTypeMemif, Adapter: f.newConn()})
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Fatalf("error %v is not ErrUnavailable", err)
		}
		for _, m := range []string{"memif_create_v2_8c7de5f7", "sw_interface_dump_aa610c27", "/x/api.sock"} {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("error %q does not name %s", err, m)
			}
		}
		if c, d := f.counts(); c != 1 || d != 1 {
			t.Errorf("connects %d, disconnects %d: the connection must be closed", c, d)
		}
	})
	t.Run("memif only", func(t *testing.T) {
		f := newFakeVPP(t)
		f.breakCRC("memif_create_v2", "memif_dump")
		e, err := vpp.Connect(context.Background(), vpp.Config{IfType: netconf.IfTypeVhostUser, Adapter: f.newConn()})
		if err != nil {
			t.Fatalf("vhost-user engine refused over a memif incompatibility: %v", err)
		}
		e.Close()
		if _, err := vpp.Connect(context.Background(), vpp.Config{IfType: netconf.IfTypeMemif, Adapter: f.newConn()}); err == nil {
			t.Error("memif engine accepted")
		}
	})
	t.Run("vhost only", func(t *testing.T) {
		f := newFakeVPP(t)
		f.breakCRC("create_vhost_user_if_v2")
		e, err := vpp.Connect(context.Background(), vpp.Config{IfType: netconf.IfTypeMemif, Adapter: f.newConn()})
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		_, err = vpp.Connect(context.Background(), vpp.Config{IfType: netconf.IfTypeVhostUser, Adapter: f.newConn()})
		if !errors.Is(err, engine.ErrUnavailable) || !strings.Contains(err.Error(), "create_vhost_user_if_v2_dba1cc1d") {
			t.Errorf("error %v", err)
		}
	})
}

// connectFails checks Connect fails with ErrUnavailable within limit.
func connectFails(t *testing.T, ctx context.Context, cfg vpp.Config, limit time.Duration, want string) {
	t.Helper()
	start := time.Now()
	e, err := vpp.Connect(ctx, cfg)
	if err == nil {
		e.Close()
		t.Fatal("Connect succeeded")
	}
	if d := time.Since(start); d > limit {
		t.Errorf("Connect took %v", d)
	}
	if !errors.Is(err, engine.ErrUnavailable) || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want ErrUnavailable and %q", err, want)
	}
}

func TestConnectUnreachable(t *testing.T) {
	dir := t.TempDir()
	t.Run("no socket", func(t *testing.T) {
		sock := filepath.Join(dir, "api.sock")
		connectFails(t, context.Background(), vpp.Config{Socket: sock}, time.Second, sock)
	})
	t.Run("stale socket", func(t *testing.T) {
		sock := filepath.Join(dir, "stale.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
		connectFails(t, context.Background(), vpp.Config{Socket: sock}, time.Second, "connection refused")
	})
}

func TestConnectDeadline(t *testing.T) {
	t.Run("silent VPP", func(t *testing.T) {
		// Accepts and never answers sockclnt_create.
		sock := filepath.Join(t.TempDir(), "api.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		var conns []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		connectFails(t, ctx, vpp.Config{Socket: sock}, 2*time.Second, sock)
	})
	t.Run("blocked connect", func(t *testing.T) {
		f := newFakeVPP(t)
		release := f.blockConnect()
		defer release()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		connectFails(t, ctx, vpp.Config{Adapter: f.newConn()}, time.Second, "deadline exceeded")
		// A connection completing after the deadline is closed, not leaked.
		release()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if c, d := f.counts(); c == 1 && d == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("late connection not closed")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
