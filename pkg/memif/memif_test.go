package memif_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	"go.fd.io/govpp/binapi/interface_types"
	vppmemif "go.fd.io/govpp/binapi/memif"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/memif"
	"github.com/userspace-cni/userspace/pkg/netconf"
)

// fakeChannel is an api.Channel whose dumps answer from its state, for the
// readers of memif and socket-registration dumps.
type fakeChannel struct {
	sent    []api.Message
	sockets map[uint32]string
	memifs  map[uint32]*vppmemif.MemifDetails
	// dumpErr makes dumps fail with it.
	dumpErr error
}

func newFakeChannel() *fakeChannel {
	return &fakeChannel{sockets: map[uint32]string{0: "/run/vpp/memif.sock"}, memifs: map[uint32]*vppmemif.MemifDetails{}}
}

type multiReply struct {
	msgs []api.Message
	err  error
}

func (m *multiReply) ReceiveReply(msg api.Message) (bool, error) {
	if m.err != nil {
		return false, m.err
	}
	if len(m.msgs) == 0 {
		return true, nil
	}
	reflect.ValueOf(msg).Elem().Set(reflect.ValueOf(m.msgs[0]).Elem())
	m.msgs = m.msgs[1:]
	return false, nil
}

type noReply struct{}

func (noReply) ReceiveReply(api.Message) error { return errors.New("not supported") }

func (c *fakeChannel) SendRequest(msg api.Message) api.RequestCtx {
	c.sent = append(c.sent, msg)
	return noReply{}
}

func (c *fakeChannel) SendMultiRequest(msg api.Message) api.MultiRequestCtx {
	c.sent = append(c.sent, msg)
	out := &multiReply{err: c.dumpErr}
	switch msg.(type) {
	case *vppmemif.MemifDump:
		for _, idx := range slices.Sorted(mapKeys(c.memifs)) {
			d := *c.memifs[idx]
			out.msgs = append(out.msgs, &d)
		}
	case *vppmemif.MemifSocketFilenameDump:
		for _, id := range slices.Sorted(mapKeys(c.sockets)) {
			out.msgs = append(out.msgs, &vppmemif.MemifSocketFilenameDetails{SocketID: id, SocketFilename: c.sockets[id]})
		}
	}
	return out
}

