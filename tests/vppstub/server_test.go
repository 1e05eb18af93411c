package vppstub

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.fd.io/govpp"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"
	"go.fd.io/govpp/binapi/vpe"
	"go.fd.io/govpp/core"
)

const allIfaces = ^interface_types.InterfaceIndex(0)

// startStub starts a server in a short private directory (unix socket paths
// are limited to 107 bytes) and stops it when the test ends.
func startStub(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	opts.Socket = filepath.Join(dir, "api.sock")
	opts.Logf = t.Logf
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if _, err := os.Stat(opts.Socket); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("API socket left behind after Stop: %v", err)
		}
	})
	return s, dir
}

func connect(t *testing.T, s *Server) *core.Connection {
	t.Helper()
	conn, err := govpp.Connect(s.SocketPath())
	if err != nil {
		t.Fatalf("govpp.Connect: %v", err)
	}
	t.Cleanup(conn.Disconnect)
	return conn
}

func ctx(t *testing.T) context.Context { return ctxFor(t, 10*time.Second) }

// ctxFor bounds a test's API calls; data-path tests wait for packets and
// need longer than the API-only ones.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// wantRetval asserts that err is the VPP API error retval.
func wantRetval(t *testing.T, what string, err error, retval api.VPPApiError) {
	t.Helper()
	var e api.VPPApiError
	if !errors.As(err, &e) || e != retval {
		t.Fatalf("%s: got error %v, want VPPApiError %d (%v)", what, err, int32(retval), retval)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func drain[T any](t *testing.T, recv func() (T, error)) []T {
	t.Helper()
	var out []T
	for {
		v, err := recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		out = append(out, v)
	}
}

func isSocket(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&fs.ModeSocket != 0
}

// usedMessages are the messages a VPP engine would check.
func usedMessages() []api.Message {
	return []api.Message{
		&memif.MemifSocketFilenameAddDelV2{}, &memif.MemifSocketFilenameAddDelV2Reply{},
		&memif.MemifCreateV2{}, &memif.MemifCreateV2Reply{}, &memif.MemifDelete{}, &memif.MemifDeleteReply{},
		&memif.MemifDump{}, &memif.MemifDetails{}, &memif.MemifSocketFilenameDump{}, &memif.MemifSocketFilenameDetails{},
		&l2.BridgeDomainAddDelV2{}, &l2.BridgeDomainAddDelV2Reply{}, &l2.SwInterfaceSetL2Bridge{},
		&l2.BridgeDomainDump{}, &l2.BridgeDomainDetails{},
		&interfaces.SwInterfaceSetFlags{}, &interfaces.SwInterfaceDump{}, &interfaces.SwInterfaceDetails{},
		&interfaces.SwInterfaceAddDelAddress{}, &interfaces.SwInterfaceTagAddDel{},
		&vhost_user.CreateVhostUserIfV2{}, &vhost_user.DeleteVhostUserIf{},
		&vhost_user.SwInterfaceVhostUserDump{}, &vhost_user.SwInterfaceVhostUserDetails{},
	}
}

func TestCompatibility(t *testing.T) {
	s, _ := startStub(t, Options{Incompatible: []string{"memif_create_v2"}})
	conn := connect(t, s)
	ch := must[api.Channel](t, "channel")(conn.NewAPIChannel())
	defer ch.Close()

	var others []api.Message
	for _, m := range usedMessages() {
		if m.GetMessageName() != "memif_create_v2" {
			others = append(others, m)
		}
	}
	if err := ch.CheckCompatiblity(others...); err != nil {
		t.Fatalf("compatible messages reported incompatible: %v", err)
	}
	err := ch.CheckCompatiblity(usedMessages()...)
	var ce *api.CompatibilityError
	if !errors.As(err, &ce) {
		t.Fatalf("CheckCompatiblity: got %v, want *api.CompatibilityError", err)
	}
	if !slices.Equal(ce.IncompatibleMessages, []string{"memif_create_v2_8c7de5f7"}) {
		t.Errorf("incompatible messages %v, want [memif_create_v2_8c7de5f7]", ce.IncompatibleMessages)
	}
	// The message cannot be sent at all.
	if _, err := memif.NewServiceClient(conn).MemifCreateV2(ctx(t), &memif.MemifCreateV2{}); err == nil {
		t.Error("memif_create_v2 sent to a VPP that does not know its CRC")
	}
	ver := must[*vpe.ShowVersionReply](t, "show_version")(vpe.NewServiceClient(conn).ShowVersion(ctx(t), &vpe.ShowVersion{}))
	if ver.Version != "25.10-release" {
		t.Errorf("version %q", ver.Version)
	}

	// Without Options.Incompatible everything matches.
	s2, _ := startStub(t, Options{})
	ch2 := must[api.Channel](t, "channel")(connect(t, s2).NewAPIChannel())
	defer ch2.Close()
	if err := ch2.CheckCompatiblity(usedMessages()...); err != nil {
		t.Errorf("CheckCompatiblity: %v", err)
	}
	if _, err := Start(Options{Socket: s2.SocketPath() + "x", Incompatible: []string{"no_such_message"}}); err == nil {
		t.Error("Start accepted an unknown message name in Incompatible")
	}
}

func TestMemifSocketsAndMasters(t *testing.T) {
	s, dir := startStub(t, Options{})
	mc := memif.NewServiceClient(connect(t, s))
	c := ctx(t)

	add := func(id uint32, name string) (*memif.MemifSocketFilenameAddDelV2Reply, error) {
		return mc.MemifSocketFilenameAddDelV2(c, &memif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: id, SocketFilename: name})
	}
	r1 := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(add(^uint32(0), filepath.Join(dir, "m1.sock")))
	r2 := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(add(^uint32(0), filepath.Join(dir, "m2.sock")))
	// VPP 25.10 (its generator restarted from seed 0 on every call).
	if r1.SocketID != 1013904223 || r2.SocketID != 1196435762 {
		t.Errorf("allocated socket ids %d, %d; want 1013904223, 1196435762", r1.SocketID, r2.SocketID)
	}
	if _, err := add(7, filepath.Join(dir, "m7.sock")); err != nil {
		t.Fatal(err)
	}
	if _, err := add(7, filepath.Join(dir, "m7.sock")); err != nil {
		t.Errorf("re-adding the same socket filename: %v", err)
	}
	_, err := add(7, filepath.Join(dir, "other.sock"))
	wantRetval(t, "re-adding id 7 with another filename", err, api.ENTRY_ALREADY_EXISTS)
	_, err = add(0, filepath.Join(dir, "zero.sock"))
	wantRetval(t, "adding socket id 0", err, api.INVALID_ARGUMENT)

	m1 := filepath.Join(dir, "m1.sock")
	cr := must[*memif.MemifCreateV2Reply](t, "memif create")(mc.MemifCreateV2(c, &memif.MemifCreateV2{
		Role: memif.MEMIF_ROLE_API_MASTER, SocketID: r1.SocketID, RingSize: 2048, BufferSize: 4096}))
	if cr.SwIfIndex != 1 {
		t.Errorf("first sw_if_index %d, want 1", cr.SwIfIndex)
	}
	if !isSocket(m1) {
		t.Fatalf("master's socket %s not created at memif_create_v2 time", m1)
	}
	_, err = mc.MemifCreateV2(c, &memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_MASTER, SocketID: r1.SocketID})
	wantRetval(t, "duplicate memif id on a socket", err, api.SUBIF_ALREADY_EXISTS)
	_, err = mc.MemifCreateV2(c, &memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_SLAVE, SocketID: r1.SocketID, ID: 1})
	wantRetval(t, "slave on a master's socket", err, api.SUBIF_ALREADY_EXISTS)
	_, err = mc.MemifCreateV2(c, &memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_MASTER, SocketID: 12345})
	wantRetval(t, "unknown socket id", err, api.INVALID_ARGUMENT)
	_, err = mc.MemifCreateV2(c, &memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_MASTER, SocketID: r2.SocketID, RingSize: 1000})
	wantRetval(t, "ring size not a power of 2", err, api.INVALID_ARGUMENT)

	details := drain(t, must[memif.RPCService_MemifDumpClient](t, "memif dump")(mc.MemifDump(c, &memif.MemifDump{})).Recv)
	if len(details) != 1 {
		t.Fatalf("memif_dump returned %d interfaces, want 1", len(details))
	}
	d := details[0]
	if d.IfName != "memif1013904223/0" || d.Role != memif.MEMIF_ROLE_API_MASTER || d.SocketID != r1.SocketID ||
		d.RingSize != 1 || d.BufferSize != 0 || d.HwAddr[0] != 0x02 {
		t.Errorf("memif_details %+v: want memif1013904223/0, master, ring 1, buffer 0 (like VPP), a 02:fe MAC", d)
	}
	if m := s.Memifs(); len(m) != 1 || m[0].RingSize != 2048 || m[0].BufferSize != 4096 || m[0].Connected {
		t.Errorf("snapshot %+v: want the configured ring 2048, buffer 4096, not connected", m)
	}

	_, err = mc.MemifSocketFilenameAddDelV2(c, &memif.MemifSocketFilenameAddDelV2{SocketID: r1.SocketID})
	wantRetval(t, "deleting a socket filename in use", err, api.UNEXPECTED_INTF_STATE)

	// A master whose socket directory is missing fails at bind, leaving nothing.
	missing := filepath.Join(dir, "nodir", "x.sock")
	r3 := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(add(^uint32(0), missing))
	before := s.Interfaces()
	_, err = mc.MemifCreateV2(c, &memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_MASTER, SocketID: r3.SocketID})
	wantRetval(t, "master in a missing directory", err, api.SYSCALL_ERROR_4)
	if after := s.Interfaces(); len(after) != len(before) {
		t.Errorf("failed create left interfaces: %+v", after)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed create created %s", filepath.Dir(missing))
	}

	if _, err := mc.MemifDelete(c, &memif.MemifDelete{SwIfIndex: cr.SwIfIndex}); err != nil {
		t.Fatal(err)
	}
	if !isSocket(m1) {
		t.Error("memif_delete removed the socket file; VPP leaves it")
	}
	_, err = mc.MemifDelete(c, &memif.MemifDelete{SwIfIndex: cr.SwIfIndex})
	wantRetval(t, "deleting a memif twice", err, api.INVALID_SW_IF_INDEX)
	if _, err := mc.MemifSocketFilenameAddDelV2(c, &memif.MemifSocketFilenameAddDelV2{SocketID: r1.SocketID}); err != nil {
		t.Errorf("deleting an unused socket filename: %v", err)
	}
	_, err = mc.MemifSocketFilenameAddDelV2(c, &memif.MemifSocketFilenameAddDelV2{SocketID: r1.SocketID})
	wantRetval(t, "deleting an unknown socket filename", err, api.INVALID_ARGUMENT)

	// The freed sw_if_index is reused, as VPP's pools do.
	cr2 := must[*memif.MemifCreateV2Reply](t, "memif create")(mc.MemifCreateV2(c, &memif.MemifCreateV2{
		Role: memif.MEMIF_ROLE_API_SLAVE, SocketID: r2.SocketID, ID: 3, Mode: memif.MEMIF_MODE_API_IP}))
	if cr2.SwIfIndex != 1 {
		t.Errorf("sw_if_index %d after delete, want the freed 1", cr2.SwIfIndex)
	}
	if isSocket(filepath.Join(dir, "m2.sock")) {
		t.Error("a slave created a socket file")
	}
	// Relative names land in the runtime dir; socket 0 is the default.
	r4 := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(add(^uint32(0), "sub/rel.sock"))
	files := drain(t, must[memif.RPCService_MemifSocketFilenameDumpClient](t, "socket dump")(
		mc.MemifSocketFilenameDump(c, &memif.MemifSocketFilenameDump{})).Recv)
	got := map[uint32]string{}
	for _, f := range files {
		got[f.SocketID] = f.SocketFilename
	}
	if got[0] != filepath.Join(dir, "memif.sock") || got[r4.SocketID] != filepath.Join(dir, "sub", "rel.sock") ||
		got[r2.SocketID] == "" || len(got) != 5 {
		t.Errorf("socket filenames %v", got)
	}
	_, err = mc.MemifSocketFilenameAddDelV2(c, &memif.MemifSocketFilenameAddDelV2{SocketID: 0})
	wantRetval(t, "deleting socket id 0", err, api.INVALID_ARGUMENT)
}

func createMaster(t *testing.T, mc memif.RPCService, path string, id uint32) (uint32, uint32) {
	t.Helper()
	r := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(mc.MemifSocketFilenameAddDelV2(ctx(t),
		&memif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: ^uint32(0), SocketFilename: path}))
	cr := must[*memif.MemifCreateV2Reply](t, "memif create")(mc.MemifCreateV2(ctx(t),
		&memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_MASTER, SocketID: r.SocketID, ID: id}))
	return r.SocketID, uint32(cr.SwIfIndex)
}

func TestBridgeDomains(t *testing.T) {
	s, dir := startStub(t, Options{Seed: 42})
	conn := connect(t, s)
	lc, mc := l2.NewServiceClient(conn), memif.NewServiceClient(conn)
	c := ctx(t)

	addBD := func(id uint32) (*l2.BridgeDomainAddDelV2Reply, error) {
		return lc.BridgeDomainAddDelV2(c, &l2.BridgeDomainAddDelV2{BdID: id, IsAdd: true, Flood: true,
			UuFlood: true, Forward: true, Learn: true, MacAge: 5, BdTag: "pod-net"})
	}
	delBD := func(id uint32) error {
		_, err := lc.BridgeDomainAddDelV2(c, &l2.BridgeDomainAddDelV2{BdID: id})
		return err
	}
	if r, err := addBD(10); err != nil || r.BdID != 10 {
		t.Fatalf("bd 10: %v %+v", err, r)
	}
	_, err := addBD(10)
	wantRetval(t, "re-adding bd 10", err, api.BD_ALREADY_EXISTS)
	_, err = addBD(0)
	wantRetval(t, "adding bd 0", err, api.BD_ALREADY_EXISTS)
	wantRetval(t, "deleting bd 0", delBD(0), api.BD_NOT_MODIFIABLE)
	_, err = addBD(1 << 24)
	wantRetval(t, "bd id above 2^24-1", err, api.BD_ID_EXCEED_MAX)
	alloc := must[*l2.BridgeDomainAddDelV2Reply](t, "bd ~0")(addBD(^uint32(0)))
	if alloc.BdID == 0 || alloc.BdID > l2BDIDMax || alloc.BdID == 10 {
		t.Errorf("allocated bd id %d", alloc.BdID)
	}

	_, sw := createMaster(t, mc, filepath.Join(dir, "a.sock"), 0)
	if _, err := lc.SwInterfaceSetL2Bridge(c, &l2.SwInterfaceSetL2Bridge{RxSwIfIndex: interface_types.InterfaceIndex(sw),
		BdID: 10, Enable: true}); err != nil {
		t.Fatal(err)
	}
	wantRetval(t, "deleting a bd with members", delBD(10), api.BD_IN_USE)
	_, err = lc.SwInterfaceSetL2Bridge(c, &l2.SwInterfaceSetL2Bridge{RxSwIfIndex: 99, BdID: 10, Enable: true})
	wantRetval(t, "unknown interface into a bd", err, api.INVALID_SW_IF_INDEX)
	_, err = lc.SwInterfaceSetL2Bridge(c, &l2.SwInterfaceSetL2Bridge{RxSwIfIndex: 0, BdID: 10, Enable: true})
	wantRetval(t, "local0 into a bd", err, api.NON_ETHERNET)

	dump := func(bd uint32, sw interface_types.InterfaceIndex) []*l2.BridgeDomainDetails {
		return drain(t, must[l2.RPCService_BridgeDomainDumpClient](t, "bd dump")(
			lc.BridgeDomainDump(c, &l2.BridgeDomainDump{BdID: bd, SwIfIndex: sw})).Recv)
	}
	all := dump(^uint32(0), allIfaces)
	if len(all) != 2 {
		t.Fatalf("bridge_domain_dump: %d domains, want 2", len(all))
	}
	b := all[slices.IndexFunc(all, func(d *l2.BridgeDomainDetails) bool { return d.BdID == 10 })]
	if !b.Flood || !b.Learn || b.MacAge != 5 || b.BdTag != "pod-net" || b.NSwIfs != 1 ||
		len(b.SwIfDetails) != 1 || uint32(b.SwIfDetails[0].SwIfIndex) != sw {
		t.Errorf("bd 10 details %+v", b)
	}
	if d := dump(^uint32(0), interface_types.InterfaceIndex(sw)); len(d) != 1 || d[0].BdID != 10 {
		t.Errorf("dump by member: %+v", d)
	}
	// The binapi default (~0) is not applied: sw_if_index 0 means local0.
	if d := dump(^uint32(0), 0); len(d) != 0 {
		t.Errorf("dump with sw_if_index 0 returned %d domains, want none (local0 is in none)", len(d))
	}
	if d := dump(0, allIfaces); len(d) != 0 {
		t.Errorf("dump of bd 0 returned %+v", d)
	}

	// Enabling on a missing bd creates it (VPP's bd_find_or_add_bd_index).
	if _, err := lc.SwInterfaceSetL2Bridge(c, &l2.SwInterfaceSetL2Bridge{RxSwIfIndex: interface_types.InterfaceIndex(sw),
		BdID: 20, Enable: true}); err != nil {
		t.Fatal(err)
	}
	if err := delBD(10); err != nil {
		t.Errorf("bd 10 after its member moved to bd 20: %v", err)
	}
	wantRetval(t, "deleting an unknown bd", delBD(10), api.NO_SUCH_ENTRY)
	if bds := s.BridgeDomains(); len(bds) != 2 || bds[0].ID != 20 || !bds[0].UuFlood || !slices.Equal(bds[0].Members, []uint32{sw}) {
		t.Errorf("bridge domains %+v", bds)
	}
	// Deleting the memif takes it out of its bd.
	if _, err := mc.MemifDelete(c, &memif.MemifDelete{SwIfIndex: interface_types.InterfaceIndex(sw)}); err != nil {
		t.Fatal(err)
	}
	if err := delBD(20); err != nil {
		t.Errorf("bd 20 after its only member was deleted: %v", err)
	}
}