func mapKeys[V any](m map[uint32]V) func(func(uint32) bool) {
	return func(yield func(uint32) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (c *fakeChannel) SubscribeNotification(chan api.Message, api.Message) (api.SubscriptionCtx, error) {
	return nil, errors.New("not supported")
}
func (c *fakeChannel) SetReplyTimeout(time.Duration)          {}
func (c *fakeChannel) CheckCompatiblity(...api.Message) error { return nil }
func (c *fakeChannel) Close()                                 {}

func (c *fakeChannel) names() []string {
	var out []string
	for _, m := range c.sent {
		out = append(out, m.GetMessageName())
	}
	return out
}

func TestSocketName(t *testing.T) {
	for cid, want := range map[string]string{
		"0123456789abcdef0123": "memif-0123456789ab-net1.sock",
		"abc":                  "memif-abc-net1.sock",
		"":                     "memif--net1.sock",
	} {
		if got := configdata.DefaultSocketName(netconf.IfTypeMemif, cid, "net1"); got != want {
			t.Errorf("SocketName(%q) = %q, want %q", cid, got, want)
		}
	}
}

func TestRoleAndMode(t *testing.T) {
	roles := map[string]vppmemif.MemifRole{
		netconf.MemifMaster: vppmemif.MEMIF_ROLE_API_MASTER,
		netconf.MemifSlave:  vppmemif.MEMIF_ROLE_API_SLAVE,
	}
	for name, want := range roles {
		got, err := memif.Role(name)
		if err != nil || got != want || memif.RoleName(got) != name {
			t.Errorf("role %q: %v, %v, back %q", name, got, err, memif.RoleName(got))
		}
	}
	if r, err := memif.Role(""); err != nil || r != vppmemif.MEMIF_ROLE_API_MASTER {
		t.Errorf(`Role("") = %v, %v`, r, err)
	}
	if _, err := memif.Role("server"); err == nil || !strings.Contains(err.Error(), `"server"`) {
		t.Errorf("Role(server) error %v", err)
	}

	modes := map[string]vppmemif.MemifMode{
		netconf.MemifEthernet:   vppmemif.MEMIF_MODE_API_ETHERNET,
		netconf.MemifIP:         vppmemif.MEMIF_MODE_API_IP,
		netconf.MemifInjectPunt: vppmemif.MEMIF_MODE_API_PUNT_INJECT,
	}
	for name, want := range modes {
		got, err := memif.Mode(name)
		if err != nil || got != want || memif.ModeName(got) != name {
			t.Errorf("mode %q: %v, %v, back %q", name, got, err, memif.ModeName(got))
		}
	}
	if m, err := memif.Mode(""); err != nil || m != vppmemif.MEMIF_MODE_API_ETHERNET {
		t.Errorf(`Mode("") = %v, %v`, m, err)
	}
	if _, err := memif.Mode("l3"); err == nil || !strings.Contains(err.Error(), `"l3"`) {
		t.Errorf("Mode(l3) error %v", err)
	}
}

func TestSpecFrom(t *testing.T) {
	got := memif.SpecFrom(netconf.MemifConf{Role: "slave", Mode: "ip", Socketfile: "ignored", RingSize: 1024,
		BufferSize: 2048, Queues: 4, Secret: "s", MAC: "02:00:00:00:00:01"}, "/run/x.sock")
	want := memif.Spec{Role: "slave", Mode: "ip", SocketPath: "/run/x.sock", RingSize: 1024, BufferSize: 2048,
		Queues: 4, Secret: "s", MAC: "02:00:00:00:00:01"}
	if got != want {
		t.Errorf("SpecFrom = %+v", got)
	}
}

func TestRequests(t *testing.T) {
	// binapi default= values are not applied: every field must be explicit.
	if r := memif.RegisterSocketRequest("/p.sock"); !r.IsAdd || r.SocketID != ^uint32(0) || r.SocketFilename != "/p.sock" {
		t.Errorf("register %+v", r)
	}
	if r := memif.UnregisterSocketRequest(7); r.IsAdd || r.SocketID != 7 {
		t.Errorf("unregister %+v", r)
	}
	if r := memif.DeleteRequest(3); r.SwIfIndex != 3 {
		t.Errorf("delete %+v", r)
	}
}

func TestCreateRequest(t *testing.T) {
	s := memif.Spec{Role: "slave", Mode: "inject-punt", ID: 2, RingSize: 4096, BufferSize: 9000, Queues: 3,
		Secret: strings.Repeat("s", netconf.MaxMemifSecret), MAC: "02:AB:cd:00:00:01"}
	got, err := memif.CreateRequest(s, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := &vppmemif.MemifCreateV2{
		Role: vppmemif.MEMIF_ROLE_API_SLAVE, Mode: vppmemif.MEMIF_MODE_API_PUNT_INJECT, ID: 2, SocketID: 42,
		RingSize: 4096, BufferSize: 9000, RxQueues: 3, TxQueues: 3, Secret: s.Secret,
		HwAddr: ethernet_types.MacAddress{0x02, 0xab, 0xcd, 0, 0, 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CreateRequest:\n got %+v\nwant %+v", got, want)
	}
	if got, _ := memif.CreateRequest(memif.Spec{}, 1); got.HwAddr != (ethernet_types.MacAddress{}) || got.Role != vppmemif.MEMIF_ROLE_API_MASTER {
		t.Errorf("defaults %+v", got)
	}

	for name, c := range map[string]struct {
		spec memif.Spec
		want string
	}{
		"secret": {memif.Spec{Secret: strings.Repeat("s", netconf.MaxMemifSecret+1)}, "25 bytes, at most 24"},
		"mac":    {memif.Spec{MAC: "zz:00:00:00:00:00"}, "not a 48-bit MAC"},
		"eui64":  {memif.Spec{MAC: "02:00:00:00:00:00:00:01"}, "not a 48-bit MAC"},
		"role":   {memif.Spec{Role: "boss"}, "unknown memif role"},
		"mode":   {memif.Spec{Mode: "l3"}, "unknown memif mode"},
	} {
		if _, err := memif.CreateRequest(c.spec, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

func TestIsSocketGone(t *testing.T) {
	if !memif.IsSocketGone(fmt.Errorf("x: %w", api.VPPApiError(-73))) || !memif.IsSocketGone(api.VPPApiError(-2)) ||
		memif.IsSocketGone(api.VPPApiError(-74)) || memif.IsSocketGone(nil) {
		t.Error("IsSocketGone")
	}
}

// TestMessagesCRC pins the CRCs observed identical in VPP 23.06 to 26.10.
func TestMessagesCRC(t *testing.T) {
	want := map[string]string{
		"memif_socket_filename_add_del_v2": "34223bdf", "memif_create_v2": "8c7de5f7", "memif_delete": "f9e6675e",
		"memif_dump": "51077d14", "memif_details": "da34feb9",
		"memif_socket_filename_details": "7ff326f7",
	}
	seen := map[string]bool{}
	for _, m := range memif.Messages() {
		if crc, ok := want[m.GetMessageName()]; ok && crc != m.GetCrcString() {
			t.Errorf("%s CRC %s, want %s", m.GetMessageName(), m.GetCrcString(), crc)
		}
		seen[m.GetMessageName()] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("Messages lacks %s", name)
		}
	}
}

func TestReadDumps(t *testing.T) {
	c := newFakeChannel()
	c.sockets[11], c.sockets[12] = "/run/a.sock", "/run/b.sock"
	c.memifs[1] = &vppmemif.MemifDetails{SwIfIndex: 1, IfName: "memif11/0", SocketID: 11, Role: vppmemif.MEMIF_ROLE_API_MASTER,
		Mode: vppmemif.MEMIF_MODE_API_IP, Flags: interface_types.IF_STATUS_API_FLAG_ADMIN_UP | interface_types.IF_STATUS_API_FLAG_LINK_UP}
	c.memifs[2] = &vppmemif.MemifDetails{SwIfIndex: 2, IfName: "memif12/0", SocketID: 12, Role: vppmemif.MEMIF_ROLE_API_SLAVE}
	ifs, err := memif.ReadInterfaces(c.SendMultiRequest(&vppmemif.MemifDump{}))
	if err != nil {
		t.Fatal(err)
	}
	sockets, err := memif.ReadSockets(c.SendMultiRequest(&vppmemif.MemifSocketFilenameDump{}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.names(), []string{"memif_dump", "memif_socket_filename_dump"}) {
		t.Errorf("requests %v", c.names())
	}
	want := []memif.Interface{
		{SwIfIndex: 1, Name: "memif11/0", SocketID: 11, Role: "master", Mode: "ip", AdminUp: true, LinkUp: true},
		{SwIfIndex: 2, Name: "memif12/0", SocketID: 12, Role: "slave", Mode: "ethernet"},
	}
	if !slices.Equal(ifs, want) {
		t.Errorf("ReadInterfaces:\n got %+v\nwant %+v", ifs, want)
	}
	if len(sockets) != 3 || sockets[0] != "/run/vpp/memif.sock" || sockets[12] != "/run/b.sock" {
		t.Errorf("sockets %v", sockets)
	}

	c.dumpErr = errors.New("connection lost")
	if _, err := memif.ReadInterfaces(c.SendMultiRequest(&vppmemif.MemifDump{})); err == nil || !strings.Contains(err.Error(), "memif_dump: connection lost") {
		t.Errorf("ReadInterfaces error %v", err)
	}
	if _, err := memif.ReadSockets(c.SendMultiRequest(&vppmemif.MemifSocketFilenameDump{})); err == nil || !strings.Contains(err.Error(), "memif_socket_filename_dump: connection lost") {
		t.Errorf("ReadSockets error %v", err)
	}
}