func TestInterfacesTagsAddresses(t *testing.T) {
	s, dir := startStub(t, Options{})
	conn := connect(t, s)
	ic, mc := interfaces.NewServiceClient(conn), memif.NewServiceClient(conn)
	c := ctx(t)
	_, sw := createMaster(t, mc, filepath.Join(dir, "a.sock"), 3)
	idx := interface_types.InterfaceIndex(sw)

	if _, err := ic.SwInterfaceTagAddDel(c, &interfaces.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: idx, Tag: "usp-0123456789ab-net1"}); err != nil {
		t.Fatal(err)
	}
	_, err := ic.SwInterfaceTagAddDel(c, &interfaces.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: 42, Tag: "x"})
	wantRetval(t, "tag on an unknown interface", err, api.INVALID_SW_IF_INDEX)
	if _, err := ic.SwInterfaceSetFlags(c, &interfaces.SwInterfaceSetFlags{SwIfIndex: idx,
		Flags: interface_types.IF_STATUS_API_FLAG_ADMIN_UP}); err != nil {
		t.Fatal(err)
	}
	_, err = ic.SwInterfaceSetFlags(c, &interfaces.SwInterfaceSetFlags{SwIfIndex: 42})
	wantRetval(t, "flags of an unknown interface", err, api.INVALID_SW_IF_INDEX)

	dump := func(m *interfaces.SwInterfaceDump) []*interfaces.SwInterfaceDetails {
		return drain(t, must[interfaces.RPCService_SwInterfaceDumpClient](t, "dump")(ic.SwInterfaceDump(c, m)).Recv)
	}
	all := dump(&interfaces.SwInterfaceDump{SwIfIndex: allIfaces})
	if len(all) != 2 || all[0].InterfaceName != "local0" || all[0].Flags != 0 {
		t.Fatalf("sw_interface_dump: %+v", all)
	}
	m := all[1]
	if m.InterfaceName != "memif1013904223/3" || m.Tag != "usp-0123456789ab-net1" ||
		m.Flags != interface_types.IF_STATUS_API_FLAG_ADMIN_UP || m.InterfaceDevType != "memif" || m.L2Address[1] != 0xfe {
		t.Errorf("memif details %+v", m)
	}
	if d := dump(&interfaces.SwInterfaceDump{}); len(d) != 1 || d[0].SwIfIndex != 0 {
		t.Errorf("dump without sw_if_index ~0 must return local0 only, got %d", len(d))
	}
	if d := dump(&interfaces.SwInterfaceDump{SwIfIndex: allIfaces, NameFilterValid: true, NameFilter: "MEMIF"}); len(d) != 1 || uint32(d[0].SwIfIndex) != sw {
		t.Errorf("name filter: %+v", d)
	}
	if _, err := ic.SwInterfaceTagAddDel(c, &interfaces.SwInterfaceTagAddDel{SwIfIndex: idx}); err != nil {
		t.Fatal(err)
	}
	if i := s.Interfaces()[1]; i.Tag != "" || !i.AdminUp || i.LinkUp {
		t.Errorf("after tag delete: %+v", i)
	}

	addr := func(isAdd bool, p string) error {
		pr, err := ip_types.ParseAddressWithPrefix(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ic.SwInterfaceAddDelAddress(c, &interfaces.SwInterfaceAddDelAddress{SwIfIndex: idx, IsAdd: isAdd, Prefix: pr})
		return err
	}
	if err := addr(true, "10.1.0.1/24"); err != nil {
		t.Fatal(err)
	}
	wantRetval(t, "adding an address twice", addr(true, "10.1.0.1/24"), api.ADDRESS_IN_USE)
	if err := addr(true, "10.1.0.2/24"); err != nil {
		t.Errorf("second address in the same subnet: %v", err)
	}
	if err := addr(true, "fd00::1/64"); err != nil {
		t.Fatal(err)
	}
	wantRetval(t, "deleting an absent address", addr(false, "10.1.0.9/24"), api.ADDRESS_NOT_FOUND_FOR_INTERFACE)
	ipc := ip.NewServiceClient(conn)
	v4 := drain(t, must[ip.RPCService_IPAddressDumpClient](t, "ip dump")(ipc.IPAddressDump(c, &ip.IPAddressDump{SwIfIndex: idx})).Recv)
	if len(v4) != 2 || v4[0].Prefix.String() != "10.1.0.1/24" {
		t.Errorf("ip_address_dump v4: %+v", v4)
	}
	if _, err := ic.SwInterfaceAddDelAddress(c, &interfaces.SwInterfaceAddDelAddress{SwIfIndex: idx, DelAll: true}); err != nil {
		t.Fatal(err)
	}
	if a := s.Interfaces()[1].Addresses; len(a) != 0 {
		t.Errorf("addresses after del_all: %v", a)
	}
	mac, _ := ethernet_types.ParseMacAddress("02:00:00:00:00:07")
	if _, err := ic.SwInterfaceSetMacAddress(c, &interfaces.SwInterfaceSetMacAddress{SwIfIndex: idx, MacAddress: mac}); err != nil {
		t.Fatal(err)
	}
	if got := s.Interfaces()[1].MAC.String(); got != "02:00:00:00:00:07" {
		t.Errorf("MAC %s", got)
	}
	// Anything not implemented answers UNIMPLEMENTED instead of hanging.
	_, err = ic.SwInterfaceSetMtu(c, &interfaces.SwInterfaceSetMtu{SwIfIndex: idx, Mtu: []uint32{1500, 0, 0, 0}})
	wantRetval(t, "unimplemented request", err, api.UNIMPLEMENTED)
	if d := drain(t, must[interfaces.RPCService_SwInterfaceRxPlacementDumpClient](t, "dump")(
		ic.SwInterfaceRxPlacementDump(c, &interfaces.SwInterfaceRxPlacementDump{SwIfIndex: allIfaces})).Recv); len(d) != 0 {
		t.Errorf("unimplemented dump returned %d details", len(d))
	}
}

func TestVhostUser(t *testing.T) {
	s, dir := startStub(t, Options{})
	conn := connect(t, s)
	vc := vhost_user.NewServiceClient(conn)
	c := ctx(t)
	srv := filepath.Join(dir, "vhu-srv.sock")
	r := must[*vhost_user.CreateVhostUserIfV2Reply](t, "vhost create")(vc.CreateVhostUserIfV2(c,
		&vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: srv, Tag: "pod1"}))
	if !isSocket(srv) {
		t.Fatal("server-mode vhost-user did not create its socket")
	}
	cli := filepath.Join(dir, "vhu-cli.sock")
	mustMAC, _ := ethernet_types.ParseMacAddress("02:11:22:33:44:55")
	r2 := must[*vhost_user.CreateVhostUserIfV2Reply](t, "vhost create")(vc.CreateVhostUserIfV2(c,
		&vhost_user.CreateVhostUserIfV2{SockFilename: cli, UseCustomMac: true, MacAddress: mustMAC}))
	if _, err := os.Stat(cli); !errors.Is(err, fs.ErrNotExist) {
		t.Error("client-mode vhost-user created a file")
	}
	_, err := vc.CreateVhostUserIfV2(c, &vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: srv})
	wantRetval(t, "second vhost-user on one socket", err, api.IF_ALREADY_EXISTS)
	d := drain(t, must[vhost_user.RPCService_SwInterfaceVhostUserDumpClient](t, "dump")(
		vc.SwInterfaceVhostUserDump(c, &vhost_user.SwInterfaceVhostUserDump{SwIfIndex: allIfaces})).Recv)
	if len(d) != 2 || d[0].InterfaceName != "VirtualEthernet0/0/0" || !d[0].IsServer || d[0].SockFilename != srv ||
		d[1].InterfaceName != "VirtualEthernet0/0/1" || d[1].IsServer {
		t.Errorf("vhost-user details %+v", d)
	}
	ifs := s.Interfaces()
	if ifs[1].Tag != "pod1" || ifs[2].MAC.String() != "02:11:22:33:44:55" {
		t.Errorf("interfaces %+v", ifs)
	}
	if _, err := vc.DeleteVhostUserIf(c, &vhost_user.DeleteVhostUserIf{SwIfIndex: r.SwIfIndex}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv); !errors.Is(err, fs.ErrNotExist) {
		t.Error("delete_vhost_user_if left the server socket")
	}
	_, err = vc.DeleteVhostUserIf(c, &vhost_user.DeleteVhostUserIf{SwIfIndex: r.SwIfIndex})
	wantRetval(t, "deleting a vhost-user twice", err, api.INVALID_SW_IF_INDEX)
	if v := s.VhostUsers(); len(v) != 1 || v[0].SwIfIndex != uint32(r2.SwIfIndex) {
		t.Errorf("vhost-user left: %+v", v)
	}
}

// A client sends several requests before reading any reply (govpp does,
// e.g. a dump and its control ping); replies come back in order.
func TestPipelinedRequests(t *testing.T) {
	s, _ := startStub(t, Options{})
	ch := must[api.Channel](t, "channel")(connect(t, s).NewAPIChannel())
	defer ch.Close()
	ids := []uint32{101, 102, 101}
	var reqs []api.RequestCtx
	for _, id := range ids {
		reqs = append(reqs, ch.SendRequest(&l2.BridgeDomainAddDelV2{BdID: id, IsAdd: true}))
	}
	for i, r := range reqs {
		var rep l2.BridgeDomainAddDelV2Reply
		err := r.ReceiveReply(&rep)
		if i < 2 && (err != nil || rep.BdID != ids[i]) {
			t.Errorf("request %d: %v %+v", i, err, rep)
		}
		if i == 2 {
			wantRetval(t, "third request", err, api.BD_ALREADY_EXISTS)
		}
	}
	multi := ch.SendMultiRequest(&l2.BridgeDomainDump{BdID: ^uint32(0), SwIfIndex: allIfaces})
	n := 0
	for {
		var d l2.BridgeDomainDetails
		last, err := multi.ReceiveReply(&d)
		if err != nil {
			t.Fatal(err)
		}
		if last {
			break
		}
		n++
	}
	if n != 2 {
		t.Errorf("dump after pipelined adds: %d domains", n)
	}
	calls := s.Calls()
	if calls["bridge_domain_add_del_v2"] != 3 || calls["bridge_domain_dump"] != 1 || calls["control_ping"] < 1 {
		t.Errorf("calls %v", calls)
	}
	s.ResetCalls()
	if len(s.Calls()) != 0 {
		t.Error("ResetCalls")
	}
}

func TestRestart(t *testing.T) {
	s, dir := startStub(t, Options{})
	conn, events, err := govpp.AsyncConnect(s.SocketPath(), core.DefaultMaxReconnectAttempts, core.DefaultReconnectInterval)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Disconnect()
	waitState := func(want core.ConnectionState) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case e := <-events:
				if e.State == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %v event", want)
			}
		}
	}
	waitState(core.Connected)
	mc := memif.NewServiceClient(conn)
	path := filepath.Join(dir, "m.sock")
	createMaster(t, mc, path, 0)
	if _, err := l2.NewServiceClient(conn).BridgeDomainAddDelV2(ctx(t), &l2.BridgeDomainAddDelV2{BdID: 5, IsAdd: true}); err != nil {
		t.Fatal(err)
	}

	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if ifs := s.Interfaces(); len(ifs) != 1 || ifs[0].Name != "local0" {
		t.Errorf("interfaces after restart: %+v", ifs)
	}
	if f := s.SocketFiles(); len(f) != 1 || f[0].ID != 0 {
		t.Errorf("socket filenames after restart: %+v", f)
	}
	if len(s.BridgeDomains()) != 0 {
		t.Error("bridge domains survived a restart")
	}
	if !isSocket(path) {
		t.Error("the master's socket file vanished with the restart; VPP leaves it")
	}
	waitState(core.Disconnected)
	waitState(core.Connected)
	// Re-creating on the stale path works.
	_, sw := createMaster(t, mc, path, 0)
	if sw != 1 {
		t.Errorf("sw_if_index after restart %d, want 1", sw)
	}
	if len(s.Memifs()) != 1 {
		t.Error("memif not created after reconnect")
	}
}

// Several clients at once, each pipelining through its own connection.
func TestConcurrentClients(t *testing.T) {
	s, _ := startStub(t, Options{})
	const clients, each = 4, 25
	errs := make(chan error, clients)
	for i := range clients {
		conn := connect(t, s)
		go func() {
			lc := l2.NewServiceClient(conn)
			for j := range each {
				if _, err := lc.BridgeDomainAddDelV2(context.Background(),
					&l2.BridgeDomainAddDelV2{BdID: uint32(1000*(i+1) + j), IsAdd: true}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.BridgeDomains()); n != clients*each {
		t.Errorf("%d bridge domains, want %d", n, clients*each)
	}
}

// The older message versions share the handlers.
func TestV1Messages(t *testing.T) {
	s, dir := startStub(t, Options{})
	conn := connect(t, s)
	mc, lc := memif.NewServiceClient(conn), l2.NewServiceClient(conn)
	c := ctx(t)
	if _, err := mc.MemifSocketFilenameAddDel(c, &memif.MemifSocketFilenameAddDel{IsAdd: true, SocketID: 3,
		SocketFilename: filepath.Join(dir, "v1.sock")}); err != nil {
		t.Fatal(err)
	}
	_, err := mc.MemifSocketFilenameAddDel(c, &memif.MemifSocketFilenameAddDel{IsAdd: true, SocketID: ^uint32(0),
		SocketFilename: filepath.Join(dir, "v1b.sock")})
	wantRetval(t, "v1 cannot allocate a socket id", err, api.INVALID_ARGUMENT)
	r := must[*memif.MemifCreateReply](t, "memif_create")(mc.MemifCreate(c, &memif.MemifCreate{SocketID: 3, ID: 4}))
	if !isSocket(filepath.Join(dir, "v1.sock")) || r.SwIfIndex != 1 {
		t.Errorf("memif_create: %+v", r)
	}
	if _, err := lc.BridgeDomainAddDel(c, &l2.BridgeDomainAddDel{BdID: 30, IsAdd: true}); err != nil {
		t.Fatal(err)
	}
	_, err = lc.BridgeDomainAddDel(c, &l2.BridgeDomainAddDel{BdID: ^uint32(0), IsAdd: true})
	wantRetval(t, "v1 bd ~0", err, api.BD_ID_EXCEED_MAX)
	if _, err := lc.BridgeDomainAddDel(c, &l2.BridgeDomainAddDel{BdID: 30}); err != nil {
		t.Fatal(err)
	}
	vc := vhost_user.NewServiceClient(conn)
	if _, err := vc.CreateVhostUserIf(c, &vhost_user.CreateVhostUserIf{IsServer: true,
		SockFilename: filepath.Join(dir, "vhu.sock"), Renumber: true, CustomDevInstance: 7}); err != nil {
		t.Fatal(err)
	}
	if v := s.VhostUsers(); len(v) != 1 || v[0].Name != "VirtualEthernet0/0/7" {
		t.Errorf("renumbered vhost-user: %+v", v)
	}
}
